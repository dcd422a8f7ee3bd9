"""Streamed ``measureflow.attention.attend`` vs ``torch.nn.functional.scaled_dot_product_attention``.

Self-attention of n tokens in dimension d (float32, projections included in both timings):
ours = attend(X, X, Q=Wq, K=Wk, V=Wv) (online softmax over chunks); anchor = SDPA on the
projected q, k, v with scale=1 (our convention has no hidden 1/sqrt(d)). Reports the best-of-k
wall time of each, their ratio (ours / anchor), the max abs difference of the outputs (both vs
a float64 reference on a subset of queries), and the peak memory of each call measured as the
increase of the peak resident set size (VmHWM after resetting it through
/proc/self/clear_refs, minus VmRSS before the call) of a fresh spawned child process that runs
only that call. Both run with the same number of torch threads (``--threads``, default 1). The naive dense softmax(q k^T) v (the n x n score matrix) is reported by its
size (not run at full size).

    python benchmarks/attention_stream.py            # n = 20000, d = 64
    python benchmarks/attention_stream.py --quick    # n = 4000
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

import torch
import torch.nn.functional as F

from measureflow.attention import attend
from measureflow.datasets import attention_tokens


def ours(X, Wq, Wk, Wv, chunk=None):
    return attend(X, X, Q=Wq, K=Wk, V=Wv, chunk=chunk)


def anchor(X, Wq, Wk, Wv):
    q, k, v = X @ Wq.T, X @ Wk.T, X @ Wv.T
    return F.scaled_dot_product_attention(q[None], k[None], v[None], scale=1.0)[0]


def _sync(t):
    if t.is_cuda:
        torch.cuda.synchronize(t.device)


def _best_of(fn, args, k):
    fn(*args)                                   # warm-up
    best = float("inf")
    out = None
    for _ in range(k):
        _sync(args[0])
        t = time.perf_counter()
        out = fn(*args)
        _sync(args[0])
        best = min(best, time.perf_counter() - t)
    return best, out


def cuda_peak_mib(fn, args):
    """Peak CUDA memory allocated by one call, above what was allocated before (MiB)."""
    _sync(args[0])
    torch.cuda.reset_peak_memory_stats(args[0].device)
    before = torch.cuda.memory_allocated(args[0].device)
    fn(*args)
    _sync(args[0])
    return (torch.cuda.max_memory_allocated(args[0].device) - before) / 2**20


def _status_kib(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def _peak_child(which, n, d, chunk, threads, q):
    torch.set_num_threads(threads)
    X, Wq, Wk, Wv = attention_tokens(n, d)
    fn = ours if which == "ours" else anchor
    fn(X[:64], Wq, Wk, Wv)                       # load kernels outside the measurement
    try:                                        # reset the peak RSS (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        before = _status_kib("VmRSS")
        fn(X, Wq, Wk, Wv)
        peak = _status_kib("VmHWM")
    except OSError:                             # fall back on ru_maxrss (may read 0)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        fn(X, Wq, Wk, Wv)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    q.put((peak - before) / 1024.0)             # KiB -> MiB


def peak_mib(which, n, d, threads, chunk=None):
    ctx = mp.get_context("spawn")          # fork after torch threads can deadlock
    q = ctx.Queue()
    p = ctx.Process(target=_peak_child, args=(which, n, d, chunk, threads, q))
    p.start()
    val = q.get()
    p.join()
    return val


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small size (n = 4000)")
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads for both (default 1: reproducible on a "
                         "shared machine)")
    ap.add_argument("--device", default="cpu",
                    help="torch device of both methods, e.g. cuda (memory: peak CUDA "
                         "allocation instead of the process RSS)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    n = args.n or (4000 if args.quick else 20000)
    d = args.d
    X, Wq, Wk, Wv = (t.to(args.device) for t in attention_tokens(n, d))
    t_ours, o_ours = _best_of(ours, (X, Wq, Wk, Wv), args.repeats)
    t_anchor, o_anchor = _best_of(anchor, (X, Wq, Wk, Wv), args.repeats)
    # float64 reference on 256 queries
    idx = torch.arange(0, n, max(1, n // 256))[:256]
    Xd = X.double()
    ref = torch.softmax((Xd[idx] @ Wq.double().T) @ (Xd @ Wk.double().T).T, 1) @ (
        Xd @ Wv.double().T)
    err_ours = float((o_ours[idx].double() - ref).abs().max())
    err_anchor = float((o_anchor[idx].double() - ref).abs().max())
    if X.is_cuda:
        m_ours = cuda_peak_mib(ours, (X, Wq, Wk, Wv))
        m_anchor = cuda_peak_mib(anchor, (X, Wq, Wk, Wv))
    else:
        m_ours = peak_mib("ours", n, d, args.threads)
        m_anchor = peak_mib("anchor", n, d, args.threads)
    dense_mib = n * n * 4 / 2**20
    print(f"attention_stream: n = {n}, d = {d}, float32, threads = {torch.get_num_threads()}, "
          f"device {args.device}, best of {args.repeats}")
    print(f"{'method':<34}{'time [s]':>10}{'max|err|':>12}{'peak dRSS [MiB]':>17}")
    print(f"{'measureflow attend (streamed)':<34}{t_ours:>10.3f}{err_ours:>12.2e}{m_ours:>17.1f}")
    print(f"{'torch SDPA (anchor)':<34}{t_anchor:>10.3f}{err_anchor:>12.2e}{m_anchor:>17.1f}")
    print(f"{'naive dense scores (size only)':<34}{'-':>10}{'-':>12}{dense_mib:>17.1f}")
    print(f"time ratio ours/anchor = {t_ours / t_anchor:.3f} (target <= 1.5); "
          f"peak memory ratio ours/anchor = {m_ours / max(m_anchor, 1e-9):.3f}; "
          f"ours vs naive dense n x n scores = {m_ours / dense_mib:.3f}")
    return dict(n=n, d=d, t_ours=t_ours, t_anchor=t_anchor, ratio=t_ours / t_anchor,
                err_ours=err_ours, err_anchor=err_anchor, mem_ours=m_ours, mem_anchor=m_anchor)


if __name__ == "__main__":
    main()
