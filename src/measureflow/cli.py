"""The ``measureflow`` command: ``list``, ``reproduce``, ``bench``.

Exit codes of ``measureflow reproduce``:

===  ==========================================================================================
0    every claim passed (skipped experiments do not count as failures)
1    a claim failed or an experiment raised (the others still ran and are reported)
2    usage error (unknown experiment or benchmark, unwritable ``--out``, bad option)
3    the output folder could not be written (disk full, file-size limit, an unwritable
     experiment folder): one line per path; what was written is kept, the report is rebuilt
     from it (or removed if it cannot be written, rather than left stale)
4    the Dask cluster could not be reached or was lost (finished experiments are kept)
130  interrupted (SIGINT / Ctrl-C): finished experiments are kept; rerun to resume
===  ==========================================================================================

User errors print one line on stderr, never a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer

from . import __version__

#: Exit codes (documented above and in docs/reproduce.md).
EXIT_OK, EXIT_CLAIMS, EXIT_USAGE, EXIT_OUTPUT, EXIT_CLUSTER, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="measureflow: optimal transport, gradient flows and mean-field analysis. "
                       "Reproduce the papers' claims, list experiments, run benchmarks.")


def _fail_usage(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(EXIT_USAGE)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"measureflow {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version_callback,
                                       is_eager=True, help="Print the version and exit.")
          ) -> None:
    """measureflow: optimal transport, gradient flows and mean-field analysis."""


@app.command("list")
def list_cmd() -> None:
    """List registered experiments: name, paper, section, title (one per line)."""
    from .experiments import import_errors, registry
    for name, exp in registry().items():
        typer.echo(f"{name}\t{exp.paper}\t{exp.section}\t{exp.title}")
    for mod, tb in import_errors().items():
        typer.echo(f"error: experiment module {mod!r} failed to import: "
                   f"{tb.strip().splitlines()[-1]}", err=True)


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".measureflow-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        _fail_usage(f"--out {out} is not writable ({exc.strerror or exc})")


def _make_executor(workers: int, scheduler: str | None, threads: int):
    """The executor asked for, or None for the in-process path (with a one-line notice)."""
    from .experiments.executors import DaskExecutor, SerialExecutor, dask_available

    if scheduler is not None:
        if workers > 1:
            _fail_usage("--workers and --scheduler are mutually exclusive (the scheduler's "
                        "cluster has its own workers)")
        if not dask_available():
            _fail_usage("--scheduler needs dask.distributed: pip install "
                        "'measureflow[distributed]'")
        return DaskExecutor(scheduler=scheduler, threads=threads)
    if workers > 1:
        if dask_available():
            return DaskExecutor(workers=workers, threads=threads)
        typer.echo(f"note: --workers {workers} ignored: dask.distributed is not installed "
                   "(pip install 'measureflow[distributed]'); running in-process", err=True)
    return SerialExecutor(threads)


@app.command()
def reproduce(
    names: list[str] | None = typer.Argument(
        None, help="Experiment names or pillar prefixes (e.g. 'ot' or 'ot.gaussian-w2'); "
                   "default: all."),
    quick: bool = typer.Option(False, "--quick", help="Quick sizes (the default; minutes)."),
    full: bool = typer.Option(False, "--full", help="The papers' full sizes (an estimated "
                                                    "duration is printed first)."),
    out: Path = typer.Option(Path("measureflow-report"), "--out", "-o",
                             help="Output folder (created; results are resumed from it)."),
    force: bool = typer.Option(False, "--force", help="Rerun experiments already complete."),
    workers: int = typer.Option(1, "--workers", "-w", min=1,
                                help="Run on a local Dask cluster of this many single-threaded "
                                     "worker processes (needs the 'distributed' extra; 1: "
                                     "in-process)."),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Use an existing Dask cluster: tcp://host:port or a "
                                  "scheduler file."),
    threads: int = typer.Option(1, "--threads", "-t", min=1,
                                help="torch/BLAS threads per experiment and per task (default "
                                     "1: results are then identical serially and on workers)."),
) -> None:
    """Run experiments, write OUT/<name>/{metrics,claims,status}.json, figures, OUT/index.html."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from .experiments import import_errors, select
    from .experiments.executors import ExecutorLost
    from .experiments.runner import OutputError, run_experiments
    from .experiments.timings import estimate_run, format_duration, recorded

    if quick and full:
        _fail_usage("--quick and --full are mutually exclusive")
    try:
        exps = select(names)
    except KeyError as exc:
        _fail_usage(f"unknown experiment {exc.args[0]!r} (see `measureflow list`)")
    _check_writable(out)
    mode = "full" if full else "quick"
    executor = _make_executor(workers, scheduler, threads)
    console = Console(stderr=False, soft_wrap=True)
    estimates = {e.name: recorded(e.name, mode, out)[0] or 0.0 for e in exps}
    records: list = []
    try:
        with executor:
            done = _complete_names(exps, mode, out) if not force else set()
            if mode == "full":
                est = estimate_run(exps, mode, out, workers=executor.workers, skip=done)
                parts = [f"{est['n']} experiment{'s' if est['n'] != 1 else ''} to run"
                         + (f" ({len(done)} already complete)" if done else "")]
                if est["known"] + est["lower_bound"]:
                    bound = "at least " if est["lower_bound"] or est["unknown"] else "about "
                    parts.append(f"estimated duration {bound}{format_duration(est['seconds'])}")
                if est["lower_bound"]:
                    parts.append(f"{est['lower_bound']} timed only at quick sizes")
                if est["unknown"]:
                    parts.append(f"{est['unknown']} never timed")
                console.print("reproduce --full: " + "; ".join(parts))
            console.print(f"running on: {executor.describe()}")
            with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                          TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                          console=console, transient=False) as progress:
                bar = progress.add_task(f"experiments ({mode})", total=len(exps))
                tasks_bar = progress.add_task("tasks", total=0, visible=False)

                def done_cb(exp, rec):
                    colour = {"passed": "green", "failed": "red", "error": "magenta",
                              "skipped": "yellow"}.get(rec.status, "magenta")
                    cached = " (cached)" if rec.cached else ""
                    progress.console.print(f"[{colour}]{rec.status:>7}[/] {exp.name}  "
                                           f"{rec.n_passed}/{rec.n_claims} claims  "
                                           f"{rec.seconds:.1f}s{cached}")
                    records.append(rec)
                    progress.advance(bar)

                def task_cb(name, submitted, finished, seconds):
                    if submitted:
                        progress.update(tasks_bar, total=progress.tasks[tasks_bar].total
                                        + submitted, visible=True)
                    if finished:
                        progress.advance(tasks_bar, finished)

                def wait_cb(exp, holder):
                    who = f"PID {holder.get('pid')} on {holder.get('host')}" if holder else \
                        "another run"
                    progress.console.print(f"waiting for {exp.name}: {who} is running it "
                                           "into the same folder")

                records = run_experiments(exps, mode, out, force=force, executor=executor,
                                          threads=threads, estimates=estimates, on_done=done_cb,
                                          on_task=task_cb, on_wait=wait_cb)
    except KeyboardInterrupt:
        kept = len(_complete_names(exps, mode, out))
        typer.echo(f"interrupted: {len(records)} experiment(s) finished in this run; {kept} of "
                   f"{len(exps)} selected are complete and kept in {out} (report rebuilt from "
                   "them); rerun the same command to resume", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except OutputError as err:
        typer.echo(f"error: {err}; stopped with {len(_complete_names(exps, mode, out))} of "
                   f"{len(exps)} selected experiments complete in {out} (rerun to resume)",
                   err=True)
        raise typer.Exit(EXIT_OUTPUT) from None
    except ExecutorLost as err:
        typer.echo(f"error: {err}; {len(_complete_names(exps, mode, out))} of {len(exps)} "
                   f"selected experiments are complete in {out}; rerun to resume", err=True)
        raise typer.Exit(EXIT_CLUSTER) from None
    table = Table(title="claims summary")
    for col in ("experiment", "status", "claims passed"):
        table.add_column(col)
    for r in records:
        table.add_row(r.name, r.status, f"{r.n_passed}/{r.n_claims}")
    console.print(table)
    n_claims = sum(r.n_claims for r in records)
    n_pass = sum(r.n_passed for r in records)
    bad = [r for r in records if r.status in ("failed", "error")]
    broken = import_errors()
    for mod, tb in broken.items():
        console.print(f"[magenta]error[/] experiment module {mod!r} failed to import: "
                      f"{tb.strip().splitlines()[-1]}")
    console.print(f"{n_pass}/{n_claims} claims passed; report: {out / 'index.html'}")
    unwritten = [r for r in records if r.write_error]
    for r in unwritten:
        typer.echo(f"error: {r.write_error}", err=True)
    if unwritten:
        raise typer.Exit(EXIT_OUTPUT)
    raise typer.Exit(EXIT_CLAIMS if (bad or broken) else EXIT_OK)


def _complete_names(exps, mode: str, out: Path) -> set[str]:
    from .experiments.runner import _load_cached, config_hash

    return {e.name for e in exps
            if _load_cached(Path(out) / e.name, config_hash(e, mode)) is not None}


@app.command("report")
def report_cmd(out: Path = typer.Argument(..., help="Output folder of `measureflow reproduce` "
                                                     "(holds one folder per experiment).")
               ) -> None:
    """Rebuild OUT/index.html from the experiment folders under OUT (nothing is rerun).

    Exit codes: 0 the report was written; 2 OUT is not a folder or holds no experiment
    results; 3 OUT/index.html could not be written.
    """
    from .report import build_report, read_run

    if not out.is_dir():
        _fail_usage(f"{out} is not a folder (give the --out folder of `measureflow reproduce`)")
    try:
        run = read_run(out)
    except OSError as exc:
        _fail_usage(f"{out} cannot be read ({exc.strerror or exc})")
    if not run.experiments and not run.pending:
        _fail_usage(f"{out} holds no experiment results (run `measureflow reproduce --out "
                    f"{out}` first)")
    try:
        path = build_report(out, run)
    except OSError as exc:
        typer.echo(f"error: cannot write {out / 'index.html'}: {exc.strerror or exc}", err=True)
        raise typer.Exit(EXIT_OUTPUT) from None
    counts = ", ".join(f"{run.count(s)} {s}" for s in ("passed", "failed", "error", "skipped",
                                                         "unreadable") if run.count(s))
    typer.echo(f"report: {path} ({len(run.experiments)} experiments: {counts or 'none'}; "
               f"{run.n_claims - run.n_claims_failed}/{run.n_claims} claims passed)")


# ----------------------------------------------------------------------------- bench
def _source_benchmarks() -> Path | None:
    """``benchmarks/`` of the source checkout this package runs from (editable install)."""
    root = Path(__file__).resolve().parents[2]
    try:
        is_checkout = 'name = "measureflow"' in (root / "pyproject.toml").read_text()
    except OSError:
        return None
    d = root / "benchmarks"
    return d if is_checkout and d.is_dir() else None


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="Benchmark script name (without .py)."),
    directory: Path | None = typer.Option(
        None, "--dir", help="Folder of benchmark scripts (default: $MEASUREFLOW_BENCHMARKS, "
                            "else the benchmarks/ of the source checkout measureflow runs "
                            "from)."),
) -> None:
    """List benchmarks, or run one; extra arguments (e.g. --quick) go to the script.

    Benchmarks are scripts of the source repository (they compare with POT, OTT-JAX, ...), not
    part of an installed wheel; scripts in the current directory are never run unless named
    with --dir.
    """
    args = list(ctx.args)
    if directory is not None:
        d: Path | None = directory
        if not directory.is_dir():
            _fail_usage(f"--dir {directory} is not a folder")
    elif os.environ.get("MEASUREFLOW_BENCHMARKS"):
        d = Path(os.environ["MEASUREFLOW_BENCHMARKS"])
        if not d.is_dir():
            _fail_usage(f"MEASUREFLOW_BENCHMARKS={d} is not a folder")
    else:
        d = _source_benchmarks()
        if d is None:
            _fail_usage("the benchmarks need a source checkout of measureflow (they are not "
                        "installed with the package): clone the repository and run "
                        "`measureflow bench --dir CHECKOUT/benchmarks`")
    scripts = sorted(p.stem for p in d.glob("*.py") if not p.stem.startswith("_"))
    if name is None:
        for s in scripts:
            typer.echo(s)
        raise typer.Exit(0)
    if name not in scripts:
        _fail_usage(f"unknown benchmark {name!r} (available: {', '.join(scripts) or 'none'})")
    rc = subprocess.call([sys.executable, str(d / f"{name}.py"), *(args or [])])
    raise typer.Exit(rc)


# ----------------------------------------------------------------------------- entry point
def _click_exceptions():
    """Typer >= 0.20 vendors click as ``typer._click``; older versions use click itself."""
    try:
        from typer._click import exceptions as ce
    except ImportError:  # pragma: no cover - older typer
        from click import exceptions as ce
    return ce


def main(argv: list[str] | None = None) -> int:
    """Console entry point: runs the app and turns usage errors into one line + exit code 2."""
    ce = _click_exceptions()
    abort = getattr(ce, "Abort", KeyboardInterrupt)
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="measureflow")
    except getattr(ce, "NoArgsIsHelpError", ()):
        return _exit(EXIT_USAGE, argv)  # help was printed
    except ce.UsageError as exc:
        typer.echo(f"error: {exc.format_message()} (see `measureflow --help`)", err=True)
        return _exit(EXIT_USAGE, argv)
    except ce.ClickException as exc:
        typer.echo(f"error: {exc.format_message()}", err=True)
        return _exit(EXIT_USAGE, argv)
    except abort:
        typer.echo("interrupted", err=True)
        return _exit(EXIT_INTERRUPTED, argv)
    return _exit(rv if isinstance(rv, int) else 0, argv)


def _exit(code: int, argv) -> int:
    if argv is None:  # real console invocation
        sys.exit(code)
    return code


if __name__ == "__main__":  # pragma: no cover
    main()
