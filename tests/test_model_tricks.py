"""The tricks for unseen cameras in the model group (model.ibn, model.mixstyle.*, model.pooling):
each switch changes exactly its keys, checkpoints store them (older ones load with them off),
and a model trained with all of them on works in evaluate, extract, search and export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from helpers import compose_config, compose_evaluate, compose_train, new_net, tiny_overrides
from reidtricks.errors import InputError
from reidtricks.inference.checkpoint import build_net_from_checkpoint, checkpoint_spec
from reidtricks.models.ibn import IBN
from reidtricks.models.pooling import GeneralizedMeanPooling
from reidtricks.training.settings import model_settings

OFF = {
    "model.ibn": "none",
    "model.mixstyle.p": 0.0,
    "model.mixstyle.alpha": 0.1,
    "model.mixstyle.layers": ["layer1", "layer2"],
    "model.pooling": "avg",
}


def flat(node, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def composed(*overrides: str) -> dict[str, object]:
    return flat(OmegaConf.to_container(compose_train(*overrides), resolve=False))


@pytest.mark.parametrize(
    "model",
    [
        "resnet50",
        "resnet18",
        "mobilenetv2",
        "efficientnet_lite0",
        "efficientnet_lite1",
        "efficientnet_lite2",
    ],
)
def test_every_model_config_has_the_tricks_off(model):
    cfg = composed(f"model={model}")
    assert {k: cfg[k] for k in OFF} == OFF


@pytest.mark.parametrize(
    ("override", "changed"),
    [
        ("model.ibn=a", {"model.ibn": "a"}),
        ("model.mixstyle.p=0.5", {"model.mixstyle.p": 0.5}),
        ("model.mixstyle.alpha=0.3", {"model.mixstyle.alpha": 0.3}),
        ("model.mixstyle.layers=[layer1]", {"model.mixstyle.layers": ["layer1"]}),
        ("model.pooling=gem", {"model.pooling": "gem"}),
    ],
)
@pytest.mark.parametrize("base", [(), ("experiment=cuhk03_cpu", "+trick=center_loss")])
def test_each_switch_changes_exactly_its_keys(override, changed, base):
    before, after = composed(*base), composed(*base, override)
    assert before.keys() == after.keys()
    assert {k: v for k, v in after.items() if before[k] != v} == changed
    settings = model_settings(compose_train(*base, override))
    key, value = next(iter(changed.items()))
    node = settings
    for part in key.split(".")[1:]:
        node = getattr(node, part)
    assert (list(node) if isinstance(node, tuple) else node) == value


def test_a_bad_value_on_the_command_line_is_a_one_line_error():
    for override, message in [
        ("model.ibn=b", r"^model.ibn='b': expected one of \('none', 'a'\)$"),
        ("model.pooling=max", r"^model.pooling='max': expected one of \('avg', 'gem'\)$"),
        ("model.mixstyle.p=2", r"^model.mixstyle.p=2: expected a number in \[0, 1\]$"),
        ("+model.mixstyle.beta=1", r"^model.mixstyle.beta: unknown setting"),
    ]:
        with pytest.raises(InputError, match=message):
            model_settings(compose_train(override))


def checkpoint_with(net, model_args: dict) -> dict:
    config = OmegaConf.to_container(
        compose_train("experiment=demo", "paths.output_dir=/out"), resolve=True
    )
    return {
        "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
        "reidtricks": {"config": config, "stage": "baseline", "seed": 0, "num_classes": 5,
                       "model_args": model_args},
    }  # fmt: skip


def test_a_checkpoint_stores_the_tricks_and_rebuilds_them():
    torch.manual_seed(0)
    args = {"ibn": "a", "mixstyle": {"p": 0.5, "alpha": 0.1, "layers": ("layer1", "layer2")},
            "pooling": "gem"}  # fmt: skip
    net = new_net("resnet18", 5, **args)
    with torch.no_grad():
        net.pool.p.fill_(3.7)  # as if learnt
    stored = {"backbone": "resnet18", "num_classes": 5, "last_stride": 2, "neck": "none",
              "pretrained": False, "pretrained_path": None, "pretrained_key_map": "by_name",
              **args}  # fmt: skip
    rebuilt = build_net_from_checkpoint(checkpoint_with(net, stored))
    assert float(rebuilt.pool.p) == pytest.approx(3.7)
    assert sum(isinstance(m, IBN) for m in rebuilt.modules()) == 6
    assert rebuilt.mixstyle.p == 0.5
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x).feat_before_bn, net.eval()(x).feat_before_bn)


def test_model_args_without_the_new_keys_rebuild_the_network_with_them_off():
    torch.manual_seed(0)
    net = new_net("resnet18", 5)
    older = {"backbone": "resnet18", "num_classes": 5, "last_stride": 2, "neck": "none",
             "pretrained": False, "pretrained_path": None, "pretrained_key_map": "by_name"}  # fmt: skip
    checkpoint = checkpoint_with(net, older)
    args = checkpoint_spec(checkpoint).net.args
    assert (args["ibn"], args["mixstyle"]["p"], args["pooling"]) == ("none", 0.0, "avg")
    rebuilt = build_net_from_checkpoint(checkpoint)
    assert not any(isinstance(m, IBN | GeneralizedMeanPooling) for m in rebuilt.modules())
    assert not hasattr(rebuilt, "mixstyle")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"ibn": "b"}, r"^model.ckpt: stored model.ibn='b': expected one of"),
        ({"mixstyle": {"p": 0.5, "layers": ["layer9"]}},
         r"^model.ckpt: stored model.mixstyle.layers=\['layer9'\]"),
        ({"mixstyle": {"p": [0.5]}}, r"^model.ckpt: stored model.mixstyle.p=\[0.5\]: expected"),
        ({"mixstyle": {"p": {"x": 1}}}, r"^model.ckpt: stored model argument mixstyle=.*: expected a value"),
    ],
)  # fmt: skip
def test_a_bad_stored_trick_is_a_one_line_error(args, message):
    base = {"backbone": "resnet18", "num_classes": 5, "last_stride": 2, "neck": "none"}
    checkpoint = checkpoint_with(new_net("resnet18", 5), {**base, **args})
    with pytest.raises(InputError, match=message) as err:
        checkpoint_spec(checkpoint, "model.ckpt")
    assert "\n" not in str(err.value)


@pytest.mark.slow  # three ONNX exports
@pytest.mark.parametrize(
    "backbone", ["timm:mobilenetv2_100", "timm:tf_efficientnet_lite0", "timm:tf_efficientnet_lite2"]
)
def test_onnx_export_of_ibn_and_gem_matches_pytorch(backbone, tmp_path):
    """The exporter's graph (InstanceNormalization, Pow / ReduceMean) against PyTorch, eval mode;
    MixStyle (p=1) is in the network and leaves no trace at test time."""
    import onnx

    from reidtricks.inference import FeatureExtractor
    from reidtricks.inference.checkpoint import InputSpec
    from reidtricks.inference.onnx_export import export_onnx, onnx_session, run_onnx

    torch.manual_seed(0)
    net = new_net(backbone, 5, neck="bnneck", ibn="a", pooling="gem", mixstyle={"p": 1.0})
    spec = InputSpec(height=128, width=64, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    extractor = FeatureExtractor(net, spec, feature="after_bn", flip=True, device="cpu")
    path = export_onnx(extractor, tmp_path / "model.onnx")
    x = torch.randn(3, 3, 128, 64)
    got = run_onnx(onnx_session(path, threads=1), x)
    torch.testing.assert_close(got, extractor.forward(x), atol=1e-4, rtol=1e-4)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert {"InstanceNormalization", "Pow", "ReduceMean"} <= ops


def command_cfg(name: str, ckpt: Path, out: Path, *extra: str):
    return compose_config(
        name, f"ckpt={ckpt}", f"paths.output_dir={out}", "num_workers=0", "progress=false", *extra
    )


@pytest.mark.slow  # one tiny training, then every command on its checkpoint
def test_a_model_trained_with_every_trick_works_in_every_command(tiny_data_dir, tmp_path):
    from reidtricks.cli.evaluate import evaluate_checkpoint
    from reidtricks.cli.export import export_checkpoint
    from reidtricks.cli.extract import extract_folder
    from reidtricks.cli.search import search_gallery
    from reidtricks.cli.train import train
    from reidtricks.inference import FeatureExtractor

    run = tmp_path / "run"
    tricks = ("model.ibn=a", "model.mixstyle.p=0.5", "model.pooling=gem",  # every recipe trick
              "data.transform.color_jitter=0.2", "data.transform.grayscale_prob=0.1",
              "data.transform.auto_augment=trivialaugment")  # fmt: skip
    cfg = compose_train(
        *tiny_overrides(tiny_data_dir, run), "+trick=bnneck", *tricks, "trainer.max_epochs=1",
        "++trainer.limit_train_batches=3", "trainer.check_val_every_n_epoch=1", "optim.lr=1e-3",
    )  # fmt: skip
    metrics = train(cfg)
    ckpt = run / "checkpoints" / "last.ckpt"
    raw = torch.load(ckpt, map_location="cpu", weights_only=True)
    stored = raw["reidtricks"]["model_args"]
    assert (stored["ibn"], stored["mixstyle"]["p"], stored["pooling"]) == ("a", 0.5, "gem")
    learnt_p = float(raw["state_dict"]["net.pool.p"])
    assert learnt_p != 3.0  # p trained with the rest

    net = build_net_from_checkpoint(raw, str(ckpt))
    assert float(net.pool.p) == learnt_p and net.mixstyle.p == 0.5
    assert sum(isinstance(m, IBN) for m in net.modules()) == 6

    result = evaluate_checkpoint(compose_evaluate(ckpt, tmp_path / "eval", "plot_queries=0"))
    assert result["test_sets"]["synthetic"]["mAP"] == pytest.approx(metrics["mAP"], abs=1e-6)

    split = tiny_data_dir / "synthetic-tiny-seed0"
    extract_folder(command_cfg("extract", ckpt, tmp_path / "extract", f"images={split / 'query'}"))
    with np.load(tmp_path / "extract" / "features.npz", allow_pickle=False) as data:
        paths = [str(p) for p in data["paths"]]
        expected = FeatureExtractor.from_checkpoint(ckpt).extract(paths)
        np.testing.assert_allclose(data["features"], expected.numpy(), atol=1e-5)

    found = search_gallery(command_cfg(
        "search", ckpt, tmp_path / "search", f"query={split / 'query'}",
        f"gallery={split / 'bounding_box_test'}", f"cache_dir={tmp_path / 'cache'}", "topk=3",
    ))  # fmt: skip
    assert len(found["ranking"]) == len(paths) and all(len(m) == 3 for m in found["ranking"])

    report = export_checkpoint(command_cfg("export", ckpt, tmp_path / "export"))["parity"]
    assert report.passed and report.max_abs_diff <= 1e-4, report.summary()


@pytest.mark.parametrize("n", [1, 2])
def test_efficientnet_lite_configs_name_their_backbone_and_weights_file(n):
    cfg = composed(f"model=efficientnet_lite{n}")
    assert cfg["model.backbone"] == f"timm:tf_efficientnet_lite{n}"
    assert cfg["model.pretrained_path"] == f"${{paths.weights_dir}}/tf_efficientnet_lite{n}.pt"
    lite0 = composed("model=efficientnet_lite0")
    differs = {k for k in cfg.keys() | lite0.keys() if cfg.get(k) != lite0.get(k)}
    assert differs == {"model.backbone", "model.pretrained_path"}
