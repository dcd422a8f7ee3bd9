"""measureflow.da.Transport against POT's ot.da on the same data, MM properties, array kinds,
scikit-learn's estimator checks, errors."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from measureflow import ConvergenceWarning, InputError, ot
from measureflow.da import NotFittedError, Transport

pot_da = pytest.importorskip("ot.da")

ATOL = 1e-8   # the requirement: maps equal to 1e-8 in float64
TIGHT = 1e-13  # inner Sinkhorn tolerance of both libraries (so their plans agree to ~1e-12)


def _data(n=30, m=24, seed=0):
    """Three labelled source blobs; a shifted, differently mixed target; out-of-sample points."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    ys = rng.integers(0, 3, n)
    Xs = rng.normal(size=(n, 2)) * 0.5 + centres[ys]
    Xt = rng.normal(size=(m, 2)) * 0.5 + centres[rng.integers(0, 3, m)] + [1.5, 1.0]
    Zs, Zt = rng.normal(size=(9, 2)) * 2, rng.normal(size=(9, 2)) * 2 + 1
    return Xs, Xt, ys, Zs, Zt


def _same_maps(pot_est, ours, Xs, Xt, Zs, Zt, *, out_of_sample=True):
    np.testing.assert_allclose(ours.transform(Xs), pot_est.transform(Xs=Xs), rtol=0, atol=ATOL)
    np.testing.assert_allclose(ours.inverse_transform(Xt), pot_est.inverse_transform(Xt=Xt),
                               rtol=0, atol=ATOL)
    if out_of_sample:
        np.testing.assert_allclose(ours.transform(Zs), pot_est.transform(Xs=Zs), rtol=0,
                                   atol=ATOL)
        np.testing.assert_allclose(ours.inverse_transform(Zt),
                                   pot_est.inverse_transform(Xt=Zt), rtol=0, atol=ATOL)


# ----------------------------------------------------------------------------------- vs POT
def test_exact_equals_pot_emd_transport():
    Xs, Xt, _, Zs, Zt = _data()
    theirs = pot_da.EMDTransport().fit(Xs=Xs, Xt=Xt)
    ours = Transport("exact").fit(Xs, Xt)
    np.testing.assert_allclose(ours.plan_, theirs.coupling_, atol=1e-15)
    # out of sample: POT's rule T(xs_k) + z - xs_k with the nearest training point xs_k
    _same_maps(theirs, ours, Xs, Xt, Zs, Zt)


@pytest.mark.parametrize("reg", [0.5, 2.0])
def test_sinkhorn_equals_pot_sinkhorn_transport(reg):
    """POT's reg_e multiplies sum P log P; ours eps multiplies KL(P | a x b): on the transport
    polytope they differ by the constant eps (H(a) + H(b)), so eps = reg_e gives the same plan,
    and POT's out-of-sample map "continuous" is the entropic map."""
    Xs, Xt, _, Zs, Zt = _data()
    theirs = pot_da.SinkhornTransport(reg_e=reg, tol=TIGHT, max_iter=100_000).fit(Xs=Xs, Xt=Xt)
    ours = Transport("sinkhorn", eps=reg, tol=TIGHT).fit(Xs, Xt)
    np.testing.assert_allclose(ours.plan_, theirs.coupling_, atol=1e-12)
    _same_maps(theirs, ours, Xs, Xt, Zs, Zt)


def test_class_regularised_equals_pot_sinkhorn_lpl1_after_the_same_number_of_solves():
    """POT runs a fixed number (max_iter = 10) of MM solves; with class_max_iter = 10 ours
    computes the same iterate (and says it has not met class_tol)."""
    Xs, Xt, ys, Zs, Zt = _data()
    theirs = pot_da.SinkhornLpl1Transport(reg_e=1.0, reg_cl=0.1, tol=TIGHT, max_iter=10,
                                          max_inner_iter=100_000).fit(Xs=Xs, ys=ys, Xt=Xt)
    with pytest.warns(ConvergenceWarning, match="class_reg"):
        ours = Transport("sinkhorn", eps=1.0, class_reg=0.1, tol=TIGHT,
                         class_max_iter=10).fit(Xs, Xt, ys)
    assert ours.n_iter_ == 10 and not ours.converged_
    np.testing.assert_allclose(ours.plan_, theirs.coupling_, atol=1e-12)
    _same_maps(theirs, ours, Xs, Xt, Zs, Zt)


def test_class_regularised_converged_equals_pot_run_long():
    Xs, Xt, ys, Zs, Zt = _data()
    theirs = pot_da.SinkhornLpl1Transport(reg_e=1.0, reg_cl=0.1, tol=TIGHT, max_iter=60,
                                          max_inner_iter=100_000).fit(Xs=Xs, ys=ys, Xt=Xt)
    ours = Transport("sinkhorn", eps=1.0, class_reg=0.1, tol=TIGHT, class_tol=1e-12,
                     class_max_iter=60).fit(Xs, Xt, ys)
    assert ours.converged_ and ours.n_iter_ < 60
    _same_maps(theirs, ours, Xs, Xt, Zs, Zt)


def test_unbalanced_equals_pot_unbalanced_sinkhorn_transport():
    Xs, Xt, _, _, _ = _data()
    theirs = pot_da.UnbalancedSinkhornTransport(reg_e=0.5, reg_m=1.0, tol=TIGHT,
                                                max_iter=100_000).fit(Xs=Xs, Xt=Xt)
    ours = Transport("unbalanced", eps=0.5, rho=1.0, tol=TIGHT).fit(Xs, Xt)
    np.testing.assert_allclose(ours.plan_, theirs.coupling_, atol=1e-12)
    # on the training points both are the barycentric projection (POT maps new points by
    # nearest neighbours here, ours by the entropic map: only the training points compare)
    _same_maps(theirs, ours, Xs, Xt, None, None, out_of_sample=False)


# ----------------------------------------------------------------------------------- properties
def _class_objective(P, C, a, b, eps, eta, ys):
    s = np.stack([P[ys == c].sum(0) for c in np.unique(ys)])
    kl = (P * np.log(P / np.outer(a, b))).sum() - P.sum() + 1.0
    return (C * P).sum() + eps * kl + eta * np.sqrt(s + 1e-3).sum()


def test_majorization_minimization_decreases_the_objective_and_separates_classes():
    Xs, Xt, ys, _, _ = _data(seed=1)
    n, m = len(Xs), len(Xt)
    C = ((Xs[:, None] - Xt[None]) ** 2).sum(-1)
    a, b = np.full(n, 1 / n), np.full(m, 1 / m)
    values = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for k in range(1, 5):   # the iterates of one MM run are prefixes of the longer runs
            P = Transport(eps=1.0, class_reg=1.0, tol=1e-11, class_max_iter=k).fit(
                Xs, Xt, ys).plan_
            values.append(_class_objective(P, C, a, b, 1.0, 1.0, ys))
    assert all(v1 <= v0 + 1e-12 for v0, v1 in zip(values, values[1:])), values
    assert values[-1] < values[0]

    def purity(P):   # mass each target point receives from its dominant source class
        s = np.stack([P[ys == c].sum(0) for c in np.unique(ys)])
        return float((s.max(0) / s.sum(0)).mean())

    plain = Transport(eps=1.0).fit(Xs, Xt).plan_
    regularised = Transport(eps=1.0, class_reg=1.0).fit(Xs, Xt, ys).plan_
    assert purity(regularised) > purity(plain) + 0.05


def test_translation_of_the_target_translates_the_maps():
    Xs, Xt, _, Zs, _ = _data()
    t = np.array([2.0, -1.0])
    for method, kw in (("exact", {}), ("sinkhorn", {"eps": 0.5, "tol": TIGHT})):
        T0 = Transport(method, **kw).fit(Xs, Xt)
        T1 = Transport(method, **kw).fit(Xs, Xt + t)
        np.testing.assert_allclose(T1.transform(Xs), T0.transform(Xs) + t, atol=1e-9)
        np.testing.assert_allclose(T1.transform(Zs), T0.transform(Zs) + t, atol=1e-9)


def test_streamed_fit_equals_the_dense_fit(monkeypatch):
    """Entropic fits above ``DENSE_MAX`` cost entries run on ot.sinkhorn_points (no n x m
    cost stored): same plan, same maps."""
    from measureflow.da import transport

    Xs, Xt, _, Zs, Zt = _data()
    dense = Transport(eps=0.5, rho=2.0, tol=TIGHT).fit(Xs, Xt)
    monkeypatch.setattr(transport, "DENSE_MAX", 0)
    streamed = Transport(eps=0.5, rho=2.0, tol=TIGHT).fit(Xs, Xt)
    assert streamed.result_.plan is None and dense.result_.plan is not None
    np.testing.assert_allclose(streamed.plan_, dense.plan_, atol=1e-14)
    for X in (Xs, Zs):
        np.testing.assert_allclose(streamed.transform(X), dense.transform(X), atol=1e-12)
    for X in (Xt, Zt):
        np.testing.assert_allclose(streamed.inverse_transform(X), dense.inverse_transform(X),
                                   atol=1e-12)


def test_euclidean_metric_and_exact_class_reg():
    Xs, Xt, ys, Zs, _ = _data()
    ours = Transport(eps=0.5, metric="euclidean", tol=TIGHT).fit(Xs, Xt)
    C = np.sqrt(((Xs[:, None] - Xt[None]) ** 2).sum(-1))
    res = ot.solve(None, None, C, eps=0.5, tol=TIGHT)
    np.testing.assert_allclose(ours.plan_, res.plan, atol=1e-12)
    T = ot.EntropicMap.from_result(res, Xs, Xt, cost="euclidean")
    np.testing.assert_allclose(ours.transform(Zs), T(Zs), atol=1e-10)
    # class_reg on the exact LP: each MM step is an LP; the objective still decreases
    ex = Transport("exact", class_reg=1.0).fit(Xs, Xt, ys)
    assert ex.converged_ and ex.n_iter_ >= 2


# ----------------------------------------------------------------------------------- arrays
def test_numpy_and_torch_in_and_out():
    Xs, Xt, _, Zs, _ = _data()
    ref = Transport(eps=0.5).fit(Xs, Xt)
    assert isinstance(ref.plan_, np.ndarray) and isinstance(ref.transform(Zs), np.ndarray)
    assert isinstance(ref.result_.potential_f, np.ndarray)
    for dt in (torch.float64, torch.float32):
        est = Transport(eps=0.5).fit(torch.as_tensor(Xs, dtype=dt), torch.as_tensor(Xt, dtype=dt))
        out = est.transform(torch.as_tensor(Zs, dtype=dt))
        assert isinstance(est.plan_, torch.Tensor) and out.dtype == dt
        tol = 1e-10 if dt == torch.float64 else 1e-4
        np.testing.assert_allclose(out.double().numpy(), ref.transform(Zs), atol=tol)
        assert isinstance(est.transform(Zs), np.ndarray)   # NumPy points -> NumPy images
    z = torch.as_tensor(Zs, dtype=torch.float64).requires_grad_()
    est = Transport(eps=0.5).fit(Xs, Xt)
    est.transform(z).sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_fit_transform_and_pickle():
    Xs, Xt, ys, _, _ = _data()
    est = Transport(eps=0.5)
    np.testing.assert_array_equal(est.fit_transform(Xs, Xt), est.transform(Xs))
    est2 = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(est2.transform(Xs + 0.1), est.transform(Xs + 0.1))
    ex = pickle.loads(pickle.dumps(Transport().fit(Xs, Xt)))
    np.testing.assert_allclose(ex.inverse_transform(Xt + 0.1), Transport().fit(
        Xs, Xt).inverse_transform(Xt + 0.1))


def test_get_params_set_params():
    est = Transport(eps=0.1, metric="euclidean")
    p = est.get_params()
    assert p["eps"] == 0.1 and p["metric"] == "euclidean" and p["method"] is None
    assert est.set_params(eps=0.2, rho=1.0) is est and est.rho == 1.0


def test_works_without_scikit_learn():
    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "import numpy as np\n"
        "from measureflow.da import Transport\n"
        "rng = np.random.default_rng(0)\n"
        "Xs, Xt = rng.normal(size=(8, 2)), rng.normal(size=(6, 2))\n"
        "t = Transport(eps=0.5)\n"
        "assert t.get_params()['eps'] == 0.5 and t.set_params(eps=1.0).eps == 1.0\n"
        "assert t.fit_transform(Xs, Xt).shape == (8, 2)\n"
        "assert 'Transport(' in repr(t)\n"
        "try:\n"
        "    t.set_params(reg=1.0)\n"
        "except ValueError as e:\n"
        "    assert str(e).startswith('reg:')\n"
        "else:\n"
        "    raise AssertionError\n"
        "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


# ----------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kw, arg", [
    ({"method": "sinkhorn"}, "eps"),
    ({"method": "exact", "eps": 0.1}, "eps"),
    ({"method": "exact", "rho": 1.0}, "rho"),
    ({"method": "sinkhorn", "eps": 0.1, "rho": 1.0}, "rho"),
    ({"method": "unbalanced", "eps": 0.1}, "rho"),
    ({"method": "emd"}, "method"),
    ({"eps": -1.0}, "eps"),
    ({"class_reg": -1.0}, "class_reg"),
    ({"metric": "cityblock"}, "metric"),
    ({"class_max_iter": 0}, "class_max_iter"),
])
def test_bad_parameters_raise_at_fit(kw, arg):
    Xs, Xt, _, _, _ = _data()
    est = Transport(**kw)   # scikit-learn convention: __init__ stores, fit validates
    with pytest.raises(InputError, match=f"^{arg}:"):
        est.fit(Xs, Xt)


def test_bad_inputs():
    Xs, Xt, ys, _, _ = _data()
    with pytest.raises(InputError, match="^ys: class_reg needs"):
        Transport(class_reg=0.1).fit(Xs, Xt)
    with pytest.raises(InputError, match="^ys: expected 30 labels"):
        Transport(class_reg=0.1).fit(Xs, Xt, ys[:-1])
    with pytest.raises(InputError, match="^Xt: 3 features, Xs has 2"):
        Transport().fit(Xs, np.zeros((4, 3)))
    with pytest.raises(InputError, match="^Xs: contains NaN"):
        Transport().fit(np.full((3, 2), np.nan), Xt)
    with pytest.raises(NotFittedError, match="^Xs: this Transport is not fitted"):
        Transport().transform(Xs)
    est = Transport().fit(Xs, Xt)
    with pytest.raises(InputError, match="^Xs: X has 3 features, but Transport is expecting 2"):
        est.transform(np.zeros((2, 3)))
    with pytest.raises(InputError, match="^Xt: X has 1 features"):
        est.inverse_transform(np.zeros((4, 1)))


# ----------------------------------------------------------------------------------- sklearn
sklearn_checks = pytest.importorskip("sklearn.utils.estimator_checks")


class OntoItself(Transport):
    """The scikit-learn check protocol is fit(X, y) with y a label vector; Transport.fit takes
    two samples. This adapter fits X onto itself (y ignored) so that every other check
    (pickling, dtypes, n_features_in_, idempotence, subset and order invariance, error
    messages, ...) runs on Transport's own code."""

    def __init__(self, method=None, eps=None, rho=None, class_reg=None, *, metric="sqeuclidean",
                 max_iter=None, tol=None, class_max_iter=100, class_tol=1e-7):
        super().__init__(method, eps, rho, class_reg, metric=metric, max_iter=max_iter, tol=tol,
                         class_max_iter=class_max_iter, class_tol=class_tol)

    def fit(self, X, y=None):
        return super().fit(X, X)

    def fit_transform(self, X, y=None):
        return self.fit(X).transform(X)


# justified deviations from scikit-learn's conventions (project conventions win)
CONVENTIONS = {
    "check_fit1d": "a 1-D array is a sample of points on the line (measureflow's convention "
                   "for point clouds), not an error",
    "check_dtype_object": "non-numeric input raises measureflow.InputError (a ValueError, the "
                          "project's one error type for bad input), not TypeError",
}
# Transport itself: every check that fits calls fit(X, y) with y a 1-D label vector, which
# Transport.fit reads as the target sample Xt (points on the line): it rightly refuses it.
TWO_SAMPLE_FIT = "fit(Xs, Xt, ys) takes a source and a target sample, the check calls fit(X, y)"


TWO_SAMPLE_CHECKS = [
    "check_dict_unchanged", "check_dont_overwrite_parameters", "check_estimators_dtypes",
    "check_estimators_fit_returns_self", "check_estimators_nan_inf",
    "check_estimators_overwrite_params", "check_estimators_pickle",
    "check_f_contiguous_array_estimator", "check_fit2d_1sample", "check_fit2d_predict1d",
    "check_fit_check_is_fitted", "check_fit_idempotent", "check_fit_score_takes_y",
    "check_methods_sample_order_invariance", "check_methods_subset_invariance",
    "check_n_features_in", "check_n_features_in_after_fitting", "check_pipeline_consistency",
    "check_positive_only_tag_during_fit", "check_readonly_memmap_input",
    "check_transformer_data_not_an_array", "check_transformer_general",
    "check_transformer_n_iter", "check_transformer_preserve_dtypes"]


def _expected_failures(est):
    if isinstance(est, OntoItself):
        return CONVENTIONS
    return {**CONVENTIONS, **dict.fromkeys(TWO_SAMPLE_CHECKS, TWO_SAMPLE_FIT)}


@sklearn_checks.parametrize_with_checks(
    [Transport(), OntoItself(), OntoItself(eps=5.0)], expected_failed_checks=_expected_failures)
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
