"""Wall time of ``measureflow reproduce`` serially, on 1 and 2 local Dask workers, and on a
2-worker cluster started from the command line (``dask scheduler`` + ``dask worker``).

Measured configurations (each a fresh output folder, so nothing is cached):

* ``serial``      ``reproduce --workers 1`` (in-process, one thread per task)
* ``local-1``     ``reproduce --workers 1``... through a 1-worker ``LocalCluster`` (``--workers``
                  cannot ask for that: the script runs the Dask executor directly)
* ``local-2``     ``reproduce --workers 2`` (``LocalCluster`` of 2 single-threaded processes)
* ``cli-2``       ``reproduce --scheduler FILE`` on a scheduler and 2 workers started as separate
                  ``dask scheduler`` / ``dask worker --nthreads 1`` processes on 127.0.0.1,
                  stopped when done

for ``reproduce --quick`` over every experiment (or ``--names``) and for ``--full`` on the
sweep-heavy experiments (``--full-names``). The speed-up is serial time / time. Every
scheduler and worker binds to 127.0.0.1. Times include starting the cluster (a few seconds),
which is what a user waits for. On a loaded machine the numbers mean little: the lead runs the
final ones on an idle one. Repeats are interleaved and the best of k is kept.

    python benchmarks/reproduce_scaling.py                 # quick (all) + full (default list)
    python benchmarks/reproduce_scaling.py --names ot --skip-full --repeat 1
    python benchmarks/reproduce_scaling.py --skip-quick --each --configs serial local-2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Sweep-heavy experiments whose full run is measured by default (their inner runs are tasks;
#: each takes 1-4 min serially on a 2-core machine, ot.gaussian-w2's full run an hour).
FULL_DEFAULT = ["attention.mean-field", "sampling.score-optimization", "sampling.error-vs-sigma",
                "ot.meanfield-two-layer", "ot.sample-complexity"]

_CLI = "import sys; from measureflow.cli import main; sys.exit(main(sys.argv[1:]))"
_LOCAL1 = """
import sys
from pathlib import Path
from measureflow.experiments import select
from measureflow.experiments.executors import DaskExecutor
from measureflow.experiments.runner import run_experiments
mode, out, names = sys.argv[1], Path(sys.argv[2]), sys.argv[3:] or None
with DaskExecutor(workers=1) as ex:
    run_experiments(select(names), mode, out, executor=ex)
"""


def _dask_cmd(kind: str) -> list[str]:
    exe = Path(sys.executable).with_name("dask")
    if exe.exists():
        return [str(exe), kind]
    return [sys.executable, "-m", f"distributed.cli.dask_{kind}"]


class CommandLineCluster:
    """A scheduler and ``n`` single-threaded workers as separate processes on 127.0.0.1."""

    def __init__(self, n: int, folder: Path):
        self.n, self.file = n, folder / "scheduler.json"
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> CommandLineCluster:
        # the settings --workers gives its local cluster (executors.LOCAL_CLUSTER_CONFIG), as
        # a user gives them to processes of their own: DASK_* environment variables
        from measureflow.experiments.executors import LOCAL_CLUSTER_CONFIG

        env = {**os.environ, **{"DASK_" + k.upper().replace(".", "__").replace("-", "_"): str(v)
                                for k, v in LOCAL_CLUSTER_CONFIG.items()}}
        quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        self.procs.append(subprocess.Popen(
            [*_dask_cmd("scheduler"), "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(self.file)], **quiet))
        t0 = time.time()
        while not self.file.exists():
            if time.time() - t0 > 60:
                raise RuntimeError("dask scheduler did not start")
            time.sleep(0.1)
        for _ in range(self.n):
            self.procs.append(subprocess.Popen(
                [*_dask_cmd("worker"), "--scheduler-file", str(self.file), "--nthreads", "1",
                 "--host", "127.0.0.1", "--no-dashboard", "--memory-limit", "0"], **quiet))
        from distributed import Client
        with Client(scheduler_file=str(self.file), timeout=60) as c:
            c.wait_for_workers(self.n, timeout=120)
        return self

    def __exit__(self, *exc) -> None:
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def _run(args: list[str], code: str = _CLI) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode not in (0, 1):  # 1: a claim failed, still a complete run
        raise RuntimeError(f"{args}: exit {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return seconds


def _task_seconds(out: Path) -> float:
    total = 0.0
    for st in out.glob("*/status.json"):
        total += float(json.loads(st.read_text()).get("seconds", 0.0))
    return total


def measure(mode: str, names: list[str], repeat: int, root: Path, configs: list[str],
            keep: Path | None = None) -> dict:
    flag = f"--{mode}"
    best: dict[str, float] = {}
    work = 0.0
    for r in range(repeat):
        for cfg in configs:  # interleaved
            out = root / f"{mode}-{cfg}-{r}"
            shutil.rmtree(out, ignore_errors=True)
            if cfg == "serial":
                s = _run(["reproduce", *names, flag, "--out", str(out), "--workers", "1"])
                work = max(work, _task_seconds(out))
            elif cfg == "local-1":
                s = _run([mode, str(out), *names], code=_LOCAL1)
            elif cfg == "local-2":
                s = _run(["reproduce", *names, flag, "--out", str(out), "--workers", "2"])
            else:
                with CommandLineCluster(2, root) as cl:
                    s = _run(["reproduce", *names, flag, "--out", str(out), "--scheduler",
                              str(cl.file)])
            best[cfg] = min(best.get(cfg, float("inf")), s)
            print(f"  {mode} {cfg} (repeat {r}): {s:.1f} s", flush=True)
            if keep is not None and cfg == "serial" and r == 0:  # for the timings table
                shutil.copytree(out, keep / mode, dirs_exist_ok=True)
            shutil.rmtree(out, ignore_errors=True)
    return {"mode": mode, "names": names or ["(all)"], "seconds": best,
            "speedup": {k: best["serial"] / v for k, v in best.items()} if "serial" in best
            else {}, "experiment_seconds_serial": work}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--names", nargs="*", default=[], help="experiments for the quick run "
                                                          "(default: all)")
    p.add_argument("--full-names", nargs="*", default=FULL_DEFAULT)
    p.add_argument("--each", action="store_true",
                   help="measure every --full-names experiment on its own (one row each) "
                        "instead of all of them in one run")
    p.add_argument("--skip-quick", action="store_true")
    p.add_argument("--skip-full", action="store_true")
    p.add_argument("--configs", nargs="*", default=["serial", "local-1", "local-2", "cli-2"])
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--keep", type=Path, help="keep the first serial output of each mode in "
                   "KEEP/quick and KEEP/full (input of python -m measureflow.experiments.timings)")
    args = p.parse_args(argv)
    # Every configuration runs with huge-page malloc (what --workers gives its workers, see
    # executors.hugepage_environ), the serial one included: the speed-ups are then scaling,
    # not the page-fault difference between a plain process and a worker.
    from measureflow.experiments.executors import hugepage_environ

    os.environ.update(hugepage_environ())
    env_threads = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    rows = []
    with tempfile.TemporaryDirectory(prefix="mf-scaling-") as tmp:
        root = Path(tmp)
        if not args.skip_quick:
            rows.append(measure("quick", args.names, args.repeat, root, args.configs,
                                args.keep))
        if not args.skip_full:
            groups = [[n] for n in args.full_names] if args.each else [args.full_names]
            for names in groups:
                rows.append(measure("full", names, args.repeat, root, args.configs,
                                    args.keep))
    print(f"reproduce scaling (best of {args.repeat}, cpu count {os.cpu_count()}, "
          f"env {env_threads})")
    for row in rows:
        print(f"\n{row['mode']}: {' '.join(row['names'])} (sum of experiment times, serial: "
              f"{row['experiment_seconds_serial']:.1f} s)")
        for cfg, s in row["seconds"].items():
            sp = row["speedup"].get(cfg)
            print(f"  {cfg:>8}: {s:8.1f} s" + (f"   speed-up x{sp:.2f}" if sp else ""))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
