"""Conservation laws of gradient flows (arXiv 2307.00144, 2506.06194, 2508.07370).

Experiments ``conservation.*``: law counts by the autodiff Lie closure for random linear / ReLU
architectures, attention and convolution; ResNet block laws; SGD drift of the laws vs step size
on a small conv ResNet and a small transformer; the intrinsic-dynamics criteria.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

from .plotting import loglog_fit, new_figure, plt
from .registry import Claim, Outcome, experiment

F64 = torch.float64


# ----------------------------------------------------------------------------- counts
_FAMILY_SOURCE = {
    "linear": "A Cor. 4.4 / Prop. 4.1, notebook Part C: D - dim Lie = rank of the known laws "
              "U_i^T U_i - U_(i+1) U_(i+1)^T (r(r+1)/2 for two layers)",
    "relu": "A Cor. 4.4, notebook Part D (C Cor. 3.4): one law per hidden neuron, no other",
    "conv": "D Thm 3.6: exactly c1 laws (one per hidden channel)",
    "attention": "D Thm 3.8 / Cor. 3.9: QQ^T - KK^T, VV^T - OO^T are all the laws, "
                 "d(d+1) of them",
    "residual": "D Prop. 3.2: a residual block x + g has the laws (and count) of g",
}


def _random_arch(item):
    """Draw one architecture of a family (np.random seeded by the runner) and count its laws.

    item = (family, index, sizes). Returns a picklable row.
    """
    from ..conservation import architectures as A
    from ..conservation import (
        gradient_fields,
        number_of_laws,
        number_of_laws_model,
        polynomial_laws,
    )

    family, i, sz = item
    rng = np.random
    wmin, wmax = sz["widths"]

    def widths(k):
        return [int(x) for x in rng.randint(wmin, wmax + 1, size=k)]

    seed = int(rng.randint(0, 2**31 - 1))
    bias, via = False, "phi"
    if family == "linear":
        depth = int(rng.randint(2, sz["max_depth"] + 1))
        dims = widths(depth + 1)
        arch = A.linear_deep(dims) if depth > 2 else A.linear_two_layer(dims[2], dims[0], dims[1])
        desc = f"linear depth {depth} {dims}"
    elif family == "relu":
        depth = int(rng.randint(2, sz["max_depth"] + 1))
        dims = widths(depth + 1)
        bias = bool(rng.rand() < 0.5)
        arch = A.relu_deep(dims, bias=bias)
        desc = f"relu depth {depth} {dims}{' +bias' if bias else ''}"
    elif family == "conv":
        n = int(rng.randint(max(3, wmin), wmax + 3))
        c0, c1, c2 = widths(3)
        n_u, n_v = (int(x) for x in rng.randint(1, min(n, 4) + 1, size=2))
        arch = A.conv_relu(n, c0, c1, c2, n_u, n_v)
        desc, via = arch.name, "model+n_known"
    elif family == "attention":
        dim = int(rng.randint(max(2, wmin), wmax + 1))
        d = int(rng.randint(1, dim + 1))
        arch = A.attention(dim, d, 1, n_tokens=3)
        desc = arch.name
    else:  # residual: x + g for a shallow ReLU (with/without bias) or linear block, n = m
        m, r = widths(2)
        kind = ("relu", "relu+bias", "linear")[int(rng.randint(0, 3))]
        block = (A.linear_two_layer(m, m, r) if kind == "linear"
                 else A.relu_two_layer(m, m, r, bias=kind == "relu+bias"))
        arch = A.residual(block)
        desc, via = f"residual({block.name})", "model+phi"
    th = arch.sample_params(seed)
    known = arch.n_known if arch.n_known is not None else A.known_rank(arch, th)
    t0 = time.process_time()
    if via == "phi":
        c = number_of_laws(arch.phi, th, n_known=known)
    else:
        n_out = arch.g(th, arch.sample_inputs(1, seed)).numel()
        # inputs: first full run used max(60, 4 D / n_out); residual(relu[5,5,5,bias]) then had
        # sampled rank 49 < rank dphi = 50 (a neuron active on too few of the 60 inputs), so
        # its count was only an upper bound; raised to max(200, 8 D / n_out)
        n_in = max(200, 8 * arch.n_params // max(1, n_out))
        X = arch.sample_inputs(n_in, seed + 1)
        if via == "model+n_known":
            c = number_of_laws_model(arch.g, th, X, n_known=known)
        else:
            c = number_of_laws_model(arch.g, th, X, phi=arch.phi)
    dt = time.process_time() - t0
    poly = None
    if (i < sz.get("n_poly", 0) and family in ("linear", "relu")
            and arch.n_params <= sz["poly_max_D"]):
        poly = polynomial_laws(gradient_fields(arch.phi), 2, n_params=arch.n_params).n_laws
    independent = A.known_rank(arch, th) == known
    return dict(family=family, arch=desc, D=arch.n_params, known=int(known),
                expected=arch.expected_laws if arch.expected_laws is not None else int(known),
                n_laws=c.n_laws, rank=c.rank_dphi, dim_lie=c.dim_lie, status=c.status,
                frobenius=bool(c.frobenius), independent_known=bool(independent),
                poly2=poly, cpu_seconds=dt)


@experiment("conservation.random-architectures", paper="arXiv:2307.00144 + arXiv:2506.06194",
            section="A Sec. 3.3 (Algorithm), Cor. 4.4, Prop. 4.1, notebook Parts C-D; "
                    "D Prop. 3.2, Thm 3.6, Thm 3.8",
            title="Random architectures of every family: the number of laws the papers state",
            quick=dict(seed=0, n=dict(linear=3, relu=3, conv=2, attention=2, residual=2),
                       linear=dict(widths=[2, 3], max_depth=3, n_poly=1, poly_max_D=24),
                       relu=dict(widths=[2, 3], max_depth=3, n_poly=1, poly_max_D=24),
                       conv=dict(widths=[2, 3]), attention=dict(widths=[2, 3]),
                       residual=dict(widths=[2, 3])),
            full=dict(seed=0, n=dict(linear=50, relu=50, conv=10, attention=10, residual=10),
                      linear=dict(widths=[2, 5], max_depth=4, n_poly=10, poly_max_D=48),
                      relu=dict(widths=[2, 9], max_depth=4, n_poly=10, poly_max_D=48),
                      conv=dict(widths=[2, 5]), attention=dict(widths=[2, 5]),
                      residual=dict(widths=[2, 5])))
def random_architectures(cfg):
    families = ("linear", "relu", "conv", "attention", "residual")
    items = [(f, i, dict(cfg[f])) for f in families for i in range(cfg.n[f])]
    rows = cfg.map(_random_arch, items)
    claims = []
    for f in families:
        rr = [r for r in rows if r["family"] == f]
        ok = sum(r["n_laws"] == r["expected"] and r["status"] != "upper bound" for r in rr)
        sizes = cfg[f]["widths"]
        claims.append(Claim.close(
            f"{f}: {_FAMILY_SOURCE[f]} -- holds for every one of {len(rr)} random "
            f"architectures (widths {sizes[0]}-{sizes[1]})", len(rr), ok, atol=0,
            note="Counted at one random theta per architecture by the autodiff Lie closure "
                 "(early exit at D - n_known, as the reference notebook does: reaching it "
                 "proves there is no other law, given the known laws are independent -- "
                 "checked, metrics 'independent_known'); conv: certified by the sampled rank of "
                 "W_theta; residual: counted through the residual model itself with the block's "
                 "phi proving that the sampled inputs span W_theta. A miss (count != expected "
                 "or only an upper bound) fails the claim. Input count changed after the first "
                 "full run (max(60, 4 D / n_out) -> max(200, 8 D / n_out)): residual "
                 "9/10 there, residual(relu[5,5,5,bias]) only an upper bound (sampled rank 49 "
                 "< rank dphi 50: too few inputs activated one neuron), not a wrong count."))
    polys = [r for r in rows if r["poly2"] is not None]
    claims.append(Claim.close(
        "A Sec. 2.4 / notebook Parts C-D: the degree-2 polynomial search recovers exactly the "
        f"known laws ({len(polys)} linear / ReLU architectures)", len(polys),
        sum(r["poly2"] == r["known"] for r in polys), atol=0))
    rel = [r for r in rows if r["family"] == "relu"]
    claims.append(Claim.holds(
        "C abstract (v2) (path-lifting of ReLU networks gives an intrinsic dynamic): the "
        "path-lifting has the Frobenius property "
        "(dim Lie = rank dphi, certified at level 0) for every random ReLU architecture",
        all(r["frobenius"] for r in rel)))
    claims.append(Claim.holds(
        "A Def. 2.18 (independent laws): the known laws of every architecture are independent "
        "(rank of their Jacobian = their number), so the certified counts are exact",
        all(r["independent_known"] for r in rows)))
    fig, ax = new_figure()
    for f, mk in zip(families, "osD^v"):
        rr = [r for r in rows if r["family"] == f]
        ax.scatter([r["expected"] for r in rr], [r["n_laws"] for r in rr], marker=mk, label=f,
                   alpha=0.7)
    mx = max(r["expected"] for r in rows) + 1
    ax.plot([0, mx], [0, mx], "k--", lw=0.8)
    ax.set_xlabel("number of laws stated by the papers")
    ax.set_ylabel("D - dim Lie (autodiff closure)")
    ax.legend()
    ax.set_title("Number of conservation laws")
    return Outcome(
        metrics=dict(rows=rows, max_D=max(r["D"] for r in rows),
                     cpu_seconds=sum(r["cpu_seconds"] for r in rows)),
        figures=dict(counts=fig), claims=claims)


@experiment("conservation.attention-conv", paper="arXiv:2506.06194",
            section="Thm 3.6 (conv), Thm 3.8 / Cor. 3.9-3.10 (attention), Prop. 3.11",
            title="Counts for attention (1-3 heads), circular conv ReLU and softmax layers",
            quick=dict(seed=0, attn=[(4, 2, 1), (6, 2, 2), (6, 2, 3)],
                       conv=[(6, 2, 3, 2, 3, 3)], n_inputs=40),
            full=dict(seed=0, attn=[(4, 2, 1), (8, 3, 1), (6, 2, 2), (8, 3, 2), (9, 3, 3)],
                      conv=[(6, 2, 3, 2, 3, 3), (8, 3, 4, 2, 3, 5), (10, 2, 5, 3, 4, 4)],
                      n_inputs=80))
def attention_conv(cfg):
    from ..conservation import architectures as A
    from ..conservation import number_of_laws, number_of_laws_model

    rows, claims = [], []
    for (dim, d, H) in cfg.attn:
        arch = A.attention(dim, d, H, n_tokens=3)
        th = arch.sample_params(cfg.seed)
        c = number_of_laws(arch.phi, th)
        cm = number_of_laws_model(arch.g, th, arch.sample_inputs(cfg.n_inputs, cfg.seed + 1),
                                  brackets=False)
        rows.append(dict(arch=arch.name, D=arch.n_params, rank_dphi=c.rank_dphi,
                         sampled_rank_W=cm.rank_dphi, dim_lie=c.dim_lie, n_laws=c.n_laws,
                         expected=arch.expected_laws, frobenius=c.frobenius))
        what = ("Thm 3.8: QQ^T-KK^T, VV^T-OO^T are all the laws" if H == 1 else
                "Cor 3.10 (completeness open in the paper): per-head laws only")
        claims.append(Claim.close(f"{arch.name}: {what}", arch.expected_laws, c.n_laws, atol=0))
        claims.append(Claim.close(f"{arch.name}: sampled rank of W_theta equals rank dphi "
                                  "(D Thm 3.4 / 3.8: W_theta = range dphi^T for N >= 2 tokens; "
                                  "sampled-rank method of D Sec. 4.4)", c.rank_dphi,
                                  cm.rank_dphi, atol=0))
    for cf in cfg.conv:
        arch = A.conv_relu(*cf)
        th = arch.sample_params(cfg.seed)
        c = number_of_laws_model(arch.g, th, arch.sample_inputs(cfg.n_inputs, cfg.seed + 2),
                                 n_known=arch.n_known)
        rows.append(dict(arch=arch.name, D=arch.n_params, rank_dphi=c.rank_dphi,
                         dim_lie=c.dim_lie, n_laws=c.n_laws, expected=arch.expected_laws,
                         certified=c.certified))
        claims.append(Claim.close(f"{arch.name}: exactly c1 laws (Thm 3.6)",
                                  arch.expected_laws, c.n_laws, atol=0))
        claims.append(Claim.holds(f"{arch.name}: D Thm 3.6 'no other law' is certified by the "
                                  "sampled rank (rank W = D - c1, no brackets)", c.certified))
    sm = A.softmax_layer(5, 3)
    c = number_of_laws(sm.phi, sm.sample_params(cfg.seed))
    rows.append(dict(arch=sm.name, D=sm.n_params, n_laws=c.n_laws, expected=sm.expected_laws))
    claims.append(Claim.close("Softmax + cross-entropy layer: exactly m laws (column sums, "
                              "Prop 3.11)", sm.expected_laws, c.n_laws, atol=0))
    att = [r for r in rows if r["arch"].startswith("attention")]
    claims.append(Claim.holds("Derived consequence of D Thm 3.8 (not stated in the papers): attention fails the "
                              "Frobenius property (dim Lie > rank dphi), so its laws need brackets",
                              all(not r["frobenius"] for r in att)))
    return Outcome(metrics=dict(rows=rows), claims=claims)


@experiment("conservation.resnet-blocks", paper="arXiv:2506.06194",
            section="Sec. 4.4, Thm 4.6, Ex. 4.8",
            title="ReLU ResNet: only block laws when m > 1; the m = 1 extra-law example",
            quick=dict(seed=0, m=3, hidden=[3, 2], n_inputs=80),
            full=dict(seed=0, m=6, hidden=[8, 8, 8], n_inputs=400))
def resnet_blocks(cfg):
    from ..conservation import architectures as A
    from ..conservation import number_of_laws_model

    arch = A.relu_resnet(cfg.m, cfg.hidden)
    th = arch.sample_params(cfg.seed)
    c = number_of_laws_model(arch.g, th, arch.sample_inputs(cfg.n_inputs, cfg.seed + 1),
                             n_known=arch.n_known)
    ex = A.scalar_resnet_example()
    # Ex. 4.8 has 3 laws but only 2 known ones: the count is proven through the factorization
    # g = x (1 + uv)(1 + st) valid on the sampled region (rank R = rank dphi = 1)
    c1 = number_of_laws_model(ex.g, ex.sample_params(cfg.seed), ex.sample_inputs(40, 1),
                              phi=ex.phi)
    return Outcome(
        metrics=dict(D=arch.n_params, rank_W=c.rank_dphi, n_laws=c.n_laws,
                     block_laws=arch.n_known, certified=c.certified,
                     example_rank_W=c1.rank_dphi, example_laws=c1.n_laws),
        claims=[
            Claim.close(f"D Sec. 4.4 (numerics) / Thm 4.6: with m={cfg.m} > 1 the laws are "
                        "exactly the block laws (sum of hidden widths), certified by the sampled "
                        "rank", arch.n_known, c.n_laws, atol=0),
            Claim.holds("D Sec. 4.4: the m > 1 count is certified (rank W = D - #block laws)",
                        c.certified),
            Claim.close("D Ex. 4.8 (m = 1, sgn t = sgn v = sgn u): 3 laws", 3,
                        c1.n_laws if c1.exact else float("nan"), atol=0,
                        note=f"count status: {c1.status} (NaN if only an upper bound)"),
            Claim.at_least("D Ex. 4.8: more laws than the 2 block laws", 3, c1.n_laws),
        ])


# ----------------------------------------------------------------------------- drift
class _ConvResNet(nn.Module):
    """stem conv -> x + conv2(relu(conv1(x))) -> global average -> linear (no BatchNorm)."""

    def __init__(self, c: int = 4, k: int = 3, n_classes: int = 3):
        super().__init__()
        self.stem = nn.Conv2d(1, c, k, padding=k // 2)
        self.conv1 = nn.Conv2d(c, c, k, padding=k // 2)
        self.conv2 = nn.Conv2d(c, c, k, padding=k // 2, bias=False)
        self.head = nn.Linear(c, n_classes)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = x + self.conv2(torch.relu(self.conv1(x)))
        return self.head(x.mean((2, 3)))


class _TinyTransformer(nn.Module):
    """embed -> x + MHA(x) -> x + MLP(x) -> mean over tokens -> linear (no LayerNorm)."""

    def __init__(self, vocab: int = 8, dim: int = 8, heads: int = 2, n_classes: int = 3):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.attn = nn.MultiheadAttention(dim, heads, bias=False, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))
        self.head = nn.Linear(dim, n_classes)

    def forward(self, tok):
        x = self.emb(tok)
        x = x + self.attn(x, x, x, need_weights=False)[0]
        x = x + self.mlp(x)
        return self.head(x.mean(1))


def _conv_law(model):
    from ..conservation.architectures import conv_laws_torch
    return conv_laws_torch(model.conv1, model.conv2).sum().reshape(1)


def _attn_law(model):
    from ..conservation.architectures import attention_laws_torch
    return attention_laws_torch(model.attn)[0][0].reshape(-1)  # head 1: W_q W_q^T - W_k W_k^T


def _drift_model(kind: str, seed: int):
    """Model, law, loss and 4 minibatches of 16 for one seed (init and data drawn from it)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    if kind == "conv":
        model = _ConvResNet().double()
        X = torch.randn(64, 1, 6, 6, generator=g, dtype=F64)
        law = _conv_law
    else:
        model = _TinyTransformer().double()
        X = torch.randint(0, 8, (64, 5), generator=g)
        law = _attn_law
    y = torch.randint(0, 3, (64,), generator=g)
    batches = [(X[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    loss = lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1])
    return model, law, loss, batches


def _drift_run(item):
    """One SGD run: item = (kind, seed, tau, n_steps, schedule) -> law error and |g_k|^2."""
    from ..conservation.drift import track_laws

    kind, seed, tau, n_steps, schedule = item
    model, law, loss, batches = _drift_model(kind, seed)
    sched = (lambda k: 1.0 / (k + 1)) if schedule == "decay" else None
    res = track_laws(model, law, loss, batches, optimizer="sgd", lr=tau, n_steps=n_steps,
                     lr_schedule=sched)
    h = res.values
    # |h_k - h_0|: the scalar sum_j h_j for the conv block (eq. 17), the Frobenius norm of the
    # d x d matrix W_q W_q^T - W_k W_k^T for the transformer head
    err = (h - h[0]).norm(dim=1)
    return dict(abs_err=err.tolist(), rel_err=(err / h[0].norm()).tolist(),
                grad_sq=res.grad_sq_norms.tolist(), finite=bool(torch.isfinite(h).all()))


def _slope_and_se(taus, runs_by_tau, n_boot=400, seed=0):
    """Log-log slope of the seed-mean relative error vs tau, and its bootstrap SE over seeds."""
    E = np.array([[r["rel_err"][-1] for r in runs_by_tau[t]] for t in taus])  # (n_tau, seeds)
    lt = np.log(taus)
    slope = float(np.polyfit(lt, np.log(E.mean(1)), 1)[0])
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, E.shape[1], E.shape[1])
        boots.append(np.polyfit(lt, np.log(E[:, idx].mean(1)), 1)[0])
    return slope, float(np.std(boots, ddof=1)) if E.shape[1] > 1 else float("nan")


@experiment("conservation.sgd-drift", paper="arXiv:2506.06194",
            section="Prop. 5.1, Fig. 1 (conv ResNet), Fig. 5 (Transformer)",
            title="SGD drift of block laws vs step size: Prop. 5.1 bound and the tau^2 regime",
            quick=dict(seed=0, taus=[0.001 * 2 ** i for i in range(9)], paper_range=[1e-3, 5e-3],
                       n_steps=20, n_seeds=4, decay_tau0=0.032),
            full=dict(seed=0, taus=[0.001 * 2 ** i for i in range(9)], paper_range=[1e-3, 5e-3],
                      n_steps=50, n_seeds=10, decay_tau0=0.032))
def sgd_drift(cfg):
    taus = [float(t) for t in cfg.taus]
    kinds = ("conv", "transformer")
    seeds = [cfg.seed + 100 * s for s in range(cfg.n_seeds)]
    items = [(k, s, t, cfg.n_steps, "const") for k in kinds for t in taus for s in seeds]
    items += [(k, s, cfg.decay_tau0, cfg.n_steps, "decay") for k in kinds for s in seeds]
    out = cfg.map(_drift_run, items)
    runs = {it: r for it, r in zip(items, out)}
    metrics, claims = {}, []
    fig, axes = new_figure(2, 2)
    axes = np.atleast_2d(axes)
    K = cfg.n_steps
    lo, hi = cfg.paper_range
    paper_taus = [t for t in taus if lo <= t <= hi * (1 + 1e-12)]
    for col, kind in enumerate(kinds):
        by_tau = {t: [runs[(kind, s, t, K, "const")] for s in seeds] for t in taus}
        finite = all(r["finite"] for rr in by_tau.values() for r in rr)
        # Prop. 5.1, constant step: mean_s |h_k - h_0| <= (C_h C_L / 2) k tau^2 with C_h = 2
        # (both laws are quadratic with |Hess h| = 2) and C_L = max_{i<k} mean_s |grad L_i|^2
        worst_const, ratios = 0.0, {}
        for t in taus:
            A = np.array([r["abs_err"] for r in by_tau[t]]).mean(0)      # (K+1,)
            G = np.array([r["grad_sq"] for r in by_tau[t]]).mean(0)      # (K,)
            CL = np.maximum.accumulate(G)
            bound = CL * np.arange(1, K + 1) * t ** 2
            ratios[t] = float(np.max(A[1:] / bound))
            worst_const = max(worst_const, ratios[t])
        dec = [runs[(kind, s, cfg.decay_tau0, K, "decay")] for s in seeds]
        A = np.array([r["abs_err"] for r in dec]).mean(0)
        G = np.array([r["grad_sq"] for r in dec]).mean(0)
        partial = np.cumsum(1.0 / np.arange(1, K + 1) ** 2)
        worst_decay = float(np.max(A[1:] / (np.maximum.accumulate(G) * cfg.decay_tau0 ** 2
                                             * partial)))
        # tau^2 on the paper's step range and local slopes over the whole fixed grid
        slope_p, se_p = _slope_and_se(paper_taus, by_tau, seed=cfg.seed)
        local = []
        for a, b in zip(taus, taus[1:]):
            s_ab, se_ab = _slope_and_se([a, b], by_tau, seed=cfg.seed)
            local.append(dict(tau=[a, b], slope=s_ab, se=se_ab))
        # reported tau^2 regime: err / tau^2 changes by < 7 % per doubling of tau, |local slope
        # - 2| <= 0.1 (the first full run used max(0.1, 3 SE), which let the noisy large-tau
        # slopes count as tau^2: conv 1.66 +- 0.14 at tau = 0.128..0.256)
        in_regime = [abs(d["slope"] - 2) <= 0.1 for d in local]
        regime = [d["tau"] for d, ok in zip(local, in_regime) if ok]
        ok_upto = None
        for d, ok in zip(local, in_regime):
            if not ok:
                break
            ok_upto = d["tau"][1]
        mean_rel = [float(np.mean([r["rel_err"][-1] for r in by_tau[t]])) for t in taus]
        ax = axes[0, col]
        ax.loglog(taus, mean_rel, "o-", label=f"mean over {len(seeds)} seeds")
        c = mean_rel[0] / taus[0] ** 2
        ax.loglog(taus, [c * t ** 2 for t in taus], "k:", label=r"$C\tau^2$ (C from smallest)")
        ax.axvspan(lo, hi, color="0.9", label="paper's lr range")
        ax.set(xlabel=r"step size $\tau$", ylabel=f"relative law error after {K} steps",
               title="conv ResNet block" if kind == "conv" else "transformer head 1")
        ax.legend(fontsize=7)
        ax = axes[1, col]
        mids = [math.sqrt(d["tau"][0] * d["tau"][1]) for d in local]
        ax.errorbar(mids, [d["slope"] for d in local], yerr=[3 * d["se"] for d in local],
                    fmt="o-", capsize=3)
        ax.axhline(2.0, color="k", ls=":")
        ax.set(xscale="log", xlabel=r"$\tau$ (geometric midpoint)",
               ylabel="local log-log slope (+- 3 SE)")
        metrics[kind] = dict(taus=taus, mean_relative_error=mean_rel, prop51_ratio=ratios,
                             prop51_decay_ratio=worst_decay, slope_paper_range=slope_p,
                             slope_paper_range_se=se_p, local_slopes=local,
                             tau2_regime_pairs=regime, tau2_holds_up_to=ok_upto,
                             all_finite=finite)
        name = "conv ResNet block (sum_j h_j, eq. 17)" if kind == "conv" else \
            "transformer head 1 (W_q W_q^T - W_k W_k^T)"
        claims.append(Claim.at_most(
            f"{name}: Prop. 5.1 (constant step): 'E|h(theta_k) - h(theta_0)| <= (C_h C_L / 2) "
            f"sum_(i<k) tau_i^2' at every tau of the fixed grid {taus[0]:g}..{taus[-1]:g} and "
            f"every k <= {K} (max of mean|dh| / bound)", 1.0, worst_const,
            note="C_h = 2 (both laws quadratic, |Hess h| = 2; for the matrix law per step "
                 "|dS|_F <= tau^2 |g|^2), C_L = max_(i<k) of the seed mean of |grad L_(Z_i)|^2 "
                 "(the Prop.'s sup, estimated). Pathwise |dh_i| <= (C_h/2) tau^2 |g_i|^2 holds "
                 "for every sample (exact one-step identity below), so the seed mean obeys the "
                 "bound with no sampling tolerance. Ratios per tau in metrics (prop51_ratio)."))
        claims.append(Claim.at_most(
            f"{name}: Prop. 5.1 (decaying step tau_k = tau_0/(k+1), tau_0 = "
            f"{cfg.decay_tau0:g}): the error stays below (C_h C_L / 2) tau_0^2 sum 1/(k+1)^2 "
            f"<= (C_h C_L / 2) tau_0^2 pi^2/6 (bounded in k)", 1.0, worst_decay,
            note="max over k of mean|h_k - h_0| / bound; same constants as the constant-step "
                 "claim"))
        regime_txt = (f"Regime: tau^2 holds (local slope between consecutive grid steps within "
                      f"2 +- 0.1, i.e. err/tau^2 changes by < 7 % per doubling) from tau = "
                      f"{taus[0]:g} up to tau = {ok_upto:g}"
                      if ok_upto else "Regime: already the two smallest grid steps have a local "
                      "slope outside 2 +- 0.1")
        claims.append(Claim.within(
            f"{name}: Fig. {'1' if kind == 'conv' else '5'}: the relative error grows like "
            f"tau^2 on the paper's step range lr in [{lo:g}, {hi:g}] (log-log slope of the "
            f"{len(seeds)}-seed mean after {K} steps, grid points {paper_taus})",
            2 - 3 * se_p, 2 + 3 * se_p, slope_p,
            note=f"Tolerance: 3 bootstrap SE over seeds (SE = {se_p:.3g}). {regime_txt}; all "
                 f"local slopes in metrics (local_slopes). Why the slope departs from 2: one "
                 "SGD step changes a quadratic law by exactly 1/2 tau^2 g^T Hess h g (identity "
                 "below), so h_K - h_0 = tau^2 S(tau) with S(tau) = 1/2 sum_k g_k^T Hess h g_k "
                 "along the trajectory; S(tau) -> S(0) as tau -> 0, and the slope is "
                 "2 + dlog|S|/dlog tau, i.e. tau^2 is the small-step asymptotic. History: the "
                 "first configuration (grid tau = 0.0125..0.2, 1 seed, 20 steps) gave a slope of "
                 "1.64 (transformer) and 1.81 (conv) over its 3 smallest steps; the grid was then "
                 "moved to tau = 0.001..0.032 after seeing it (slopes 1.98 / 1.94 over "
                 "0.001..0.004). The present grid 0.001..0.256, the paper's range, the seeds and "
                 "this tolerance were fixed before the present runs."))
        # the exact one-step identity on this model (derived; unit check of the mechanism)
        model, law, loss, batches = _drift_model(kind, seeds[0])
        model.zero_grad()
        loss(model, batches[0]).backward()
        tau = taus[-1]
        if kind == "conv":
            g1, gb, g2 = model.conv1.weight.grad, model.conv1.bias.grad, model.conv2.weight.grad
            pred = tau ** 2 * (g1.pow(2).sum() + gb.pow(2).sum() - g2.pow(2).sum())
        else:
            E = model.attn.embed_dim
            d = E // model.attn.num_heads
            Gw = model.attn.in_proj_weight.grad
            gq, gk = Gw[:d], Gw[E:E + d]
            pred = (tau ** 2 * (gq @ gq.T - gk @ gk.T)).reshape(-1)
        before = law(model).detach()
        with torch.no_grad():
            for p in model.parameters():
                if p.grad is not None:
                    p -= tau * p.grad
        after = law(model).detach()
        err = float(((after - before) - pred.reshape(-1)).abs().max())
        scale = float(before.abs().max()) + float(pred.abs().max())
        claims.append(Claim.at_most(
            f"{name}: the mechanism of Prop. 5.1 -- one SGD step changes the quadratic law by "
            f"exactly 1/2 tau^2 g^T Hess h g (derived identity, tau = {tau:g})",
            64 * 2.2e-16 * (1 + scale), err,
            note="tolerance: float64 round-off of the law's entries (sums of a few dozen "
                 "products), 64 eps relative to their size"))
        metrics[kind]["one_step_error"] = err
    # optimizers side by side on the conv model (same lr): no conservation beyond SGD
    opt_rows = {}
    for name in ("sgd", "momentum", "adam", "schatten"):
        model, law, loss, batches = _drift_model("conv", cfg.seed)
        opt = name
        if name == "schatten":
            try:
                from ..optim import Schatten
                opt = Schatten(model.parameters(), lr=0.01)
            except Exception as exc:  # optional: the optim pillar may be absent
                opt_rows[name] = f"unavailable ({type(exc).__name__})"
                continue
        from ..conservation.drift import track_laws
        res = track_laws(model, law, loss, batches,
                         optimizer=opt, lr=0.01, n_steps=cfg.n_steps)
        opt_rows[name] = float(res.sum_relative_drift[-1])
    metrics["optimizers_lr_0.01"] = opt_rows
    fig.suptitle("Drift of conservation laws under SGD (arXiv 2506.06194 Sec. 5)")
    return Outcome(metrics=metrics, figures=dict(drift=fig), claims=claims)


# ----------------------------------------------------------------------------- intrinsic
@experiment("conservation.intrinsic-criteria", paper="arXiv:2508.07370",
            section="kernel criterion, recoverability, Frobenius (Sec. 2-3), relaxed balanced "
                    "(Sec. 3-4), linear neural ODE",
            title="Intrinsic-dynamics criteria table, metric formulas, linear neural ODE",
            quick=dict(seed=0, ode_layers=[8, 16], ode_steps=8),
            full=dict(seed=0, ode_layers=[8, 16, 32, 64], ode_steps=25))
def intrinsic_criteria(cfg):
    from ..conservation import architectures as A
    from ..conservation import intrinsic as I

    s = cfg.seed
    table, claims = [], []
    relu = A.relu_two_layer(3, 3, 2)
    r = I.kernel_inclusion(relu.phi, relu.sample_params(s))
    table.append(dict(model="ReLU 2-layer path-lifting", init="generic",
                      dim_intersection=r.dim_intersection, relative_dM=r.relative_dM,
                      kernel_inclusion=r.holds, recoverable=r.recoverable))
    claims.append(Claim.holds("C abstract (ReLU nets, path-lifting: intrinsic dynamic for any "
                              "initialisation): recoverable (ker dphi ∩ ker dh = {0}; C Thm "
                              "2.17, numbering unverified)",
                              r.recoverable))
    for rr in (2, 3):
        lin = A.linear_two_layer(3, 3, rr)
        k = I.kernel_inclusion(lin.phi, lin.sample_params(s))
        table.append(dict(model=f"linear UV^T r={rr}", init="generic",
                          dim_intersection=k.dim_intersection, relative_dM=k.relative_dM,
                          kernel_inclusion=k.holds, recoverable=k.recoverable))
        claims.append(Claim.close(f"C (linear UV^T, criterion of C Sec. 2; derived count): never "
                                  f"recoverable for r={rr}, intersection dim "
                                  "r(r-1)/2", rr * (rr - 1) // 2, k.dim_intersection, atol=0))
        claims.append(Claim.holds(f"C abstract (only relaxed balanced inits give the intrinsic "
                                  f"property): r={rr}, generic init: kernel inclusion fails",
                                  not k.holds, detail=k.relative_dM))
    lin = A.linear_two_layer(3, 3, 2)
    worst = 0.0
    for lam in (0.5, -0.3, 0.0):
        U, V = I.relaxed_balanced_linear(3, 3, 2, lam, seed=s)
        k = I.kernel_inclusion(lin.phi, torch.cat([U.reshape(-1), V.reshape(-1)]))
        worst = max(worst, k.relative_dM)
        table.append(dict(model="linear UV^T r=2", init=f"relaxed balanced lam={lam}",
                          dim_intersection=k.dim_intersection, relative_dM=k.relative_dM,
                          kernel_inclusion=k.holds, recoverable=k.recoverable))
    claims.append(Claim.at_most("C abstract (relaxed balanced initialisations): with S = lam I "
                                "the kernel inclusion holds "
                                "(max relative |dM[w]|)", 1e-8, worst))
    # metric formulas vs M = dphi dphi^T
    errs = {}
    a = A.relu_two_layer(3, 2, 3, bias=True)
    th = a.sample_params(s)
    errs["relu_2layer"] = float((I.metric_relu_two_layer(a.phi(th), -a.laws(th))
                                 - I.metric(a.phi, th)).abs().max())
    e = 0.0
    for (n, m, r_, lam) in [(3, 4, 2, .7), (4, 3, 3, 1.3), (3, 3, 3, -.8), (2, 5, 2, 0.)]:
        U, V = I.relaxed_balanced_linear(n, m, r_, lam, seed=s)
        al = A.linear_two_layer(n, m, r_)
        tl = torch.cat([U.reshape(-1), V.reshape(-1)])
        e = max(e, float((I.metric_linear_relaxed_balanced(U @ V.T, lam, r_)
                          - I.metric(al.phi, tl)).abs().max()))
    errs["linear_relaxed_balanced"] = e
    e = 0.0
    for lams in ([0.0, 0.0], [0.5, -0.3], [1.0, 0.4, -0.2]):
        Us = I.relaxed_balanced_deep(3, lams, seed=s)
        ad = A.linear_deep([3] * (len(Us) + 1))
        td = torch.cat([U.reshape(-1) for U in Us])
        e = max(e, float((I.metric_deep_linear(ad.phi(td), lams)
                          - I.metric(ad.phi, td)).abs().max()))
    errs["deep_square_linear"] = e
    for k_, v in errs.items():
        claims.append(Claim.at_most(f"C (intrinsic metrics of ReLU / relaxed-balanced linear nets; "
                                    f"formulas derived here): closed form = dphi dphi^T ({k_})",
                                    1e-8, v))
    # linear neural ODE
    mu = 0.6
    Y = torch.randn(3, 3, dtype=F64, generator=torch.Generator().manual_seed(s + 5))
    ode = []
    for L in cfg.ode_layers:
        A0 = I.relaxed_balanced_neural_ode(3, L, mu, seed=s)
        res = I.neural_ode_flow(A0, Y, mu, t_max=0.3, n_t=cfg.ode_steps)
        ode.append(dict(L=L, max_rel_error=res.max_rel_error, law_drift=res.law_drift,
                        moved=float((res.Z_param[-1] - res.Z_param[0]).norm()
                                    / res.Z_param[0].norm())))
    A0 = I.relaxed_balanced_neural_ode(3, cfg.ode_layers[-1], mu, seed=s)
    A1 = A0 + 0.3 * torch.randn(A0.shape, dtype=F64, generator=torch.Generator().manual_seed(1))
    generic = I.neural_ode_flow(A1, Y, mu, t_max=0.3, n_t=cfg.ode_steps).max_rel_error
    rate = loglog_fit([o["L"] for o in ode], [o["max_rel_error"] for o in ode])["slope"]
    claims.append(Claim.at_most(
        "C abstract (linear neural ODE, relaxed balanced init: explicit intrinsic dynamics): "
        "the product follows the intrinsic flow "
        "z' = -K(z) grad f (max relative gap, finest L)", 1e-3, ode[-1]["max_rel_error"],
        note="K(z) is our continuum-limit derivation; the paper's formula was not available"))
    claims.append(Claim.at_most("C abstract (v2) (linear neural ODE = limit of deep linear "
                                "nets): the gap vanishes with depth L (log-log slope in L)", -0.9, rate))
    claims.append(Claim.at_least("C abstract (relaxed balanced inits are needed): generic "
                                 "path: gap is 10x larger",
                                 10 * ode[-1]["max_rel_error"], generic))
    fig, ax = new_figure()
    ax.loglog([o["L"] for o in ode], [o["max_rel_error"] for o in ode], "o-",
              label="relaxed balanced")
    ax.axhline(generic, color="r", ls=":", label="generic init (finest L)")
    ax.set_xticks([o["L"] for o in ode], [str(o["L"]) for o in ode])
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel("layers L (discretisation of the ODE)")
    ax.set_ylabel("max relative gap Z(t) vs intrinsic z(t)")
    ax.legend()
    return Outcome(metrics=dict(table=table, metric_errors=errs, neural_ode=ode,
                                neural_ode_generic_gap=generic, neural_ode_rate=rate),
                   figures=dict(neural_ode=fig), claims=claims)
