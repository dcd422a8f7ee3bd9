"""Diffusion sampler of a Gaussian from N samples (Hurault, Terris, Moreau, Peyre,
arXiv:2503.11615 v3, "From score matching to diffusion").

Only the abstract and the opening of the introduction of the paper were readable: its theorems,
constants and figures are not reproduced. What is checked here is (i) the abstract's statements
-- four error sources (generalization, optimization, discretization, minimal noise amplitude)
and "the Wasserstein sampling error can be expressed as a kernel-type norm of the data power
spectrum" -- through our derivation of that kernel (``sampling.diffusion_w2_error``,
docs/sampling.md), against Monte Carlo; and (ii) rates derived here (not the paper's stated
exponents, which were not readable). Every Monte Carlo sweep runs through ``cfg.map``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..ot import bures_wasserstein2
from ..sampling import (
    chain_w2_stats,
    diffusion_covariance,
    diffusion_pipeline,
    diffusion_w2_error,
    empirical_second_moments,
    vp_grid,
)
from ..sampling.gaussian import sgd_dsm
from ._sampling import argmin_interval, bonferroni_z, map_replicates, mean_se, power_spectrum
from .plotting import loglog_fit, new_figure
from .registry import Claim, Outcome, experiment

PAPER = "arXiv:2503.11615"
ABSTRACT = "Abstract (v3, 'From Score Matching to Diffusion')"
SCHEMES = [("sde", "euler"), ("sde", "exponential"), ("ode", "euler"), ("ode", "exponential"),
           ("ode", "heun")]
KERNEL_QUOTE = ("'the Wasserstein sampling error can be expressed as a kernel-type norm of the "
                "data power spectrum, where the specific kernel depends on the method "
                "parameters'")


def _task_generator() -> torch.Generator:
    """A generator seeded from the task's global torch state (set by the runner per task)."""
    return torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))


def _dataset_errors(item: dict) -> np.ndarray:
    """W2^2(target, exact output law) over ``reps`` independent datasets of N samples
    (closed-form scores at every level; the batched pipeline route)."""
    lam = torch.tensor(item["lam"], dtype=torch.float64)
    S = empirical_second_moments(lam, item["n"], item["reps"], seed=_task_generator())
    C = diffusion_covariance(S, sigma_min=item["sigma_min"], n_steps=item["n_steps"],
                             process=item["process"], scheme=item["scheme"],
                             T=item.get("T", 5.0), denoise=item["denoise"])
    z = torch.zeros(lam.numel(), dtype=torch.float64)
    return bures_wasserstein2(z, torch.diag(lam), z, C).numpy()


def _mc_mean(cfg, items: list[dict]):
    """Mean and standard error of W2^2 over datasets for each item."""
    return mean_se(map_replicates(cfg, _dataset_errors, items))


def _theory(lam, n, **kw):
    return diffusion_w2_error(np.asarray(lam), n_samples=n, **kw)


# ------------------------------------------------------------------------------------------
def _chain_task(item: dict) -> dict:
    lam = np.asarray(item["lam"])
    seed = int(torch.randint(0, 2**62, (1,)))
    n = item["chains"]
    r = diffusion_pipeline((lam, item["n"]), sigma_min=item["sigma_min"],
                           n_steps=item["n_steps"], process=item["process"],
                           scheme=item["scheme"], score=item["score"], n_chains=n, seed=seed)
    C = r.covariance
    emp = r.samples.T @ r.samples / n
    se = np.sqrt((C**2 + np.outer(np.diag(C), np.diag(C))) / n)
    iu = np.triu_indices(len(lam))
    z = (emp - C)[iu] / se[iu]
    out = dict(zmax=float(np.max(np.abs(z))), n_entries=len(z), w2=r.w2, w2_chains=r.w2_samples)
    if item["score"] == "exact":
        # the law commutes with Sigma: first-order chain bias and fluctuation in closed form
        c = np.diag(C)
        bias, sd = chain_w2_stats(lam, c, n)
        out.update(chain_bias=bias, w2_z=(r.w2_samples**2 - r.w2**2 - bias) / sd)
    return out


@experiment("sampling.diffusion-exact-vs-mc", paper=PAPER,
            section="Abstract v3 (diffusion sampler); Pierret & Galerne ICML 2025, abstract",
            title="Every diffusion scheme is a Gaussian linear map: exact law vs simulated chains",
            quick=dict(seed=0, d=6, alpha=1.0, n=500, sigma_min=0.05, n_steps=40, chains=4000),
            full=dict(seed=0, d=32, alpha=1.0, n=2000, sigma_min=0.05, n_steps=200,
                      chains=50000))
def diffusion_exact_vs_mc(cfg):
    lam = power_spectrum(cfg.d, cfg.alpha)
    items = [dict(lam=lam.tolist(), n=cfg.n, sigma_min=cfg.sigma_min, n_steps=cfg.n_steps,
                  process=p, scheme=s, score=sc, chains=cfg.chains)
             for sc in ("exact", "closed_form") for p, s in SCHEMES]
    res = cfg.map(_chain_task, items)
    m = sum(r["n_entries"] for r in res)
    zstar = bonferroni_z(m)
    zmax = max(r["zmax"] for r in res)
    w2z = [r["w2_z"] for r in res if "w2_z" in r]
    fig, ax = new_figure(2, 1)
    labels = [f"{it['process']}-{it['scheme']}" for it in items[:5]]
    for j, sc in enumerate(("exact", "closed_form")):
        rr = res[5 * j:5 * j + 5]
        x = np.arange(5) + 0.2 * j
        ax[0].plot(x, [r["w2"] ** 2 for r in rr], "o", color=f"C{j}",
                   label=f"exact law ({sc} score)")
        ax[0].plot(x, [r["w2_chains"] ** 2 for r in rr], "x", color=f"C{j}",
                   label=f"{cfg.chains} chains ({sc})")
    ax[0].set_xticks(np.arange(5), labels, fontsize=7)
    ax[0].set(ylabel="W2^2 to the target", yscale="log",
              title=f"d={cfg.d}, N={cfg.n}, K={cfg.n_steps}, sigma_min={cfg.sigma_min}")
    ax[0].legend(fontsize=6)
    ax[1].bar(np.arange(len(res)), [r["zmax"] for r in res])
    ax[1].axhline(zstar, color="k", ls=":")
    ax[1].set(xlabel="run (5 exact-score, then 5 learned-score)",
              ylabel="max |z| over covariance entries", title="chains vs exact law")
    claims = [
        Claim.at_most("Pierret & Galerne (ICML 2025, abstract): the backward SDE/ODE solutions "
                      "'and their discretizations are all Gaussian processes'; here every "
                      "scheme's output N(0, C), C from the product of its step maps, matches "
                      f"simulated chains (max entrywise |z| over {m} entries, 10 runs)",
                      zstar, zmax,
                      note=f"Bonferroni threshold {zstar:.2f}: family-wise false-alarm "
                           "probability 1e-3 for independent N(0,1) z-scores (standard error "
                           "of a Gaussian second moment sqrt((C_ij^2 + C_ii C_jj)/n))"),
        Claim.at_most("Derived: W2 of the chains' empirical covariance (ot.bures_wasserstein) = exact W2 "
                      "+ the chains' first-order sampling bias (exact score, 5 schemes; "
                      "max |z|)", bonferroni_z(5), float(np.max(np.abs(w2z))),
                      note="z = (W2^2(chains) - W2^2(exact) - bias_n) / sd, bias_n and sd from "
                           "the second-order Bures expansion in the chains' Wishart error "
                           "(derived, docs/sampling.md); threshold: false-alarm 1e-3 over 5. "
                           "The first run used only the linear part of sd and gave |z| = 9.6 "
                           "for ode-heun, whose law is within W2^2 = 3e-5 of the target: there "
                           "the linear weights vanish and the chi-square spread of the "
                           "quadratic part dominates; sd now includes it (configuration "
                           "unchanged)"),
    ]
    return Outcome(metrics=dict(runs=[dict(it, **r) for it, r in zip(items, res, strict=True)],
                                z_threshold=zstar),
                   figures={"exact_vs_mc": fig}, claims=claims)


# ------------------------------------------------------------------------------------------
@experiment("sampling.diffusion-error-vs-n", paper=PAPER,
            section="Abstract v3: generalization error of score matching (number of samples)",
            title="Diffusion sampler: W2^2 vs number of samples N, kernel-norm term vs MC",
            quick=dict(seed=0, d=8, alpha=1.0, sigma_min=0.05, n_steps=50, process="sde",
                       scheme="euler", ns=[50, 100, 200, 400, 800, 1600], reps=300),
            full=dict(seed=0, d=32, alpha=1.0, sigma_min=0.05, n_steps=200, process="sde",
                      scheme="euler", ns=[50, 100, 200, 400, 800, 1600, 3200, 6400],
                      reps=1000))
def diffusion_error_vs_n(cfg):
    lam = power_spectrum(cfg.d, cfg.alpha)
    kw = dict(sigma_min=cfg.sigma_min, n_steps=cfg.n_steps, process=cfg.process,
              scheme=cfg.scheme, denoise=False)
    th = [_theory(lam, n, **kw) for n in cfg.ns]
    bias = float(th[0].bias)
    m, se = _mc_mean(cfg, [dict(lam=lam.tolist(), n=n, reps=cfg.reps, **kw) for n in cfg.ns])
    gen_th = np.array([float(t.generalization) for t in th])
    gen_mc = m - bias
    z = np.abs(gen_mc - gen_th) / se
    big = [i for i, n in enumerate(cfg.ns) if n >= 200]
    fit_idx = [i for i, n in enumerate(cfg.ns) if n >= 100]
    fit = loglog_fit(np.array(cfg.ns)[fit_idx], np.maximum(gen_mc[fit_idx], 1e-300),
                     weights=(gen_mc[fit_idx] / se[fit_idx]) ** 2, known_variance=True)
    fig, ax = new_figure(2, 1)
    ax[0].loglog(cfg.ns, [float(t.total) for t in th], "-", label="theory total")
    ax[0].errorbar(cfg.ns, m, yerr=2 * se, fmt="o", ms=3, label=f"MC ({cfg.reps} datasets)")
    ax[0].axhline(bias, color="gray", ls=":", label="N = inf (exact)")
    ax[0].set(xlabel="N", ylabel="E W2^2", title=f"{cfg.process}-{cfg.scheme}, K={cfg.n_steps}")
    ax[0].legend(fontsize=7)
    ax[1].loglog(cfg.ns, gen_th, "-", label="lambda^T K_N lambda")
    ax[1].errorbar(cfg.ns, gen_mc, yerr=2 * se, fmt="o", ms=3, label="MC - bias")
    ax[1].set(xlabel="N", ylabel="generalization term")
    ax[1].legend(fontsize=7)
    tol = 3 * fit["slope_se"] + 0.05
    claims = [
        Claim.at_most(f"{ABSTRACT}: the error includes the 'generalization ... error in score "
                      "matching' and depends on 'the number of initial samples'; the derived "
                      "generalization term lambda^T K_N lambda matches MC - bias for N >= 200 "
                      "(max |z|)", bonferroni_z(len(big)), float(np.max(z[big])),
                      note="first order in 1/N (derived here); z uses the MC standard error "
                           "over datasets; false-alarm 1e-3 over the N values; at N < 200 the "
                           "O(1/N^2) remainder may show (metrics). Relative deviation "
                           "(MC - theory) / theory by N: "
                           + ", ".join(f"{n}: {r:+.3f}" for n, r in zip(
                               cfg.ns, (gen_mc - gen_th) / gen_th, strict=True))
                           + ". The full run (d = 32, 1000 datasets) fails at N = 200 "
                             "(|z| 4.2): the deviation halves with each doubling of N (4%, "
                             "2.2%, 1.1% at N = 50, 100, 200), the O(d/N^2) second-order "
                             "remainder, resolved there by the smaller standard error"),
        Claim.close("Derived rate: the generalization term decays like 1/N (weighted log-log "
                    "slope of MC - bias, N >= 100)", -1.0, fit["slope"], atol=tol,
                    note=f"tolerance 3 x slope SE ({fit['slope_se']:.3f}, propagated from the MC "
                         "standard errors) + 0.05 for "
                         "the O(1/N) curvature of the first-order term"),
    ]
    return Outcome(metrics=dict(ns=cfg.ns, theory_generalization=gen_th, mc_generalization=gen_mc,
                                mc_se=se, bias=bias, slope=fit, z=z),
                   figures={"error_vs_n": fig}, claims=claims)


# ------------------------------------------------------------------------------------------
@experiment("sampling.diffusion-error-vs-step", paper=PAPER,
            section="Abstract v3: discretization of the diffusion (step size)",
            title="Discretization error vs step size h for SDE and ODE schemes (exact laws)",
            quick=dict(seed=0, d=8, alpha=1.0, sigma_min=0.05, T=5.0,
                       ks=[25, 50, 100, 200, 400, 800]),
            full=dict(seed=0, d=32, alpha=1.0, sigma_min=0.05, T=5.0,
                      ks=[25, 50, 100, 200, 400, 800, 1600, 3200]))
def diffusion_error_vs_step(cfg):
    lam = power_spectrum(cfg.d, cfg.alpha)
    rows, claims = {}, []
    fig, ax = new_figure(2, 1)
    for j, (p, s) in enumerate(SCHEMES):
        dist, disc, hs = [], [], []
        for K in cfg.ks:
            t = _theory(lam, math.inf, sigma_min=cfg.sigma_min, n_steps=K, process=p, scheme=s,
                        T=cfg.T)
            g, c = np.asarray(t.output_variance), np.asarray(t.continuous_variance)
            dist.append(float(np.sum((np.sqrt(g) - np.sqrt(c)) ** 2)))
            disc.append(float(t.discretization))
            hs.append((cfg.T - vp_grid(cfg.sigma_min, K, T=cfg.T).t[0]) / K)
        fit = loglog_fit(hs[-3:], dist[-3:])
        order = 2 if s == "heun" else 1
        rows[f"{p}-{s}"] = dict(h=hs, w2sq_to_continuous=dist, discretization_term=disc,
                                slope=fit["slope"])
        ax[0].loglog(hs, dist, "o-", ms=3, color=f"C{j}", label=f"{p}-{s}")
        ax[1].loglog(hs, np.abs(disc), "o-", ms=3, color=f"C{j}", label=f"{p}-{s}")
        claims.append(Claim.close(
            f"{ABSTRACT}: the error depends on 'the stepsizes ... in diffusion'; derived: "
            f"W2^2(scheme, continuous process) ~ h^{2 * order} for {p}-{s} (order {order}; "
            "slope over the 3 smallest h)", 2.0 * order, fit["slope"], atol=0.15,
            note="exact computation (no sampling error); the tolerance covers the "
                 "pre-asymptotic curvature (relative O(h) corrections to the leading term)"))
    ax[0].set(xlabel="step h", ylabel="W2^2(scheme, continuous)", title="N = inf, exact score")
    ax[1].set(xlabel="step h", ylabel="|discretization term|",
              title="decomposition term (difference of W2^2: linear in h once min-noise "
                    "bias dominates)")
    for a in ax:
        a.legend(fontsize=6)
    # Pierret & Galerne: the recommended (higher-order) scheme is the most accurate; compare
    # the ODE schemes at equal numbers of score evaluations (Heun uses 2 per step)
    heun = rows["ode-heun"]
    nfe_ok = []
    for i, K in enumerate(cfg.ks):
        if 2 * K not in cfg.ks or K < 50:
            continue
        i2 = cfg.ks.index(2 * K)
        nfe_ok.append(heun["w2sq_to_continuous"][i] < min(
            rows["ode-euler"]["w2sq_to_continuous"][i2],
            rows["ode-exponential"]["w2sq_to_continuous"][i2]))
    claims.append(Claim.holds(
        "Pierret & Galerne (ICML 2025, v2 abstract): 'the recommended numerical schemes from the "
        "diffusion models literature are also the best sampling schemes for Gaussian "
        "distributions' -- Heun beats Euler and the exponential integrator on the ODE at equal "
        "numbers of score evaluations (>= 100)", all(nfe_ok) and bool(nfe_ok), detail=nfe_ok,
        note="exact W2 to the continuous process; the statement is the abstract's, the "
             "equal-evaluation comparison is our reading"))
    return Outcome(metrics=dict(schemes=rows, ks=cfg.ks), figures={"error_vs_step": fig},
                   claims=claims)


# ------------------------------------------------------------------------------------------
def _best_sigma(lam, n, K, lo, hi, n_grid=20):
    """Minimiser of the theory total over sigma_min in [lo, hi] (SDE Euler-Maruyama + Tweedie):
    log-grid scan, then bounded Brent search around the best grid point."""
    import scipy.optimize

    def f(ls):
        return float(_theory(lam, n, sigma_min=math.exp(ls), n_steps=K, denoise=True).total)

    grid = np.linspace(math.log(lo), math.log(hi), n_grid)
    vals = [f(x) for x in grid]
    i = int(np.argmin(vals))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, n_grid - 1)]
    r = scipy.optimize.minimize_scalar(f, bounds=(a, b), method="bounded",
                                       options={"xatol": 1e-3})
    return math.exp(r.x) if r.fun <= vals[i] else math.exp(grid[i])


@experiment("sampling.diffusion-min-noise", paper=PAPER,
            section="Abstract v3: minimal noise amplitude (early stopping)",
            title="Minimal noise amplitude sigma_min: its error term and the optimal stopping level",
            quick=dict(seed=0, d=8, alpha=1.0, n=500, ks=[25, 50, 100, 200], mc_k=50,
                       sigmas=[0.01, 0.02, 0.04, 0.07, 0.1, 0.15, 0.2, 0.3, 0.45, 0.6],
                       reps=200),
            full=dict(seed=0, d=32, alpha=1.0, n=2000, ks=[25, 50, 100, 200, 400, 800], mc_k=50,
                      sigmas=list(np.geomspace(0.01, 0.6, 16)), reps=1000))
def diffusion_min_noise(cfg):
    lam = power_spectrum(cfg.d, cfg.alpha)
    small = [s for s in cfg.sigmas if s <= 0.05]
    slopes = {}
    for den in (False, True):
        mn = [float(_theory(lam, math.inf, sigma_min=s, n_steps=cfg.mc_k,
                            denoise=den).min_noise) for s in small]
        slopes[den] = loglog_fit(small, mn)["slope"]
    lo, hi = min(cfg.sigmas), max(cfg.sigmas)
    # the sampler's own optimum (N = inf: exact, cheap) for every K; at N for the MC check
    best = {K: _best_sigma(lam, math.inf, K, lo, hi) for K in cfg.ks}
    best_n = _best_sigma(lam, cfg.n, cfg.mc_k, lo, hi)
    kw = dict(n_steps=cfg.mc_k, process="sde", scheme="euler", denoise=True)
    th = np.array([float(_theory(lam, cfg.n, sigma_min=s, **kw).total) for s in cfg.sigmas])
    m, se = _mc_mean(cfg, [dict(lam=lam.tolist(), n=cfg.n, reps=cfg.reps, sigma_min=s, **kw)
                           for s in cfg.sigmas])
    z = np.abs(m - th) / se
    grid = np.array(cfg.sigmas)
    lo_mc, hi_mc = argmin_interval(grid, m, se)
    fig, ax = new_figure(2, 1)
    ax[0].loglog(cfg.sigmas, th, "-", label=f"theory, K={cfg.mc_k}, N={cfg.n}")
    ax[0].errorbar(cfg.sigmas, m, yerr=2 * se, fmt="o", ms=3, label="MC")
    ax[0].axvline(best_n, color="k", ls=":", label="theory optimum")
    ax[0].set(xlabel="sigma_min", ylabel="E W2^2", title="SDE Euler-Maruyama + Tweedie")
    ax[0].legend(fontsize=7)
    ax[1].loglog(cfg.ks, [best[K] for K in cfg.ks], "o-")
    ax[1].set(xlabel="number of steps K", ylabel="optimal sigma_min (theory, N = inf)",
              title="optimal stopping noise level")
    ks_best = [best[K] for K in cfg.ks]
    claims = [
        Claim.close(f"{ABSTRACT}: 'minimal noise amplitude in the diffusion' is an error "
                    "source; derived: its term ~ sigma_min^4 (no denoising; log-log slope, "
                    "sigma_min <= 0.05)", 4.0, slopes[False], atol=0.05,
                    note="exact; the small-sigma expansion has relative corrections "
                         "O(sigma^2 / lambda_min) < 1% here"),
        Claim.close("Derived: with the final Tweedie denoiser the term is also ~ sigma_min^4",
                    4.0, slopes[True], atol=0.05, note="exact, as above"),
        Claim.holds("Derived (not stated in the paper's readable abstract; a third-party summary "
                    "mentions 'stopping times in diffusion models'): with the "
                    "Tweedie denoiser the sampler's optimal sigma_min (N = inf) is interior and "
                    "decreases as the number of steps grows",
                    bool(lo < ks_best[-1] and ks_best[0] < hi and np.all(np.diff(ks_best) < 0)),
                    detail=dict(zip(map(str, cfg.ks), ks_best, strict=True)),
                    note="derived here, not the paper's statement (not readable). The first "
                         "run scanned the N = 500 total on a 60-point grid (optima 0.344, "
                         "0.243, 0.161, 0.092 for K = 25..200, same conclusion); it now uses "
                         "the exact N = inf error with a 20-point scan + Brent (runtime)"),
        Claim.at_most(f"Derived theory (bias + kernel norm) within MC error at every sigma_min "
                      f"(K={cfg.mc_k}, max |z|)", bonferroni_z(len(cfg.sigmas)),
                      float(np.max(z)),
                      note="false-alarm 1e-3 over the grid; first order in 1/N"),
        Claim.within(f"The derived theory optimum lies in the MC confidence interval of the "
                     f"minimiser over the sigma_min grid (K={cfg.mc_k}, N={cfg.n})", lo_mc,
                     hi_mc, best_n,
                     note="interval: grid points within 3 combined standard errors of the MC "
                          "minimum, widened to their neighbours. The first run used the "
                          "neighbours of the grid argmin ([0.15, 0.3], optimum 0.243, passed); "
                          "changed with sampling.best-sigma, where that bracket is not "
                          "identifiable on flat curves"),
    ]
    return Outcome(metrics=dict(sigmas=cfg.sigmas, theory=th, mc=m, mc_se=se, z=z,
                                min_noise_slope=slopes, best_sigma_inf=best,
                                best_sigma_n=best_n),
                   figures={"min_noise": fig}, claims=claims)


# ------------------------------------------------------------------------------------------
def _sgd_task(item: dict) -> np.ndarray:
    """W2^2 increase over the exact DSM minimiser for R independent SGD fits of every level."""
    lam = torch.tensor(item["lam"], dtype=torch.float64)
    d, K, R, tau = lam.numel(), item["n_steps"], item["reps"], item["tau"]
    g = _task_generator()
    X = torch.randn(item["n"], d, generator=g, dtype=torch.float64) * lam.sqrt()
    S = X.T @ X / item["n"]
    grid = vp_grid(item["sigma_min"], K, T=item["T"])
    q_min = min(grid.alpha[k] ** 2 * float(torch.linalg.eigvalsh(S).min()) + grid.s[k] ** 2
                for k in range(K + 1))
    iters = int(math.ceil(10.0 / (2.0 * tau * q_min)))
    A = sgd_dsm(X, sigma=torch.tensor(grid.s, dtype=torch.float64).repeat(R),
                alpha=torch.tensor(grid.alpha, dtype=torch.float64).repeat(R), score_step=tau,
                score_iters=iters, generator=g, replicates=R * (K + 1)).reshape(R, K + 1, d, d)
    kw = dict(sigma_min=item["sigma_min"], n_steps=K, T=item["T"], process=item["process"],
              scheme=item["scheme"], denoise=item["denoise"])
    C = diffusion_covariance(score_matrices=A, **kw)
    C0 = diffusion_covariance(S, **kw)
    z, Sig = torch.zeros(d, dtype=torch.float64), torch.diag(lam)
    return (bures_wasserstein2(z, Sig, z, C) - bures_wasserstein2(z, Sig, z, C0)).numpy()


@experiment("sampling.diffusion-score-optimization", paper=PAPER,
            section="Abstract v3: optimization error of score matching (SGD step)",
            title="SGD step tau at every noise level: W2^2 increase, first-order theory vs MC",
            quick=dict(seed=0, spectrum=[1.5, 0.5], n=100000, sigma_min=0.3, n_steps=4, T=4.0,
                       taus=[2e-3, 4e-3, 8e-3], reps=300, process="sde", scheme="euler",
                       denoise=False),
            full=dict(seed=0, spectrum=[2.0, 1.0, 0.5, 0.3], n=1000000, sigma_min=0.1,
                      n_steps=10, T=4.0, taus=[5e-4, 1e-3, 2e-3, 4e-3], reps=2000,
                      process="sde", scheme="euler", denoise=False))
def diffusion_score_optimization(cfg):
    base = dict(lam=list(cfg.spectrum), n=cfg.n, sigma_min=cfg.sigma_min, n_steps=cfg.n_steps,
                T=cfg.T, process=cfg.process, scheme=cfg.scheme, denoise=cfg.denoise)
    mc, se = mean_se(map_replicates(
        cfg, _sgd_task, [dict(base, tau=tau, reps=cfg.reps) for tau in cfg.taus], chunk=300,
        cost=lambda it: 1.0 / it["tau"]))  # SGD iterations ~ 1 / tau
    th = np.array([float(_theory(cfg.spectrum, math.inf, sigma_min=cfg.sigma_min,
                                 n_steps=cfg.n_steps, T=cfg.T, process=cfg.process,
                                 scheme=cfg.scheme, denoise=cfg.denoise, score="sgd",
                                 score_step=tau).optimization) for tau in cfg.taus])
    fit = loglog_fit(cfg.taus, np.maximum(mc, 1e-300), weights=(mc / se) ** 2,
                     known_variance=True)
    fig, ax = new_figure()
    ax.loglog(cfg.taus, th, "-", label="theory (first order in tau)")
    ax.errorbar(cfg.taus, mc, yerr=2 * se, fmt="o", ms=3, label=f"MC, {cfg.reps} SGD fits")
    ax.set(xlabel="SGD step tau", ylabel="E W2^2 - W2^2(exact DSM minimiser)",
           title=f"{cfg.process}-{cfg.scheme}, K={cfg.n_steps}, sigma_min={cfg.sigma_min}")
    ax.legend(fontsize=7)
    tol = 3 * fit["slope_se"] + 0.05
    claims = [
        Claim.at_most(f"{ABSTRACT}: 'optimization errors in score matching' and 'the stepsizes "
                      "in ... score matching'; the derived first-order SGD term matches MC at "
                      "every tau (max |z|)", bonferroni_z(len(cfg.taus)),
                      float(np.max(np.abs(th - mc) / se)),
                      note="stationary SGD at every level, independent levels (derived, "
                           "docs/sampling.md); the O(tau^2) remainder is ~ tau q_max <= 1.2% of "
                           "the term; false-alarm 1e-3 over the taus. The first quick run used "
                           "taus 1e-3, 2e-3, 4e-3 (max |z| 0.87, slope 0.90 +- 0.15); doubled "
                           "for runtime"),
        Claim.close("Derived: the optimization error grows linearly in tau (MC log-log slope)",
                    1.0, fit["slope"], atol=tol,
                    note=f"tolerance 3 x slope SE ({fit['slope_se']:.3f}, propagated from the MC "
                         "standard errors) + 0.05 (O(tau) relative corrections). The SE was "
                         "first taken from the fit residuals (1 degree of freedom with 3 "
                         "points): with another task seed that gave slope 0.838 +- 0.09 "
                         "(failed) while every point was within 1 SE of the theory"),
    ]
    return Outcome(metrics=dict(taus=cfg.taus, theory=th, mc=mc, mc_se=se, slope=fit),
                   figures={"score_optimization": fig}, claims=claims)


# ------------------------------------------------------------------------------------------
@experiment("sampling.diffusion-kernel", paper=PAPER,
            section="Abstract v3: error = kernel-type norm of the power spectrum",
            title="E W2^2 = lambda^T K lambda across power-law spectra and two samplers",
            quick=dict(seed=0, d=8, alphas=[0.0, 0.5, 1.0, 1.5, 2.0], n=400, sigma_min=0.1,
                       n_steps=50, reps=200),
            full=dict(seed=0, d=32, alphas=[0.0, 0.5, 1.0, 1.5, 2.0, 2.5], n=2000,
                      sigma_min=0.1, n_steps=200, reps=1000))
def diffusion_kernel(cfg):
    settings = [dict(process="sde", scheme="euler", denoise=True),
                dict(process="ode", scheme="heun", denoise=False)]
    items, th = [], []
    for st in settings:
        for a in cfg.alphas:
            lam = power_spectrum(cfg.d, a)
            kw = dict(sigma_min=cfg.sigma_min, n_steps=cfg.n_steps, **st)
            th.append(_theory(lam, cfg.n, **kw))
            items.append(dict(lam=lam.tolist(), n=cfg.n, reps=cfg.reps, **kw))
    m, se = _mc_mean(cfg, items)
    tot = np.array([float(t.total) for t in th])
    knorm = np.array([float(np.asarray(it["lam"]) @ np.asarray(t.kernel) @ np.asarray(it["lam"]))
                      for it, t in zip(items, th, strict=True)])
    z = np.abs(m - knorm) / se
    na = len(cfg.alphas)
    fig, ax = new_figure(2, 1)
    for j, st in enumerate(settings):
        sl = slice(j * na, (j + 1) * na)
        ax[0].semilogy(cfg.alphas, knorm[sl], "-", color=f"C{j}",
                       label=f"lambda^T K lambda, {st['process']}-{st['scheme']}")
        ax[0].errorbar(cfg.alphas, m[sl], yerr=2 * se[sl], fmt="o", ms=3, color=f"C{j}")
    ax[0].set(xlabel="anisotropy alpha (lambda_k ~ k^-alpha, trace d)", ylabel="E W2^2",
              title=f"N={cfg.n}, K={cfg.n_steps}, sigma_min={cfg.sigma_min} (dots: MC)")
    ax[0].legend(fontsize=6)
    mid = th[list(cfg.alphas).index(1.0)] if 1.0 in cfg.alphas else th[0]
    im = ax[1].imshow(np.asarray(mid.kernel), cmap="viridis")
    fig.colorbar(im, ax=ax[1])
    ax[1].set(title="kernel K_ij (alpha = 1, SDE): total = lambda^T K lambda",
              xlabel="j (eigenvalue index, decreasing)", ylabel="i")
    claims = [
        Claim.at_most(f"{ABSTRACT}: {KERNEL_QUOTE} -- the derived kernel norm lambda^T K lambda "
                      f"matches MC over {len(items)} (spectrum, sampler) pairs (max |z|)",
                      bonferroni_z(len(items)), float(np.max(z)),
                      note="K = diagonal exact bias part + first-order-in-1/N generalization "
                           "kernel (derived here, the paper's kernel was not readable); "
                           "false-alarm 1e-3 over the pairs"),
    ]
    return Outcome(metrics=dict(alphas=cfg.alphas, settings=settings, theory=tot,
                                kernel_norm=knorm, mc=m, mc_se=se, z=z),
                   figures={"kernel": fig}, claims=claims)
