"""Hydra composition: the trick chain, the studies, the SLURM launcher."""

from __future__ import annotations

import pytest
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from helpers import compose_train

STAGES = ["baseline", "warmup", "rea", "label_smooth", "last_stride", "bnneck", "center_loss"]
# What each stage must change relative to its predecessor (docs/METHOD.md), besides `stage` itself.
OWN_KEYS = {
    "warmup": {"optim.warmup": True},
    "rea": {"data.transform.erasing_prob": 0.5},
    "label_smooth": {"loss.label_smoothing": 0.1},
    "last_stride": {"model.last_stride": 1},
    "bnneck": {"model.neck": "bnneck", "eval.feature": "after_bn", "eval.metric": "cosine"},
    "center_loss": {"loss.center_weight": 0.0005},
    "rerank": {"eval.rerank": True},
}


def flatten(node, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def flat_config(*overrides: str) -> dict[str, object]:
    return flatten(OmegaConf.to_container(compose_train(*overrides), resolve=False))


def test_baseline_matches_the_paper_standard_baseline():
    cfg = compose_train()
    assert cfg.stage == "baseline"
    assert cfg.model.backbone == "resnet50" and cfg.model.pretrained is True
    assert cfg.model.last_stride == 2 and cfg.model.neck == "none"
    assert (cfg.data.sampler.p, cfg.data.sampler.k) == (16, 4)
    t = cfg.data.transform
    assert (t.height, t.width, t.flip_prob, t.pad, t.erasing_prob) == (256, 128, 0.5, 10, 0.0)
    assert list(t.erasing_area) == [0.02, 0.4] and list(t.erasing_aspect) == [0.3, 3.33]
    assert cfg.optim.optimizer._target_ == "torch.optim.Adam"
    assert (cfg.optim.lr, cfg.optim.weight_decay) == (3.5e-4, 5e-4)
    assert list(cfg.optim.milestones) == [40, 70] and cfg.optim.gamma == 0.1
    assert cfg.optim.warmup is False and cfg.optim.warmup_epochs == 10
    assert cfg.optim.warmup_start_factor == 0.01
    assert (cfg.loss.label_smoothing, cfg.loss.triplet_margin, cfg.loss.center_weight) == (
        0.0,
        0.3,
        0.0,
    )
    assert cfg.loss.triplet_normalize is False and cfg.loss.center_lr == 0.5
    assert (cfg.trainer.max_epochs, cfg.trainer.check_val_every_n_epoch) == (120, 40)
    assert cfg.trainer.use_distributed_sampler is False
    assert (cfg.eval.feature, cfg.eval.metric, cfg.eval.rerank) == ("before_bn", "euclidean", False)
    assert (cfg.eval.k1, cfg.eval.k2, cfg.eval.lambda_value) == (20, 6, 0.3)


@pytest.mark.parametrize("index", range(1, len(STAGES) + 1))
def test_each_stage_changes_only_its_own_keys(index):
    stages = [*STAGES, "rerank"]
    stage, previous = stages[index], stages[index - 1]
    before = flat_config() if previous == "baseline" else flat_config(f"+trick={previous}")
    after = flat_config(f"+trick={stage}")
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed == {"stage", *OWN_KEYS[stage]}
    for key, value in OWN_KEYS[stage].items():
        assert after[key] == value
    assert after["stage"] == stage


def test_full_bot_has_every_trick_and_knobs_stay_overridable():
    cfg = compose_train("+trick=center_loss", "optim.warmup=false", "model.last_stride=2")
    assert cfg.optim.warmup is False and cfg.model.last_stride == 2  # leave-one-out runs
    assert cfg.data.transform.erasing_prob == 0.5 and cfg.loss.label_smoothing == 0.1
    assert cfg.model.neck == "bnneck" and cfg.loss.center_weight == 0.0005


def test_unknown_trick_is_a_clear_error():
    with pytest.raises(MissingConfigException, match="trick/warmpu"):
        compose_train("+trick=warmpu")


def test_trick_overrides_win_over_an_experiment():
    cfg = compose_train("experiment=demo", "+trick=bnneck")
    assert cfg.data.train_sources.synthetic.preset == "small"
    assert cfg.model.backbone == "resnet18" and cfg.model.neck == "bnneck"
    assert cfg.optim.warmup is True and cfg.optim.warmup_epochs == 3  # demo keeps its length


@pytest.mark.parametrize(
    ("experiment", "sweep_keys"),
    [
        ("ablation", {"+trick"}),
        ("ablation_demo", {"+trick", "seed"}),
        ("bnneck_metrics", set()),
        ("cross_domain", {"data", "+trick"}),
        ("batch_size", {"data.sampler"}),
        ("image_size", {"data.transform"}),
        ("backbones", {"model"}),
        ("ablation_cuhk03", {"+trick"}),
        ("ablation_cuhk03_long", {"+trick"}),
        ("bnneck_metrics_cuhk03", set()),
    ],
)
def test_studies_compose(experiment, sweep_keys):
    cfg = compose_train(f"experiment={experiment}", hydra_cfg=True)
    assert set(cfg.hydra.sweeper.params or {}) == sweep_keys


def test_batch_size_grid_is_the_papers():
    cfg = compose_train("experiment=batch_size", hydra_cfg=True)
    cells = cfg.hydra.sweeper.params["data.sampler"].replace(" ", "").split("},{")
    pairs = {tuple(int(v.split(":")[1]) for v in c.strip("{}").split(",")) for c in cells}
    expected = {(p, k) for p in (4, 8, 16, 32) for k in (2, 4, 6, 8) if p * k <= 128}
    assert pairs == expected


def test_cross_domain_tests_on_both_datasets():
    cfg = compose_train("experiment=cross_domain", "data=dukemtmc")
    assert set(cfg.data.train_sources) == {"dukemtmc"}
    assert set(cfg.data.test_sources) == {"market1501", "dukemtmc"}


def test_slurm_launcher_composes():
    cfg = compose_train("hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", hydra_cfg=True)
    launcher = cfg.hydra.launcher
    assert "submitit" in launcher._target_.lower()
    assert launcher.gpus_per_node == 4 and launcher.tasks_per_node == 4 and launcher.nodes == 1


def test_ddp_cpu_trainer_uses_gloo():
    cfg = compose_train("trainer=ddp_cpu")
    assert cfg.trainer.strategy.process_group_backend == "gloo" and cfg.trainer.devices == 2


@pytest.mark.parametrize("experiment", ["cuhk03_cpu", "ablation_cuhk03", "bnneck_metrics_cuhk03"])
def test_real_image_experiments_use_imagenet_mobilenetv2_on_cuhk03(experiment):
    cfg = compose_train(f"experiment={experiment}", hydra_cfg=True)
    assert cfg.model.backbone == "timm:mobilenetv2_100"
    assert cfg.model.pretrained_path.endswith("mobilenetv2_100.pt")
    assert cfg.data.train_sources.cuhk03.variant == "labeled"
    assert (cfg.data.transform.height, cfg.data.transform.width) == (128, 64)
    # The paper's schedule shape scaled from 120 to 12 epochs.
    assert (cfg.trainer.max_epochs, list(cfg.optim.milestones)) == (12, [4, 7])
    if experiment != "cuhk03_cpu":  # the studies: two 1-thread jobs at a time
        assert cfg.threads == 1 and cfg.data.loader.num_workers == 0
        assert cfg.hydra.launcher.n_jobs == 2


def test_long_cuhk03_ablation_scales_the_schedule_by_two_and_a_half():
    cfg = compose_train("experiment=ablation_cuhk03_long", "+trick=warmup", hydra_cfg=True)
    assert (cfg.trainer.max_epochs, list(cfg.optim.milestones)) == (30, [10, 18])
    assert cfg.optim.warmup is True and cfg.optim.warmup_epochs == 3
    assert cfg.task_name == "ablation_cuhk03_long" and cfg.threads == 1
    assert cfg.model.backbone == "timm:mobilenetv2_100" and cfg.hydra.launcher.n_jobs == 2
