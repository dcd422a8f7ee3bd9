"""Foundation experiment: W2 between Gaussians, closed form vs exact OT of samples.

Course notes arXiv 2505.06589 (Bures-Wasserstein and the sample complexity of OT). For two
Gaussians mu = N(m0, S0), nu = N(m1, S1) the squared distance W2^2(mu, nu) is known in closed
form (Bures). Replacing mu, nu by empirical measures of n i.i.d. samples, the plug-in estimator
W2^2(mu_n, nu_n) (exact LP) converges with error of order n^{-1/2} + n^{-2/d} for distinct
measures (Chizat et al. 2020; Manole & Niles-Weed 2024, sharp rates for empirical OT): the
n^{-1/2} fluctuation term dominates for d < 4 and the n^{-2/d} bias term for d > 4 — the curse
of dimensionality. We fit the slope of the mean absolute error against n on a log-log scale.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.ticker import NullFormatter

from .. import ot
from ..core.stats import loglog_fit
from .plotting import new_figure
from .registry import Claim, Outcome, experiment


def _random_gaussian(d: int, g: torch.Generator):
    A = torch.randn(d, d, generator=g, dtype=torch.float64)
    S = A @ A.T / d + 0.5 * torch.eye(d, dtype=torch.float64)
    m = torch.randn(d, generator=g, dtype=torch.float64) * 0.5
    return m, S


def _sample(m, S, n, g):
    L = torch.linalg.cholesky(S)
    return m + torch.randn(n, len(m), generator=g, dtype=torch.float64) @ L.T


def expected_slope(d: int) -> float:
    """Theoretical decay exponent of E|W2^2(mu_n, nu_n) - W2^2(mu, nu)| for mu != nu."""
    return -min(0.5, 2.0 / d)


@experiment("ot.gaussian-w2", paper="arXiv:2505.06589",
            section="Gaussian OT (Bures) and sample complexity of W2",
            title="W2 between Gaussians: Bures closed form vs exact OT of n samples",
            quick=dict(seed=0, dims=[2, 5, 10], ns=[50, 100, 200, 400, 800], reps=6),
            full=dict(seed=0, dims=[2, 3, 4, 5, 6, 7, 8, 9, 10],
                      ns=[50, 100, 200, 400, 800, 1600, 3200], reps=20))
def gaussian_w2(cfg):
    g = torch.Generator().manual_seed(cfg.seed)
    fig, ax = new_figure()
    metrics: dict = {"ns": cfg.ns, "dims": cfg.dims}
    claims = []
    slopes = {}
    for d in cfg.dims:
        m0, S0 = _random_gaussian(d, g)
        m1, S1 = _random_gaussian(d, g)
        exact2 = float(ot.bures_wasserstein(m0, S0, m1, S1)) ** 2
        errs, sems = [], []
        all_certified = True
        for n in cfg.ns:
            e = []
            for _ in range(cfg.reps):
                x, y = _sample(m0, S0, n, g), _sample(m1, S1, n, g)
                res = ot.solve(None, None, torch.cdist(x, y) ** 2)
                all_certified &= bool(res.converged and res.certificate.valid)
                e.append(abs(float(res.value) - exact2))
            errs.append(float(np.mean(e)))
            sems.append(float(np.std(e, ddof=1) / np.sqrt(len(e))))
        fit = loglog_fit(cfg.ns, errs)
        slopes[d] = fit
        metrics[f"d{d}_w2_squared_closed_form"] = exact2
        metrics[f"d{d}_mean_abs_error"] = errs
        metrics[f"d{d}_slope"] = fit["slope"]
        metrics[f"d{d}_slope_se"] = fit["slope_se"]
        ax.errorbar(cfg.ns, errs, yerr=sems, marker="o", capsize=2,
                    label=f"d={d}: slope {fit['slope']:.2f} (theory {expected_slope(d):.2f})")
        claims.append(Claim.holds(f"d={d}: every exact OT solve carries a valid LP certificate "
                                  "(feasible plan, feasible duals, zero gap)", all_certified))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # minor log labels overlap
    ax.set_xlabel("samples n per measure")
    ax.set_ylabel("E |W2^2(mu_n, nu_n) - W2^2(mu, nu)|")
    ax.set_title("plug-in W2^2 vs Bures closed form")
    ax.legend(fontsize=7)
    dlo, dhi = min(cfg.dims), max(cfg.dims)
    claims.append(Claim.close(
        f"d={dlo}: the error decays like n^-1/2 (fluctuation term dominates for d < 4)",
        expected_slope(dlo), slopes[dlo]["slope"], atol=0.2,
        note=f"fitted slope standard error {slopes[dlo]['slope_se']:.3f}"))
    if dhi > 4:
        claims.append(Claim.close(
            f"d={dhi}: the error decays like n^(-2/d) = n^{expected_slope(dhi):.2f} "
            "(curse of dimensionality)", expected_slope(dhi), slopes[dhi]["slope"], atol=0.2,
            note=f"fitted slope standard error {slopes[dhi]['slope_se']:.3f}"))
        claims.append(Claim.at_least(
            f"the decay is slower in d={dhi} than in d={dlo} (slope difference > 0)", 0.0,
            slopes[dhi]["slope"] - slopes[dlo]["slope"]))
    return Outcome(metrics=metrics, figures={"error_vs_n": fig}, claims=claims)
