"""bregman on the transport engine (issue 17): every former result unchanged.

``port_refs.npz`` holds the outputs of ``kl_projections`` and flow-Sinkhorn computed by the
private loops that bregman had before the port (see ``port_cases.py``: balanced, unbalanced,
per-row gamma, barycenters on both axes, a JKO step, the lifted graph problem, autograd through
the iterations, flow-Sinkhorn on a path and a grid with omega, z, caps, float32, and the
low-level ``flow_sinkhorn_iterations``). The engine port must reproduce them: 1e-10 relative in
float64 (the arithmetic is the same up to the order of a few sums), the same iteration counts
and convergence flags; the float32 case to float32 accuracy (1e-4 relative: ~|log x| eps32
after hundreds of sweeps).
"""

from __future__ import annotations

import importlib.util
import pathlib
import warnings

import numpy as np
import pytest

HERE = pathlib.Path(__file__).parent
_spec = importlib.util.spec_from_file_location("port_cases", HERE / "port_cases.py")
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)

REFS = np.load(HERE / "port_refs.npz")
CASES = cases.all_cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_former_results_unchanged(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = CASES[name]()
    keys = sorted(k.split("/", 1)[1] for k in REFS.files if k.startswith(name + "/"))
    assert keys == sorted(got)
    rtol = 1e-4 if "float32" in name else 1e-10
    for key in keys:
        ref = REFS[f"{name}/{key}"]
        new = np.asarray(got[key], dtype=ref.dtype)
        assert new.shape == ref.shape, key
        if key in ("n_iter", "converged", "cb_iters"):
            assert np.array_equal(new, ref), (key, new, ref)
            continue
        # absolute floor: entries that are rounding noise around 0 (flows of ~1e-17) are
        # compared relative to the array's scale; residuals (differences of marginals of size
        # ~ the mass, >= 1 in every case) carry an absolute rounding error ~ eps x mass
        scale = float(np.max(np.abs(ref))) if ref.size else 0.0
        if key in ("residual", "residuals", "errors", "lip"):
            scale = max(scale, 1.0)
        np.testing.assert_allclose(new, ref, rtol=rtol, atol=rtol * max(scale, 1e-300),
                                   err_msg=f"{name}/{key}")


def test_zero_target_entry_gives_finite_cost_gradient():
    """A zero entry of a marginal switches its row off (log x = -inf there). The engine's
    log-marginal gives such a dead row a zero gradient (torch.logsumexp backpropagated NaN into
    every gradient), so d F / d C is the plan (envelope theorem, 0 on the dead row). The
    gradient with respect to the zero entry itself stays NaN: its one-sided derivative, the
    dual u_i, is -inf."""
    import torch

    import measureflow.bregman as br

    C = torch.tensor(np.random.default_rng(0).random((4, 3)), requires_grad=True)
    a = torch.tensor([0.5, 0.0, 0.25, 0.25], requires_grad=True)
    b = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    r = br.kl_projections(C, [br.RowMarginal(a), br.ColMarginal(b)], 0.1, tol=1e-10,
                          max_iter=20_000)
    assert r.converged
    gC, ga = torch.autograd.grad(r.dual_value, [C, a])
    np.testing.assert_allclose(gC.numpy(), r.x.detach().numpy(), atol=1e-8)
    assert float(gC[1].abs().max()) == 0.0
    assert bool(torch.isfinite(ga[[0, 2, 3]]).all()) and bool(torch.isnan(ga[1]))
