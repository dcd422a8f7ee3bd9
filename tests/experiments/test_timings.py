"""Estimated duration of a run from recorded timings (issue 14 section 3)."""

import json

from measureflow.experiments.registry import Experiment
from measureflow.experiments.timings import estimate_run, format_duration, recorded, update_table


def _exp(name):
    return Experiment(name, "arXiv:0000.00000", "s", name, lambda cfg: None, {}, {})


def _status(out, name, mode, seconds, status="passed"):
    (out / name).mkdir(parents=True, exist_ok=True)
    (out / name / "status.json").write_text(json.dumps(
        {"name": name, "mode": mode, "seconds": seconds, "status": status}))


def test_sources_and_lpt_bound(tmp_path, monkeypatch):
    import measureflow.experiments.timings as t
    table = tmp_path / "timings.json"
    table.write_text(json.dumps({"experiments": {"zz.a": {"quick": 1.0, "full": 100.0},
                                                 "zz.b": {"quick": 2.0}}}))
    monkeypatch.setattr(t, "TABLE", table)
    monkeypatch.setattr(t, "_load_table", lambda path=table: json.loads(path.read_text())
                        ["experiments"])
    out = tmp_path / "out"
    assert recorded("zz.a", "full") == (100.0, "table")
    assert recorded("zz.b", "full") == (2.0, "quick")  # only a lower bound
    assert recorded("zz.c", "full") == (None, "")
    _status(out, "zz.a", "full", 40.0)
    assert recorded("zz.a", "full", out) == (40.0, "out")  # this machine's run wins
    _status(out, "zz.c", "full", 7.0, status="error")
    assert recorded("zz.c", "full", out) == (None, "")  # errors are not timings
    exps = [_exp(n) for n in ("zz.a", "zz.b", "zz.c")]
    est = estimate_run(exps, "full", out, workers=1)
    assert est == {"seconds": 42.0, "known": 1, "lower_bound": 1, "unknown": 1, "n": 3}
    assert estimate_run(exps, "full", out, workers=4)["seconds"] == 40.0  # the longest one
    assert estimate_run(exps, "full", out, workers=1, skip={"zz.a"})["seconds"] == 2.0
    assert format_duration(42) == "42 s" and format_duration(600) == "10 min"
    assert format_duration(4 * 3600) == "4.0 h"
    _status(out, "zz.b", "quick", 3.5)
    _status(out, "zz.d", "quick", 0.0, status="skipped")  # optional dependency missing
    assert recorded("zz.d", "quick", out) == (None, "")   # a skip is not a timing
    data = update_table(out, "test", path=table)
    assert data["experiments"]["zz.a"]["full"] == 40.0
    assert data["experiments"]["zz.b"] == {"quick": 3.5}
    assert "zz.c" not in data["experiments"] and data["conditions"] == "test"
    assert "zz.d" not in data["experiments"]


def test_shipped_table_is_valid():
    from measureflow.experiments.timings import TABLE
    data = json.loads(TABLE.read_text())
    for name, row in data["experiments"].items():
        assert "." in name and set(row) <= {"quick", "full"}
        assert all(isinstance(v, (int, float)) and v >= 0 for v in row.values())
