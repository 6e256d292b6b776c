"""One Markdown table of `adapt` runs: their settings, the target's test mAP before adapting
(direct transfer), after AdaBN where run and after each round, with camera BN where run (before
round 1 / after the last), and the last round's pseudo-label purity / ARI and share of
cross-camera same-person pairs that one cluster holds.

    python scripts/adapt_table.py docs/runs/adapt_small [more folders or run folders ...]

Each argument is an adapt run folder (holding metrics.json) or a folder of them (searched
recursively). Runs without a measured target (a folder of crops) have no mAP and are listed as such.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

SETTINGS = ("eps", "k1", "min_samples", "lr", "epochs_per_round")


def run_files(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(metrics.json of every adapt run under `paths`, adapt run folders without one: failed or
    unfinished), each in a stable order."""
    found: list[Path] = []
    unfinished: list[Path] = []
    for path in paths:
        if not path.exists():
            raise SystemExit(f"error: {path}: no such folder")
        found += [path / "metrics.json"] if (path / "metrics.json").is_file() else []
        found += sorted(path.rglob("*/metrics.json"))
        for log in sorted([path / "adapt.log", *path.rglob("*/adapt.log")]):
            if log.is_file() and not (log.parent / "metrics.json").is_file():
                unfinished.append(log.parent)
    return [f for f in found if "rounds" in json.loads(f.read_text())], unfinished


def test_map(scores: dict[str, Any] | None, target: str) -> float | None:
    """The target's test mAP (%), from a `test_sets` / `direct_transfer` mapping."""
    if not scores or target not in scores:
        return None
    return 100 * scores[target]["mAP"]


def row(metrics_json: Path) -> list[str]:
    """One table row: run, target, settings, P, seed, direct, AdaBN, each round, last - direct,
    camera BN (round 0 / last), purity / ARI, cross-camera pairs together (runs before a
    measure: "-")."""
    m = json.loads(metrics_json.read_text())
    target = m["target"]["name"]
    split = (m["target"].get("dataset") or {}).get("split")
    settings = " ".join(f"{k} {m['adapt'][k]:g}" for k in SETTINGS)
    changed = (
        ("classifier", "linear"),
        ("outliers", "drop"),
        ("camera_aware", False),
        ("adabn", False),
        ("camera_bn", False),
        ("camera_bn_training", False),
        ("same_camera_penalty", 0.0),
    )
    for key, default in changed:  # named where not the default
        if m["adapt"].get(key, default) != default:
            settings += f" {key} {m['adapt'][key]}"
    direct = test_map(m.get("direct_transfer"), target)
    adabn = test_map(m.get("adabn"), target)  # adapt.adabn: before round 1
    rounds = [test_map(r.get("test_sets"), target) for r in m["rounds"]]
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    last = m["rounds"][-1]
    delta = "-" if direct is None or rounds[-1] is None else f"{rounds[-1] - direct:+.1f}"
    quality = "-" if last.get("purity") is None else f"{last['purity']:.2f} / {last['ari']:.2f}"
    together = last.get("cross_camera_together")
    cross = "-" if together is None or math.isnan(together) else f"{100 * together:.1f}%"
    camera_bn = [test_map(m.get("camera_bn"), target), test_map(last.get("camera_bn"), target)]
    camera = "-" if None in camera_bn else " / ".join(fmt(v) for v in camera_bn)
    stopped = " / stopped" if m.get("stopped") else ""  # an error ended it before its last round
    name = metrics_json.parent.name
    where = target if split is None else f"{target} split {split}"
    return [name, where, settings, str(m["batch"]["p"]), str(m["seed"]), fmt(direct), fmt(adabn),
            " / ".join(fmt(v) for v in rounds) + stopped, delta, camera, quality, cross]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args(argv)
    files, unfinished = run_files(args.folders)
    if not files:
        raise SystemExit(f"error: no adapt run (metrics.json with rounds) under {args.folders}")
    head = ["run", "target", "settings", "P", "seed", "direct mAP", "AdaBN mAP", "mAP per round",
            "last - direct", "camera BN mAP (round 0 / last)", "purity / ARI (last)",
            "cross-camera pairs together (last)"]  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for f in files:
        print("| " + " | ".join(row(f)) + " |")
    if unfinished:
        print()
    for folder in unfinished:
        print(f"no metrics.json (failed or unfinished): {folder}")


if __name__ == "__main__":
    main(sys.argv[1:])
