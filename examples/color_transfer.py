"""Color transfer between two images with optimal transport.

The colors of an image are a point cloud in RGB space ([0, 1]^3). We sample ``n`` pixels of
each image, fit a transport plan between the two color clouds with
:class:`measureflow.da.Transport` (cost |c - c'|^2, no 1/2), and recolor every pixel of the
first image with the fitted map:

* exact OT: the barycentric image of the nearest sampled color, shifted by the offset to it
  (POT's out-of-sample rule);
* entropic OT (``eps``): the entropic map of Pooladian & Niles-Weed, smooth in the color.

The images are the two photographs shipped with scikit-learn (no download); without
scikit-learn two synthetic images are generated.

Run: ``python examples/color_transfer.py [--fast] [--out DIR]``
"""

from __future__ import annotations

import argparse
import os
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from measureflow.da import Transport  # noqa: E402


def load_images(stride: int):
    """Two RGB images in [0, 1], subsampled by ``stride``."""
    try:
        from sklearn.datasets import load_sample_image

        a = load_sample_image("china.jpg") / 255.0
        b = load_sample_image("flower.jpg") / 255.0
    except ImportError:   # synthetic: a blue-green gradient and a warm one with a disc
        h, w = 427, 640
        u, v = np.meshgrid(np.linspace(0, 1, w), np.linspace(0, 1, h))
        a = np.stack([0.2 + 0.3 * u, 0.4 + 0.4 * v, 0.8 - 0.3 * u * v], -1)
        disc = ((u - 0.5) ** 2 + (v - 0.5) ** 2 < 0.08)[..., None]
        b = np.where(disc, [0.9, 0.8, 0.2], np.stack([0.7 + 0.2 * v, 0.3 * u, 0.2 + 0 * u], -1))
    return a[::stride, ::stride], b[::stride, ::stride]


def main(fast: bool = False, out: str | os.PathLike = "example-figures", seed: int = 0) -> dict:
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    img_a, img_b = load_images(stride=16 if fast else 4)
    n = 200 if fast else 1000
    rng = np.random.default_rng(seed)
    pix_a, pix_b = img_a.reshape(-1, 3), img_b.reshape(-1, 3)
    Xs = pix_a[rng.choice(len(pix_a), n, replace=False)]
    Xt = pix_b[rng.choice(len(pix_b), n, replace=False)]

    eps = 0.02 if fast else 0.01     # absolute, in cost units |c - c'|^2 (colors in [0, 1]^3)
    mapped = {}
    for name, est in (("exact OT", Transport("exact")),
                      (f"entropic OT, eps = {eps}", Transport("sinkhorn", eps=eps))):
        est.fit(Xs, Xt)
        mapped[name] = np.clip(est.transform(pix_a), 0, 1).reshape(img_a.shape)

    fig, axes = plt.subplots(1, 4, figsize=(14, 3.2))
    panels = [("source", img_a), ("target (palette)", img_b), *mapped.items()]
    for ax, (title, im) in zip(axes, panels):
        ax.imshow(im)
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    path = out / "color_transfer.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    # the transported colors have the target's mean color (the plan's marginal is uniform on Xt)
    gap = {k: float(np.abs(v.reshape(-1, 3).mean(0) - pix_b.mean(0)).max())
           for k, v in mapped.items()}
    before = float(np.abs(pix_a.mean(0) - pix_b.mean(0)).max())
    return {"mean_color_gap_before": before, "mean_color_gap_after": gap, "figures": [str(path)]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="small sizes (used by the tests)")
    parser.add_argument("--out", default="example-figures", help="folder for the figures")
    args = parser.parse_args()
    print(main(fast=args.fast or os.environ.get("MEASUREFLOW_EXAMPLES_FAST") == "1",
               out=args.out))
