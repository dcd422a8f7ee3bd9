"""Counting conservation laws: autodiff Lie closure (ours) vs symbolic brackets (anchor).

Anchor: Algorithm 1 of arXiv 2307.00144 as in its reference implementation (symbolic
brackets of the polynomial fields grad phi_i, evaluated at one random point, kept when they
raise the numerical rank; filtration until nothing is added). The reference uses SageMath;
SageMath is not installable here, so the anchor is the same algorithm written with SymPy
(a torch dependency, so already installed). Both must return the same count, equal to the
known number of laws.

Scale part (ours only; no anchor reaches these sizes): a 3-layer ReLU MLP with D ~ 1000
(count by the sampled-rank test certified by the known laws, and by the full bracket closure
without that knowledge) and a 2-head attention layer with D ~ 500 (full closure of phi =
(Q_h^T K_h, V_h^T O_h)); then the largest D counted within the time budget.

Run: ``python benchmarks/conservation_count.py [--quick] [--budget 60]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from measureflow.conservation import architectures as A
from measureflow.conservation import number_of_laws, number_of_laws_model


# ------------------------------------------------------------------ anchor (SymPy, Algorithm 1)
def sympy_count(arch, theta: np.ndarray) -> int:
    import sympy as sp

    D = arch.n_params
    xs = sp.symbols(f"x0:{D}")
    # phi as sympy expressions: evaluate the torch phi on a symbolic object array
    vec = np.array(xs, dtype=object)
    phi = _phi_sympy(arch, vec)
    fields = [sp.Matrix([sp.diff(p, x) for x in xs]) for p in phi]
    point = dict(zip(xs, [float(v) for v in theta]))

    def ev(F):
        return np.array([float(c.subs(point)) for c in F], dtype=float)

    def rank(rows):
        return int(np.linalg.matrix_rank(np.array(rows))) if rows else 0

    X = sp.Matrix(xs)
    jac = {}

    def J(F):  # symbolic Jacobian, computed once per field
        key = id(F)
        if key not in jac:
            jac[key] = (F, F.jacobian(X))
        return jac[key][1]

    kept_rows, pivots = [], []
    for F in fields:
        v = ev(F)
        if rank(kept_rows + [v]) > len(kept_rows):
            kept_rows.append(v)
            pivots.append(F)
    new = list(pivots)
    while new and len(kept_rows) < D:
        nxt = []
        for F in new:
            for G in pivots:
                B = J(G) * F - J(F) * G
                B = sp.expand(B)
                v = ev(B)
                if rank(kept_rows + [v]) > len(kept_rows):
                    kept_rows.append(v)
                    nxt.append(B)
        new = nxt
    return D - len(kept_rows)


def _phi_sympy(arch, vec):
    """Symbolic phi for the benchmark's small polynomial architectures."""
    name = arch.name
    shapes = arch.shapes
    parts, k = {}, 0
    for nm, shp in shapes.items():
        n = int(np.prod(shp))
        parts[nm] = vec[k:k + n].reshape(shp)
        k += n
    if name.startswith("linear["):
        if "U" in parts:
            return list((parts["U"].dot(parts["V"].T)).reshape(-1))
        Ws = list(parts.values())
        P = Ws[0]
        for W in Ws[1:]:
            P = W.dot(P)
        return list(P.reshape(-1))
    if name.startswith("relu["):
        U, V = parts["U"], parts["V"]
        return [U[i, k] * V[j, k] for k in range(U.shape[1]) for i in range(U.shape[0])
                for j in range(V.shape[0])]
    if name.startswith("attention"):
        out = []
        for h in range(len(shapes) // 4):
            Q, K, V, O = (parts[f"{c}{h}"] for c in "QKVO")
            out += list(Q.T.dot(K).reshape(-1)) + list(V.T.dot(O).reshape(-1))
        return out
    raise ValueError(name)


class Clock:
    """Wall and process-CPU seconds (the machine may be shared: CPU time is also reported)."""

    def __enter__(self):
        self.w, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.w
        self.cpu = time.process_time() - self.c

    def __str__(self):
        return f"{self.wall:.1f} s wall / {self.cpu:.1f} s CPU"


def best_of(fn, k: int):
    fn()  # warm-up
    ts, out = [], None
    for _ in range(k):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return min(ts), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("--threads", type=int, default=2,
                    help="torch threads (2 = the target's 2 cores; on a shared, overloaded "
                         "machine 1 thread avoids OpenMP spin-waiting)")
    ap.add_argument("--scan", choices=["both", "mlp", "attention", "none"], default="both",
                    help="which largest-D scans to run")
    ap.add_argument("--only-scan", action="store_true", help="skip the comparison and scale parts")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}")

    if args.only_scan:
        _scans(args)
        return
    # ---- ours vs anchor on identical small inputs
    small = [A.linear_two_layer(2, 2, 2), A.linear_deep([2, 2, 2, 2]),
             A.relu_two_layer(3, 3, 2)]
    if not args.quick:
        small += [A.linear_two_layer(3, 3, 3), A.attention(3, 1, 1)]
    print("\n== ours (torch.func closure) vs anchor (SymPy symbolic Algorithm 1) ==")
    print(f"{'arch':28s} {'D':>4s} {'laws ours':>9s} {'anchor':>7s} {'known':>6s} "
          f"{'t ours [s]':>10s} {'t anchor [s]':>12s} {'ratio':>8s}")
    for arch in small:
        th = arch.sample_params(0)
        known = arch.n_known if arch.n_known is not None else A.known_rank(arch, th)
        t_o, c = best_of(lambda a=arch, t=th: number_of_laws(a.phi, t), 3)
        t_a, ca = best_of(lambda a=arch, t=th: sympy_count(a, t.numpy()), 1)
        print(f"{arch.name:28s} {arch.n_params:4d} {c.n_laws:9d} {ca:7d} {known:6d} "
              f"{t_o:10.3f} {t_a:12.3f} {t_o / t_a:8.4f}")

    # ---- scale: 3-layer ReLU MLP, D ~ 1000
    print("\n== scale (ours only) ==")
    dims = [10, 20, 20, 10] if args.quick else [16, 24, 20, 8]
    mlp = A.relu_deep(dims, bias=True, path_phi=False)
    th = mlp.sample_params(0)
    X = mlp.sample_inputs(max(3 * mlp.n_params // dims[-1], 64), 1)
    with Clock() as t1:
        c = number_of_laws_model(mlp.g, th, X, n_known=mlp.n_known)
    with Clock() as t2:
        c2 = number_of_laws_model(mlp.g, th, X)
    print(f"MLP {dims} (+bias) D={mlp.n_params}, {X.shape[0]} inputs: certified count "
          f"{c.n_laws} (known {mlp.n_known}, certified={c.certified}) in {t1}; "
          f"full closure without known laws: {c2.n_laws} laws ({c2.status}: no phi, no "
          f"n_known), ranks {c2.ranks_by_depth} in {t2}")
    dim, d = (16, 4) if args.quick else (24, 5)
    att = A.attention(dim, d, 2)
    tha = att.sample_params(0)
    with Clock() as t3:
        ca = number_of_laws(att.phi, tha)
    print(f"2-head attention dim={dim} d_head={d} D={att.n_params}: {ca.n_laws} laws "
          f"(theory per head d(d+1): {att.expected_laws}), ranks {ca.ranks_by_depth}, "
          f"full closure in {t3}")

    # ---- largest D within the budget (full closure for attention, certified for MLP)
    if args.quick:
        return
    _scans(args)


def _scans(args) -> None:
    print(f"\n== largest D counted within {args.budget:.0f} s ==")
    w = 20
    best = None
    while args.scan in ("both", "mlp"):
        dims = [w, int(1.5 * w), int(1.5 * w), 10]
        mlp = A.relu_deep(dims, bias=True, path_phi=False)
        th = mlp.sample_params(0)
        X = mlp.sample_inputs(max(3 * mlp.n_params // 10, 64), 1)
        with Clock() as ck:
            c = number_of_laws_model(mlp.g, th, X, n_known=mlp.n_known)
        t = ck.wall
        print(f"  MLP {dims} D={mlp.n_params}: {c.n_laws} laws certified={c.certified} {ck}")
        if t > args.budget or not c.certified:
            break
        best = (mlp.n_params, t)
        w = int(w * 1.4)
    if args.scan in ("both", "mlp"):
        print(f"  largest MLP D certified within budget: {best}")
    dim = 16
    best = None
    while args.scan in ("both", "attention"):
        att = A.attention(dim, 4, 2)
        tha = att.sample_params(0)
        with Clock() as ck:
            ca = number_of_laws(att.phi, tha)
        t = ck.wall
        print(f"  attention dim={dim} D={att.n_params}: {ca.n_laws} laws "
              f"(expected {att.expected_laws}) {ck}")
        if t > args.budget or ca.n_laws != att.expected_laws:
            break
        best = (att.n_params, t)
        dim = int(dim * 1.4)
    if args.scan in ("both", "attention"):
        print(f"  largest attention D counted (full closure) within budget: {best}")


if __name__ == "__main__":
    main()
