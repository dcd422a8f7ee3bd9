"""Where experiments and their tasks run: in this process, or on a Dask cluster.

An experiment is a *body* (the registered function) whose independent inner runs go through
``cfg.map(fn, items)`` as *tasks* (:class:`~measureflow.experiments.registry.Config`). Two
executors run them under one contract:

:class:`SerialExecutor`
    Everything in this process, experiments one after the other, tasks in order (the default;
    also what ``--workers 1`` and an install without ``dask.distributed`` use).
:class:`DaskExecutor`
    A ``dask.distributed`` cluster: a ``LocalCluster`` of single-threaded worker processes bound
    to 127.0.0.1 (``--workers N``), or an existing scheduler (``--scheduler ADDRESS`` or a
    scheduler file). Experiments are cluster tasks, several at once; inside each, ``cfg.map``
    submits the sub-tasks to the same cluster from the worker (``worker_client``: the body
    secedes from the worker's thread pool while it waits, so the slot it frees runs tasks).

Why experiment bodies run on workers, not on the client: experiments that have not been
ported to ``cfg.map`` (or whose work between maps is heavy) still run in parallel, one per
worker; and every body gets its own process, hence its own matplotlib ``pyplot`` state (not
thread-safe) and its own process-wide torch thread setting. Each worker holds one
``measureflow-experiment`` resource and every body needs it, so a seceded body keeps its worker
from starting a second body (two bodies never share a process) while its slot still runs
tasks. Tasks get a higher priority than bodies, so a freed slot runs queued tasks first.

Single writer: workers *return* a :class:`Payload` (claims, JSON-ready metrics, PNG bytes of the
figures, timings); only the client writes ``OUT`` (``runner.py``). A task that ran twice (a
lost worker's tasks are rerun by the scheduler; ``retries`` covers exceptions) is written once,
by the client, after it returned.

Determinism: every task runs ``fn(item)`` with the global generators seeded by
:func:`~measureflow.experiments.registry.task_seed` and torch/BLAS pinned to ``threads``
(default 1) threads, in this process or on any worker; the body runs with the same thread
count. Both run inside :func:`measureflow.ot.kernels.process_independent`, so each kernel call
takes the compiled or eager path by its size alone, not by what the process compiled before
(the two paths agree to rounding only). Results are therefore identical, bit for bit,
serially, on one worker or on N, in any order of the tasks.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import io
import math
import os
import socket
import statistics
import sys
import time
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..core.errors import ExperimentSkipped
from ..core.io import to_jsonable
from .registry import Claim, Experiment, Outcome, run_task

__all__ = ["Payload", "Job", "SerialExecutor", "DaskExecutor", "ExecutorLost",
           "execute_experiment", "pinned_threads", "timed_task", "timed_tasks", "dask_available",
           "tune_worker_allocator", "LOCAL_CLUSTER_CONFIG",
           "RESOURCE", "EVENT_TOPIC"]

#: Worker resource held by a running experiment body (one per worker).
RESOURCE = "measureflow-experiment"
#: Dask event topic of task progress messages (worker -> client).
EVENT_TOPIC = "measureflow-tasks"
#: Priorities: queued tasks run before queued experiment bodies.
_TASK_PRIORITY, _BODY_PRIORITY = 10, 0


class ExecutorLost(RuntimeError):
    """The cluster went away (scheduler lost or unreachable): finished results are kept."""


def dask_available() -> bool:
    """Whether ``dask.distributed`` (the ``measureflow[distributed]`` extra) can be imported."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


# ----------------------------------------------------------------------------- threads
@contextlib.contextmanager
def pinned_threads(threads: int) -> Iterator[None]:
    """Run a block with torch intra-op and BLAS/OpenMP pools limited to ``threads`` threads.

    The thread count changes the order of floating-point reductions (hence the last bits of
    results) and, on a loaded machine, oversubscribes the cores: tasks and experiment bodies
    run with an explicit count (``--threads``, default 1) instead of the process-wide default.
    The previous settings are restored on exit.
    """
    import torch

    threads = max(int(threads), 1)
    before = torch.get_num_threads()
    limiter: Any = contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
        limiter = threadpool_limits(limits=threads)
    except Exception:  # noqa: BLE001 - threadpoolctl missing or a pool it cannot drive
        pass
    with limiter:
        if before != threads:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)


# ----------------------------------------------------------------------------- allocator
#: glibc ``mallopt`` parameters (malloc.h): M_TRIM_THRESHOLD, M_MMAP_THRESHOLD.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: The largest mmap threshold glibc accepts on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX): 32 MiB.
_MMAP_THRESHOLD = 32 * 1024 * 1024
_allocator_tuned = False


def tune_worker_allocator() -> bool:
    """Undo, in this process, the malloc setting Dask's nanny gives its workers.

    Dask starts every worker with ``MALLOC_TRIM_THRESHOLD_=65536`` (config
    ``distributed.nanny.pre-spawn-environ``) so that freed memory goes back to the OS. Setting
    that variable also freezes glibc's *dynamic* mmap threshold at 128 KiB: every NumPy/torch
    temporary above 128 KiB (a 1600 x 1600 cost matrix is 20 MiB) is then a fresh ``mmap``,
    page-faulted in and unmapped on free. Measured here: one debiased Sinkhorn divergence
    between two 1600-point clouds (one thread) took 13-15 s on such a worker against 3.4 s in a
    plain process, most of it kernel time. Fixing the thresholds with ``mallopt`` (mmap above
    32 MiB, trim above 64 MiB: what glibc's dynamic rule reaches by itself) restores the
    plain-process speed (3.3-3.8 s measured on the worker). Applied once per process, on glibc
    only, when that variable is set (Dask workers, including ones started by ``dask worker``);
    returns whether it applied.
    """
    global _allocator_tuned
    if _allocator_tuned or "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return _allocator_tuned
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = (libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) == 1
              and libc.mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD) == 1)
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows): nothing to undo
        ok = False
    _allocator_tuned = ok
    return ok


def _where() -> str:
    try:
        from distributed import get_worker
        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:pid{os.getpid()}"


def timed_task(fn: Callable[[Any], Any], item: Any, seed: int, threads: int = 1) -> tuple:
    """``(fn(item), timing)``: the task seeded by ``seed``, run with ``threads`` threads.

    ``timing`` is ``{"seconds", "started", "where"}`` (wall time, start as a Unix time, and the
    process or Dask worker).
    """
    from ..ot.kernels import process_independent

    tune_worker_allocator()
    with pinned_threads(threads), process_independent():
        started, t0 = time.time(), time.perf_counter()
        result = run_task(fn, item, seed)
        return result, {"seconds": time.perf_counter() - t0, "started": started,
                        "where": _where()}


def timed_tasks(fn: Callable[[Any], Any], items: list, seeds: list, threads: int = 1) -> list:
    """``[timed_task(fn, item, seed, threads) ...]``: several short tasks sent as one Dask task.

    Each item keeps its own seed and timing, so results are those of separate tasks.
    """
    return [timed_task(fn, item, seed, threads) for item, seed in zip(items, seeds, strict=True)]


#: glibc tunable that makes malloc ask for transparent huge pages on its mmapped chunks.
_HUGETLB = "glibc.malloc.hugetlb=1"


def hugepage_environ(environ=None) -> dict:
    """``{"GLIBC_TUNABLES": ...}`` asking glibc's malloc for transparent huge pages, or ``{}``.

    Temporaries above glibc's largest mmap threshold (32 MiB: a 3200 x 3200 float64 matrix is
    80 MiB) are mmapped and page-faulted in 4 KiB at a time on every allocation. With
    ``glibc.malloc.hugetlb=1`` malloc marks such chunks ``MADV_HUGEPAGE`` (2 MiB pages) when the
    kernel's transparent huge pages are in ``madvise`` mode. Measured here, one
    ``attention.mean-field`` task at n = 3200 (one thread): 0.56-1.9 million page faults and
    2.4-3.7 s from one process to the next without it, 44 000 faults and 2.1 s with it (one
    process each; on busy Dask workers the kernel grants the huge pages only sometimes:
    1 300-196 000 faults per such task were seen, and the 2-worker speed-up of that
    experiment did not change, docs/distributed.md). glibc
    reads the variable when a process starts, so it is given to worker processes before they
    are spawned (Dask's ``distributed.nanny.pre-spawn-environ``); the user's own
    ``GLIBC_TUNABLES`` are kept (appended to). Empty off Linux/glibc, when THP is disabled, or
    when the user already chose a ``glibc.malloc.hugetlb`` value. The client's environment is
    restored once the cluster has started; a nanny respawning a lost worker sets its pre-spawn
    variables in it again (as Dask does for ``MALLOC_TRIM_THRESHOLD_``), which only affects
    processes the client starts afterwards.
    """
    import platform

    environ = os.environ if environ is None else environ
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return {}
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as fh:
            if "[never]" in fh.read():
                return {}
    except OSError:
        return {}
    old = environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" in old:
        return {}
    return {"GLIBC_TUNABLES": f"{old}:{_HUGETLB}" if old else _HUGETLB}


#: Dask settings of the embedded local cluster (``--workers N``): its workers run one
#: compute thread each, and Dask's background work shares their cores. Measured (2 Dec 2026,
#: one core, 8 attention.mean-field tasks of 3200 particles): 2.27 s per task on a default
#: worker against 1.89 s in-process (+18 %, ~690 involuntary context switches per task), 1.92 s
#: with the statistical profiler off (it samples every thread's stack every 10 ms, taking the
#: GIL), 1.84 s (42 switches) with the event-loop tick and the system monitor also slowed down.
#: The memory monitor (pause, spill, restart at the memory limits) keeps Dask's period. For
#: your own cluster (``--scheduler``), set the same keys in its Dask configuration, e.g.
#: ``DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False`` in the workers' environment.
LOCAL_CLUSTER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
}


# ----------------------------------------------------------------------------- task mappers
class _InProcessMapper:
    """``cfg.map`` executor running tasks here, in order, recording timings."""

    def __init__(self, name: str, threads: int, on_task: Callable | None):
        self.name, self.threads, self.on_task = name, threads, on_task
        self.timings: list[dict] = []

    def __call__(self, fn, items, seeds, order=None) -> list:
        # ``order`` (longest first) is ignored: one process finishes at the same time in any
        # order, and the in-process run stays the reference order of the tasks
        if self.on_task:
            self.on_task(self.name, len(items), 0, None)
        out = []
        for item, seed in zip(items, seeds, strict=True):
            result, timing = timed_task(fn, item, seed, self.threads)
            timing["index"] = len(self.timings)
            timing["order"], timing["batch"] = timing["index"], 1
            self.timings.append(timing)
            out.append(result)
            if self.on_task:
                self.on_task(self.name, 0, 1, timing["seconds"])
        return out


#: Seconds between a task's end on a worker and the start of the next task it is sent (the
#: result travels to the scheduler and the body, the next task back): measured 14 ms on a
#: 2-worker local cluster (200 tasks of 20 ms took 3.38 s instead of 2.0 s with no task queued).
_ROUND_TRIP = 0.015
#: Seconds between two counts of the cluster's worker threads during a sweep (an adaptive
#: cluster, e.g. dask-jobqueue's ``adapt``, adds workers while it runs); counted when a task
#: finishes, so new workers get tasks from the next completion on.
_RECOUNT = 5.0
#: Tasks shorter than this (median of the finished ones) may queue behind running ones.
_QUEUE_BELOW = 0.25
#: Tasks shorter than this (median) travel in chunks of about this many seconds of work.
_CHUNK_SECONDS = 0.2
#: Finished tasks whose median duration drives queueing and chunking (the most recent ones).
_RECENT = 64
#: Progress events of a sweep are sent at most this often (seconds).
_EVENT_EVERY = 0.5


def _chunk(done_seconds, left: int, slots: int) -> int:
    """How many of the next tasks of a sweep to send as one Dask task (``timed_tasks``).

    Every Dask task costs the scheduler, the body and the worker a few messages (measured: the
    client process, which hosts the scheduler of a local cluster, spent 2.9 s of CPU in its
    event loop for 380 tasks, most of them 60 ms long, on a 2-core machine where that CPU is
    taken from the workers). Once the median finished task is under ``_CHUNK_SECONDS``, tasks
    travel in chunks of about ``_CHUNK_SECONDS`` of work (at most 32), and never more than half
    of an even share of what is left per worker thread, so the end of the sweep stays
    balanced.
    """
    if not done_seconds:
        return 1
    median = statistics.median(done_seconds)
    if median >= _CHUNK_SECONDS:
        return 1
    k = min(32, math.ceil(_CHUNK_SECONDS / max(median, 1e-9)), left // max(2 * slots, 1))
    return max(k, 1)


def _ahead(slots: int, done_seconds) -> int:
    """How many tasks beyond one per worker thread a ``cfg.map`` keeps submitted.

    The limit is per sweep: experiment bodies running at once (one per worker under
    ``reproduce``) each keep their own tasks in flight, so a cluster of W threads running B
    bodies holds up to B x W tasks; longest-first holds within each sweep.

    Dask assigns a task to a worker when it is submitted, from duration estimates that are
    unknown for a new kind of task, and its work stealing rarely moves such tasks: four tasks of
    4, 2, 1, 0.5 s sent at once to two workers ran as 4 + 1 and 2 + 0.5 (5.1 s instead of the
    4.0 s of longest-first). The mapper therefore submits one task per thread and the next one
    when a task ends (list scheduling: with costs, longest processing time first). Once the
    median finished task is under ``_QUEUE_BELOW`` seconds, each thread also gets up to
    ``2 x _ROUND_TRIP / median`` queued tasks (at least 1, at most 4) so that the round trip
    between two tasks is hidden (a wrong worker choice then costs a few such short tasks). The
    median, not the mean: the first task of a worker also pays its imports and compilations.
    """
    if not done_seconds:
        return 0
    median = statistics.median(done_seconds)
    if median >= _QUEUE_BELOW:
        return 0
    return slots * min(4, max(1, math.ceil(2 * _ROUND_TRIP / max(median, 1e-9))))


def _cluster_threads(client) -> int:
    """Worker threads of the cluster (0 when the scheduler cannot tell)."""
    try:
        return int(sum(client.nthreads().values()))
    except Exception:  # noqa: BLE001
        return 0


class _DaskMapper:
    """``cfg.map`` executor used by a body running on a Dask worker: tasks go to the cluster.

    The body secedes while it waits (``worker_client``), so its worker runs tasks meanwhile.
    """

    def __init__(self, name: str, threads: int, retries: int):
        self.name, self.threads, self.retries = name, threads, retries
        self.timings: list[dict] = []
        self._tag = uuid.uuid4().hex[:8]

    def _event(self, worker, msg: dict) -> None:
        try:
            worker.log_event(EVENT_TOPIC, msg)
        except Exception:  # noqa: BLE001 - progress display only
            pass

    def __call__(self, fn, items, seeds, order=None) -> list:
        from distributed import as_completed, get_worker, worker_client

        worker = get_worker()
        start = len(self.timings)
        self.timings.extend({} for _ in items)
        results: list = [None] * len(items)
        order = list(range(len(items))) if order is None else list(order)
        if sorted(order) != list(range(len(items))):
            raise ValueError("order: expected a permutation of the task indices")
        rank = {i: r for r, i in enumerate(order)}
        todo = list(reversed(order))  # pop() gives the next task to start
        with worker_client() as client:
            slots = max(_cluster_threads(client), 1)
            asked = time.monotonic()
            # durations of the last finished tasks (a chunk's tasks count one by one): their
            # median sets queueing and chunking; recent ones, as longest-first sweeps speed up
            done_seconds: collections.deque = collections.deque(maxlen=_RECENT)
            live: dict = {}  # key -> (future, task indices) of the submitted, unfinished units
            news = {"done": 0, "seconds": 0.0, "sent": time.monotonic()}

            def submit_next() -> Any:
                if not todo:
                    return None
                k = _chunk(done_seconds, len(todo), slots)
                idx = [todo.pop() for _ in range(min(k, len(todo)))]
                key = f"mf-task-{self.name}-{start + idx[0]}-{self._tag}"
                if len(idx) == 1:
                    fut = client.submit(timed_task, fn, items[idx[0]], seeds[idx[0]],
                                        self.threads, key=key, pure=False,
                                        retries=self.retries, priority=_TASK_PRIORITY)
                else:
                    fut = client.submit(timed_tasks, fn, [items[i] for i in idx],
                                        [seeds[i] for i in idx], self.threads,
                                        key=f"{key}-x{len(idx)}", pure=False,
                                        retries=self.retries, priority=_TASK_PRIORITY)
                live[fut.key] = (fut, idx)
                return fut

            def report(flush: bool = False) -> None:
                now = time.monotonic()
                if news["done"] and (flush or now - news["sent"] >= _EVENT_EVERY):
                    self._event(worker, {"experiment": self.name, "done": news["done"],
                                         "seconds": news["seconds"]})
                    news.update(done=0, seconds=0.0, sent=now)

            self._event(worker, {"experiment": self.name, "submitted": len(items)})
            pending = as_completed([submit_next() for _ in range(min(slots, len(items)))])
            try:
                for fut in pending:
                    out = fut.result()
                    _, idx = live.pop(fut.key)
                    fut.release()
                    out = [out] if len(idx) == 1 else out
                    done_seconds.extend(timing["seconds"] for _, timing in out)
                    if time.monotonic() - asked > _RECOUNT:  # workers joined or left
                        slots = max(_cluster_threads(client), 1)
                        asked = time.monotonic()
                    while len(live) < slots + _ahead(slots, done_seconds):
                        nxt = submit_next()
                        if nxt is None:
                            break
                        pending.add(nxt)
                    for i, (result, timing) in zip(idx, out, strict=True):
                        results[i] = result
                        timing["index"] = start + i
                        timing["order"] = start + rank[i]
                        timing["batch"] = len(idx)
                        self.timings[start + i] = timing
                        news["done"] += 1
                        news["seconds"] += timing["seconds"]
                    report()
                report(flush=True)
            finally:
                for fut, _ in live.values():
                    fut.release()
        return results


# ----------------------------------------------------------------------------- one experiment
@dataclasses.dataclass
class Payload:
    """What running an experiment body returns to the writer (picklable, no open figures).

    ``status`` is ``passed`` / ``failed`` (a claim failed) / ``error`` (it raised) / ``skipped``
    (optional dependency missing); ``metrics`` is JSON-ready; ``figures`` maps file names to PNG
    bytes; ``tasks`` holds one ``{"index", "order", "seconds", "started", "where", "batch"}``
    per ``cfg.map`` task (``order``: its position in the submission order, ``started``: Unix
    time, ``batch``: how many tasks travelled in its Dask task, see ``_chunk``).
    """

    name: str
    status: str
    claims: list
    metrics: Any
    figures: dict
    error: str
    seconds: float
    tasks: list
    where: str


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _close_all_figures() -> None:
    try:
        import matplotlib.pyplot as plt
        plt.close("all")
    except Exception:  # noqa: BLE001 - matplotlib missing or broken: nothing to close
        pass


def execute_experiment(exp: Experiment, mode: str, config_hash: str, *, threads: int = 1,
                       backend: str = "serial", task_retries: int = 1,
                       on_task: Callable | None = None) -> Payload:
    """Run ``exp``'s body (seeded with ``cfg.seed``) and return its :class:`Payload`.

    Writes nothing: the caller (the single writer) stores the payload. ``backend`` is
    ``"serial"`` (tasks run here) or ``"dask"`` (called on a worker; tasks go to the cluster).
    Errors raised by the experiment become ``status="error"`` with the traceback.
    """
    from ..core.random import seed_everything
    from ..ot.kernels import process_independent

    if backend == "dask":
        mapper: Any = _DaskMapper(exp.name, threads, task_retries)
    else:
        mapper = _InProcessMapper(exp.name, threads, on_task)
    tune_worker_allocator()
    cfg = exp.config(mode).bind(exp.name, config_hash, mapper)
    error, claims, figures, metrics = "", [], {}, {}
    with pinned_threads(threads), process_independent():
        seed_everything(int(cfg.get("seed", 0)))
        t0 = time.perf_counter()
        try:
            outcome = exp.func(cfg)
            if not isinstance(outcome, Outcome):
                raise TypeError(f"experiment {exp.name} returned {type(outcome).__name__}, "
                                "expected Outcome")
            for c in outcome.claims:
                if not isinstance(c, Claim):
                    raise TypeError(f"experiment {exp.name}: claims must be Claim objects")
            claims = [c.as_dict() for c in outcome.claims]
            metrics = to_jsonable(outcome.metrics)
            for fname, fig in outcome.figures.items():
                figures[f"{fname}.png"] = _png(fig)
            status = "passed" if all(c["passed"] for c in claims) else "failed"
        except ExperimentSkipped as exc:
            status, error, claims, figures, metrics = "skipped", str(exc), [], {}, {}
        except Exception:  # noqa: BLE001 - reported, the other experiments still run
            status, error, claims, figures, metrics = "error", traceback.format_exc(), [], {}, {}
        finally:
            _close_all_figures()
        seconds = time.perf_counter() - t0
    return Payload(exp.name, status, claims, metrics, figures, error, seconds, mapper.timings,
                   _where())


# ----------------------------------------------------------------------------- executors
@dataclasses.dataclass
class Job:
    """One experiment to run: the experiment, the mode and its configuration hash."""

    exp: Experiment
    mode: str
    config_hash: str
    estimate: float = 0.0  # expected seconds (longest first on a cluster)


class SerialExecutor:
    """Run experiments one after the other in this process, tasks in order."""

    workers = 1

    def __init__(self, threads: int = 1):
        self.threads = max(int(threads), 1)

    def describe(self) -> str:
        return f"in-process ({self.threads} thread{'s' if self.threads > 1 else ''})"

    def __enter__(self) -> SerialExecutor:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def run(self, jobs: Iterable[Job], on_result: Callable[[Job, Payload], None], *,
            on_start: Callable[[Job], None] | None = None,
            on_task: Callable | None = None) -> None:
        for job in jobs:
            if on_start:
                on_start(job)
            payload = execute_experiment(job.exp, job.mode, job.config_hash,
                                         threads=self.threads, backend="serial", on_task=on_task)
            on_result(job, payload)


class DaskExecutor:
    """Run experiments (and their tasks) on a Dask cluster; the caller stays the only writer.

    Parameters
    ----------
    workers : int, optional
        Start a ``LocalCluster`` of ``workers`` single-threaded worker processes bound to
        127.0.0.1 (stopped on exit).
    scheduler : str, optional
        Use an existing cluster: a scheduler address (``tcp://host:port``) or the path of a
        scheduler file (``dask scheduler --scheduler-file``). Exactly one of ``workers`` and
        ``scheduler`` is given.
    threads : int
        torch/BLAS threads of every task and experiment body (default 1).
    retries : int
        Dask retries of a task that raised (a lost worker's tasks are rescheduled by the
        scheduler anyway, up to ``distributed.scheduler.allowed-failures`` times).
    """

    def __init__(self, *, workers: int | None = None, scheduler: str | None = None,
                 threads: int = 1, retries: int = 1, timeout: float = 30.0):
        if (workers is None) == (scheduler is None):
            raise ValueError("DaskExecutor: give exactly one of workers and scheduler")
        self.n_workers, self.scheduler = workers, scheduler
        self.threads, self.retries, self.timeout = max(int(threads), 1), int(retries), timeout
        self.cluster: Any = None
        self.client: Any = None
        self._on_event: Callable | None = None

    # -- lifecycle
    def __enter__(self) -> DaskExecutor:
        try:
            return self._start()
        except BaseException:
            self.__exit__()
            raise

    def _start(self) -> DaskExecutor:
        import logging

        from distributed import Client, LocalCluster

        # Cluster trouble (a lost worker, a lost scheduler) is reported by the runner in one
        # line; distributed's own log tracebacks would bury it.
        self._log_levels = {}
        for name in ["distributed", *[n for n in logging.root.manager.loggerDict
                                      if n.startswith("distributed.")]]:
            lg = logging.getLogger(name)
            self._log_levels[name] = lg.level
            lg.setLevel(logging.CRITICAL)
        if self.scheduler is None:
            env = {k: str(self.threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                  "OPENBLAS_NUM_THREADS")}
            # POT (the exact LP) imports every array backend it finds; measureflow hands it
            # NumPy/torch only, and importing JAX/TensorFlow/CuPy in each fresh worker costs
            # seconds. The user's own settings win.
            env.update({k: os.environ.get(k, "1") for k in (
                "POT_BACKEND_DISABLE_JAX", "POT_BACKEND_DISABLE_TENSORFLOW",
                "POT_BACKEND_DISABLE_CUPY")})
            # glibc tunables must be in a worker's environment when it starts: Dask's nanny
            # puts pre-spawn variables into this process's os.environ and spawns; undone below
            import dask

            pre = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}),
                   **hugepage_environ()}
            saved = {k: os.environ.get(k) for k in pre}
            try:
                with warnings.catch_warnings(), dask.config.set(
                        {**LOCAL_CLUSTER_CONFIG, "distributed.nanny.pre-spawn-environ": pre}):
                    warnings.simplefilter("ignore", UserWarning)  # "port 8787 in use": fine
                    # A nanny keeps a shallow copy of the configuration: its nested settings
                    # would revert with this context, and a worker it respawns after a loss
                    # would start with Dask's defaults. A deep copy is frozen for every spawn.
                    self.cluster = LocalCluster(
                        n_workers=int(self.n_workers), threads_per_worker=1, processes=True,
                        host="127.0.0.1", dashboard_address=None, resources={RESOURCE: 1},
                        silence_logs=logging.CRITICAL, env=env,
                        config=copy.deepcopy(dask.config.config))
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            self.client = Client(self.cluster, set_as_default=False)
        else:
            try:
                if os.path.isfile(self.scheduler):
                    self.client = Client(scheduler_file=self.scheduler, timeout=self.timeout,
                                         set_as_default=False)
                else:
                    self.client = Client(self.scheduler, timeout=self.timeout,
                                         set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise ExecutorLost(f"cannot reach the Dask scheduler {self.scheduler} "
                                   f"({type(exc).__name__}: {exc})") from None
            self.client.register_plugin(_ExperimentSlot(), name="measureflow-experiment-slot")
        self.client.subscribe_topic(EVENT_TOPIC, self._event)
        return self

    def __exit__(self, *exc) -> None:
        import logging

        for obj in (self.client, self.cluster):
            if obj is not None:
                with contextlib.suppress(Exception):
                    obj.close()
        self.client = self.cluster = None
        for name, level in getattr(self, "_log_levels", {}).items():
            logging.getLogger(name).setLevel(level)

    @property
    def workers(self) -> int:
        try:
            return max(len(self.client.scheduler_info()["workers"]), 1)
        except Exception:  # noqa: BLE001
            return int(self.n_workers or 1)

    def describe(self) -> str:
        where = (f"local cluster of {self.n_workers} worker processes" if self.scheduler is None
                 else f"Dask scheduler {self.scheduler}")
        return f"{where}, {self.threads} thread{'s' if self.threads > 1 else ''} per task"

    def worker_pids(self) -> dict:
        """``{worker address: pid}`` of the current workers (used by tests)."""
        return self.client.run(os.getpid)

    def _event(self, event) -> None:
        if self._on_event is not None:
            _, msg = event
            self._on_event(msg)

    # -- running
    def run(self, jobs: Iterable[Job], on_result: Callable[[Job, Payload], None], *,
            on_start: Callable[[Job], None] | None = None,
            on_task: Callable | None = None) -> None:
        from distributed import as_completed

        if on_task is not None:
            self._on_event = lambda m: on_task(m.get("experiment", ""), m.get("submitted", 0),
                                               m.get("done", 0), m.get("seconds"))
        pending = sorted(jobs, key=lambda j: -j.estimate)  # longest first
        futures: dict = {}
        done = as_completed(loop=self.client.loop)
        try:
            while pending or futures:
                # At most one body per experiment slot: a body waiting on a worker for the slot
                # would count as work queued there and hold back the tasks of running bodies.
                try:
                    while pending and len(futures) < self._slots():
                        job = pending[0]
                        fut = self.client.submit(
                            execute_experiment, job.exp, job.mode, job.config_hash,
                            threads=self.threads, backend="dask", task_retries=self.retries,
                            key=f"mf-experiment-{job.exp.name}-{uuid.uuid4().hex[:8]}",
                            pure=False, resources={RESOURCE: 1}, priority=_BODY_PRIORITY,
                            retries=self.retries)
                        pending.pop(0)
                        futures[fut] = job
                        done.add(fut)
                        if on_start:
                            on_start(job)
                    fut = next(done)
                except Exception as exc:  # noqa: BLE001 - the client lost its scheduler
                    if self._connected():
                        raise
                    raise ExecutorLost(f"lost the Dask scheduler ({type(exc).__name__})"
                                       ) from None
                job = futures.pop(fut)
                try:
                    payload = fut.result()
                except Exception as exc:  # noqa: BLE001 - a cluster failure, not the experiment
                    if not self._connected():
                        raise ExecutorLost(f"lost the Dask scheduler ({type(exc).__name__})"
                                           ) from None
                    payload = Payload(job.exp.name, "error", [], {}, {},
                                      f"the cluster could not run this experiment: "
                                      f"{type(exc).__name__}: {exc}", 0.0, [], "")
                on_result(job, payload)
                fut.release()
        finally:
            for fut in futures:
                with contextlib.suppress(Exception):
                    fut.cancel()
            self._on_event = None

    def _slots(self) -> int:
        """Experiment slots of the cluster: workers holding the experiment resource."""
        try:
            workers = self.client.scheduler_info(n_workers=-1)["workers"].values()
        except Exception:  # noqa: BLE001
            return 1
        n = sum(int(w.get("resources", {}).get(RESOURCE, 0)) for w in workers)
        return max(n, 1)

    def _connected(self) -> bool:
        try:
            return self.client.status == "running" and bool(
                self.client.scheduler_info(n_workers=0) is not None)
        except Exception:  # noqa: BLE001
            return False


try:  # a plugin class needs the base class at definition time; dask is an optional extra
    from distributed import WorkerPlugin as _WorkerPluginBase
except ImportError:  # pragma: no cover - without the extra the Dask executor is never used
    _WorkerPluginBase = object


class _ExperimentSlot(_WorkerPluginBase):  # type: ignore[misc, valid-type]
    """Give every worker of an existing cluster one ``measureflow-experiment`` resource.

    Workers started by ``dask worker`` do not declare it; without it experiment bodies could
    not be scheduled. Registered by the client, it also reaches workers that join later.
    """

    name = "measureflow-experiment-slot"

    async def setup(self, worker) -> None:
        if worker.state.total_resources.get(RESOURCE, 0) < 1:
            await worker.set_resources(**{**worker.state.total_resources, RESOURCE: 1})
