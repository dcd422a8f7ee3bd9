import json
import sys

import pytest

import measureflow.experiments  # noqa: F401
from measureflow.cli import main
from measureflow.experiments import Claim, Outcome
from measureflow.experiments.registry import Experiment

reg_mod = sys.modules["measureflow.experiments.registry"]



def _exp(name, ok=True, boom=False):
    def fn(cfg):
        if boom:
            raise RuntimeError("broken experiment")
        return Outcome(metrics={}, claims=[Claim.at_most("x <= 1", 1.0, 0.5 if ok else 2.0)])
    return Experiment(name, "arXiv:1234.5678", "Sec. 1", name, fn, {"seed": 0}, {"seed": 0})


@pytest.fixture
def fake(monkeypatch):
    for n, kw in {"yy.ok": {}, "yy.fail": {"ok": False}, "yy.boom": {"boom": True}}.items():
        monkeypatch.setitem(reg_mod._REGISTRY, n, _exp(n, **kw))


def test_list_prints_name_first_then_paper(fake, capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    row = next(l for l in lines if l.startswith("yy.ok"))
    assert row.split("\t")[:2] == ["yy.ok", "arXiv:1234.5678"]
    assert any(l.startswith("ot.gaussian-w2\t") for l in lines)


def test_reproduce_exit_codes(fake, tmp_path, capsys):
    assert main(["reproduce", "yy.ok", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "index.html").exists()
    assert main(["reproduce", "yy.fail", "--out", str(tmp_path)]) == 1
    # an experiment raising gives 1, and the others still run and are reported
    assert main(["reproduce", "yy.boom", "yy.ok", "--out", str(tmp_path / "b")]) == 1
    assert json.loads((tmp_path / "b" / "yy.ok" / "claims.json").read_text())[0]["passed"]
    out = capsys.readouterr().out
    assert "claims summary" in out and "Traceback" not in out


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "Traceback" not in err[0]
    return err[0]


def test_unknown_experiment_is_usage_error(fake, tmp_path, capsys):
    assert main(["reproduce", "no.such", "--out", str(tmp_path)]) == 2
    assert "no.such" in _one_error_line(capsys)


def test_unwritable_out_is_usage_error(fake, tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["reproduce", "yy.ok", "--out", str(f / "sub")]) == 2
    assert "--out" in _one_error_line(capsys)


def test_bad_option_is_usage_error(capsys):
    assert main(["reproduce", "--bogus"]) == 2
    assert "--bogus" in _one_error_line(capsys)


def test_bench_unknown_is_usage_error(capsys):
    assert main(["bench", "definitely-not-a-benchmark"]) == 2
    _one_error_line(capsys)


def test_bench_lists_and_forwards_options(tmp_path, monkeypatch, capsys):
    (tmp_path / "echo_args.py").write_text(
        "import sys\nopen(sys.argv[0] + '.out', 'w').write(' '.join(sys.argv[1:]))\n"
        "sys.exit(3 if '--fail' in sys.argv else 0)\n")
    monkeypatch.setenv("MEASUREFLOW_BENCHMARKS", str(tmp_path))
    assert main(["bench"]) == 0
    assert capsys.readouterr().out.split() == ["echo_args"]
    assert main(["bench", "echo_args", "--quick", "--n", "5"]) == 0
    assert (tmp_path / "echo_args.py.out").read_text() == "--quick --n 5"
    assert main(["bench", "echo_args", "--fail"]) == 3
