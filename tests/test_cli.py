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


# ----------------------------------------------------------------------------- issue 13/15/16
def test_version_from_one_place(capsys):
    import importlib.metadata

    import measureflow
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"measureflow {measureflow.__version__}"
    assert importlib.metadata.version("measureflow") == measureflow.__version__


def test_quick_and_full_are_mutually_exclusive(fake, tmp_path, capsys):
    assert main(["reproduce", "yy.ok", "--quick", "--full", "--out", str(tmp_path)]) == 2
    assert "--quick and --full" in _one_error_line(capsys)
    assert not (tmp_path / "yy.ok").exists()


def test_bench_needs_a_source_checkout_and_never_runs_cwd_scripts(tmp_path, monkeypatch,
                                                                  capsys):
    import measureflow.cli as cli
    monkeypatch.setattr(cli, "_source_benchmarks", lambda: None)  # as from an installed wheel
    monkeypatch.delenv("MEASUREFLOW_BENCHMARKS", raising=False)
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "evil.py").write_text("open(__file__ + '.ran', 'w').write('x')\n")
    monkeypatch.chdir(tmp_path)
    assert main(["bench"]) == 2
    assert "source checkout" in _one_error_line(capsys)
    assert main(["bench", "evil"]) == 2
    capsys.readouterr()
    assert not (bench / "evil.py.ran").exists()
    assert main(["bench", "--dir", str(bench)]) == 0  # named by the user: fine
    assert capsys.readouterr().out.split() == ["evil"]
    assert main(["bench", "--help"]) == 0


def test_executor_options(fake, tmp_path, monkeypatch, capsys):
    import measureflow.experiments.executors as ex
    monkeypatch.setattr(ex, "dask_available", lambda: False)
    # without the extra, --workers N runs in-process with a one-line note
    assert main(["reproduce", "yy.ok", "--workers", "2", "--threads", "2", "--out",
                 str(tmp_path)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("note: --workers 2 ignored")
    st = json.loads((tmp_path / "yy.ok" / "status.json").read_text())
    assert st["threads"] == 2 and st["executor"].startswith("in-process")
    assert main(["reproduce", "yy.ok", "--scheduler", "tcp://127.0.0.1:1", "--out",
                 str(tmp_path)]) == 2
    assert "measureflow[distributed]" in _one_error_line(capsys)
    monkeypatch.setattr(ex, "dask_available", lambda: True)
    assert main(["reproduce", "yy.ok", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1",
                 "--out", str(tmp_path)]) == 2
    assert "mutually exclusive" in _one_error_line(capsys)
    assert main(["reproduce", "yy.ok", "--workers", "0", "--out", str(tmp_path)]) == 2
    _one_error_line(capsys)


def test_unreachable_scheduler_is_one_line_exit_4(fake, tmp_path, capsys):
    pytest.importorskip("distributed")
    import socket
    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    import measureflow.experiments.executors as ex
    real = ex.DaskExecutor.__init__

    def quick_timeout(self, **kw):
        real(self, **{**kw, "timeout": 2.0})
    import unittest.mock
    with unittest.mock.patch.object(ex.DaskExecutor, "__init__", quick_timeout):
        rc = main(["reproduce", "yy.ok", "--scheduler", f"tcp://127.0.0.1:{port}", "--out",
                   str(tmp_path)])
    assert rc == 4
    line = _one_error_line(capsys)
    assert f"127.0.0.1:{port}" in line and "rerun" in line


def test_full_run_prints_an_estimated_duration_first(fake, tmp_path, capsys):
    assert main(["reproduce", "yy.ok", "yy.fail", "--out", str(tmp_path)]) == 1
    capsys.readouterr()
    assert main(["reproduce", "yy.ok", "yy.fail", "--full", "--out", str(tmp_path)]) == 1
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("reproduce --full: 2 experiments to run")
    assert "estimated duration at least" in first and "2 timed only at quick sizes" in first
