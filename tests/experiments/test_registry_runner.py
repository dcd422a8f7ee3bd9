import json
import sys

import pytest

import measureflow.experiments  # noqa: F401
from measureflow.core import io as mio
from measureflow.experiments import Claim, Outcome, registry, select
from measureflow.experiments.registry import Experiment
from measureflow.experiments.runner import config_hash, run_experiments

reg_mod = sys.modules["measureflow.experiments.registry"]

CALLS: dict = {}


def _make(name, claims_ok=True, boom=None):
    def fn(cfg):
        CALLS[name] = CALLS.get(name, 0) + 1
        if boom is not None:
            raise boom
        from measureflow.experiments.plotting import new_figure
        fig, ax = new_figure()
        ax.plot([0, 1], [0, cfg.n])
        return Outcome(metrics={"n": cfg.n, "series": [1.0, float("nan")]}, figures={"f": fig},
                       claims=[Claim.close("value is n", cfg.n, cfg.n if claims_ok else cfg.n + 1,
                                           atol=0.5)])
    return Experiment(name, "arXiv:0000.00000", "Fig. 1", name, fn, {"n": 2, "seed": 1},
                      {"n": 5, "seed": 1})


@pytest.fixture
def fake(monkeypatch):
    exps = {n: _make(n) for n in ("zz.one", "zz.two")}
    exps["zz.bad"] = _make("zz.bad", claims_ok=False)
    exps["zz.err"] = _make("zz.err", boom=RuntimeError("kaboom"))
    for n, e in exps.items():
        monkeypatch.setitem(reg_mod._REGISTRY, n, e)
    CALLS.clear()
    return exps


def test_claim_constructors_compute_passed():
    assert Claim.close("s", 1.0, 1.05, rtol=0.1).passed
    assert not Claim.close("s", 1.0, 1.2, rtol=0.1).passed
    assert not Claim.close("s", 1.0, float("nan"), atol=10).passed
    assert Claim.at_most("s", 1.0, 0.5).passed and not Claim.at_most("s", 1.0, 2).passed
    assert Claim.at_least("s", 1.0, 2).passed and not Claim.at_least("s", 1.0, 0.5).passed
    assert Claim.within("s", 0, 1, 0.5).passed and not Claim.within("s", 0, 1, 1.5).passed
    assert Claim.holds("s", True).passed and not Claim.holds("s", False).passed
    d = Claim.close("s", 1.0, 1.0, atol=0.1).as_dict()
    assert {"statement", "expected", "measured", "tolerance", "passed"} <= set(d)
    with pytest.raises(ValueError):
        Claim.close("s", 1, 1)


def test_registry_contains_foundation_experiment_and_select(fake):
    r = registry()
    assert "ot.gaussian-w2" in r and r["ot.gaussian-w2"].paper.startswith("arXiv:")
    assert [e.name for e in select(["zz"])] == ["zz.bad", "zz.err", "zz.one", "zz.two"]
    assert [e.name for e in select(["zz.one", "zz.*"])][0] == "zz.one"
    with pytest.raises(KeyError):
        select(["nope"])
    cfg = r["zz.one"].config("quick")
    assert cfg.n == 2 and cfg.mode == "quick" and cfg.seed == 1
    assert r["zz.one"].config("full").n == 5
    assert config_hash(r["zz.one"], "quick") != config_hash(r["zz.one"], "full")


def test_experiment_decorator_validates_name():
    with pytest.raises(ValueError):
        reg_mod.experiment("noprefix", paper="p", section="s", quick={})


def test_run_writes_files_and_claims_json(fake, tmp_path):
    recs = run_experiments(select(["zz"]), "quick", tmp_path)
    status = {r.name: r.status for r in recs}
    assert status == {"zz.bad": "failed", "zz.err": "error", "zz.one": "passed",
                      "zz.two": "passed"}
    claims = json.loads((tmp_path / "zz.one" / "claims.json").read_text())
    assert isinstance(claims, list) and claims[0]["passed"] is True
    assert set(claims[0]) >= {"statement", "expected", "measured", "tolerance", "passed"}
    metrics = json.loads((tmp_path / "zz.one" / "metrics.json").read_text())
    assert metrics["series"] == [1.0, "nan"]  # valid JSON, no bare NaN
    assert (tmp_path / "zz.one" / "f.png").read_bytes()[:4] == b"\x89PNG"
    st = json.loads((tmp_path / "zz.err" / "status.json").read_text())
    assert "kaboom" in st["error"] and st["complete"] is False
    html = (tmp_path / "index.html").read_text()
    assert "zz.bad" in html and "FAIL" in html and "data:image/png;base64" in html
    assert "torch" in html  # software versions


def test_resume_skips_finished_and_reruns_errors(fake, tmp_path):
    run_experiments(select(["zz"]), "quick", tmp_path)
    assert CALLS == {"zz.one": 1, "zz.two": 1, "zz.bad": 1, "zz.err": 1}
    recs = run_experiments(select(["zz"]), "quick", tmp_path)
    assert CALLS == {"zz.one": 1, "zz.two": 1, "zz.bad": 1, "zz.err": 2}
    assert {r.name for r in recs if r.cached} == {"zz.one", "zz.two", "zz.bad"}
    run_experiments(select(["zz.one"]), "full", tmp_path)  # config changed -> rerun
    assert CALLS["zz.one"] == 2
    run_experiments(select(["zz.one"]), "full", tmp_path, force=True)
    assert CALLS["zz.one"] == 3


def test_interrupted_run_resumes_without_half_written_files(fake, monkeypatch, tmp_path):
    # interrupt while zz.two is being written: its status.json write is killed mid-way
    real = mio.atomic_write_bytes
    state = {"armed": True}

    def flaky(path, data):
        if state["armed"] and path.parent.name == "zz.two" and path.name == "status.json":
            state["armed"] = False
            raise KeyboardInterrupt
        return real(path, data)

    import measureflow.experiments.runner as runner
    monkeypatch.setattr(runner, "atomic_write_bytes", flaky)
    monkeypatch.setattr(mio, "atomic_write_bytes", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_experiments(select(["zz.one", "zz.two"]), "quick", tmp_path)
    assert not list(tmp_path.rglob("*.tmp"))
    assert not (tmp_path / "zz.two" / "status.json").exists()
    monkeypatch.setattr(runner, "atomic_write_bytes", real)
    monkeypatch.setattr(mio, "atomic_write_bytes", real)
    recs = run_experiments(select(["zz.one", "zz.two"]), "quick", tmp_path)
    assert CALLS == {"zz.one": 1, "zz.two": 2}
    assert [r.cached for r in recs] == [True, False]


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    mio.atomic_write_text(target, "old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(mio.os, "replace", boom)
    with pytest.raises(OSError):
        mio.atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def _square_plus_draw(x):
    import numpy as np
    return x * x + float(np.random.standard_normal())


def test_map_cost_changes_only_the_start_order():
    from measureflow import InputError
    from measureflow.experiments.registry import Config

    items = [3, 1, 4, 1, 5]
    plain = Config(seed=0).bind("zz.map", "h").map(_square_plus_draw, items)
    seen = []

    def executor(fn, its, seeds, order=None):
        seen.append(order)
        return [fn(it) for it in its]  # (unseeded: only the order argument is checked here)

    costed = Config(seed=0).bind("zz.map", "h").map(_square_plus_draw, items,
                                                    cost=lambda x: x)
    assert costed == plain  # the default in-process map: same seeds and values

    def old_executor(fn, its, seeds):  # written before cost hints: still served without them
        return [fn(it) for it in its]

    assert len(Config(seed=0).bind("zz.map", "h", old_executor).map(_square_plus_draw,
                                                                     items)) == len(items)
    Config(seed=0).bind("zz.map", "h", executor).map(_square_plus_draw, items, cost=items)
    Config(seed=0).bind("zz.map", "h", executor).map(_square_plus_draw, items)
    assert seen == [[4, 2, 0, 1, 3], None]  # decreasing cost, ties in item order; no hints
    for bad in ([1, 2], [1, 2, 3, 4, float("nan")], [1, 2, 3, 4, -1], "abcde",
                lambda x: "big"):
        with pytest.raises(InputError, match="cost"):
            Config(seed=0).bind("zz.map", "h").map(_square_plus_draw, items, cost=bad)
