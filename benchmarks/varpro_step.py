"""Time per VarPro step vs per two-timescale step (arXiv:2504.18208, Sec. 6.1 setting).

Both use measureflow.meanfield on identical inputs (ReLU features on S^1, bimodal teacher,
x ~ N(0, I_2)): a VarPro step is an exact ridge solve (O(N M^2 + M^3)) plus an envelope
gradient step on the features; a two-timescale step is one gradient step on both layers
(O(N M)). The ratio VarPro / 2TS is the price of the exact inner solve. Accuracy reported: the
risk after the timed steps (VarPro's reduced risk, 2TS's loss J(u, W)) from the same start.

Usage: python benchmarks/varpro_step.py [--quick] [--device cuda] [--dtype float32]
"""

from __future__ import annotations

import argparse
import time

import torch

from measureflow.meanfield import (
    TwoLayer,
    angles_to_circle,
    sample_circle_teacher,
    two_timescale_train,
    varpro_train,
)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time_per_step(fn, steps, repeats, device):
    fn(1)                                   # warm-up (allocations, kernels)
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn(steps)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best / steps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="N=1024, M=256")
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--m", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    args = ap.parse_args(argv)
    N, M = (1024, 256) if args.quick else (args.n, args.m)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, 2, generator=g, dtype=torch.float64)
    teacher = TwoLayer(angles_to_circle(sample_circle_teacher(4096, 100.0, seed=1)))
    with torch.no_grad():
        y = teacher(x)
    W0 = torch.randn(M, 2, generator=g, dtype=torch.float64)
    x, y, W0 = (t.to(device=device, dtype=dtype) for t in (x, y, W0))
    kw = dict(lam=1e-3, time_scale=2.0**-10, regularization="unbiased")
    final = {}

    def vp(steps):
        final["varpro"] = varpro_train(TwoLayer(W0), x, y, steps=steps, **kw).risk[-1].item()

    def tts(steps):
        final["2ts"] = two_timescale_train(TwoLayer(W0), x, y, steps=steps, **kw).risk[-1].item()

    t_vp = _time_per_step(vp, args.steps, args.repeats, device)
    t_2ts = _time_per_step(tts, args.steps, args.repeats, device)
    print(f"VarPro vs two-timescale step, N={N}, M={M}, {dtype}, device={device}, "
          f"torch threads={torch.get_num_threads()}")
    print(f"{'method':<16}{'s/step':>12}{'risk after ' + str(args.steps) + ' steps':>26}")
    print(f"{'VarPro':<16}{t_vp:>12.4g}{final['varpro']:>26.6g}")
    print(f"{'two-timescale':<16}{t_2ts:>12.4g}{final['2ts']:>26.6g}")
    print(f"ratio VarPro / 2TS per step: {t_vp / t_2ts:.2f}")


if __name__ == "__main__":
    main()
