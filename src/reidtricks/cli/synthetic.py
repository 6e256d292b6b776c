"""Generate the synthetic dataset: `python -m reidtricks.synthetic --preset small --root data`
(the generator itself: reidtricks.data.synthetic_generator)."""

from __future__ import annotations

import argparse
import sys
import time

from reidtricks.cli.app import one_line_errors
from reidtricks.data.datasets.market_naming import read_market_style
from reidtricks.data.synthetic_generator import (
    PRESETS,
    generate_dataset,
    is_complete,
    synthetic_dataset_dir,
)


def main(argv: list[str] | None = None) -> None:
    """Generate a preset and seed (unless already there) and print its split statistics."""
    parser = argparse.ArgumentParser(
        prog="python -m reidtricks.synthetic", description="Generate a synthetic ReID dataset."
    )
    parser.add_argument("--preset", default="small", choices=sorted(PRESETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default="data", help="data folder (paths.data_dir)")
    parser.add_argument("--workers", type=int, default=None, help="render processes (max 8)")
    args = parser.parse_args(argv)
    start = time.time()
    dataset_dir = synthetic_dataset_dir(args.root, args.preset, args.seed)
    try:
        with one_line_errors():
            if not is_complete(dataset_dir, args.preset, args.seed):
                generate_dataset(dataset_dir, args.preset, args.seed, workers=args.workers)
            splits = read_market_style("synthetic", dataset_dir)
    except KeyboardInterrupt:
        print(f"error: interrupted; {dataset_dir} was not written", file=sys.stderr)
        raise SystemExit(130) from None
    print(splits.statistics_table())
    print(f"{dataset_dir} ready in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
