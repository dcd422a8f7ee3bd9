"""Reference cases of every integrator ported onto ``measureflow.ot.integrate``.

Each case calls a public flow with the names it had before the port (the old result fields are
kept as aliases) and returns a dict of float64 NumPy arrays. ``integrator_refs.npz`` holds the
outputs of the hand-written integrators of commit ab2b2fb (before the port), made by

    PYTHONPATH=<checkout of ab2b2fb>/src python tests/ot/integrator_cases.py tests/ot/integrator_refs.npz

``tests/ot/test_integrate.py`` compares the current code with them (1e-10 in float64).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import torch

D64 = torch.float64


def _np(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy().astype(np.float64)
    return np.asarray(x, dtype=np.float64)


def ot_particle_flow():
    from measureflow.ot import particle_flow

    rng = np.random.default_rng(0)
    x0 = rng.normal(size=(12, 2))
    y = rng.normal(size=(9, 2)) + 1.0
    w = rng.uniform(0.5, 1.5, size=12)
    w /= w.sum()
    out = {}
    r = particle_flow(x0, energy="interaction", n_steps=7, step=0.05, weights=w,
                      potential=lambda z: 0.5 * (z ** 2).sum(-1),
                      interaction=lambda dz: -torch.exp(-(dz ** 2).sum(-1)), save_every=3)
    out.update(interaction_final=r.positions, interaction_traj=r.trajectory,
               interaction_times=r.times, interaction_energies=r.energies)
    r = particle_flow(x0, energy="mmd", target=y, n_steps=5, step=0.2, kernel="energy")
    out.update(mmd_final=r.positions, mmd_traj=r.trajectory, mmd_energies=r.energies)
    r = particle_flow(torch.tensor(x0), energy="mmd", target=torch.tensor(y), n_steps=4,
                      step=0.3, bandwidth=0.7, temperature=0.01, seed=3)
    out.update(noisy_final=r.positions, noisy_traj=r.trajectory, noisy_energies=r.energies)
    r = particle_flow(x0[:, 0], energy=lambda z, wz: (wz * (z ** 4).sum(-1)).sum(), n_steps=6,
                      step=0.1)
    out.update(callable_traj=r.trajectory, callable_energies=r.energies)
    return out


def spectral_particle_flow():
    from measureflow.spectral.flows import particle_flow

    rng = np.random.default_rng(1)
    x0 = rng.normal(size=(10, 3))
    w = torch.tensor(rng.uniform(0.5, 1.5, size=10), dtype=D64)
    w = w / w.sum()
    c = torch.tensor([1.0, -1.0, 0.5], dtype=D64)
    A = torch.tensor(rng.normal(size=(3, 3)), dtype=D64)

    def energy(X):
        return 0.5 * (w * (((X - c) @ A) ** 2).sum(1)).sum() + 0.1 * (w * (X ** 4).sum(1)).sum()

    out = {}
    for p in (1, 2, math.inf):
        r = particle_flow(energy, x0, p=p, weights=w, step=0.05, n_steps=6, record_every=2)
        tag = "inf" if math.isinf(p) else str(p)
        out.update({f"p{tag}_traj": r.positions, f"p{tag}_times": r.times,
                    f"p{tag}_energies": r.energies, f"p{tag}_duals": r.dual_norms})
    r = particle_flow(energy, x0, p=math.inf, weights=w, step=0.5, n_steps=5,
                      max_displacement=0.2)
    out.update(cap_traj=r.positions, cap_energies=r.energies)
    return out


def spectral_sphere_flow():
    from measureflow.spectral.sphere import lift_check, lift_to_sphere, sphere_flow

    rng = np.random.default_rng(2)
    x0 = torch.tensor(rng.normal(size=(8, 3)), dtype=D64)
    w = torch.full((8,), 1 / 8, dtype=D64)
    B = torch.tensor(rng.normal(size=(3, 3)), dtype=D64)

    def energy(X, m):  # 2-homogeneous in each row
        return (m * ((X @ B) ** 2).sum(1)).sum() - 0.3 * (m * X[:, 0] ** 2).sum()

    om0, m0 = lift_to_sphere(x0, w)
    r = sphere_flow(energy, om0, m0, p=math.inf, step=0.02, n_steps=6)
    out = dict(omegas=r.omegas, masses=r.masses, energies=r.energies, times=r.times)
    chk = lift_check(energy, x0, w, p=2, step=0.02, n_steps=5)
    out.update(lift=np.array([chk["direction"], chk["mass"], chk["energy"]]))
    return out


def spectral_gaussian_kl_flow():
    from measureflow.spectral.flows import gaussian_kl_flow

    m0 = np.array([0.5, -0.2])
    S0 = np.array([[1.5, 0.3], [0.3, 0.6]])
    mb = np.array([0.0, 0.1])
    Sb = np.array([[1.0, -0.2], [-0.2, 0.8]])
    out = {}
    for p in (1, 2, math.inf):
        r = gaussian_kl_flow(m0, S0, mb, Sb, p, T=0.6, dt=0.1)
        tag = "inf" if math.isinf(p) else str(p)
        out.update({f"p{tag}_means": r.means, f"p{tag}_covs": r.covs, f"p{tag}_kl": r.kl,
                    f"p{tag}_times": r.times})
    return out


def spectral_modal_flow():
    from measureflow.spectral.flows import modal_flow

    out = {}
    betas = np.array([[1.0, 0.5, -0.7], [2.0, 0.1, 0.3]])
    for p in (1.5, 3.0, math.inf):
        r = modal_flow(np.zeros_like(betas), np.full(betas.shape, 0.4), betas, p, T=2.0,
                       dt=0.05, record_every=4)
        tag = "inf" if math.isinf(p) else str(p)
        out.update({f"p{tag}_r": r.r, f"p{tag}_s": r.s, f"p{tag}_energy": r.energy,
                    f"p{tag}_times": r.times, f"p{tag}_ext_r": r.extinction_r,
                    f"p{tag}_ext_t": r.extinction_time})
    r = modal_flow(np.array([[-1.5], [-0.5]]), np.array([[1.8], [2.0]]), 1.0, math.inf, T=3.0,
                   dt=0.01)
    out.update(ext_r=r.r, ext_ext_r=r.extinction_r, ext_ext_t=r.extinction_time)
    return out


def attention_particle_flow():
    from measureflow.attention import particle_flow

    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, generator=g, dtype=D64)
    w = torch.rand(16, generator=g, dtype=D64) + 0.5
    Q = torch.randn(4, 3, generator=g, dtype=D64) * 0.7
    K = torch.randn(4, 3, generator=g, dtype=D64) * 0.7
    V = torch.randn(3, 3, generator=g, dtype=D64) * 0.5 + torch.eye(3, dtype=D64)
    out = {}
    cases = [
        ("euler_softmax", dict(kind="softmax", method="euler")),
        ("rk4_softmax", dict(kind="softmax", method="rk4")),
        ("rk4_sphere", dict(kind="softmax", method="rk4", normalize="sphere")),
        ("euler_layernorm", dict(kind="softmax", method="euler", normalize="layernorm")),
        ("rk4_l2", dict(kind="l2", method="rk4")),
        ("euler_sigmoid", dict(kind="sigmoid", method="euler", bias=-1.0)),
        ("rk4_causal", dict(kind="causal", method="rk4")),
        ("rk4_multihead", dict(kind="multihead", heads=2, method="rk4",
                               V=torch.stack([V, 0.5 * V.T]))),
        ("euler_sinkhorn", dict(kind="sinkhorn", method="euler", eps=2.0)),
    ]
    for tag, kw in cases:
        kw = {"V": V, **kw}
        r = particle_flow(x, w, Q=Q, K=K, T=0.4, steps=6, record_every=4, **kw)
        out.update({f"{tag}_final": r.final, f"{tag}_traj": r.trajectory,
                    f"{tag}_times": r.times, f"{tag}_means": r.means, f"{tag}_covs": r.covs,
                    f"{tag}_energy": r.energy, f"{tag}_diag": np.array([r.n_clusters, r.rank])})
    r = particle_flow(x.numpy(), Q=Q.numpy(), K=K.numpy(), V=V.numpy(), T=0.2, steps=3,
                      chunk=5)
    out.update(numpy_final=r.final, numpy_traj=r.trajectory)
    return out


def attention_integrate_gaussian():
    from measureflow.attention import integrate_gaussian

    mean = torch.tensor([0.2, -0.1], dtype=D64)
    cov = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=D64)
    Q = torch.tensor([[1.0, 0.2], [0.0, 0.5]], dtype=D64)
    K = torch.tensor([[-0.8, 0.1], [0.3, -0.6]], dtype=D64)
    V = torch.tensor([[1.0, 0.2], [-0.1, 0.8]], dtype=D64)
    out = {}
    for kind in ("softmax", "l2", "sinkhorn"):
        r = integrate_gaussian(mean, cov, Q, K, V, kind=kind, T=0.5, step=0.07, record_every=2)
        out.update({f"{kind}_means": r.means, f"{kind}_covs": r.covs, f"{kind}_times": r.times,
                    f"{kind}_errors": np.array(r.errors), f"{kind}_n": np.array([r.n_iter])})
    q = torch.tensor([[1.0, 0.5]], dtype=D64)
    S0 = torch.tensor([[1.0, 0.2], [0.2, 0.6]], dtype=D64)
    r = integrate_gaussian(torch.zeros(2, dtype=D64), S0, q, -q, torch.eye(2, dtype=D64),
                           step=0.3, tol=1e-4, max_iter=2000, method="projected_euler",
                           record_every=50)
    out.update(pe_means=r.means, pe_covs=r.covs, pe_times=r.times, pe_errors=np.array(r.errors),
               pe_stop=np.array([r.stop_iter, r.n_iter]))
    one = torch.eye(1, dtype=D64)
    covs = torch.tensor([[[0.5]], [[2.0]], [[1.0]]], dtype=D64)
    r = integrate_gaussian(torch.zeros(3, 1, dtype=D64), covs, one, -one, one, step=0.05,
                           tol=2e-2, max_iter=100000, record_every=7)
    out.update(batch_covs=r.covs, batch_times=r.times, batch_stop=_np(r.stop_iter),
               batch_errors=np.array(r.errors))
    r = integrate_gaussian(torch.zeros(2, 1, dtype=D64), covs[:2], one, one, one, step=5e-3,
                           max_iter=100000, record_every=25)
    out.update(blow_covs=r.covs, blow_times=r.times, blow_stop=_np(r.stop_iter))
    sb = torch.stack([cov, 2 * cov])
    r = integrate_gaussian(torch.zeros(2, 2, dtype=D64), sb, Q, K, V, step=0.05,
                           method="projected_euler", T=0.4)
    out.update(pe_batch_covs=r.covs, pe_batch_means=r.means, pe_batch_times=r.times)
    return out


def conservation_neural_ode_flow():
    from measureflow.conservation import intrinsic as I

    A0 = I.relaxed_balanced_neural_ode(3, 6, 0.6, seed=0)
    Y = torch.randn(3, 3, dtype=D64, generator=torch.Generator().manual_seed(5))
    r = I.neural_ode_flow(A0, Y, 0.6, t_max=0.2, n_t=4)
    return dict(times=r.times, Z_param=r.Z_param, Z_intrinsic=r.Z_intrinsic,
                scalars=np.array([r.max_rel_error, r.law_drift]))


CASES = [ot_particle_flow, spectral_particle_flow, spectral_sphere_flow,
         spectral_gaussian_kl_flow, spectral_modal_flow, attention_particle_flow,
         attention_integrate_gaussian, conservation_neural_ode_flow]


def run_all() -> dict:
    out = {}
    for case in CASES:
        for k, v in case().items():
            out[f"{case.__name__}/{k}"] = _np(v)
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    np.savez_compressed(sys.argv[1], **run_all())
