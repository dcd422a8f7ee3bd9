"""The report as a reader sees it: opened in a real headless Chromium (Debian's ``chromium``
package, driven by Playwright through the system binary; ``playwright install`` is never used).

Checked on the report of a small run (one real, quick experiment plus small fabricated ones:
passed with figures, failed with a note, skipped): every figure loads, the page makes no request
other than the file itself, logs no console error, the failed-claims summary lies inside the
initial 1280x800 viewport, and skipped experiments are grey, not red.

Skips, saying why, when no Chromium binary or no Playwright is available (``.ci/run`` installs
``chromium`` when it can; set ``MEASUREFLOW_CHROMIUM`` to use another binary).
"""

from __future__ import annotations

import os
import shutil

import pytest

from measureflow.core.errors import ExperimentSkipped
from measureflow.experiments import Claim, Outcome, registry
from measureflow.experiments.registry import Experiment
from measureflow.experiments.runner import run_experiments

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}
#: A real experiment of the registry, cheap at quick sizes, with a figure.
REAL = "spectral.muon-optimizer"


def _chromium() -> str:
    for cand in (os.environ.get("MEASUREFLOW_CHROMIUM"), shutil.which("chromium"),
                 "/usr/bin/chromium", shutil.which("chromium-browser")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    pytest.skip("no Chromium binary (install Debian's `chromium` package: `apt-get install -y "
                "chromium`; .ci/run does it when it can) -- the report was not checked in a "
                "browser")


def _fake(name: str, kind: str) -> Experiment:
    def fn(cfg):
        if kind == "skip":
            raise ExperimentSkipped("optional extra 'models' not installed")
        from measureflow.experiments.plotting import new_figure
        figs = {}
        for i in range(2 if kind == "pass" else 1):
            fig, ax = new_figure()
            ax.plot([0, 1, 2, 3], [0, 1, 4, 9 + i])
            figs[f"curve{i}"] = fig
        ok = kind == "pass"
        return Outcome(metrics={"slope": -0.5}, figures=figs, claims=[
            Claim.within("Sec. 3 (Prop. bounds): fitted slope in [-0.6, -0.4]", -0.6, -0.4,
                         -0.5 if ok else -0.1,
                         note="tolerance: 2 standard errors of the fitted slope " * 3),
            Claim.holds("Thm 3.8: the certificate holds", True)])
    return Experiment(name, "arXiv:2604.04891", "Sec. 3, Prop. bounds", name, fn, {"seed": 0},
                      {"seed": 0})


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("report-run")
    exps = [registry()[REAL], _fake("spectral.zz-pass", "pass"),
            _fake("spectral.zz-fail", "fail"), _fake("attention.zz-skip", "skip")]
    records = run_experiments(exps, "quick", out)
    assert {r.name: r.status for r in records}["spectral.zz-fail"] == "failed"
    return out, records


def test_report_in_a_headless_browser(small_run):
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install "
        "'measureflow[test]') -- the report was not checked in a browser")
    binary = _chromium()
    out, records = small_run
    page_file = out / "index.html"
    url = page_file.resolve().as_uri()
    n_figures = sum(len(list((out / r.name).glob("*.png"))) for r in records)
    assert n_figures >= 4

    with sync_api.sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=binary, args=ARGS, timeout=120_000)
        except Exception as exc:  # noqa: BLE001 - report why, do not pretend it was checked
            pytest.skip(f"{binary} did not start ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''})")
        try:
            context = browser.new_context(viewport=VIEWPORT, java_script_enabled=True)
            requests, blocked, problems = [], [], []

            def guard(route):
                if route.request.url == url or route.request.url.startswith("data:"):
                    route.continue_()
                else:
                    blocked.append(route.request.url)
                    route.abort()

            context.route("**/*", guard)
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.goto(url, wait_until="load")

            # every figure decoded (a broken data URL has naturalWidth 0)
            imgs = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.alt, e.complete, e.naturalWidth])")
            assert len(imgs) == n_figures, imgs
            assert all(done and width > 0 for _, done, width in imgs), imgs

            # nothing but the file itself was requested
            others = [u for u in requests if u != url and not u.startswith("data:")]
            assert not others and not blocked, (others, blocked)
            assert not problems, problems

            # the failed-claims summary is visible without scrolling
            box_el = page.locator("#failed")
            assert box_el.is_visible()
            box = box_el.bounding_box()
            assert box is not None and box["height"] > 0
            assert 0 <= box["y"] and box["y"] + box["height"] <= VIEWPORT["height"], box
            assert 0 <= box["x"] and box["x"] + box["width"] <= VIEWPORT["width"], box
            assert page.evaluate("window.scrollY") == 0
            text = box_el.inner_text()
            assert "spectral.zz-fail" in text and "fitted slope" in text
            assert "tolerance: 2 standard errors" in text and "Sec. 3" in text
            assert "attention.zz-skip" not in text

            # skipped experiments are grey, failed ones red
            colour = "el => getComputedStyle(el).borderLeftColor"
            skipped = page.locator("article.exp.skipped").first.evaluate(colour)
            failed = page.locator("article.exp.failed").first.evaluate(colour)
            grey = [int(c) for c in skipped[skipped.index("(") + 1:-1].split(",")[:3]]
            red = [int(c) for c in failed[failed.index("(") + 1:-1].split(",")[:3]]
            assert max(grey) - min(grey) < 16, skipped      # a grey
            assert red[0] > 150 and red[0] - red[1] > 80, failed  # a red
            # the real experiment is shown with its figure next to its claims
            real = page.locator(f"article[id='exp-{REAL}']")
            assert real.locator(".claims table").count() == 1 and real.locator("img").count() >= 1
        finally:
            browser.close()
