"""Conservation laws of a custom ``torch.nn.Module`` under gradient flow.

A two-layer ReLU network without biases, written as a plain ``nn.Module``, has one
conserved quantity per hidden neuron under the gradient flow of any loss (arXiv 2307.00144,
Marcotte, Gribonval & Peyre):

    h_j(theta) = |row j of W_in|^2 - |column j of W_out|^2,

because the network is unchanged by the rescaling (W_in[j], W_out[:, j]) -> (t W_in[j],
W_out[:, j] / t). :func:`measureflow.conservation.number_of_laws_model` counts the laws from
the module itself (sampled-rank test on the Jacobians, with the known laws as a certificate),
and :func:`measureflow.conservation.drift.track_laws` trains the module and records h: gradient
descent with step lr changes h by O(lr^2) per step (it is conserved only by the flow), i.e.
O(lr) over a fixed time horizon: halving lr halves the drift.

Run: ``python examples/conservation_laws.py [--fast] [--out DIR]``
"""

from __future__ import annotations

import argparse
import os
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.func import functional_call  # noqa: E402

from measureflow.conservation import drift, number_of_laws_model  # noqa: E402


class TwoLayerReLU(nn.Module):
    """x -> W_out relu(W_in x), no biases."""

    def __init__(self, d_in: int, width: int, d_out: int):
        super().__init__()
        self.inp = nn.Linear(d_in, width, bias=False)
        self.out = nn.Linear(width, d_out, bias=False)

    def forward(self, x):
        return self.out(torch.relu(self.inp(x)))


def rescaling_laws(model: TwoLayerReLU) -> torch.Tensor:
    """h_j = |W_in[j, :]|^2 - |W_out[:, j]|^2, one per hidden neuron."""
    return (model.inp.weight ** 2).sum(1) - (model.out.weight ** 2).sum(0)


def main(fast: bool = False, out: str | os.PathLike = "example-figures", seed: int = 0) -> dict:
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    d_in, width, d_out = (3, 4, 2) if fast else (4, 8, 3)
    torch.manual_seed(seed)
    model = TwoLayerReLU(d_in, width, d_out).double()

    # counting: the module as a function g(theta, x) of its flat parameter vector
    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def g(flat, x):
        params, i = {}, 0
        for name, shape in zip(names, shapes):
            k = shape.numel()
            params[name] = flat[i:i + k].reshape(shape)
            i += k
        return functional_call(model, params, (x,))

    inputs = torch.randn(10 * theta.numel(), d_in, dtype=torch.float64)
    count = number_of_laws_model(g, theta, inputs, n_known=width)

    # drift of the laws under gradient descent, for two step sizes over the same time T
    X = torch.randn(64, d_in, dtype=torch.float64)
    Y = torch.randn(64, d_out, dtype=torch.float64)
    loss_fn = lambda m, batch: ((m(batch[0]) - batch[1]) ** 2).mean()
    T = 2.0 if fast else 5.0
    drifts = {}
    for lr in (0.02, 0.01):
        m = TwoLayerReLU(d_in, width, d_out).double()
        m.load_state_dict(model.state_dict())
        steps = int(round(T / lr))
        res = drift.track_laws(m, rescaling_laws, loss_fn, [(X, Y)] * steps, optimizer="gd",
                               lr=lr)
        drifts[lr] = res

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for lr, res in drifts.items():
        t = torch.arange(res.relative_drift.shape[0]) * lr
        axes[0].semilogy(t[1:], res.relative_drift[1:], label=f"gradient descent, lr = {lr}")
        axes[1].plot(torch.arange(res.losses.shape[0]) * lr, res.losses, label=f"lr = {lr}")
    axes[0].set_xlabel("time (steps x lr)")
    axes[0].set_ylabel("|h(theta_k) - h(theta_0)| / |h(theta_0)|")
    axes[0].set_title(f"{count.n_laws} laws for {count.n_params} parameters ({count.status})")
    axes[0].legend()
    axes[1].set_xlabel("time (steps x lr)")
    axes[1].set_ylabel("training loss")
    fig.tight_layout()
    path = out / "conservation_laws.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    final = {lr: float(res.relative_drift[-1]) for lr, res in drifts.items()}
    return {"n_laws": count.n_laws, "n_params": count.n_params, "width": width,
            "status": count.status, "final_relative_drift": final, "figures": [str(path)]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="small sizes (used by the tests)")
    parser.add_argument("--out", default="example-figures", help="folder for the figures")
    args = parser.parse_args()
    print(main(fast=args.fast or os.environ.get("MEASUREFLOW_EXAMPLES_FAST") == "1",
               out=args.out))
