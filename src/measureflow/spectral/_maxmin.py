"""Certified solver of  min_{S in conv(atoms)} gamma_p(S) = max_{Q in K_p} min_S <Q, S>.

Used by :func:`spectral_wasserstein` (S = displacement second moment of a coupling) and
:func:`spectral_bures` (S = dm dm^T + S0 + S1 - K - K^T). The user supplies an *oracle*
Q -> (S_Q, atom) returning a minimiser of <Q, S> over the feasible set (an exact LP for
couplings, a polar decomposition for Gaussian cross-covariances); <Q, S_Q> is then a certified
lower bound of W^2 for every Q in K_p (max-min theorem, arXiv 2604.04891 Thm. "minmax").

Algorithm (written by hand; the small master LP uses SciPy's HiGHS): a primal-dual cutting
plane / simplicial decomposition. The master problem

    min_{lam in simplex, t} t   s.t.   sum_k lam_k <Q_j, S_k> <= t   for every cut j

is the gauge restricted to the generated atoms S_k and outer-linearised by generated
supporting matrices Q_j in K_p (gamma_p(S) = max_{Q in K_p} <Q, S>). Each iteration adds the
atom of the master's dual matrix Qbar = sum_j mu_j Q_j (oracle call, lower bound
L = <Qbar, S_Qbar>) and the cut Q = grad gamma_p(S_lam) at the master's primal point (upper bound
U = gamma_p(S_lam), attained by the mixed coupling). It stops when U - L <= tol x U: the
duality gap is certified, not estimated.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["gauge", "gauge_subgradient", "solve_maxmin"]


def _eig(S):
    ev, V = np.linalg.eigh(0.5 * (S + S.T))
    return np.clip(ev, 0.0, None), V


def gauge(S: np.ndarray, p: float) -> float:
    """gamma_p(S) = ||lambda(S)||_p for a symmetric PSD S (negative round-off clipped)."""
    ev, _ = _eig(S)
    if math.isinf(p):
        return float(ev.max())
    if p == 1:
        return float(ev.sum())
    m = ev.max()
    if m <= 0:
        return 0.0
    return float(m * ((ev / m) ** p).sum() ** (1.0 / p))


def gauge_subgradient(S: np.ndarray, p: float) -> np.ndarray:
    """A matrix Q in K_p with <Q, S> = gamma_p(S) (a subgradient of the gauge at S).

    p = 1: I; p = inf: u u^T for a top eigenvector u; else S^{p-1} / ||S||_{S_p}^{p-1}.
    K_p = {Q >= 0 : ||Q||_{S_p'} <= 1}.
    """
    d = S.shape[0]
    if p == 1:
        return np.eye(d)
    ev, V = _eig(S)
    if math.isinf(p):
        u = V[:, -1]
        return np.outer(u, u)
    m = ev.max()
    if m <= 0:
        pp = p / (p - 1.0)
        return np.eye(d) / d ** (1.0 / pp)
    r = ev / m
    w = r ** (p - 1.0) / ((r ** p).sum() ** ((p - 1.0) / p))
    return (V * w) @ V.T


def _center_Q(d: int, p: float) -> np.ndarray:
    """I / ||I||_{S_p'}: the 'trace' point of K_p (p' the conjugate of p)."""
    if math.isinf(p):
        return np.eye(d) / d
    if p == 1:
        return np.eye(d)
    pp = p / (p - 1.0)
    return np.eye(d) / d ** (1.0 / pp)


def _master(M: np.ndarray):
    """Solve min t s.t. M lam <= t, lam in simplex. M is (J, K). Returns lam, mu (duals)."""
    from scipy.optimize import linprog

    J, K = M.shape
    M = M / max(float(np.abs(M).max()), 1e-300)  # scale-free tolerances
    c = np.zeros(K + 1)
    c[-1] = 1.0
    A_ub = np.hstack([M, -np.ones((J, 1))])
    b_ub = np.zeros(J)
    A_eq = np.zeros((1, K + 1))
    A_eq[0, :K] = 1.0
    bounds = [(0, None)] * K + [(None, None)]
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=[1.0], bounds=bounds,
                  method="highs", options={"primal_feasibility_tolerance": 1e-10,
                                           "dual_feasibility_tolerance": 1e-10})
    if res.status != 0:  # pragma: no cover - the master LP is always feasible and bounded
        raise RuntimeError(f"master LP failed: {res.message}")
    lam = np.clip(res.x[:K], 0.0, None)
    lam /= lam.sum()
    mu = np.clip(-np.asarray(res.ineqlin.marginals), 0.0, None)
    if mu.sum() <= 0:
        mu = np.zeros(J)
        mu[int(np.argmax(M @ lam))] = 1.0
    mu /= mu.sum()
    return lam, mu


def solve_maxmin(oracle, d: int, p: float, *, tol: float, max_iter: int):
    """Run the cutting plane. ``oracle(Q) -> (S_Q, atom)``; returns a dict.

    Keys: ``lam`` (weights of the atoms), ``atoms``, ``S`` (mixed matrix), ``upper`` =
    gamma_p(S), ``lower`` (best certified lower bound), ``Q`` (the matrix attaining it),
    ``errors`` (relative gap trace), ``converged``, ``n_iter``.
    """
    Q0 = _center_Q(d, p)
    S0, atom0 = oracle(Q0)
    atoms = [atom0]
    Ss = [S0]
    best_L = float(np.sum(Q0 * S0))
    best_Q = Q0
    cuts = [Q0, gauge_subgradient(S0, p)]
    errors: list[float] = []
    lam = np.ones(1)
    S = S0
    U = gauge(S0, p)
    converged = False
    n_iter = 0
    M = np.einsum("jab,kab->jk", np.array(cuts), np.array(Ss))
    for it in range(max_iter):
        n_iter = it + 1
        if M.shape[0] < len(cuts):  # new cut rows
            newrows = np.einsum("jab,kab->jk", np.array(cuts[M.shape[0]:]),
                                np.array(Ss[:M.shape[1]]))
            M = np.vstack([M, newrows])
        if M.shape[1] < len(Ss):  # new atom columns
            newcols = np.einsum("jab,kab->jk", np.array(cuts), np.array(Ss[M.shape[1]:]))
            M = np.hstack([M, newcols])
        lam, mu = _master(M)
        S = sum(lk * Sk for lk, Sk in zip(lam, Ss))
        U = gauge(S, p)
        Qbar = sum(mj * Qj for mj, Qj in zip(mu, cuts))
        Snew, atom = oracle(Qbar)
        L = float(np.sum(Qbar * Snew))
        if L > best_L:
            best_L, best_Q = L, Qbar
        gap = max(U - best_L, 0.0)
        errors.append(gap / max(U, 1e-300))
        if gap <= tol * max(U, 1e-300):
            converged = True
            break
        Ss.append(Snew)
        atoms.append(atom)
        cuts.append(gauge_subgradient(S, p))
    # drop the atoms the final mixture does not use
    keep = lam > 0
    return dict(lam=lam[keep], atoms=[a for a, k in zip(atoms, keep) if k], S=S, upper=U,
                lower=best_L, Q=best_Q, errors=errors, converged=converged, n_iter=n_iter)
