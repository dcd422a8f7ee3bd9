"""VarPro / two-timescale training of mean-field networks (Barboni, Peyre, Vialard,
arXiv:2504.18208): Sec. 6.1 (ReLU features on the circle, bimodal teacher) and App. B (RBF
features on the torus). Quick sizes are far below the paper's (N = 4096 samples, M <= 1024
features, 32 000 steps of time_scale 2^-10); the full configurations use the paper's sizes.
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


def _teacher_problem(n_samples, gamma, seed, teacher_width=4096):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_samples, 2, generator=g, dtype=torch.float64)
    om = sample_circle_teacher(teacher_width, gamma, seed=seed + 1)
    teacher = TwoLayer(angles_to_circle(om))
    with torch.no_grad():
        y = teacher(x)
    return x, y, om


def _student(width, seed):
    g = torch.Generator().manual_seed(seed + 2)
    return torch.randn(width, 2, generator=g, dtype=torch.float64)


def _pde(gamma, times, n_grid):
    grid = periodic_grid(n_grid)
    h = 2 * math.pi / n_grid
    mus = circle_teacher_density(grid, gamma)
    mus = mus / (mus.sum() * h)
    mu0 = np.full(n_grid, 1.0 / (2 * math.pi))
    res = ultrafast_diffusion(mu0, mus, float(max(times)), times=times)
    return grid, h, mus, res


def _mmd_to_grid(W, grid, dens, h):
    pts = angles_to_circle(torch.as_tensor(grid))
    return float(mmd(W, pts, None, torch.as_tensor(dens * h)))


def _iid_floor(grid, h, dens, M, seed, reps=5):
    """Mean MMD between M i.i.d. samples of the grid density and the density itself."""
    g = torch.Generator().manual_seed(seed + 7)
    cdf = np.cumsum(dens * h)
    pts = angles_to_circle(torch.as_tensor(grid))
    w = torch.as_tensor(dens * h / (dens * h).sum())
    vals = []
    for _ in range(reps):
        u = torch.rand(M, generator=g, dtype=torch.float64).numpy() * cdf[-1]
        idx = np.minimum(np.searchsorted(cdf, u), len(grid) - 1)
        ang = torch.as_tensor(grid[idx] + (torch.rand(M, generator=g).numpy() - 0.5) * h)
        vals.append(float(mmd(angles_to_circle(ang), pts, None, w)))
    return float(np.mean(vals))


def _smoothed(W, grid, scale=0.04):
    """Gaussian-smoothed angular density of the particles (wrapped distance, scale 0.04)."""
    ang = torch.atan2(W[:, 1], W[:, 0]).numpy()
    d = np.angle(np.exp(1j * (grid[:, None] - ang[None, :])))
    k = np.exp(-0.5 * (d / scale) ** 2) / (math.sqrt(2 * math.pi) * scale)
    return k.mean(1)


@experiment("meanfield.relu-circle", paper=PAPER, section="Sec. 6.1, Fig. 2-4",
            title="VarPro on S^1 with ReLU features: particles vs the ultra-fast diffusion PDE",
            quick=dict(seed=0, n=1024, widths=[64, 256], lams=[1e-1, 1e-2, 1e-3], gamma=100.0,
                       steps=384, time_scale=2.0**-8, n_grid=256, record=6),
            full=dict(seed=0, n=4096, widths=[32, 128, 512, 1024], lams=[1e-1, 1e-2, 1e-3, 1e-4],
                      gamma=100.0, steps=32000, time_scale=2.0**-10, n_grid=1024, record=32))
def relu_circle(cfg):
    x, y, om = _teacher_problem(cfg.n, cfg.gamma, cfg.seed)
    teacher_pts = angles_to_circle(om)
    M_big, lam_small = max(cfg.widths), min(cfg.lams)
    snaps = sorted(set(np.linspace(0, cfg.steps, cfg.record + 1).astype(int).tolist()))
    times = [s * cfg.time_scale for s in snaps]
    grid, h, mus, pde = _pde(cfg.gamma, times, cfg.n_grid)
    runs = {}
    for M, lam in [(M_big, lam) for lam in cfg.lams] + [(M, lam_small) for M in cfg.widths
                                                          if M != M_big]:
        model = TwoLayer(_student(M, cfg.seed))
        res = varpro_train(model, x, y, lam=lam, steps=cfg.steps, time_scale=cfg.time_scale,
                           regularization="unbiased", snapshot_steps=snaps)
        runs[(M, lam)] = dict(
            risk=res.risk.numpy(), t=res.times.numpy(), snaps=res.snapshots,
            mmd_teacher=[float(mmd(W, teacher_pts)) for W in res.snapshots],
            mmd_pde=[_mmd_to_grid(W, grid, d, h) for W, d in zip(res.snapshots, pde.densities)])
    mmd_pde_final = {f"M={M},lam={lam:g}": r["mmd_pde"][-1] for (M, lam), r in runs.items()}
    mmd_teacher_final = {f"M={M},lam={lam:g}": r["mmd_teacher"][-1] for (M, lam), r in runs.items()}

    fig, ax = new_figure(3, 1)
    for (M, lam), r in runs.items():
        lab = f"M={M}, lam={lam:g}"
        ax[0].loglog(r["t"][1:], r["risk"][1:], label=lab)
        ax[1].plot(times, r["mmd_teacher"], marker="o", ms=3, label=lab)
        ax[2].plot(times, r["mmd_pde"], marker="o", ms=3, label=lab)
    ax[0].set(xlabel="time t = k time_scale", ylabel="reduced risk F(W)", title="(a) risk")
    ax[1].set(xlabel="t", ylabel="MMD", yscale="log", title="(b) MMD to teacher particles")
    ax[2].set(xlabel="t", ylabel="MMD", yscale="log", title="(c) MMD to PDE solution")
    ax[0].legend(fontsize=7)
    fig_d, axd = new_figure(min(4, len(snaps)), 1)
    r = runs[(M_big, lam_small)]
    pick = np.linspace(0, len(snaps) - 1, min(4, len(snaps))).astype(int)
    for a, i in zip(np.atleast_1d(axd), pick):
        a.plot(grid, _smoothed(r["snaps"][i], grid), label="particles (smoothed)")
        a.plot(grid, pde.densities[i], "--", label="PDE")
        a.plot(grid, mus, ":", color="gray", label="teacher")
        a.set(title=f"t = {times[i]:.2f}", xlabel="angle")
    np.atleast_1d(axd)[0].legend(fontsize=7)

    pde_lams = [runs[(M_big, lam)]["mmd_pde"][-1] for lam in cfg.lams]
    pde_widths = [runs[(M, lam_small)]["mmd_pde"][-1] for M in sorted(cfg.widths)]
    r0 = runs[(M_big, lam_small)]
    floor = _iid_floor(grid, h, pde.densities[-1], M_big, cfg.seed)
    mt = r0["mmd_teacher"]
    claims = [
        Claim.holds("Paper Sec. 6.1: the MMD to the PDE solution shrinks as lam -> 0 "
                    f"(M={M_big}, t={times[-1]:.2f})",
                    all(b < a for a, b in zip(pde_lams, pde_lams[1:])),
                    detail={f"lam={lam:g}": v for lam, v in zip(cfg.lams, pde_lams)},
                    note=f"Finite-M floor: {M_big} i.i.d. samples of the PDE density are at MMD "
                         f"~{floor:.3f} from it; once the lam-bias falls below that floor the "
                         "ordering of small lams is decided by sampling noise (the paper uses "
                         "M = 1024 and T = 31)."),
        Claim.holds("Paper Sec. 6.1: the MMD to the PDE solution shrinks as the width M grows "
                    f"(lam={lam_small:g})",
                    all(b < a for a, b in zip(pde_widths, pde_widths[1:])),
                    detail={f"M={M}": v for M, v in zip(sorted(cfg.widths), pde_widths)}),
        Claim.holds("Paper Sec. 5/6.1: the MMD to the teacher decays over time (decreasing at "
                    f"every snapshot, lam={lam_small:g}, M={M_big})",
                    all(b < a for a, b in zip(mt, mt[1:])),
                    detail={"first": mt[0], "last": mt[-1]}),
        Claim.at_most("VarPro decreases the reduced risk (final / initial, smallest lam)",
                      0.5, r0["risk"][-1] / r0["risk"][0]),
        Claim.holds("The PDE scheme conserves mass and decreases chi^2(mu*|mu)",
                    bool(np.allclose(pde.mass, 1.0, rtol=1e-9) and np.all(np.diff(pde.chi2) < 0)),
                    detail={"chi2_first": float(pde.chi2[0]), "chi2_last": float(pde.chi2[-1])}),
    ]
    metrics = dict(times=times, mmd_pde_final=mmd_pde_final, iid_floor=floor,
                   mmd_teacher_final=mmd_teacher_final,
                   pde_chi2=pde.chi2, risk_final={f"M={M},lam={lam:g}": float(r["risk"][-1])
                                                  for (M, lam), r in runs.items()})
    return Outcome(metrics=metrics, figures={"curves": fig, "densities": fig_d}, claims=claims)


@experiment("meanfield.varpro-vs-2ts", paper=PAPER, section="Sec. 6.1, Fig. 5",
            title="VarPro vs two-timescale: they agree when lam / time_scale is large",
            quick=dict(seed=0, n=512, width=128, lams=[1e-1, 1e-2, 1e-3], gamma=100.0, steps=384,
                       time_scale=2.0**-10),
            full=dict(seed=0, n=4096, width=1024, lams=[1e-1, 1e-2, 1e-3], gamma=100.0,
                      steps=32000, time_scale=2.0**-10))
def varpro_vs_2ts(cfg):
    x, y, om = _teacher_problem(cfg.n, cfg.gamma, cfg.seed)
    W0 = _student(cfg.width, cfg.seed)
    gaps, risks = {}, {}
    fig, ax = new_figure(2, 1)
    for lam in cfg.lams:
        a = varpro_train(TwoLayer(W0), x, y, lam=lam, steps=cfg.steps, time_scale=cfg.time_scale,
                         regularization="unbiased")
        b = two_timescale_train(TwoLayer(W0), x, y, lam=lam, steps=cfg.steps,
                                time_scale=cfg.time_scale, regularization="unbiased")
        gaps[lam] = float(mmd(a.features, b.features))
        risks[lam] = (float(a.risk[-1]), float(b.risk[-1]))
        ax[0].loglog(a.times[1:], a.risk[1:], label=f"VarPro lam={lam:g}")
        ax[0].loglog(b.times[1:], b.risk[1:], "--", label=f"2TS lam={lam:g}")
    ratios = [lam / cfg.time_scale for lam in cfg.lams]
    ax[0].set(xlabel="t", ylabel="risk", title="VarPro (solid) vs 2TS (dashed)")
    ax[0].legend(fontsize=6)
    ax[1].loglog(ratios, [gaps[lam] for lam in cfg.lams], "o-")
    ax[1].set(xlabel="lam / time_scale", ylabel="MMD(VarPro, 2TS) features",
              title=f"gap at t={cfg.steps * cfg.time_scale:.2f}")
    g = [gaps[lam] for lam in cfg.lams]
    claims = [
        Claim.holds("Paper Sec. 6.1: 2TS approximates VarPro when lam/time_scale is large "
                    "(feature-law gap grows as lam decreases)",
                    all(b > a for a, b in zip(g, g[1:])),
                    detail={f"lam/ts={r:g}": v for r, v in zip(ratios, g)}),
        Claim.at_most("VarPro's reduced risk is at most the 2TS loss at the largest lam "
                      "(VarPro minimises exactly over u)",
                      risks[cfg.lams[0]][1] * (1 + 1e-9), risks[cfg.lams[0]][0],
                      note="an observation, not a theorem: J(u, W) >= F(W) only at the same "
                           "features, and the two runs' features differ (at lam/ts = 102 they "
                           "nearly coincide, so the margin is small)"),
    ]
    return Outcome(metrics=dict(gap_mmd={f"{lam:g}": gaps[lam] for lam in cfg.lams},
                                risk={f"{lam:g}": risks[lam] for lam in cfg.lams}),
                   figures={"varpro_vs_2ts": fig}, claims=claims)


@experiment("meanfield.sharpness", paper=PAPER, section="Sec. 5-6.1 (gamma sweep)",
            title="Sharper teachers (larger gamma) converge more slowly",
            quick=dict(seed=0, n=512, width=128, lam=1e-3, gammas=[10.0, 100.0, 1000.0],
                       steps=384, time_scale=2.0**-8, n_grid=256),
            full=dict(seed=0, n=4096, width=1024, lam=1e-4, gammas=[10.0, 100.0, 1000.0],
                      steps=32000, time_scale=2.0**-10, n_grid=2048))
def sharpness(cfg):
    T = cfg.steps * cfg.time_scale
    times = list(np.linspace(0, T, 9))
    rel_chi2, rel_mmd, rel_mmd_pde, chi2_T = {}, {}, {}, {}
    fig, ax = new_figure(2, 1)
    for gamma in cfg.gammas:
        grid, h, mus, pde = _pde(gamma, times, cfg.n_grid)
        rel_chi2[gamma] = float(pde.chi2[-1] / pde.chi2[0])
        chi2_T[gamma] = float(pde.chi2[-1])
        pts = angles_to_circle(torch.as_tensor(grid))
        wstar = torch.as_tensor(mus * h)
        m_pde = [float(mmd(pts, pts, torch.as_tensor(d * h), wstar)) for d in pde.densities]
        rel_mmd_pde[gamma] = m_pde[-1] / m_pde[0]
        x, y, om = _teacher_problem(cfg.n, gamma, cfg.seed)
        res = varpro_train(TwoLayer(_student(cfg.width, cfg.seed)), x, y, lam=cfg.lam,
                           steps=cfg.steps, time_scale=cfg.time_scale, regularization="unbiased")
        tp = angles_to_circle(om)
        rel_mmd[gamma] = float(mmd(res.snapshots[-1], tp)) / float(mmd(res.snapshots[0], tp))
        ax[0].semilogy(times, np.array(m_pde) / m_pde[0], label=f"gamma={gamma:g}")
    ax[0].set(xlabel="t", ylabel="MMD(mu(t), mu*) / MMD(mu(0), mu*)",
              title="PDE: relative MMD to the teacher")
    ax[0].legend()
    ax[1].semilogx(cfg.gammas, [rel_mmd[g] for g in cfg.gammas], "o-", label="VarPro particles")
    ax[1].semilogx(cfg.gammas, [rel_mmd_pde[g] for g in cfg.gammas], "s--", label="PDE")
    ax[1].set(xlabel="gamma", ylabel="MMD(T)/MMD(0) to teacher", title=f"T={T:.2f}")
    ax[1].legend()
    c = [rel_mmd_pde[g] for g in cfg.gammas]
    m = [rel_mmd[g] for g in cfg.gammas]
    g_mid = cfg.gammas[len(cfg.gammas) // 2]
    claims = [
        Claim.holds("Paper: larger gamma (more extreme density ratio) converges more slowly -- "
                    "PDE relative MMD to the teacher at T increases with gamma",
                    all(b > a for a, b in zip(c, c[1:])),
                    detail={f"gamma={g:g}": v for g, v in zip(cfg.gammas, c)},
                    note="chi^2(T)/chi^2(0) is NOT monotone in gamma (see metrics rel_chi2): "
                         "chi^2(0) grows with gamma and collapses in a fast initial transient; "
                         "chi^2(T) itself increases with gamma (metrics chi2_T)."),
        Claim.holds("Same for VarPro particles: relative MMD to the teacher at T increases "
                    "with gamma", all(b > a for a, b in zip(m, m[1:])),
                    detail={f"gamma={g:g}": v for g, v in zip(cfg.gammas, m)}),
        Claim.close(f"Mean-field limit: particles' relative MMD matches the PDE's "
                    f"(gamma={g_mid:g}, lam={cfg.lam:g}, M={cfg.width})",
                    rel_mmd_pde[g_mid], rel_mmd[g_mid], rtol=0.15),
    ]
    return Outcome(metrics=dict(rel_chi2={f"{g:g}": v for g, v in rel_chi2.items()},
                                chi2_T={f"{g:g}": v for g, v in chi2_T.items()},
                                rel_mmd_pde={f"{g:g}": v for g, v in rel_mmd_pde.items()},
                                rel_mmd={f"{g:g}": v for g, v in rel_mmd.items()}),
                   figures={"sharpness": fig}, claims=claims)


def _torus_teacher(n, gamma, seed, period=4.0):
    """Two-mode periodic law on [-2, 2)^2, modes 2(-0.5, 0) and 2(0.5, 0.5) (App. B).

    gamma = -1: two Diracs. Otherwise each coordinate is a wrapped draw whose angle has density
    propto 1/(1 + gamma sin^2(theta/2)) (the circle construction, rescaled to the period).
    """
    modes = torch.tensor([[-1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    which = torch.arange(n) % 2
    centre = modes[which]
    if gamma < 0:
        return centre.clone()
    a = torch.stack([sample_circle_teacher(n, gamma, seed=seed + k, second_mode=0.0)
                     for k in range(2)], 1)
    pts = centre + a * (period / (2 * math.pi))
    return torch.remainder(pts + period / 2, period) - period / 2


@experiment("meanfield.rbf-torus", paper=PAPER, section="App. B",
            title="VarPro with RBF features on the 2-D torus: features reach the teacher",
            quick=dict(seed=0, n=512, width=128, lam=1e-2, gamma=100.0, steps=384,
                       time_scale=2.0**-8, teacher_width=1024),
            full=dict(seed=0, n=4096, width=1024, lam=1e-2, gamma=100.0, steps=32000,
                      time_scale=2.0**-10, teacher_width=4096))
def rbf_torus(cfg):
    g = torch.Generator().manual_seed(cfg.seed)
    x = torch.randn(cfg.n, 2, generator=g, dtype=torch.float64)
    wt = _torus_teacher(cfg.teacher_width, cfg.gamma, cfg.seed)
    teacher = TwoLayer(wt, "rbf", "torus")
    with torch.no_grad():
        y = teacher(x)
    W0 = (torch.rand(cfg.width, 2, generator=g, dtype=torch.float64) - 0.5) * 4
    snaps = list(np.linspace(0, cfg.steps, 9).astype(int))
    res = varpro_train(TwoLayer(W0, "rbf", "torus"), x, y, lam=cfg.lam, steps=cfg.steps,
                       time_scale=cfg.time_scale, regularization="unbiased",
                       snapshot_steps=snaps)
    d = [float(mmd(W, wt, period=4.0)) for W in res.snapshots]
    t = [s * cfg.time_scale for s in res.snapshot_steps]
    fig, ax = new_figure(3, 1)
    ax[0].loglog(res.times[1:], res.risk[1:])
    ax[0].set(xlabel="t", ylabel="reduced risk", title="risk")
    ax[1].semilogy(t, d, "o-")
    ax[1].set(xlabel="t", ylabel="periodic MMD to teacher", title="MMD")
    ax[2].scatter(wt[:, 0], wt[:, 1], s=1, c="gray", alpha=0.3, label="teacher")
    ax[2].scatter(res.features[:, 0], res.features[:, 1], s=4, c="C3", label="student (final)")
    ax[2].set(xlim=(-2, 2), ylim=(-2, 2), aspect="equal", title="features on the torus")
    ax[2].legend(fontsize=7)
    claims = [
        Claim.at_most("App. B: the RBF student's features approach the teacher's (periodic MMD "
                      "at the end / at t=0)", 0.5, d[-1] / d[0]),
        Claim.at_most("VarPro decreases the reduced risk (final / initial)", 0.5,
                      float(res.risk[-1] / res.risk[0])),
    ]
    return Outcome(metrics=dict(times=t, mmd_teacher=d, risk_final=float(res.risk[-1])),
                   figures={"rbf_torus": fig}, claims=claims)
