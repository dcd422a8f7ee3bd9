"""The examples gallery (examples/*.py) runs at fast sizes, writes its figures, and shows what
its docstring says (so the scripts cannot rot)."""

from __future__ import annotations

import importlib.util
import pathlib
import warnings

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def _load(name: str):
    path = ROOT / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"measureflow_example_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(name, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # an example must run clean
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        out = _load(name).main(fast=True, out=tmp_path)
    for fig in out["figures"]:
        assert pathlib.Path(fig).is_file() and pathlib.Path(fig).stat().st_size > 1000
    return out


def test_every_example_is_tested():
    tested = {"color_transfer", "domain_adaptation", "muon_mlp", "sinkhorn_flow",
              "conservation_laws"}
    assert {p.stem for p in EXAMPLES} == tested
    for p in EXAMPLES:   # each is runnable as a script with --fast and --out
        text = p.read_text()
        assert '"--fast"' in text and '"--out"' in text and "def main(fast" in text


def test_color_transfer(tmp_path):
    out = _run("color_transfer", tmp_path)
    # the plan's target marginal is uniform on the sampled target colors, so the recolored
    # image has their mean color: up to the sampling error of 200 pixels (sd ~0.3 / sqrt(200))
    for gap in out["mean_color_gap_after"].values():
        assert gap < 0.06 < out["mean_color_gap_before"]


def test_domain_adaptation(tmp_path):
    acc = _run("domain_adaptation", tmp_path)["accuracy"]
    assert acc["no adaptation"] < 0.8
    assert min(acc["exact OT"], acc["entropic OT"]) > acc["no adaptation"] + 0.2
    assert acc["entropic + class_reg"] >= acc["entropic OT"]


def test_muon_mlp(tmp_path):
    out = _run("muon_mlp", tmp_path)
    assert out["final_loss"]["muon"] < 0.5 * out["initial_loss"]
    assert out["final_loss"]["adamw"] < 0.5 * out["initial_loss"]


def test_sinkhorn_flow(tmp_path):
    out = _run("sinkhorn_flow", tmp_path)
    assert out["final_loss"] < 0.01 * out["initial_loss"]


def test_conservation_laws(tmp_path):
    out = _run("conservation_laws", tmp_path)
    assert out["n_laws"] == out["width"] and out["status"] == "certified"
    d = out["final_relative_drift"]
    # O(lr^2) per step, O(lr) over a fixed time: halving lr halves the drift (to first order)
    assert 1.6 < d[0.02] / d[0.01] < 2.5


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_at_full_size(path, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        _load(path.stem).main(fast=False, out=tmp_path)
