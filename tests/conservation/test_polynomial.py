import pytest
import torch

from measureflow import InputError
from measureflow.conservation import architectures as A
from measureflow.conservation import gradient_fields, lie_rank, polynomial_laws
from measureflow.conservation.polynomial import monomials


def test_linear_degree2_recovers_known_count_and_laws_are_conserved():
    a = A.linear_two_layer(2, 2, 2)
    res = polynomial_laws(gradient_fields(a.phi), 2, n_params=a.n_params)
    assert res.n_laws == 3
    th = a.sample_params(7)
    J = torch.func.jacrev(lambda t: a.phi(t).reshape(-1))(th)
    for law in res.laws:
        g = torch.func.grad(law)(th)
        assert (J @ g).abs().max() < 1e-9 * (1 + g.norm() * J.norm())
    # the found laws span the known ones: gradients of known laws lie in their span
    G = torch.stack([torch.func.grad(f)(th) for f in res.laws])
    H = torch.func.jacrev(a.laws)(th)
    resid = H - (H @ torch.linalg.pinv(G)) @ G
    assert resid.abs().max() < 1e-8


def test_relu_degree2_count():
    a = A.relu_two_layer(2, 2, 3)
    assert polynomial_laws(gradient_fields(a.phi), 2, n_params=a.n_params).n_laws == 3


def test_random_cubic_field_has_no_quartic_law_but_four_laws():
    g = torch.Generator().manual_seed(0)
    D = 5
    mons = monomials(D, 3)
    C = torch.randint(-3, 4, (D, len(mons)), generator=g).to(torch.float64)
    idx = torch.tensor(mons)

    def field(t):
        return C @ t[idx].prod(1)

    assert polynomial_laws([field], 4, n_params=D).n_kernel == 0
    assert D - lie_rank([field], torch.rand(D, generator=g, dtype=torch.float64)) == 4


def test_bad_input():
    a = A.linear_two_layer(2, 2, 2)
    with pytest.raises(InputError, match="n_params"):
        polynomial_laws(gradient_fields(a.phi), 2)
    with pytest.raises(InputError, match="degree"):
        polynomial_laws(gradient_fields(a.phi), 0, n_params=8)
    # a field of dimension 6 on a declared R^3: rejected, not silently reshaped to (2, 3)
    f = lambda t: torch.cat([t, t])
    with pytest.raises(InputError, match="^n_params"):
        polynomial_laws([f], 2, n_params=3)
