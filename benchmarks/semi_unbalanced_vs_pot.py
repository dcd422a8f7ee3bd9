"""Semi-unbalanced Sinkhorn (inner solver of the sharpened iJKO loss): measureflow
``inverse.semi_unbalanced_sinkhorn`` vs POT ``ot.unbalanced.sinkhorn_unbalanced`` with
``reg_m=(inf, lam)`` (semi-relaxed; POT runs its kernel-scaling iterations ``method="sinkhorn"``,
``reg_type="kl"``, ours runs in the log domain).

Problem: min_{P 1 = a} <C, P> + eps KL(P | a x b) + lam KL(P^T 1 | b), C = |x - y|^2 / (2 tau)
on n = m samples in R^2 (tau = 0.5), eps = 0.05 mean(C), lam in {1, 100}, float64, CPU, one thread.
Both are run to a tight tolerance; we print the time ratio (ours / POT), the primal objective of
each plan, and the first-marginal violation ||P 1 - a||_1 of each plan.

Run: ``python benchmarks/semi_unbalanced_vs_pot.py [--quick] [--repeat K]``.
"""

from __future__ import annotations

import _common  # noqa: F401  (pins BLAS threads before numpy/torch load)
from _common import best_of as _best

# isort: split

import argparse
import warnings

import numpy as np
import torch


def _objective(P, a, b, C, eps, lam):
    def kl(p, q):
        m = p > 0
        return float((p[m] * np.log(p[m] / q[m])).sum() - p.sum() + q.sum())
    return float((C * P).sum()) + eps * kl(P.ravel(), np.outer(a, b).ravel()) + \
        lam * kl(P.sum(0), b)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="n = 400 instead of 2000")
    ap.add_argument("--repeat", type=int, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    import ot as pot
    from measureflow.inverse import semi_unbalanced_sinkhorn

    n = 400 if args.quick else 2000
    repeat = args.repeat or (3 if args.quick else 1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2))
    y = 0.7 * rng.normal(size=(n, 2)) + 0.3
    C = ((x[:, None] - y[None]) ** 2).sum(-1) / (2 * 0.5)
    a = np.full(n, 1.0 / n)
    b = np.full(n, 1.0 / n)
    eps = 0.05 * float(C.mean())
    print(f"n = m = {n}, d = 2, eps = 0.05 mean(C) = {eps:.4g}, float64, CPU, best of {repeat}")
    print(f"{'lam':>6} {'ours s':>9} {'POT s':>9} {'ratio':>7} {'obj ours':>14} {'obj POT':>14} "
          f"{'|P1-a| ours':>12} {'|P1-a| POT':>12} {'our iters':>10}")
    Ct = torch.from_numpy(C)
    for lam in (1.0, 100.0):
        semi_unbalanced_sinkhorn(a[:50] * n / 50, b[:50] * n / 50, C[:50, :50], eps=eps, lam=lam)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pot.unbalanced.sinkhorn_unbalanced(a[:50], b[:50], C[:50, :50], eps,
                                               (float("inf"), lam), numItermax=100)
            res, t_ours = _best(lambda lam=lam: semi_unbalanced_sinkhorn(
                torch.from_numpy(a), torch.from_numpy(b), Ct, eps=eps, lam=lam, tol=1e-9,
                max_iter=200_000), repeat)
            P_pot, t_pot = _best(lambda lam=lam: pot.unbalanced.sinkhorn_unbalanced(
                a, b, C, eps, (float("inf"), lam), method="sinkhorn", reg_type="kl",
                numItermax=200_000, stopThr=1e-11), repeat)
        P = res.plan.numpy()
        print(f"{lam:6.0f} {t_ours:9.3f} {t_pot:9.3f} {t_ours / t_pot:7.2f} "
              f"{_objective(P, a, b, C, eps, lam):14.8f} {_objective(P_pot, a, b, C, eps, lam):14.8f} "
              f"{np.abs(P.sum(1) - a).sum():12.2e} {np.abs(P_pot.sum(1) - a).sum():12.2e} "
              f"{res.n_iter:>10}")


if __name__ == "__main__":
    main()
