"""Reproductions for arXiv 2505.07124 (Andrade, Peyre, Poon): sharpened Fenchel-Young losses,
inverse unbalanced OT and inverse JKO. Only the abstracts were available: the experiments are the
ones the abstracts describe (Gaussian closed forms, conditioning of sharpening, sparse iJKO, link
prediction), with the expected behaviour taken from the abstracts and from the stability template
||theta_hat - theta*|| = O(n^{-1/2})."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from ..core import ConvergenceWarning
from .plotting import loglog_fit, new_figure
from .registry import Claim, Outcome, experiment

PAPER = "arXiv:2505.07124"


def _gauss_pairs(rng, Sa, Sb, G, n):
    full = np.block([[Sa, G], [G.T, Sb]])
    z = rng.multivariate_normal(np.zeros(full.shape[0]), full, size=n)
    return z[:, :Sa.shape[0]], z[:, Sa.shape[0]:]


@experiment("inverse.gaussian-iuot", paper=PAPER, section="Gaussian experiments (v1/v2 abstract)",
            title="Gaussian iOT/iUOT: recover a bilinear cost matrix, error vs n",
            quick=dict(seed=0, ns=[50, 100, 200, 400], reps=6, eps=1.0),
            full=dict(seed=0, ns=[100, 200, 400, 800, 1600], reps=5, eps=1.0))
def gaussian_iuot(cfg):
    """Pairs from the balanced entropic plan of c_A(x, y) = -x^T A y between N(0, Sa), N(0, Sb)
    (closed form); A is estimated by minimising the FY loss (iuot, balanced) and by the
    population closed form applied to the empirical covariance (plug-in)."""
    from .. import inverse as inv

    rng = np.random.default_rng(cfg.seed)
    A = np.array([[1.0, 0.5], [-0.4, 0.8]])
    Sa = np.array([[1.0, 0.3], [0.3, 0.8]])
    Sb = np.array([[0.9, -0.2], [-0.2, 1.1]])
    eps = cfg.eps
    G = inv.gaussian_bilinear_plan(A, Sa, Sb, eps=eps)
    roundtrip = float(np.abs(inv.gaussian_bilinear_inverse(Sa, Sb, G, eps=eps) - A).max())
    err_fy, err_plug, conv, max_grad = [], [], True, 0.0
    for n in cfg.ns:
        e1, e2 = [], []
        for _ in range(cfg.reps):
            x, y = _gauss_pairs(rng, Sa, Sb, G, n)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                r = inv.iuot(x, y, "bilinear", eps=eps, rho=None, tol=1e-5)
            conv &= bool(r.converged)
            max_grad = max(max_grad, float(np.abs(r.grad).max()))
            e1.append(np.linalg.norm(r.theta - A))
            Sxy = np.cov(np.hstack([x, y]).T, bias=True)
            Ah = inv.gaussian_bilinear_inverse(Sxy[:2, :2], Sxy[2:, 2:], Sxy[:2, 2:], eps=eps)
            e2.append(np.linalg.norm(Ah - A))
        err_fy.append(float(np.mean(e1)))
        err_plug.append(float(np.mean(e2)))
    fit = loglog_fit(cfg.ns, err_fy)
    fit2 = loglog_fit(cfg.ns, err_plug)
    fig, ax = new_figure()
    ax.loglog(cfg.ns, err_fy, "o-", label=f"FY / iuot (slope {fit['slope']:.2f})")
    ax.loglog(cfg.ns, err_plug, "s--", label=f"plug-in closed form (slope {fit2['slope']:.2f})")
    ns = np.array(cfg.ns, float)
    ax.loglog(ns, err_fy[0] * (ns / ns[0]) ** -0.5, "k:", label="n^-1/2")
    ax.set_xlabel("n pairs")
    ax.set_ylabel("||A_hat - A||_F")
    ax.legend()
    return Outcome(
        metrics=dict(ns=cfg.ns, err_fy=err_fy, err_plugin=err_plug, slope_fy=fit["slope"],
                     slope_fy_se=fit["slope_se"], slope_plugin=fit2["slope"],
                     closed_form_roundtrip=roundtrip, all_converged=conv,
                     max_final_grad=max_grad),
        figures={"error_vs_n": fig},
        claims=[
            Claim.at_most("Closed form: the population inverse A = eps Sa^-1 G (Sb - G^T Sa^-1 G)^-1 "
                          "inverts the forward Gaussian plan", 1e-8, roundtrip),
            Claim.within("Paper (stability, v1/v3): ||A_hat - A|| = O(n^-1/2); fitted log-log slope",
                         -0.8, -0.3, fit["slope"],
                         note=f"{cfg.reps} repetitions per n; slope standard error "
                              f"{fit['slope_se']:.2f}"),
            Claim.holds("All iuot fits converged (gradient norm <= 1e-5)", conv,
                        detail=max_grad,
                        note="below ~1e-6 the float64 resolution of the loss value (sums of "
                             "n^2 terms) stalls L-BFGS line searches at n = 400"),
        ])


@experiment("inverse.gaussian-ijko", paper=PAPER, section="Gaussian experiments / iJKO (v3)",
            title="Gaussian iJKO: recover a quadratic potential from two snapshots",
            quick=dict(seed=0, ns=[100, 200, 400, 800], reps=4, tau=0.5),
            full=dict(seed=0, ns=[200, 400, 800, 1600, 3200], reps=5, tau=0.5))
def gaussian_ijko(cfg):
    """rho_k = N(m, S), rho_{k+1} its JKO step for V = y^T Q y / 2 + b^T y (closed form);
    independent samples of both; (Q, b) estimated with the plain FY loss (Moreau envelope)."""
    from .. import inverse as inv

    rng = np.random.default_rng(cfg.seed)
    Q = np.array([[2.0, 0.5], [0.5, 1.0]])
    b = np.array([0.5, -1.0])
    m, S = np.array([0.5, 0.0]), np.array([[1.0, 0.3], [0.3, 0.7]])
    tau = cfg.tau
    mn, Sn = inv.gaussian_jko_step(m, S, Q, b, tau)
    basis = inv.quadratic_potential_basis(2)
    theta = basis.from_quadratic(torch.tensor(Q), torch.tensor(b)).numpy()
    errs, conv = [], True
    for n in cfg.ns:
        e = []
        for _ in range(cfg.reps):
            x = rng.multivariate_normal(m, S, size=n)
            y = rng.multivariate_normal(mn, Sn, size=n)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                r = inv.ijko(x, y, tau, basis)
            conv &= bool(r.converged)
            e.append(np.linalg.norm(r.theta - theta) / np.linalg.norm(theta))
        errs.append(float(np.mean(e)))
    fit = loglog_fit(cfg.ns, errs)
    # population check: on exact pushforward samples the loss vanishes at the truth
    x = rng.multivariate_normal(m, S, size=200)
    H = np.eye(2) + tau * Q
    y_push = np.linalg.solve(H, (x - tau * b).T).T
    r_pop = inv.ijko(x, y_push[rng.permutation(200)], tau, basis)
    pop_err = float(np.linalg.norm(r_pop.theta - theta))
    fig, ax = new_figure()
    ax.loglog(cfg.ns, errs, "o-", label=f"plain iJKO (slope {fit['slope']:.2f})")
    ns = np.array(cfg.ns, float)
    ax.loglog(ns, errs[0] * (ns / ns[0]) ** -0.5, "k:", label="n^-1/2")
    ax.set_xlabel("n samples per snapshot")
    ax.set_ylabel("relative error of (Q, b)")
    ax.legend()
    return Outcome(
        metrics=dict(ns=cfg.ns, rel_err=errs, slope=fit["slope"], slope_se=fit["slope_se"],
                     pushforward_error=pop_err, all_converged=conv),
        figures={"error_vs_n": fig},
        claims=[
            Claim.at_most("Calibration: on exact pushforward snapshots (no pairing used) the "
                          "estimator returns the true potential", 1e-6, pop_err),
            Claim.within("Paper (stability): error = O(n^-1/2); fitted log-log slope", -0.8, -0.3,
                         fit["slope"], note=f"slope standard error {fit['slope_se']:.2f}"),
            Claim.holds("All ijko fits converged", conv),
        ])


def _hessian_fd(grad_fn, theta, h=1e-4):
    R = theta.shape[0]
    H = np.zeros((R, R))
    for r in range(R):
        e = np.zeros(R)
        e[r] = h
        H[:, r] = (grad_fn(theta + e) - grad_fn(theta - e)) / (2 * h)
    return 0.5 * (H + H.T)


@experiment("inverse.conditioning", paper=PAPER, section="Sec. 5, conditioning effect of sharpening (v3)",
            title="Condition number of the iJKO and iUOT loss Hessians at the truth vs lam",
            quick=dict(seed=0, n=100, tau=0.5, eps=0.1, lams=[0.1, 1.0, 10.0, 100.0]),
            full=dict(seed=0, n=400, tau=0.5, eps=0.05, lams=[0.03, 0.1, 0.3, 1.0, 3.0, 10.0,
                                                               30.0, 100.0]))
def conditioning(cfg):
    """Hessian of L_lam at theta* by central differences of the exact (Danskin) gradient, for a
    1-D polynomial potential basis (y, y^2, y^3); compared with the plain loss (lam = 0) and the
    lam -> inf quadratic surrogate Var_b(g + V_theta) (Hessian 2 Cov_b(phi))."""
    from .. import inverse as inv
    from ..inverse.jko import _jko_balanced_const, _jko_cost
    from ..inverse.jko import _jko_grid_loss as _jko_sharp_loss

    rng = np.random.default_rng(cfg.seed)
    basis = inv.polynomial_potential_basis(1, 3)
    theta = np.array([0.3, 0.5, 0.1])
    tau, n, eps = cfg.tau, cfg.n, cfg.eps
    x = rng.normal(size=(n, 1)) * 0.8
    xs = torch.tensor(rng.normal(size=(n, 1)) * 0.8)
    y, _ = basis.prox(torch.tensor(theta), xs, tau)
    y = y.numpy()

    def plain_grad(th):
        return inv.fy_loss(th, basis, (x, y), kind="jko", tau=tau).grad

    H0 = _hessian_fd(plain_grad, theta)
    xt, yt = torch.tensor(x), torch.tensor(y)
    a = torch.full((n,), 1.0 / n, dtype=torch.float64)
    Cxy = _jko_cost(xt, yt, tau)
    Fy = basis.features(yt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        const, g_c = _jko_balanced_const(Cxy, a, a, eps, 50000, 1e-11)
    conds, mins, hessians = [], [], []
    for lam in cfg.lams:
        state = {"g": g_c.clone()}

        def grad(th, lam=lam, state=state):
            r = _jko_sharp_loss(torch.tensor(th), Fy, Cxy, a, a, eps, lam, const, 50000, 1e-12,
                                state["g"])
            state["g"] = r.potential_g
            return r.grad.numpy()

        H = _hessian_fd(grad, theta)
        hessians.append(H)
        ev = np.linalg.eigvalsh(H)
        conds.append(float(ev.max() / ev.min()) if ev.min() > 0 else math.inf)
        mins.append(float(ev.min()))
    ev0 = np.linalg.eigvalsh(H0)
    cond0 = float(ev0.max() / ev0.min())
    Fc = Fy.numpy() - Fy.numpy().mean(0)
    cov = Fc.T @ Fc / n
    evs = np.linalg.eigvalsh(cov)
    cond_sur = float(evs.max() / evs.min())
    # diagnostic: condition numbers depend on the parametrisation. Re-express the same Hessians
    # in the basis that is orthonormal in L2(b) (features whitened by Cov_b(phi)^(-1/2)).
    w_half = np.linalg.inv(np.linalg.cholesky(cov))

    def _wcond(H):
        ew = np.linalg.eigvalsh(w_half @ H @ w_half.T)
        return float(ew.max() / ew.min()) if ew.min() > 0 else math.inf

    cond_plain_white = _wcond(H0)
    conds_white = [_wcond(H) for H in hessians]
    # iUOT: population-level plan on a grid, bilinear basis; Hessian of L_lam at A*
    from .. import ot
    from ..inverse.uot import _uot_loss

    xg, yg = rng.normal(size=(30, 2)), rng.normal(size=(30, 2))
    A = np.array([[1.0, 0.5], [-0.3, 0.8]])
    Fg = torch.tensor(inv.bilinear_cost_basis(xg, yg)).reshape(4, 30, 30)
    Pg = torch.tensor(ot.solve(None, None, np.tensordot(A.ravel(), Fg.numpy(), 1), eps=0.5,
                               rho=1.0, tol=1e-13).plan)
    ag = torch.full((30,), 1.0 / 30, dtype=torch.float64)
    uot_conds = []
    uot_lams = [0.0] + list(cfg.lams)
    for lam in uot_lams:
        def ugrad(th, lam=lam):
            return _uot_loss(torch.tensor(th), Fg, Pg, ag, ag, 0.5, 1.0, lam, 20000,
                             1e-13).grad.numpy()

        ev = np.linalg.eigvalsh(_hessian_fd(ugrad, A.ravel()))
        uot_conds.append(float(ev.max() / ev.min()) if ev.min() > 0 else math.inf)
    fig, axes = new_figure(2)
    ax = axes[0]
    ax.loglog(cfg.lams, conds, "o-", label="sharpened L_lam")
    ax.axhline(cond0, color="C1", ls="--", label="plain FY loss (lam = 0, Moreau)")
    ax.axhline(cond_sur, color="k", ls=":", label="quadratic surrogate (lam -> inf)")
    ax.set_xlabel("lam")
    ax.set_ylabel("condition number of Hessian at theta*")
    ax.set_title("iJKO, basis (y, y^2, y^3)")
    ax.legend()
    axes[1].semilogx(cfg.lams, uot_conds[1:], "o-", label="sharpened iUOT L_lam")
    axes[1].axhline(uot_conds[0], color="C1", ls="--", label="lam = 0")
    axes[1].set_xlabel("lam")
    axes[1].set_title("iUOT, bilinear 2x2, eps=0.5, rho=1")
    axes[1].legend()
    best = min(conds)
    return Outcome(
        metrics=dict(lams=cfg.lams, cond_sharpened=conds, min_eig_sharpened=mins,
                     cond_plain=cond0, cond_surrogate=cond_sur,
                     cond_sharpened_whitened=conds_white, cond_plain_whitened=cond_plain_white,
                     iuot_lams=uot_lams,
                     iuot_cond=uot_conds),
        figures={"conditioning": fig},
        claims=[
            Claim.at_most("Paper (v3): sharpening improves the conditioning; cond(Hess L_lam) at "
                          "the largest lam vs the plain loss", cond0, conds[-1],
                          note="1-D basis (y, y^2, y^3); Hessians by central differences of the "
                               "exact gradient. Measured: the condition number grows with lam "
                               "towards that of the lam -> inf surrogate (2 Cov_b(phi)), above the "
                               "plain Moreau loss's; the paper's setting (basis, eps, the "
                               "reference loss) is unknown to us. Review check: the Hessians and "
                               "gradients are verified (FD, surrogate limit); the plain loss's "
                               "curvature is a metric on feature gradients, the sharpened one on "
                               "centred features (Cov_b(phi)), so the ranking depends on the "
                               "parametrisation: in the L2(b)-whitened basis (where the surrogate "
                               "is the identity by construction) cond falls with lam, e.g. "
                               "quick: plain 11.4 -> 1.01 at lam=100 (metrics cond_*_whitened). "
                               "No error found; claim kept in the raw monomial basis"),
            Claim.at_most("Paper (v3): sharpening improves the conditioning; iUOT with our "
                          "marginal sharpening, cond at the largest lam vs lam = 0", uot_conds[0],
                          uot_conds[-1], note="D = KL of the observed marginals (our "
                                               "reconstruction; docs/inverse.md). Measured: "
                                               "cond grows with lam, as the problem moves to "
                                               "balanced iOT, whose curvature loses the "
                                               "marginal directions"),
            Claim.close("lam -> inf: the Hessian tends to the quadratic surrogate's "
                        "(2 Cov_b(phi) / (2 lam)); condition numbers", cond_sur, conds[-1],
                        rtol=0.25),
            Claim.holds("Every Hessian is positive definite (strict convexity at theta*)",
                        all(v > 0 for v in mins) and ev0.min() > 0, detail=best),
        ])


@experiment("inverse.sparse-ijko", paper=PAPER, section="Sec. 5, sparse inverse-gradient-flow recovery (v3)",
            title="l1-penalised iJKO: support recovery vs n, with and without sharpening",
            quick=dict(seed=0, ns=[40, 80], reps=1, tau=0.5, eps=0.05, lam=1.0,
                       degree=4, reg_c=0.02, max_iter=60),
            full=dict(seed=0, ns=[50, 100, 200, 400, 800], reps=10, tau=0.5, eps=0.02, lam=1.0,
                      degree=6, reg_c=0.02, max_iter=1000))
def sparse_ijko(cfg):
    """Dictionary of monomials y..y^degree (1-D), true potential sparse; x ~ N(0, 0.6^2),
    x_next = prox_{tau V}(x') for independent x'; l1 weight reg_c / sqrt(n)."""
    from .. import inverse as inv

    rng = np.random.default_rng(cfg.seed)
    basis = inv.polynomial_potential_basis(1, cfg.degree)
    theta = np.zeros(cfg.degree)
    theta[1], theta[3] = 0.5, 0.2  # V = 0.5 y^2 + 0.2 y^4
    supp = theta != 0
    rates = {"plain": [], "sharpened": []}
    errs = {"plain": [], "sharpened": []}
    n_conv = {"plain": 0, "sharpened": 0}
    for n in cfg.ns:
        hits = {"plain": 0, "sharpened": 0}
        e = {"plain": [], "sharpened": []}
        for _ in range(cfg.reps):
            x = rng.normal(size=(n, 1)) * 0.6
            xs = torch.tensor(rng.normal(size=(n, 1)) * 0.6)
            y = basis.prox(torch.tensor(theta), xs, cfg.tau)[0].numpy()
            w = cfg.reg_c / math.sqrt(n)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                fits = {"plain": inv.ijko(x, y, cfg.tau, basis, reg="l1", reg_weight=w,
                                          max_iter=cfg.max_iter, tol=1e-6),
                        "sharpened": inv.ijko(x, y, cfg.tau, basis, lam=cfg.lam, eps=cfg.eps,
                                              reg="l1", reg_weight=w, max_iter=cfg.max_iter,
                                              tol=1e-6)}
            for k, r in fits.items():
                n_conv[k] += int(r.converged)
                est = np.abs(r.theta) > 1e-3 * np.abs(r.theta).max()
                hits[k] += int(np.array_equal(est, supp))
                e[k].append(float(np.linalg.norm(r.theta - theta)))
        for k in rates:
            rates[k].append(hits[k] / cfg.reps)
            errs[k].append(float(np.mean(e[k])))
    fig, axes = new_figure(2)
    for k in rates:
        axes[0].semilogx(cfg.ns, rates[k], "o-", label=k)
        axes[1].loglog(cfg.ns, errs[k], "o-", label=k)
    axes[0].set_xlabel("n")
    axes[0].set_ylabel("exact support recovery rate")
    axes[0].set_ylim(-0.05, 1.05)
    axes[0].legend()
    axes[1].set_xlabel("n")
    axes[1].set_ylabel("||theta_hat - theta*||")
    axes[1].legend()
    return Outcome(
        metrics=dict(ns=cfg.ns, support_rate=rates, error=errs, true_theta=theta.tolist(),
                     fits_converged=n_conv, fits_total=len(cfg.ns) * cfg.reps),
        figures={"support_recovery": fig},
        claims=[
            Claim.at_least("Paper (v2/v3): l1-iJKO recovers the support for large n (plain loss, "
                           "largest n)", 0.5, rates["plain"][-1]),
            Claim.holds("Paper (v3): sharpening helps sparse recovery (support rate at the "
                        "largest n: sharpened > plain, or both 1)",
                        rates["sharpened"][-1] > rates["plain"][-1]
                        or rates["sharpened"][-1] == rates["plain"][-1] == 1.0,
                        detail={"plain": rates["plain"][-1], "sharpened": rates["sharpened"][-1]},
                        note=f"sharpened loss uses entropic smoothing eps={cfg.eps} on the "
                             "sample grid, which biases the coefficients; the dictionary "
                             "features y^2 and y^4 are strongly correlated on the data range"),
        ])


def _auc(pos, neg):
    s = np.concatenate([pos, neg])
    ranks = np.argsort(np.argsort(s)) + 1.0
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


@experiment("inverse.link-prediction", paper=PAPER, section="iUOT application: link prediction (v1/v2)",
            title="Link prediction with iUOT on a synthetic graph with node features (AUC)",
            quick=dict(seed=0, nodes=60, dim=3, train_edges=600, test_edges=300, eps=0.5,
                       rho=1.0),
            full=dict(seed=0, nodes=200, dim=4, train_edges=4000, test_edges=2000, eps=0.5,
                      rho=1.0))
def link_prediction(cfg):
    """Nodes carry features z_i; edges are drawn from the unbalanced entropic plan of the hidden
    cost -z_i^T A z_j; iUOT (bilinear basis) is fitted on training edges and scores test edges
    against random non-edges by the fitted plan. Baselines: feature similarity z_i^T z_j and
    degree product (preferential attachment)."""
    from .. import inverse as inv
    from .. import ot

    rng = np.random.default_rng(cfg.seed)
    N, d = cfg.nodes, cfg.dim
    z = rng.normal(size=(N, d))
    A = rng.normal(size=(d, d)) * 0.8
    F = inv.bilinear_cost_basis(z, z)
    P = ot.solve(None, None, np.tensordot(A, F, 2), eps=cfg.eps, rho=cfg.rho, tol=1e-10).plan
    mass = P.sum()
    p = (P / mass).ravel()
    train = rng.choice(N * N, size=cfg.train_edges, p=p)
    test = rng.choice(N * N, size=cfg.test_edges, p=p)
    neg = rng.choice(N * N, size=cfg.test_edges)
    counts = np.bincount(train, minlength=N * N).reshape(N, N).astype(float)
    P_hat = counts / counts.sum() * mass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = inv.iuot(z, z, "bilinear", eps=cfg.eps, rho=cfg.rho, plan=P_hat, tol=1e-6)
    score = r.plan.ravel()
    sim = (z @ z.T).ravel()
    deg = np.outer(counts.sum(1), counts.sum(0)).ravel()
    aucs = {"iuot": _auc(score[test], score[neg]), "feature_similarity": _auc(sim[test], sim[neg]),
            "degree_product": _auc(deg[test], deg[neg]),
            "oracle_plan": _auc(P.ravel()[test], P.ravel()[neg])}
    rel = float(np.linalg.norm(r.theta - A) / np.linalg.norm(A))
    fig, ax = new_figure()
    ax.bar(list(aucs), list(aucs.values()), color=["C0", "C1", "C2", "C7"])
    ax.set_ylim(0.4, 1.0)
    ax.set_ylabel("AUC (test edges vs random pairs)")
    ax.tick_params(axis="x", labelrotation=20)
    best_base = max(aucs["feature_similarity"], aucs["degree_product"])
    return Outcome(
        metrics=dict(auc=aucs, rel_error_A=rel, converged=bool(r.converged)),
        figures={"auc": fig},
        claims=[
            Claim.at_least("Paper (v1/v2): iUOT link prediction beats feature/degree baselines "
                           "(AUC)", best_base, aucs["iuot"]),
            Claim.close("The fitted plan scores edges nearly as well as the true plan (AUC)",
                        aucs["oracle_plan"], aucs["iuot"], atol=0.03),
        ])
