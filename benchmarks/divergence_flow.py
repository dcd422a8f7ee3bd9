"""Gradient flow of the debiased Sinkhorn divergence: measureflow vs GeomLoss (float32).

Setting: 5000 source points flow towards 5000 target points in 2-D, float32, one CPU thread,
50 explicit steps x <- x - lr * n * grad_x S(x, y) (GeomLoss's gradient-flow tutorial), blur
0.05, lr 0.05.

* measureflow: the call users write, ``ot.sinkhorn_divergence(x, y, eps=2 * blur**2)``, with
  its DEFAULT options (tolerance, schedule, kernels), cost |x - y|^2.
* GeomLoss: ``SamplesLoss("sinkhorn", p=2, blur=0.05, scaling=0.9, backend="tensorized")``.
  Its cost for p = 2 is |x - y|^2 / 2 and its eps is blur^p = 0.0025, i.e. eps = 2 blur^2 =
  0.005 in our units, and its value is half of ours: we step with ``lr / 2`` on our value so
  both flows are the same ODE, and compare ``2 x`` GeomLoss's loss with ours.

Accuracy: at checkpoints (steps 0, 10, 25, 49) of each library's own trajectory, the loss is
compared with a float64 value (measureflow, float64, tol 1e-5, not timed: see the comment at
the reference for why that is accurate enough). Target
(issue 17): ours within 1e-3 relative, time <= 1.0 x GeomLoss's.

Run: ``python benchmarks/divergence_flow.py [--n 5000] [--steps 50] [--quick]``
(``--quick``: n = 1000, 10 steps).
"""

from __future__ import annotations

import _common  # noqa: F401  (pins BLAS threads before numpy/torch load)

# isort: split

import argparse
import time
import warnings

import numpy as np
import torch


def _clouds(n, seed=0):
    rng = np.random.default_rng(seed)
    # source: a ring; target: two Gaussian blobs (both in the unit square)
    t = rng.uniform(0, 2 * np.pi, n)
    r = 0.25 + 0.03 * rng.normal(size=n)
    x = np.stack([0.5 + r * np.cos(t), 0.5 + r * np.sin(t)], 1)
    k = rng.random(n) < 0.5
    y = np.where(k[:, None], [0.3, 0.7], [0.7, 0.3]) + 0.06 * rng.normal(size=(n, 2))
    return x, y


def flow(loss_fn, x0, y, steps, lr, checkpoints):
    x = x0.clone().requires_grad_(True)
    n = x.shape[0]
    snaps = {}
    t0 = time.perf_counter()
    for k in range(steps):
        L = loss_fn(x, y)
        (g,) = torch.autograd.grad(L, [x])
        if k in checkpoints:
            snaps[k] = (x.detach().clone(), float(L))
        with torch.no_grad():
            x -= lr * n * g
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0, snaps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--blur", type=float, default=0.05)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--quick", action="store_true", help="n = 1000, 10 steps")
    ap.add_argument("--no-geomloss", action="store_true")
    ap.add_argument("--no-peer-accuracy", action="store_true",
                    help="float64 references for our trajectory only (each reference is a "
                         "float64 solve: minutes at 5000 points)")
    ap.add_argument("--device", default="cpu", help="torch device of both flows, e.g. cuda")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.steps = 1000, 10
    torch.set_num_threads(1)
    import measureflow.ot as mot
    from measureflow.ot import kernels

    blur, lr = args.blur, args.lr
    eps = 2 * blur ** 2
    x, y = _clouds(args.n)
    x0 = torch.tensor(x, dtype=torch.float32, device=args.device)
    yt = torch.tensor(y, dtype=torch.float32, device=args.device)
    checkpoints = sorted({0, min(10, args.steps - 1), min(25, args.steps - 1), args.steps - 1})
    print(f"n = m = {args.n}, 2-D, float32, blur = {blur} (eps = 2 blur^2 = {eps:g} for the cost "
          f"|x-y|^2), {args.steps} steps, lr = {lr}, 1 thread, device {args.device}, kernels "
          "backend "
          f"{kernels.get_backend()!r}")

    # warm-up (compile the kernels once for this process; excluded, reported)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = kernels.set_backend("compiled")
        xs = x0[:300].clone().requires_grad_(True)
        torch.autograd.grad(mot.sinkhorn_divergence(xs, yt[:300], eps=eps), [xs])
        kernels.set_backend(old)
    t_compile = time.perf_counter() - t0

    def ours(xx, yy):
        return mot.sinkhorn_divergence(xx, yy, eps=eps)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t_ours, s_ours = flow(ours, x0, yt, args.steps, lr / 2, checkpoints)
    n_warn = sum(1 for w in caught if "not converged" in str(w.message))
    print(f"  measureflow flow: {t_ours:.2f} s", flush=True)
    results = [("measureflow (defaults)", t_ours, s_ours, 1.0)]
    if not args.no_geomloss:
        from geomloss import SamplesLoss

        gl = SamplesLoss("sinkhorn", p=2, blur=blur, scaling=0.9, backend="tensorized")
        t_gl, s_gl = flow(lambda a, b: gl(a, b), x0, yt, args.steps, lr, checkpoints)
        results.append(("GeomLoss tensorized s=0.9", t_gl, s_gl, 2.0))

    print(f"  compile (measureflow, first call in the process): {t_compile:.1f} s; "
          f"ConvergenceWarnings during our flow: {n_warn}")
    for name, t, _, _ in results:  # the times first: the references below take a while
        print(f"  {name:28s} {t:8.2f} s", flush=True)
    if len(results) == 2:
        print(f"  ratio ours / GeomLoss: {results[0][1] / results[1][1]:.3f} (target <= 1.0)",
              flush=True)
    for name, t, snaps, unit in results[:1] if args.no_peer_accuracy else results:
        errs = []
        for k, (xk, val) in snaps.items():
            # float64 reference at L1 violation 1e-5 (over-relaxed, up to 10^5 iterations).
            # Mid-flow states have a slow Sinkhorn mode (potential offsets between groups of
            # points) that the value barely sees: at such a state (1000 points) tol 1e-5 was
            # 6.8e-9 relative from a tol 1e-10 solve, far below the 1e-3 compared here, while
            # tol 1e-7 did not converge in 10 000 iterations at 2000 points.
            ref = float(mot.sinkhorn_divergence(xk.double(), yt.double(), eps=eps, tol=1e-5,
                                                max_iter=100_000))
            errs.append((k, abs(unit * val - ref) / abs(ref), ref))
        worst = max(e for _, e, _ in errs)
        detail = ", ".join(f"step {k}: {e:.1e} (S={r:.4g})" for k, e, r in errs)
        print(f"  {name:28s} {t:8.2f} s   max rel. error vs float64 {worst:.1e}   [{detail}]")
    if len(results) == 2:
        print(f"  ratio ours / GeomLoss: {results[0][1] / results[1][1]:.3f} (target <= 1.0)")


if __name__ == "__main__":
    main()
