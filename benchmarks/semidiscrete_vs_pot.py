"""Semi-discrete OT on a grid: measureflow damped Newton vs POT's exact LP on the grid measure.

No maintained Python library ships a general semi-discrete (Laguerre) solver, so the anchor is
the exact discrete problem it approximates: POT ``ot.emd2`` between the grid measure (one Dirac
per pixel) and the target. Both give W2^2 of the grid measure (ours brackets it between the
semi-dual value and the cost of the Laguerre plan). Same inputs, one process, best of k.

Run: ``python benchmarks/semidiscrete_vs_pot.py [--quick]`` or ``measureflow bench semidiscrete_vs_pot``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _best(fn, k):
    fn()  # warm-up
    best = np.inf
    out = None
    for _ in range(k):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv=None):
    import ot as pot
    from measureflow.ot import semidiscrete

    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("-k", type=int, default=3)
    args = ap.parse_args(argv)
    sizes = [(60, 16)] if args.quick else [(100, 32), (160, 64)]
    rng = np.random.default_rng(0)
    print(f"{'grid':>8} {'m':>4} {'ours s':>9} {'POT s':>9} {'ratio':>7} {'ours W2^2 [dual, primal]':>30}"
          f" {'POT W2^2':>12}")
    for n, m in sizes:
        xs = (np.arange(n) + 0.5) / n
        X, Y = np.meshgrid(xs, xs, indexing="ij")
        rho = 1.0 + np.exp(-((X - 0.3) ** 2 + (Y - 0.6) ** 2) / 0.02)
        y = rng.random((m, 2))
        b = rng.random(m) + 0.5
        b /= b.sum()
        P = np.stack([X.ravel(), Y.ravel()], 1)
        w = rho.ravel() / rho.sum()

        def ours(y=y, b=b, rho=rho):
            return semidiscrete(y, b, density=rho)

        def anchor(P=P, y=y, w=w, b=b):
            C = ((P[:, None, :] - y[None]) ** 2).sum(-1)
            return pot.emd2(w, b, C, numItermax=10 ** 9)

        t_o, r = _best(ours, args.k)
        t_a, v = _best(anchor, args.k)
        ok = r.value <= v + 1e-12 and r.primal_cost >= v - 1e-12 and r.converged
        print(f"{n:>5}^2 {m:>4} {t_o:>9.3f} {t_a:>9.3f} {t_o / t_a:>7.2f} "
              f"[{r.value:.8f}, {r.primal_cost:.8f}] {v:>12.8f}  bracket={'ok' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
