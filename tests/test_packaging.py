"""The wheel: built from a copy of the source, installed in a fresh venv, its CLI works.

Offline and without touching the working tree: the wheel is built from a copy with the
venv's setuptools (no build isolation), installed with ``--no-deps``, and the fresh venv sees
the dependencies through a ``.pth`` line pointing at this venv's site-packages (whose
editable-install hook is then not processed, so ``measureflow`` comes from the wheel).
"""

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import measureflow

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)


@pytest.mark.slow
def test_wheel_installs_in_a_fresh_venv_and_the_cli_works(tmp_path):
    src = tmp_path / "src-copy"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    dist = tmp_path / "dist"
    r = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
              "--no-index", "-w", str(dist), str(src)])
    assert r.returncode == 0, r.stderr
    assert "license" not in (r.stdout + r.stderr).lower() or "deprecat" not in \
        (r.stdout + r.stderr).lower(), r.stderr  # no setuptools license-table warning
    (wheel,) = dist.glob("measureflow-*.whl")
    assert wheel.name.startswith(f"measureflow-{measureflow.__version__}-")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "measureflow/py.typed" in names
    assert "measureflow/da/__init__.py" in names and "measureflow/ot/maps.py" in names
    assert "measureflow/experiments/timings.json" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: BSD-3-Clause" in meta
    assert not any(n.startswith("benchmarks/") for n in names)

    env_dir = tmp_path / "venv"
    r = _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)])
    assert r.returncode == 0, r.stderr
    py = env_dir / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
                     ).stdout.strip())
    ours = sysconfig.get_paths()["purelib"]
    # pip of this venv, run by the fresh interpreter: it installs into the fresh venv
    r = _run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
             env={"PYTHONPATH": ours, "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    (site / "_measureflow_test_deps.pth").write_text(ours + "\n")
    exe = env_dir / "bin" / "measureflow"
    clean = {"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    where = _run([str(py), "-c", "import measureflow; print(measureflow.__file__)"],
                 env=clean, cwd=tmp_path)
    assert where.stdout.strip().startswith(str(env_dir)), where
    r = _run([str(py), "-c", "import measureflow.da as da, measureflow.ot as ot; "
              "da.Transport(eps=1.0).fit([[0.0], [1.0]], [[2.0], [3.0]]); ot.EntropicMap"],
             env=clean, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _run([str(exe), "--version"], env=clean, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == f"measureflow {measureflow.__version__}"
    r = _run([str(exe), "list"], env=clean, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert any(line.startswith("ot.gaussian-w2\t") for line in r.stdout.splitlines())
    r = _run([str(exe), "bench", "--help"], env=clean, cwd=tmp_path)
    assert r.returncode == 0 and "--dir" in r.stdout
    # no source checkout behind a wheel: one line, exit 2 (a benchmarks/ in the cwd is ignored)
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "evil.py").write_text("raise SystemExit(7)\n")
    r = _run([str(exe), "bench", "evil"], env=clean, cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "source checkout" in r.stderr
