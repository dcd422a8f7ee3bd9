"""Muon on an MLP: the spectral (Schatten-infinity) steepest descent of arXiv 2604.04891.

A small MLP classifies a three-arm spiral. The hidden weight matrices are trained with
:class:`measureflow.optim.Muon` (momentum, then the polar factor U W^T of the momentum matrix:
the unit-ball LMO of the spectral norm), the input layer, the output layer and the biases with
AdamW -- the usual split, since Muon's step is meant for hidden matrices. The baseline trains
every parameter with AdamW. Both runs start from the same initialisation and see the same
full batch.

Run: ``python examples/muon_mlp.py [--fast] [--out DIR]``
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
from torch import nn  # noqa: E402

from measureflow.optim import Muon  # noqa: E402


def spiral(n_per_class: int, seed: int = 0):
    """Three interleaved spiral arms in the plane (float32 inputs, int64 labels)."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for k in range(3):
        r = np.linspace(0.05, 1.0, n_per_class)
        t = 4.0 * r + 2.0 * np.pi * k / 3 + 0.2 * rng.normal(size=n_per_class)
        X.append(np.stack([r * np.cos(t), r * np.sin(t)], 1))
        y.append(np.full(n_per_class, k))
    return torch.tensor(np.concatenate(X), dtype=torch.float32), torch.tensor(np.concatenate(y))


def mlp(width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 3))


def train(model, optimizers, X, y, steps):
    losses = []
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(X), y)
        for opt in optimizers:
            opt.zero_grad()
        loss.backward()
        for opt in optimizers:
            opt.step()
        losses.append(loss.item())
    acc = float((model(X).argmax(1) == y).float().mean())
    return losses, acc


def main(fast: bool = False, out: str | os.PathLike = "example-figures", seed: int = 0) -> dict:
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    X, y = spiral(100 if fast else 300, seed)
    width, steps = (32, 80) if fast else (128, 600)
    torch.manual_seed(seed)
    init = mlp(width).state_dict()

    base = mlp(width)
    base.load_state_dict(init)
    adamw_losses, adamw_acc = train(base, [torch.optim.AdamW(base.parameters(), lr=3e-3)],
                                    X, y, steps)

    model = mlp(width)
    model.load_state_dict(init)
    hidden = [model[2].weight, model[4].weight]
    others = [p for p in model.parameters() if all(p is not h for h in hidden)]
    opts = [Muon(hidden, lr=0.05, weight_decay=0.0, momentum=0.95),
            torch.optim.AdamW(others, lr=3e-3)]
    muon_losses, muon_acc = train(model, opts, X, y, steps)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    axes[0].semilogy(adamw_losses, label=f"AdamW (train acc. {adamw_acc:.2f})")
    axes[0].semilogy(muon_losses, label=f"Muon + AdamW (train acc. {muon_acc:.2f})")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("cross-entropy")
    axes[0].legend()
    g = torch.linspace(-1.2, 1.2, 150)
    G = torch.stack(torch.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2)
    with torch.no_grad():
        region = model(G).argmax(1).reshape(150, 150)
    axes[1].contourf(g, g, region, alpha=0.3, levels=[-0.5, 0.5, 1.5, 2.5])
    axes[1].scatter(*X.T, c=y, s=6)
    axes[1].set_title("Muon-trained classifier")
    fig.tight_layout()
    path = out / "muon_mlp.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return {"final_loss": {"adamw": adamw_losses[-1], "muon": muon_losses[-1]},
            "initial_loss": muon_losses[0],
            "train_accuracy": {"adamw": adamw_acc, "muon": muon_acc}, "figures": [str(path)]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="small sizes (used by the tests)")
    parser.add_argument("--out", default="example-figures", help="folder for the figures")
    args = parser.parse_args()
    print(main(fast=args.fast or os.environ.get("MEASUREFLOW_EXAMPLES_FAST") == "1",
               out=args.out))
