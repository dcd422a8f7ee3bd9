"""The dependency rule of docs/architecture.md, checked on the import graph (AST of every module).

* Layers: core <- {ot, datasets} <- pillars (and da) <- experiments <- cli, with report a renderer over
  core only (called by the experiment runner and the CLI). Imports inside functions count.
* Between pillars only the edges listed in ``PILLAR_EDGES`` exist.
* No cycle between units, and no cycle between modules through imports executed at import
  time (module top level).
* No experiment, report, CLI, benchmark or test imports a private name of measureflow
  (``from measureflow.x import _y``, ``measureflow.x._module``).
"""

from __future__ import annotations

import ast
import collections
import functools
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "measureflow"

PILLARS = {"bregman", "spectral", "optim", "conservation", "attention", "inverse", "meanfield",
           "sampling"}
# allowed imports between pillars (importer -> imported); keep in sync with docs/architecture.md
PILLAR_EDGES = {("optim", "spectral")}
FLOOR = {"core", "ot", "datasets"}
ALLOWED = {
    "core": set(),
    "ot": {"core"},
    "datasets": {"core"},
    **{p: {"core", "ot", "datasets"} | {b for a, b in PILLAR_EDGES if a == p} for p in PILLARS},
    "da": {"core", "ot"},   # domain adaptation: an estimator over the engine, nothing else
    "report": {"core"},
    "experiments": FLOOR | PILLARS | {"report", "da"},
    "cli": FLOOR | PILLARS | {"report", "experiments", "__init__", "da"},
    "__init__": {"core"},
}
# the top package only re-exports core names (InputError, ...): importing them is importing core
for _unit_name in set(ALLOWED) - {"core", "__init__"}:
    ALLOWED[_unit_name] = ALLOWED[_unit_name] | {"__init__"}

# Private-name imports still present in files other helpers are changing (issue 17, layout);
# each entry must disappear with its fix -- do not add new ones.
KNOWN_PRIVATE_IMPORTS = {
    ("src/measureflow/cli.py", "measureflow.experiments.runner._load_cached"),
    ("tests/sampling/test_diffusion.py", "measureflow.sampling.diffusion._propagate"),
    ("tests/sampling/test_diffusion.py", "measureflow.sampling.diffusion._step_maps"),
    ("tests/sampling/test_diffusion.py", "measureflow.sampling.diffusion._vp_B"),
    ("tests/sampling/test_diffusion.py", "measureflow.sampling.diffusion._vp_grid"),
    ("tests/sampling/test_diffusion.py", "measureflow.sampling.diffusion._vp_time_of_B"),
    ("tests/sampling/test_diffusion.py",
     "measureflow.sampling.diffusion_theory._continuous_output"),
    ("tests/sampling/test_diffusion.py", "measureflow.sampling.diffusion_theory._spectral_output"),
    ("tests/sampling/test_diffusion.py", "measureflow.sampling.theory._chain_sampling_bias"),
    ("tests/sampling/test_diffusion.py",
     "measureflow.sampling.diffusion._output_covariance_batch"),
    ("tests/sampling/test_diffusion.py", "measureflow.sampling.gaussian._second_moments"),
    ("tests/sampling/test_pipeline.py",
     "measureflow.sampling.gaussian._stationary_covariance_batch"),
}


def _modules() -> dict[str, tuple[pathlib.Path, bool]]:
    mods = {}
    for f in sorted(SRC.rglob("*.py")):
        parts = list(f.relative_to(SRC.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        mods[".".join(parts)] = (f, is_pkg)
    return mods


MODULES = _modules()


@functools.cache
def _tree(path: pathlib.Path) -> ast.Module:
    return ast.parse(path.read_text())


def _resolve(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    base = package.split(".")
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(tree: ast.AST, package: str, *, top_level_only: bool = False):
    """(imported module, imported name or None) for every import statement of a module."""
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.If) and top_level_only:
            test = ast.unparse(node.test)
            if "TYPE_CHECKING" in test:
                continue
            yield from _imports(ast.Module(body=node.body + node.orelse, type_ignores=[]),
                                package, top_level_only=True)
        elif isinstance(node, (ast.Try,)) and top_level_only:
            body = node.body + node.orelse + node.finalbody + [
                s for h in node.handlers for s in h.body]
            yield from _imports(ast.Module(body=body, type_ignores=[]), package,
                                top_level_only=True)
        elif isinstance(node, ast.ImportFrom):
            full = _resolve(node, package)
            for alias in node.names:
                yield full, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _package(module: str) -> str:
    return module if MODULES[module][1] else module.rsplit(".", 1)[0]


def _target(full: str, name: str | None) -> str | None:
    """The measureflow module an import statement loads (or None if outside measureflow)."""
    if not (full == "measureflow" or full.startswith("measureflow.")):
        return None
    if name is not None and f"{full}.{name}" in MODULES:
        return f"{full}.{name}"
    return full if full in MODULES else None


@functools.cache
def _unit_edges():
    edges = collections.defaultdict(set)
    where = {}
    for mod, (path, _) in MODULES.items():
        for full, name in _imports(_tree(path), _package(mod)):
            tgt = _target(full, name)
            if tgt is None:
                continue
            a, b = _unit(mod), _unit(tgt)
            if a != b:
                edges[a].add(b)
                where.setdefault((a, b), f"{path.relative_to(ROOT)} imports {tgt}")
    return edges, where


def test_every_unit_is_placed_in_a_layer():
    units = {_unit(m) for m in MODULES}
    assert units <= set(ALLOWED), f"place {sorted(units - set(ALLOWED))} in docs/architecture.md"


def test_imports_follow_the_layers():
    edges, where = _unit_edges()
    bad = [where[(a, b)] for a in edges for b in edges[a] if b not in ALLOWED.get(a, set())]
    assert not bad, "imports against docs/architecture.md:\n" + "\n".join(sorted(bad))


def _cycles(graph: dict) -> list:
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_no_cycles_between_units():
    edges, _ = _unit_edges()
    assert _cycles(edges) == []


def test_no_import_time_cycles_between_modules():
    graph = collections.defaultdict(set)
    for mod, (path, _) in MODULES.items():
        for full, name in _imports(_tree(path), _package(mod), top_level_only=True):
            tgt = _target(full, name)
            if tgt is not None and tgt != mod:
                graph[mod].add(tgt)
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _private_imports(path: pathlib.Path, package: str | None):
    """Private measureflow names imported by a file; inside the library, a unit's own private
    modules are its business (``experiments._rates`` used by the experiments)."""
    own = _unit(package) if package else None
    for full, name in _imports(_tree(path), package or ""):
        if not (full == "measureflow" or full.startswith("measureflow.")):
            continue
        parts = full.split(".") + ([name] if name else [])
        if any(p.startswith("_") and not p.startswith("__") for p in parts[1:]) and (
                own is None or _unit(full) != own or (name or "").startswith("_")):
            yield ".".join(parts)


def _files_above_the_pillars():
    files = [(p, _package(m)) for m, (p, _) in MODULES.items()
             if _unit(m) in ("experiments", "report", "cli")]
    for top in ("tests", "benchmarks", "examples"):
        files += [(p, None) for p in sorted((ROOT / top).rglob("*.py"))]
    return files


def test_no_private_names_imported_by_experiments_benchmarks_or_tests():
    found = {(str(p.relative_to(ROOT)), name)
             for p, pkg in _files_above_the_pillars() for name in _private_imports(p, pkg)}
    new = sorted(found - KNOWN_PRIVATE_IMPORTS)
    assert not new, ("private measureflow names imported (make them public and documented, "
                     "or stop using them):\n" + "\n".join(f"{f}: {n}" for f, n in new))


@pytest.mark.parametrize("code, expected", [
    ("from measureflow.ot.dynamic import _prox", ["measureflow.ot.dynamic._prox"]),
    ("from measureflow.attention._heads import split_heads",
     ["measureflow.attention._heads.split_heads"]),
    ("import measureflow.ot", []),
    ("from measureflow.ot import solve", []),
])
def test_the_private_import_finder(tmp_path, code, expected):
    f = tmp_path / "m.py"
    f.write_text(code + "\n")
    assert list(_private_imports(f, None)) == expected
