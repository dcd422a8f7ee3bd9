"""A Sinkhorn-divergence training loop: particles flowing to a target sample.

The debiased Sinkhorn divergence S_eps(mu, nu) (Feydy et al. 2019; cost |x - y|^2, no 1/2) of
:func:`measureflow.ot.sinkhorn_divergence` is differentiable in the points (envelope theorem:
no backpropagation through the Sinkhorn iterations), so it is a loss like any other. Here the
positions of n particles are a ``torch.nn.Parameter`` trained by plain gradient descent with
``torch.optim.SGD``; with the learning rate scaled by n (the particle weight is 1/n) each step
is an explicit Euler step of the Wasserstein gradient flow x_i' = -grad_x (dS/dmu)(x_i).

Run: ``python examples/sinkhorn_flow.py [--fast] [--out DIR]``
"""

from __future__ import annotations

import argparse
import os
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from measureflow import ot  # noqa: E402


def target_sample(m: int, seed: int = 1) -> torch.Tensor:
    """A noisy ring of radius 1 centred at (2, 0)."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 2 * np.pi, m)
    pts = np.stack([2 + np.cos(t), np.sin(t)], 1) + 0.05 * rng.normal(size=(m, 2))
    return torch.tensor(pts)


def main(fast: bool = False, out: str | os.PathLike = "example-figures", seed: int = 0) -> dict:
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n, steps = (80, 20) if fast else (400, 100)
    eps = 0.05                                      # cost units of |x - y|^2
    y = target_sample(n)
    gen = torch.Generator().manual_seed(seed)
    x = torch.nn.Parameter(0.3 * torch.randn(n, 2, generator=gen, dtype=torch.float64))
    opt = torch.optim.SGD([x], lr=0.1 * n)          # lr x (1/n weights) = Euler step 0.1
    losses, snapshots = [], {0: x.detach().clone()}
    for k in range(1, steps + 1):
        opt.zero_grad()
        loss = ot.sinkhorn_divergence(x, y, eps=eps)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if k in (max(1, steps // 20), steps // 4, steps):
            snapshots[k] = x.detach().clone()

    fig, axes = plt.subplots(1, len(snapshots) + 1, figsize=(4 * (len(snapshots) + 1), 3.6))
    for ax, (k, pts) in zip(axes, snapshots.items()):
        ax.scatter(*y.T, s=6, c="lightgrey", label="target")
        ax.scatter(*pts.T, s=6, c="C0", label="particles")
        ax.set_title(f"step {k}")
        ax.set_aspect("equal")
    axes[0].legend(loc="upper left", fontsize=8)
    axes[-1].semilogy(range(1, steps + 1), losses)
    axes[-1].set_xlabel("step")
    axes[-1].set_ylabel("S_eps(particles, target)")
    fig.tight_layout()
    path = out / "sinkhorn_flow.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return {"initial_loss": losses[0], "final_loss": losses[-1], "figures": [str(path)]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="small sizes (used by the tests)")
    parser.add_argument("--out", default="example-figures", help="folder for the figures")
    args = parser.parse_args()
    print(main(fast=args.fast or os.environ.get("MEASUREFLOW_EXAMPLES_FAST") == "1",
               out=args.out))
