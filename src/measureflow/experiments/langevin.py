"""Score matching + Langevin sampling of Gaussians (Hurault, Terris, Moreau, Peyre,
arXiv:2503.11615 v1, "From denoising score matching to Langevin sampling").

Only the abstracts (v1, v3) and the opening of the introduction were readable: the paper's
theorems, constants and figures are not reproduced. The error formulas are derived here
(docs/sampling.md), so every curve overlays theory (``sampling.w2_error``) and Monte Carlo over
independent datasets (the exact Gaussian law reached per dataset, through the batched route of
``sampling.pipeline``, tested equal to it), and the claims quote the abstract's statements.
Monte Carlo sweeps run through ``cfg.map``; tolerances are z-tests on the Monte Carlo standard
error with a Bonferroni threshold (family-wise false-alarm probability 1e-3).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.optimize
import torch

from ..ot import bures_wasserstein2
from ..sampling import (
    empirical_second_moments,
    langevin_stationary_covariance,
    pipeline,
    ula_covariance,
    w2_error,
)
from ..sampling.gaussian import sgd_dsm
from ._sampling import argmin_interval, bonferroni_z, map_replicates, mean_se, power_spectrum
from .plotting import loglog_fit, new_figure
from .registry import Claim, Outcome, experiment

PAPER = "arXiv:2503.11615"
ABSTRACT_V1 = "Abstract (v1, 'From Denoising Score Matching to Langevin Sampling')"
KERNEL_QUOTE = ("'the Wasserstein sampling error can be expressed as a kernel-type norm of the "
                "data power spectrum, where the specific kernel depends on the method "
                "parameters'")


def _stationary_errors(item: dict) -> np.ndarray:
    """W2^2(target, stationary law reached) over ``reps`` datasets (closed-form score)."""
    lam = torch.tensor(item["lam"], dtype=torch.float64)
    S = empirical_second_moments(lam, item["n"], item["reps"],
                                 seed=int(torch.randint(0, 2**62, (1,))))
    C = langevin_stationary_covariance(S, sigma=item["sigma"], gamma=item["gamma"],
                                       denoise=item["denoise"])
    z = torch.zeros(lam.numel(), dtype=torch.float64)
    return bures_wasserstein2(z, torch.diag(lam), z, C).numpy()


def _mc(cfg, lam, settings, reps, denoise=False):
    """Mean and standard error over datasets of the stationary W2^2 for each (sigma, gamma, N)
    in ``settings``."""
    items = [dict(lam=list(map(float, lam)), sigma=sigma, gamma=gamma, n=n, reps=reps,
                  denoise=denoise) for sigma, gamma, n in settings]
    return mean_se(map_replicates(cfg, _stationary_errors, items))


def _chain_task(item: dict) -> dict:
    """Max entrywise |z| of the ULA chains' empirical covariance against the exact law."""
    r = pipeline((np.asarray(item["lam"]), item["n"]), sigma=item["sigma"],
                 gamma=item["gamma"], n_steps=item["n_steps"], n_chains=item["chains"],
                 seed=int(torch.randint(0, 2**62, (1,))))
    C = r.covariance
    emp = r.samples.T @ r.samples / item["chains"]
    se = np.sqrt((C**2 + np.outer(np.diag(C), np.diag(C))) / item["chains"])
    iu = np.triu_indices(len(item["lam"]))
    return dict(zmax=float(np.max(np.abs(emp - C)[iu] / se[iu])), w2=r.w2,
                w2_chains=r.w2_samples)


def _best_sigma(lam, gamma, N, denoise, lo, hi):
    """Global minimiser of the theory total over sigma in [lo, hi]: log-grid scan, then Brent
    on the bracket around the best grid point (the curve can be very flat near sigma = 0)."""
    f = lambda ls: float(w2_error(lam, sigma=math.exp(ls), gamma=gamma, n_samples=N,
                                  denoise=denoise).total)
    grid = np.linspace(math.log(lo), math.log(hi), 41)
    vals = [f(g) for g in grid]
    i = int(np.argmin(vals))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    r = scipy.optimize.minimize_scalar(f, bounds=(a, b), method="bounded",
                                       options={"xatol": 1e-6})
    return (math.exp(r.x), r.fun) if r.fun <= vals[i] else (math.exp(grid[i]), vals[i])


@experiment("sampling.error-vs-sigma", paper=PAPER,
            section="Abstract (v1): error as a kernel-type norm of the power spectrum",
            title="W2^2 sampling error vs noise sigma for several Langevin steps: theory vs MC",
            quick=dict(seed=0, d=8, alpha=1.0, n=500, gammas=[0.005, 0.02, 0.05],
                       sigmas=[0.05, 0.1, 0.15, 0.2, 0.3, 0.45, 0.7], reps=200, chains=2000),
            full=dict(seed=0, d=32, alpha=1.0, n=2000, gammas=[0.002, 0.005, 0.02, 0.05],
                      sigmas=list(np.geomspace(0.03, 1.0, 15)), reps=1000, chains=20000))
def error_vs_sigma(cfg):
    lam = power_spectrum(cfg.d, cfg.alpha)
    fig, ax = new_figure(2, 1)
    settings = [(s, g, cfg.n) for g in cfg.gammas for s in cfg.sigmas]
    m_all, se_all = _mc(cfg, lam, settings, cfg.reps)
    th_all = np.array([float(w2_error(lam, sigma=s, gamma=g, n_samples=n).total)
                       for s, g, n in settings])
    ns = len(cfg.sigmas)
    rows = {}
    for i, gamma in enumerate(cfg.gammas):
        sl = slice(i * ns, (i + 1) * ns)
        th, m, se = th_all[sl], m_all[sl], se_all[sl]
        rows[f"gamma={gamma:g}"] = dict(theory=th.tolist(), mc=m.tolist(), mc_se=se.tolist())
        ax[0].loglog(cfg.sigmas, th, "-", color=f"C{i}", label=f"theory gamma={gamma:g}")
        ax[0].errorbar(cfg.sigmas, m, yerr=2 * se, fmt="o", color=f"C{i}", ms=3)
    ax[0].set(xlabel="sigma", ylabel="E W2^2", title=f"N={cfg.n}, d={cfg.d}, lam_k~k^-{cfg.alpha:g}"
              " (lines theory, dots MC)")
    ax[0].legend(fontsize=7)
    z = np.abs(th_all - m_all) / se_all
    rel = np.abs(th_all - m_all) / m_all
    # chain simulation at the middle gamma: empirical covariance of the chains vs exact law
    gamma = cfg.gammas[len(cfg.gammas) // 2]
    items = [dict(lam=lam.tolist(), n=cfg.n, sigma=s, gamma=gamma, chains=cfg.chains,
                  n_steps=int(math.ceil(8.0 * (1.0 + s**2) / gamma))) for s in cfg.sigmas]
    ch = cfg.map(_chain_task, items, cost=lambda it: it["n_steps"])
    zchain = max(r["zmax"] for r in ch)
    ax[1].loglog(cfg.sigmas, [r["w2"] ** 2 for r in ch], "-", label="exact law reached (one dataset)")
    ax[1].loglog(cfg.sigmas, [r["w2_chains"] ** 2 for r in ch], "o", ms=3,
                 label=f"{cfg.chains} ULA chains (empirical cov.: adds its own sampling error)")
    ax[1].set(xlabel="sigma", ylabel="W2^2", title=f"simulation, gamma={gamma:g}")
    ax[1].legend(fontsize=7)
    n_entries = cfg.d * (cfg.d + 1) // 2 * len(cfg.sigmas)
    claims = [
        Claim.at_most(f"{ABSTRACT_V1}: {KERNEL_QUOTE} -- the derived E W2^2 = bias + "
                      "lambda^T K lambda matches MC over datasets at every (sigma, gamma) "
                      f"(max |z| over {len(settings)} points)", bonferroni_z(len(settings)),
                      float(np.max(z)),
                      note="kernel derived here (first order in 1/N; the paper's kernel was not "
                           "readable); z = (theory - MC mean) / MC standard error; threshold: "
                           f"false-alarm 1e-3. Max relative deviation {np.max(rel):.3f} "
                           "(metrics). Previous claims (30 datasets per point): max relative "
                           "deviation 0.084 <= 0.1 and max |z| 1.85 <= 4"),
        Claim.at_most("Derived exact ULA law: the chains' empirical covariance agrees with it "
                      f"(max entrywise |z| over {n_entries} entries)", bonferroni_z(n_entries),
                      zchain,
                      note="standard error sqrt((C_ij^2 + C_ii C_jj) / n) of a Gaussian second "
                           "moment; previous threshold 5 (measured 2.66)"),
    ]
    return Outcome(metrics=dict(curves=rows, sigmas=cfg.sigmas, z=z, relative_deviation=rel,
                                chain_zmax=zchain),
                   figures={"error_vs_sigma": fig}, claims=claims)


@experiment("sampling.error-vs-n", paper=PAPER,
            section="Abstract (v1): 'the generalization error due to a finite number of "
                    "initial samples'",
            title="W2^2 error vs number of samples N: bias + kernel norm / N",
            quick=dict(seed=0, d=8, alpha=1.0, sigma=0.15, gamma=0.02,
                       ns=[50, 100, 200, 400, 800, 1600], reps=300),
            full=dict(seed=0, d=32, alpha=1.0, sigma=0.15, gamma=0.02,
                      ns=[50, 100, 200, 400, 800, 1600, 3200, 6400], reps=1000))
def error_vs_n(cfg):
    lam = power_spectrum(cfg.d, cfg.alpha)
    th = [w2_error(lam, sigma=cfg.sigma, gamma=cfg.gamma, n_samples=n) for n in cfg.ns]
    bias = float(th[0].bias)
    m, se = _mc(cfg, lam, [(cfg.sigma, cfg.gamma, n) for n in cfg.ns], cfg.reps)
    fs_th = np.array([float(t.finite_samples) for t in th])
    fs_mc = m - bias
    fit_idx = [i for i, n in enumerate(cfg.ns) if n >= 100]
    fit = loglog_fit(np.array(cfg.ns)[fit_idx], np.maximum(fs_mc[fit_idx], 1e-300),
                     weights=(fs_mc[fit_idx] / se[fit_idx]) ** 2, known_variance=True)
    fig, ax = new_figure(2, 1)
    ax[0].loglog(cfg.ns, [float(t.total) for t in th], "-", label="theory total")
    ax[0].errorbar(cfg.ns, m, yerr=2 * se, fmt="o", ms=3, label="MC")
    ax[0].axhline(bias, color="gray", ls=":", label="bias (N = inf, exact)")
    ax[0].set(xlabel="N", ylabel="E W2^2", title=f"sigma={cfg.sigma}, gamma={cfg.gamma}")
    ax[0].legend(fontsize=7)
    ax[1].loglog(cfg.ns, fs_th, "-", label="theory: lambda^T K lambda")
    ax[1].errorbar(cfg.ns, fs_mc, yerr=2 * se, fmt="o", ms=3, label="MC - bias")
    ax[1].set(xlabel="N", ylabel="finite-sample term", title="generalisation error")
    ax[1].legend(fontsize=7)
    big = [i for i, n in enumerate(cfg.ns) if n >= 200]
    z = np.abs(fs_th - fs_mc) / se
    tol = 3 * fit["slope_se"] + 0.05
    claims = [
        Claim.close(f"{ABSTRACT_V1}: the error depends on 'the number of initial samples'; "
                    "derived: the finite-sample term decays like 1/N (weighted log-log slope of "
                    "MC - bias, N >= 100)", -1.0, fit["slope"], atol=tol,
                    note=f"tolerance 3 x slope SE ({fit['slope_se']:.3f}, propagated from the MC "
                         "standard errors) + 0.05 for the "
                         "O(1/N) curvature of the first-order term; previously atol 0.15 over "
                         "all N with 30 datasets per N (measured -1.019)"),
        Claim.at_most("Derived kernel-norm term matches MC - bias for N >= 200 (max |z|)",
                      bonferroni_z(len(big)), float(np.max(z[big])),
                      note="first order in 1/N; at N < 200 the O(1/N^2) remainder may show "
                           "(metrics); previously a 15% relative tolerance (measured 5.5%). "
                           "Relative deviation (MC - theory) / theory by N: "
                           + ", ".join(f"{n}: {r:+.3f}" for n, r in zip(
                               cfg.ns, (fs_mc - fs_th) / fs_th, strict=True))
                           + ". The full run (d = 32, 1000 datasets) fails at N = 200 "
                             "(|z| 5.1): the deviation halves with each doubling of N (4.4%, "
                             "2.3%, 1.4% at N = 50, 100, 200), the O(d/N^2) second-order "
                             "remainder, resolved there by the smaller standard error"),
    ]
    return Outcome(metrics=dict(ns=cfg.ns, theory_finite=fs_th, mc_finite=fs_mc, mc_se=se,
                                bias=bias, slope=fit, z=z),
                   figures={"error_vs_n": fig}, claims=claims)


@experiment("sampling.anisotropy", paper=PAPER,
            section="Abstract (v1): 'how the anisotropy of the data distribution (encoded by "
                    "its power spectrum) interacts with key parameters'",
            title="Error vs anisotropy of power-law spectra lambda_k ~ k^-alpha (trace d)",
            quick=dict(seed=0, d=8, alphas=[0.0, 0.5, 1.0, 1.5, 2.0], sigma=0.1, gamma=0.01,
                       n=500, reps=300),
            full=dict(seed=0, d=32, alphas=[0.0, 0.5, 1.0, 1.5, 2.0, 2.5], sigma=0.1,
                      gamma=0.01, n=2000, reps=1000))
def anisotropy(cfg):
    th, share, lead, lead_half = [], [], [], []
    for a in cfg.alphas:
        lam = power_spectrum(cfg.d, a)
        t = w2_error(lam, sigma=cfg.sigma, gamma=cfg.gamma, n_samples=cfg.n)
        th.append(t)
        pdirs = np.asarray(t.per_direction)
        share.append(float(pdirs[cfg.d // 2:].sum() / pdirs.sum()))
        lead.append(float(np.sum((cfg.sigma**2 + cfg.gamma / 2) ** 2 / (4 * lam))))
        # the same at (sigma^2, gamma) halved: the expansion's relative error must halve
        s2, g2 = cfg.sigma / math.sqrt(2), cfg.gamma / 2
        b2 = float(w2_error(lam, sigma=s2, gamma=g2, n_samples=math.inf).bias)
        lead_half.append(float(np.sum((s2**2 + g2 / 2) ** 2 / (4 * lam))) / b2 - 1)
    m, se = [], []
    for a in cfg.alphas:
        mm, ss = _mc(cfg, power_spectrum(cfg.d, a), [(cfg.sigma, cfg.gamma, cfg.n)], cfg.reps)
        m.append(mm[0])
        se.append(ss[0])
    tot = np.array([float(t.total) for t in th])
    m, se = np.array(m), np.array(se)
    bias = np.array([float(t.bias) for t in th])
    dev = np.array(lead) / bias - 1
    ratio = np.abs(dev) / np.abs(np.array(lead_half))
    fig, ax = new_figure(2, 1)
    ax[0].semilogy(cfg.alphas, tot, "-", label="theory total")
    ax[0].errorbar(cfg.alphas, m, yerr=2 * se, fmt="o", ms=3, label="MC")
    ax[0].semilogy(cfg.alphas, bias, "--", label="bias (exact)")
    ax[0].semilogy(cfg.alphas, lead, ":", label="(sigma^2+gamma/2)^2 sum 1/(4 lambda)")
    ax[0].set(xlabel="alpha", ylabel="E W2^2", title="anisotropy")
    ax[0].legend(fontsize=7)
    ax[1].plot(cfg.alphas, share, "o-")
    ax[1].set(xlabel="alpha", ylabel="share of bias", title="bias from the low-variance half")
    gen_th = tot - bias
    gen_mc = m - bias
    claims = [
        Claim.holds("Derived (exact): at fixed trace the bias (noise + discretization) grows "
                    "with anisotropy alpha (it weighs 1/lambda_i)",
                    bool(np.all(np.diff(bias) > 0)), detail=bias.tolist()),
        Claim.holds("Derived, theory and MC: at fixed trace the finite-sample term decreases "
                    "with alpha (kernel norm of a more concentrated spectrum); MC - bias "
                    "ordering",
                    bool(np.all(np.diff(gen_th) < 0) and np.all(np.diff(gen_mc) < 0)),
                    detail={"theory": gen_th.tolist(), "mc": gen_mc.tolist()},
                    note="at these sizes the finite-sample term dominates, so the TOTAL error "
                         "decreases with alpha here; the balance depends on N, sigma, gamma"),
        Claim.at_most(f"{ABSTRACT_V1}: {KERNEL_QUOTE} -- theory vs MC over alpha (max |z|)",
                      bonferroni_z(len(cfg.alphas)), float(np.max(np.abs(tot - m) / se)),
                      note="previously a 10% relative tolerance with 30 datasets (measured "
                           "2.4%)"),
        Claim.at_most("Derived: bias ~ (sigma^2 + gamma/2)^2 sum 1/(4 lambda) to leading "
                      "order: halving (sigma^2, gamma) halves the expansion's relative error "
                      "(max |ratio - 2| over alpha)", 0.2, float(np.max(np.abs(ratio - 2))),
                      note="exact computation; the relative error is c1 e + c2 e^2 with "
                           "e = O(sigma^2 + gamma), so the ratio is 2 (1 + O(e)): the tolerance "
                           "allows a next-order term of 10%. Previously: max relative deviation "
                           "of the expansion <= 0.05 (measured 0.034), a tolerance without "
                           "justification"),
        Claim.at_least("Derived: small-variance directions dominate the bias (share of the "
                       f"lowest half, alpha={cfg.alphas[-1]:g})", 0.5, share[-1]),
    ]
    return Outcome(metrics=dict(alphas=cfg.alphas, theory=tot, mc=m, mc_se=se, bias=bias,
                                leading_bias=lead, leading_relative_error=dev,
                                halving_ratio=ratio, low_half_share=share),
                   figures={"anisotropy": fig}, claims=claims)


@experiment("sampling.best-sigma", paper=PAPER,
            section="Abstract (v1): 'adapting the noise amplitude to the choice of step sizes'",
            title="Best noise level sigma for a given Langevin step gamma",
            quick=dict(seed=0, d=8, alpha=1.0, n=400, gammas=[0.002, 0.005, 0.01, 0.02, 0.05],
                       mc_gammas=[0.02, 0.05], sigmas=[0.03, 0.06, 0.1, 0.15, 0.2, 0.3, 0.45],
                       reps=300),
            full=dict(seed=0, d=32, alpha=1.0, n=2000,
                      gammas=list(np.geomspace(0.001, 0.1, 12)), mc_gammas=[0.02, 0.05],
                      sigmas=list(np.geomspace(0.02, 0.6, 15)), reps=1000))
def best_sigma(cfg):
    lam = power_spectrum(cfg.d, cfg.alpha)
    hi = 2.0
    best_inf = [_best_sigma(lam, g, math.inf, True, 1e-3, hi)[0] for g in cfg.gammas]
    best_n = [_best_sigma(lam, g, cfg.n, True, 1e-3, hi)[0] for g in cfg.gammas]
    best_plain = [_best_sigma(lam, g, cfg.n, False, 1e-3, hi)[0] for g in cfg.gammas]
    fig, ax = new_figure(2, 1)
    ax[0].loglog(cfg.gammas, best_inf, "o-", label="denoised, N = inf")
    ax[0].loglog(cfg.gammas, best_n, "s-", label=f"denoised, N = {cfg.n}")
    ax[0].loglog(cfg.gammas, best_plain, "^-", label=f"no denoising, N = {cfg.n}")
    ax[0].loglog(cfg.gammas, np.sqrt(np.array(cfg.gammas) / 2), "k:", label="sqrt(gamma/2)")
    ax[0].set(xlabel="gamma", ylabel="best sigma", title="optimal noise level (theory)")
    ax[0].legend(fontsize=7)
    grid = np.array(cfg.sigmas)
    settings = [(s, gam, cfg.n) for gam in cfg.mc_gammas for s in cfg.sigmas]
    m_all, se_all = _mc(cfg, lam, settings, cfg.reps, denoise=True)
    mc_rows, brackets = {}, []
    ns = len(cfg.sigmas)
    for j, gam in enumerate(cfg.mc_gammas):
        th = [float(w2_error(lam, sigma=s, gamma=gam, n_samples=cfg.n, denoise=True).total)
              for s in cfg.sigmas]
        m, se = m_all[j * ns:(j + 1) * ns], se_all[j * ns:(j + 1) * ns]
        s_star = _best_sigma(lam, gam, cfg.n, True, 1e-3, hi)[0]
        i_mc = int(np.argmin(m))
        lo, up = argmin_interval(grid, m, se)
        brackets.append((gam, float(lo), float(up), s_star))
        mc_rows[f"gamma={gam:g}"] = dict(theory=th, mc=m.tolist(), mc_se=se.tolist(),
                                         theory_best=s_star, mc_best_grid=float(grid[i_mc]))
        ax[1].loglog(cfg.sigmas, th, "-", color=f"C{j}", label=f"theory gamma={gam:g}")
        ax[1].errorbar(cfg.sigmas, m, yerr=2 * se, fmt="o", ms=3, color=f"C{j}")
        ax[1].axvline(max(s_star, grid[0] / 2), color=f"C{j}", ls=":")
    ax[1].set(xlabel="sigma", ylabel="E W2^2", title=f"denoised, N={cfg.n} (dotted: optimum)")
    ax[1].legend(fontsize=7)
    claims = [
        Claim.at_most("Derived (exact): with final denoising and N = inf, the best sigma is "
                      "sqrt(gamma/2) (exactly unbiased at gamma = 2 sigma^2; max relative "
                      "deviation of the numerical minimiser)", 1e-3,
                      float(np.max(np.abs(np.array(best_inf) / np.sqrt(np.array(cfg.gammas) / 2)
                                          - 1))),
                      note="tolerance = accuracy of the bounded scalar search"),
        Claim.holds(f"{ABSTRACT_V1}: 'adapting the noise amplitude to the choice of step "
                    "sizes' -- best sigma is non-decreasing in gamma and grows over the range "
                    f"(denoised, N={cfg.n})",
                    bool(np.all(np.diff(best_n) > -1e-4) and best_n[-1] > 2 * best_n[0]),
                    detail=best_n,
                    note="for the smallest steps the optimum sits at the search's lower bound "
                         "sigma = 1e-3 (sigma -> 0 is best: the denoiser's shrinkage g' < 1 "
                         "reduces the finite-sample variance more than it adds bias). Without "
                         "denoising the best sigma DEcreases with gamma (metrics)."),
    ]
    for gam, lo, up, s_star in brackets:
        claims.append(Claim.within(
            f"The derived theory optimum lies in the Monte Carlo confidence interval of the minimiser "
            f"over the sigma grid (gamma={gam:g})", lo, up, s_star,
            note="interval: grid points within 3 combined standard errors of the MC minimum, "
                 "widened to their neighbours (an end of the grid leaves that side open). "
                 "Previous claim: the neighbours of the MC grid argmin bracket the optimum "
                 "(passed with 30 datasets per point; with 300 it failed at gamma=0.02: argmin "
                 "0.06 vs optimum 0.001, where the theory curve varies by 4e-5 between "
                 "sigma = 0.03 and 0.06 against an MC standard error of 6e-4, so the grid "
                 "argmin is not identifiable)"))
    return Outcome(metrics=dict(gammas=cfg.gammas, best_sigma_inf=best_inf,
                                best_sigma_n=best_n, best_sigma_no_denoise=best_plain,
                                sigmas=cfg.sigmas, mc_curves=mc_rows),
                   figures={"best_sigma": fig}, claims=claims)


def _sgd_langevin_task(item: dict) -> dict:
    """W2^2 increase of the stationary ULA law over the exact DSM minimiser, for R SGD fits."""
    lam = torch.tensor(item["spectrum"], dtype=torch.float64)
    d = lam.numel()
    g = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
    X = torch.randn(item["n"], d, generator=g, dtype=torch.float64) * lam.sqrt()
    eye = torch.eye(d, dtype=torch.float64)
    S = X.T @ X / item["n"]
    zero = torch.zeros(d, dtype=torch.float64)
    Sigma = torch.diag(lam)
    A_star = torch.linalg.inv(S + item["sigma"] ** 2 * eye)
    base = float(bures_wasserstein2(zero, Sigma, zero,
                                    ula_covariance(A_star, gamma=item["gamma"])))
    q_min = float(torch.linalg.eigvalsh(S).min()) + item["sigma"] ** 2
    K = int(math.ceil(10.0 / (2 * item["tau"] * q_min)))
    A = sgd_dsm(X, sigma=item["sigma"], score_step=item["tau"], score_iters=K, generator=g,
                replicates=item["reps"])
    vals, unstable = [], 0
    for a in A:
        if float(torch.linalg.eigvals(eye - item["gamma"] * a).abs().max()) >= 1:
            unstable += 1
            continue
        C = ula_covariance(a, gamma=item["gamma"])
        vals.append(float(bures_wasserstein2(zero, Sigma, zero, C)) - base)
    return dict(vals=np.array(vals), unstable=unstable)


@experiment("sampling.score-optimization", paper=PAPER,
            section="Abstract (v3): 'optimization errors in score matching', 'stepsizes in "
                    "both score matching and diffusion'",
            title="SGD step tau on the DSM loss: W2^2 increase, first-order theory vs MC",
            quick=dict(seed=0, spectrum=[2.0, 0.5, 0.2], sigma=0.4, gamma=0.05,
                       taus=[5e-4, 1e-3, 2e-3], n=100000, replicates=200),
            full=dict(seed=0, spectrum=[2.0, 1.0, 0.5, 0.2, 0.1], sigma=0.4, gamma=0.05,
                      taus=[2.5e-4, 5e-4, 1e-3, 2e-3], n=1000000, replicates=2000))
def score_optimization(cfg):
    items = [dict(spectrum=list(cfg.spectrum), sigma=cfg.sigma, gamma=cfg.gamma, tau=tau,
                  n=cfg.n, reps=cfg.replicates) for tau in cfg.taus]
    res = cfg.map(_sgd_langevin_task, items, cost=lambda it: 1.0 / it["tau"])  # iters ~ 1/tau
    th = np.array([float(w2_error(cfg.spectrum, sigma=cfg.sigma, gamma=cfg.gamma,
                                  n_samples=math.inf, score="sgd",
                                  score_step=tau).optimization) for tau in cfg.taus])
    mc = np.array([float(r["vals"].mean()) for r in res])
    se = np.array([float(r["vals"].std(ddof=1) / math.sqrt(len(r["vals"]))) for r in res])
    unstable = sum(r["unstable"] for r in res)
    fit = loglog_fit(cfg.taus, np.maximum(mc, 1e-300), weights=(mc / se) ** 2,
                     known_variance=True)
    fig, ax = new_figure()
    ax.loglog(cfg.taus, th, "-", label="theory (first order in tau)")
    ax.errorbar(cfg.taus, mc, yerr=2 * se, fmt="o", ms=3,
                label=f"MC over {cfg.replicates} SGD runs")
    ax.set(xlabel="SGD step tau", ylabel="E W2^2 - W2^2(exact DSM minimiser)",
           title=f"optimisation error, sigma={cfg.sigma}, gamma={cfg.gamma}")
    ax.legend(fontsize=7)
    tol = 3 * fit["slope_se"] + 0.05
    claims = [
        Claim.at_most("Abstract (v3): 'the generalization and optimization errors in score "
                      "matching' -- the derived first-order SGD term matches MC at every tau "
                      "(max |z|)", bonferroni_z(len(cfg.taus)),
                      float(np.max(np.abs(th - mc) / se)),
                      note="first order in tau (derived here); previously threshold 4 "
                           "(measured 1.20)"),
        Claim.close("Derived: the optimisation error grows linearly in the SGD step (MC "
                    "log-log slope)", 1.0, fit["slope"], atol=tol,
                    note=f"tolerance 3 x slope SE ({fit['slope_se']:.3f}, propagated from the MC "
                         "standard errors) + 0.05 (O(tau) "
                         "relative corrections); previously atol 0.25 (measured 1.15)"),
        Claim.holds("Sanity check: every SGD run gave a stable Langevin iteration", unstable == 0,
                    detail=unstable),
    ]
    return Outcome(metrics=dict(taus=cfg.taus, theory=th, mc=mc, mc_se=se, slope=fit,
                                unstable_runs=unstable),
                   figures={"score_optimization": fig}, claims=claims)
