"""The ``measureflow`` command: ``list``, ``reproduce``, ``bench``.

Exit codes: 0 all claims passed (skipped experiments do not count as failures), 1 a claim
failed or an experiment raised (the others still ran and are reported), 2 usage error
(unknown experiment or benchmark, unwritable ``--out``, bad option). User errors print one
line on stderr, never a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="measureflow: optimal transport, gradient flows and mean-field analysis. "
                       "Reproduce the papers' claims, list experiments, run benchmarks.")


def _fail_usage(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


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


@app.command()
def reproduce(
    names: list[str] | None = typer.Argument(
        None, help="Experiment names or pillar prefixes (e.g. 'ot' or 'ot.gaussian-w2'); "
                   "default: all."),
    quick: bool = typer.Option(True, "--quick/--full",
                               help="Quick sizes (default, minutes) or the papers' full sizes."),
    out: Path = typer.Option(Path("measureflow-report"), "--out", "-o",
                             help="Output folder (created; results are resumed from it)."),
    force: bool = typer.Option(False, "--force", help="Rerun experiments already complete."),
) -> None:
    """Run experiments, write OUT/<name>/{metrics,claims}.json, figures and OUT/index.html."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from .experiments import import_errors, select
    from .experiments.runner import run_experiments

    try:
        exps = select(names)
    except KeyError as exc:
        _fail_usage(f"unknown experiment {exc.args[0]!r} (see `measureflow list`)")
    _check_writable(out)
    mode = "quick" if quick else "full"
    console = Console(stderr=False)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task(f"reproduce ({mode})", total=len(exps))

        def start(exp):
            progress.update(task, description=f"{exp.name}")

        def done(exp, rec):
            colour = {"passed": "green", "failed": "red", "error": "magenta",
                      "skipped": "yellow"}[rec.status]
            cached = " (cached)" if rec.cached else ""
            progress.console.print(f"[{colour}]{rec.status:>7}[/] {exp.name}  "
                                   f"{rec.n_passed}/{rec.n_claims} claims  "
                                   f"{rec.seconds:.1f}s{cached}")
            progress.advance(task)

        records = run_experiments(exps, mode, out, force=force, on_start=start, on_done=done)
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
    bad += list(broken)
    console.print(f"{n_pass}/{n_claims} claims passed; report: {out / 'index.html'}")
    raise typer.Exit(1 if bad else 0)


def _benchmarks_dir() -> Path | None:
    cands = []
    if os.environ.get("MEASUREFLOW_BENCHMARKS"):
        cands.append(Path(os.environ["MEASUREFLOW_BENCHMARKS"]))
    cands.append(Path.cwd() / "benchmarks")
    cands.append(Path(__file__).resolve().parents[2] / "benchmarks")
    for c in cands:
        if c.is_dir():
            return c
    return None


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="Benchmark script name (without .py)."),
) -> None:
    """List benchmarks, or run one; extra arguments (e.g. --quick) go to the script."""
    args = list(ctx.args)
    d = _benchmarks_dir()
    if d is None:
        _fail_usage("no benchmarks/ folder found (run from a source checkout or set "
                    "MEASUREFLOW_BENCHMARKS)")
    scripts = sorted(p.stem for p in d.glob("*.py") if not p.stem.startswith("_"))
    if name is None:
        for s in scripts:
            typer.echo(s)
        raise typer.Exit(0)
    if name not in scripts:
        _fail_usage(f"unknown benchmark {name!r} (available: {', '.join(scripts) or 'none'})")
    rc = subprocess.call([sys.executable, str(d / f"{name}.py"), *(args or [])])
    raise typer.Exit(rc)


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
        return _exit(2, argv)  # help was printed
    except ce.UsageError as exc:
        typer.echo(f"error: {exc.format_message()} (see `measureflow --help`)", err=True)
        return _exit(2, argv)
    except ce.ClickException as exc:
        typer.echo(f"error: {exc.format_message()}", err=True)
        return _exit(2, argv)
    except abort:
        typer.echo("aborted", err=True)
        return _exit(130, argv)
    return _exit(rv if isinstance(rv, int) else 0, argv)


def _exit(code: int, argv) -> int:
    if argv is None:  # real console invocation
        sys.exit(code)
    return code


if __name__ == "__main__":  # pragma: no cover
    main()
