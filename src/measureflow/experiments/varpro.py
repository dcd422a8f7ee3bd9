"""VarPro / two-timescale training of mean-field networks (Barboni, Peyre, Vialard,
arXiv:2504.18208): Sec. 6.1 (ReLU features on the circle, bimodal teacher) and App. B (RBF
features on the torus); Sec. 6.2 (a convolutional network) is in ``varpro_digits``.

Every claim compares particles with the mean-field prediction at the *finite* width M: M feature
particles transported by the mean-field flow are M i.i.d. samples of the PDE law mu_t, so

    E MMD^2(particles, mu_t) = E_{mu_t}|X - X'| / M                       (energy kernel),
    E MMD^2(particles, teacher sample) = MMD^2(mu_t, mu*) + (finite-sample terms of both),

and the tolerances are 3 standard deviations of these finite-sample MMD^2, estimated by Monte
Carlo (``reps`` draws of the same sizes). A lam-bias of the particles shows as an excess
b^2 = MMD^2 - E|X - X'|/M above that floor. Quick sizes are far below the paper's (N = 4096
samples, M <= 1024 features, 32 000 steps of time_scale 2^-10); the full configurations use the
paper's sizes (too long for a CPU: see docs/meanfield.md).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..meanfield import (
    TwoLayer,
    angles_to_circle,
    circle_teacher_density,
    mmd,
    periodic_grid,
    sample_circle_teacher,
    two_timescale_train,
    ultrafast_diffusion,
    varpro_train,
)
from .plotting import new_figure
from .registry import Claim, Outcome, experiment

PAPER = "arXiv:2504.18208"
F64 = torch.float64


def _teacher_problem(n_samples, gamma, seed, teacher_width=4096):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_samples, 2, generator=g, dtype=F64)
    om = sample_circle_teacher(teacher_width, gamma, seed=seed + 1)
    teacher = TwoLayer(angles_to_circle(om))
    with torch.no_grad():
        y = teacher(x)
    return x, y, om


def _student(width, seed):
    g = torch.Generator().manual_seed(seed + 2)
    return torch.randn(width, 2, generator=g, dtype=F64)


def _pde(gamma, times, n_grid):
    grid = periodic_grid(n_grid)
    h = 2 * math.pi / n_grid
    mus = circle_teacher_density(grid, gamma)
    mus = mus / (mus.sum() * h)
    mu0 = np.full(n_grid, 1.0 / (2 * math.pi))
    res = ultrafast_diffusion(mu0, mus, float(max(times)), times=times)
    return grid, h, mus, res


def _pde_split(gamma, times, t_long, n_grid):
    """One PDE solve for two sets of output times; returns (grid, h, mu*, short, long) with
    ``short`` / ``long`` simple views (densities, chi2) at ``times`` / ``t_long``."""
    allt = np.unique(np.concatenate([np.asarray(times, float), np.asarray(t_long, float)]))
    grid, h, mus, res = _pde(gamma, allt, n_grid)
    dens, chi2 = np.asarray(res.densities), np.asarray(res.chi2)

    def view(ts):
        idx = [int(np.argmin(np.abs(allt - t))) for t in ts]
        return _PDEView(dens[idx], chi2[idx], bool(res.converged))

    return grid, h, mus, view(times), view(t_long)


class _PDEView:
    def __init__(self, densities, chi2, converged):
        self.densities, self.chi2, self.converged = densities, chi2, converged


def _grid_measure(grid, dens, h):
    """The PDE law as a weighted point cloud on the unit circle (cell centres, cell masses)."""
    return angles_to_circle(torch.as_tensor(grid)), torch.as_tensor(dens * h)


def _with_none(pw):
    """(points, weights) -> the (y, a=None, b=weights) arguments of ``mmd`` after x."""
    return pw[0], None, pw[1]


def _mean_distance(pts, w):
    """E|X - X'| for X, X' i.i.d. from sum_i w_i delta_{p_i} (w summing to 1)."""
    D = torch.linalg.vector_norm(pts[:, None] - pts[None], dim=-1)
    return float(w @ D @ w)


def _sample_grid(grid, dens, h, M, gen):
    """M i.i.d. angles of the piecewise-constant density ``dens`` on the grid."""
    cdf = np.cumsum(dens * h)
    u = torch.rand(M, generator=gen, dtype=F64).numpy() * cdf[-1]
    idx = np.minimum(np.searchsorted(cdf, u), len(grid) - 1)
    jit = (torch.rand(M, generator=gen, dtype=F64).numpy() - 0.5) * h
    return torch.as_tensor(grid[idx] + jit)


def _floor_to_pde(grid, dens, h, M, reps, seed):
    """Finite-width floor of MMD^2(M particles, mu_t): its mean D/M (exact for i.i.d. samples)
    and its standard deviation (Monte Carlo over ``reps`` i.i.d. draws of M samples)."""
    pts, w = _grid_measure(grid, dens, h)
    wn = w / w.sum()
    gen = torch.Generator().manual_seed(seed)
    sq = [float(mmd(angles_to_circle(_sample_grid(grid, dens, h, M, gen)), pts, None, wn)) ** 2
          for _ in range(reps)]
    return dict(mean=_mean_distance(pts, wn) / M, sd=float(np.std(sq, ddof=1)),
                mc_mean=float(np.mean(sq)))


def _floor_to_teacher(grid, dens, h, M, gamma, K, reps, seed):
    """MMD^2 between M i.i.d. samples of mu_t and a K-particle teacher sample (drawn by the
    teacher's own sampler): Monte Carlo mean and standard deviation over ``reps`` draws."""
    gen = torch.Generator().manual_seed(seed)
    sq = []
    for r in range(reps):
        th = angles_to_circle(sample_circle_teacher(K, gamma, seed=seed + 1000 + r))
        sq.append(float(mmd(angles_to_circle(_sample_grid(grid, dens, h, M, gen)), th)) ** 2)
    return dict(mean=float(np.mean(sq)), sd=float(np.std(sq, ddof=1)))


def _exp_vs_power(times, chi2, t_from, floor=1e-12):
    """Fit log chi^2 on [t_from, T] (chi^2 >= floor) by a - kappa t and by a - p log t."""
    t = np.asarray(times, float)
    c = np.asarray(chi2, float)
    keep = (t >= t_from) & (c >= floor)
    t, lc = t[keep], np.log(c[keep])
    e = np.polyfit(t, lc, 1)
    p = np.polyfit(np.log(t), lc, 1)
    rms = lambda r: float(np.sqrt(np.mean(r ** 2)))
    return dict(kappa=float(-e[0]), rms_exp=rms(lc - np.polyval(e, t)),
                power=float(-p[0]), rms_power=rms(lc - np.polyval(p, np.log(t))),
                n_points=int(keep.sum()), window=[float(t[0]), float(t[-1])] if len(t) else [])


def _smoothed(W, grid, scale=0.04):
    """Gaussian-smoothed angular density of the particles (wrapped distance, scale 0.04)."""
    ang = torch.atan2(W[:, 1], W[:, 0]).numpy()
    d = np.angle(np.exp(1j * (grid[:, None] - ang[None, :])))
    k = np.exp(-0.5 * (d / scale) ** 2) / (math.sqrt(2 * math.pi) * scale)
    return k.mean(1)


def _circle_run(item):
    """One VarPro run on the Sec. 6.1 problem; item: dict of sizes (seeded by its own seeds)."""
    x, y, _ = _teacher_problem(item["n"], item["gamma"], item["seed"])
    model = TwoLayer(_student(item["M"], item["seed"]))
    res = varpro_train(model, x, y, lam=item["lam"], steps=item["steps"],
                       time_scale=item["time_scale"], regularization="unbiased",
                       snapshot_steps=item["snaps"])
    return dict(risk=res.risk.numpy(), t=res.times.numpy(), snaps=res.snapshots.numpy(),
                converged=bool(res.converged))


@experiment("meanfield.relu-circle", paper=PAPER, section="Sec. 6.1, Fig. 2-4; Sec. 4-5",
            title="VarPro on S^1 with ReLU features: particles vs the ultra-fast diffusion PDE",
            quick=dict(seed=0, n=512, widths=[32, 64, 128], lams=[1e-1, 1e-2, 1e-3], gamma=100.0,
                       steps=128, time_scale=2.0**-7, n_grid=256, record=4, reps=24,
                       pde_T=31.25),
            full=dict(seed=0, n=4096, widths=[32, 128, 512, 1024], lams=[1e-1, 1e-2, 1e-3, 1e-4],
                      gamma=100.0, steps=32000, time_scale=2.0**-10, n_grid=1024, record=32,
                      reps=24, pde_T=31.25))
def relu_circle(cfg):
    M_big, lam_small = max(cfg.widths), min(cfg.lams)
    snaps = sorted(set(np.linspace(0, cfg.steps, cfg.record + 1).astype(int).tolist()))
    times = [s * cfg.time_scale for s in snaps]
    T = times[-1]
    t_long = np.linspace(0, cfg.pde_T, 129)
    grid, h, mus, pde, pde_long = _pde_split(cfg.gamma, times, t_long, cfg.n_grid)
    star = _grid_measure(grid, mus, h)
    keys = [(M_big, lam) for lam in cfg.lams] + [(M, lam_small) for M in sorted(cfg.widths)
                                                  if M != M_big]
    items = [dict(n=cfg.n, gamma=cfg.gamma, seed=cfg.seed, M=M, lam=lam, steps=cfg.steps,
                  time_scale=cfg.time_scale, snaps=snaps) for M, lam in keys]
    runs = dict(zip(keys, cfg.map(_circle_run, items)))
    floors = {M: _floor_to_pde(grid, pde.densities[-1], h, M, cfg.reps, cfg.seed + 11 + M)
              for M in cfg.widths}
    for (M, _lam), r in runs.items():
        W = [torch.as_tensor(s) for s in r["snaps"]]
        r["mmd_teacher"] = [float(mmd(Wk, *_with_none(star))) for Wk in W]
        r["mmd_pde"] = [float(mmd(Wk, *_with_none(_grid_measure(grid, d, h))))
                        for Wk, d in zip(W, pde.densities)]
        r["sq_T"] = r["mmd_pde"][-1] ** 2
        r["bias_sq"] = r["sq_T"] - floors[M]["mean"]
        r["z"] = r["bias_sq"] / floors[M]["sd"]

    # (1) the lam sweep at the largest width: b^2 = MMD^2 - floor^2 does not grow as lam -> 0
    lam_rows = [runs[(M_big, lam)] for lam in cfg.lams]
    sd_big = floors[M_big]["sd"]
    dz = [(b["bias_sq"] - a["bias_sq"]) / (math.sqrt(2) * sd_big)
          for a, b in zip(lam_rows, lam_rows[1:])]
    lam_detail = {f"lam={lam:g}": dict(mmd=r["mmd_pde"][-1], bias_sq=r["bias_sq"], z=r["z"])
                  for lam, r in zip(cfg.lams, lam_rows)}
    floor_note = (f"finite-width floor at M={M_big}: E MMD^2 = E|X-X'|/M = "
                  f"{floors[M_big]['mean']:.3g} (MMD {math.sqrt(floors[M_big]['mean']):.3g}), "
                  f"sd of MMD^2 = {sd_big:.2g} from {cfg.reps} i.i.d. draws (Monte Carlo mean "
                  f"{floors[M_big]['mc_mean']:.3g})")
    history = ("History: the previous claim required the MMD itself to decrease strictly in lam; "
               "at quick size (N=1024, M=256, T=1.5) lam = 1e-2 and 1e-3 gave 0.071 and 0.074, "
               "both at the M=256 floor (0.072): below the floor the ordering is sampling noise, "
               "so the claim now tests the excess over the floor, with a tolerance from its "
               "sampling error.")
    claims = [
        Claim.at_most(
            f"Sec. 6.1 (Fig. 3c, MMD to the PDE solution vs lam): the distance of the particles "
            f"to the PDE decreases as lam -> 0 -- the lam-bias b^2 = MMD^2 - E|X-X'|/M never "
            f"grows as lam decreases (M={M_big}, t={T:.3g}; max z of consecutive increases)",
            3.0, max(dz), note=f"z = increase of b^2 / (sqrt(2) sd); {floor_note}. "
                               f"Values: {lam_detail}. {history}"),
        Claim.at_most(
            f"Abstract / Sec. 4: as lam -> 0 the feature distribution follows the weighted "
            f"ultra-fast diffusion -- at lam={lam_small:g} the particles are as close to the PDE "
            f"as {M_big} i.i.d. samples of it (|b^2| / sd, t={T:.3g})", 3.0,
            abs(runs[(M_big, lam_small)]["z"]),
            note=f"{floor_note}. Measured at the paper's width (N=4096, M=1024, lam=1e-4, T=1; "
                 "docs/meanfield.md): fails, z = 6.3, lam-independent from 1e-3 to 1e-4; the "
                 "excess lies in the odd harmonics k = 3, 5, 7 (4.1, 3.1, 2.6 sd at t = 0.5, "
                 "even ones within noise): the ReLU kernel on S^1 is blind to odd harmonics "
                 ">= 3, so the lam -> 0 limit is the PDE only modulo them."),
    ]
    wz = {M: runs[(M, lam_small)]["z"] for M in sorted(cfg.widths)}
    claims.append(Claim.at_most(
        f"Sec. 6.1 (Fig. 3c, MMD to the PDE vs M): the MMD to the PDE shrinks as the width M "
        f"grows, at the mean-field rate E MMD^2 = E|X-X'|/M (lam={lam_small:g}; max over M of "
        f"|MMD^2 - E|X-X'|/M| / sd)", 3.0, max(abs(z) for z in wz.values()),
        note="per M: " + ", ".join(
            f"M={M}: MMD {runs[(M, lam_small)]['mmd_pde'][-1]:.3g} vs floor "
            f"{math.sqrt(floors[M]['mean']):.3g} (z={wz[M]:+.2f})" for M in sorted(cfg.widths))))
    # (4) exponential convergence of the PDE (long horizon, fixed window [T/4, T])
    fit = _exp_vs_power(t_long, np.asarray(pde_long.chi2), cfg.pde_T / 4)
    claims.append(Claim.holds(
        "Sec. 5 (via Iacobelli et al. 2019, 1-D periodic case): the weighted ultra-fast "
        f"diffusion converges exponentially to mu* -- on [T/4, T], T={cfg.pde_T:g}, log chi^2 is "
        "fitted better by a - kappa t than by a - p log t, with kappa > 0",
        fit["kappa"] > 0 and fit["rms_exp"] < fit["rms_power"], detail=fit,
        note="deterministic PDE (n_grid cells, backward Euler): no sampling tolerance; chi^2 "
             "values below 1e-12 (Newton tolerance level) are excluded"))

    fig, ax = new_figure(3, 1)
    for (M, lam), r in runs.items():
        lab = f"M={M}, lam={lam:g}"
        ax[0].loglog(r["t"][1:], r["risk"][1:], label=lab)
        ax[1].plot(times, r["mmd_teacher"], marker="o", ms=3, label=lab)
        ax[2].plot(times, r["mmd_pde"], marker="o", ms=3, label=lab)
    for M in cfg.widths:
        ax[2].axhline(math.sqrt(floors[M]["mean"]), ls=":", lw=0.8, color="gray")
    ax[0].set(xlabel="time t = k time_scale", ylabel="reduced risk F(W)", title="(a) risk")
    ax[1].set(xlabel="t", ylabel="MMD", yscale="log", title="(b) MMD to the teacher law")
    ax[2].set(xlabel="t", ylabel="MMD", yscale="log",
              title="(c) MMD to PDE (dotted: i.i.d. floor per M)")
    ax[0].legend(fontsize=7)
    fig_d, axd = new_figure(min(4, len(snaps)), 1)
    r = runs[(M_big, lam_small)]
    pick = np.linspace(0, len(snaps) - 1, min(4, len(snaps))).astype(int)
    for a, i in zip(np.atleast_1d(axd), pick):
        a.plot(grid, _smoothed(torch.as_tensor(r["snaps"][i]), grid),
               label="particles (smoothed)")
        a.plot(grid, pde.densities[i], "--", label="PDE")
        a.plot(grid, mus, ":", color="gray", label="teacher")
        a.set(title=f"t = {times[i]:.2f}", xlabel="angle")
    np.atleast_1d(axd)[0].legend(fontsize=7)
    fig_e, axe = new_figure()
    axe.semilogy(t_long, np.maximum(np.asarray(pde_long.chi2), 1e-300))
    axe.axvline(cfg.pde_T / 4, color="gray", ls=":")
    axe.set(xlabel="t", ylabel="chi^2(mu* | mu_t)",
            title=f"PDE, gamma={cfg.gamma:g}: kappa={fit['kappa']:.3g}")
    metrics = dict(times=times, floors=floors,
                   runs={f"M={M},lam={lam:g}": dict(mmd_pde=r["mmd_pde"],
                                                    mmd_teacher=r["mmd_teacher"],
                                                    bias_sq=r["bias_sq"], z=r["z"],
                                                    risk_final=float(r["risk"][-1]),
                                                    converged=r["converged"])
                         for (M, lam), r in runs.items()},
                   pde_chi2=pde.chi2, pde_long_fit=fit)
    return Outcome(metrics=metrics, figures={"curves": fig, "densities": fig_d,
                                             "pde_convergence": fig_e}, claims=claims)


def _pair_run(item):
    """VarPro and 2TS from the same initial features; returns the feature-law gap at T."""
    x, y, _ = _teacher_problem(item["n"], item["gamma"], item["seed"])
    W0 = _student(item["M"], item["seed"])
    kw = dict(lam=item["lam"], steps=item["steps"], time_scale=item["time_scale"],
              regularization="unbiased")
    a = varpro_train(TwoLayer(W0), x, y, **kw)
    b = two_timescale_train(TwoLayer(W0), x, y, **kw)
    return dict(gap=float(mmd(a.features, b.features)), moved=float(mmd(a.features, W0)),
                risk_varpro=a.risk.numpy(), risk_2ts=b.risk.numpy(), t=a.times.numpy())


@experiment("meanfield.varpro-vs-2ts", paper=PAPER, section="Sec. 6.1, Fig. 5",
            title="VarPro vs two-timescale: they agree when lam / time_scale is large",
            quick=dict(seed=0, n=256, width=64, lams=[1e-1, 1e-2, 1e-3], gamma=100.0, steps=256,
                       time_scale=2.0**-10, n_seeds=3),
            full=dict(seed=0, n=4096, width=1024, lams=[1e-1, 1e-2, 1e-3], gamma=100.0,
                      steps=32000, time_scale=2.0**-10, n_seeds=6))
def varpro_vs_2ts(cfg):
    seeds = [cfg.seed + 17 * s for s in range(cfg.n_seeds)]
    lams = sorted(cfg.lams, reverse=True)  # decreasing lam = decreasing lam / time_scale
    items = [dict(n=cfg.n, gamma=cfg.gamma, seed=s, M=cfg.width, lam=lam, steps=cfg.steps,
                  time_scale=cfg.time_scale) for lam in lams for s in seeds]
    out = cfg.map(_pair_run, items)
    gaps = np.array([[o["gap"] for o in out[i * len(seeds):(i + 1) * len(seeds)]]
                     for i in range(len(lams))])                     # (n_lam, n_seeds)
    ratios = [lam / cfg.time_scale for lam in lams]
    # paired over seeds: gap(smaller ratio) - gap(larger ratio) > 0 beyond 3 SE
    zs = []
    for i in range(len(lams) - 1):
        d = gaps[i + 1] - gaps[i]
        se = float(np.std(d, ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")
        zs.append(float(d.mean() / se) if se > 0 else float("inf"))
    slope = float(np.polyfit(np.log(ratios), np.log(gaps.mean(1)), 1)[0])
    fig, ax = new_figure(2, 1)
    first = out[:: len(seeds)]
    for lam, o in zip(lams, first):
        ax[0].loglog(o["t"][1:], o["risk_varpro"][1:], label=f"VarPro lam={lam:g}")
        ax[0].loglog(o["t"][1:], o["risk_2ts"][1:], "--", label=f"2TS lam={lam:g}")
    ax[0].set(xlabel="t", ylabel="risk", title=f"VarPro (solid) vs 2TS (dashed), seed {seeds[0]}")
    ax[0].legend(fontsize=6)
    ax[1].errorbar(ratios, gaps.mean(1), yerr=3 * gaps.std(1, ddof=1) / math.sqrt(len(seeds)),
                   fmt="o-", capsize=3)
    ax[1].set(xscale="log", yscale="log", xlabel="lam / time_scale",
              ylabel="MMD(VarPro, 2TS) features (+- 3 SE)",
              title=f"gap at t={cfg.steps * cfg.time_scale:.3g}")
    claims = [Claim.at_least(
        "Sec. 6.1 (Fig. 5): two-timescale training approximates VarPro when lam / time_scale is "
        "large -- the feature-law gap MMD(VarPro, 2TS) at T decreases as lam / time_scale "
        f"grows ({len(seeds)} seeds, paired; min over consecutive ratios of the decrease / SE)",
        3.0, min(zs),
        note="gap = energy MMD between the two particle sets started from the same features "
             f"(no sampling floor: common initialisation). Mean gaps "
             f"{dict(zip(ratios, gaps.mean(1).round(6).tolist()))}; "
             f"log-log slope vs the ratio {slope:.2f} (derived first-order expectation -1 once "
             "the 2TS outer weights relax within the run, ~1/lam steps; metrics only). "
             "Previous version: strict ordering on one seed plus an unrelated risk comparison "
             "(VarPro risk <= 2TS loss, an observation not in the paper), dropped.")]
    return Outcome(metrics=dict(ratios=ratios, gap_mean=gaps.mean(1), gap_by_seed=gaps,
                                z_decrease=zs, loglog_slope=slope,
                                moved=[o["moved"] for o in first]),
                   figures={"varpro_vs_2ts": fig}, claims=claims)


def _gamma_run(item):
    x, y, _ = _teacher_problem(item["n"], item["gamma"], item["seed"], item["K"])
    res = varpro_train(TwoLayer(_student(item["M"], item["seed"])), x, y, lam=item["lam"],
                       steps=item["steps"], time_scale=item["time_scale"],
                       regularization="unbiased")
    return dict(W0=res.snapshots[0].numpy(), WT=res.snapshots[-1].numpy())


@experiment("meanfield.sharpness", paper=PAPER, section="Sec. 5-6.1 (gamma sweep)",
            title="Sharper teachers (larger gamma) converge more slowly; particles follow the PDE",
            quick=dict(seed=0, n=512, width=128, lam=1e-3, gammas=[10.0, 100.0, 1000.0],
                       steps=128, time_scale=2.0**-7, n_grid=256, reps=24, teacher_width=1024,
                       pde_T=31.25),
            full=dict(seed=0, n=4096, width=1024, lam=1e-4, gammas=[10.0, 100.0, 1000.0],
                      steps=32000, time_scale=2.0**-10, n_grid=2048, reps=24,
                      teacher_width=4096, pde_T=31.25))
def sharpness(cfg):
    T = cfg.steps * cfg.time_scale
    times = list(np.linspace(0, T, 9))
    items = [dict(n=cfg.n, gamma=g, seed=cfg.seed, M=cfg.width, lam=cfg.lam, steps=cfg.steps,
                  time_scale=cfg.time_scale, K=cfg.teacher_width) for g in cfg.gammas]
    out = dict(zip(cfg.gammas, cfg.map(_gamma_run, items)))
    rel_mmd_pde, kappa, z, detail = {}, {}, {}, {}
    fig, ax = new_figure(2, 1)
    t_long = np.linspace(0, cfg.pde_T, 129)
    for gamma in cfg.gammas:
        grid, h, mus, pde, pde_long = _pde_split(gamma, times, t_long, cfg.n_grid)
        star = _grid_measure(grid, mus, h)
        m_pde = []
        for d in pde.densities:
            pd = _grid_measure(grid, d, h)
            m_pde.append(float(mmd(pd[0], star[0], pd[1], star[1])))
        rel_mmd_pde[gamma] = m_pde[-1] / m_pde[0]
        kappa[gamma] = _exp_vs_power(t_long, np.asarray(pde_long.chi2), cfg.pde_T / 4)["kappa"]
        # particles vs the teacher sample at T, against the PDE + finite-sample prediction
        om = _teacher_problem(8, gamma, cfg.seed, cfg.teacher_width)[2]
        tp = angles_to_circle(om)
        obs = float(mmd(torch.as_tensor(out[gamma]["WT"]), tp)) ** 2
        fl = _floor_to_teacher(grid, pde.densities[-1], h, cfg.width, gamma, cfg.teacher_width,
                               cfg.reps, cfg.seed + 31)
        z[gamma] = (obs - fl["mean"]) / (fl["sd"] * math.sqrt(1 + 1 / cfg.reps))
        detail[f"gamma={gamma:g}"] = dict(mmd2_particles=obs, predicted=fl["mean"], sd=fl["sd"],
                                          z=z[gamma])
        ax[0].semilogy(times, np.array(m_pde) / m_pde[0], label=f"gamma={gamma:g}")
    ax[0].set(xlabel="t", ylabel="MMD(mu(t), mu*) / MMD(mu(0), mu*)",
              title="PDE: relative MMD to the teacher")
    ax[0].legend()
    ax[1].errorbar(cfg.gammas, [detail[f"gamma={g:g}"]["mmd2_particles"] for g in cfg.gammas],
                   fmt="o", label="VarPro particles")
    ax[1].errorbar(cfg.gammas, [detail[f"gamma={g:g}"]["predicted"] for g in cfg.gammas],
                   yerr=[3 * detail[f"gamma={g:g}"]["sd"] for g in cfg.gammas], fmt="s--",
                   capsize=3, label="PDE + finite-sample prediction (+- 3 sd)")
    ax[1].set(xscale="log", yscale="log", xlabel="gamma", ylabel="MMD^2 to teacher particles",
              title=f"T={T:.3g}, M={cfg.width}")
    ax[1].legend(fontsize=7)
    c = [rel_mmd_pde[g] for g in cfg.gammas]
    k = [kappa[g] for g in cfg.gammas]
    claims = [
        Claim.holds("Sec. 5-6.1: a sharper teacher (larger gamma, more extreme density ratio) "
                    "converges more slowly -- PDE relative MMD to the teacher at T increases "
                    "with gamma", all(b > a for a, b in zip(c, c[1:])),
                    detail={f"gamma={g:g}": v for g, v in zip(cfg.gammas, c)},
                    note="deterministic PDE; chi^2(T)/chi^2(0) is NOT monotone in gamma "
                         "(chi^2(0) grows with gamma and collapses in a fast transient)"),
        Claim.holds("Sec. 5-6.1, same statement for the exponential rate: the rate kappa of "
                    f"chi^2(mu*|mu_t) on [T/4, T] (T={cfg.pde_T:g}) decreases with gamma",
                    all(b < a for a, b in zip(k, k[1:])),
                    detail={f"gamma={g:g}": v for g, v in zip(cfg.gammas, k)}),
        Claim.at_most(
            f"Sec. 4 (mean-field limit lam -> 0): the particles' MMD^2 to the teacher sample at "
            f"T equals the PDE's, plus the finite-sample terms of M={cfg.width} particles and "
            f"{cfg.teacher_width} teacher particles (lam={cfg.lam:g}; max over gamma of |z|)",
            3.0, max(abs(v) for v in z.values()),
            note=f"z = (observed - predicted) / (sd sqrt(1 + 1/reps)); prediction and sd from "
                 f"{cfg.reps} Monte Carlo draws (M i.i.d. samples of the PDE law at T vs the "
                 f"teacher's sampler). Values: {detail}. Replaces 'relative MMD matches the PDE "
                 "within rtol = 0.15' (measured 0.4 %: a tolerance that could not fail)."),
    ]
    return Outcome(metrics=dict(rel_mmd_pde={f"{g:g}": v for g, v in rel_mmd_pde.items()},
                                kappa={f"{g:g}": v for g, v in kappa.items()},
                                particles_vs_prediction=detail),
                   figures={"sharpness": fig}, claims=claims)


def _torus_teacher(n, gamma, seed, period=4.0):
    """Two-mode periodic law on [-2, 2)^2, modes 2(-0.5, 0) and 2(0.5, 0.5) (App. B).

    gamma = -1: two Diracs. Otherwise each coordinate is a wrapped draw whose angle has density
    propto 1/(1 + gamma sin^2(theta/2)) (the circle construction, rescaled to the period).
    """
    modes = torch.tensor([[-1.0, 0.0], [1.0, 1.0]], dtype=F64)
    which = torch.arange(n) % 2
    centre = modes[which]
    if gamma < 0:
        return centre.clone()
    a = torch.stack([sample_circle_teacher(n, gamma, seed=seed + k, second_mode=0.0)
                     for k in range(2)], 1)
    pts = centre + a * (period / (2 * math.pi))
    return torch.remainder(pts + period / 2, period) - period / 2


def _torus_teacher_density(n_grid, gamma, period=4.0):
    """Density on the (n_grid, n_grid) cell centres of the law of :func:`_torus_teacher`:
    1/2 g(z1 + 1) g(z2) + 1/2 g(z1 - 1) g(z2 - 1), g(z) = (2 pi / P) mu_gamma(2 pi z / P) with
    mu_gamma the one-mode circle density (second_weight = 0)."""
    z = periodic_grid(n_grid, period)
    g = lambda c: (2 * math.pi / period) * circle_teacher_density(
        2 * math.pi * (z - c) / period, gamma, second_weight=0.0)
    return 0.5 * np.outer(g(-1.0), g(0.0)) + 0.5 * np.outer(g(1.0), g(1.0))


def _sample_torus_grid(dens, period, M, gen):
    n = dens.shape[0]
    h = period / n
    z = periodic_grid(n, period)
    cdf = np.cumsum(dens.ravel() * h * h)
    u = torch.rand(M, generator=gen, dtype=F64).numpy() * cdf[-1]
    idx = np.minimum(np.searchsorted(cdf, u), n * n - 1)
    i, j = np.divmod(idx, n)
    jit = (torch.rand(M, 2, generator=gen, dtype=F64).numpy() - 0.5) * h
    return torch.as_tensor(np.stack([z[i], z[j]], 1) + jit)


@experiment("meanfield.rbf-torus", paper=PAPER, section="App. B; Sec. 4",
            title="VarPro with RBF features on the 2-D torus: particles vs the torus PDE",
            quick=dict(seed=0, n=256, width=64, lam=1e-2, gamma=100.0, steps=128,
                       time_scale=2.0**-7, teacher_width=1024, n_grid=32, pde_steps=50,
                       reps=16),
            full=dict(seed=0, n=4096, width=1024, lam=1e-2, gamma=100.0, steps=32000,
                      time_scale=2.0**-10, teacher_width=4096, n_grid=128, pde_steps=400,
                      reps=16))
def rbf_torus(cfg):
    P = 4.0
    g = torch.Generator().manual_seed(cfg.seed)
    x = torch.randn(cfg.n, 2, generator=g, dtype=F64)
    wt = _torus_teacher(cfg.teacher_width, cfg.gamma, cfg.seed)
    teacher = TwoLayer(wt, "rbf", "torus")
    with torch.no_grad():
        y = teacher(x)
    W0 = (torch.rand(cfg.width, 2, generator=g, dtype=F64) - 0.5) * P
    snaps = list(np.linspace(0, cfg.steps, 5).astype(int))
    res = varpro_train(TwoLayer(W0, "rbf", "torus"), x, y, lam=cfg.lam, steps=cfg.steps,
                       time_scale=cfg.time_scale, regularization="unbiased",
                       snapshot_steps=snaps)
    t = [s * cfg.time_scale for s in res.snapshot_steps]
    mus = _torus_teacher_density(cfg.n_grid, cfg.gamma, P)
    h = P / cfg.n_grid
    mus = mus / (mus.sum() * h * h)
    mu0 = np.full_like(mus, 1.0 / P ** 2)
    # backward Euler with dt <= T / pde_steps: its O(dt) error is far below the sampling sd of
    # M particles that the comparison tolerates
    pde = ultrafast_diffusion(mu0, mus, t[-1], times=t, length=P, max_dt=t[-1] / cfg.pde_steps)
    d = [float(mmd(W, wt, period=P)) for W in res.snapshots]
    zs, detail = [], {}
    gen = torch.Generator().manual_seed(cfg.seed + 41)
    for k, tk in enumerate(t):
        obs = d[k] ** 2
        sq = [float(mmd(_sample_torus_grid(pde.densities[k], P, cfg.width, gen),
                        _torus_teacher(cfg.teacher_width, cfg.gamma, cfg.seed + 500 + r),
                        period=P)) ** 2 for r in range(cfg.reps)]
        mean, sd = float(np.mean(sq)), float(np.std(sq, ddof=1))
        zk = (obs - mean) / (sd * math.sqrt(1 + 1 / cfg.reps))
        detail[f"t={tk:.3g}"] = dict(mmd2_particles=obs, predicted=mean, sd=sd, z=zk)
        zs.append(zk)
    fig, ax = new_figure(3, 1)
    ax[0].loglog(res.times[1:], res.risk[1:])
    ax[0].set(xlabel="t", ylabel="reduced risk", title="risk")
    ax[1].plot(t, [v["mmd2_particles"] for v in detail.values()], "o-", label="particles")
    ax[1].errorbar(t, [v["predicted"] for v in detail.values()],
                   yerr=[3 * v["sd"] for v in detail.values()], fmt="s--", capsize=3,
                   label="torus PDE + finite samples (+- 3 sd)")
    ax[1].set(xlabel="t", ylabel="periodic MMD^2 to teacher", yscale="log", title="MMD^2")
    ax[1].legend(fontsize=7)
    ax[2].scatter(wt[:, 0], wt[:, 1], s=1, c="gray", alpha=0.3, label="teacher")
    ax[2].scatter(res.features[:, 0], res.features[:, 1], s=4, c="C3", label="student (final)")
    ax[2].set(xlim=(-2, 2), ylim=(-2, 2), aspect="equal", title="features on the torus")
    ax[2].legend(fontsize=7)
    claims = [Claim.at_most(
        f"App. B with Sec. 4 (lam -> 0 limit): RBF features on the torus follow the weighted "
        f"ultra-fast diffusion on the torus -- the particles' periodic MMD^2 to the teacher "
        f"sample equals the PDE's plus the finite-sample terms at every snapshot (lam="
        f"{cfg.lam:g}, M={cfg.width}; max |z|)", 3.0, max(abs(v) for v in zs),
        note=f"z = (observed - predicted) / (sd sqrt(1 + 1/reps)), {cfg.reps} Monte Carlo draws "
             f"of {cfg.width} i.i.d. samples of the PDE law (grid {cfg.n_grid}^2) and of the "
             f"teacher's sampler. Values: {detail}. Replaces the sanity checks 'MMD(T)/MMD(0) <= "
             "0.5' and 'risk(T)/risk(0) <= 0.5'. The PDE limit assumes the RBF kernel "
             "E_x phi(w, x) phi(w', x) is injective on measures (Laplace-type kernel).")]
    return Outcome(metrics=dict(times=t, mmd_teacher=d, vs_pde=detail,
                                risk_final=float(res.risk[-1]), pde_converged=pde.converged),
                   figures={"rbf_torus": fig}, claims=claims)
