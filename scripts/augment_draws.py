"""Statistics of the training augmentation's random draws in a real train run, for one or more
source trees (e.g. this one and an older commit checked out with `git worktree add`):
flip rate, crop offsets (uniform?), correlations, and whether an image's draws repeat the next
epoch. The run's optimisation is skipped (the loader, sampler and Lightning loop are real).

    python scripts/augment_draws.py --tree . --tree /tmp/old -- experiment=ablation_cuhk03 \
        +trick=baseline seed=0 paths.data_dir=../shared/data

Each tree runs `reidtricks.train` with its own `src/` and `conf/` for --epochs epochs in a
subprocess (run folders under --out), recording every flip, crop and item read.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

# Runs inside the subprocess: records draws by wrapping torchvision's hflip/crop (what both the
# old torchvision transforms and the project's TrainAugment call) and the dataset's item read.
_RECORDER = r"""
import atexit, json, runpy, sys
import torchvision.transforms.functional as F
from reidtricks.data import image_dataset
from reidtricks.training import module

out = sys.argv.pop(1)
log = []
hflip, crop, getitem = F.hflip, F.crop, image_dataset.ImageDataset.__getitem__

def logged_hflip(img):
    log.append(["f"])
    return hflip(img)

def logged_crop(img, top, left, height, width):
    log.append(["c", int(top), int(left)])
    return crop(img, top, left, height, width)

def logged_getitem(self, key):
    log.append(["i", key if isinstance(key, int) else int(key[0])])
    return getitem(self, key)

def no_step(self, batch, batch_idx):
    log.append(["step"])

F.hflip, F.crop = logged_hflip, logged_crop
image_dataset.ImageDataset.__getitem__ = logged_getitem
module.ReIDModule.training_step = no_step
atexit.register(lambda: json.dump(log, open(out, "w")))
sys.argv[0] = "reidtricks.train"
runpy.run_module("reidtricks.train", run_name="__main__")
"""


def record(tree: Path, number: int, overrides: list[str], epochs: int, out: Path) -> list:
    """The draw log of `epochs` training epochs of `tree`'s (the number-th tree's) train command."""
    log_path = out / f"tree{number}_{tree.name}.json"
    script = out / "recorder.py"
    script.write_text(_RECORDER)
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    run_dir = out / f"run_{log_path.stem}"
    args = [
        f"trainer.max_epochs={epochs}",
        "trainer.check_val_every_n_epoch=1000",
        f"hydra.run.dir={run_dir}",
    ]
    cmd = [sys.executable, str(script), str(log_path), *overrides, *args]
    subprocess.run(cmd, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    return json.loads(log_path.read_text())


def samples_of(log: list) -> list[dict]:
    """One dict per augmented training item: index, flip (0/1), crop top and left."""
    samples: list[dict] = []
    current: dict | None = None
    for event in log:
        if event[0] == "i":
            current = {"idx": event[1], "flip": 0}
            samples.append(current)
        elif event[0] == "f" and current is not None:
            current["flip"] = 1
        elif event[0] == "c" and current is not None:
            current["top"], current["left"] = event[1], event[2]
    return [s for s in samples if "top" in s]  # test-set reads have no crop


def statistics(samples: list[dict], epochs: int) -> dict[str, float]:
    """Flip rate, crop uniformity (chi-square over the offsets), correlations, repeats."""
    flip = np.array([s["flip"] for s in samples], dtype=float)
    top = np.array([s["top"] for s in samples])
    left = np.array([s["left"] for s in samples])
    levels = int(max(top.max(), left.max())) + 1
    expected = len(top) / levels

    def chi2(x: np.ndarray) -> float:
        return float(((np.bincount(x, minlength=levels) - expected) ** 2 / expected).sum())

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.corrcoef(a, b)[0, 1])

    per_epoch = len(samples) // epochs
    same_flip = same_crop = pairs = 0
    for e in range(epochs - 1):
        this = {s["idx"]: s for s in samples[e * per_epoch : (e + 1) * per_epoch]}
        after = {s["idx"]: s for s in samples[(e + 1) * per_epoch : (e + 2) * per_epoch]}
        for idx in this.keys() & after.keys():
            pairs += 1
            same_flip += this[idx]["flip"] == after[idx]["flip"]
            same_crop += (this[idx]["top"], this[idx]["left"]) == (
                after[idx]["top"],
                after[idx]["left"],
            )
    return {
        "items": len(samples),
        "flip rate (0.5)": float(flip.mean()),
        f"chi2 top ({levels - 1} dof)": chi2(top),
        f"chi2 left ({levels - 1} dof)": chi2(left),
        "corr flip(t), flip(t+1)": corr(flip[:-1], flip[1:]),
        "corr top(t), top(t+1)": corr(top[:-1], top[1:]),
        "corr flip, top": corr(flip, top),
        "corr top, left": corr(top, left),
        "same flip next epoch (0.5)": same_flip / max(pairs, 1),
        f"same crop next epoch ({1 / levels**2:.4f})": same_crop / max(pairs, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="run folders (default: a temp)")
    parser.add_argument("overrides", nargs="*", help="train overrides, after --")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="augment_draws_"))
    out.mkdir(parents=True, exist_ok=True)
    table = {}
    orders = {}
    for number, tree in enumerate(args.tree):
        samples = samples_of(record(tree.resolve(), number, args.overrides, args.epochs, out))
        table[str(tree)] = statistics(samples, args.epochs)
        orders[str(tree)] = [s["idx"] for s in samples]
    names = list(table)
    print("| statistic | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for key in table[names[0]]:
        print(f"| {key} | " + " | ".join(f"{table[n][key]:.4g}" for n in names) + " |")
    if len(names) > 1:
        same = all(orders[n] == orders[names[0]] for n in names[1:])
        print(f"\nSame items in the same order in every tree: {same}")


if __name__ == "__main__":
    main()
