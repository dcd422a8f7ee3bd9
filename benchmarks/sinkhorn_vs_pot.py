"""Log-domain Sinkhorn: measureflow ``ot.solve(eps=...)`` vs POT ``ot.sinkhorn(method="sinkhorn_log")``.

Setting (issue 3): n = m = 4000 uniform points in [0, 1]^3, cost |x - y|^2, eps = 0.01 mean(C),
float64, CPU, one thread for both (OMP/MKL threads pinned to 1 before NumPy/torch load), both
stopped at marginal error 1e-6. The stopping rules differ in norm: POT stops when the L2 norm
of its second-marginal violation (checked every 10 iterations) is <= 1e-6; measureflow when
the L1 norm of the marginal violation (checked every iteration) is <= 1e-6 -- stricter, since
||.||_1 >= ||.||_2. Both plans' L1 and L2 violations and values are printed.

Also reported: our time per Sinkhorn iteration (one g- and one f-update) divided by the time
of two ``torch.logsumexp`` passes over the n x m matrix (target <= 1.3).

Run: ``python benchmarks/sinkhorn_vs_pot.py [--quick] [--repeat K]``.
"""

from __future__ import annotations

import _common  # noqa: F401  (pins BLAS threads before numpy/torch load)
from _common import best_of as _best

# isort: split

import argparse
import warnings

import numpy as np
import torch


def _violation(P, a, b):
    r, c = P.sum(1) - a, P.sum(0) - b
    return float(np.abs(r).sum() + np.abs(c).sum()), float(np.sqrt((r**2).sum() + (c**2).sum()))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="n = 1000 instead of 4000")
    ap.add_argument("--repeat", type=int, default=None, help="best of K timed runs")
    ap.add_argument("--n", type=int, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    import measureflow.ot as mot
    import ot as pot

    n = args.n or (1000 if args.quick else 4000)
    repeat = args.repeat or (3 if args.quick else 1)
    rng = np.random.default_rng(0)
    x, y = rng.random((n, 3)), rng.random((n, 3))
    a = np.full(n, 1.0 / n)
    b = np.full(n, 1.0 / n)
    C = ((x[:, None] - y[None]) ** 2).sum(-1)
    eps = 0.01 * float(C.mean())
    tol = 1e-6
    print(f"n = m = {n}, d = 3, eps = 0.01 mean(C) = {eps:.4g}, float64, CPU, "
          f"torch threads = {torch.get_num_threads()}, best of {repeat}")

    # Warm-up (small problem) for both.
    mot.solve(a[:200] * n / 200, b[:200] * n / 200, C[:200, :200], eps=eps, tol=1e-3)
    pot.sinkhorn(a[:200] * n / 200, b[:200] * n / 200, C[:200, :200], eps,
                 method="sinkhorn_log", stopThr=1e-3)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (P_pot, log), t_pot = _best(lambda: pot.sinkhorn(
            a, b, C, eps, method="sinkhorn_log", stopThr=tol, numItermax=100_000, log=True),
            repeat)
    Ct = torch.from_numpy(C)
    at, bt = torch.from_numpy(a), torch.from_numpy(b)
    r_auto, t_auto = _best(lambda: mot.solve(at, bt, Ct, eps=eps, tol=tol, max_iter=100_000),
                           repeat)
    r_dir, t_dir = _best(lambda: mot.solve(at, bt, Ct, eps=eps, tol=tol, max_iter=100_000,
                                           eps_scaling=None), repeat)
    rows = []
    for name, P, t, its in (
            ("POT sinkhorn_log", P_pot, t_pot, log.get("niter", "?")),
            ("measureflow (eps-scaling auto)", r_auto.plan.numpy(), t_auto, r_auto.n_iter),
            ("measureflow (no eps-scaling)", r_dir.plan.numpy(), t_dir, r_dir.n_iter)):
        l1, l2 = _violation(P, a, b)
        rows.append((name, t, its, l1, l2, float((C * P).sum())))
    print(f"{'solver':34s} {'time s':>9s} {'iters':>6s} {'L1 viol':>9s} {'L2 viol':>9s} "
          f"{'<C,P>':>14s}")
    for name, t, its, l1, l2, lin in rows:
        print(f"{name:34s} {t:9.3f} {its!s:>6s} {l1:9.2e} {l2:9.2e} {lin:14.10f}")
    print(f"ratio ours/POT (auto)        : {t_auto / t_pot:.3f}  (target <= 0.333)")
    print(f"ratio ours/POT (no scaling)  : {t_dir / t_pot:.3f}")

    # Per-iteration cost vs two logsumexp passes over the n x m matrix.
    k = 10 if not args.quick else 20
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, t_k = _best(lambda: mot.solve(at, bt, Ct, eps=eps, tol=1e-300, max_iter=k,
                                         eps_scaling=None), max(repeat, 2))
    M = -Ct / eps
    _, t_lse = _best(lambda: (torch.logsumexp(M, 1), torch.logsumexp(M, 0)), max(repeat, 3))
    per_it = t_k / k
    print(f"time per iteration (incl. setup amortised over {k}) : {per_it * 1e3:.1f} ms; "
          f"two torch.logsumexp passes (rows + cols): {t_lse * 1e3:.1f} ms; "
          f"ratio {per_it / t_lse:.3f} (target <= 1.3)")


if __name__ == "__main__":
    main()
