"""Offline HTML report of a ``measureflow reproduce`` run.

:func:`build_report` reads what the runner wrote under ``OUT/`` (per experiment folder:
``status.json``, ``claims.json``, ``metrics.json``, ``config.json`` and PNG figures) and writes
``OUT/index.html``, one self-contained page a reader opens without a network:

* a summary at the top: counts of experiments (passed / failed / error / skipped / unreadable)
  and of claims, then everything that needs attention (failed claims with their notes,
  experiments that raised, unreadable folders), then the skipped experiments in grey;
* one section per paper (title, arXiv id, what was readable, what is reproduced and what is
  not; the descriptions are the data :data:`PAPERS`), holding its experiments: each with its
  claims (paper location, expected, measured, note) next to its figures, then its metrics and
  configuration;
* the software versions of the process that built the page.

Everything read from the folder is untrusted: every field is HTML-escaped, numbers are
formatted, only figures that are PNG files directly inside their experiment's folder are
embedded (no path separators, no ``..``, no symbolic links, PNG signature checked), files are
read without following symbolic links and with a size cap, and a folder whose files are
missing or malformed renders as an *unreadable* row instead of stopping the build. The page
carries no script and a Content-Security-Policy that forbids any request (figures are
``data:`` URLs).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import math
import os
import platform
import re
import stat
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from .core.io import atomic_write_text

__all__ = ["PAPERS", "Paper", "ExperimentView", "RunView", "build_report", "read_run",
           "paper_locations", "is_derived_statement", "software_versions", "STATES"]


# ----------------------------------------------------------------------------- the papers
@dataclasses.dataclass(frozen=True)
class Paper:
    """What the report says about one paper (keyed by arXiv id in :data:`PAPERS`).

    ``readable``: which parts of the paper could be read (the claims quote only those);
    ``covered``: what the experiments reproduce; ``not_covered``: what they do not.
    """

    title: str
    authors: str
    readable: str
    covered: str
    not_covered: str


#: The papers measureflow reproduces, in report order, keyed by arXiv id.
PAPERS: dict[str, Paper] = {
    "2505.06589": Paper(
        "Optimal Transport for Machine Learners (course notes)", "Peyré",
        "The course notes; locations are the notes' section titles.",
        "Static OT (Gaussian/Bures closed form, sample complexity, entropic bias, Sinkhorn "
        "rate, barycenters, McCann interpolation), semi-discrete OT, the Benamou-Brenier "
        "dynamic formulation, entropic JKO flows, and two ML applications (mean-field "
        "two-layer networks, flow matching with minibatch-OT couplings).",
        "The notes' GAN material is not reproduced; the ML applications follow the cited "
        "works (Chizat-Bach, Mei-Montanari-Nguyen, Tong et al., Pooladian et al.) at small "
        "sizes."),
    "2604.04891": Paper(
        "Muon Dynamics as a Spectral Wasserstein Flow", "Peyré",
        "The abstract and introduction, and the LaTeX source of a post-review revision; "
        "section, proposition and figure labels follow that source.",
        "Comparison bounds with W2 (Sec. 3), optimal couplings for p = 1 vs p = inf, Gaussian "
        "modal dynamics (App. F), the Muon step as the p = inf flow (App. B) and the "
        "teacher-student experiments of Sec. 5 (MMD flow, ReLU network, attention).",
        "The static-dynamic (Benamou-Brenier) equivalence, the conditional Brenier theorem and "
        "the geodesic-convexity results are proofs: no experiment checks them here."),
    "2602.01372": Paper(
        "Robust Sublinear Rates for Iterative Bregman Projections", "Peyré",
        "The abstract and introduction, and the LaTeX source distributed with the reference "
        "implementation (section numbers follow it).",
        "The O(1/k) dual rate of cyclic KL projections with its 1/gamma dependence (Sec. 3) "
        "and flow-Sinkhorn for W1 on graphs against dense Sinkhorn (Sec. 5).",
        "The paper's single-cell graphs are replaced by a synthetic branching trajectory; the "
        "O(p/eps^4) operation count and the Lean formalisation are not reproduced."),
    "2307.00144": Paper(
        "Abide by the Law and Follow the Flow: Conservation Laws for Gradient Flows",
        "Marcotte, Gribonval, Peyré",
        "The abstract and the reference SageMath implementation; numbering as quoted by "
        "arXiv 2506.06194 and the reference notebooks.",
        "The Lie-algebra count of conservation laws for random linear and ReLU architectures "
        "and the polynomial search for laws (shared experiment with arXiv 2506.06194).",
        "The full text was not available: theorem numbers are second-hand."),
    "2506.06194": Paper(
        "Transformative or Conservative? Conservation Laws for ResNets and Transformers",
        "Marcotte, Gribonval, Peyré",
        "The full main text (appendices were not available).",
        "Counts of conservation laws for attention, convolutional and softmax layers "
        "(Thm 3.6, 3.8, Prop. 3.11), residual blocks (Sec. 4.4) and the SGD drift of the laws "
        "(Prop. 5.1).",
        "Results that live in the appendices (Fig. 5, App. O/R) are not checked against the "
        "paper's numbers."),
    "2508.07370": Paper(
        "Intrinsic Training Dynamics of Deep Neural Networks", "Marcotte, Gribonval, Peyré",
        "The abstracts of v1 and v2 and reviews only; theorem numbers are unverified.",
        "The kernel-inclusion criterion, recoverability, relaxed balanced initialisations and "
        "the linear neural ODE, checked numerically.",
        "The paper is theoretical (no experiments of its own); the formulas checked here were "
        "reconstructed, not quoted."),
    "2512.10656": Paper(
        "Token Sample Complexity of Attention", "Bohbot, Letrouit, Peyré, Vialard",
        "The abstracts of every version and the reference implementation; not the theorem "
        "statements.",
        "The uniform n^-1/2 rate of the attention map, the moment rate |beta| vs the horizon, "
        "the hardmax (logarithmic) regime, and the per-layer rate on a real pretrained encoder "
        "(optional extra).",
        "BERT on Wikipedia is replaced by all-MiniLM-L6-v2 (optional 'models' extra); the v3 "
        "downstream-accuracy experiment is not reproduced."),
    "2501.18322": Paper(
        "A Unified Perspective on the Dynamics of Deep Transformers",
        "Castin, Ablin, Carrillo, Peyré",
        "The abstracts of both versions and the reference implementation; the Gaussian closed "
        "forms were derived here.",
        "The Gaussian covariance dynamics of Sec. 4 (regimes, limit-rank histograms) and the "
        "mean-field limit of the particle system.",
        "Well-posedness for compactly supported data is a proof, not checked; masked and "
        "sigmoid attention have no experiment."),
    "2505.07124": Paper(
        "Learning from Samples: Inverse Problems over Measures", "Andrade, Peyré, Poon",
        "The abstracts of v1-v3 and the v3 table of contents; losses and constants are "
        "reconstructed (docs/inverse.md).",
        "Gaussian iUOT and iJKO recovery rates, link prediction with iUOT, the conditioning "
        "effect of sharpening and sparse inverse-gradient-flow recovery (Sec. 5).",
        "The paper's exact sharpening for iUOT and its constants were not available: our "
        "choice is documented, and claims built on it may differ from the paper."),
    "2504.18208": Paper(
        "Ultra-fast Feature Learning for the Training of Two-layer Neural Networks in the "
        "Two-timescale Regime", "Barboni, Peyré, Vialard",
        "The abstract and the reference implementation.",
        "VarPro training on the circle and the torus against the ultra-fast diffusion PDE "
        "(Sec. 4-6.1), sharper teachers, VarPro vs two-timescale, and VarPro on the last layer "
        "of a convolutional network (Sec. 6.2, scikit-learn digits).",
        "The text of Sec. 6.2 was not available; its data set is replaced by one available "
        "offline."),
    "2503.11615": Paper(
        "From Score Matching to Diffusion: A Fine-Grained Error Analysis in the Gaussian "
        "Setting", "Hurault, Terris, Moreau, Peyré",
        "The abstracts of v1 and v3 only: every formula was derived here (docs/sampling.md).",
        "The W2 error of the Langevin (v1) and diffusion (v3) samplers for Gaussian data: "
        "generalization, score-matching optimization, discretization and minimal-noise terms, "
        "the kernel-norm form, each against simulation.",
        "The paper's theorems, constants and figures were not readable: the kernels are "
        "compared with simulation, not with the paper."),
}

_ARXIV = re.compile(r"\d{4}\.\d{4,5}")

# ----------------------------------------------------------------------------- locations
_NUM = r"(?:\(\d+(?:\.\d+)*[a-z]?\)|[A-Z]?\d+(?:\.\d+)*[a-z]?)"
_SEQ = rf"{_NUM}(?:\s*(?:[-–/,&]|and)\s*{_NUM})*"
_APPX = r"[A-J](?:\.\d+)*(?![A-Za-z])"
_LABEL = r"[A-Za-z][A-Za-z0-9]*(?:[-/][A-Za-z0-9]+)*"
_PAREN = r"\((?:[^()\n]|\([^()\n]*\)){1,60}\)"
_QUOTED = r"'[^'\n]{1,80}'|\"[^\"\n]{1,80}\"|‘[^’\n]{1,80}’"
_KW_NUMBERED = (r"Thm|Theorem|Prop|Proposition|Cor|Corollary|Lemma|Lem|Def|Definition|Ex|"
                r"Example|Rem|Remark|Alg|Algorithm|Eqs?|Equations?|Tables?|Tab|Figs?|Figures?")
_LOCATION = re.compile(
    rf"""(?<![A-Za-z])(?:
        (?:Sec(?:tion)?s?\.?|§§?)\s*(?:{_SEQ}|{_APPX}|{_QUOTED})
      | App(?:endix|endices)?\.?\s*(?:{_APPX}|{_SEQ})
      | (?:{_KW_NUMBERED})s?\.?\s*{_SEQ}
      | (?:Thm|Prop|Cor|Lem|Def|Figs?|Sec|Eqs?|App|Tab)\.\s*(?:{_LABEL}|{_QUOTED}|{_PAREN})
      | Thm\s+{_LABEL}
      | (?:Chap(?:ter)?s?|{_KW_NUMBERED})\.?\s*(?:{_SEQ}|{_QUOTED})
      | (?i:abstract)(?:\s*\(?v\d(?:\s*[/,]\s*v?\d)*\)?)?
      | (?i:introduction)
    )""", re.X)
_DERIVED = re.compile(r"\[derived\]|\bderived\b|\bsanity check\b|\bnot (?:stated |claimed )?in "
                      r"the paper\b", re.I)


def paper_locations(text: Any) -> list[str]:
    """The paper locations quoted in ``text``: ``Sec. 3``, ``Thm 3.8``, ``Prop. 5.1``,
    ``Fig. 2-4``, ``App. B``, ``Eq. (12)``, ``Table 2``, ``Cor. 3.9-3.10``, ``Ex. 4.8``,
    ``Sec. 'Entropic regularization'``, ``Chap. 'Dynamic Optimal Transport'``, ``Thm
    'Benamou--Brenier'``, LaTeX-label forms such as ``Prop. bounds``, and
    ``Abstract (v3)`` (for papers of which only the abstract was readable); in order, without
    repeats. Returns ``[]`` for text that quotes none (or is not a string)."""
    if not isinstance(text, str):
        return []
    out: list[str] = []
    for m in _LOCATION.finditer(text):
        loc = " ".join(m.group(0).split()).rstrip(".,;:")
        if loc and loc not in out:
            out.append(loc)
    return out


def is_derived_statement(text: Any) -> bool:
    """True when a claim says it checks a derivation of ours, not a statement of the paper
    (``[derived]``, ``derived identity``, ``sanity check``, ``not in the paper``)."""
    return isinstance(text, str) and _DERIVED.search(text) is not None


# ----------------------------------------------------------------------------- reading
#: The experiment states of the report (the runner's four, plus ``unreadable``).
STATES = ("passed", "failed", "error", "skipped", "unreadable")
_RUNNER_STATES = ("passed", "failed", "error", "skipped")
_JSON_LIMIT = 64 * 2**20     # bytes read at most from one JSON file
_FIGURE_LIMIT = 32 * 2**20   # bytes read at most from one figure
_PNG = b"\x89PNG\r\n\x1a\n"


def _read_file(folder: Path, name: str, limit: int) -> tuple[bytes | None, str | None]:
    """Bytes of the regular file ``folder/name``, never following a symbolic link, never
    blocking on a FIFO, at most ``limit`` bytes; or ``(None, reason)``."""
    path = folder / name
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None, f"{name} is missing"
    except OSError as exc:
        if os.path.islink(path):
            return None, f"{name} is a symbolic link (not followed)"
        return None, f"{name} could not be opened ({exc.strerror or exc})"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, f"{name} is not a regular file"
        if st.st_size > limit:
            return None, f"{name} is too large ({st.st_size} bytes)"
        chunks, size = [], 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                return None, f"{name} is too large (over {limit} bytes)"
        return b"".join(chunks), None
    except OSError as exc:
        return None, f"{name} could not be read ({exc.strerror or exc})"
    finally:
        os.close(fd)


def _read_json(folder: Path, name: str) -> tuple[Any, str | None]:
    data, err = _read_file(folder, name, _JSON_LIMIT)
    if err is not None:
        return None, err
    try:
        return json.loads(data.decode("utf-8")), None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        what = "nested too deeply" if isinstance(exc, RecursionError) else type(exc).__name__
        return None, f"{name} is not valid JSON ({what})"


def _figure_name_problem(fname: Any) -> str | None:
    """Why ``fname`` (from status.json) is not a figure file directly inside the folder."""
    if not isinstance(fname, str):
        return "not a file name"
    if not fname or len(fname) > 255 or any(c in fname for c in "/\\\x00") or fname.startswith("."):
        return "not a plain file name inside the experiment folder"
    if not fname.lower().endswith(".png"):
        return "not a .png file"
    return None


@dataclasses.dataclass
class ExperimentView:
    """One experiment folder as the report shows it (every field already validated).

    ``state`` is one of :data:`STATES`; ``problems`` says why an ``unreadable`` folder could not
    be read; ``warnings`` lists smaller defects (a metrics or config file, a figure not
    embedded) shown with the experiment. ``figures`` are ``(name, path)`` of PNG files that were
    checked to lie directly inside ``folder``.
    """

    name: str
    folder: Path
    state: str
    title: str = ""
    paper: str = ""
    section: str = ""
    mode: str = ""
    seed: Any = None
    seconds: float | None = None
    finished: str = ""
    executor: str = ""
    threads: Any = None
    error: str = ""
    claims: list = dataclasses.field(default_factory=list)
    metrics: dict = dataclasses.field(default_factory=dict)
    config: Any = None
    figures: list = dataclasses.field(default_factory=list)
    problems: list = dataclasses.field(default_factory=list)
    warnings: list = dataclasses.field(default_factory=list)

    @property
    def paper_ids(self) -> list[str]:
        return _ARXIV.findall(self.paper)

    @property
    def n_claims(self) -> int:
        return len(self.claims)

    @property
    def failed_claims(self) -> list[dict]:
        return [c for c in self.claims if c["passed"] is not True]


@dataclasses.dataclass
class RunView:
    """Everything read from an output folder: experiments (sorted by name) and the names of
    folders prepared by a run that has not finished them (no ``status.json`` yet)."""

    out: Path
    experiments: list
    pending: list

    def count(self, state: str) -> int:
        return sum(e.state == state for e in self.experiments)

    @property
    def n_claims(self) -> int:
        return sum(e.n_claims for e in self.experiments)

    @property
    def n_claims_failed(self) -> int:
        return sum(len(e.failed_claims) for e in self.experiments)

    @property
    def modes(self) -> list[str]:
        return sorted({e.mode for e in self.experiments if e.mode})


def _text(v: Any, limit: int = 100_000) -> str:
    """A field that should be text: strings as they are, anything else as compact JSON."""
    if v is None:
        return ""
    if not isinstance(v, str):
        try:
            v = json.dumps(v, ensure_ascii=False, allow_nan=True)
        except (TypeError, ValueError, RecursionError):
            v = "?"
    return v if len(v) <= limit else v[:limit] + " ... (truncated)"


def _valid_claim(c: Any) -> bool:
    return isinstance(c, dict) and isinstance(c.get("statement"), str) and isinstance(
        c.get("passed"), bool)


def _read_experiment(folder: Path, name: str) -> ExperimentView:
    view = ExperimentView(name, folder, "unreadable")
    if folder.is_symlink():
        view.problems.append("the folder is a symbolic link (not followed)")
        return view
    st, err = _read_json(folder, "status.json")
    if err is not None:
        view.problems.append(err)
        return view
    if not isinstance(st, dict):
        view.problems.append("status.json is not a JSON object")
        return view
    view.title = _text(st.get("title"), 500)
    view.paper = _text(st.get("paper"), 500)
    view.section = _text(st.get("section"), 500)
    view.mode = _text(st.get("mode"), 50)
    view.seed = st.get("seed")
    secs = st.get("seconds")
    view.seconds = float(secs) if isinstance(secs, (int, float)) and not isinstance(
        secs, bool) and math.isfinite(secs) else None
    view.finished = _text(st.get("finished_at"), 100)
    view.executor = _text(st.get("executor"), 300)
    view.threads = st.get("threads")
    view.error = _text(st.get("error"))
    if st.get("name") != name:
        view.problems.append(f"status.json is for {_text(st.get('name'), 100)!r}, not for the "
                             "folder it is in")
    status = st.get("status")
    if status not in _RUNNER_STATES:
        view.problems.append(f"unknown status {_text(status, 100)!r}")
    claims, err = _read_json(folder, "claims.json")
    if err is not None:
        view.problems.append(err)
    elif not isinstance(claims, list):
        view.problems.append("claims.json is not a list")
    else:
        bad = [i for i, c in enumerate(claims) if not _valid_claim(c)]
        if bad:
            view.problems.append(f"claims.json: entr{'y' if len(bad) == 1 else 'ies'} "
                                 f"{', '.join(map(str, bad[:5]))} "
                                 "not a claim (needs a text 'statement' and a true/false 'passed')")
        else:
            view.claims = claims
    if view.problems:
        view.claims = []
        return view
    view.state = status
    if status == "passed" and view.failed_claims:
        view.warnings.append("status.json says passed but a claim failed")
    if status == "failed" and view.claims and not view.failed_claims:
        view.warnings.append("status.json says failed but every claim passed")
    metrics, err = _read_json(folder, "metrics.json")
    if err is not None:
        if status in ("passed", "failed"):
            view.warnings.append(err)
    elif isinstance(metrics, dict):
        view.metrics = metrics
    else:
        view.warnings.append("metrics.json is not a JSON object")
    cfg, err = _read_json(folder, "config.json")
    if err is not None:
        view.warnings.append(err)
    else:
        view.config = cfg.get("config", cfg) if isinstance(cfg, dict) else cfg
    figs = st.get("figures", [])
    if not isinstance(figs, list):
        view.warnings.append("the figure list of status.json is not a list")
        figs = []
    for fname in figs:
        why = _figure_name_problem(fname)
        if why is None:
            view.figures.append((fname, folder / fname))
        else:
            view.warnings.append(f"figure {_text(fname, 200)!r} not embedded: {why}")
    return view


def read_run(out: Path) -> RunView:
    """Read every experiment folder under ``out`` (never raises on a malformed folder).

    A subfolder with a ``status.json`` (or a symbolic link to one) is an experiment; one with
    only ``config.json`` was prepared by a run that has not finished it (``pending``). Hidden
    entries and plain files are ignored. Raises ``OSError`` only when ``out`` itself cannot be
    listed.
    """
    out = Path(out)
    exps, pending = [], []
    with os.scandir(out) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        name = entry.name
        if name.startswith("."):
            continue
        path = out / name
        try:
            if entry.is_symlink():
                if os.path.lexists(path / "status.json"):
                    exps.append(_read_experiment(path, name))
                continue
            if not entry.is_dir(follow_symlinks=False):
                continue
            if os.path.lexists(path / "status.json"):
                exps.append(_read_experiment(path, name))
            elif os.path.lexists(path / "config.json"):
                pending.append(name)
        except OSError as exc:  # a folder that cannot be inspected
            exps.append(ExperimentView(name, path, "unreadable",
                                       problems=[f"could not be read ({exc.strerror or exc})"]))
    return RunView(out, exps, pending)


# ----------------------------------------------------------------------------- formatting
def _fmt(v: Any, depth: int = 0) -> str:
    """Plain text of a JSON value for a table cell (escape it afterwards)."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v) if abs(v) < 10**15 else f"{float(v):.4g}"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.4g}"
    if isinstance(v, str):
        return v if len(v) <= 300 else v[:300] + "…"
    if depth >= 2:
        return "…"
    if isinstance(v, list):
        items = [_fmt(x, depth + 1) for x in v[:6]]
        return "[" + ", ".join(items) + (f", … ({len(v)} items)" if len(v) > 6 else "") + "]"
    if isinstance(v, dict):
        items = [f"{_fmt(k, depth + 1)}: {_fmt(x, depth + 1)}" for k, x in list(v.items())[:4]]
        return "{" + ", ".join(items) + (", …" if len(v) > 4 else "") + "}"
    return "?"


def _full(v: Any) -> str:
    """Full-precision text of a value (tooltips)."""
    if isinstance(v, float) and math.isfinite(v):
        return repr(v)
    return _fmt(v)


def _e(v: Any) -> str:
    """Escaped text of any value (strings as they are, numbers formatted)."""
    return html.escape(v if isinstance(v, str) else _fmt(v), quote=True)


def _expected(c: dict) -> str:
    cmp_, exp, tol = c.get("comparison"), c.get("expected"), c.get("tolerance")
    num = isinstance(tol, (int, float)) and not isinstance(tol, bool)
    if cmp_ == "abs":
        return f"{_fmt(exp)} ± {_fmt(tol)}"
    if cmp_ == "rel":
        return f"{_fmt(exp)} ± {_fmt(100 * tol) if num else _fmt(tol)} %"
    if cmp_ == "<=":
        return f"≤ {_fmt(exp)}"
    if cmp_ == ">=":
        return f"≥ {_fmt(exp)}"
    if cmp_ == "in" and isinstance(exp, list) and len(exp) == 2:
        return f"in [{_fmt(exp[0])}, {_fmt(exp[1])}]"
    if cmp_ == "bool":
        return "holds" if exp is True else _fmt(exp)
    return (f"{_fmt(cmp_)} " if cmp_ else "") + _fmt(exp)


def _png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of PNG bytes, or None if they do not start like a PNG image."""
    if len(data) < 24 or not data.startswith(_PNG) or data[12:16] != b"IHDR":
        return None
    w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return (w, h) if 0 < w < 100_000 and 0 < h < 100_000 else None


def _slug(name: str, index: int) -> str:
    return "exp-" + re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:100] + (f"-{index}" if index else "")


_CSS = """
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d1d1f;
     background:#fff}
main{max-width:1280px;margin:0 auto;padding:12px 20px 40px}
h1{font-size:1.35em;margin:0}
h2{font-size:1.2em;margin:1.6em 0 .3em}
h3{font-size:1.02em;margin:0 0 .25em}
a{color:#0b57d0}
.sub{color:#555;margin:.15em 0 .5em;font-size:.9em}
.counts{display:flex;flex-wrap:wrap;gap:6px;margin:.3em 0 .6em;font-size:.9em}
.pill{border-radius:10px;padding:1px 9px;border:1px solid #ccc;background:#f6f6f6}
.pill.passed{background:#e3f5e6;border-color:#9bd3a5}.pill.failed{background:#fde2e0;border-color:#e99c94}
.pill.error{background:#f1e4fb;border-color:#c7a2e4}.pill.unreadable{background:#fff0d9;border-color:#e8b866}
.pill.skipped{background:#eee;border-color:#ccc;color:#666}
#failed{border:2px solid #c0392b;border-radius:6px;padding:8px 12px;background:#fff6f5;
        max-height:52vh;overflow-y:auto}
#failed.ok{border-color:#2a9d4b;background:#f3fbf4}
#failed h2{margin:0 0 .3em;font-size:1.05em}
#failed ol{margin:.2em 0;padding-left:1.3em}#failed li{margin:.25em 0}
.note{color:#444;font-size:.88em;margin-top:.1em}
.loc{display:inline-block;background:#eef3fb;border:1px solid #c9d7ef;border-radius:4px;padding:0 5px;
     font-size:.85em;white-space:nowrap}
.loc.fallback{background:#f4f4f4;border-color:#ddd;color:#666;font-style:italic}
.loc.derived{background:#f7f4ea;border-color:#e2d8b5;color:#6b5d2a}
.skippedline{color:#777;font-size:.88em;margin:.5em 0}
nav.papers{font-size:.9em;margin:.6em 0}nav.papers li{margin:.1em 0}
section.paper{border-top:3px solid #d9dee7;margin-top:1.6em}
.pmeta{font-size:.9em;color:#333;margin:.2em 0}.pmeta b{color:#111}
article.exp{border:1px solid #e2e2e2;border-left:6px solid #ccc;border-radius:5px;margin:1em 0;
            padding:8px 12px}
article.exp.passed{border-left-color:#2a9d4b}article.exp.failed{border-left-color:#c0392b}
article.exp.error{border-left-color:#8e44ad}article.exp.unreadable{border-left-color:#e08e0b}
article.exp.skipped{border-left-color:#b5b5b5;background:#f5f5f5;color:#666}
.badge{display:inline-block;padding:0 8px;border-radius:8px;font-size:.8em;color:#fff;
       vertical-align:middle;margin-left:.3em}
.badge.passed{background:#2a9d4b}.badge.failed{background:#c0392b}.badge.error{background:#8e44ad}
.badge.skipped{background:#9a9a9a}.badge.unreadable{background:#d07d00}
.meta{font-size:.85em;color:#555;margin:.1em 0 .4em}
.warn{color:#8a4b00;font-size:.88em;margin:.2em 0}
.body{display:grid;grid-template-columns:minmax(0,3fr) minmax(0,2fr);gap:14px;align-items:start}
.body.stacked{grid-template-columns:minmax(0,1fr)}
@media (max-width:900px){.body{grid-template-columns:minmax(0,1fr)}}
.figs{display:flex;flex-wrap:wrap;gap:8px}.body.stacked .figs figure{max-width:100%}
table{border-collapse:collapse;width:100%;font-size:.86em}
th,td{border:1px solid #e3e3e3;padding:3px 6px;text-align:left;vertical-align:top;
      overflow-wrap:anywhere}
th{background:#f6f7f9;font-weight:600}
table.claims{table-layout:fixed}
table.claims col.c-res{width:4.4em}table.claims col.c-loc{width:16%}
table.claims col.c-exp,table.claims col.c-mea{width:13%}
td.res{font-weight:700;text-align:center}
td .loc{white-space:normal}
tr.pass td.res{background:#e3f5e6;color:#1e6b34}tr.fail td.res{background:#f9d0cc;color:#8b1d12}
tr.fail td{background:#fff8f7}
td.num{font-variant-numeric:tabular-nums}
th{overflow-wrap:normal}
figure{margin:0 0 8px;max-width:100%}figure img{max-width:100%;height:auto;border:1px solid #eee;display:block}
figcaption{font-size:.8em;color:#666}
details{margin:.3em 0;font-size:.88em}summary{cursor:pointer;color:#333}
pre{background:#f7f7f7;padding:.5em;overflow-x:auto;font-size:.82em;max-height:22em;margin:.3em 0}
.sw td{font-size:.85em}
"""


# ----------------------------------------------------------------------------- rendering
class _Page:
    def __init__(self, run: RunView):
        self.run = run
        self.ids: dict[int, str] = {}
        for i, e in enumerate(run.experiments):
            slug = _slug(e.name, 0)
            self.ids[id(e)] = slug if slug not in self.ids.values() else _slug(e.name, i)

    def link(self, e: ExperimentView) -> str:
        return f"<a href='#{self.ids[id(e)]}'>{_e(e.name)}</a>"

    @staticmethod
    def location(c: dict, e: ExperimentView) -> str:
        locs = paper_locations(c.get("statement"))
        if locs:
            return "<span class='loc'>" + _e("; ".join(locs)) + "</span>"
        if is_derived_statement(c.get("statement")):
            return ("<span class='loc derived' title='a check of a derivation of ours, not a "
                    "statement of the paper'>derived</span>")
        return ("<span class='loc fallback' title=\"the statement quotes no location: the "
                "experiment's section\">" + _e(e.section or "no location") + "</span>")

    # --- summary
    def summary(self) -> list[str]:
        run = self.run
        h = ["<header><h1>measureflow: reproduction report</h1>"]
        modes = ", ".join(run.modes) or "no"
        total = sum(e.seconds or 0.0 for e in run.experiments)
        h.append(f"<p class='sub'>{_e(modes)} mode &middot; {len(run.experiments)} experiments "
                 f"&middot; {total:.1f} s of experiment time &middot; built "
                 f"{_e(time.strftime('%Y-%m-%d %H:%M:%S %z'))} from {_e(str(run.out))}</p>")
        pills = [f"<span class='pill {s}'>{run.count(s)} {s}</span>" for s in STATES
                 if run.count(s) or s in ("passed", "failed")]
        n, nf = run.n_claims, run.n_claims_failed
        pills.append(f"<span class='pill {'failed' if nf else 'passed'}'>claims: {n - nf} of {n} "
                     f"passed, {nf} failed</span>")
        if run.pending:
            pills.append(f"<span class='pill skipped'>{len(run.pending)} not finished</span>")
        h.append("<div class='counts'>" + "".join(pills) + "</div>")
        h += self.attention()
        skipped = [e for e in run.experiments if e.state == "skipped"]
        if skipped:
            h.append("<p class='skippedline'>Skipped (not failures): " + "; ".join(
                f"{self.link(e)} ({_e(e.error.strip().splitlines()[-1] if e.error.strip() else 'no reason given')})"
                for e in skipped) + "</p>")
        if run.pending:
            h.append(f"<details class='skippedline'><summary>{len(run.pending)} not finished (no "
                     "status.json yet: running, interrupted or not started)</summary>"
                     + ", ".join(_e(n) for n in run.pending) + "</details>")
        h.append("</header>")
        return h

    def attention(self) -> list[str]:
        run = self.run
        bad = [e for e in run.experiments
               if e.state in ("failed", "error", "unreadable") or e.failed_claims]
        warned = [e for e in run.experiments if e.warnings and e not in bad]
        if not bad:
            msg = (f"All {run.n_claims} claims of {len(run.experiments)} experiments passed"
                   if run.experiments else "No experiment results in this folder")
            h = [f"<section id='failed' class='ok'><h2>{_e(msg)}</h2>"]
        else:
            ne = sum(e.state == "error" for e in bad)
            nu = sum(e.state == "unreadable" for e in bad)
            nc, nx = run.n_claims_failed, sum(bool(e.failed_claims) for e in bad)
            parts = [f"{nc} claim{'s' * (nc != 1)} in {nx} experiment{'s' * (nx != 1)}"] if nc else []
            if ne:
                parts.append(f"{ne} experiment{'s' * (ne != 1)} raised")
            if nu:
                parts.append(f"{nu} unreadable folder{'s' * (nu != 1)}")
            h = ["<section id='failed'><h2>Failed: " + _e(", ".join(parts)) + "</h2><ol>"]
            for e in bad:
                h.append(f"<li>{self.link(e)} <span class='badge {e.state}'>{e.state}</span>")
                if e.state == "unreadable":
                    h.append(" " + _e("; ".join(e.problems)))
                elif e.state == "error":
                    last = e.error.strip().splitlines()[-1] if e.error.strip() else "no message"
                    h.append(" raised: " + _e(last))
                if e.failed_claims:
                    h.append("<ul>")
                    for c in e.failed_claims:
                        h.append(f"<li>{self.location(c, e)} {_e(c['statement'])} &mdash; "
                                 f"measured <b>{_e(_fmt(c.get('measured')))}</b>, expected "
                                 f"{_e(_expected(c))}")
                        if c.get("note"):
                            h.append(f"<div class='note'>{_e(_text(c.get('note')))}</div>")
                        h.append("</li>")
                    h.append("</ul>")
                for w in e.warnings:
                    h.append(f"<div class='warn'>{_e(w)}</div>")
                h.append("</li>")
            h.append("</ol>")
        if warned:
            h.append("<div class='warn'>Warnings: " + "; ".join(
                f"{self.link(e)}: {_e('; '.join(e.warnings))}" for e in warned) + "</div>")
        h.append("</section>")
        return h

    # --- papers
    def groups(self) -> list[tuple[str, list]]:
        by: dict[str, list] = {}
        for e in self.run.experiments:
            ids = e.paper_ids
            key = ids[0] if ids else ""
            by.setdefault(key, []).append(e)
        order = [k for k in PAPERS if k in by] + sorted(k for k in by if k and k not in PAPERS)
        return [(k, by[k]) for k in order] + ([("", by[""])] if "" in by else [])

    def nav(self, groups) -> list[str]:
        h = ["<nav class='papers'><b>Papers</b><ul>"]
        for key, exps in groups:
            nf = sum(len(e.failed_claims) for e in exps)
            nbad = sum(e.state in ("error", "unreadable") for e in exps)
            title = PAPERS[key].title if key in PAPERS else (f"arXiv:{key}" if key else
                                                             "Without a readable paper id")
            bits = ([f"{nf} failed claim{'s' * (nf != 1)}"] if nf else []) + (
                [f"{nbad} raised or unreadable"] if nbad else [])
            tail = (" &mdash; <span style='color:#c0392b'>" + ", ".join(bits) + "</span>"
                    if bits else "")
            h.append(f"<li><a href='#paper-{_e(key or 'other')}'>{_e(title)}</a> "
                     f"({len(exps)} experiment{'s' * (len(exps) != 1)}){tail}</li>")
        h.append("</ul></nav>")
        return h

    def paper(self, key: str, exps: list) -> list[str]:
        anchor = _e(key or "other")
        if key in PAPERS:
            p = PAPERS[key]
            h = [f"<section class='paper' id='paper-{anchor}'><h2>{_e(p.title)}</h2>",
                 f"<p class='pmeta'>{_e(p.authors)} &middot; arXiv:{_e(key)} &middot; "
                 f"<i>readable:</i> {_e(p.readable)}</p>",
                 f"<p class='pmeta'><b>Reproduced:</b> {_e(p.covered)}</p>",
                 f"<p class='pmeta'><b>Not reproduced:</b> {_e(p.not_covered)}</p>"]
        elif key:
            h = [f"<section class='paper' id='paper-{anchor}'><h2>arXiv:{_e(key)}</h2>",
                 "<p class='pmeta'>No description of this paper in measureflow.report.PAPERS.</p>"]
        else:
            h = [f"<section class='paper' id='paper-{anchor}'><h2>Experiments without a "
                 "readable paper id</h2>"]
        others = [e for e in self.run.experiments if key and key in e.paper_ids[1:]]
        if others:
            h.append("<p class='pmeta'>Also covered by: "
                     + ", ".join(self.link(e) for e in others) + "</p>")
        for e in exps:
            h += self.experiment(e)
        h.append("</section>")
        return h

    def experiment(self, e: ExperimentView) -> list[str]:
        h = [f"<article class='exp {e.state}' id='{self.ids[id(e)]}'>"
             f"<h3>{_e(e.name)} <span class='badge {e.state}'>{e.state}</span>"]
        if e.claims:
            h.append(f" <small>{e.n_claims - len(e.failed_claims)}/{e.n_claims} claims</small>")
        h.append("</h3>")
        if e.state == "unreadable":
            if e.title or e.section:
                h.append(f"<p class='meta'>{_e(e.title)} <span class='loc'>{_e(e.section)}"
                         "</span></p>")
            h.append("<p class='warn'>Unreadable: " + _e("; ".join(e.problems)) + "</p></article>")
            return h
        meta = [_e(e.title)] if e.title else []
        meta.append(f"<span class='loc'>{_e(e.section or 'no section given')}</span>")
        if e.paper:
            meta.append(_e(e.paper))
        meta.append(f"mode {_e(e.mode or '?')}")
        meta.append(f"seed {_e(e.seed)}")
        if e.seconds is not None:
            meta.append(f"{e.seconds:.2f} s")
        if e.finished:
            meta.append(f"finished {_e(e.finished)}")
        if e.executor:
            meta.append(_e(e.executor))
        elif e.threads is not None:
            meta.append(f"{_e(e.threads)} thread(s)")
        h.append("<p class='meta'>" + " &middot; ".join(meta) + "</p>")
        for w in e.warnings:
            h.append(f"<p class='warn'>{_e(w)}</p>")
        if e.state == "skipped":
            h.append(f"<p>Skipped: {_e(e.error.strip() or 'no reason given')}</p></article>")
            return h
        if e.state == "error" and e.error:
            last = e.error.strip().splitlines()[-1] if e.error.strip() else ""
            h.append(f"<p class='warn'>Raised: {_e(last)}</p><details><summary>traceback"
                     f"</summary><pre>{_e(e.error)}</pre></details>")
        figs, narrow = self.figures(e)
        layout = "body" if figs and narrow else "body stacked"
        h.append(f"<div class='{layout}'><div class='claims'>")
        if e.claims:
            h.append("<table class='claims'><colgroup><col class='c-res'><col class='c-st'>"
                     "<col class='c-loc'><col class='c-exp'><col class='c-mea'></colgroup>"
                     "<tr><th>result</th><th>claim (paper statement) and note</th>"
                     "<th>paper location</th><th>expected</th><th>measured</th></tr>")
            for c in e.claims:
                ok = c["passed"] is True
                note = (f"<div class='note'>{_e(_text(c.get('note')))}</div>"
                        if c.get("note") else "")
                h.append(f"<tr class='{'pass' if ok else 'fail'}'><td class='res'>"
                         f"{'pass' if ok else 'FAIL'}</td><td>{_e(c['statement'])}{note}</td>"
                         f"<td>{self.location(c, e)}</td>"
                         f"<td class='num'>{_e(_expected(c))}</td>"
                         f"<td class='num' title='{_e(_full(c.get('measured')))}'>"
                         f"{_e(_fmt(c.get('measured')))}</td></tr>")
            h.append("</table>")
        elif e.state != "error":
            h.append("<p class='meta'>No claim.</p>")
        h.append("</div>")
        if figs:
            h.append("<div class='figs'>" + "".join(figs) + "</div>")
        h.append("</div>")
        scal = {k: v for k, v in e.metrics.items() if not isinstance(v, (dict, list))}
        if scal:
            h.append(f"<details><summary>metrics ({len(scal)} scalars)</summary><table>")
            h += [f"<tr><td>{_e(k)}</td><td class='num' title='{_e(_full(v))}'>{_e(_fmt(v))}"
                  "</td></tr>" for k, v in list(scal.items())[:500]]
            h.append("</table></details>")
        if e.config is not None:
            try:
                cfg = json.dumps(e.config, indent=2, ensure_ascii=False)
            except (TypeError, ValueError, RecursionError):
                cfg = _text(e.config)
            h.append("<details><summary>configuration</summary><pre>" + _e(_text(cfg, 50_000))
                     + "</pre></details>")
        h.append("</article>")
        return h

    @staticmethod
    def figures(e: ExperimentView) -> tuple[list[str], bool]:
        """The embedded figures of ``e`` and whether they are all narrow enough to sit beside
        the claims table (else they go below it, at full width)."""
        out, narrow = [], True
        for fname, _path in e.figures:
            data, err = _read_file(e.folder, fname, _FIGURE_LIMIT)
            size = _png_size(data) if err is None else None
            if err is None and size is None:
                err = f"{fname} is not a PNG image"
            if err is not None:
                out.append(f"<p class='warn'>figure not embedded: {_e(err)}</p>")
                continue
            w, h = size
            narrow = narrow and w <= 1.6 * h
            b64 = base64.b64encode(data).decode("ascii")
            out.append(f"<figure><img alt='{_e(fname)}' width='{w}' height='{h}' "
                       f"src='data:image/png;base64,{b64}'><figcaption>{_e(fname)}</figcaption>"
                       "</figure>")
        return out, narrow

    def render(self) -> str:
        groups = self.groups()
        h = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
             "img-src data:; style-src 'unsafe-inline'\">",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             "<link rel='icon' href='data:,'>",
             "<title>measureflow reproduction report</title>",
             f"<style>{_CSS}</style></head><body><main>"]
        h += self.summary()
        h += self.nav(groups)
        for key, exps in groups:
            try:
                h += self.paper(key, exps)
            except Exception as exc:  # noqa: BLE001 - one bad section must not lose the page
                h.append(f"<p class='warn'>This section could not be rendered "
                         f"({_e(type(exc).__name__)}).</p>")
        h.append("<section><h2>Software (of the process that built this page)</h2>"
                 "<table class='sw'>")
        h += [f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in software_versions().items()]
        h.append("</table></section></main></body></html>")
        return "\n".join(h)


def software_versions() -> dict:
    """Python, platform and the versions of measureflow's main dependencies."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("measureflow", "torch", "numpy", "scipy", "POT", "matplotlib", "networkx"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def build_report(out: Path, run: RunView | None = None) -> Path:
    """Write ``out/index.html`` from the experiment folders under ``out`` and return its path.

    ``run`` is what :func:`read_run` returned for ``out`` (read again when None). Malformed or
    tampered folders are rendered as unreadable rows; the only exceptions are ``OSError``\\ s of
    listing ``out`` or writing ``index.html`` (atomically: a temporary file, then a rename).
    """
    out = Path(out)
    run = read_run(out) if run is None else run
    path = out / "index.html"
    atomic_write_text(path, _Page(run).render())
    return path
