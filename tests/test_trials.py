"""Random-split trials: which splits are scored, one feature pass over their union, each trial
scored as its own query/gallery set (checked against a per-query NumPy reference), mean and std."""

from __future__ import annotations

import io
import statistics
from dataclasses import replace

import numpy as np
import pytest
import torch
from rich.console import Console

from reference import evaluate_per_query
from reidtricks.data.datamodule import ReIDDataModule
from reidtricks.data.datasets import SyntheticReID
from reidtricks.data.trials import check_trials, select_splits
from reidtricks.errors import InputError
from reidtricks.evaluation.evaluator import Evaluator
from reidtricks.evaluation.settings import EvalConfig
from reidtricks.models import ReIDOutput
from reidtricks.reports.tables import results_table
from trial_data import TrialSynthetic

METRICS = ("rank1", "rank5", "rank10", "mAP", "mINP")


def test_trials_select_the_configured_all_first_n_or_listed_splits():
    assert select_splits(None, 10, 4, "trials", "viper") == [4]
    assert select_splits("all", 10, 4, "trials", "viper") == list(range(10))
    assert select_splits(3, 10, 4, "trials", "viper") == [0, 1, 2]
    assert select_splits(10, 10, 0, "trials", "viper") == list(range(10))
    assert select_splits([7, 2], 10, 0, "trials", "viper") == [7, 2]


@pytest.mark.parametrize("value", [0, -2, True, 2.5, "some", "", [], [1, 1], [-1], ["a"]])
def test_bad_trials_are_one_line_errors_naming_the_key(value):
    with pytest.raises(InputError, match=r"^trials=") as err:
        check_trials(value, "trials")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("value", "message"), [
    (11, r"^trials=11: test set viper has 10 splits; expected all or a number 1..10$"),
    ([3, 10], r"^trials=\[3, 10\]: test set viper has splits 0..9, not \[10\]$"),
])  # fmt: skip
def test_trials_beyond_the_splits_are_refused(value, message):
    with pytest.raises(InputError, match=message):
        select_splits(value, 10, 0, "trials", "viper")


def trial_datamodule(root, test_trials) -> ReIDDataModule:
    synthetic = SyntheticReID(root, preset="tiny")
    module = ReIDDataModule(
        train_sources={"synthetic": synthetic},
        test_sources={"trio": TrialSynthetic(root), "synthetic": synthetic},
        sampler={"p": 2, "k": 2},
        transform={"height": 16, "width": 8},
        loader={"num_workers": 0},
        seed=0,
        verify_images=False,
        test_trials=test_trials,
    )
    module.setup()
    return module


def test_trial_sets_extract_the_union_of_their_trials_once(tiny_data_dir):
    module = trial_datamodule(tiny_data_dir, "all")
    trio, plain = module.test_sets
    assert [t.split for t in trio.trials] == [0, 1, 2] and plain.trials == ()
    union = set()
    for trial in trio.trials:
        alone = TrialSynthetic(tiny_data_dir, split=trial.split).load()
        assert (trial.query, trial.gallery) == (alone.query, alone.gallery)
        union |= {path for path, _, _ in alone.query + alone.gallery}
    paths = [path for path, _, _ in trio.items]
    assert len(paths) == len(set(paths)) and set(paths) == union
    assert len(paths) < sum(len(t.query) + len(t.gallery) for t in trio.trials)  # shared images
    assert (trio.query, trio.gallery) == (trio.trials[0].query, trio.trials[0].gallery)
    assert plain.items == plain.query + plain.gallery
    # null: the split the dataset entry names; a list: those splits; a number: the first N.
    assert [t.split for t in trial_datamodule(tiny_data_dir, None).test_sets[0].trials] == [0]
    assert [t.split for t in trial_datamodule(tiny_data_dir, [2]).test_sets[0].trials] == [2]
    assert [t.split for t in trial_datamodule(tiny_data_dir, 2).test_sets[0].trials] == [0, 1]
    with pytest.raises(InputError, match=r"^data.test_trials=4: test set trio has 3 splits"):
        trial_datamodule(tiny_data_dir, 4)


def test_statistics_show_one_table_per_set_and_its_number_of_trials(tiny_data_dir):
    text = trial_datamodule(tiny_data_dir, "all").statistics()
    first = TrialSynthetic(tiny_data_dir, split=0).load().statistics_table()
    assert text.count(first) == 1 and "(+ 2 more trials)" in text
    assert text.count("\ntrialsyn\n") + text.startswith("trialsyn\n") == 1


def reference_metrics(feats: dict[str, np.ndarray], query, gallery, metric: str) -> dict:
    """One trial scored alone: distances written out, then the per-query NumPy reference."""
    qf = np.stack([feats[path] for path, _, _ in query]).astype(np.float64)
    gf = np.stack([feats[path] for path, _, _ in gallery]).astype(np.float64)
    if metric == "cosine":
        qf = qf / np.linalg.norm(qf, axis=1, keepdims=True)
        gf = gf / np.linalg.norm(gf, axis=1, keepdims=True)
        dist = 1 - qf @ gf.T
    else:
        dist = ((qf[:, None, :] - gf[None, :, :]) ** 2).sum(-1)
    labels = [np.array([item[i] for item in items]) for items in (query, gallery) for i in (1, 2)]
    cmc, ap, inp, _ = evaluate_per_query(dist, labels[0], labels[2], labels[1], labels[3])
    return {"rank1": cmc[0], "rank5": cmc[4], "rank10": cmc[9], "mAP": ap, "mINP": inp}


def test_each_trial_scores_as_its_own_test_set_from_one_pass(tiny_data_dir):
    module = trial_datamodule(tiny_data_dir, "all")
    all_items = [item for test_set in module.test_sets for item in test_set.items]
    rng = np.random.default_rng(0)
    # Noisy features around one centre per identity, so that ranks are neither perfect nor random.
    centres = {pid: rng.normal(size=8) for _, pid, _ in all_items}
    feats = {path: centres[pid] + rng.normal(size=8) for path, pid, _ in all_items}
    table = torch.tensor(np.stack([feats[path] for path, _, _ in all_items]), dtype=torch.float32)

    def forward(images: torch.Tensor) -> ReIDOutput:  # an image carries its row of `table`
        rows = table[images[:, 0, 0, 0].long()]
        return ReIDOutput(rows, rows, rows)

    base = replace(EvalConfig(), feature="before_bn", metric="euclidean")
    evaluator = Evaluator(base, {"cos": replace(base, metric="cosine")})
    evaluator.start(module.test_sets, "cpu")
    offset = 0
    for idx, test_set in enumerate(module.test_sets):
        n = len(test_set.items)
        for start in range(0, n, 7):  # batches of 7, in dataset order
            index = torch.arange(start, min(start + 7, n))
            images = (offset + index).float().view(-1, 1, 1, 1).expand(-1, 3, 2, 2)
            pids = torch.tensor([test_set.items[i][1] for i in index])
            camids = torch.tensor([test_set.items[i][2] for i in index])
            evaluator.collect(forward, (images, pids, camids, index), idx)
        offset += n
    evaluator.finish(step=7, allow_partial=False)
    assert evaluator.has_features(7) and not evaluator.has_features(8)

    results = evaluator.results()
    trio = module.test_sets[0]
    for setting, metric in (("", "euclidean"), ("cos", "cosine")):
        got = results[setting]["trio"]
        assert got["trials"] == 3 and [t["split"] for t in got["per_trial"]] == [0, 1, 2]
        expected = [reference_metrics(feats, t.query, t.gallery, metric) for t in trio.trials]
        for trial, want in zip(got["per_trial"], expected, strict=True):
            for key in METRICS:
                assert trial[key] == pytest.approx(want[key], abs=1e-6), (setting, key)
        for key in METRICS:
            values = [want[key] for want in expected]
            assert got[key] == pytest.approx(np.mean(values), abs=1e-6)
            assert got["std"][key] == pytest.approx(statistics.stdev(values), abs=1e-6)
        assert 0 < got["mAP"] < 1
        plain = results[setting]["synthetic"]  # a set without trials keeps its plain format
        assert "trials" not in plain and "std" not in plain
        want = reference_metrics(feats, module.test_sets[1].query, module.test_sets[1].gallery,
                                 metric)  # fmt: skip
        assert plain["mAP"] == pytest.approx(want["mAP"], abs=1e-6)


def test_results_table_shows_mean_and_std_of_trials():
    trial_set = {"rank1": 0.5, "rank5": 0.6, "rank10": 0.7, "mAP": 0.4, "mINP": 0.2, "trials": 3,
                 "std": {"rank1": 0.1, "rank5": 0.0, "rank10": 0.0, "mAP": 0.05, "mINP": 0.0}}  # fmt: skip
    plain = {"rank1": 0.9, "rank5": 1.0, "rank10": 1.0, "mAP": 0.8, "mINP": 0.7}
    console = Console(file=io.StringIO(), width=200)
    console.print(results_table({"viper": trial_set, "market": plain}))
    lines = console.file.getvalue().splitlines()
    viper = next(i for i, line in enumerate(lines) if "viper" in line.split())
    assert lines[viper].split()[3::2] == ["50.00", "60.00", "70.00", "40.00", "20.00"]
    std_row = lines[viper + 1].split("±")  # the std over the trials, on the row below
    assert "std, 3 trials" in std_row[1]
    assert [cell.split()[0] for cell in std_row[2:]] == ["10.00", "0.00", "0.00", "5.00", "0.00"]
    market = next(i for i, line in enumerate(lines) if "market" in line.split())
    assert lines[market].split()[3::2] == ["90.00", "100.00", "100.00", "80.00", "70.00"]
    assert "±" not in lines[market + 1]


@pytest.mark.slow
def test_training_and_evaluate_report_every_trial(tiny_data_dir, tmp_path, capsys, monkeypatch):
    """A run testing on a set with random splits (data.test_trials=all) writes mean, std and every
    trial; `evaluate ... trials=` scores the same weights alike, and trials=[1] that trial alone."""
    import json

    from helpers import compose_evaluate, compose_train, tiny_overrides
    from reidtricks.cli.evaluate import evaluate_checkpoint
    from reidtricks.cli.train import train

    monkeypatch.setenv("COLUMNS", "200")  # the printed table on one line per set
    trio = f"{{_target_: trial_data.TrialSynthetic, root: '{tiny_data_dir}'}}"
    overrides = [*tiny_overrides(tiny_data_dir, tmp_path / "run"), "trainer.max_epochs=1",
                 "trainer.check_val_every_n_epoch=1", "++trainer.limit_train_batches=2",
                 f"+data.test_sources.trio={trio}", "data.test_trials=all"]  # fmt: skip
    metrics = train(compose_train(*overrides))
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    got = written["test_sets"]["trio"]
    assert got == metrics["test_sets"]["trio"]
    assert got["trials"] == 3 and [t["split"] for t in got["per_trial"]] == [0, 1, 2]
    for key in METRICS:
        values = [t[key] for t in got["per_trial"]]
        assert got[key] == pytest.approx(np.mean(values)) and 0 <= got[key] <= 1
        assert got["std"][key] == pytest.approx(statistics.stdev(values))
    assert "trials" not in written["test_sets"]["synthetic"]
    printed = capsys.readouterr().out.splitlines()
    row = next(i for i, line in enumerate(printed) if "trio" in line.split())
    assert f" {100 * got['mAP']:.2f} " in printed[row] and "std, 3 trials" in printed[row + 1]
    assert f"± {100 * got['std']['mAP']:.2f} " in printed[row + 1]

    data = ["data=synthetic", "data.train_sources.synthetic.preset=tiny",
            "data.loader.num_workers=0", "data.loader.persistent_workers=false",
            f"+data.test_sources.trio={trio}", "plot_queries=2"]  # fmt: skip
    # The same weights, without the test-only class in the stored config (which `evaluate`
    # refuses: a checkpoint may not name code); the user's data= may name it.
    stored = torch.load(metrics["checkpoint"], map_location="cpu", weights_only=True)
    del stored["reidtricks"]["config"]["data"]["test_sources"]["trio"]
    ckpt = tmp_path / "weights.ckpt"
    torch.save(stored, ckpt)
    again = evaluate_checkpoint(compose_evaluate(ckpt, tmp_path / "all", *data, "trials=all"))
    one = evaluate_checkpoint(compose_evaluate(ckpt, tmp_path / "one", *data, "trials=[1]"))
    for key in METRICS:
        assert again["test_sets"]["trio"][key] == pytest.approx(got[key], abs=1e-6)
        assert again["test_sets"]["synthetic"][key] == pytest.approx(
            written["test_sets"]["synthetic"][key], abs=1e-6
        )
        assert one["test_sets"]["trio"]["per_trial"][0][key] == pytest.approx(
            got["per_trial"][1][key], abs=1e-6
        )
    assert one["test_sets"]["trio"]["trials"] == 1
    assert (tmp_path / "all" / "ranked_trio.png").is_file()
    with pytest.raises(InputError, match=r"^trials=5: test set trio has 3 splits"):
        evaluate_checkpoint(compose_evaluate(ckpt, tmp_path / "bad", *data, "trials=5"))
    with pytest.raises(InputError, match=r"^trials='some': expected all"):
        evaluate_checkpoint(compose_evaluate(ckpt, tmp_path / "bad", *data, "trials=some"))


@pytest.mark.slow  # evaluates the trained checkpoint twice
def test_evaluate_on_a_test_only_folder(trained_ckpt, tiny_data_dir, tmp_path):
    """`evaluate ckpt=... data=folder` on a folder holding only query/ and bounding_box_test/
    scores it, as the same images under their own dataset class."""
    import shutil

    from helpers import compose_evaluate
    from reidtricks.cli.evaluate import evaluate_checkpoint

    (source,) = {p.parent for p in tiny_data_dir.rglob("query")}
    folder = tmp_path / "test_only"
    for name in ("query", "bounding_box_test"):
        shutil.copytree(source / name, folder / name)
    loader = ["data.loader.num_workers=0", "data.loader.persistent_workers=false"]
    got = evaluate_checkpoint(compose_evaluate(
        trained_ckpt, tmp_path / "folder", "data=folder", f"data.train_sources.folder.root={folder}",
        *loader,
    ))  # fmt: skip
    same = evaluate_checkpoint(compose_evaluate(
        trained_ckpt, tmp_path / "synthetic", "data=synthetic", f"paths.data_dir={tiny_data_dir}",
        "data.train_sources.synthetic.preset=tiny", *loader,
    ))  # fmt: skip
    assert list(got["test_sets"]) == ["folder"]
    for key in METRICS:
        assert got["test_sets"]["folder"][key] == pytest.approx(
            same["test_sets"]["synthetic"][key], abs=1e-6
        )
