"""Reproductions for arXiv 2505.07124 (Andrade, Peyre, Poon): sharpened Fenchel-Young losses,
inverse unbalanced OT and inverse JKO.

Only the abstracts (v1-v3) and the v3 table of contents are readable: Sec. 4 "Stability", Sec. 5
"Numerical experiments", App. A "Strong convexity of the exponential functional", App. B
"Concentration of empirically centered feature covariances", App. C "Curvature of iUOT". Each
claim quotes the abstract sentence it tests and its section; what the abstract does not fix
(bases, sizes, the rate n^-1/2, the Hessian formulas) is derived here and marked [derived] in the
claim and in ``docs/inverse.md``. Tolerances come from the sampling error of the run (bootstrap
over repetitions, binomial or AUC standard errors) or from a derived bound.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from ..core import ConvergenceWarning
from .plotting import loglog_fit, new_figure
from .registry import Claim, Outcome, experiment

PAPER = "arXiv:2505.07124"
Q_STABILITY = ('v3 abstract (Sec. 4): "Our main stability theorem separates the inverse error '
               'analysis into measurement error, forward perturbation, and empirical curvature" '
               '... "obtaining high-probability parameter recovery bounds"')
Q_GAUSS = ('v1 abstract: "we validate our approach through numerical experiments on Gaussian '
           'distributions, where closed-form solutions are available"')
Q_COND = ('v3 abstract (Sec. 3, Sec. 5): sharpened FY losses keep "the estimator calibrated while '
          'improving the local geometry of the loss"; "Numerical experiments illustrate the '
          'conditioning effect of sharpening"')
Q_SPARSE = ('v3 abstract (Sec. 5): "... and its benefits for sparse inverse-gradient-flow '
            'recovery"; v2 abstract: "source conditions to ensure stability of our method under '
            'mirror stratifiable regularizers (such as l1 or nuclear norm)"')
Q_LINK = ('v1 abstract: iUOT "has applications such as link prediction in machine learning"')


def _rng(*key) -> np.random.Generator:
    """A generator seeded by the item's key (independent of where the task runs)."""
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


def _boot_slope(ns, errs, n_boot: int = 400, seed: int = 0):
    """Log-log slope of the mean error vs n and its bootstrap standard error.

    ``errs[i]`` are the repetitions at ``ns[i]``; each bootstrap draw resamples the repetitions
    of every n (the sampling error of the run) and refits the slope.
    """
    ns = np.asarray(ns, float)
    fit = loglog_fit(ns, [np.mean(e) for e in errs])
    rng = np.random.default_rng(seed)
    slopes = []
    for _ in range(n_boot):
        means = [np.mean(rng.choice(e, size=len(e), replace=True)) for e in errs]
        slopes.append(loglog_fit(ns, means)["slope"])
    return fit["slope"], float(np.std(slopes, ddof=1)), fit


def _slope_claim(statement, slope, se, reps, before):
    """The rate claim: fitted slope = -1/2 within 2 bootstrap standard errors."""
    return Claim.close(statement, -0.5, slope, atol=2 * se,
                       note=f"tolerance 2 x the bootstrap standard error of the slope over the "
                            f"{reps} repetitions per n (se = {se:.3f}). Before this rule the claim "
                            f"was the fixed window [-0.8, -0.3] (quick run: {before}).")


# ----------------------------------------------------------------------------- Gaussian iUOT

def _gauss_pairs(rng, Sa, Sb, G, n):
    full = np.block([[Sa, G], [G.T, Sb]])
    z = rng.multivariate_normal(np.zeros(full.shape[0]), full, size=n)
    return z[:, :Sa.shape[0]], z[:, Sa.shape[0]:]


_A_IUOT = np.array([[1.0, 0.5], [-0.4, 0.8]])
_SA = np.array([[1.0, 0.3], [0.3, 0.8]])
_SB = np.array([[0.9, -0.2], [-0.2, 1.1]])


def _iuot_task(item):
    """One repetition of the Gaussian iUOT experiment: FY fit and plug-in closed form."""
    from .. import inverse as inv

    seed, n, rep, eps = item
    G = inv.gaussian_bilinear_plan(_A_IUOT, _SA, _SB, eps=eps)
    x, y = _gauss_pairs(_rng(seed, n, rep), _SA, _SB, G, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = inv.iuot(x, y, "bilinear", eps=eps, rho=None, tol=1e-5)
    Sxy = np.cov(np.hstack([x, y]).T, bias=True)
    Ah = inv.gaussian_bilinear_inverse(Sxy[:2, :2], Sxy[2:, 2:], Sxy[:2, 2:], eps=eps)
    return {"fy": float(np.linalg.norm(r.theta - _A_IUOT)),
            "plugin": float(np.linalg.norm(Ah - _A_IUOT)), "converged": bool(r.converged),
            "grad": float(np.abs(r.grad).max())}


@experiment("inverse.gaussian-iuot", paper=PAPER, section="Sec. 4 (stability) and the Gaussian "
            "experiments of v1/v2",
            title="Gaussian iOT/iUOT: recover a bilinear cost matrix, error vs n",
            quick=dict(seed=0, ns=[50, 100, 200, 400], reps=6, eps=1.0),
            full=dict(seed=0, ns=[100, 200, 400, 800, 1600], reps=5, eps=1.0))
def gaussian_iuot(cfg):
    """Pairs from the balanced entropic plan of c_A(x, y) = -x^T A y between N(0, Sa), N(0, Sb)
    (closed form); A is estimated by minimising the FY loss (iuot, balanced) and by the
    population closed form applied to the empirical covariance (plug-in). Rate n^-1/2 [derived]:
    the stability template ||A_hat - A|| <= ||grad L_n(A)|| / curvature with a gradient that is
    a difference of empirical moments (docs/inverse.md)."""
    from .. import inverse as inv

    eps = cfg.eps
    G = inv.gaussian_bilinear_plan(_A_IUOT, _SA, _SB, eps=eps)
    roundtrip = float(np.abs(inv.gaussian_bilinear_inverse(_SA, _SB, G, eps=eps) - _A_IUOT).max())
    items = [(cfg.seed, n, rep, eps) for n in cfg.ns for rep in range(cfg.reps)]
    out = cfg.map(_iuot_task, items, cost=lambda it: it[1] ** 2)  # n x n plans
    by_n = {n: [o for it, o in zip(items, out) if it[1] == n] for n in cfg.ns}
    e_fy = [[o["fy"] for o in by_n[n]] for n in cfg.ns]
    e_pl = [[o["plugin"] for o in by_n[n]] for n in cfg.ns]
    conv = all(o["converged"] for o in out)
    max_grad = max(o["grad"] for o in out)
    slope, se, _ = _boot_slope(cfg.ns, e_fy, seed=cfg.seed)
    slope2, se2, _ = _boot_slope(cfg.ns, e_pl, seed=cfg.seed + 1)
    err_fy = [float(np.mean(e)) for e in e_fy]
    err_pl = [float(np.mean(e)) for e in e_pl]
    fig, ax = new_figure()
    ax.loglog(cfg.ns, err_fy, "o-", label=f"FY / iuot (slope {slope:.2f} +- {se:.2f})")
    ax.loglog(cfg.ns, err_pl, "s--", label=f"plug-in closed form (slope {slope2:.2f})")
    ns = np.array(cfg.ns, float)
    ax.loglog(ns, err_fy[0] * (ns / ns[0]) ** -0.5, "k:", label="n^-1/2")
    ax.set_xlabel("n pairs")
    ax.set_ylabel("||A_hat - A||_F")
    ax.legend()
    return Outcome(
        metrics=dict(ns=cfg.ns, err_fy=err_fy, err_plugin=err_pl, slope_fy=slope,
                     slope_fy_se_bootstrap=se, slope_plugin=slope2, slope_plugin_se_bootstrap=se2,
                     closed_form_roundtrip=roundtrip, all_converged=conv, max_final_grad=max_grad),
        figures={"error_vs_n": fig},
        claims=[
            Claim.at_most(f"{Q_GAUSS}. [derived] The population inverse A = eps Sa^-1 G "
                          "(Sb - G^T Sa^-1 G)^-1 inverts the forward Gaussian plan", 1e-8, roundtrip,
                          note="float64 round trip of two closed forms (SVD, solves): 1e-8 leaves "
                               "room for the conditioning of Sa, Sb (cond < 10)"),
            _slope_claim(f"{Q_STABILITY}; [derived] rate ||A_hat - A|| = O(n^-1/2): fitted "
                         "log-log slope = -1/2", slope, se, cfg.reps,
                         "-0.68 +- 0.11 from the fit residuals"),
            Claim.holds("Sanity check: all iuot fits converged (gradient norm <= 1e-5)", conv,
                        detail=max_grad,
                        note="below ~1e-6 the float64 resolution of the loss value (sums of "
                             "n^2 terms) stalls L-BFGS line searches at n = 400"),
        ])


# ----------------------------------------------------------------------------- Gaussian iJKO

_Q_IJKO = np.array([[2.0, 0.5], [0.5, 1.0]])
_B_IJKO = np.array([0.5, -1.0])
_M_IJKO, _S_IJKO = np.array([0.5, 0.0]), np.array([[1.0, 0.3], [0.3, 0.7]])


def _ijko_task(item):
    from .. import inverse as inv

    seed, n, rep, tau = item
    basis = inv.quadratic_potential_basis(2)
    theta = basis.from_quadratic(torch.tensor(_Q_IJKO), torch.tensor(_B_IJKO)).numpy()
    mn, Sn = inv.gaussian_jko_step(_M_IJKO, _S_IJKO, _Q_IJKO, _B_IJKO, tau)
    rng = _rng(seed, n, rep)
    x = rng.multivariate_normal(_M_IJKO, _S_IJKO, size=n)
    y = rng.multivariate_normal(mn, Sn, size=n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = inv.ijko(x, y, tau, basis)
    return {"err": float(np.linalg.norm(r.theta - theta) / np.linalg.norm(theta)),
            "converged": bool(r.converged)}


@experiment("inverse.gaussian-ijko", paper=PAPER, section="Sec. 4 (stability, iJKO) and the "
            "Gaussian experiments of v1/v2",
            title="Gaussian iJKO: recover a quadratic potential from two snapshots",
            quick=dict(seed=0, ns=[100, 200, 400, 800], reps=4, tau=0.5),
            full=dict(seed=0, ns=[200, 400, 800, 1600, 3200], reps=5, tau=0.5))
def gaussian_ijko(cfg):
    """rho_k = N(m, S), rho_{k+1} its JKO step for V = y^T Q y / 2 + b^T y (closed form);
    independent samples of both; (Q, b) estimated with the plain FY loss (Moreau envelope)."""
    from .. import inverse as inv

    tau = cfg.tau
    basis = inv.quadratic_potential_basis(2)
    theta = basis.from_quadratic(torch.tensor(_Q_IJKO), torch.tensor(_B_IJKO)).numpy()
    items = [(cfg.seed, n, rep, tau) for n in cfg.ns for rep in range(cfg.reps)]
    out = cfg.map(_ijko_task, items, cost=lambda it: it[1] ** 2)  # n x n plans
    errs = [[o["err"] for it, o in zip(items, out) if it[1] == n] for n in cfg.ns]
    conv = all(o["converged"] for o in out)
    slope, se, _ = _boot_slope(cfg.ns, errs, seed=cfg.seed)
    mean_err = [float(np.mean(e)) for e in errs]
    # calibration: on exact pushforward samples the loss vanishes at the truth
    rng = _rng(cfg.seed, 0, 10**6)
    x = rng.multivariate_normal(_M_IJKO, _S_IJKO, size=200)
    H = np.eye(2) + tau * _Q_IJKO
    y_push = np.linalg.solve(H, (x - tau * _B_IJKO).T).T
    r_pop = inv.ijko(x, y_push[rng.permutation(200)], tau, basis)
    pop_err = float(np.linalg.norm(r_pop.theta - theta))
    fig, ax = new_figure()
    ax.loglog(cfg.ns, mean_err, "o-", label=f"plain iJKO (slope {slope:.2f} +- {se:.2f})")
    ns = np.array(cfg.ns, float)
    ax.loglog(ns, mean_err[0] * (ns / ns[0]) ** -0.5, "k:", label="n^-1/2")
    ax.set_xlabel("n samples per snapshot")
    ax.set_ylabel("relative error of (Q, b)")
    ax.legend()
    return Outcome(
        metrics=dict(ns=cfg.ns, rel_err=mean_err, slope=slope, slope_se_bootstrap=se,
                     pushforward_error=pop_err, all_converged=conv),
        figures={"error_vs_n": fig},
        claims=[
            Claim.at_most("v3 abstract (Sec. 3): the gap loss keeps the estimator calibrated: on "
                          "exact pushforward snapshots (no pairing used) the estimator returns "
                          "the true potential", 1e-6, pop_err,
                          note="population data: the only error is the solver tolerance (1e-7 on "
                               "the gradient, curvature O(1))"),
            _slope_claim(f"{Q_STABILITY}; [derived] rate O(n^-1/2) for iJKO from independent "
                         "snapshots: fitted log-log slope = -1/2", slope, se, cfg.reps,
                         "-0.50 +- 0.16"),
            Claim.holds("Sanity check: all ijko fits converged", conv),
        ])


# ----------------------------------------------------------------------------- conditioning

_THETA_COND = np.array([0.3, 0.5, 0.1, 0.1])     # V* = 0.3 y + 0.5 y^2 + 0.1 y^3 + 0.1 y^4
_SX_COND = 0.8


def _hermite_change(s: float) -> np.ndarray:
    """T with V = sum_k c_k h_k = sum_r (T c)_r y^r + const, h_k = He_k(y / s) / sqrt(k!), k <= 4."""
    r2, r6, r24 = math.sqrt(2), math.sqrt(6), math.sqrt(24)
    return np.array([[1 / s, 0.0, -3 / (s * r6), 0.0],
                     [0.0, 1 / (s * s * r2), 0.0, -6 / (s * s * r24)],
                     [0.0, 0.0, 1 / (s**3 * r6), 0.0],
                     [0.0, 0.0, 0.0, 1 / (s**4 * r24)]])


def _cond_data(seed, n, tau):
    from .. import inverse as inv

    rng = _rng(seed, n)
    basis = inv.polynomial_potential_basis(1, 4)
    x = rng.normal(size=(n, 1)) * _SX_COND
    xs = torch.tensor(rng.normal(size=(n, 1)) * _SX_COND)
    y, ok = basis.prox(torch.tensor(_THETA_COND), xs, tau)
    assert ok
    return basis, x, y.numpy()


def _fd_hessian(grad_fn, theta, h):
    R = theta.size
    H = np.zeros((R, R))
    for r in range(R):
        e = np.zeros(R)
        e[r] = h
        H[:, r] = (grad_fn(theta + e) - grad_fn(theta - e)).ravel() / (2 * h)
    return 0.5 * (H + H.T)


def _cond_task(item):
    """Hessian of one iJKO loss at theta* (closed form), optionally finite differences."""
    from .. import inverse as inv

    basis, x, y = _cond_data(item["seed"], item["n"], item["tau"])
    tau, lam, eps = item["tau"], item["lam"], item["eps"]
    if lam is None:  # the unregularised (Moreau) loss
        def call(th, hessian=False):
            return inv.fy_loss(th, basis, (x, y), kind="jko", tau=tau, hessian=hessian)
    else:
        def call(th, hessian=False):
            return inv.sharpened_fy_loss(th, basis, (x, y), kind="jko", tau=tau, lam=lam,
                                         eps=eps, tol=1e-12, max_iter=100000, hessian=hessian)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        L = call(_THETA_COND, True)
        out = {"H": np.asarray(L.hessian), "converged": bool(L.converged)}
        if lam is not None:
            P = np.asarray(L.plan)
            q = P.sum(0)
            a = P.sum(1)
            F = np.asarray(basis.features(torch.tensor(y)))
            # Cov_q(phi) (unnormalised: sum_j q_j phi_j phi_j^T - m m^T / |q|) and k_min, the
            # smallest nonzero eigenvalue of K = Q^-1/2 J Q^-1/2, J = (Q - P^T diag(1/a) P) / eps
            m = q @ F
            out["cov_q"] = (F * q[:, None]).T @ F - np.outer(m, m) / q.sum()
            J = (np.diag(q) - P.T @ (P / a[:, None])) / eps
            K = J / np.sqrt(np.outer(q, q))
            ev = np.linalg.eigvalsh(0.5 * (K + K.T))
            out["k_min"] = float(ev[1])  # ev[0] ~ 0: the constants
        if item.get("fd"):
            out["H_fd"] = _fd_hessian(lambda th: np.asarray(call(th).grad), _THETA_COND, 1e-4)
    return out


_A_COND = np.array([[1.0, 0.5], [-0.3, 0.8]])


def _uot_cond_task(item):
    from .. import inverse as inv
    from .. import ot

    rng = _rng(item["seed"], 30, 1)
    xg, yg = rng.normal(size=(30, 2)), rng.normal(size=(30, 2))
    Fg = inv.bilinear_cost_basis(xg, yg)
    Pg = ot.solve(None, None, np.tensordot(_A_COND, Fg, 2), eps=0.5, rho=1.0, tol=1e-13).plan

    def call(th, hessian=False):
        return inv.sharpened_fy_loss(th, Fg, Pg, lam=item["lam"], eps=0.5, rho=1.0, tol=1e-13,
                                     max_iter=100000, hessian=hessian)
    out = {"H": np.asarray(call(_A_COND, True).hessian).reshape(4, 4)}
    if item.get("fd"):
        out["H_fd"] = _fd_hessian(lambda th: np.asarray(call(th.reshape(2, 2)).grad),
                                  _A_COND.ravel(), 1e-4)
    return out


def _cond(H):
    ev = np.linalg.eigvalsh(0.5 * (H + H.T))
    return float(ev[-1] / ev[0]) if ev[0] > 0 else math.inf


@experiment("inverse.conditioning", paper=PAPER, section="Sec. 3 and Sec. 5 (conditioning effect "
            "of sharpening), App. B",
            title="Condition number of the iJKO and iUOT loss Hessians at the truth vs lam",
            quick=dict(seed=0, n=100, tau=0.5, eps=0.1, lams=[0.1, 1.0, 10.0, 100.0]),
            full=dict(seed=0, n=400, tau=0.5, eps=0.05, lams=[0.03, 0.1, 0.3, 1.0, 3.0, 10.0,
                                                               30.0, 100.0]))
def conditioning(cfg):
    """Hessian of the empirical loss L_lam in theta at the truth theta* (the "empirical curvature"
    of the stability theorem), for the iJKO family on the sample grid -- lam = 0 (the plain FY loss
    of the entropic model, the log-sum-exp "exponential functional" of App. A) and lam > 0 (the
    sharpened loss, an unbalanced transport problem) at the same eps -- plus the unregularised
    (Moreau) loss as a reference; 1-D potential V* = 0.3 y + 0.5 y^2 + 0.1 y^3 + 0.1 y^4, x ~
    N(0, 0.8^2), y = prox_{tau V*}(x') for independent x'. Hessians in closed form [derived]:
    H_lam = Phi^T J (lam J + Q)^-1 Q Phi, checked against finite differences of the Danskin
    gradient. The condition number depends on the parametrisation of the potential; it is
    reported in two bases fixed in advance: the raw monomials y..y^4 and the Hermite polynomials
    He_k(y / 0.8) / sqrt(k!) orthonormal for the source law N(0, 0.8^2) (a data-independent,
    well-scaled basis); the L2(q)-whitened basis, where the lam -> inf limit is the identity by
    construction, is reported as a metric only. iUOT: bilinear 2x2 cost, 30 x 30 grid, eps = 0.5,
    rho = 1, our marginal sharpening."""
    lam_fd = cfg.lams[1]
    items = ([dict(seed=cfg.seed, n=cfg.n, tau=cfg.tau, eps=cfg.eps, lam=None, fd=False),
              dict(seed=cfg.seed, n=cfg.n, tau=cfg.tau, eps=cfg.eps, lam=0.0, fd=False)]
             + [dict(seed=cfg.seed, n=cfg.n, tau=cfg.tau, eps=cfg.eps, lam=lam, fd=lam == lam_fd)
                for lam in cfg.lams])
    res = cfg.map(_cond_task, items)
    H_moreau, H0, Hl = res[0]["H"], res[1]["H"], [r["H"] for r in res[2:]]
    r_fd = next(r for r, it in zip(res, items) if it["fd"])
    fd_err = float(np.abs(r_fd["H_fd"] - r_fd["H"]).max() / np.abs(r_fd["H"]).max())
    T = _hermite_change(_SX_COND)
    bases = {"monomial": np.eye(4), "hermite": T}
    conds = {k: {"moreau": _cond(M.T @ H_moreau @ M), "lam0": _cond(M.T @ H0 @ M),
                 "sharpened": [_cond(M.T @ H @ M) for H in Hl]} for k, M in bases.items()}
    # lam -> inf: lam H_lam -> Cov_q(phi); derived bound 0 <= Cov - lam H <= Cov / (1 + lam k_min)
    last = res[-1]
    cov = last["cov_q"]
    lam_max = cfg.lams[-1]
    w = np.linalg.inv(np.linalg.cholesky(cov))
    dev = np.linalg.eigvalsh(w @ (cov - lam_max * Hl[-1]) @ w.T)
    bound = 1.0 / (1.0 + lam_max * last["k_min"])
    conds_cov = {k: _cond(M.T @ cov @ M) for k, M in bases.items()}
    white = {"moreau": _cond(w @ H_moreau @ w.T), "lam0": _cond(w @ H0 @ w.T),
             "sharpened": [_cond(w @ H @ w.T) for H in Hl]}
    conv = all(r["converged"] for r in res)
    # iUOT
    uitems = [dict(seed=cfg.seed, lam=lam, fd=lam == lam_fd) for lam in [0.0] + list(cfg.lams)]
    ures = cfg.map(_uot_cond_task, uitems)
    uconds = [_cond(r["H"]) for r in ures]
    u_fd = next(r for r, it in zip(ures, uitems) if it["fd"])
    ufd_err = float(np.abs(u_fd["H_fd"] - u_fd["H"]).max() / np.abs(u_fd["H"]).max())

    fig, axes = new_figure(3)
    for ax, k in zip(axes[:2], bases):
        ax.loglog(cfg.lams, conds[k]["sharpened"], "o-", label="sharpened L_lam (grid, eps)")
        ax.axhline(conds[k]["lam0"], color="C1", ls="--", label="plain L_0 (grid, same eps)")
        ax.axhline(conds[k]["moreau"], color="C2", ls="-.", label="unregularised (Moreau)")
        ax.axhline(conds_cov[k], color="k", ls=":", label="Cov_q(phi) (lam -> inf)")
        ax.set_xlabel("lam")
        ax.set_ylabel("cond of the Hessian at theta*")
        ax.set_title(f"iJKO, {k} basis (degree 4)")
        ax.legend(fontsize=7)
    axes[2].semilogx(cfg.lams, uconds[1:], "o-", label="sharpened iUOT L_lam")
    axes[2].axhline(uconds[0], color="C1", ls="--", label="lam = 0")
    axes[2].set_xlabel("lam")
    axes[2].set_title("iUOT, bilinear 2x2, eps=0.5, rho=1")
    axes[2].legend(fontsize=7)
    why = ("[derived] H_lam = Phi^T (J^+ + lam Q^-1)^-1 Phi: sharpening caps the curvature of each "
           "direction at its L2(q) variance / lam, so at large lam cond(H_lam) -> "
           "cond(Cov_q(phi)); it improves on the plain loss only if the basis is better "
           "conditioned in L2(q) than in the plain loss's (Dirichlet-like, conditional-covariance) "
           "metric. Measured cond(Cov_q(phi)) = {cov:.1f} vs plain {p:.1f}.")
    return Outcome(
        metrics=dict(lams=cfg.lams, cond=conds, cond_cov_q=conds_cov, cond_whitened=white,
                     lam_inf_deviation=[float(dev.min()), float(dev.max())],
                     lam_inf_bound=bound, k_min=last["k_min"], hessian_fd_rel_error=fd_err,
                     iuot_lams=[0.0] + list(cfg.lams), iuot_cond=uconds,
                     iuot_hessian_fd_rel_error=ufd_err, all_converged=conv),
        figures={"conditioning": fig},
        claims=[
            Claim.at_most("[derived] Closed-form Hessians of the iJKO (lam = "
                          f"{lam_fd:g}) and iUOT losses = central finite differences of the "
                          "Danskin gradient (max relative difference)", 1e-5, max(fd_err, ufd_err),
                          note="step h = 1e-4: truncation O(h^2) ~ 1e-8 and inner tolerance / h "
                               "~ 1e-12 / 1e-4; 1e-5 is the float64 bound with margin"),
            Claim.holds("[derived, App. B] lam -> inf: lam H_lam -> the empirically centred "
                        "feature covariance Cov_q(phi); whitened deviation within "
                        "[0, 1 / (1 + lam k_min)]",
                        dev.min() >= -1e-6 and dev.max() <= bound + 1e-6,
                        detail={"deviation": [float(dev.min()), float(dev.max())],
                                "bound": bound},
                        note="the bound follows from the spectral form of H_lam (docs/inverse.md); "
                             "1e-6 absorbs the inner solver tolerance"),
            Claim.at_most(f"{Q_COND}: cond(Hessian at theta*) at the largest lam <= that of the "
                          "plain loss (lam = 0, same eps), raw monomial basis", conds["monomial"]["lam0"],
                          conds["monomial"]["sharpened"][-1],
                          note=why.format(cov=conds_cov["monomial"],
                                          p=conds["monomial"]["lam0"])
                          + " Earlier setting (V* with a cubic top term, degree 3, plain = Moreau "
                            "loss): 11 -> 49 vs 6.8, also failing. V* now ends in 0.1 y^4: with a "
                            "cubic top term the unregularised JKO step has no solution (V* is "
                            "unbounded below)."),
            Claim.at_most(f"{Q_COND}: same, Hermite basis orthonormal for the source law "
                          "(fixed in advance, not fitted to the data)", conds["hermite"]["lam0"],
                          conds["hermite"]["sharpened"][-1],
                          note=why.format(cov=conds_cov["hermite"], p=conds["hermite"]["lam0"])
                          + " In the L2(q)-whitened basis cond falls to ~1 by construction "
                            "(metric cond_whitened), which is why that basis is not a test."),
            Claim.at_most(f"{Q_COND}: iUOT with our marginal sharpening, cond at the largest lam "
                          "<= cond at lam = 0", uconds[0], uconds[-1],
                          note="D = KL of the observed marginals (our reconstruction; the paper's "
                               "iUOT discrepancy is not readable). [derived] With a = pi_hat 1 "
                               "this D raises rho to rho + lam: the problem moves towards "
                               "balanced iOT, whose curvature vanishes on the marginal "
                               "directions u(x) + v(y); sharpening lowers those small "
                               "eigenvalues, so cond grows."),
            Claim.holds("v3 abstract (Sec. 3): the optimality gap \"yields convex empirical objectives for finite-dimensional potential classes\": every Hessian at theta* is positive "
                        "definite",
                        min(np.linalg.eigvalsh(H).min() for H in [H_moreau, H0] + Hl) > 0
                        and min(np.linalg.eigvalsh(r["H"]).min() for r in ures) > 0),
        ])


# ----------------------------------------------------------------------------- sparse iJKO

_THETA_SPARSE = {4: [0.0, 0.5, 0.0, 0.2], 6: [0.0, 0.5, 0.0, 0.2, 0.0, 0.0]}
_SX_SPARSE = 0.6


def _sparse_data(seed, n, rep, degree, tau):
    from .. import inverse as inv

    rng = _rng(seed, n, rep)
    raw = inv.polynomial_potential_basis(1, degree)
    theta = np.array(_THETA_SPARSE[degree])
    x = rng.normal(size=(n, 1)) * _SX_SPARSE
    xs = torch.tensor(rng.normal(size=(n, 1)) * _SX_SPARSE)
    y, ok = raw.prox(torch.tensor(theta), xs, tau)
    assert ok
    y = y.numpy()
    sd = np.asarray(raw.features(torch.tensor(y))).std(0)
    sdt = torch.tensor(sd)

    def phi(z):
        return raw.features(z) / sdt.to(z.dtype)

    basis = inv.PotentialBasis(phi, 1, degree, [f"{nm}/sd" for nm in raw.names])
    return basis, x, y, theta * sd  # theta in the standardised basis


def _sparse_fit(item):
    """l1 paths of one data set for the plain (lam = 0) and the sharpened grid losses.

    reg_k = c_k ||grad L_n(0)||_inf sqrt(log R / n) for c_k in ``reg_path`` (decreasing, warm
    starts); a fit recovers the support if some reg_k gives exactly supp(theta*).
    """
    from .. import inverse as inv

    basis, x, y, theta = _sparse_data(item["seed"], item["n"], item["rep"], item["degree"],
                                      item["tau"])
    supp = theta != 0
    out = {}
    for name, lam in (("plain", 0.0), ("sharpened", item["lam"])):
        kw = dict(kind="jko", tau=item["tau"], lam=lam, eps=item["eps"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            g0 = np.asarray(inv.sharpened_fy_loss(np.zeros(theta.size), basis, (x, y), **kw).grad)
            scale = float(np.abs(g0).max()) * math.sqrt(math.log(theta.size) / item["n"])
            th = np.zeros(theta.size)
            hits, errors, spurious, conv = [], [], [], True
            for c in sorted(item["reg_path"], reverse=True):
                r = inv.ijko(x, y, item["tau"], basis, lam=lam, eps=item["eps"], reg="l1",
                             reg_weight=c * scale, theta0=th, max_iter=item["max_iter"], tol=1e-9)
                th = np.asarray(r.theta)
                conv &= bool(r.converged)
                hits.append(bool(np.array_equal(th != 0, supp)))
                errors.append(float(np.linalg.norm(th - theta)))
                spurious.append(int(((th != 0) & ~supp).sum()))
        out[name] = {"support_ok": any(hits), "hits": hits, "errors": errors,
                     "spurious": spurious, "converged": conv}
    return out


def _sparse_ic(item):
    """Irrepresentability constant ||H_{S^c S} H_SS^-1 sign(theta*_S)||_inf of each loss at theta*."""
    from .. import inverse as inv

    basis, x, y, theta = _sparse_data(item["seed"], item["n"], 10**6, item["degree"], item["tau"])
    supp = theta != 0
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, lam in (("moreau", None), ("plain", 0.0), ("sharpened", item["lam"])):
            if lam is None:
                H = inv.fy_loss(theta, basis, (x, y), kind="jko", tau=item["tau"],
                                hessian=True).hessian
            else:
                H = inv.sharpened_fy_loss(theta, basis, (x, y), kind="jko", tau=item["tau"],
                                          lam=lam, eps=item["eps"], hessian=True).hessian
            H = np.asarray(H)
            eta = H[~supp][:, supp] @ np.linalg.solve(H[supp][:, supp], np.sign(theta[supp]))
            out[name] = float(np.abs(eta).max())
            if lam is not None:  # gradient at theta* relative to the loss's scale at 0
                kw = dict(kind="jko", tau=item["tau"], lam=lam, eps=item["eps"])
                g_star = np.asarray(inv.sharpened_fy_loss(theta, basis, (x, y), **kw).grad)
                g_0 = np.asarray(inv.sharpened_fy_loss(0 * theta, basis, (x, y), **kw).grad)
                out[f"{name}_grad_ratio"] = float(np.abs(g_star).max() / np.abs(g_0).max())
    return out


@experiment("inverse.sparse-ijko", paper=PAPER, section="Sec. 5 (sparse inverse-gradient-flow "
            "recovery); v2 source conditions for l1",
            title="l1-penalised iJKO: support recovery vs n, with and without sharpening",
            quick=dict(seed=0, ns=[50, 100], reps=2, tau=0.5, eps=0.05, lam=1.0, degree=4,
                       reg_path=[8.0, 4.0, 2.0, 1.0], max_iter=50),
            full=dict(seed=0, ns=[100, 200, 400], reps=10, tau=0.5, eps=0.05, lam=1.0,
                      degree=6, reg_path=[8.0, 4.0, 2.0, 1.0, 0.5], max_iter=100))
def sparse_ijko(cfg):
    """Dictionary y..y^degree (1-D), standardised by each feature's standard deviation on the
    observed y (the usual normalisation of an l1 dictionary; the support is unchanged); true
    potential V* = 0.5 y^2 + 0.2 y^4; x ~ N(0, 0.6^2), x_next = prox_{tau V*}(x') for independent
    x'. Losses compared at the same eps on the sample grid: plain (lam = 0) and sharpened (lam);
    both have the same population minimiser (calibration), so the comparison isolates what
    sharpening changes (the Hessian and the gradient noise). l1 path [derived]: reg_k = c_k
    ||grad L_n(0)||_inf sqrt(log R / n) (each loss's own scale times the usual sqrt(log p / n)
    decay), c_k in ``reg_path``, warm-started proximal-Newton fits (exact zeros); a data set counts
    as recovered if some reg_k gives exactly supp(theta*) -- the statement of the l1 stability
    theory ("there is a range of weights that recovers the support"). Predictor [derived from
    the v2 source condition for l1]: the irrepresentability constant
    ||H_{S^c S} H_SS^-1 sign(theta*_S)||_inf of each loss's Hessian at theta*, < 1 needed."""
    items = [dict(seed=cfg.seed, n=n, rep=rep, tau=cfg.tau, eps=cfg.eps, lam=cfg.lam,
                  degree=cfg.degree, reg_path=cfg.reg_path, max_iter=cfg.max_iter)
             for n in cfg.ns for rep in range(cfg.reps)]
    out = cfg.map(_sparse_fit, items, cost=lambda it: it["n"] ** 2)  # n x n plans
    stats = cfg.map(_sparse_ic, [dict(seed=cfg.seed, n=cfg.ns[-1], tau=cfg.tau, eps=cfg.eps,
                                      lam=cfg.lam, degree=cfg.degree)])[0]
    ic = {k: stats[k] for k in ("moreau", "plain", "sharpened")}
    grad_ratio = {k: stats[f"{k}_grad_ratio"] for k in ("plain", "sharpened")}
    keys = ("plain", "sharpened")
    rates = {k: [] for k in keys}
    errs = {k: [] for k in keys}
    per_reg = {k: [] for k in keys}
    n_conv = {k: 0 for k in keys}
    for n in cfg.ns:
        sel = [o for it, o in zip(items, out) if it["n"] == n]
        for k in keys:
            rates[k].append(float(np.mean([o[k]["support_ok"] for o in sel])))
            errs[k].append(float(np.mean([min(o[k]["errors"]) for o in sel])))
            per_reg[k].append(np.mean([o[k]["hits"] for o in sel], 0).tolist())
            n_conv[k] += sum(o[k]["converged"] for o in sel)
    fig, axes = new_figure(2)
    for k in keys:
        axes[0].semilogx(cfg.ns, rates[k], "o-", label=f"{k} (IC {ic[k]:.2f})")
        axes[1].loglog(cfg.ns, errs[k], "o-", label=k)
    axes[0].set_xlabel("n")
    axes[0].set_ylabel("exact support recovery rate")
    axes[0].set_ylim(-0.05, 1.05)
    axes[0].legend()
    axes[1].set_xlabel("n")
    axes[1].set_ylabel("best ||theta_hat - theta*|| on the path (standardised)")
    axes[1].legend()
    se = math.sqrt(0.9 * 0.1 / cfg.reps)
    thr = 0.9 - 2 * se
    last = {k: rates[k][-1] for k in keys}
    return Outcome(
        metrics=dict(ns=cfg.ns, support_rate=rates, best_error=errs,
                     support_rate_per_reg=per_reg, reg_path=sorted(cfg.reg_path, reverse=True),
                     irrepresentability=ic, grad_at_truth_over_grad_at_0=grad_ratio,
                     paths_converged=n_conv,
                     paths_total=len(cfg.ns) * cfg.reps),
        figures={"support_recovery": fig},
        claims=[
            Claim.at_most(f"{Q_SPARSE}. [derived] Sharpening improves the l1 source condition: "
                          "irrepresentability constant at theta* of the sharpened loss <= the "
                          "plain loss's", ic["plain"], ic["sharpened"],
                          note=f"largest n = {cfg.ns[-1]}; unregularised (Moreau) loss: "
                               f"{ic['moreau']:.3f}. The constant is computed from the "
                               "closed-form Hessians; sharpening moves the Hessian from the plain "
                               "loss's conditional-covariance metric towards Cov_q(phi), where "
                               "the even monomials y^2, y^4, y^6 are more correlated"),
            Claim.at_least(f"{Q_SPARSE}: l1-iJKO recovers the exact support at the largest n "
                           "(sharpened loss)", thr, last["sharpened"],
                           note=f"{cfg.reps} data sets; threshold 0.9 - 2 x binomial se at p = 0.9 "
                                f"({thr:.2f}). Earlier settings: raw monomials, l1 weight "
                                "0.02 / sqrt(n), 60 FISTA iterations, plain = Moreau loss: 0/2 "
                                "for both losses at n = 80; then standardised features and the "
                                "single weight c = 1 on this path: 0/2 for both at n = 120 "
                                "(gradient at theta* / ||grad L_n(0)|| measured 0.25 plain, 0.6 "
                                "sharpened: one weight cannot be right for both)"),
            Claim.holds(f"{Q_SPARSE}: sharpening helps sparse recovery (support rate at the "
                        "largest n: sharpened > plain, or both at least the threshold above)",
                        last["sharpened"] > last["plain"]
                        or min(last["sharpened"], last["plain"]) >= thr,
                        detail=last,
                        note="both losses share eps and the population minimiser. Measured "
                             "reason when it fails: the gradient at theta* (sampling noise plus "
                             "the O(eps) calibration bias of the grid model on data of the "
                             "unregularised step) relative to the loss's own scale "
                             "||grad L_n(0)|| is "
                             f"{grad_ratio['plain']:.2f} (plain) vs "
                             f"{grad_ratio['sharpened']:.2f} (sharpened) at n = {cfg.ns[-1]}: "
                             "sharpening shrinks the signal (curvature ~ Cov_q / lam) faster "
                             "than the noise"),
        ])


# ----------------------------------------------------------------------------- link prediction

def _auc(pos, neg):
    s = np.concatenate([pos, neg])
    ranks = np.argsort(np.argsort(s)) + 1.0
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _auc_se(auc, n_pos, n_neg):
    """Hanley & McNeil (1982) standard error of an AUC."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    v = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc))
    return math.sqrt(max(v, 0.0) / (n_pos * n_neg))


def _link_task(item):
    from .. import inverse as inv
    from .. import ot

    rng = _rng(item["seed"], item["nodes"])
    N, d = item["nodes"], item["dim"]
    z = rng.normal(size=(N, d))
    A = rng.normal(size=(d, d)) * 0.8
    F = inv.bilinear_cost_basis(z, z)
    P = ot.solve(None, None, np.tensordot(A, F, 2), eps=item["eps"], rho=item["rho"],
                 tol=1e-10).plan
    mass = P.sum()
    p = (P / mass).ravel()
    train = rng.choice(N * N, size=item["train_edges"], p=p)
    test = rng.choice(N * N, size=item["test_edges"], p=p)
    neg = rng.choice(N * N, size=item["test_edges"])
    counts = np.bincount(train, minlength=N * N).reshape(N, N).astype(float)
    P_hat = counts / counts.sum() * mass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = inv.iuot(z, z, "bilinear", eps=item["eps"], rho=item["rho"], plan=P_hat, tol=1e-6)
    score = r.plan.ravel()
    sim = (z @ z.T).ravel()
    deg = np.outer(counts.sum(1), counts.sum(0)).ravel()
    aucs = {"iuot": _auc(score[test], score[neg]), "feature_similarity": _auc(sim[test], sim[neg]),
            "degree_product": _auc(deg[test], deg[neg]),
            "oracle_plan": _auc(P.ravel()[test], P.ravel()[neg])}
    return {"auc": aucs, "rel_error_A": float(np.linalg.norm(r.theta - A) / np.linalg.norm(A)),
            "converged": bool(r.converged)}


@experiment("inverse.link-prediction", paper=PAPER, section="iUOT application: link prediction "
            "(v1/v2 abstracts; v3 Sec. 2)",
            title="Link prediction with iUOT on a synthetic graph with node features (AUC)",
            quick=dict(seed=0, nodes=60, dim=3, train_edges=600, test_edges=300, eps=0.5,
                       rho=1.0),
            full=dict(seed=0, nodes=200, dim=4, train_edges=4000, test_edges=2000, eps=0.5,
                      rho=1.0))
def link_prediction(cfg):
    """Nodes carry features z_i; edges are drawn from the unbalanced entropic plan of the hidden
    cost -z_i^T A z_j; iUOT (bilinear basis) is fitted on training edges and scores test edges
    against random pairs by the fitted plan. Baselines: feature similarity z_i^T z_j and degree
    product (preferential attachment). The paper's data set is not readable: synthetic graph."""
    res = cfg.map(_link_task, [dict(seed=cfg.seed, nodes=cfg.nodes, dim=cfg.dim,
                                    train_edges=cfg.train_edges, test_edges=cfg.test_edges,
                                    eps=cfg.eps, rho=cfg.rho)])[0]
    aucs = res["auc"]
    n_t = cfg.test_edges
    se = {k: _auc_se(v, n_t, n_t) for k, v in aucs.items()}
    base = max(("feature_similarity", "degree_product"), key=lambda k: aucs[k])
    fig, ax = new_figure()
    ax.bar(list(aucs), list(aucs.values()), yerr=[2 * se[k] for k in aucs],
           color=["C0", "C1", "C2", "C7"])
    ax.set_ylim(0.4, 1.0)
    ax.set_ylabel("AUC (test edges vs random pairs), +- 2 se")
    ax.tick_params(axis="x", labelrotation=20)
    gap = aucs["iuot"] - aucs[base]
    tol_gap = 2 * math.hypot(se["iuot"], se[base])
    tol_or = 2 * math.hypot(se["iuot"], se["oracle_plan"])
    return Outcome(
        metrics=dict(auc=aucs, auc_se=se, rel_error_A=res["rel_error_A"],
                     converged=res["converged"]),
        figures={"auc": fig},
        claims=[
            Claim.at_least(f"{Q_LINK}: iUOT scores held-out links better than the best "
                           f"feature/degree baseline ({base}): AUC gap", tol_gap, gap,
                           note="the gap must exceed 2 x its standard error (Hanley-McNeil, "
                                f"{n_t} test edges and {n_t} random pairs). Before: AUC 0.88 vs "
                                "0.65 compared without error bars"),
            Claim.close("Sanity check: the fitted plan scores edges as well as the true plan (AUC)",
                        aucs["oracle_plan"], aucs["iuot"], atol=tol_or,
                        note="tolerance 2 x the standard error of the difference (Hanley-McNeil; "
                             "before: a fixed 0.03)"),
        ])
