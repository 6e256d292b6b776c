"""Search a gallery: `python -m reidtricks.search ckpt=PATH query=IMG_OR_DIR gallery=DIR`."""

from __future__ import annotations

import csv
import os
from math import inf
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from reidtricks.cli.app import extractor_from_config, hydra_command, warn_bad_images
from reidtricks.cli.options import check_options
from reidtricks.cli.sweep import job_errors
from reidtricks.errors import InputError, MissingInputError
from reidtricks.evaluation import METRICS
from reidtricks.evaluation.retrieval import query_gallery_distances
from reidtricks.evaluation.settings import EvalConfig
from reidtricks.inference import (
    list_image_files,
    market_ids,
)
from reidtricks.inference.gallery_cache import gallery_features
from reidtricks.reports.plots import plot_query_strip
from reidtricks.validate import require_int


def _ids(path: str) -> tuple[str, str]:
    ids = market_ids(path)
    return (str(ids[0]), str(ids[1])) if ids else ("", "")


def search_gallery(cfg: DictConfig) -> dict[str, Any]:
    """Rank the gallery for every query image; ranking.csv, PNG strips and a printed top-k."""
    check_options(cfg, "search")
    extractor = extractor_from_config(cfg)  # a refused checkpoint stops here, nothing written
    topk = require_int("topk", cfg.topk, minimum=1)
    metric = str(cfg.metric or extractor.metric)
    if metric not in METRICS:
        raise InputError(f"metric={metric!r}: expected one of {METRICS}")
    queries, _ = list_image_files(cfg.query, "query")
    gallery_root = Path(cfg.gallery)
    if not gallery_root.is_dir():
        raise MissingInputError(f"gallery={gallery_root}: no such folder")
    gallery_files, _ = list_image_files(gallery_root, "gallery")

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

    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    csv_path = output_dir / "ranking.csv"
    with open(csv_path, "w", newline="") as fh:
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
    bad = gallery.bad + query.bad
    if bad:
        with open(output_dir / "skipped.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "error"])
            writer.writerows([b.path, b.error] for b in bad)
        warn_bad_images(bad, str(output_dir / "skipped.csv"))

    pngs = []
    for qi in range(min(int(cfg.plot_queries), len(query.paths))):
        q_path, matches = query.paths[qi], ranking[qi]
        q_pid, _ = _ids(q_path)
        colors = []
        for g_path, _ in matches:
            g_pid, _ = _ids(g_path)
            colors.append("grey" if not (q_pid and g_pid) else "green" if q_pid == g_pid else "red")
        title = f"query\nid {q_pid}" if q_pid else "query"
        png = output_dir / "ranked" / f"{qi:04d}_{Path(q_path).stem}.png"
        pngs.append(plot_query_strip(q_path, matches, png, title, colors))

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
