import dataclasses

import numpy as np
import pytest
import torch

from measureflow import InputError
from measureflow.core import ArrayContext, as_tensor, to_numpy
from measureflow.core.results import SolverResult


def test_numpy_in_numpy_out_float64():
    ctx = ArrayContext(np.arange(3, dtype=np.float32))
    t = ctx.tensor(np.arange(3, dtype=np.float32), "x")
    assert t.dtype == torch.float64 and ctx.is_numpy
    out = ctx.wrap(t * 2)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    np.testing.assert_allclose(out, [0, 2, 4])


def test_list_input_and_scalar_output():
    ctx = ArrayContext([1.0, 2.0])
    t = ctx.tensor([1.0, 2.0], "x")
    out = ctx.wrap(t.sum())
    assert isinstance(out, float) and out == 3.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tensor_in_tensor_out_same_dtype_and_grad(dtype):
    x = torch.randn(4, dtype=dtype, requires_grad=True)
    ctx = ArrayContext(np.ones(4), x)  # a tensor anywhere makes it a torch call
    y = ctx.tensor(np.ones(4), "y")
    assert y.dtype == dtype and y.device == x.device
    out = ctx.wrap((ctx.tensor(x, "x") * y).sum())
    assert isinstance(out, torch.Tensor) and out.dtype == dtype
    out.backward()
    torch.testing.assert_close(x.grad, torch.ones(4, dtype=dtype))


def test_integer_tensor_promoted_to_float64():
    ctx = ArrayContext(torch.arange(3))
    assert ctx.dtype == torch.float64 and ctx.is_torch


def test_wrap_recurses_into_dataclasses_tuples_dicts():
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class R(SolverResult):
        value: object = None
        extra: object = None

    ctx = ArrayContext(np.ones(2))
    r = ctx.wrap(R(value=torch.ones(2), extra={"a": (torch.zeros(1), 3)}))
    assert isinstance(r.value, np.ndarray)
    assert isinstance(r.extra["a"][0], np.ndarray) and r.extra["a"][1] == 3
    assert r.converged is True and r.n_iter == 0 and r.errors == []


@pytest.mark.parametrize("bad", [[1.0, np.nan], [np.inf], torch.tensor([0.0, float("nan")])])
def test_nan_inf_rejected_with_name(bad):
    with pytest.raises(InputError, match="^weights: contains NaN or Inf"):
        as_tensor(bad, "weights")


@pytest.mark.parametrize("bad", [None, "abc", [[1, 2], [3]], [1 + 2j]])
def test_non_numeric_rejected(bad):
    with pytest.raises(InputError, match="^x:"):
        as_tensor(bad, "x")


def test_input_error_is_value_error():
    assert issubclass(InputError, ValueError)


def test_to_numpy_passthrough():
    assert to_numpy("a") == "a"
    assert to_numpy(torch.tensor(2.5)) == 2.5


def test_scalars_and_0d_keep_their_shape():
    assert as_tensor(2.5, "t").shape == ()
    assert as_tensor(np.float64(2.5), "t").shape == ()
    assert as_tensor(np.array(2.5), "t").shape == ()
    assert as_tensor(np.ones((3, 2))[:, 0], "v").shape == (3,)  # non-contiguous view


# --- the boundary's kinds of tensors (issue 16) -----------------------------------------------

@pytest.mark.parametrize("bad, words", [
    (torch.zeros(3, device="meta"), "'meta' device"),
    (torch.zeros(3, dtype=torch.complex128), "complex"),
    (torch.zeros(3, dtype=torch.complex64), "complex"),
    (torch.zeros(3, dtype=torch.float16), "float16"),
    (torch.zeros(3, dtype=torch.bfloat16), "bfloat16"),
    (torch.eye(3).to_sparse(), "sparse"),
    (np.zeros(3, dtype=np.complex128), "complex"),
    (np.array([None, 1.0], dtype=object), "non-numeric"),
    ("1.0", "string"),
])
def test_unsupported_tensor_kinds_rejected_with_name(bad, words):
    with pytest.raises(InputError, match=f"^x: .*{words}"):
        as_tensor(bad, "x")


def test_complex_never_silently_made_real():
    z = torch.tensor([1.0 + 2.0j])
    with pytest.raises(InputError, match="^w: complex"):
        ArrayContext(z).tensor(z, "w")


@pytest.mark.parametrize("bad", [torch.zeros(2, device="meta"), torch.zeros(2, dtype=torch.half),
                                 torch.zeros(2, dtype=torch.complex64)])
def test_unusable_tensor_never_fixes_the_call_and_is_named_itself(bad):
    # x (NumPy) converted first must not be blamed for y's device/dtype
    ctx = ArrayContext(np.ones(2), bad)
    assert ctx.is_torch and ctx.dtype == torch.float64 and ctx.device.type == "cpu"
    assert ctx.tensor(np.ones(2), "x").dtype == torch.float64
    with pytest.raises(InputError, match="^y: "):
        ctx.tensor(bad, "y")
    # a usable tensor after it fixes dtype/device as usual
    ctx = ArrayContext(bad, torch.ones(2, dtype=torch.float32))
    assert ctx.dtype == torch.float32


def test_explicit_unsupported_dtype_or_meta_device_named():
    with pytest.raises(InputError, match="^y: cannot compute on the 'meta' device"):
        as_tensor(np.ones(2), "y", device="meta")
    with pytest.raises(InputError, match="^y: compute dtype torch.float16"):
        as_tensor(np.ones(2), "y", dtype=torch.float16)


def test_validators_reject_meta_instead_of_raw_item_error():
    from measureflow.core import check_finite, check_positive, check_weights
    m = torch.ones(3, device="meta")
    for call in (lambda: check_finite(m, "a"), lambda: check_weights(m, 3, "a"),
                 lambda: check_positive(torch.tensor(1.0, device="meta"), "a")):
        with pytest.raises(InputError, match="^a: tensors on the 'meta' device hold no values"):
            call()


@pytest.mark.parametrize("x", [torch.tensor([1, 0, 2]), torch.tensor([True, False, True]),
                               np.array([1, 0, 2], dtype=np.int32), [True, False, True]])
def test_integer_and_bool_read_as_numbers(x):
    t = as_tensor(x, "x")
    assert t.dtype == torch.float64
    assert t.tolist() == [float(v) for v in np.asarray(x).tolist()]


def test_non_contiguous_made_contiguous_with_grad_kept():
    base = torch.arange(6.0, requires_grad=True)
    x = base.reshape(2, 3).t()
    t = as_tensor(x, "x")
    assert t.is_contiguous() and torch.equal(t, x)
    t.sum().backward()
    assert torch.equal(base.grad, torch.ones(6))
    e = as_tensor(torch.ones(1).expand(4), "e")
    assert e.is_contiguous() and e.stride() == (1,)


def test_huge_finite_values_accepted_and_0d_kept():
    assert as_tensor(1e308, "x").item() == 1e308
    assert as_tensor(torch.tensor(3.0, dtype=torch.float32), "x").shape == ()
