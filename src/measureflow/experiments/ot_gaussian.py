"""Foundation experiment: W2 between Gaussians, closed form vs exact OT of samples.

Course notes arXiv 2505.06589 (Peyre, "Optimal Transport for Machine Learners"; locations below
refer to the version of the notes in the author's source repository, gpeyre/ot4ml, arxiv/). For
two Gaussians mu = N(m0, S0), nu = N(m1, S1) the squared distance W2^2(mu, nu) is the Bures
closed form (Chap. "Monge Problem between Measures", Sec. "Gaussian Measures and the Bures
Metric", Prop. "Gaussian W2 formula and Bures covariance term"). Replacing mu, nu by empirical
measures of n i.i.d. samples, the plug-in estimator W2^2(mu_n, nu_n) (exact LP) has an error
whose expectation the notes bound by n^{-1/d} for d > 2p = 4 (Chap. "Entropic Regularization:
Convergence", Sec. "Sample Complexity", Prop. "Empirical OT has intrinsic-dimension value
rates"); the sharp rate for the squared distance between distinct measures is n^{-1/2} +
n^{-2/d} (Chizat et al. 2020; Manole & Niles-Weed 2024): the n^{-1/2} fluctuation term dominates
for d < 4 and the n^{-2/d} bias term for d > 4. We fit the slope of the mean absolute error
against n on a log-log scale; each (d, n, replicate) is one task of ``cfg.map``.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.ticker import NullFormatter

from .. import ot
from ._rates import Z_CLAIM, bootstrap_slope
from .plotting import new_figure
from .registry import Claim, Outcome, experiment

NOTES = "arXiv:2505.06589"
_RATE_PROP = ("notes Chap. 'Entropic Regularization: Convergence', Sec. 'Sample Complexity', "
              "Prop. 'Empirical OT has intrinsic-dimension value rates'")


def _random_gaussian(d: int, g: torch.Generator):
    A = torch.randn(d, d, generator=g, dtype=torch.float64)
    S = A @ A.T / d + 0.5 * torch.eye(d, dtype=torch.float64)
    m = torch.randn(d, generator=g, dtype=torch.float64) * 0.5
    return m, S


def _sample(m, S, n, g=None):
    L = torch.linalg.cholesky(S)
    return m + torch.randn(n, len(m), generator=g, dtype=torch.float64) @ L.T


def _plugin_error(item):
    """Task: W2^2(mu_n, nu_n) - W2^2(mu, nu) for one draw of n samples of each Gaussian.

    ``item = (n, m0, S0, m1, S1, exact2)``; the samples come from the global torch generator,
    seeded per task by the runner. Returns (signed error, LP certificate valid).
    """
    n, m0, S0, m1, S1, exact2 = item
    x, y = _sample(m0, S0, n), _sample(m1, S1, n)
    C = torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist") ** 2  # no Gram cancellation
    res = ot.solve(None, None, C)
    return float(res.value) - exact2, bool(res.converged and res.certificate.valid)


def expected_slope(d: int) -> float:
    """Theoretical decay exponent of E|W2^2(mu_n, nu_n) - W2^2(mu, nu)| for mu != nu."""
    return -min(0.5, 2.0 / d)


@experiment("ot.gaussian-w2", paper=NOTES,
            section="Sec. 'Gaussian Measures and the Bures Metric' (Prop. 'Gaussian W2 "
                    "formula and Bures covariance term') and Sec. 'Sample Complexity'",
            title="W2 between Gaussians: Bures closed form vs exact OT of n samples",
            quick=dict(seed=0, dims=[2, 5, 10], ns=[50, 100, 200, 400, 800], reps=6),
            full=dict(seed=0, dims=[2, 3, 4, 5, 6, 7, 8, 9, 10],
                      ns=[50, 100, 200, 400, 800, 1600, 3200], reps=20))
def gaussian_w2(cfg):
    g = torch.Generator().manual_seed(cfg.seed)
    fig, ax = new_figure()
    metrics: dict = {"ns": cfg.ns, "dims": cfg.dims}
    claims = []
    fits = {}
    problems = {}
    for d in cfg.dims:
        m0, S0 = _random_gaussian(d, g)
        m1, S1 = _random_gaussian(d, g)
        problems[d] = (m0, S0, m1, S1, float(ot.bures_wasserstein(m0, S0, m1, S1)) ** 2)
    items = [(n, *problems[d]) for d in cfg.dims for n in cfg.ns for _ in range(cfg.reps)]
    results = iter(cfg.map(_plugin_error, items, cost=lambda it: it[0] ** 2))  # n x n LP
    for d in cfg.dims:
        exact2 = problems[d][-1]
        samples, signed, all_certified = [], [], True
        for _n in cfg.ns:
            errs = []
            for _ in range(cfg.reps):
                err, certified = next(results)
                errs.append(err)
                all_certified &= certified
            signed.append(errs)
            samples.append(np.abs(errs))
        fit = bootstrap_slope(cfg.ns, samples, seed=cfg.seed)
        # decomposition of the error: bias E[W2^2(mu_n, nu_n)] - W2^2 and fluctuation (sd)
        metrics[f"d{d}_bias"] = [float(np.mean(e)) for e in signed]
        metrics[f"d{d}_fluctuation_sd"] = [float(np.std(e, ddof=1)) for e in signed]
        fits[d] = fit
        errs = np.array([np.mean(s) for s in samples])
        sems = np.array([np.std(s, ddof=1) / np.sqrt(len(s)) for s in samples])
        metrics[f"d{d}_w2_squared_closed_form"] = exact2
        metrics[f"d{d}_mean_abs_error"] = errs.tolist()
        metrics[f"d{d}_slope"] = fit["slope"]
        metrics[f"d{d}_slope_se"] = fit["se"]
        ax.errorbar(cfg.ns, errs, yerr=sems, marker="o", capsize=2,
                    label=f"d={d}: slope {fit['slope']:.2f} +- {fit['se']:.2f} "
                          f"(theory {expected_slope(d):.2f})")
        claims.append(Claim.holds(f"d={d}: every exact OT solve carries a valid LP certificate "
                                  "(feasible plan, feasible duals, zero gap) [notes: Chap. "
                                  "'Dual Problem', Sec. 'Discrete dual']", all_certified))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # minor log labels overlap
    ax.set_xlabel("samples n per measure")
    ax.set_ylabel("E |W2^2(mu_n, nu_n) - W2^2(mu, nu)|")
    ax.set_title("plug-in W2^2 vs Bures closed form")
    ax.legend(fontsize=7)
    tol_rule = (f"tolerance = {Z_CLAIM:g} x the bootstrap standard error of the fitted slope "
                f"({cfg.reps} replicates per n, resampled at each n), rule fixed before the run")
    dlo, dhi = min(cfg.dims), max(cfg.dims)
    lo, hi = fits[dlo], fits[dhi]
    claims.append(Claim.close(
        f"d={dlo}: E|W2^2(mu_n, nu_n) - W2^2(mu, nu)| ~ n^-1/2 for distinct measures (the "
        f"fluctuation term; {_RATE_PROP}: 'the exponent changes in low dimension', the CLT "
        "rate n^-1/2 is del Barrio & Loubes 2019)", expected_slope(dlo), lo["slope"],
        atol=Z_CLAIM * lo["se"],
        note=f"slope {lo['slope']:.3f} +- {lo['se']:.3f}; {tol_rule}. Before issue 14 the "
             "tolerance was a fixed 0.2."))
    if dhi > 4:
        claims.append(Claim.at_most(
            f"d={dhi} > 2p: 'E|W_p(a_n, b_n) - W_p(a, b)| <~ n^(-1/d)' ({_RATE_PROP}): the "
            f"error of W2^2 decays at least like n^(-1/{dhi}) (fitted slope <= -1/d + "
            f"{Z_CLAIM:g} SE)", -1.0 / dhi + Z_CLAIM * hi["se"], hi["slope"],
            note=f"slope {hi['slope']:.3f} +- {hi['se']:.3f}; for W2^2 = W2 x W2 between "
                 "distinct measures the W2 rate carries over (|W^2 - W'^2| <= (W + W')|W - "
                 "W'|). The Prop. assumes densities bounded on a cube; Gaussians are not "
                 "compactly supported (the sharp rate below covers them)."))
        claims.append(Claim.close(
            f"d={dhi}: the error of W2^2 between distinct measures decays like n^(-2/d) = "
            f"n^{expected_slope(dhi):.2f} (sharp rate, Chizat et al. 2020; Manole & Niles-Weed "
            f"2024: it sharpens the bound n^(-1/d) of {_RATE_PROP})",
            expected_slope(dhi), hi["slope"], atol=Z_CLAIM * hi["se"],
            note=f"slope {hi['slope']:.3f} +- {hi['se']:.3f}; {tol_rule}. Before issue 14: "
                 "atol 0.2 around -0.2, which accepted a slope of 0 (no decay). At finite n the "
                 "n^-1/2 fluctuation term still adds to the n^(-2/d) bias, so the fitted slope "
                 "of their sum lies between -1/2 and -2/d: a failure with a steeper slope is "
                 f"that pre-asymptotic regime (bias and fluctuation per n: metrics d{dhi}_bias, "
                 f"d{dhi}_fluctuation_sd)."))
        diff = hi["slope"] - lo["slope"]
        se_diff = float(np.hypot(hi["se"], lo["se"]))
        claims.append(Claim.at_least(
            f"the curse of dimensionality ({_RATE_PROP}: 'exact OT deteriorates with the "
            f"intrinsic dimension'): the decay is slower in d={dhi} than in d={dlo} (slope "
            f"difference > {Z_CLAIM:g} combined SE)", Z_CLAIM * se_diff, diff,
            note=f"difference {diff:.3f} +- {se_diff:.3f}; before issue 14 the bound was 0"))
    return Outcome(metrics=metrics, figures={"error_vs_n": fig}, claims=claims)
