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
