"""Reproductions of arXiv 2604.04891 (Peyre, "Muon dynamics as a spectral Wasserstein flow").

The paper's experiments are qualitative (Sec. 3-5, App. G): p = 1 vs p = inf couplings and
flows. The claims below check what the paper states in checkable form (bounds, thresholds,
invariants, whitening, lift identities); qualitative picture claims are recorded as metrics and
figures, not as pass/fail numbers.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .plotting import new_figure
from .registry import Claim, Outcome, experiment

PAPER = "arXiv:2604.04891"


# ----------------------------------------------------------------------------------------------
def _schatten_np(ev: np.ndarray, p: float) -> float:
    """||lambda||_p of nonnegative eigenvalues (p = inf: the max)."""
    ev = np.clip(ev, 0.0, None)
    return float(ev.max()) if math.isinf(p) else float((ev ** p).sum() ** (1.0 / p))


def spectral_certificate(x, y, res, p):
    """Recompute the certificate of a :func:`~measureflow.spectral.spectral_wasserstein`
    result ``res`` between uniform clouds ``x`` (n, d) and ``y`` (m, d), independently of the
    solver (it decides the ``spectral.bounds`` claims). Returns ``(lower, upper, valid)``.

    lower = W2^2(Q^{1/2} # mu, Q^{1/2} # nu) by POT's network simplex, valid for any Q in K_p
    (max-min theorem, weak direction; Q checked PSD with ||Q||_{S_p'} <= 1); upper =
    gamma_p(Sigma_plan) from the returned plan (marginals and signs checked), valid for any
    coupling. Both bounds hold whatever the solver did inside; ``valid`` is False when the
    plan is not a coupling or Q is not in K_p (then the bounds are not certified).
    """
    import ot as pot

    n, m = len(x), len(y)
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    P = np.asarray(res.plan, float)
    feas = (P.min() >= -1e-15 and np.abs(P.sum(1) - a).max() <= 1e-9
            and np.abs(P.sum(0) - b).max() <= 1e-9)
    D = y[None, :, :] - x[:, None, :]
    S = np.einsum("ij,ijk,ijl->kl", P, D, D)
    upper = _schatten_np(np.linalg.eigvalsh(S), p)
    Q = np.asarray(res.Q, float)
    evq, U = np.linalg.eigh(0.5 * (Q + Q.T))
    pc = 1.0 if math.isinf(p) else p / (p - 1.0)           # conjugate exponent p'
    in_K = evq.min() >= -1e-12 and _schatten_np(evq, pc) <= 1.0 + 1e-9
    Qh = (U * np.sqrt(np.clip(evq, 0.0, None))) @ U.T
    lower = float(pot.emd2(a, b, pot.dist(x @ Qh, y @ Qh)))
    return lower, upper, bool(feas and in_K)


def lp_gauge_solver(x, y, p, n_dir):
    """Independent solver of the discrete Spectral Wasserstein problem for d = 2 and
    p in {2, inf} (HiGHS LP over all n x m plan entries; the ``spectral.bounds`` cross-check).

    gamma_p(S) = max_{Q in K_p} <Q, S> is replaced by a max over a fixed grid of Q in K_p:
    p = inf, Q = u u^T for n_dir directions u in [0, pi); p = 2, Q = unit-Frobenius PSD
    matrices (a, b, sqrt2 c) on a Fibonacci grid of the sphere. The LP min_P max_k <Q_k, S(P)>
    gives a lower bound L of W^2 (fewer constraints) and its plan an upper bound
    U = gamma_p(S(P_LP)); returns (L, U).
    """
    from scipy.optimize import linprog

    n, m = len(x), len(y)
    D = (y[None, :, :] - x[:, None, :]).reshape(n * m, 2)
    if math.isinf(p):
        th = np.arange(n_dir) * np.pi / n_dir
        Qs = np.stack([np.outer(u, u) for u in np.c_[np.cos(th), np.sin(th)]])
    else:
        k = np.arange(8 * n_dir) + 0.5
        z, ph = 1 - 2 * k / (8 * n_dir), np.pi * (1 + 5 ** 0.5) * k
        v = np.c_[np.sqrt(1 - z * z) * np.cos(ph), np.sqrt(1 - z * z) * np.sin(ph), z]
        qa, qb, qc = v[:, 0], v[:, 1], v[:, 2] / math.sqrt(2)
        keep = (qa >= 0) & (qb >= 0) & (qa * qb >= qc * qc)
        Qs = np.stack([[[u, w], [w, t]] for u, t, w in zip(qa[keep], qb[keep], qc[keep])])
    G = np.einsum("ek,qkl,el->qe", D, Qs, D)                 # <Q_q, D_e D_e^T>
    nv = n * m
    c = np.r_[np.zeros(nv), 1.0]
    A_ub = np.c_[G, -np.ones(len(Qs))]
    A_eq = np.zeros((n + m, nv + 1))
    for i in range(n):
        A_eq[i, i * m:(i + 1) * m] = 1.0
    for j in range(m):
        A_eq[n + j, j:nv:m] = 1.0
    b_eq = np.r_[np.full(n, 1.0 / n), np.full(m, 1.0 / m)]
    sol = linprog(c, A_ub=A_ub, b_ub=np.zeros(len(Qs)), A_eq=A_eq, b_eq=b_eq,
                  bounds=[(0, None)] * nv + [(None, None)], method="highs")
    P = np.clip(sol.x[:nv], 0.0, None).reshape(n, m)
    S = np.einsum("e,ek,el->kl", P.reshape(-1), D, D)
    return float(sol.fun), _schatten_np(np.linalg.eigvalsh(S), p)


def _bounds_task(item):
    """One random pair of clouds: our solver, its recomputed certificate and (d = 2) the LP."""
    from ..spectral import spectral_wasserstein

    n, d = item["n"], item["d"]
    rng = np.random.default_rng(item["seed"])
    x = rng.normal(size=(n, d)) * rng.uniform(0.3, 2.0, size=d)
    y = rng.normal(size=(n, d)) * rng.uniform(0.3, 2.0, size=d) + rng.normal(size=d)
    w2 = spectral_wasserstein(x, y, p=1).value ** 2
    out = []
    for p in (2.0, math.inf):
        r = spectral_wasserstein(x, y, p=p)
        lo, up, ok = spectral_certificate(x, y, r, p)
        row = dict(d=d, p=p, w2=w2, value=r.value ** 2, lower=lo, upper=up, valid=ok,
                   comparison_low=d ** ((0.0 if math.isinf(p) else 1.0 / p) - 1.0) * w2)
        if d == 2 and item["lp_dirs"]:
            row["lp_lower"], row["lp_upper"] = lp_gauge_solver(x, y, p, item["lp_dirs"])
        out.append(row)
    return out


@experiment("spectral.bounds", paper=PAPER, section="Sec. 3, Prop. bounds",
            title="d^{1/p-1} W2^2 <= W_gamma_p^2 <= W2^2 with a certified optimum; isotropic "
                  "Gaussians attain the lower bound",
            quick=dict(seed=0, n=16, n_pairs=2, dims=(2, 3), lp_dirs=360),
            full=dict(seed=0, n=40, n_pairs=10, dims=(2, 3, 5), lp_dirs=720))
def bounds(cfg):
    from ..spectral import spectral_bures

    seeds = np.random.default_rng(cfg.seed).integers(0, 2**31, size=len(cfg.dims) * cfg.n_pairs)
    items = [dict(n=cfg.n, d=d, seed=int(seeds[i * cfg.n_pairs + j]), lp_dirs=cfg.lp_dirs)
             for i, d in enumerate(cfg.dims) for j in range(cfg.n_pairs)]
    rows = [r for out in cfg.map(_bounds_task, items) for r in out]
    # the paper's equality case, by the general max-min solver (not the commuting closed form)
    d, a, b = 3, 4.0, 1.0
    iso = [spectral_bures(a * np.eye(d), b * np.eye(d), p, method="maxmin") ** 2
           / (d ** (0 if math.isinf(p) else 1 / p) * (math.sqrt(a) - math.sqrt(b)) ** 2)
           for p in (2, 4, math.inf)]
    fig, ax = new_figure()
    for p, mk in ((2.0, "o"), (math.inf, "s")):
        ds = [r["d"] for r in rows if r["p"] == p]
        vs = [r["value"] / r["w2"] for r in rows if r["p"] == p]
        ax.scatter(np.array(ds) + (0.1 if mk == "s" else -0.1), vs, marker=mk, label=f"p={p}")
    dd = np.array(cfg.dims, float)
    ax.plot(dd, dd ** (1 / 2 - 1), "C0--", label="d^{1/2-1}")
    ax.plot(dd, dd ** -1.0, "C1--", label="d^{-1}")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xlabel("dimension d")
    ax.set_ylabel("W_gamma^2 / W2^2")
    ax.legend()
    gap = max((r["upper"] - r["lower"]) / r["upper"] for r in rows)
    valid = all(r["valid"] for r in rows)
    # sandwich on the certified interval [lower, upper] (relative to W2^2)
    slack = min(min(r["lower"] - r["comparison_low"], r["w2"] - r["upper"]) / r["w2"]
                for r in rows)
    lp = [r for r in rows if "lp_lower" in r]
    # our certified interval must meet the LP's: distance between the two intervals
    lp_dist = max(max(r["lp_lower"] - r["upper"], r["lower"] - r["lp_upper"], 0.0) / r["upper"]
                  for r in lp) if lp else float("nan")
    lp_width = max((r["lp_upper"] - r["lp_lower"]) / r["lp_upper"] for r in lp) if lp else 0.0
    n_inst = len(rows) // 2
    return Outcome(
        metrics={"ratio_to_W2": [r["value"] / r["w2"] for r in rows],
                 "certified_relative_gap": gap, "sandwich_slack": slack,
                 "lp_interval_relative_width": lp_width, "isotropic_ratio": iso},
        figures={"bounds": fig},
        claims=[
            Claim.at_least(
                "Prop. bounds (Sec. 3): d^{1/p-1} W2^2 <= W_gamma_p^2 <= W2^2, checked on the "
                "certified interval [lower, upper] of W^2 (min over instances and p = 2, inf "
                "of the relative slack of both inequalities)", -1e-9 if valid else math.inf,
                slack,
                note=f"{n_inst} random pairs of {cfg.n}-point clouds in d = {list(cfg.dims)}; "
                     "lower recomputed by POT (W2^2 of the Q^{1/2}-pushed clouds, Q checked in "
                     "K_p), upper = gamma_p of the returned plan (checked a coupling): the "
                     "interval contains W^2 whatever the solver did, so a suboptimal plan or "
                     "dual fails one side. Old claim: the solver's own value against the lower "
                     "bound, which every feasible plan satisfies"),
            Claim.at_most("Sec. 3 Thm minmax: the certified interval is tight: (upper - lower) / upper, max over "
                          "instances (solver tolerance 1e-6)", 1e-6, gap),
            Claim.at_most(
                "Sec. 3 (discrete program, convex in P), independent solver (d = 2): the HiGHS LP over all plan entries with the gauge "
                "on a direction grid gives an interval [L, U] of W^2 that meets ours "
                "(relative distance between the intervals)", 1e-9, lp_dist,
                note=f"{len(lp)} LP solves; LP interval width up to {lp_width:.1e} (grid of "
                     f"{cfg.lp_dirs} directions for p = inf, ~{2 * cfg.lp_dirs} PSD unit "
                     "matrices for p = 2)"),
            Claim.close("Prop. bounds: the lower bound is attained by N(0, aI) vs N(0, bI), "
                        "W^2 = d^{1/p}(sqrt a - sqrt b)^2 (general max-min solver, d = 3, "
                        "p = 2, 4, inf; worst ratio)", 1.0,
                        max(abs(v - 1) for v in iso) + 1.0, atol=1e-6,
                        note="tolerance: the solver's certified relative gap 1e-8 on W^2 plus "
                             "round-off; old claim used the default method (the commuting "
                             "closed form, exact by construction)"),
        ])


# ----------------------------------------------------------------------------------------------
def _annulus(rng, n):
    th = rng.uniform(0, 2 * np.pi, n)
    r = np.sqrt(rng.uniform(0.5 ** 2, 1.0, n))
    return np.c_[r * np.cos(th), r * np.sin(th)]


def _two_disks(rng, n):
    th = rng.uniform(0, 2 * np.pi, n)
    r = 0.45 * np.sqrt(rng.uniform(0, 1, n))
    c = np.where(rng.uniform(size=n) < 0.5, -0.6, 0.6)
    return np.c_[c + r * np.cos(th), 0.9 * r * np.sin(th)]


def _normalize(z):
    z = z - z.mean(0)
    return z / z.std()


@experiment("spectral.static-couplings", paper=PAPER, section="Sec. 3, Figs. static-pair/interp",
            title="Optimal couplings annulus -> two disks (shifted by 4.2 e1), p = 1 vs p = inf",
            quick=dict(seed=0, n=120, shift=4.2), full=dict(seed=0, n=700, shift=4.2))
def static_couplings(cfg):
    from .. import ot as mot
    from ..spectral import spectral_wasserstein
    from ..spectral.flows import displacement_interpolation

    rng = np.random.default_rng(cfg.seed)
    x = _normalize(_annulus(rng, cfg.n))
    y = _normalize(_two_disks(rng, cfg.n)) + np.array([cfg.shift, 0.0])
    r1 = spectral_wasserstein(x, y, p=1)
    ri = spectral_wasserstein(x, y, p=math.inf)
    ev, V = np.linalg.eigh(ri.Q)
    u = V[:, -1]
    mean_dir = (y.mean(0) - x.mean(0)) / np.linalg.norm(y.mean(0) - x.mean(0))
    align = abs(float(u @ mean_dir))
    # large-mean prediction (App. A): W^2 ~ R^2 + W_{uu^T}^2 of the centred clouds
    R2 = float(np.sum((y.mean(0) - x.mean(0)) ** 2))
    xc, yc = x - x.mean(0), y - y.mean(0)
    C1 = (xc[:, :1] - yc[:, :1].T) ** 2
    w1d = float(mot.solve(None, None, C1).value)
    pred = R2 + w1d
    # mass splitting of the p = inf plan (number of atoms per source point)
    split = float((ri.plan > 1e-12 / cfg.n).sum() / cfg.n)
    fig, axes = new_figure(3, 1, size=(4.2, 3.6))
    for ax, r, name in ((axes[0], r1, "p = 1 (W2)"), (axes[1], ri, "p = inf")):
        P = r.plan
        idx = np.argwhere(P > 0)
        sel = idx[np.linspace(0, len(idx) - 1, min(180, len(idx))).astype(int)]
        for i, j in sel:
            ax.plot([x[i, 0], y[j, 0]], [x[i, 1], y[j, 1]], "k-", lw=0.4, alpha=0.5)
        ax.scatter(*x.T, s=3, c="C0")
        ax.scatter(*y.T, s=3, c="C3")
        ax.set_title(name)
        ax.set_aspect("equal")
    for t, c in ((0.0, "C0"), (0.5, "C2"), (1.0, "C3")):
        z, _ = displacement_interpolation(x, y, ri.plan, t)
        axes[2].scatter(*z.T, s=2, c=c, label=f"t={t}")
    axes[2].set_title("p = inf geodesic")
    axes[2].legend()
    axes[2].set_aspect("equal")
    return Outcome(
        metrics={"W2": r1.value, "W_inf": ri.value, "gap_inf": ri.gap, "Q_inf": ri.Q,
                 "alignment": align, "large_mean_prediction": pred,
                 "atoms_per_source_p_inf": split, "n_iter": ri.n_iter},
        figures={"couplings": fig},
        claims=[
            Claim.at_least("Sec. 3: for p > 1 the optimal Q aligns with the mean displacement "
                           "(|<top eigvec of Q, e1>|)", 0.99, align),
            Claim.close("App. A large-mean limit: W_inf^2 = R^2 + W_{uu^T}^2(centred) + o(1)",
                        pred, ri.value ** 2, rtol=0.05,
                        note="shift 4.2 vs unit-variance shapes: o(1) is small but not 0"),
            Claim.at_most("Sanity check, not a statement of the paper (the two claims above "
                          "rest on it): the p = inf problem is solved to a certified relative "
                          "gap (W_inf^2 - certified lower bound) / W_inf^2", 1e-6,
                          ri.gap / ri.value ** 2,
                          note="the reference implementation's p = inf solver for these "
                               "figures is a heuristic (alternating rank-one assignments) "
                               "without a certificate"),
        ])


# ----------------------------------------------------------------------------------------------
def _mmd_setup(n, seed):
    g = np.random.default_rng(seed)
    w = np.array([0.40, 0.35, 0.25])
    cen = np.array([[-3.4, -1.1], [-0.6, 3.0], [3.8, -2.5]])
    sd = np.array([[0.55, 0.30], [0.35, 0.65], [0.45, 0.35]])
    comp = g.choice(3, size=n, p=w)
    y = cen[comp] + sd[comp] * g.normal(size=(n, 2))
    A = np.array([[1.4, 0.8], [-0.3, 0.6]])
    x = g.normal(size=(n, 2)) @ A.T + np.array([2.8, 2.4])
    return torch.tensor(x), torch.tensor(y)


def _mmd_energy(y):
    def dist(a, b):
        return torch.sqrt(((a[:, None] - b[None]) ** 2).sum(-1) + 0.01 ** 2)

    dyy = dist(y, y).mean()

    def energy(X):
        return 2 * dist(X, y).mean() - dist(X, X).mean() - dyy

    return energy


def ede_defect(run) -> tuple[float, float]:
    """Energy-dissipation defect of a flow recorded at every step (the ``spectral.mmd-flow``
    claim). ``run`` has ``energies``, ``dual_norms`` (N*) and ``times`` (arrays of K + 1).

    Returns ``(defect, drop)``: the energy drop E_0 - E_K minus the left Riemann sum of N*^2
    (the dissipation rate of Thm formalGF), and the drop; the defect is 0 for an exact
    dissipation record and O(step) for an Euler run.
    """
    E = np.asarray(run.energies, float)
    N2 = np.asarray(run.dual_norms, float)
    t = np.asarray(run.times, float)
    drop = E[0] - E[-1]
    return float(drop - (np.diff(t) * N2[:-1]).sum()), float(drop)


def _mmd_task(item):
    """One MMD flow (p, horizon, steps) recorded at every step (for the dissipation check)."""
    from ..spectral.flows import particle_flow

    x, y = _mmd_setup(item["n"], item["seed"])
    run = particle_flow(_mmd_energy(y), x, p=item["p"], step=item["T"] / item["steps"],
                        n_steps=item["steps"], record_every=1)
    keep = np.unique(np.r_[np.arange(0, item["steps"] + 1, max(1, item["steps"] // 100)),
                           item["steps"]])
    k = max(1, item["steps"] // 20)
    c0 = run.positions[0].mean(0)
    outward = float(((run.positions[k] - c0).norm(dim=1) - (run.positions[0] - c0).norm(dim=1))
                    .mean())
    defect, drop = ede_defect(run)
    return dict(p=item["p"], steps=item["steps"], positions=run.positions[keep].numpy(),
                times=run.times[keep].numpy(), energies=run.energies[keep].numpy(),
                defect=defect, drop=drop, outward=outward)


@experiment("spectral.mmd-flow", paper=PAPER, section="Sec. 5, Fig. mmd; Sec. 2 Thm formalGF",
            title="Energy-distance (MMD) flow to a 3-Gaussian mixture, p = 1 vs p = inf",
            quick=dict(seed=1234, n=80, steps=250, horizon_1=60.0, horizon_inf=40.0),
            full=dict(seed=1234, n=200, steps=6000, horizon_1=150.0, horizon_inf=96.0))
def mmd_flow(cfg):
    from ..spectral import particle_lmo

    x, y = _mmd_setup(cfg.n, cfg.seed)
    E = _mmd_energy(y)
    # each flow at the paper's step and at half of it (same horizon): the Euler defect of the
    # energy-dissipation equality dF/dt = -N*^2 must vanish linearly in the step
    items = [dict(n=cfg.n, seed=cfg.seed, p=p, T=T, steps=m * cfg.steps)
             for p, T in ((1, cfg.horizon_1), (math.inf, cfg.horizon_inf)) for m in (1, 2)]
    outs = cfg.map(_mmd_task, items, cost=lambda it: it["steps"])
    runs = {o["p"]: o for o in outs if o["steps"] == cfg.steps}
    half = {o["p"]: o for o in outs if o["steps"] == 2 * cfg.steps}
    ede = {p: (runs[p]["defect"] / runs[p]["drop"], half[p]["defect"] / half[p]["drop"])
           for p in runs}
    # whitening (Rmk. muon-insight) is an identity of the p = inf selector: a metric, no claim
    X0 = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(E(X0), X0)
    w = torch.full((cfg.n,), 1.0 / cfg.n, dtype=torch.float64)
    v = particle_lmo(g, w, math.inf, from_gradient=True)
    ev = torch.linalg.eigvalsh((v * w[:, None]).T @ v)
    cond = float(ev.max() / ev.min())
    out = {p: r["outward"] for p, r in runs.items()}
    fin = {p: float(r["energies"][-1] / runs[1]["energies"][0]) for p, r in runs.items()}
    fig, axes = new_figure(3, 1, size=(4.2, 3.8))
    for ax, p in ((axes[0], 1), (axes[1], math.inf)):
        P = runs[p]["positions"]
        for i in range(0, cfg.n, max(1, cfg.n // 60)):
            ax.plot(P[:, i, 0], P[:, i, 1], "-", lw=0.5, color="gray")
        ax.scatter(*y.T, s=3, c="C3")
        ax.scatter(*P[-1].T, s=3, c="C0")
        ax.set_title(f"p = {p}")
    for p, c in ((1, "C0"), (math.inf, "C1")):
        r = runs[p]
        axes[2].semilogy(r["times"] / r["times"][-1], r["energies"], c, label=f"p = {p}")
    axes[2].set_xlabel("t / T (normalized horizon)")
    axes[2].set_ylabel("MMD^2")
    axes[2].legend()
    claims = []
    for p in (1, math.inf):
        d1, d2 = ede[p]
        claims.append(Claim.close(
            f"Thm formalGF (Sec. 2): along the flow dF/dt = -N*_mu(g)^2 (p = {p}): the Euler "
            "defect of the energy-dissipation equality halves with the step (defect(tau/2) / "
            "defect(tau))", 0.5, d2 / d1 if d1 != 0 else float("nan"), atol=0.1,
            note=f"relative defects (E_0 - E_T - sum tau N*^2) / (E_0 - E_T): {d1:.2e} at the "
                 f"paper's step, {d2:.2e} at half of it. Explicit Euler has a defect "
                 "-tau^2/2 sum v^T Hess v = O(tau), so the ratio is 1/2 + O(tau); a wrong "
                 "velocity or clock gives an O(1) defect and a ratio near 1. Replaces the "
                 "claim 'p = inf whitens the force covariance', an identity of the selector "
                 f"(condition number {cond:.12f}, kept as a metric). Tolerance 0.1: the O(tau) "
                 "correction to the ratio is of the order of the relative defect (a few %)"))
    claims += [
        Claim.at_most("Fig. mmd: both flows drive MMD^2 to the target (p = 1, final / initial)",
                      0.1, fin[1]),
        Claim.at_most("Fig. mmd: both flows drive MMD^2 to the target (p = inf, final / "
                      "initial)", 0.1, fin[math.inf]),
        Claim.at_least("Fig. mmd: p = inf shows an early outward motion larger than p = 1 "
                       "(mean radial displacement over the first 5 % of the horizon, p = inf "
                       "minus p = 1)", 0.0, out[math.inf] - out[1],
                       note="qualitative statement of the paper turned into a sign test"),
    ]
    return Outcome(
        metrics={"final_over_initial": {str(k_): v_ for k_, v_ in fin.items()},
                 "velocity_cov_condition_p_inf": cond,
                 "ede_relative_defect": {str(k_): list(v_) for k_, v_ in ede.items()},
                 "early_radial_displacement": {str(k_): v_ for k_, v_ in out.items()}},
        figures={"mmd_flow": fig}, claims=claims)


# ----------------------------------------------------------------------------------------------
@experiment("spectral.gaussian-modes", paper=PAPER, section="App. F, Fig. gaussian-leaves",
            title="Modal ODE of linear two-layer networks: invariants and rank-loss thresholds",
            quick=dict(seed=0, T=6.0, dt=6e-3), full=dict(seed=0, T=18.0, dt=2e-4))
def gaussian_modes(cfg):
    from ..spectral.flows import modal_flow, modal_invariant, rank_loss_threshold

    ps = (1.0, 2.0, 4.0, math.inf)
    betas = np.array([[-1.25, -0.65], [-0.35, 1.15], [0.75, -1.10], [1.30, 0.55]])
    s0 = np.array([0.1, 10.0])
    ext, inv_dev, final_e, mono, last_dr = {}, {}, {}, True, {}
    fig, axes = new_figure(2, 1, size=(4.6, 3.8))
    for p, c in zip(ps, ("C0", "C1", "C2", "C3")):
        res = modal_flow(np.zeros_like(betas), np.broadcast_to(s0, betas.shape), betas, p,
                         T=cfg.T, dt=cfg.dt, record_every=1)
        ext[p] = res.extinction_r[:, 0]
        # |r_k - r_{k-1}| over the step in which mode 1 went extinct: the crossing |r| = R_p
        # lies inside that step, so it bounds the location error of the recorded r
        kx = np.searchsorted(res.times, res.extinction_time[:, 0] - 1e-12 * cfg.T)
        last_dr[p] = np.where(np.isnan(ext[p]), np.nan, np.abs(
            res.r[np.clip(kx, 1, len(res.times) - 1), np.arange(len(betas)), 0]
            - res.r[np.clip(kx - 1, 0, len(res.times) - 2), np.arange(len(betas)), 0]))
        a, b = res.s + res.r, res.s - res.r
        inv = modal_invariant(a, b, p)
        alive = (a > 1e-3 * s0) & (b > 1e-3 * s0)
        dev = np.where(alive, np.abs(inv / inv[0] - 1), 0.0)
        inv_dev[p] = float(dev.max())
        final_e[p] = float(res.energy[-1].max())
        mono &= bool(np.all(np.diff(res.energy, axis=0) <= 1e-10))
        for k in range(len(betas)):
            axes[1].plot(res.r[::10, k, 0], res.r[::10, k, 1], c, lw=0.8,
                         label=f"p={p}" if k == 0 else None)
        # one mode, beta = 1, two starts
        r1 = modal_flow(np.array([[-1.5], [-0.5]]), np.array([[1.8], [2.0]]), 1.0, p,
                        T=cfg.T, dt=cfg.dt, record_every=10)
        for k in range(2):
            axes[0].plot(r1.r[:, k, 0], r1.s[:, k, 0], c, lw=0.8,
                         label=f"p={p}" if k == 0 else None)
        mono &= bool(np.all(np.diff(r1.energy, axis=0) <= 1e-10))
    axes[0].set_xlabel("r")
    axes[0].set_ylabel("s")
    axes[0].set_title("1 mode, beta = 1")
    axes[0].legend(fontsize=7)
    axes[1].scatter(*betas.T, c="k", marker="x")
    axes[1].set_title("2 modes: (r1, r2), s0 = (0.1, 10)")
    claims = []
    for p in ps[1:]:
        Rp = rank_loss_threshold(p, 0.1)
        above = np.abs(betas[:, 0]) > Rp
        err = np.abs(np.abs(ext[p][above]) - Rp)
        ratio = err / last_dr[p][above]
        w = int(np.nanargmax(ratio)) if np.isfinite(ratio).any() else 0
        claims.append(Claim.close(
            f"App. F Prop. boundary: a balanced mode (a = b = alpha = 0.1) with |beta1| > R_p "
            f"= alpha 2^(p/(p-1)) loses rank at |r| = R_p, p = {p} (target with the largest "
            "error / step increment)", Rp, float(np.abs(ext[p][above][w])),
            atol=float(last_dr[p][above][w]),
            note=f"{int(above.sum())} targets above R_p; errors {np.round(err, 7).tolist()}, "
                 f"tolerances {np.round(last_dr[p][above], 7).tolist()}: the increment of r "
                 "over the RK4 step in which a or b reached 0 (the crossing lies inside that "
                 f"step; dt = {cfg.dt}). Old tolerance: 2 % of R_p"))
        if (~above).any():
            claims.append(Claim.holds(
                f"Prop. boundary: no rank loss when |beta1| < R_p (p = {p})",
                bool(np.isnan(ext[p][~above]).all()), detail=ext[p][~above].tolist()))
    claims.append(Claim.holds("App. F: p = 1 (invariant ab): no finite-time rank loss",
                              bool(np.isnan(ext[1.0]).all())))
    claims.append(Claim.at_most("App. F: invariants (ab, a^eta + b^eta, sqrt a + sqrt b) conserved "
                                "before extinction (max relative drift)", 1e-3,
                                max(inv_dev.values())))
    claims.append(Claim.holds("App. F: energy 1/2 |r - beta|^2 is nonincreasing (d/dt = -N^2)", mono))
    return Outcome(metrics={"extinction_r_mode1": {str(k): v for k, v in ext.items()},
                            "invariant_drift": {str(k): v for k, v in inv_dev.items()},
                            "final_energy_max": {str(k): v for k, v in final_e.items()}},
                   figures={"modes": fig}, claims=claims)


# ----------------------------------------------------------------------------------------------
def _relu_setup(seed, n_train, n_neurons):
    g = torch.Generator().manual_seed(seed)
    ang = torch.tensor([0.38, 2.42, 4.63], dtype=torch.float64)
    v_star = torch.stack([ang.cos(), ang.sin()], 1)
    u_star = torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    Z = torch.randn(n_train, 2, generator=g, dtype=torch.float64)
    y = (u_star * torch.relu(Z @ v_star.T)).mean(1)
    teach = torch.cat([u_star[:, None], v_star], 1)
    X0 = teach.mean(0) + math.sqrt(0.5) * teach.std(0) * torch.randn(n_neurons, 3, generator=g,
                                                                     dtype=torch.float64)
    return Z, y, X0, v_star


def _relu_energy(Z, y):
    def energy(X, w):
        h = (w[:, None] * X[:, :1] * torch.relu(X[:, 1:] @ Z.T)).sum(0)
        return 0.5 * ((h - y) ** 2).mean()
    return energy


def _cap_fraction(energy, positions, w, p, step, cap) -> float:
    """Fraction of the recorded states whose uncapped Euler step exceeds ``cap`` (Frobenius)."""
    from ..spectral import particle_lmo

    hits = 0
    for X in positions:
        Xr = X.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(energy(Xr), Xr)
        v = particle_lmo(g, w, p, from_gradient=True)
        hits += int(step * float(torch.linalg.matrix_norm(v)) > cap)
    return hits / len(positions)


@experiment("spectral.relu-teacher", paper=PAPER, section="Sec. 5, Fig. mlp; App. J",
            title="Two-layer ReLU teacher-student, p = 1 vs p = inf; sphere lift check",
            quick=dict(seed=7, n_train=400, n_neurons=64, steps=300, T1=1500.0, Tinf=1000.0),
            full=dict(seed=7, n_train=2000, n_neurons=1920, steps=2000, T1=78.125,
                      Tinf=52.083))
def relu_teacher(cfg):
    from ..spectral.flows import particle_flow
    from ..spectral.sphere import lift_check

    Z, y, X0, v_star = _relu_setup(cfg.seed, cfg.n_train, cfg.n_neurons)
    w = torch.full((cfg.n_neurons,), 1.0 / cfg.n_neurons, dtype=torch.float64)
    E = _relu_energy(Z, y)
    runs = {}
    for p, T in ((1, cfg.T1), (math.inf, cfg.Tinf)):
        # the paper caps ||Delta X||_F at 0.2 per (notebook) step
        runs[p] = particle_flow(lambda X: E(X, w), X0, p=p, weights=w, step=T / cfg.steps,
                                n_steps=cfg.steps, max_displacement=0.2,
                                record_every=max(1, cfg.steps // 50))
    dev = lift_check(E, X0[:16], w[:16] * (cfg.n_neurons / 16), p=math.inf, step=0.5,
                     n_steps=10)
    # how often the 0.2 displacement cap binds (uncapped Euler step longer than the cap), at the
    # recorded states: at quick sizes the steps are large, so these are mostly capped steps
    cap_bind = {p: _cap_fraction(lambda X: E(X, w), r.positions, w, p, T / cfg.steps, 0.2)
                for (p, r), T in zip(runs.items(), (cfg.T1, cfg.Tinf))}
    # angular mass near the teacher directions, weights |u| |v| (Fig. mlp histograms)
    near = {}
    for p, r in runs.items():
        X = r.positions[-1]
        th = torch.atan2(X[:, 2], X[:, 1])
        wt = X[:, 0].abs() * X[:, 1:].norm(dim=1)
        ts = torch.atan2(v_star[:, 1], v_star[:, 0])
        dth = torch.remainder(th[:, None] - ts[None] + math.pi, 2 * math.pi) - math.pi
        near[p] = float((wt * (dth.abs().min(1).values < 0.3)).sum() / wt.sum())
    fin = {p: float(r.energies[-1] / r.energies[0]) for p, r in runs.items()}
    fig, axes = new_figure(2, 1, size=(4.4, 3.6))
    for p, c in ((1, "C0"), (math.inf, "C1")):
        r = runs[p]
        axes[0].semilogy(r.times / r.times[-1], r.energies, c, label=f"p = {p}")
        X = r.positions[-1]
        axes[1].scatter(X[:, 0].abs() * X[:, 1], X[:, 0].abs() * X[:, 2], s=4, c=c,
                        label=f"p = {p}")
    axes[1].scatter(*v_star.T, marker="x", c="k", s=40, label="teacher")
    axes[0].set_xlabel("t / T")
    axes[0].set_ylabel("loss")
    axes[0].legend()
    axes[1].set_title("|u| v at the end")
    axes[1].legend(fontsize=7)
    return Outcome(
        metrics={"final_over_initial": {str(k): v for k, v in fin.items()},
                 "mass_near_teacher": {str(k): v for k, v in near.items()},
                 "lift_deviation": dev,
                 "cap_binding_fraction": {str(k): v for k, v in cap_bind.items()}},
        figures={"relu": fig},
        claims=[
            Claim.at_most("App. J: particle flow and intrinsic sphere flow (2-homogeneous "
                          "lift) agree (max deviation)", 1e-9, max(dev.values())),
            Claim.at_most("Sec. 5, Fig. mlp (energy curves; the paper gives no number): both "
                          "flows train the student: final / initial loss <= 0.2 (p = 1; the "
                          "threshold is ours)", 0.2,
                          fin[1], note="fewer, larger steps than the paper; the 0.2 cap binds "
                          f"at {cap_bind[1]:.0%} of recorded states"),
            Claim.at_most("Sec. 5, Fig. mlp (energy curves; the paper gives no number): both "
                          "flows train the student: final / initial loss <= 0.2 (p = inf; the "
                          "threshold is ours)", 0.2,
                          fin[math.inf], note="fewer, larger steps than the paper; the 0.2 cap "
                          f"binds at {cap_bind[math.inf]:.0%} of recorded states"),
        ])


# ----------------------------------------------------------------------------------------------
def _attn_forward(X, seqs, dT, dH):
    # X: (heads, 48) = (Q, K, V, O) each (dH x dT); seqs: (N, m, dT)
    Hn = X.shape[0]
    P = X.reshape(Hn, 4, dH, dT)
    Q, K, V, O = P[:, 0], P[:, 1], P[:, 2], P[:, 3]
    q = torch.einsum("hat,nmt->hnma", Q, seqs)
    k = torch.einsum("hat,nmt->hnma", K, seqs)
    v = torch.einsum("hat,nmt->hnma", V, seqs)
    A = torch.softmax(torch.einsum("hnja,hnia->hnji", q, k) / math.sqrt(dH), dim=-1)
    out = torch.einsum("hnji,hnia->hnja", A, v)
    return torch.einsum("hat,hnja->hnjt", O, out), A


_ATTN = dict(m=16, dT=4, dH=3, heads=5, qk={"dense": 0.08, "sparse": 1.45}, vo=0.65)


def _attn_teacher(g, kind):
    """A 5-head teacher (Q, K, V, O), q/k scale 0.08 (dense) or 1.45 (sparse), v/o scale 0.65."""
    qk, vo, dH, dT = _ATTN["qk"][kind], _ATTN["vo"], _ATTN["dH"], _ATTN["dT"]
    sc = torch.tensor([qk, qk, vo, vo], dtype=torch.float64)
    return (torch.randn(_ATTN["heads"], 4, dH, dT, generator=g, dtype=torch.float64)
            * sc[None, :, None, None]).reshape(_ATTN["heads"], -1)


def teacher_effective_tokens(item):
    """Effective numbers of attended tokens N_eff = (sum_i w_i^2)^-1 of one trial's dense and
    sparse teachers (``spectral.attention``), averaged over query rows, heads and the N
    training sequences. ``item = {"seed": int, "N": int}``; returns ``{"dense": float,
    "sparse": float}`` (N_eff lies in [1, m], m = 16 tokens)."""
    g = torch.Generator().manual_seed(item["seed"])
    seqs = torch.randn(item["N"], _ATTN["m"], _ATTN["dT"], generator=g, dtype=torch.float64)
    out = {}
    for kind in ("dense", "sparse"):
        _, A = _attn_forward(_attn_teacher(g, kind), seqs, _ATTN["dT"], _ATTN["dH"])
        out[kind] = float((1.0 / (A * A).sum(-1)).mean())
    return out


def _attn_train_task(item):
    """One teacher-student flow (p, teacher kind) from the shared initialisation."""
    from ..spectral.flows import particle_flow

    seqs, target, X0 = (torch.as_tensor(item[k]) for k in ("seqs", "target", "X0"))

    def energy(X):
        y, _ = _attn_forward(X, seqs, _ATTN["dT"], _ATTN["dH"])
        return 0.5 * ((y.mean(0) - target) ** 2).sum(-1).mean()

    r = particle_flow(energy, X0, p=item["p"], step=item["T"] / item["steps"],
                      n_steps=item["steps"], max_displacement=0.45,
                      record_every=max(1, item["steps"] // 40))
    return dict(kind=item["kind"], p=item["p"], times=r.times.numpy(),
                energies=r.energies.numpy())


@experiment("spectral.attention", paper=PAPER, section="Sec. 5, Fig. attention",
            title="Shallow multi-head attention teacher-student (dense / sparse teachers)",
            quick=dict(seed=0, students=24, steps=50, T1=6.0, Tinf=6.0, N=32, trials=5),
            full=dict(seed=0, students=200, steps=960, T1=480.0, Tinf=432.0, N=32, trials=20))
def attention(cfg):
    m, dT = _ATTN["m"], _ATTN["dT"]
    # teachers' effective token counts over independent trials (the paper: 5 paired trials)
    seeds = np.random.default_rng(cfg.seed).integers(0, 2**31, size=cfg.trials)
    neff = cfg.map(teacher_effective_tokens, [dict(seed=int(sd), N=cfg.N) for sd in seeds])
    eff = {k: np.array([t[k] for t in neff]) for k in ("dense", "sparse")}
    # training runs: one draw of sequences, teachers and the shared student initialisation
    g = torch.Generator().manual_seed(cfg.seed)
    seqs = torch.randn(cfg.N, m, dT, generator=g, dtype=torch.float64)
    X0 = 0.16 * torch.randn(cfg.students, 4 * _ATTN["dH"] * dT, generator=g,
                            dtype=torch.float64)
    items = []
    for kind in ("dense", "sparse"):
        yT, _ = _attn_forward(_attn_teacher(g, kind), seqs, dT, _ATTN["dH"])
        for p, T in ((1, cfg.T1), (math.inf, cfg.Tinf)):
            items.append(dict(kind=kind, p=p, T=T, steps=cfg.steps, seqs=seqs.numpy(),
                              target=yT.mean(0).numpy(), X0=X0.numpy()))
    res = {}
    fig, axes = new_figure(2, 1, size=(4.2, 3.4))
    for o in cfg.map(_attn_train_task, items):
        res[o["kind"], o["p"]] = float(o["energies"][-1] / o["energies"][0])
        ax = axes[0 if o["kind"] == "dense" else 1]
        ax.semilogy(o["times"] / o["times"][-1], o["energies"], "C0" if o["p"] == 1 else "C1",
                    label=f"p = {o['p']}")
        ax.set_title(f"{o['kind']} teacher")
        ax.legend()
    claims = []
    for kind, paper, rnd in (("dense", 16.0, 0.5), ("sparse", 2.1, 0.05)):
        v = eff[kind]
        sd = float(v.std(ddof=1))
        tol = rnd + 3.0 * sd * math.sqrt(1.0 / len(v) + 1.0 / 5.0)
        claims.append(Claim.close(
            f"Sec. 5 Fig. attention: the {kind} teacher (q/k scale {_ATTN['qk'][kind]}) attends "
            f"to about {paper:g} tokens, N_eff = (sum_i w_i^2)^-1 of its attention rows "
            "(mean over rows, heads, sequences and trials)", paper, float(v.mean()), atol=tol,
            note=f"{len(v)} trials of {cfg.N} sequences; trial-to-trial sd {sd:.3f}. "
                 f"Tolerance {rnd:g} (the paper's value is rounded) + 3 sd sqrt(1/{len(v)} + "
                 "1/5): the difference of two independent trial means, ours and the paper's "
                 "5 trials (assumed to have the same spread). Old claim: exp(entropy), only "
                 "the ordering sparse < dense"))
    claims += [
        Claim.at_most("Sec. 5 Fig. attention: the p = inf flow decreases the loss (dense teacher, final / initial)", 0.5,
                      res["dense", math.inf],
                      note="few steps; p = 1 (no claim: the paper states no rate) reached "
                      f"{res['dense', 1]:.2f}"),
        Claim.at_most("Sec. 5 Fig. attention: the p = inf flow decreases the loss (sparse teacher, final / initial)",
                      0.5, res["sparse", math.inf],
                      note="few steps; p = 1 (no claim: the paper states no rate) reached "
                      f"{res['sparse', 1]:.2f}"),
    ]
    return Outcome(
        metrics={"final_over_initial": {f"{k}, p={p}": v for (k, p), v in res.items()},
                 "teacher_effective_tokens": {k: v.tolist() for k, v in eff.items()}},
        figures={"attention": fig}, claims=claims)


# ----------------------------------------------------------------------------------------------
@experiment("spectral.muon-optimizer", paper=PAPER, section="App. B (Muon as the p = inf step)",
            title="optim.Muon reproduces torch.optim.Muon; trace-scaled p = inf step = J_inf",
            quick=dict(seed=0, steps=3), full=dict(seed=0, steps=50))
def muon_optimizer(cfg):
    from ..optim import Muon, Schatten
    from ..spectral import schatten_lmo

    g = torch.Generator().manual_seed(cfg.seed)
    same = True
    for shape in ((64, 32), (32, 64)):
        W0 = torch.randn(*shape, generator=g)
        a, b = torch.nn.Parameter(W0.clone()), torch.nn.Parameter(W0.clone())
        ta, ob = torch.optim.Muon([a], lr=0.02), Muon([b], lr=0.02)
        for _ in range(cfg.steps):
            G = torch.randn(*shape, generator=g)
            a.grad, b.grad = G.clone(), G.clone()
            ta.step()
            ob.step()
            same &= bool(torch.equal(a, b))
    G = torch.randn(20, 12, generator=g, dtype=torch.float64)
    c = torch.nn.Parameter(torch.zeros(20, 12, dtype=torch.float64))
    opt = Schatten([c], lr=1.0, p=math.inf, momentum=0.0, scale="schatten", polar="fast")
    c.grad = G.clone()
    opt.step()
    # the paper's formula from a direct SVD (independent of the library's LMO code)
    U, sv, Wt = torch.linalg.svd(G, full_matrices=False)
    J_inf = -sv.sum() * (U @ Wt)
    err = float((c.detach() - J_inf).abs().max())
    err_lmo = float((schatten_lmo(G, math.inf) - J_inf).abs().max())
    fig, ax = new_figure()
    s = torch.linalg.svdvals(G)
    ax.bar(range(len(s)), torch.linalg.svdvals(c.detach()), label="singular values of -J_inf")
    ax.plot(range(len(s)), s, "k.", label="singular values of G")
    ax.legend()
    return Outcome(metrics={"bitwise_equal": same, "trace_scaled_error": err,
                            "schatten_lmo_error": err_lmo},
                   figures={"svals": fig},
                   claims=[
                       Claim.holds("Sanity check, not a statement of the paper: optim.Muon == "
                                   "torch.optim.Muon bit for bit (same settings, Newton-Schulz "
                                   "polar factor)", same,
                                   note="the paper's Muon (App. B) is the reference of this "
                                        "optimizer; the bitwise match to PyTorch's is a check "
                                        "of the library"),
                       Claim.at_most("App. A Prop. schatten + App. B: the p = inf normalized "
                                     "step (Muon, trace-scaled) is J_inf(G) = -||G||_* U W^T: "
                                     "one Schatten(p=inf, scale='schatten', polar='fast') step "
                                     "vs that formula from an SVD of G (max abs difference)",
                                     1e-10, err,
                                     note="float64 20 x 12 gradient; old reference: the "
                                          "library's schatten_lmo(G, inf) (same code family), "
                                          "now a direct SVD; their difference is the metric "
                                          "schatten_lmo_error"),
                   ])
