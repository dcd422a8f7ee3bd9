"""The HTML report: what a reader sees first, per-paper sections, safety against tampered or
corrupted output folders, ``measureflow report OUT``, and paper locations in every experiment.

The browser-level checks (figures load, no request, no console error, summary above the fold)
are in ``test_report_browser.py``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import struct
import zlib
from pathlib import Path

import pytest

from measureflow.cli import main
from measureflow.core.errors import ExperimentSkipped
from measureflow.experiments import Claim, Outcome, registry
from measureflow.experiments.registry import Experiment
from measureflow.experiments.runner import run_experiments
from measureflow.report import (
    PAPERS,
    STATES,
    build_report,
    is_derived_statement,
    paper_locations,
    read_run,
)


# ----------------------------------------------------------------------------- helpers
def png(w: int = 3, h: int = 2, shade: int = 0) -> bytes:
    """A valid RGB PNG of w x h pixels (``shade`` makes the bytes differ)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    rows = b"".join(b"\x00" + bytes((shade + 7 * x + 11 * y) % 256 for x in range(3 * w))
                    for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def claim(statement: str, passed: bool = True, note: str = "", **kw) -> dict:
    c = {"statement": statement, "expected": 1.0, "measured": 1.0 if passed else 3.25,
         "tolerance": 0.1, "passed": passed, "comparison": "abs", "note": note}
    c.update(kw)
    return c


def write_exp(out: Path, name: str, *, status: str = "passed", claims=None, figures=None,
              paper: str = "arXiv:2604.04891", section: str = "Sec. 3, Prop. bounds",
              error: str = "", metrics=None, config=None, **st_extra) -> Path:
    """An experiment folder as the runner writes it (figures: name -> bytes)."""
    folder = out / name
    folder.mkdir(parents=True)
    figures = figures or {}
    for fname, data in figures.items():
        (folder / fname).write_bytes(data)
    (folder / "claims.json").write_text(json.dumps(claims if claims is not None else []))
    (folder / "metrics.json").write_text(json.dumps(metrics if metrics is not None else {"x": 1}))
    (folder / "config.json").write_text(json.dumps(
        {"name": name, "mode": "quick", "config": config if config is not None else {"n": 4}}))
    st = {"name": name, "title": f"title of {name}", "paper": paper, "section": section,
          "mode": "quick", "seed": 0, "config_hash": "0" * 16, "status": status,
          "seconds": 0.25, "figures": list(figures), "error": error, "complete": True,
          "finished_at": "2026-01-01T00:00:00+0000", "executor": "in-process", "threads": 1}
    st.update(st_extra)
    (folder / "status.json").write_text(json.dumps(st))
    return folder


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def article(html_text: str, name: str) -> str:
    """The <article> of experiment ``name``."""
    start = html_text.index(f"id='exp-{name}'")
    return html_text[start:html_text.index("</article>", start)]


@pytest.fixture
def mixed(tmp_path):
    """A run with every state: passed (2 figures), failed (a note), error, skipped."""
    out = tmp_path / "out"
    write_exp(out, "spectral.good", claims=[claim("Paper (Thm 3.8): the laws are QQ^T"),
                                            claim("a check without location")],
              figures={"a.png": png(shade=1), "b.png": png(shade=2)})
    write_exp(out, "spectral.bad", status="failed",
              claims=[claim("Sec. 5, Fig. mmd: the flow converges", passed=False,
                            note="measured at n = 64: sampling floor"),
                      claim("one SGD step moves the law by 1/2 tau^2 (derived identity)")],
              figures={"c.png": png(shade=3)})
    write_exp(out, "bregman.boom", status="error", paper="arXiv:2602.01372",
              section="Sec. 3, Thm. (dual rate)",
              error="Traceback (most recent call last):\nRuntimeError: kaboom <x>")
    write_exp(out, "attention.opt", status="skipped", paper="arXiv:2512.10656",
              section="Abstract", error="optional extra 'models' not installed")
    write_exp(out, "zz.other", paper="arXiv:0000.00000", section="Fig. 1",
              claims=[claim("Fig. 1: it holds")])
    return out


# ----------------------------------------------------------------------------- content
def test_summary_first_failed_claims_with_notes_and_counts(mixed):
    html_text = build_report(mixed).read_text()
    summary = html_text[:html_text.index("<nav")]
    # the failed-claims box comes first, with the statement, its note and the paper location
    box = summary[summary.index("id='failed'"):summary.index("</section>")]
    assert "Sec. 5, Fig. mmd: the flow converges" in box
    assert "measured at n = 64: sampling floor" in box
    assert "<span class='loc'>Sec. 5; Fig. mmd</span>" in box
    assert "kaboom &lt;x&gt;" in box  # the experiment that raised, its last line
    assert "spectral.good" not in box and "attention.opt" not in box
    # counts of experiments and claims
    for text in ("2 passed", "1 failed", "1 error", "1 skipped", "claims: 4 of 5 passed"):
        assert text in summary, text
    # the skipped experiment is grey, listed apart, not among the failures
    assert "class='skippedline'" in summary and "attention.opt" in summary
    assert "<article class='exp skipped'" in html_text
    assert "<span class='badge skipped'>skipped</span>" in article(html_text, "attention.opt")


def test_one_section_per_paper_with_description_and_figures_next_to_claims(mixed):
    html_text = build_report(mixed).read_text()
    p = PAPERS["2604.04891"]
    sec = html_text[html_text.index("id='paper-2604.04891'"):]
    sec = sec[:sec.index("</section>")]
    assert p.title in sec and "arXiv:2604.04891" in sec
    assert "Reproduced:" in sec and "Not reproduced:" in sec
    assert "spectral.good" in sec and "spectral.bad" in sec and "bregman.boom" not in sec
    # papers are in PAPERS order, an unknown paper id still gets its section
    assert html_text.index("id='paper-2604.04891'") < html_text.index("id='paper-2602.01372'")
    assert "id='paper-0000.00000'" in html_text
    # each figure sits in its experiment's article, in the same block as the claims table
    good = article(html_text, "spectral.good")
    body = good[good.index("<div class='body"):good.index("<details>")]
    assert body.index("<table class='claims'>") < body.index(b64(png(shade=1)))
    assert b64(png(shade=2)) in body
    assert b64(png(shade=3)) in article(html_text, "spectral.bad")


def test_every_claim_row_shows_a_paper_location(mixed):
    html_text = build_report(mixed).read_text()
    good = article(html_text, "spectral.good")
    assert "<span class='loc'>Thm 3.8</span>" in good
    # no location in the statement: the experiment's section, marked as such
    assert re.search(r"<span class='loc fallback'[^>]*>Sec. 3, Prop. bounds</span>", good)
    bad = article(html_text, "spectral.bad")
    assert "derived</span>" in bad
    rows = re.findall(r"<tr class='(?:pass|fail)'>.*?</tr>", html_text, re.S)
    assert len(rows) == 5 and all("class='loc" in r for r in rows)


@pytest.mark.parametrize("text, expected", [
    ("Paper (Sec. 5): flow-Sinkhorn is faster", ["Sec. 5"]),
    ("attention: Thm 3.8: QQ^T - KK^T are all the laws", ["Thm 3.8"]),
    ("Cor. 3.9-3.10 and Prop 3.11", ["Cor. 3.9-3.10", "Prop 3.11"]),
    ("Ex. 4.8 (m = 1): 3 laws", ["Ex. 4.8"]),
    ("bound of Eq. (12) holds", ["Eq. (12)"]),
    ("App. B: RBF features; Appendix F", ["App. B", "Appendix F"]),
    ("Sec. 5/6.1: MMD decays", ["Sec. 5/6.1"]),
    ("Abstract (v1): 'kernel-type norm'", ["Abstract (v1)"]),
    ("Sec. 'Entropic regularization': bias", ["Sec. 'Entropic regularization'"]),
    ("Prop. bounds and Fig. bench-overview-small", ["Prop. bounds", "Fig. bench-overview-small"]),
    ("Thm formalGF; Table 2; §3.3", ["Thm formalGF", "Table 2", "§3.3"]),
    ("x [notes: Chap. 'Dynamic OT', Thm 'Benamou--Brenier']",
     ["Chap. 'Dynamic OT'", "Thm 'Benamou--Brenier'"]),
    ("Remark 'eps-scaling and Sinkhorn'): same optimum", ["Remark 'eps-scaling and Sinkhorn'"]),
    ("Chapter 3 and Proposition 2.1", ["Chapter 3", "Proposition 2.1"]),
    ("Fig. 1 (conv), Fig. 5 (Transformer), Fig. 1 again", ["Fig. 1", "Fig. 5"]),
    ("Exact OT of n samples, for example", []),
    ("notebook Part C: counts", []),
    ("Sectors 12 and Figures", []),
    (None, []),
])
def test_paper_locations(text, expected):
    assert paper_locations(text) == expected


def test_derived_statements_are_recognised():
    assert is_derived_statement("one step changes h by 1/2 tau^2 g^T H g (derived identity)")
    assert is_derived_statement("[derived] rank check")
    assert not is_derived_statement("Thm 3.8: all the laws")
    assert not is_derived_statement(3)


# ----------------------------------------------------------------------------- safety
def test_tampered_figures_are_not_embedded(tmp_path):
    out = tmp_path / "out"
    outside = png(shade=99)
    (tmp_path / "x.png").write_bytes(outside)       # what "../x.png" would reach
    (out.parent / "secret.png").write_bytes(outside)
    folder = write_exp(out, "spectral.evil", claims=[claim("Thm 1: ok")],
                       figures={"ok.png": png(shade=5), "text.png": b"root:x:0:0:root:/root"})
    (folder / "link.png").symlink_to(tmp_path / "secret.png")
    (folder / "sub").mkdir()
    (folder / "sub" / "inner.png").write_bytes(outside)
    st = json.loads((folder / "status.json").read_text())
    st["figures"] = ["/etc/passwd", "../x.png", "../../x.png", "link.png", "text.png",
                     "sub/inner.png", "/etc/hostname.png", 7, "ok.png", "missing.png"]
    (folder / "status.json").write_text(json.dumps(st))
    html_text = build_report(out).read_text()
    assert html_text.count("data:image/png;base64,") == 1
    assert b64(png(shade=5)) in html_text
    assert b64(outside) not in html_text
    assert "root:x:0:0" not in html_text and b64(b"root:x:0:0:root:/root") not in html_text
    if Path("/etc/passwd").is_file():
        assert b64(Path("/etc/passwd").read_bytes())[:40] not in html_text
    warnings = article(html_text, "spectral.evil")
    for bad in ("/etc/passwd", "../x.png", "link.png", "text.png", "sub/inner.png", "missing.png"):
        assert html_text.count(bad) >= 1, bad
    assert "symbolic link" in warnings and "not a PNG image" in warnings
    # the run view keeps only the plain names inside the folder
    view = read_run(out).experiments[0]
    assert [f for f, _ in view.figures] == ["link.png", "text.png", "ok.png", "missing.png"]
    assert view.state == "passed"


def test_html_in_every_field_is_escaped(tmp_path):
    out = tmp_path / "out"
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    write_exp(out, "spectral.html", title=evil, section=evil, mode=evil, seed=evil,
              finished_at=evil, executor=evil, threads=evil, paper=f"arXiv:2604.04891 {evil}",
              claims=[claim(evil, passed=False, note=evil, expected=evil, measured=evil,
                            tolerance=evil, comparison=evil)],
              metrics={evil: evil, "n": 3}, config={evil: [evil]},
              figures={"a.png": png()})
    write_exp(out, "spectral.status", status=evil, claims=[claim("Thm 1")])
    folder = write_exp(out, "spectral.fig", claims=[claim("Thm 1")])
    st = json.loads((folder / "status.json").read_text())
    st["figures"] = [evil + ".png", "x'><script>.png"]
    (folder / "status.json").write_text(json.dumps(st))
    html_text = build_report(out).read_text()
    assert "<script" not in html_text and "<img src=x" not in html_text
    assert "onerror=alert(2)>" not in html_text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_text
    assert "x&#x27;&gt;&lt;script&gt;.png" in html_text
    # an unknown status is not rendered as a state: the folder is unreadable
    views = {v.name: v for v in read_run(out).experiments}
    assert views["spectral.status"].state == "unreadable"
    assert "unknown status" in views["spectral.status"].problems[0]
    assert views["spectral.html"].state == "passed"
    assert set(v.state for v in views.values()) <= set(STATES)


def _corrupt(out: Path) -> dict[str, str]:
    """Folders with malformed or missing files; returns name -> expected reason fragment."""
    cases = {}

    def case(name, reason, mutate):
        folder = write_exp(out, name, claims=[claim("Thm 1: fine")])
        mutate(folder)
        cases[name] = reason

    case("ot.badjson", "status.json is not valid JSON",
         lambda f: (f / "status.json").write_text("{not json"))
    case("ot.badclaims", "claims.json is not valid JSON",
         lambda f: (f / "claims.json").write_bytes(b"\xff\xfe[oops"))
    case("ot.noclaims", "claims.json is missing", lambda f: (f / "claims.json").unlink())
    case("ot.list", "status.json is not a JSON object",
         lambda f: (f / "status.json").write_text("[1, 2]"))
    case("ot.claimdict", "claims.json is not a list",
         lambda f: (f / "claims.json").write_text('{"statement": "x"}'))
    case("ot.claimentry", "not a claim",
         lambda f: (f / "claims.json").write_text('[{"statement": 3, "passed": "yes"}]'))
    case("ot.deep", "nested too deeply",
         lambda f: (f / "claims.json").write_text("[" * 200_000 + "]" * 200_000))
    case("ot.othername", "not for the folder",
         lambda f: (f / "status.json").write_text(json.dumps({"name": "ot.x", "status": "passed"})))

    def symlinked(f):
        (f / "status.json").unlink()
        (f / "status.json").symlink_to("/etc/passwd")
    case("ot.symlink", "symbolic link", symlinked)

    def fifo(f):
        (f / "claims.json").unlink()
        os.mkfifo(f / "claims.json")
    if hasattr(os, "mkfifo"):
        case("ot.fifo", "not a regular file", fifo)
    # a symlinked experiment folder is not followed
    target = write_exp(out.parent / "elsewhere", "ot.target", claims=[claim("Thm 1")])
    (out / "ot.linked").symlink_to(target)
    cases["ot.linked"] = "folder is a symbolic link"
    return cases


def test_malformed_or_missing_files_render_as_unreadable_rows(tmp_path):
    out = tmp_path / "out"
    write_exp(out, "ot.fine", claims=[claim("Thm 1: fine")], figures={"f.png": png()})
    cases = _corrupt(out)
    # metrics/config problems are warnings, not unreadable
    folder = write_exp(out, "ot.nometrics", claims=[claim("Thm 2")])
    (folder / "metrics.json").write_text("nan nan")
    (folder / "config.json").unlink()
    # a folder a run prepared but has not finished, and junk next to the folders
    (out / "ot.pending").mkdir()
    (out / "ot.pending" / "config.json").write_text("{}")
    (out / "notes.txt").write_text("hello")
    (out / ".hidden").mkdir()
    path = build_report(out)
    html_text = path.read_text()
    views = {v.name: v for v in read_run(out).experiments}
    assert views["ot.fine"].state == "passed" and views["ot.nometrics"].state == "passed"
    assert any("metrics.json is not valid JSON" in w for w in views["ot.nometrics"].warnings)
    for name, reason in cases.items():
        assert views[name].state == "unreadable", name
        assert views[name].claims == [], name
        assert any(reason in p for p in views[name].problems), (name, views[name].problems)
        assert reason in article(html_text, name) or reason in html_text, name
    assert f"{len(cases)} unreadable" in html_text
    box = html_text[html_text.index("id='failed'"):html_text.index("</section>")]
    assert all(name in box for name in cases)
    assert "ot.pending" in html_text and "not finished" in html_text
    assert "root:x:0:0" not in html_text  # the symlinked status.json was not read
    assert "ot.target" not in html_text or "Thm 1" not in article(html_text, "ot.linked")


def test_page_has_no_script_and_requests_nothing(mixed):
    html_text = build_report(mixed).read_text()
    assert "<script" not in html_text.lower()
    refs = re.findall(r"""(?:src|href|action|data)\s*=\s*['"]([^'"]*)""", html_text, re.I)
    assert refs and all(r.startswith(("data:", "#")) for r in refs), set(refs)
    assert "url(" not in html_text and "@import" not in html_text
    assert "default-src 'none'" in html_text


# ----------------------------------------------------------------------------- run + CLI
def _fake_exp(name, kind):
    def fn(cfg):
        if kind == "skip":
            raise ExperimentSkipped("optional extra 'models' not installed")
        if kind == "boom":
            raise RuntimeError("kaboom")
        from measureflow.experiments.plotting import new_figure
        fig, ax = new_figure()
        ax.plot([0, 1, 2], [0, 1, 4])
        ok = kind == "pass"
        return Outcome(metrics={"value": 0.5, "series": [1.0, float("nan")]}, figures={"plot": fig},
                       claims=[Claim.at_most("Sec. 3 (Prop. bounds): value <= 1", 1.0,
                                             0.5 if ok else 2.0, note="note of " + name)])
    return Experiment(name, "arXiv:2604.04891", "Sec. 3, Prop. bounds", name, fn, {"seed": 0},
                      {"seed": 0})


def test_report_of_a_real_run_and_the_report_command(tmp_path, capsys):
    out = tmp_path / "out"
    exps = [_fake_exp("spectral.zz-pass", "pass"), _fake_exp("spectral.zz-fail", "fail"),
            _fake_exp("spectral.zz-skip", "skip"), _fake_exp("spectral.zz-boom", "boom")]
    run_experiments(exps, "quick", out)
    first = (out / "index.html").read_text()
    run = read_run(out)
    assert [e.state for e in run.experiments] == ["error", "failed", "passed", "skipped"]
    assert "note of spectral.zz-fail" in first and first.count("data:image/png;base64,") == 2
    # `measureflow report OUT` rebuilds the page from the folder alone
    (out / "index.html").unlink()
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    said = capsys.readouterr().out
    assert "index.html" in said and "1/2 claims passed" in said
    again = (out / "index.html").read_text()
    strip = lambda s: re.sub(r"built [^<]* from", "", s)  # noqa: E731
    assert strip(again) == strip(first)


def test_report_command_usage_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["report", str(tmp_path / "file")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "no experiment results" in capsys.readouterr().err
    assert main(["report"]) == 2
    # index.html cannot be written (a folder in its place): exit 3, one line
    out = tmp_path / "out"
    write_exp(out, "ot.one", claims=[claim("Thm 1")])
    (out / "index.html").mkdir()
    capsys.readouterr()
    assert main(["report", str(out)]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot write"), err


# ----------------------------------------------------------------------------- registry
#: Experiments whose ``section`` names no paper location (Sec./Thm/Prop/Fig/App./Eq./Table/
#: Abstract ...). Each entry must disappear when its module is fixed (strict xfail).
SECTION_WITHOUT_LOCATION: set[str] = set()

#: Experiments with claims whose statement quotes no paper location and does not say it checks
#: something of ours ("derived", "sanity check", "not in the paper"). Each entry must disappear
#: when fixed (strict xfail). Empty since 2 Dec 2026: every claim quotes a location or is marked.
CLAIMS_WITHOUT_LOCATION: set[str] = set()

#: Cheap experiments whose claims are checked by the fast suite (the others: ``-m slow``).
CHEAP = ("conservation.resnet-blocks", "sampling.anisotropy", "spectral.muon-optimizer",
         "ot.mccann")

_NAMES = sorted(registry())


def _params(names, known, slow=()):
    out = []
    for n in names:
        marks = []
        if n in known:
            marks.append(pytest.mark.xfail(strict=True, reason="known: cites no location yet"))
        if n in slow:
            marks.append(pytest.mark.slow)
        out.append(pytest.param(n, marks=marks, id=n))
    return out


def test_known_lists_name_registered_experiments():
    unknown = (SECTION_WITHOUT_LOCATION | CLAIMS_WITHOUT_LOCATION | set(CHEAP)) - set(_NAMES)
    assert not unknown, f"not registered any more: {sorted(unknown)}"


@pytest.mark.parametrize("name", _params(_NAMES, SECTION_WITHOUT_LOCATION))
def test_experiment_section_names_a_paper_location(name):
    exp = registry()[name]
    assert re.fullmatch(r"arXiv:\d{4}\.\d{4,5}( \+ arXiv:\d{4}\.\d{4,5})*", exp.paper), exp.paper
    assert all(i in PAPERS for i in re.findall(r"\d{4}\.\d{4,5}", exp.paper)), (
        f"{exp.paper}: describe the paper in measureflow.report.PAPERS")
    assert paper_locations(exp.section), f"{name}: section {exp.section!r} names no location"


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    return tmp_path_factory.mktemp("quick-runs")


@pytest.mark.parametrize("name", _params(
    _NAMES, CLAIMS_WITHOUT_LOCATION, slow=[n for n in _NAMES if n not in CHEAP]))
def test_experiment_claims_quote_a_paper_location(name, quick_runs):
    out = quick_runs / name
    run_experiments([registry()[name]], "quick", out)
    view = next(v for v in read_run(out).experiments if v.name == name)
    if view.state == "skipped":
        pytest.skip(f"{name} skipped: {view.error}")
    assert view.state in ("passed", "failed"), (view.state, view.problems, view.error[-500:])
    lacking = [c["statement"] for c in view.claims
               if not paper_locations(c["statement"]) and not is_derived_statement(
                   c["statement"])]
    assert not lacking, f"{name}: claims quoting no paper location: {lacking}"
