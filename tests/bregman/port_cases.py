"""Reference problems for the port of bregman onto the transport engine (issue 17).

``python tests/bregman/port_cases.py`` wrote ``port_refs.npz`` with the implementation before the
port (private loops in bregman/projections.py and bregman/graph.py, commit 3da9bcc);
``test_engine_port.py`` re-runs every case and compares (1e-10 in float64).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

import measureflow.bregman as br


def _rng(seed):
    return np.random.default_rng(seed)


def _kl_arrays(r):
    out = {"x": np.asarray(r.x), "dual_value": np.asarray(float(r.dual_value)),
           "primal_value": np.asarray(float(r.primal_value)),
           "dual_values": np.asarray(r.dual_values, float),
           "residuals": np.asarray(r.residuals, float), "seminorms": np.asarray(r.seminorms, float),
           "errors": np.asarray(r.errors, float), "n_iter": np.asarray(r.n_iter),
           "converged": np.asarray(bool(r.converged))}
    for k, u in enumerate(r.duals):
        out[f"dual{k}"] = np.asarray(u)
    return out


def kl_cases():
    """name -> zero-argument callable returning a dict of arrays."""
    cases = {}
    rng = _rng(0)
    n, m = 7, 5
    x, y = rng.random((n, 2)), rng.random((m, 2))
    C = ((x[:, None] - y[None]) ** 2).sum(-1)
    a = rng.random(n) + 0.1
    a /= a.sum()
    b = rng.random(m) + 0.1
    b /= b.sum()

    cases["balanced"] = lambda: _kl_arrays(br.kl_projections(
        C, [br.RowMarginal(a), br.ColMarginal(b)], 0.05, z=np.outer(a, b)))
    cases["balanced_check3_capped"] = lambda: _kl_arrays(br.kl_projections(
        C, [br.ColMarginal(b), br.RowMarginal(a)], 0.01, max_iter=20, check_every=3,
        tol=1e-12))
    cases["unbalanced"] = lambda: _kl_arrays(br.kl_projections(
        C, [br.KLRowMarginal(a, 0.3), br.KLColMarginal(1.5 * b, 0.7)], 0.05, z=np.outer(a, b)))
    gam = 0.05 + 0.02 * np.arange(n)[:, None] * np.ones((1, m))
    cases["row_blocks_gamma_tensor_capped"] = lambda: _kl_arrays(br.kl_projections(
        C, [br.KLRowMarginal(2 * a, 0.5), br.RowMarginal(a)], gam, max_iter=15))
    cases["hard_row_kl_col"] = lambda: _kl_arrays(br.kl_projections(
        C, [br.KLColMarginal(b, 0.5), br.RowMarginal(a)], 0.04, tol=1e-11))
    K = 3
    t = np.linspace(0, 1, 6)
    M = (t[:, None] - t[None]) ** 2
    A = _rng(1).random((K, 6)) + 0.05
    A /= A.sum(1, keepdims=True)
    lam = np.array([0.2, 0.3, 0.5])
    cases["barycenter"] = lambda: _kl_arrays(br.kl_projections(
        lam[:, None, None] * M, [br.ColMarginal(A), br.BarycenterCoupling(axis=-1)],
        (lam * 0.02)[:, None, None] * np.ones((K, 6, 6)), tol=1e-10))
    cases["barycenter_rows"] = lambda: _kl_arrays(br.kl_projections(
        np.stack([M, M, M]), [br.RowMarginal(A), br.BarycenterCoupling(axis=-2)], 0.03,
        tol=1e-10))
    q0 = np.full(6, 1 / 6)
    cases["jko"] = lambda: _kl_arrays(br.kl_projections(
        M / 2, [br.RowMarginal(q0), br.JKOStep(3 * t, 0.1, 0.2)], 0.01, tol=1e-11))
    e = np.array([[0, 1], [1, 2], [2, 3], [1, 3], [3, 4], [0, 4]])
    w = np.array([1.0, 0.5, 2.0, 1.5, 0.7, 3.0])
    b1 = np.array([0.5, 0.2, 0.0, 0.3, 0.0])
    b2 = np.array([0.0, 0.0, 0.6, 0.0, 0.4])

    def lifted():
        Cg, blocks, _ = br.graph_lifting_problem((e, w), b1, b2)
        return _kl_arrays(br.kl_projections(Cg, blocks, 0.2, max_iter=3000, tol=1e-10))
    cases["graph_lifting"] = lifted

    def autograd():
        Ct = torch.tensor(C, requires_grad=True)
        at = torch.tensor(a, requires_grad=True)
        r = br.kl_projections(Ct, [br.RowMarginal(at), br.ColMarginal(torch.tensor(b))], 0.1,
                              tol=1e-10)
        ga, gC = torch.autograd.grad(r.dual_value, [at, Ct])
        out = _kl_arrays(r.__class__(**{**r.__dict__, "x": r.x.detach(),
                                         "duals": tuple(u.detach() for u in r.duals),
                                         "dual_value": r.dual_value.detach(),
                                         "primal_value": r.primal_value.detach()}))
        out["grad_a"], out["grad_C"] = ga.numpy(), gC.numpy()
        return out
    cases["autograd_torch"] = autograd
    return cases


def _gw1_arrays(r):
    return {"value": np.asarray(float(r.value)), "flow": np.asarray(r.flow),
            "raw_flow": np.asarray(r.raw_flow), "potential": np.asarray(r.potential),
            "residual": np.asarray(r.residual), "lower": np.asarray(r.lower),
            "upper": np.asarray(r.upper), "lip": np.asarray(r.lipschitz_violation),
            "gamma": np.asarray(r.gamma), "n_iter": np.asarray(r.n_iter),
            "errors": np.asarray(r.errors, float), "converged": np.asarray(bool(r.converged))}


def graph_cases():
    cases = {}
    n = 12
    e = np.stack([np.arange(n - 1), np.arange(1, n)], 1)
    b1 = np.zeros(n)
    b1[:2] = 0.5
    b2 = np.zeros(n)
    b2[-3:] = 1 / 3
    cases["path_eps"] = lambda: _gw1_arrays(br.graph_w1(
        (e, np.ones(n - 1)), b1, b2, method="flow_sinkhorn", eps=0.05))
    rng = _rng(3)
    side = 5
    idx = np.arange(side * side).reshape(side, side)
    eg = np.concatenate([np.stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()], 1),
                         np.stack([idx[:-1].ravel(), idx[1:].ravel()], 1)])
    wg = rng.uniform(0.5, 2.0, len(eg))
    c1 = rng.random(side * side)
    c2 = rng.random(side * side)
    c2 *= c1.sum() / c2.sum()
    cases["grid_omega"] = lambda: _gw1_arrays(br.graph_w1(
        (eg, wg), c1, c2, method="flow_sinkhorn", gamma=0.3, omega=0.8, check_every=7,
        tol=1e-9))
    cases["grid_z_noround"] = lambda: _gw1_arrays(br.graph_w1(
        (eg, wg), c1, c2, method="flow_sinkhorn", gamma=0.5, z=0.1, round=False,
        check_every=1, max_iter=400))
    cases["grid_capped"] = lambda: _gw1_arrays(br.graph_w1(
        (eg, wg), c1, c2, method="flow_sinkhorn", gamma=0.1, max_iter=55, check_every=10))

    def f32():
        r = br.graph_w1((torch.as_tensor(eg), torch.tensor(wg, dtype=torch.float32)),
                        torch.tensor(c1, dtype=torch.float32),
                        torch.tensor(c2, dtype=torch.float32), method="flow_sinkhorn",
                        gamma=0.3)
        return {k: np.asarray(v.detach().numpy() if isinstance(v, torch.Tensor) else v,
                              dtype=np.float64)
                for k, v in _gw1_arrays(r.__class__(**{
                    **r.__dict__, "value": r.value.detach(), "flow": r.flow.numpy(),
                    "raw_flow": r.raw_flow.numpy(), "potential": r.potential.numpy()})).items()}
    cases["grid_float32"] = f32

    def iterations():
        from measureflow.bregman.graph import flow_sinkhorn_iterations
        et = torch.as_tensor(eg)
        head = torch.cat([et[:, 1], et[:, 0]])
        tail = torch.cat([et[:, 0], et[:, 1]])
        wa = torch.as_tensor(np.concatenate([wg, wg]))
        seen = []
        v, it, errs, conv = flow_sinkhorn_iterations(
            head, tail, wa, torch.as_tensor(c1 - c2), 0.4, z=0.05, max_iter=300, tol=1e-300,
            check_every=25, omega=0.7, callback=lambda k, vv: seen.append(float(vv.sum()
                                                                                 ** 2)))
        return {"v": v.numpy(), "n_iter": np.asarray(it), "errors": np.asarray(errs),
                "converged": np.asarray(conv), "cb_iters": np.asarray(len(seen))}
    cases["iterations_fn"] = iterations
    return cases


def all_cases():
    out = {}
    for k, f in kl_cases().items():
        out["kl." + k] = f
    for k, f in graph_cases().items():
        out["graph." + k] = f
    return out


def run_all():
    res = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, f in all_cases().items():
            for key, val in f().items():
                res[f"{name}/{key}"] = np.asarray(val)
    return res


if __name__ == "__main__":
    import pathlib
    torch.set_default_dtype(torch.float64)
    out = pathlib.Path(__file__).with_name("port_refs.npz")
    np.savez_compressed(out, **run_all())
    print("wrote", out)
