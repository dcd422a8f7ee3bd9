"""Exact OT: measureflow ``ot.solve(eps=None)`` vs POT ``ot.emd2`` (network simplex).

Setting (issue 3): n = m = 4000 uniform points in [0, 1]^3, cost |x - y|^2, random positive
weights, float64, CPU, one thread. measureflow calls POT's network simplex itself and adds
input validation, an iteration cap scaled to the problem, dual repair and the optimality
certificate; the ratio measures that overhead. POT runs with ``numItermax`` large enough to
converge (its default 100000 stops early at this size). Both must reach the same optimal value.

Run: ``python benchmarks/emd_vs_pot.py [--quick] [--repeat K]``.
"""

from __future__ import annotations

import _common  # noqa: F401  (pins BLAS threads before numpy/torch load)
from _common import best_of as _best

# isort: split

import argparse

import numpy as np
import torch


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="n = 1000 instead of 4000")
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--n", type=int, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    import measureflow.ot as mot
    import ot as pot

    n = args.n or (1000 if args.quick else 4000)
    repeat = args.repeat or (3 if args.quick else 1)
    rng = np.random.default_rng(0)
    x, y = rng.random((n, 3)), rng.random((n, 3))
    a = rng.random(n) + 0.1
    b = rng.random(n) + 0.1
    a /= a.sum()
    b /= b.sum()
    b *= a.sum() / b.sum()
    C = ((x[:, None] - y[None]) ** 2).sum(-1)
    print(f"n = m = {n}, d = 3, float64, CPU, one thread, best of {repeat}")
    mot.solve(None, None, C[:100, :100])
    pot.emd2(np.full(100, 0.01), np.full(100, 0.01), C[:100, :100])

    big = 2**31 - 1
    (v_pot, log), t_pot = _best(lambda: pot.emd2(a, b, C, numItermax=big, log=True), repeat)
    r, t_ours = _best(lambda: mot.solve(a, b, C), repeat)
    print(f"{'solver':26s} {'time s':>9s} {'value':>20s}  status")
    print(f"{'POT emd2':26s} {t_pot:9.3f} {v_pot:20.15f}  {log.get('warning') or 'optimal'}")
    print(f"{'measureflow solve':26s} {t_ours:9.3f} {r.value:20.15f}  "
          f"converged={r.converged} certificate valid={r.certificate.valid} "
          f"(gap {r.certificate.gap:.1e}, dual viol {r.certificate.dual_violation:.1e})")
    print(f"|value difference| = {abs(r.value - v_pot):.2e}")
    print(f"ratio ours/POT: {t_ours / t_pot:.3f}")


if __name__ == "__main__":
    main()
