"""Offline HTML report of a ``measureflow reproduce`` run.

:func:`build_report` reads what the runner wrote under ``OUT/`` (``status.json``,
``claims.json``, ``metrics.json``, ``config.json`` and PNG figures of every experiment folder)
and writes ``OUT/index.html``: one self-contained page (figures embedded as base64, no
network access needed) with the claims table (pass/fail colour), then per experiment its
paper, section, status, seed, timing, configuration, scalar metrics and figures, and the
software versions of the run.
"""

from __future__ import annotations

import base64
import html
import json
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

from .core.io import atomic_write_text

__all__ = ["build_report", "software_versions"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1200px;
     color:#222;padding:0 1em}
h1{margin-bottom:0} .sub{color:#666;margin-top:.2em}
table{border-collapse:collapse;width:100%;margin:1em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4} tr.pass td.st{background:#d4f7d4} tr.fail td.st{background:#f9d0d0}
.badge{display:inline-block;padding:1px 8px;border-radius:8px;font-size:.85em;color:#fff}
.passed{background:#2a9d4b}.failed{background:#c0392b}.error{background:#8e44ad}
.skipped{background:#7f8c8d}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.8em;max-height:20em}
img{max-width:100%;border:1px solid #eee;margin:.3em 0}
section{border-top:2px solid #eee;margin-top:2em}
"""


def software_versions() -> dict:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("measureflow", "torch", "numpy", "scipy", "POT", "matplotlib", "networkx"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list):
        if len(v) > 8:
            return "[" + ", ".join(_fmt(x) for x in v[:8]) + f", ... ({len(v)} items)]"
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return html.escape(str(v))


def _load(folder: Path, name: str, default):
    try:
        return json.loads((folder / name).read_text())
    except (OSError, ValueError):
        return default


def build_report(out: Path) -> Path:
    """Write ``out/index.html`` from every finished experiment folder under ``out``."""
    out = Path(out)
    exps = []
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        st = _load(folder, "status.json", None)
        if st is None:
            continue
        exps.append((folder, st, _load(folder, "claims.json", []), _load(folder, "metrics.json", {}),
                     _load(folder, "config.json", {})))
    n_claims = sum(len(c) for _, _, c, _, _ in exps)
    n_pass = sum(bool(x.get("passed")) for _, _, c, _, _ in exps for x in c)
    counts: dict[str, int] = {}
    for _, st, *_rest in exps:
        counts[st["status"]] = counts.get(st["status"], 0) + 1
    h = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>measureflow report</title>",
         f"<style>{_CSS}</style></head><body>", "<h1>measureflow reproduction report</h1>",
         f"<p class='sub'>{len(exps)} experiments "
         + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
         + f" &middot; claims: {n_pass}/{n_claims} passed &middot; generated "
         + time.strftime("%Y-%m-%d %H:%M:%S") + "</p>",
         "<h2>Claims</h2><table><tr><th>experiment</th><th>statement</th><th>expected</th>"
         "<th>measured</th><th>tolerance</th><th>result</th></tr>"]
    for _folder, st, claims, _, _ in exps:
        for c in claims:
            ok = bool(c.get("passed"))
            note = f"<br><small>{html.escape(c.get('note', ''))}</small>" if c.get("note") else ""
            cmp_ = html.escape(str(c.get("comparison", "")))
            h.append(f"<tr class='{'pass' if ok else 'fail'}'><td><a href='#{html.escape(st['name'])}'>"
                     f"{html.escape(st['name'])}</a></td><td>{html.escape(str(c.get('statement')))}"
                     f"{note}</td><td>{cmp_} {_fmt(c.get('expected'))}</td>"
                     f"<td>{_fmt(c.get('measured'))}</td><td>{_fmt(c.get('tolerance'))}</td>"
                     f"<td class='st'>{'pass' if ok else 'FAIL'}</td></tr>")
        if st["status"] in ("error", "skipped"):
            h.append(f"<tr class='fail'><td>{html.escape(st['name'])}</td><td colspan=4>"
                     f"experiment {st['status']}: {html.escape(st.get('error', '').strip().splitlines()[-1] if st.get('error') else '')}"
                     f"</td><td class='st'>{st['status']}</td></tr>")
    h.append("</table>")
    for folder, st, _claims, metrics, cfg in exps:
        name = html.escape(st["name"])
        h.append(f"<section id='{name}'><h2>{name} <span class='badge {st['status']}'>"
                 f"{st['status']}</span></h2>")
        h.append(f"<p><b>{html.escape(st.get('title', ''))}</b><br>paper: {html.escape(st.get('paper', ''))}"
                 f" &middot; {html.escape(st.get('section', ''))}<br>mode: {st.get('mode')} &middot; "
                 f"seed: {st.get('seed')} &middot; time: {st.get('seconds', 0):.2f} s &middot; "
                 f"finished: {html.escape(st.get('finished_at', ''))}</p>")
        if st.get("error"):
            h.append(f"<pre>{html.escape(st['error'])}</pre>")
        scal = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}
        if scal:
            h.append("<table><tr><th>metric</th><th>value</th></tr>")
            h += [f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in scal.items()]
            h.append("</table>")
        for fn in st.get("figures", []):
            p = folder / fn
            if p.exists():
                b64 = base64.b64encode(p.read_bytes()).decode()
                h.append(f"<div><img alt='{html.escape(fn)}' src='data:image/png;base64,{b64}'>"
                         f"<br><small>{html.escape(fn)}</small></div>")
        h.append("<details><summary>configuration</summary><pre>"
                 + html.escape(json.dumps(cfg.get("config", cfg), indent=2)) + "</pre></details>")
        h.append("</section>")
    h.append("<section><h2>Software</h2><table>")
    h += [f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
          for k, v in software_versions().items()]
    h.append("</table></section></body></html>")
    path = out / "index.html"
    atomic_write_text(path, "\n".join(h))
    return path
