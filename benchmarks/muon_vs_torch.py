"""Benchmark: ``measureflow.optim.Muon.step`` vs ``torch.optim.Muon.step`` (CPU, float32).

Run:  measureflow bench muon_vs_torch [--quick]   (or: python benchmarks/muon_vs_torch.py)

Identical inputs in one process: the same initial parameters and the same gradient sequence,
the same settings (lr 0.02, momentum 0.95, Nesterov, weight decay 0.1, 5 quintic Newton-Schulz
steps in bfloat16). Cases: one 1024 x 1024 matrix, and a list of 8 such matrices in one
optimizer. Timing: one warm-up step, then best of k single ``step()`` calls
(time.perf_counter). Accuracy: after the same number of steps the parameters of both optimizers
must agree (max |difference| is printed; 0 means bit-identical). Target ratio ours/torch <= 1.1.
"""

from __future__ import annotations

import argparse
import time

import torch

from measureflow.optim import Muon


def case(n_mats, size, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    W0 = [torch.randn(size, size, generator=g) for _ in range(n_mats)]
    grads = [[torch.randn(size, size, generator=g) for _ in range(n_mats)] for _ in range(k + 1)]
    kw = dict(lr=0.02, momentum=0.95, nesterov=True, weight_decay=0.1)
    pa = [torch.nn.Parameter(w.clone()) for w in W0]
    pb = [torch.nn.Parameter(w.clone()) for w in W0]
    ta = torch.optim.Muon(pa, **kw)
    ob = Muon(pb, **kw)
    # interleave the two runs step by step so both see the same machine load
    t_t, t_o = [], []
    for i in range(k + 1):
        for prm, gg in zip(pa, grads[i]):
            prm.grad = gg
        for prm, gg in zip(pb, grads[i]):
            prm.grad = gg
        first, second = (ta, ob) if i % 2 else (ob, ta)  # alternate the order
        t0 = time.perf_counter()
        first.step()
        t1 = time.perf_counter()
        second.step()
        t2 = time.perf_counter()
        if i > 0:
            (t_t if first is ta else t_o).append(t1 - t0)
            (t_t if second is ta else t_o).append(t2 - t1)
    diff = max(float((a.detach() - b.detach()).abs().max()) for a, b in zip(pa, pb))
    return min(t_o), min(t_t), diff


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="256 x 256 matrices, k = 3")
    ap.add_argument("-k", type=int, default=None, help="timed steps (best of k)")
    args = ap.parse_args(argv)
    size = 256 if args.quick else 1024
    k = args.k or (3 if args.quick else 7)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, float32 CPU")
    print(f"{'case':<24}{'ours [ms]':>11}{'torch [ms]':>12}{'ratio':>8}{'max|diff|':>12}")
    for n_mats in (1, 8):
        t_o, t_t, diff = case(n_mats, size, k)
        name = f"{n_mats} x {size}x{size}"
        print(f"{name:<24}{1e3 * t_o:>11.2f}{1e3 * t_t:>12.2f}{t_o / t_t:>8.3f}{diff:>12.2e}")
    print("target: ratio <= 1.1; max|diff| = 0 means the updates are bit-identical")


if __name__ == "__main__":
    main()
