"""The study report on a fabricated sweep folder: numbers checked by hand."""

from __future__ import annotations

import csv
import json
import statistics

import pytest
import yaml

from reidtricks.cli.report import main
from reidtricks.reports.study import count_sweep_values, write_report


def make_job(sweep, num, cell, seed, rank1, mAP, variants=None, dataset="market1501"):
    job = sweep / f"{num}_{cell}_seed{seed}"
    (job / ".hydra").mkdir(parents=True)
    metrics = {"rank1": rank1, "rank5": 0.9, "rank10": 0.95, "mAP": mAP, "mINP": 0.3}
    payload = {"stage": cell, "cell": cell, "seed": seed, "test_sets": {dataset: metrics}}
    if variants:
        payload["variants"] = {name: {dataset: {**metrics, **v}} for name, v in variants.items()}
    (job / "metrics.json").write_text(json.dumps(payload))
    return job


@pytest.fixture
def sweep(tmp_path):
    sweep = tmp_path / "multirun"
    base = [(0.80, 0.60), (0.82, 0.62), (0.84, 0.64)]
    warm = [(0.81, 0.70), (0.83, 0.71), (0.85, 0.72)]
    num = 0
    for seed, (r1, m) in enumerate(base):
        make_job(sweep, num, "baseline", seed, r1, m)
        num += 1
    for seed, (r1, m) in enumerate(warm):
        make_job(sweep, num, "warmup", seed, r1, m, variants={"rerank": {"mAP": m + 0.1}})
        num += 1
    failed = sweep / f"{num}_rea_seed0"
    (failed / ".hydra").mkdir(parents=True)
    (sweep / "multirun.yaml").write_text(
        yaml.safe_dump(
            {
                "hydra": {
                    "sweeper": {"params": {"+trick": "baseline,warmup,rea"}},
                    "overrides": {"task": ["experiment=ablation", "seed=0,1,2"]},
                }
            }
        )
    )
    return sweep


def test_count_sweep_values_respects_braces():
    assert count_sweep_values("a,b,c") == 3
    assert count_sweep_values("{p:4,k:2},{p:8,k:4}") == 2
    assert count_sweep_values("5") == 1
    assert count_sweep_values("range(0,3)") == 3  # Hydra's sweep functions count too
    assert count_sweep_values("choice(1,2)") == 2


def test_report_numbers_deltas_noise_and_missing_jobs(sweep):
    md = write_report(sweep).read_text()
    rows = list(csv.DictReader((sweep / "report.csv").read_text().splitlines()))
    assert [r["row"] for r in rows] == ["baseline", "warmup", "warmup+rerank"]
    base_map = [0.60, 0.62, 0.64]
    warm_map = [0.70, 0.71, 0.72]
    mean_b, std_b = statistics.fmean(base_map), statistics.stdev(base_map)
    assert rows[0]["mAP"] == f"{100 * mean_b:.1f} ± {100 * std_b:.1f}"
    delta = statistics.fmean(warm_map) - mean_b
    assert rows[1]["Δ mAP"] == f"{100 * delta:+.1f}"  # 9 points, far outside the noise
    # rank-1 moved by 1 point with a 2-point std: within the seed noise, marked "~"
    assert rows[1]["Δ rank1"] == "+1.0 ~"
    assert rows[0]["paper R1/mAP"] == "87.7 / 74.0" and rows[1]["paper R1/mAP"] == "88.7 / 75.2"
    assert rows[2]["Δ mAP"] == "+10.0"  # the re-ranked row against its own stage
    assert "6_rea_seed0: no metrics.json" in md
    assert "2 job(s) of the sweep never started" in md  # 3 stages x 3 seeds = 9, 7 folders
    (sweep / "6_rea_seed0" / "error.txt").write_text("seed='abc': expected an integer\n")
    assert (
        "- 6_rea_seed0: failed: seed='abc': expected an integer" in write_report(sweep).read_text()
    )
    assert (sweep / "report.png").stat().st_size > 1000


def test_single_cell_study_lists_its_variants(tmp_path):
    # bnneck_metrics: the default evaluation (f_i, cosine) is one of the four variants
    sweep = tmp_path / "bn"
    cells = {"f_t_euclidean": {"mAP": 0.5}, "f_i_cosine": {}}
    for seed in range(2):
        make_job(sweep, seed, "bnneck_metrics", seed, 0.8, 0.55, variants=cells)
    rows = list(csv.DictReader(write_report(sweep).with_suffix(".csv").read_text().splitlines()))
    assert [r["row"] for r in rows] == ["f_t_euclidean", "f_i_cosine"]
    assert rows[0]["mAP"] == "50.0 ± 0.0" and rows[1]["mAP"] == "55.0 ± 0.0"
    assert rows[1]["seeds"] == "2"


def test_one_cell_with_an_added_variant_keeps_its_default_row(tmp_path):
    # one finished job of an ablation with re-ranking: its own numbers and the re-ranked ones
    sweep = tmp_path / "one"
    make_job(sweep, 0, "baseline", 0, 0.22, 0.245, variants={"rerank": {"mAP": 0.371}})
    rows = list(csv.DictReader(write_report(sweep).with_suffix(".csv").read_text().splitlines()))
    assert [r["row"] for r in rows] == ["baseline", "baseline+rerank"]
    assert rows[0]["mAP"] == "24.5" and rows[1]["mAP"] == "37.1"


def test_report_lists_a_corrupt_metrics_json_and_goes_on(sweep, capsys):
    truncated = sweep / "3_warmup_seed0" / "metrics.json"
    truncated.write_text('{"stage": "warmup", "test_sets": {')
    not_a_mapping = sweep / "4_warmup_seed1" / "metrics.json"
    not_a_mapping.write_text("[1, 2]")
    main([str(sweep)])
    md = (sweep / "report.md").read_text()
    rows = list(csv.DictReader((sweep / "report.csv").read_text().splitlines()))
    assert [r["row"] for r in rows] == ["baseline", "warmup", "warmup+rerank"]
    assert rows[1]["seeds"] == "1"  # the one readable warmup job
    failed = [line for line in md.splitlines() if "metrics.json" in line and "corrupt" in line]
    assert len(failed) == 2
    assert f"{truncated}: corrupt metrics.json (JSONDecodeError" in failed[0]
    assert f"{not_a_mapping}: corrupt metrics.json" in failed[1] and "list" in failed[1]
    assert "6_rea_seed0: no metrics.json" in md


def test_report_cli_errors_on_a_folder_without_jobs(tmp_path, capsys):
    for folder in (tmp_path / "empty", tmp_path / "unfinished"):
        folder.mkdir()
        if folder.name == "unfinished":
            (folder / "0_baseline_seed0" / ".hydra").mkdir(parents=True)
        with pytest.raises(SystemExit) as exit_info:
            main([str(folder)])
        assert exit_info.value.code == 1
        err = capsys.readouterr().err
        assert err.startswith(
            f"error: {folder}: no metrics.json found under it (expected a multirun"
        )
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    only_corrupt = tmp_path / "only_corrupt"
    make_job(only_corrupt, 0, "baseline", 0, 0.8, 0.6).joinpath("metrics.json").write_text("{")
    with pytest.raises(SystemExit):
        main([str(only_corrupt)])
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert f"{only_corrupt / '0_baseline_seed0' / 'metrics.json'}: corrupt metrics.json" in err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "nope")])
    assert "is not a folder" in capsys.readouterr().err


def test_report_out_folder_is_created_and_a_file_is_refused(sweep, tmp_path, capsys):
    out = tmp_path / "docs" / "new"
    main([str(sweep), "--out", str(out)])
    assert {p.name for p in out.iterdir()} == {"report.md", "report.csv", "report.png"}
    taken = tmp_path / "a_file"
    taken.write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        main([str(sweep), "--out", str(taken)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: --out {taken}: is a file") and len(err.strip().splitlines()) == 1
    assert taken.read_text() == "x"


def job_with_config(sweep, name, seed, config, test_sets):
    """A job folder as a sweep leaves it: .hydra/config.yaml and metrics.json."""
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    full = {"cell": "baseline", "stage": "baseline", "seed": seed,
            "paths": {"output_dir": str(job)}, **config}  # fmt: skip
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(full))
    payload = {"stage": "baseline", "cell": "baseline", "seed": seed, "test_sets": test_sets}
    (job / "metrics.json").write_text(json.dumps(payload))
    return job


def scores(r1, mAP, mINP=0.3):
    return {"market1501": {"rank1": r1, "mAP": mAP, "mINP": mINP}}


def test_report_groups_by_setting_not_by_cell_name(tmp_path):
    sweep = tmp_path / "sweep"
    job_with_config(sweep, "0_baseline_seed0", 0, {"optim": {"lr": 3.5e-4}}, scores(0.8, 0.60))
    job_with_config(sweep, "1_baseline_seed1", 1, {"optim": {"lr": 3.5e-4}}, scores(0.8, 0.62))
    job_with_config(sweep, "2_baseline_seed0", 0, {"optim": {"lr": 1e-4}}, scores(0.7, 0.40))
    md = write_report(sweep).read_text()
    rows = list(csv.DictReader((sweep / "report.csv").read_text().splitlines()))
    assert [(r["row"], r["seeds"]) for r in rows] == [
        ("baseline [optim.lr=0.00035]", "2"),
        ("baseline [optim.lr=0.0001]", "1"),
    ]
    assert rows[0]["mAP"] == "61.0 ± 1.4"  # only the two seeds of lr=3.5e-4
    assert "## Settings that differ between rows" in md
    assert (
        "- optim.lr: baseline [optim.lr=0.00035]: 0.00035; baseline [optim.lr=0.0001]: 0.0001" in md
    )
    assert "paths.output_dir" not in md  # run-specific keys are not a setting


def test_report_refuses_a_seed_counted_twice(tmp_path, capsys):
    sweep = tmp_path / "two_sweeps"
    first = job_with_config(
        sweep, "0_baseline_seed0", 0, {"optim": {"lr": 3.5e-4}}, scores(0.8, 0.6)
    )
    second = job_with_config(
        sweep, "7_baseline_seed0", 0, {"optim": {"lr": 3.5e-4}}, scores(0.8, 0.7)
    )
    with pytest.raises(SystemExit) as exit_info:
        main([str(sweep)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"row baseline: seed 0 appears twice, in {first} and {second}" in err
    assert not (sweep / "report.md").exists()


def test_report_lists_a_nan_metric_and_marks_single_seed_deltas(tmp_path):
    sweep = tmp_path / "sweep"
    make_job(sweep, 0, "baseline", 0, 0.80, 0.60)
    make_job(sweep, 1, "baseline", 1, 0.82, float("nan"))
    make_job(sweep, 2, "warmup", 0, 0.90, 0.70)
    md = write_report(sweep).read_text()
    rows = list(csv.DictReader((sweep / "report.csv").read_text().splitlines()))
    assert [(r["row"], r["seeds"]) for r in rows] == [("baseline", "1"), ("warmup", "1")]
    assert "1_baseline_seed1: test_sets.market1501.mAP=nan (left out of the means)" in md
    # One seed per row: the noise is unknown, so the change is neither "~" nor significant.
    assert rows[1]["Δ mAP"] == "+10.0 ?" and rows[1]["Δ rank1"] == "+10.0 ?"


def test_report_has_a_column_group_per_test_set_with_trial_means(tmp_path):
    sweep = tmp_path / "sweep"
    for seed, (m_market, m_duke) in enumerate([(0.60, 0.30), (0.64, 0.34)]):
        for num, (cell, shift) in enumerate((("baseline", 0.0), ("warmup", 0.1))):
            market = {"rank1": 0.8 + shift, "mAP": m_market + shift, "mINP": 0.2 + shift,
                      "trials": 3, "std": {"mAP": 0.01}, "per_trial": [{"mAP": 0.5}] * 3}  # fmt: skip
            duke = {"rank1": 0.5, "mAP": m_duke + shift / 10, "mINP": 0.1}
            job = sweep / f"{2 * num + seed}_{cell}_seed{seed}"
            (job / ".hydra").mkdir(parents=True)
            payload = {"cell": cell, "stage": cell, "seed": seed, "train_sets": ["market1501"],
                       "test_sets": {"market1501": market, "dukemtmc": duke}}  # fmt: skip
            (job / "metrics.json").write_text(json.dumps(payload))
    write_report(sweep)
    rows = list(csv.DictReader((sweep / "report.csv").read_text().splitlines()))
    assert [r["row"] for r in rows] == ["baseline", "warmup"]
    for test_set in ("market1501", "dukemtmc"):
        for key in ("rank1", "mAP", "mINP"):
            assert f"{test_set} {key}" in rows[0] and f"{test_set} Δ {key}" in rows[0]
    std = 100 * statistics.stdev([0.60, 0.64])
    assert rows[0]["market1501 mAP"] == f"62.0 ± {std:.1f}"  # the trial means, over seeds
    assert rows[1]["market1501 Δ mAP"] == "+10.0"  # beyond the noise
    assert rows[1]["dukemtmc Δ mAP"] == "+1.0 ~"  # within it
    assert rows[0]["market1501 mINP"] == "20.0 ± 0.0"
    assert rows[0]["market1501 paper R1/mAP"] == "87.7 / 74.0"
    assert rows[0]["dukemtmc paper R1/mAP"] == ""  # trained on Market-1501: cross-domain


def test_the_cell_name_is_a_label_not_a_setting(tmp_path):
    """Sweeps gathered in one report may name their cells with a template (cell: "${stage}_lr")
    or literally: what differs is listed (stage), not the cell's text as if it were a setting."""
    sweep = tmp_path / "sweep"
    for i, (stage, cell) in enumerate([("baseline", "${stage}_lr"), ("warmup", "warmup_lr")]):
        config = {"cell": cell, "stage": stage}
        job = job_with_config(sweep, f"{i}_{stage}_seed0", 0, config, scores(0.8, 0.6))
        payload = json.loads((job / "metrics.json").read_text())
        (job / "metrics.json").write_text(json.dumps({**payload, "cell": f"{stage}_lr"}))
    md = write_report(sweep).read_text()
    assert '- stage: baseline_lr: "baseline"; warmup_lr: "warmup"' in md
    assert "- cell:" not in md


def test_several_test_sets_give_one_column_pair_per_set_and_a_panel_each(tmp_path):
    sweep = tmp_path / "transfer"
    for num, (cell, base) in enumerate((("baseline", 0.20), ("bot", 0.30))):
        job = sweep / f"{num}_{cell}"
        (job / ".hydra").mkdir(parents=True)
        sets = {
            name: {"rank1": base + 0.1 * i, "mAP": base + 0.1 * i + 0.05, "mINP": 0.1}
            for i, name in enumerate(("cuhk03", "viper", "ilids"))
        }
        payload = {"cell": cell, "seed": 0, "train_sets": ["cuhk03"], "test_sets": sets}
        (job / "metrics.json").write_text(json.dumps(payload))
    md = write_report(sweep).read_text()
    header = next(line for line in md.splitlines() if line.startswith("| row"))
    assert "viper R1 / mAP" in header and "viper Δ mAP" in header and "mINP" not in header
    bot = next(line for line in md.splitlines() if line.startswith("| bot"))
    # the last pair is i-LIDS: rank-1 0.3 + 0.2, mAP 0.55, Δ mAP from the baseline's 0.45
    assert bot.endswith("| 50.0 / 55.0 | +10.0 ? |")
    rows = list(csv.DictReader((sweep / "report.csv").read_text().splitlines()))
    assert rows[1]["ilids mINP"] == "10.0" and rows[1]["ilids Δ rank1"] == "+10.0 ?"
    assert (sweep / "report.png").stat().st_size > 1000


def test_delta_from_names_the_reference_row(tmp_path, capsys):
    # a leave-one-out study: every row's delta from the full BoT, not from the row above it
    sweep = tmp_path / "loo"
    for num, (cell, mAP) in enumerate((("baseline", 0.20), ("bot", 0.30), ("bot_no_a", 0.25),
                                       ("bot_no_b", 0.40))):  # fmt: skip
        make_job(sweep, num, cell, 0, 0.5, mAP)
    main([str(sweep), "--delta-from", "bot"])
    rows = list(csv.DictReader((sweep / "report.csv").read_text().splitlines()))
    assert [r["Δ mAP"] for r in rows] == ["-10.0 ?", "", "-5.0 ?", "+10.0 ?"]
    assert "Δ: change from the row bot" in (sweep / "report.md").read_text()
    with pytest.raises(SystemExit):
        main([str(sweep), "--delta-from", "nope"])
    assert "--delta-from nope: no such row (rows: baseline, bot, bot_no_a, bot_no_b)" in (
        capsys.readouterr().err
    )


def two_set_scores(r1, mAP):
    return {"cuhk03": {"rank1": r1, "mAP": mAP, "mINP": mAP / 2},
            "viper": {"rank1": r1 / 2, "mAP": mAP / 2, "mINP": mAP / 2}}  # fmt: skip


def loo_sweep(root, seed, scores_by_cell):
    """A leave-one-out sweep of one seed: job folders with metrics.json and .hydra/config.yaml."""
    for num, (cell, (r1, mAP)) in enumerate(scores_by_cell.items()):
        job = root / f"{num}_{cell}_seed{seed}"
        (job / ".hydra").mkdir(parents=True)
        config = {"cell": cell, "seed": seed, "knob": cell}  # one setting per cell
        (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
        payload = {"cell": cell, "seed": seed, "train_sets": ["cuhk03"],
                   "test_sets": two_set_scores(r1, mAP)}  # fmt: skip
        (job / "metrics.json").write_text(json.dumps(payload))
    return root


def test_several_sweeps_pool_their_seeds_and_refuse_a_seed_twice(tmp_path, capsys):
    a = loo_sweep(tmp_path / "a", 0, {"bot": (0.30, 0.20), "bot_no_x": (0.40, 0.26)})
    b = loo_sweep(tmp_path / "b", 1, {"bot": (0.34, 0.22), "bot_no_x": (0.38, 0.30)})
    out = tmp_path / "pooled"
    main([str(a), str(b), "--out", str(out), "--delta-from", "bot"])
    rows = {r["row"]: r for r in csv.DictReader((out / "report.csv").read_text().splitlines())}
    assert rows["bot"]["seeds"] == "2"
    std = 100 * statistics.stdev([0.26, 0.30])
    assert rows["bot_no_x"]["cuhk03 mAP"] == f"28.0 ± {std:.1f}"
    # delta 28.0 - 21.0 = 7.0, noise hypot(2.8, 1.4) = 3.2: beyond the noise, so no mark
    assert rows["bot_no_x"]["cuhk03 Δ mAP"] == "+7.0"
    with pytest.raises(SystemExit):
        main([str(a), str(a), "--out", str(out)])
    assert "seed 0 appears twice" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(a), str(b)])  # where would the pooled report go?
    assert "--out: needed with several inputs" in capsys.readouterr().err


def test_an_earlier_one_seed_report_csv_pools_with_new_jobs(tmp_path, capsys):
    # seed 0's job folders are gone, its report.csv was kept; seed 1 ran later
    old = loo_sweep(tmp_path / "old", 0, {"bot": (0.301, 0.204), "bot_no_x": (0.402, 0.263)})
    main([str(old)])
    kept = tmp_path / "seed0_report.csv"
    kept.write_text((old / "report.csv").read_text())
    new = loo_sweep(tmp_path / "new", 1, {"bot": (0.34, 0.22), "bot_no_x": (0.38, 0.30),
                                         "bot_no_y": (0.2, 0.1)})  # fmt: skip
    out = tmp_path / "pooled"
    main([str(new), str(kept), "--out", str(out)])
    rows = {r["row"]: r for r in csv.DictReader((out / "report.csv").read_text().splitlines())}
    assert [r for r in rows] == ["bot", "bot_no_x", "bot_no_y"]  # the sweep's order
    assert rows["bot_no_x"]["seeds"] == "2" and rows["bot_no_y"]["seeds"] == "1"
    # the CSV keeps 0.1 points: seed 0's 26.3 and seed 1's 30.0
    mean, std = statistics.fmean([26.3, 30.0]), statistics.stdev([26.3, 30.0])
    assert rows["bot_no_x"]["cuhk03 mAP"] == f"{mean:.1f} ± {std:.1f}"
    assert rows["bot_no_x"]["viper rank1"] == f"{(20.1 + 19.0) / 2:.1f} ± " + (
        f"{statistics.stdev([20.1, 19.0]):.1f}"
    )
    assert "and 1 earlier report.csv" in (out / "report.md").read_text()
    # a pooled report (two seeds per row) cannot be pooled again: its seeds' values are gone
    with pytest.raises(SystemExit):
        main([str(new), str(out / "report.csv"), "--out", str(tmp_path / "again")])
    err = capsys.readouterr().err
    assert "report.csv:2: row bot has 2 seeds; only one-seed rows can be pooled" in err


def test_delta_chart_holds_each_rows_map_change_and_noise(tmp_path):
    from reidtricks.reports.report_csv import pool_rows
    from reidtricks.reports.rows import Row
    from reidtricks.reports.study_plots import mAP_deltas

    def row(name, maps):  # one test set, two seeds
        return Row(name, "cuhk03", {"viper": {"mAP": list(maps)}}, [0, 1])

    rows = [
        row("bot", (0.20, 0.22)),
        row("bot_no_x", (0.30, 0.26)),
        row("bot_no_x+rerank", (0.4, 0.4)),
    ]
    deltas = mAP_deltas(pool_rows(rows, []), "bot")
    assert list(deltas) == ["bot_no_x"]  # neither the reference nor a test-time variant
    delta, noise = deltas["bot_no_x"]["viper"]
    assert delta == pytest.approx((0.30 + 0.26) / 2 - (0.20 + 0.22) / 2)
    s_row, s_ref = statistics.stdev([0.30, 0.26]), statistics.stdev([0.20, 0.22])
    assert noise == pytest.approx((s_row**2 + s_ref**2) ** 0.5)
    # the CLI writes the chart with --delta-from
    a = loo_sweep(tmp_path / "a", 0, {"bot": (0.30, 0.20), "bot_no_x": (0.40, 0.26)})
    main([str(a), "--delta-from", "bot"])
    assert (a / "report_delta.png").stat().st_size > 1000


def test_one_cell_on_two_training_sets_is_two_rows_by_its_own_name(tmp_path):
    # the same cell trained on CUHK03 alone and on CUHK03 + 3DPeS (another train_sources config),
    # two seeds each; an earlier report.csv adds seed 2 of the multi-source row
    sweep = tmp_path / "sweep"
    for seed, sets, mAP in [(0, ["cuhk03"], 0.20), (1, ["cuhk03"], 0.22),
                            (0, ["cuhk03", "threedpes"], 0.30), (1, ["cuhk03", "threedpes"], 0.34)]:  # fmt: skip
        job = sweep / f"{len(sets)}_baseline_seed{seed}"
        (job / ".hydra").mkdir(parents=True)
        sources = {name: {"combineall": name != "cuhk03"} for name in sets}
        config = {"cell": "baseline", "seed": seed, "data": {"train_sources": sources}}
        (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
        payload = {"cell": "baseline", "seed": seed, "train_sets": sets,
                   "test_sets": two_set_scores(0.5, mAP)}  # fmt: skip
        (job / "metrics.json").write_text(json.dumps(payload))
    earlier = tmp_path / "seed2_report.csv"
    earlier.write_text(
        "row,trained on,seeds,cuhk03 rank1,cuhk03 mAP\nbaseline,cuhk03+threedpes,1,50.0,38.0\n"
    )
    out = tmp_path / "pooled"
    main([str(sweep), str(earlier), "--out", str(out)])
    rows = list(csv.DictReader((out / "report.csv").read_text().splitlines()))
    assert [(r["row"], r["trained on"], r["seeds"]) for r in rows] == [
        ("baseline", "cuhk03", "2"),
        ("baseline", "cuhk03+threedpes", "3"),
    ]
    assert rows[0]["cuhk03 mAP"] == f"21.0 ± {100 * statistics.stdev([0.20, 0.22]):.1f}"
    assert rows[1]["cuhk03 mAP"] == f"34.0 ± {100 * statistics.stdev([0.30, 0.34, 0.38]):.1f}"
    md = (out / "report.md").read_text()
    assert (
        "- data.train_sources.threedpes.combineall: baseline (on cuhk03): -; baseline (on cuhk03+threedpes): true"
        in md
    )


def viper_split(split):
    source = {"_target_": "reidtricks.data.datasets.VIPeR", "root": "/d", "split": split}
    return {"data": {"train_sources": {"viper": source}, "test_sources": {"viper": source}}}


def test_one_model_per_split_pools_as_mean_and_std_over_the_splits(tmp_path):
    """The honest in-domain protocol of the small sets (a sweep over
    data.train_sources.NAME.split): one row, mean ± std over the splits; a split twice is refused."""
    sweep = tmp_path / "per_split"
    maps = [0.30, 0.36, 0.27]
    for split, mAP in enumerate(maps):
        job_with_config(sweep, f"{split}_baseline_seed0", 0, viper_split(split),
                        {"viper": {"rank1": 0.5, "mAP": mAP, "mINP": 0.1}})  # fmt: skip
    write_report(sweep)
    rows = list(csv.DictReader((sweep / "report.csv").read_text().splitlines()))
    assert [(r["row"], r["seeds"]) for r in rows] == [("baseline", "3")]
    mean, std = 100 * statistics.mean(maps), 100 * statistics.stdev(maps)
    assert rows[0]["mAP"] == f"{mean:.1f} ± {std:.1f}"
    job_with_config(sweep, "9_baseline_seed0", 0, viper_split(2),
                    {"viper": {"rank1": 0.5, "mAP": 0.2, "mINP": 0.1}})  # fmt: skip
    with pytest.raises(Exception, match="seed 0 with split viper=2 appears twice"):
        write_report(sweep)


def test_a_metric_beyond_one_is_a_corrupt_job_not_a_percentage(tmp_path):
    sweep = tmp_path / "edited"
    make_job(sweep, 0, "baseline", 0, 0.8, 0.6)
    job = make_job(sweep, 1, "baseline", 1, 0.8, 0.6)
    payload = json.loads((job / "metrics.json").read_text())
    payload["test_sets"]["market1501"]["mINP"] = 7.5  # hand-edited: a percentage, not a fraction
    (job / "metrics.json").write_text(json.dumps(payload))
    md = write_report(sweep).read_text()
    assert "mINP=7.5, expected a fraction in [0, 1]" in md
    rows = list(csv.DictReader((sweep / "report.csv").read_text().splitlines()))
    assert rows[0]["seeds"] == "1" and "750" not in md


def test_delta_from_a_row_whose_jobs_were_all_corrupt_says_so(tmp_path):
    sweep = tmp_path / "corrupt_row"
    make_job(sweep, 0, "baseline", 0, 0.8, 0.6)
    bad = make_job(sweep, 1, "bnneck", 0, 0.8, 0.6)
    (bad / "metrics.json").write_text("{not json")
    with pytest.raises(
        Exception, match=r"no such row .*1 job\(s\) were left out .*, the first: .*"
    ):
        write_report(sweep, delta_from="bnneck")


def test_a_study_on_unseen_sets_has_their_mean_per_seed_then_over_seeds(tmp_path):
    """Trained on cuhk03, tested on three other sets: the `mean` column averages each run's
    three mAPs, then takes mean ± std over the seeds, with its Δ and noise mark like any set."""
    sweep = tmp_path / "unseen"
    maps = {("recipe", 0): (0.30, 0.40, 0.20), ("recipe", 1): (0.32, 0.44, 0.20),
            ("no_x", 0): (0.20, 0.40, 0.15), ("no_x", 1): (0.22, 0.38, 0.17)}  # fmt: skip
    for num, ((cell, seed), per_set) in enumerate(maps.items()):
        job = sweep / f"{num}_{cell}_seed{seed}"
        (job / ".hydra").mkdir(parents=True)
        sets = {name: {"rank1": m / 2, "mAP": m, "mINP": 0.1}
                for name, m in zip(("viper", "ilids", "prid2011"), per_set, strict=True)}  # fmt: skip
        payload = {"cell": cell, "seed": seed, "train_sets": ["cuhk03"], "test_sets": sets}
        (job / "metrics.json").write_text(json.dumps(payload))
    main([str(sweep), "--delta-from", "recipe"])
    rows = {r["row"]: r for r in csv.DictReader((sweep / "report.csv").read_text().splitlines())}
    recipe = [statistics.fmean(maps["recipe", s]) for s in (0, 1)]  # 0.30, 0.32
    no_x = [statistics.fmean(maps["no_x", s]) for s in (0, 1)]  # 0.25, 0.2566...
    assert rows["recipe"]["mean mAP"] == (
        f"{100 * statistics.fmean(recipe):.1f} ± {100 * statistics.stdev(recipe):.1f}"
    )
    assert rows["recipe"]["mean rank1"].startswith(f"{50 * statistics.fmean(recipe):.1f} ± ")
    delta = 100 * (statistics.fmean(no_x) - statistics.fmean(recipe))
    assert rows["no_x"]["mean Δ mAP"] == f"{delta:+.1f}"  # -5.8, noise 1.5: beyond it
    md = (sweep / "report.md").read_text()
    assert "`mean`: each run's metrics averaged over the 3 test sets it never trained on" in md
    assert "mean R1 / mAP" in md.splitlines()[4]
    # one of the test sets trained on: no mean (in-domain and unseen do not average)
    payload = json.loads((sweep / "0_recipe_seed0" / "metrics.json").read_text())
    payload["train_sets"] = ["viper"]
    (sweep / "0_recipe_seed0" / "metrics.json").write_text(json.dumps(payload))
    main([str(sweep)])
    assert "mean mAP" not in (sweep / "report.csv").read_text().splitlines()[0]
