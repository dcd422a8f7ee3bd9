"""Run experiments into an output folder: atomically, resumably, with a single writer.

Layout written for each experiment ``NAME`` (design.md)::

    OUT/NAME/config.json    the configuration run (and its hash)
    OUT/NAME/metrics.json   metrics returned by the experiment
    OUT/NAME/claims.json    JSON list of {statement, expected, measured, tolerance, passed, ...}
    OUT/NAME/*.png          figures
    OUT/NAME/status.json    written LAST: status, timing (also per task), seed, hash, figures
    OUT/NAME/.lock          held while a run works on NAME (removed when it is done)

Every file is written to a temporary name in the same folder and renamed (atomic on POSIX), so
an interrupted run never leaves a half-written file under its final name. ``status.json`` marks
completion: an experiment whose ``status.json`` says ``complete`` with the same config hash is
skipped on the next run unless ``force=True``.

The process calling :func:`run_experiments` is the only writer: executors (serial, or a Dask
cluster, see :mod:`~measureflow.experiments.executors`) return results and this module writes
them. Two runs into one folder do not redo each other's work: a run takes the experiment's lock
(``flock`` on ``NAME/.lock``; released by the kernel if its process dies, so a lock left by a
dead PID is stale and is taken over) and a second run waits for it, then reuses the result.

Failures to write (disk full, a file-size limit, an unwritable folder) raise or record an
:class:`OutputError` naming the path; the report is rebuilt from what exists.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..core.io import atomic_write_bytes, atomic_write_text, to_jsonable
from .executors import Job, Payload, SerialExecutor
from .registry import Experiment, check_name

__all__ = ["RunRecord", "run_experiments", "run_one", "config_hash", "experiment_folder",
           "OutputError", "ExperimentLock", "rebuild_report", "atomic_write_text",
           "atomic_write_bytes", "to_jsonable"]

#: errno values that concern the whole output folder (stop the run): no space, quota, file
#: size limit, read-only file system, I/O error.
_FATAL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EROFS, errno.EIO,
                 getattr(errno, "EDQUOT", errno.ENOSPC)}


class OutputError(Exception):
    """A file of the output folder could not be written; ``path`` names it.

    ``fatal`` is True when the error concerns the whole folder (disk full, file-size limit,
    read-only file system): the run stops. Otherwise (permissions of one experiment folder)
    that experiment is recorded as not written and the others still run.
    """

    def __init__(self, path: Path | str, exc: OSError, note: str = ""):
        self.path = Path(path)
        self.errno = exc.errno
        self.reason = exc.strerror or str(exc)
        self.note = note
        super().__init__(f"cannot write {self.path}: {self.reason}{note}")

    @property
    def fatal(self) -> bool:
        return self.errno in _FATAL_ERRNOS


def _write_bytes(path: Path, data: bytes) -> None:
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise OutputError(path, exc) from None


def _write_json(path: Path, obj: Any) -> None:
    _write_bytes(path, (json.dumps(to_jsonable(obj), indent=2, sort_keys=False) + "\n")
                 .encode("utf-8"))


def config_hash(exp: Experiment, mode: str) -> str:
    cfg = exp.config(mode)
    blob = json.dumps({"name": exp.name, "config": to_jsonable(dict(cfg))}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def experiment_folder(out: Path, name: str) -> Path:
    """``out / name``, after checking that ``name`` is a valid experiment name that stays
    inside ``out`` (a symlink planted under ``out`` cannot redirect the writes)."""
    check_name(name)
    out = Path(out)
    folder = out / name
    if folder.is_symlink() or folder.resolve().parent != out.resolve():
        raise ValueError(f"experiment folder {folder} leads outside the output folder {out}")
    return folder


@dataclasses.dataclass
class RunRecord:
    """Summary of one experiment in a run: ``status`` is one of ``passed``, ``failed`` (a claim
    failed), ``error`` (the experiment raised), ``skipped`` (optional dependency missing).
    ``write_error`` is set when its files could not be written (the path and the reason)."""

    name: str
    status: str
    claims: list
    seconds: float
    cached: bool = False
    error: str = ""
    write_error: str = ""

    @property
    def n_claims(self) -> int:
        return len(self.claims)

    @property
    def n_passed(self) -> int:
        return sum(bool(c.get("passed")) for c in self.claims)


def _load_cached(folder: Path, h: str) -> RunRecord | None:
    try:
        st = json.loads((folder / "status.json").read_text())
        if st.get("complete") and st.get("config_hash") == h:
            claims = json.loads((folder / "claims.json").read_text())
            return RunRecord(st["name"], st["status"], claims, st.get("seconds", 0.0), cached=True,
                             error=st.get("error", ""))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return None


# ----------------------------------------------------------------------------- locks
class ExperimentLock:
    """An exclusive, non-blocking lock on ``NAME/.lock`` (``fcntl.flock``).

    The kernel drops an ``flock`` when its process dies, so a lock file left behind by a killed
    run is *stale*: it is taken over, and :attr:`stale` holds what the dead holder wrote (its
    PID, host and start time). The file records the holder, for messages to a waiting run.
    On systems without ``fcntl`` locking is skipped.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.fd: int | None = None
        self.stale: dict | None = None

    def holder(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(self) -> bool:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return True
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise OutputError(self.path, exc) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    return False
                raise OutputError(self.path, exc) from None
            try:  # the file may have been unlinked by its previous holder meanwhile
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            break
        previous = self.holder()
        if previous.get("pid") and previous.get("pid") != os.getpid():
            self.stale = previous
        try:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                     "started": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode())
        except OSError:  # a full disk must not prevent locking; the holder is then unknown
            pass
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink()
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


# ----------------------------------------------------------------------------- writing
def _prepare(folder: Path, exp: Experiment, mode: str, h: str) -> None:
    """Before running: drop a completion marker of another config, record the config."""
    try:
        (folder / "status.json").unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise OutputError(folder / "status.json", exc) from None
    _write_json(folder / "config.json", {"name": exp.name, "mode": mode, "config_hash": h,
                                         "config": dict(exp.config(mode))})


def _store(folder: Path, job: Job, p: Payload, executor: str, threads: int) -> RunRecord:
    """Write a payload (figures, metrics, claims, then status.json last)."""
    exp = job.exp
    for fname, data in p.figures.items():
        _write_bytes(folder / fname, data)
    _write_json(folder / "metrics.json", p.metrics)
    _write_json(folder / "claims.json", p.claims)
    _write_json(folder / "status.json", {
        "name": exp.name, "title": exp.title, "paper": exp.paper, "section": exp.section,
        "mode": job.mode, "seed": exp.config(job.mode).get("seed", 0),
        "config_hash": job.config_hash, "status": p.status, "seconds": p.seconds,
        "figures": list(p.figures), "error": p.error,
        # errors are not cached as complete: they are retried on the next run
        "complete": p.status != "error", "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "executor": executor, "threads": threads, "where": p.where,
        "tasks": [{k: t.get(k) for k in ("index", "order", "seconds", "started", "where",
                                         "batch")}
                  for t in p.tasks],
    })
    return RunRecord(exp.name, p.status, p.claims, p.seconds, error=p.error)


def rebuild_report(out: Path) -> OutputError | None:
    """Rebuild ``out/index.html`` from what exists; return None, or the error if it cannot be
    written (then a previous ``index.html`` is removed rather than left stale)."""
    from ..report import build_report

    try:
        build_report(Path(out))
        return None
    except OSError as exc:
        path = Path(out) / "index.html"
        try:
            path.unlink()
            note = " (the previous index.html was removed: it would be stale)"
        except OSError:
            note = ""
        return OutputError(path, exc, note)


# ----------------------------------------------------------------------------- the run
def run_experiments(experiments: Iterable[Experiment], mode: str, out: Path, *,
                    force: bool = False, executor: Any = None, threads: int = 1,
                    estimates: dict | None = None,
                    on_start: Callable[[Experiment], None] | None = None,
                    on_done: Callable[[Experiment, RunRecord], None] | None = None,
                    on_task: Callable | None = None,
                    on_wait: Callable[[Experiment, dict], None] | None = None,
                    poll: float = 0.5) -> list[RunRecord]:
    """Run (or resume) ``experiments`` into ``out`` and rebuild ``out/index.html`` after each.

    Parameters
    ----------
    executor
        A :class:`~measureflow.experiments.executors.SerialExecutor` (default, with
        ``threads``) or an entered :class:`~measureflow.experiments.executors.DaskExecutor`.
    estimates
        Expected seconds per experiment name (a cluster starts the longest first).
    on_start, on_done, on_task, on_wait
        Progress callbacks: experiment started (or submitted), finished (with its record),
        task progress ``(experiment, n_submitted, n_done, seconds)``, and waiting for an
        experiment locked by another run ``(experiment, holder)``.

    Returns the records in the order of ``experiments``. Raises :class:`OutputError` when the
    output folder cannot be written any more (after rebuilding the report if possible), and
    lets ``KeyboardInterrupt`` through (finished experiments are kept; locks are released).
    """
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(out, exc) from None
    executor = executor if executor is not None else SerialExecutor(threads)
    threads = getattr(executor, "threads", threads)
    experiments = list(experiments)
    by_name = {e.name: e for e in experiments}
    folders = {e.name: experiment_folder(out, e.name) for e in experiments}
    records: dict[str, RunRecord] = {}
    locks: dict[str, ExperimentLock] = {}
    described = executor.describe() if hasattr(executor, "describe") else type(executor).__name__

    def finish(exp: Experiment, rec: RunRecord) -> None:
        records[exp.name] = rec
        if on_done:
            on_done(exp, rec)

    def write_failed(exp: Experiment, err: OutputError) -> None:
        finish(exp, RunRecord(exp.name, "error", [], 0.0, error=str(err), write_error=str(err)))
        if err.fatal:
            raise err

    def claim(exp: Experiment) -> Job | None:
        """Lock and prepare ``exp``; None if finished (cached, or unwritable), else its job."""
        folder = folders[exp.name]
        h = config_hash(exp, mode)
        try:
            folder.mkdir(exist_ok=True)
        except OSError as exc:
            write_failed(exp, OutputError(folder, exc))
            return None
        lock = ExperimentLock(folder / ".lock")
        try:
            if not lock.acquire():
                raise BlockingIOError
        except OutputError as err:
            write_failed(exp, err)
            return None
        cached = None if force else _load_cached(folder, h)
        if cached is not None:
            lock.release()
            finish(exp, cached)
            return None
        locks[exp.name] = lock
        try:
            _prepare(folder, exp, mode, h)
        except OutputError as err:
            locks.pop(exp.name).release()
            write_failed(exp, err)
            return None
        return Job(exp, mode, h, (estimates or {}).get(exp.name, 0.0))

    def on_result(job: Job, payload: Payload) -> None:
        exp = job.exp
        try:
            rec = _store(folders[exp.name], job, payload, described, threads)
        except OutputError as err:
            write_failed(exp, err)
            return
        finally:
            lock = locks.pop(exp.name, None)
            if lock is not None:
                lock.release()
        finish(exp, rec)
        problem = rebuild_report(out)
        if problem is not None:
            raise problem

    def start(job: Job) -> None:
        if on_start:
            on_start(job.exp)

    try:
        jobs, waiting = [], []
        for exp in experiments:
            try:
                job = claim(exp)
            except BlockingIOError:
                waiting.append(exp)
                continue
            if job is not None:
                jobs.append(job)
        if not jobs and not waiting:
            problem = rebuild_report(out)
            if problem is not None:
                raise problem
        executor.run(jobs, on_result, on_start=start, on_task=on_task)
        # experiments another run was working on: wait for it, then reuse (or redo) its result
        told: set[str] = set()
        while waiting:
            ready = []
            for exp in waiting:
                try:
                    job = claim(exp)
                except BlockingIOError:
                    if on_wait and exp.name not in told:
                        told.add(exp.name)
                        on_wait(exp, ExperimentLock(folders[exp.name] / ".lock").holder())
                    continue
                ready.append(exp)
                if job is not None:
                    executor.run([job], on_result, on_start=start, on_task=on_task)
            waiting = [e for e in waiting if e not in ready]
            if waiting:
                time.sleep(poll)
    except BaseException:
        for lock in locks.values():
            lock.release()
        locks.clear()
        rebuild_report(out)
        raise
    return [records[n] for n in by_name if n in records]


def run_one(exp: Experiment, mode: str, out: Path, *, force: bool = False) -> RunRecord:
    """Run a single experiment in this process (see :func:`run_experiments`)."""
    return run_experiments([exp], mode, out, force=force)[0]
