"""reproduce under faults: disk full, an unwritable experiment folder, SIGINT, two runs into one
folder, stale locks, experiment names with path characters (issue 16)."""

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import measureflow.experiments  # noqa: F401
from measureflow.cli import main
from measureflow.experiments.registry import Experiment, check_name
from measureflow.experiments.runner import ExperimentLock, experiment_folder, run_experiments

reg_mod = sys.modules["measureflow.experiments.registry"]
HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import _fake_experiments as F  # noqa: E402


@pytest.fixture
def fakes(monkeypatch):
    """The fake experiments registered in this process (for the duration of a test)."""
    for name, (func, cfg) in {**F.FAKES, **F.SLOW}.items():
        monkeypatch.setitem(reg_mod._REGISTRY, name, F.make(name, func, **cfg))


#: Seconds before a wait on a subprocess is declared hung (a hang guard, not a timing claim:
#: on a loaded 2-core machine a subprocess importing torch can take a minute to start).
HANG_GUARD = 600.0


def _cli(out: Path, *args: str, table: str = "None", env: dict | None = None,
         fsize: int | None = None, wait: bool = True):
    """Run ``measureflow reproduce`` in a subprocess with the fake experiments registered."""
    # _loaded = True: the subprocess registers the fakes only (no import of the real modules)
    # SIGINT handler reset: a suite started in the background by a non-interactive shell
    # (nohup cmd &, some CI runners) passes SIGINT = SIG_IGN down, and Python keeps it ignored
    code = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
            f"import sys; sys.path.insert(0, {str(HERE)!r}); import _fake_experiments as F; "
            "import measureflow.experiments as E; E._loaded = True; "
            f"F.register({table}); from measureflow.cli import main; "
            f"sys.exit(main(['reproduce', *sys.argv[1:], '--out', {str(out)!r}]))")

    def limit():  # a file-size limit: writing past it fails with EFBIG (Python ignores SIGXFSZ)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})},
                            preexec_fn=limit if fsize is not None else None)
    if not wait:
        return proc
    stdout, stderr = proc.communicate(timeout=2 * HANG_GUARD)
    return proc.returncode, stdout, stderr


def _wait_for(path: Path, proc, timeout: float = HANG_GUARD) -> None:
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.05)


def _status(out: Path, name: str) -> dict:
    return json.loads((out / name / "status.json").read_text())


# ----------------------------------------------------------------------------- names
@pytest.mark.parametrize("bad", ["ot/../../x", "ot.a/b", "../ot.x", "ot..x", "ot.", ".ot",
                                 "OT.x", " ot.x", "ot.x ", "ot.a\\b", "ot.\x00", "noprefix",
                                 "ot." + "a" * 120, 3])
def test_names_with_path_characters_are_rejected_at_registration(bad):
    with pytest.raises(ValueError, match="pillar.short-name"):
        reg_mod.experiment(bad, paper="arXiv:0000.00000", section="s", quick={})
    with pytest.raises(ValueError):
        check_name(bad)


def test_runner_rejects_hand_built_experiment_escaping_out(tmp_path):
    exp = Experiment("ot/../../escape", "p", "s", "t", lambda cfg: None, {}, {})
    with pytest.raises(ValueError):
        run_experiments([exp], "quick", tmp_path / "out")
    assert not (tmp_path / "escape").exists()
    (tmp_path / "out").mkdir(exist_ok=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "ot.link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="outside"):
        experiment_folder(tmp_path / "out", "ot.link")
    assert check_name("sampling.diffusion-vp-2") == "sampling.diffusion-vp-2"


# ----------------------------------------------------------------------------- disk full
def test_disk_full_gives_one_line_exit_3_and_a_report_of_what_exists(fakes, tmp_path):
    out = tmp_path / "out"
    assert main(["reproduce", "zzfake.sweep-a", "--out", str(out)]) == 0
    old_html = (out / "index.html").read_text()
    # metrics.json of zzfake.figure (200 kB of junk) exceeds a 64 kB file-size limit
    table = ('{"zzfake.figure": (F.with_figure, dict(n=20, junk=200_000)), '
             '"zzfake.sweep-a": F.FAKES["zzfake.sweep-a"], '
             '"zzfake.sweep-b": F.FAKES["zzfake.sweep-b"]}')
    rc, stdout, err = _cli(out, "zzfake", table=table, fsize=64 * 1024)
    lines = err.strip().splitlines()
    assert rc == 3, (stdout, err)
    assert len(lines) == 1 and lines[0].startswith("error: cannot write "), err
    assert str(out / "zzfake.figure" / "metrics.json") in lines[0]
    assert "Traceback" not in stdout + err
    # the run stopped; what was complete is kept and the report was rebuilt from it
    assert _status(out, "zzfake.sweep-a")["complete"]
    assert not (out / "zzfake.figure" / "status.json").exists()
    html = (out / "index.html").read_text()
    assert "zzfake.sweep-a" in html and html != old_html
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".lock"))
    # a limit too small for the report itself: the stale index.html is removed, not kept
    rc, _, err = _cli(out, "zzfake", table=table, fsize=1024)
    assert rc == 3 and len(err.strip().splitlines()) == 1, err
    assert not (out / "index.html").exists()


def test_unwritable_experiment_folder_is_one_line_and_the_others_run(fakes, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "zzfake.sweep-a").write_text("a file where the experiment folder should be")
    rc = main(["reproduce", "zzfake.sweep-a", "zzfake.sweep-b", "--out", str(out)])
    stdout, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc == 3, (stdout, err)
    assert len(lines) == 1 and str(out / "zzfake.sweep-a") in lines[0], err
    assert "Traceback" not in stdout + err
    assert _status(out, "zzfake.sweep-b")["status"] == "passed"
    assert "zzfake.sweep-b" in (out / "index.html").read_text()


# ----------------------------------------------------------------------------- SIGINT
def test_sigint_exits_130_and_says_what_was_kept(fakes, tmp_path, capsys):
    out = tmp_path / "out"
    proc = _cli(out, "zzfake.slow-1", "zzfake.slow-2", "zzfake.slow-3", wait=False)
    _wait_for(out / "zzfake.slow-1" / "status.json", proc)
    proc.send_signal(signal.SIGINT)
    stdout, err = proc.communicate(timeout=HANG_GUARD)
    assert proc.returncode == 130, (stdout, err)
    assert "Traceback" not in stdout + err
    msg = err.strip().splitlines()[-1]
    assert msg.startswith("interrupted:") and "kept in" in msg and "resume" in msg, err
    assert _status(out, "zzfake.slow-1")["complete"]
    assert not (out / "zzfake.slow-3" / "status.json").exists()
    assert (out / "index.html").exists()
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".lock"))
    # rerunning resumes: the finished experiment is not redone
    finished = _status(out, "zzfake.slow-1")["finished_at"]
    assert main(["reproduce", "zzfake.slow-1", "zzfake.slow-2", "zzfake.slow-3", "--out",
                 str(out)]) == 0
    assert "(cached)" in capsys.readouterr().out.split("zzfake.slow-1")[1].splitlines()[0]
    assert _status(out, "zzfake.slow-1")["finished_at"] == finished


# ----------------------------------------------------------------------------- locks
def test_two_runs_into_one_folder_do_not_redo_each_others_work(fakes, tmp_path, monkeypatch):
    out, log = tmp_path / "out", tmp_path / "calls.log"
    names = ["zzfake.slow-1", "zzfake.slow-2", "zzfake.slow-3"]
    monkeypatch.setenv("MF_FAKE_LOG", str(log))
    other = _cli(out, *names, wait=False)  # one run in a subprocess, one here, concurrently
    _wait_for(out, other)
    assert main(["reproduce", *names, "--out", str(out)]) == 0
    result = other.communicate(timeout=2 * HANG_GUARD)
    assert other.returncode == 0, result
    ran = [line.split()[0] for line in log.read_text().splitlines()]
    assert sorted(ran) == names  # each experiment ran exactly once, in one of the two runs
    for name in names:
        assert _status(out, name)["complete"]
    assert not list(out.rglob(".lock"))


def test_lock_is_exclusive_and_a_dead_holders_lock_is_stale(tmp_path):
    path = tmp_path / ".lock"
    # another process holds the lock the way ExperimentLock does (flock + its PID in the file)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, json, os, sys, time; "
         "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); "
         "os.write(fd, json.dumps({'pid': os.getpid()}).encode()); print('held', flush=True); "
         "time.sleep(60)", str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = ExperimentLock(path)
        assert not lock.acquire()
        assert lock.holder()["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()
    # the holder died without releasing: its lock file remains, the flock is gone
    assert path.exists()
    lock = ExperimentLock(path)
    assert lock.acquire()
    assert lock.stale is not None and lock.stale["pid"] == holder.pid
    lock.release()
    assert not path.exists()
