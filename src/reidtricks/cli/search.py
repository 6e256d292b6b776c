"""Search a gallery: `python -m reidtricks.search ckpt=PATH query=IMG_OR_DIR gallery=DIR`."""

from __future__ import annotations

import csv
import hashlib
import os
import sys
from collections.abc import Sequence
from math import inf
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from reidtricks.cli.app import extractor_from_config, hydra_command, warn_bad_images
from reidtricks.cli.options import apply_threads, check_options
from reidtricks.cli.outputs import checked_output
from reidtricks.cli.sweep import job_errors
from reidtricks.errors import InputError, MissingInputError
from reidtricks.evaluation import METRICS
from reidtricks.evaluation.retrieval import query_gallery_distances
from reidtricks.evaluation.settings import EvalConfig
from reidtricks.inference import ImageFiles, list_image_files, market_ids
from reidtricks.inference.files import atomic_output, cut_to_bytes
from reidtricks.inference.gallery_cache import gallery_features
from reidtricks.reports.plots import plot_query_strip
from reidtricks.validate import require_int


def _ids(path: str) -> tuple[str, str]:
    ids = market_ids(path)
    return (str(ids[0]), str(ids[1])) if ids else ("", "")


PNG_STEM_BYTES = 100  # file names are at most 255 bytes on common file systems


def strip_png_name(index: int, query: str) -> str:
    """`0007_<the query's stem>.png`; a stem over PNG_STEM_BYTES is cut and followed by 8 hex
    digits of its hash, so that the name fits the file system and stays unique."""
    stem = Path(query).stem
    if len(stem.encode()) > PNG_STEM_BYTES:
        digest = hashlib.blake2b(stem.encode(), digest_size=4).hexdigest()
        stem = f"{cut_to_bytes(stem, PNG_STEM_BYTES - 9)}_{digest}"
    return f"{index:04d}_{stem}.png"


def _png_paths(cfg: DictConfig, queries: Sequence[str | Path]) -> list[Path]:
    """The PNG strips of the first plot_queries queries."""
    ranked = Path(cfg.paths.output_dir) / "ranked"
    return [ranked / strip_png_name(i, q) for i, q in enumerate(queries[: int(cfg.plot_queries)])]


def _check_outputs(cfg: DictConfig, paths: list[Path]) -> None:
    """Every output checked before the first is written: never an input (a query or gallery
    image) nor a file of another run; search writes into a new folder only."""
    inputs = {"ckpt": cfg.ckpt, "query": cfg.query, "gallery": cfg.gallery}
    for path in paths:
        checked_output(None, path, inputs, own_dir=cfg.paths.output_dir, overwrite=None)


def _listed(key: str, root: str | Path) -> ImageFiles:
    listing = list_image_files(root, key)
    if listing.hidden:
        print(f"{key}={root}{listing.hidden_note(': ')}")
    return listing


def _refuse_empty_rankings(cfg: DictConfig, queries: list[str], ranking: list[list]) -> None:
    """One line when a query is the gallery's only image: an error when that leaves every query
    without a match, else a warning naming them (a query is never its own match)."""
    empty = [q for q, matches in zip(queries, ranking, strict=True) if not matches]
    if empty and len(empty) == len(queries):
        raise InputError(
            f"query={cfg.query}: is the only image of gallery={cfg.gallery} (a query is never "
            "its own match), nothing else to rank; give a gallery with other images"
        )
    if empty:
        shown = ", ".join(empty[:5]) + (f" and {len(empty) - 5} more" if len(empty) > 5 else "")
        print(
            f"warning: {len(empty)} of {len(queries)} queries are the gallery's only image, "
            f"their rankings are empty: {shown}",
            file=sys.stderr,
        )


def search_gallery(cfg: DictConfig) -> dict[str, Any]:
    """Rank the gallery for every query image; ranking.csv, PNG strips and a printed top-k."""
    check_options(cfg, "search")
    apply_threads(cfg)
    extractor = extractor_from_config(cfg)  # a refused checkpoint stops here, nothing written
    topk = require_int("topk", cfg.topk, minimum=1)
    metric = str(cfg.metric or extractor.metric)
    if metric not in METRICS:
        raise InputError(f"metric={metric!r}: expected one of {METRICS}")
    queries = _listed("query", cfg.query).paths
    gallery_root = Path(cfg.gallery)
    if gallery_root.is_file():
        raise InputError(f"gallery={gallery_root}: is a file, expected a folder of images")
    if not gallery_root.is_dir():
        raise MissingInputError(f"gallery={gallery_root}: no such folder")
    gallery_files = _listed("gallery", gallery_root).paths
    output_dir = Path(cfg.paths.output_dir)
    csv_path, skipped_csv = output_dir / "ranking.csv", output_dir / "skipped.csv"
    _check_outputs(cfg, [csv_path, skipped_csv, *_png_paths(cfg, queries)])

    gallery, cache_file, cache_hit = gallery_features(
        extractor,
        cfg.ckpt,
        gallery_root,
        gallery_files,
        cache_dir=cfg.cache_dir if cfg.cache else None,
        skip_bad=bool(cfg.skip_bad),
        num_workers=int(cfg.num_workers),
        progress=bool(cfg.progress),
    )
    if cache_hit:
        print(f"Gallery features: reused from the cache {cache_file}")
    query = extractor.extract_files(
        queries,
        skip_bad=bool(cfg.skip_bad),
        num_workers=int(cfg.num_workers) if len(queries) > extractor.batch_size else 0,
        progress=bool(cfg.progress) and len(queries) > extractor.batch_size,
        description=f"queries: {len(queries)} images",
    )
    if not query.paths or not gallery.paths:
        raise InputError("no readable query or gallery image left to search with")
    evaluated = extractor.spec.eval if extractor.spec else EvalConfig()
    rerank = bool(cfg.rerank)
    if metric not in METRICS:
        raise InputError(f"metric={metric!r}: expected one of {METRICS}")
    dist = query_gallery_distances(
        query.features,
        gallery.features,
        metric,
        rerank,
        k1=evaluated.k1,
        k2=evaluated.k2,
        lambda_value=evaluated.lambda_value,
    )
    # A query image that is itself in the gallery folder is not its own match.
    where = {os.path.realpath(path): g for g, path in enumerate(gallery.paths)}
    for q, q_path in enumerate(query.paths):
        if (g := where.get(os.path.realpath(q_path))) is not None:
            dist[q, g] = inf
    k = min(topk, len(gallery.paths))
    order = torch.sort(dist, dim=1, stable=True).indices[:, :k]
    ranking = [
        [(gallery.paths[g], float(dist[q, g])) for g in order[q].tolist() if dist[q, g] < inf]
        for q in range(len(query.paths))
    ]
    _refuse_empty_rankings(cfg, query.paths, ranking)

    png_paths = _png_paths(cfg, query.paths)  # other names when skip_bad left queries out
    _check_outputs(cfg, png_paths)
    bad = gallery.bad + query.bad
    with atomic_output(csv_path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["query", "rank", "gallery", "distance", "query_pid", "query_camid",
                         "gallery_pid", "gallery_camid", "same_pid"])  # fmt: skip
        for q_path, matches in zip(query.paths, ranking, strict=True):
            q_pid, q_cam = _ids(q_path)
            for rank, (g_path, d) in enumerate(matches, start=1):
                g_pid, g_cam = _ids(g_path)
                same = str(int(q_pid == g_pid)) if q_pid and g_pid else ""
                writer.writerow(
                    [q_path, rank, g_path, f"{d:.6f}", q_pid, q_cam, g_pid, g_cam, same]
                )
    if bad:
        with atomic_output(skipped_csv) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "error"])
            writer.writerows([b.path, b.error] for b in bad)
        warn_bad_images(bad, str(skipped_csv))

    pngs = []
    for qi, png in enumerate(png_paths):
        q_path, matches = query.paths[qi], ranking[qi]
        q_pid, _ = _ids(q_path)
        colors = []
        for g_path, _ in matches:
            g_pid, _ = _ids(g_path)
            colors.append("grey" if not (q_pid and g_pid) else "green" if q_pid == g_pid else "red")
        title = f"query\nid {q_pid}" if q_pid else "query"
        with atomic_output(png) as tmp:
            plot_query_strip(q_path, matches, tmp, title, colors)
        pngs.append(png)

    console = Console()
    how = f"{metric}{' + re-ranking' if rerank else ''}, {extractor.feature}"
    for qi in range(min(int(cfg.print_queries), len(query.paths))):
        table = Table(title=f"{query.paths[qi]}  ({how})", title_justify="left")
        table.add_column("rank", justify="right")
        table.add_column("distance", justify="right")
        table.add_column(f"gallery image (in {gallery_root})")
        for rank, (g_path, d) in enumerate(ranking[qi], start=1):
            table.add_row(str(rank), f"{d:.4f}", os.path.relpath(g_path, gallery_root))
        console.print(table)
    if len(query.paths) > int(cfg.print_queries):
        print(f"... {len(query.paths) - int(cfg.print_queries)} more queries in {csv_path}")
    print(
        f"{len(query.paths)} queries x {len(gallery.paths)} gallery images; "
        f"top-{k} in {csv_path}; {len(pngs)} PNG strips in {output_dir / 'ranked'}"
    )
    return {
        "queries": query.paths,
        "ranking": ranking,
        "metric": metric,
        "csv": csv_path,
        "pngs": pngs,
        "bad": bad,
        "cache_file": cache_file,
        "cache_hit": cache_hit,
    }


@hydra_command("search")
def main(cfg: DictConfig) -> None:
    with job_errors():
        search_gallery(cfg)


if __name__ == "__main__":
    main()
