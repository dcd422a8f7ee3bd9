"""Benchmark: ``spectral.schatten_lmo`` fast path (Newton-Schulz polar factor) vs SVD path.

Run:  measureflow bench schatten_lmo [--quick]   (or: python benchmarks/schatten_lmo.py)

Identical Gaussian matrices in one process; p = inf (J = -||G||_* U W^T, fast path: matmuls
only) and p = 2 (fast path: polar factor by Newton-Schulz, then ``eigh`` of the small symmetric
factor H = Z^T G). The anchor is our SVD path (``torch.linalg.svd``, LAPACK gesdd): there is no
external library computing the Schatten-p LMO. Timing: warm-up, best of k (time.perf_counter).
Accuracy: relative Frobenius error of the fast result against the SVD result, and the fast
path's reported orthogonality error ||Z Z^T - I||_F. float64 and float32.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from measureflow.spectral import schatten_lmo


def best_time(fn, k):
    fn()
    ts = []
    out = None
    for _ in range(k):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return min(ts), out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="sizes 128 and 256, k = 2")
    args = ap.parse_args(argv)
    sizes = [(128, 128), (256, 128)] if args.quick else [(256, 256), (1024, 256), (1024, 1024)]
    k = 2 if args.quick else 3
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, CPU")
    print(f"{'shape':<12}{'dtype':<9}{'p':>5}{'svd [ms]':>10}{'fast [ms]':>11}{'ratio':>8}"
          f"{'rel.err':>10}{'orth.err':>10}{'iters':>6}")
    g = torch.Generator().manual_seed(0)
    for shape in sizes:
        G64 = torch.randn(*shape, generator=g, dtype=torch.float64)
        for dtype in (torch.float64, torch.float32):
            G = G64.to(dtype)
            for p in (math.inf, 2.0):
                t_s, J = best_time(lambda G=G, p=p: schatten_lmo(G, p), k)
                t_f, R = best_time(lambda G=G, p=p: schatten_lmo(G, p, method="fast",
                                                                 return_info=True), k)
                err = float((R.direction - J).norm() / J.norm())
                name = f"{shape[0]}x{shape[1]}"
                dn = str(dtype).replace("torch.", "")
                print(f"{name:<12}{dn:<9}{p:>5}{1e3 * t_s:>10.1f}{1e3 * t_f:>11.1f}"
                      f"{t_f / t_s:>8.2f}{err:>10.1e}{float(R.orth_error):>10.1e}{R.n_iter:>6}")
    print("ratio = fast / svd (< 1: the fast path is faster)")


if __name__ == "__main__":
    main()
