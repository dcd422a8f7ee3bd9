"""reproduce on a Dask cluster: a LocalCluster of 2 worker processes bound to 127.0.0.1.

Results equal the serial run bit for bit; a worker killed mid-run (os.kill of its PID) does not
prevent any claim; a client killed mid-run is resumed by the next run.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

FAKES = Path(__file__).parent / "experiments"
if str(FAKES) not in sys.path:
    sys.path.insert(0, str(FAKES))  # spawned Dask workers inherit sys.path
import _fake_experiments as F  # noqa: E402

from measureflow.cli import main  # noqa: E402
from measureflow.experiments import get  # noqa: E402
from measureflow.experiments.executors import RESOURCE, DaskExecutor  # noqa: E402
from measureflow.experiments.runner import run_experiments  # noqa: E402

reg_mod = sys.modules["measureflow.experiments.registry"]
#: Seconds before a wait is declared hung. A hang guard, not a timing claim: a subprocess that
#: imports torch and reaches a scheduler took > 60 s on a 2-core machine at load average 11.
HANG_GUARD = 600.0


@pytest.fixture(scope="module")
def cluster():
    with DaskExecutor(workers=2) as ex:
        assert all(w["resources"] == {RESOURCE: 1}
                   for w in ex.client.scheduler_info()["workers"].values())
        yield ex


def _real_small():
    """Three ported experiments of the course notes at small sizes (real sweeps via cfg.map)."""
    return [
        dataclasses.replace(get("ot.gaussian-w2"),
                            quick=dict(seed=0, dims=[2, 5], ns=[20, 40], reps=3)),
        dataclasses.replace(get("ot.sample-complexity"),
                            quick=dict(seed=0, d=3, ns=[20, 40], reps=3, eps=1.0)),
        dataclasses.replace(get("ot.sinkhorn-rate"),
                            quick=dict(seed=0, n=20, rel=0.2, rels=[1.0, 0.2], rel_small=0.05)),
    ]


def _read(out: Path, name: str, file: str):
    return (out / name / file).read_text()


def test_cluster_results_equal_the_serial_run_bit_for_bit(cluster, tmp_path):
    exps = _real_small() + [F.make(n, f, **c) for n, (f, c) in F.FAKES.items()]
    serial = run_experiments(exps, "quick", tmp_path / "serial")
    done = []
    dist = run_experiments(exps, "quick", tmp_path / "dask", executor=cluster,
                           on_done=lambda e, r: done.append(e.name))
    # on a mismatch, say why (a cluster error under load reads differently from a wrong number)
    assert [r.status for r in dist] == [r.status for r in serial], \
        [(r.name, r.status, r.error[-300:]) for r in dist + serial if r.status != "passed"]
    assert sorted(done) == sorted(e.name for e in exps)  # each result written once
    for e in exps:
        for file in ("metrics.json", "claims.json"):
            assert _read(tmp_path / "dask", e.name, file) == \
                _read(tmp_path / "serial", e.name, file), (e.name, file)
        st_s = json.loads(_read(tmp_path / "serial", e.name, "status.json"))
        st_d = json.loads(_read(tmp_path / "dask", e.name, "status.json"))
        assert [t["index"] for t in st_s["tasks"]] == list(range(len(st_s["tasks"])))
        assert sorted(t["index"] for t in st_d["tasks"]) == list(range(len(st_s["tasks"])))
        assert all(t["where"].startswith("tcp://127.0.0.1:") for t in st_d["tasks"])
        assert st_d["executor"].startswith("local cluster of 2 worker processes")
    # the sweeps really ran as tasks on both workers
    tasks = json.loads(_read(tmp_path / "dask", "ot.gaussian-w2", "status.json"))["tasks"]
    assert len(tasks) == 2 * 2 * 3
    # cost hints: tasks were submitted longest first (serially: in item order), and the
    # longest started among the first two (one per worker); the results are the same anyway
    pauses = F.FAKES["zzfake.costed"][1]["pauses"]
    longest_first = sorted(range(len(pauses)), key=lambda i: -pauses[i])
    st_d = json.loads(_read(tmp_path / "dask", "zzfake.costed", "status.json"))["tasks"]
    st_s = json.loads(_read(tmp_path / "serial", "zzfake.costed", "status.json"))["tasks"]
    st_d, st_s = st_d[:len(pauses)], st_s[:len(pauses)]  # the first map (a second follows)
    assert [t["index"] for t in sorted(st_d, key=lambda t: t["order"])] == longest_first
    assert [t["order"] for t in st_s] == list(range(len(pauses)))
    first_two = sorted(st_d, key=lambda t: t["started"])[:2]
    assert longest_first[0] in [t["index"] for t in first_two], st_d
    # 60 tasks of well under a millisecond: after the first ones, the cluster got them in
    # chunks (fewer Dask tasks), each task still seeded and timed on its own (equal files above)
    many = json.loads(_read(tmp_path / "dask", "zzfake.many", "status.json"))["tasks"]
    assert sorted(t["index"] for t in many) == list(range(62))
    assert max(t["batch"] for t in many) > 1
    assert all(t["batch"] == 1 for t in st_s)
    # bodies and tasks choose kernel paths by call size only, wherever they run
    for where in ("serial", "dask"):
        flags = json.loads(_read(tmp_path / where, "zzfake.costed", "metrics.json"))
        assert flags["independent"] == {"body": True, "tasks": [True, True]}, where


def test_client_killed_mid_run_then_rerun_resumes(cluster, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    names = ["zzfake.slow-1", "zzfake.slow-2", "zzfake.slow-3"]
    address = cluster.client.scheduler.address
    code = (f"import sys; sys.path.insert(0, {str(FAKES)!r}); import _fake_experiments as F; "
            "import measureflow.experiments as E; E._loaded = True; F.register(); "
            "from measureflow.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-c", code, "reproduce", *names, "--out", str(out),
                             "--scheduler", address], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not list(out.glob("*/status.json")):
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < HANG_GUARD
        time.sleep(0.05)
    proc.kill()  # SIGKILL: no cleanup at all
    proc.communicate()
    complete = {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/status.json")}
    assert 1 <= len(complete) < 3
    # rerun (connected to the same cluster): finished experiments are reused, the rest run
    for name, (func, cfg) in F.SLOW.items():
        monkeypatch.setitem(reg_mod._REGISTRY, name, F.make(name, func, **cfg))
    assert main(["reproduce", *names, "--out", str(out), "--scheduler", address]) == 0
    printed = capsys.readouterr().out
    for name, st in complete.items():
        assert json.loads(_read(out, name, "status.json"))["finished_at"] == st["finished_at"]
        assert "(cached)" in printed.split(name)[1].splitlines()[0]
    for name in names:
        assert json.loads(_read(out, name, "status.json"))["complete"]
    assert not list(out.rglob(".lock"))


def test_worker_killed_mid_run_every_claim_still_checked(cluster, tmp_path):
    exps = [F.make(f"zzfake.kill-{i}", F.sweep, n=16, tasks=6, pause=0.2, atol=2.0, seed=i)
            for i in range(3)]
    pids = cluster.worker_pids()
    assert len(pids) == 2
    state = {"done": 0, "killed": None}

    def on_task(name, submitted, finished, seconds):
        state["done"] += finished
        if state["done"] >= 2 and state["killed"] is None:
            state["killed"] = next(iter(pids.values()))
            os.kill(state["killed"], signal.SIGKILL)

    recs = run_experiments(exps, "quick", tmp_path, executor=cluster, on_task=on_task)
    assert state["killed"] is not None
    assert [r.status for r in recs] == ["passed"] * 3, [r.error for r in recs]
    assert all(r.n_claims == 1 and r.n_passed == 1 for r in recs)
    for e in exps:
        st = json.loads(_read(tmp_path, e.name, "status.json"))
        assert sorted(t["index"] for t in st["tasks"]) == list(range(8))
    # the killed worker was replaced by its nanny
    assert state["killed"] not in cluster.worker_pids().values()


@pytest.mark.slow
def test_scheduler_killed_mid_run_exit_4_then_rerun_resumes(tmp_path, monkeypatch, capsys):
    """A real multi-process cluster (``dask scheduler`` + ``dask worker`` processes)."""
    dask_exe = Path(sys.executable).with_name("dask")
    sf, out = tmp_path / "scheduler.json", tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(FAKES)}
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    sched = subprocess.Popen([str(dask_exe), "scheduler", "--host", "127.0.0.1", "--port", "0",
                              "--no-dashboard", "--scheduler-file", str(sf)], **quiet)
    procs = [sched]
    try:
        t0 = time.time()
        while not sf.exists():
            assert time.time() - t0 < HANG_GUARD
            time.sleep(0.1)
        procs.append(subprocess.Popen([str(dask_exe), "worker", "--scheduler-file", str(sf),
                                       "--nthreads", "1", "--nworkers", "2", "--host",
                                       "127.0.0.1", "--no-dashboard"], **quiet))
        names = ["zzfake.slow-1", "zzfake.slow-2", "zzfake.slow-3"]
        code = (f"import sys; sys.path.insert(0, {str(FAKES)!r}); "
                "import _fake_experiments as F; import measureflow.experiments as E; "
                "E._loaded = True; F.register(); from measureflow.cli import main; "
                "sys.exit(main(sys.argv[1:]))")
        client = subprocess.Popen([sys.executable, "-c", code, "reproduce", *names, "--out",
                                   str(out), "--scheduler", str(sf)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        while not list(out.glob("*/status.json")):
            assert client.poll() is None, client.communicate()
            time.sleep(0.05)
        sched.kill()
        _, err = client.communicate(timeout=2 * HANG_GUARD)
        assert client.returncode == 4, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "lost the Dask scheduler" in lines[0], err
    finally:
        for p in procs:
            p.kill()
            p.wait()
    complete = [p.parent.name for p in out.glob("*/status.json")]
    for name, (func, cfg) in F.SLOW.items():
        monkeypatch.setitem(reg_mod._REGISTRY, name, F.make(name, func, **cfg))
    capsys.readouterr()
    assert main(["reproduce", *names, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in complete:
        assert "(cached)" in printed.split(name)[1].splitlines()[0]


_FAULTS = r"""
import resource, sys
import numpy as np
from measureflow.experiments.executors import tune_worker_allocator

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        a = np.ones(1600 * 1600)  # 20 MiB, freed at the next assignment
        del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults()
untuned = faults()
applied = tune_worker_allocator()
faults()
print(untuned, faults(), applied)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc setting")
def test_worker_allocator_setting_is_undone():
    """Dask workers run with MALLOC_TRIM_THRESHOLD_ set, which pins glibc's mmap threshold at
    128 KiB: every 20 MiB temporary is then mmapped and page-faulted in anew (the cause of
    4x slower Sinkhorn tasks on workers). After ``tune_worker_allocator`` the memory is reused:
    page faults of 20 such allocations drop from at least one per 2 MiB (huge pages) per
    allocation to almost none (measured here: 8040 -> 0)."""
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, "-c", _FAULTS], env=env, capture_output=True,
                         text=True, timeout=HANG_GUARD, check=True).stdout.split()
    untuned, tuned, applied = int(out[0]), int(out[1]), out[2]
    if applied != "True":
        pytest.skip("not glibc: no mallopt")
    # each 20 MiB array faulted in anew: >= 10 faults even with 2 MiB transparent huge pages
    assert untuned >= 20 * 10
    assert tuned < untuned / 20
    env.pop("MALLOC_TRIM_THRESHOLD_")  # a plain process: nothing to undo
    out = subprocess.run([sys.executable, "-c", _FAULTS], env=env, capture_output=True,
                         text=True, timeout=HANG_GUARD, check=True).stdout.split()
    assert out[2] == "False"


def test_cluster_workers_apply_the_allocator_setting(cluster):
    from measureflow.experiments.executors import timed_task, tune_worker_allocator

    def one_task_then_state():  # on every worker: a task through timed_task, then the state
        timed_task(abs, -1, 0)
        return os.environ.get("MALLOC_TRIM_THRESHOLD_"), tune_worker_allocator()

    seen = cluster.client.run(one_task_then_state)
    assert all(v == ("65536", True) for v in seen.values()), seen


def test_hugepage_environ_keeps_the_users_tunables():
    from measureflow.experiments.executors import hugepage_environ

    base = hugepage_environ({})
    if not base:
        pytest.skip("not Linux/glibc with transparent huge pages: nothing is set")
    assert base == {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
    mine = "glibc.malloc.arena_max=2"
    assert hugepage_environ({"GLIBC_TUNABLES": mine}) == {
        "GLIBC_TUNABLES": mine + ":glibc.malloc.hugetlb=1"}
    # the user's own hugetlb choice wins: nothing added
    assert hugepage_environ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}) == {}


def test_cluster_workers_start_with_huge_page_malloc(cluster):
    """Local workers start with glibc.malloc.hugetlb=1 (set before they are spawned). (The
    client's environment is restored after the cluster starts, but a nanny that respawns a
    lost worker sets its pre-spawn variables there again, as Dask does for
    MALLOC_TRIM_THRESHOLD_: this module's fixture has lost workers by now.)"""
    from measureflow.experiments.executors import hugepage_environ

    if not hugepage_environ({}):
        pytest.skip("not Linux/glibc with transparent huge pages: nothing is set")
    seen = cluster.client.run(lambda: os.environ.get("GLIBC_TUNABLES", ""))
    assert len(seen) == 2
    assert all("glibc.malloc.hugetlb=1" in v for v in seen.values()), seen


def test_local_cluster_start_leaves_the_client_environment():
    from measureflow.experiments.executors import hugepage_environ

    if not hugepage_environ({}):
        pytest.skip("not Linux/glibc with transparent huge pages: nothing is set")
    before = os.environ.get("GLIBC_TUNABLES")
    with DaskExecutor(workers=1) as ex:
        seen = ex.client.run(lambda: os.environ.get("GLIBC_TUNABLES", ""))
        assert all("glibc.malloc.hugetlb=1" in v for v in seen.values()), seen
        assert os.environ.get("GLIBC_TUNABLES") == before


def test_cluster_workers_run_without_the_statistical_profiler(cluster):
    """The embedded cluster's workers get LOCAL_CLUSTER_CONFIG (passed on by their nannies):
    no 10 ms stack sampler competing for the GIL with the task thread."""
    import dask

    from measureflow.experiments.executors import LOCAL_CLUSTER_CONFIG

    def state(dask_worker):
        return (dask.config.get("distributed.worker.profile.enabled"),
                "profile" in dask_worker.periodic_callbacks,
                dask.config.get("distributed.admin.tick.interval"))

    want = (False, False, LOCAL_CLUSTER_CONFIG["distributed.admin.tick.interval"])
    seen = cluster.client.run(state)
    assert len(seen) == 2
    assert all(v == want for v in seen.values()), seen
    # a worker its nanny respawns after a loss gets them too (a nanny's shallow copy of the
    # configuration used to revert to Dask's defaults once the cluster had started)
    os.kill(next(iter(cluster.worker_pids().values())), signal.SIGKILL)
    deadline, seen = time.time() + HANG_GUARD, {}
    while len(seen) < 2:
        assert time.time() < deadline, "the lost worker was not respawned"
        time.sleep(0.2)
        try:
            seen = cluster.client.run(state) if len(
                cluster.client.scheduler_info()["workers"]) == 2 else {}
        except Exception:  # noqa: BLE001 - the dead worker is still listed: ask again
            seen = {}
    assert all(v == want for v in seen.values()), seen
    # the client's own configuration is left as it was (Dask's default, unless the user's
    # environment sets it)
    if "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED" not in os.environ:
        assert dask.config.get("distributed.worker.profile.enabled") is True


def test_tasks_run_under_the_process_independent_kernel_rule(cluster):
    """A task alone (no experiment body open in its process) runs under the size-only kernel
    rule, here and on a worker: the body's block alone would not show a missing task block."""
    from measureflow.experiments.executors import timed_task
    from measureflow.ot import kernels

    assert kernels._state["independent"] == 0
    assert timed_task(F._kernel_rule_independent, 0, 0)[0] is True
    assert kernels._state["independent"] == 0
    fut = cluster.client.submit(timed_task, F._kernel_rule_independent, 0, 0, pure=False)
    assert fut.result(timeout=HANG_GUARD)[0] is True
    assert cluster.client.run(lambda: __import__("measureflow.ot.kernels", fromlist=["x"])
                              ._state["independent"]) == {w: 0 for w in cluster.worker_pids()}
