"""The report's tables of what the gate judged, from the bundle's evidence/ files
(gatewatch.sinks.worm.evidence_files): span coverage vs target, input schema versions,
cardinality vs budgets, drill results. Pure: documents in, HTML out."""
from __future__ import annotations

from gatewatch.sinks.report.widgets import e

SECTION_IDS = ("span-coverage", "schemas", "cardinality", "drill")


def _status(s) -> str:
    cls = "ok" if s in ("PASS", "OK") else "bad" if s in ("FAIL", "OVER") else "muted"
    return f'<span class="{cls}">{e(s)}</span>'


def _absent(what: str) -> str:
    return f'<div class="empty">No {e(what)} in this bundle (`gatewatch evidence` was not given its input).</div>'


def _lowest(windows) -> str:
    """The window with the lowest coverage: a dip the total hides."""
    ws = [w for w in windows or [] if isinstance(w, dict) and isinstance(w.get("coverage"), (int, float))]
    if not ws:
        return "-"
    w = min(ws, key=lambda w: (w["coverage"], str(w.get("start"))))
    return f"{w['coverage'] * 100:.2f} % <span class=muted>at {e(str(w.get('start'))[:16])}Z, {e(w.get('traces'))} traces</span>"


def coverage_section(doc: dict | None) -> str:
    if not doc:
        return _absent("span coverage")
    target = doc.get("target", 0)
    rows = "".join(
        f"<tr><td>{e(svc)}</td><td class=num>{e(r.get('traces'))}</td><td class=num>{e(r.get('covered'))}</td>"
        f"<td class=num>{float(r.get('coverage', 0)) * 100:.2f} %</td><td class=num>{float(target) * 100:g} %</td>"
        f"<td>{_status(r.get('status'))}</td><td>{_lowest(r.get('windows'))}</td>"
        f"<td>{e(', '.join(r.get('essential') or []) or '-')}</td>"
        f"<td>{e(', '.join(f'{k} ({v})' for k, v in (r.get('missing') or {}).items()) or '-')}</td></tr>"
        for svc, r in (doc.get("services") or {}).items())
    files = ", ".join(str(f.get("file")) for f in (doc.get("input") or {}).get("files") or [] if isinstance(f, dict))
    return (f"<p>Overall {_status(doc.get('status'))} \u00b7 {e(doc.get('traces'))} traces \u00b7 inputs read: "
            f"<code>{e(files or '-')}</code></p><table><tr><th>service</th><th>traces</th><th>covered</th><th>coverage</th><th>target</th>"
            "<th>result</th><th>lowest window</th><th>essential spans</th><th>missing (traces)</th></tr>"
            f"{rows or '<tr><td colspan=9 class=muted>no traces</td></tr>'}</table>")


def schemas_section(doc: dict | None) -> str:
    if not doc:
        return _absent("input schema summary")
    rows = "".join(
        f"<tr><td>{e(r['service'])}</td><td>{e(r['input'])}</td><td>{e(r['schema'])}</td>"
        f"<td><code>{e(r['version'] or '-')}</code></td><td>{e(r['histogram'])}</td>"
        f"<td class=num>{e(r['records'])}</td></tr>" for r in doc.get("rows") or [])
    hist = ", ".join(doc.get("histogram_schemas") or []) or "none"
    return (f"<p>Histogram schemas judged: <b>{e(hist)}</b> \u00b7 {e(doc.get('records'))} input records</p>"
            "<table><tr><th>service</th><th>input</th><th>schema</th><th>version</th><th>histogram</th>"
            f"<th>records</th></tr>{rows}</table>")


def _pct(v) -> str:
    return "-" if not isinstance(v, (int, float)) else f"{v:.1f} %"


def cardinality_section(doc: dict | None) -> str:
    if not doc:
        return _absent("cardinality report")
    rows = "".join(
        f"<tr><td>{e(dom)}</td><td class=num>{e(r.get('series'))}</td>"
        f"<td class=num>{e('-' if r.get('budget') is None else r['budget'])}</td>"
        f"<td class=num>{_pct(r.get('used_pct'))}</td>"
        f"<td>{_status(r.get('status'))}</td><td>{e(', '.join(r.get('sources') or []) or '-')}</td></tr>"
        for dom, r in (doc.get("domains") or {}).items())
    return (f"<p>{_status(doc.get('status'))} \u00b7 series_active {e(doc.get('series_active'))} of global budget "
            f"{e(doc.get('budget_global'))}</p><table><tr><th>budget domain</th><th>active series</th><th>budget</th>"
            f"<th>used</th><th>status</th><th>from</th></tr>{rows}</table>")


def drill_section(doc: dict | None) -> str:
    if not doc:
        return _absent("drill report")
    rows = "".join(
        f"<tr><td>{e(h.get('hook'))}</td><td>{e(h.get('kind', 'hook'))}</td><td>{e(h.get('scenario') or '-')}</td>"
        f"<td>{e(', '.join(str(x.get('action', '*')) for x in h.get('expected') or []) or '-')}</td>"
        f"<td class=num>{e('-' if h.get('detect_s') is None else h['detect_s'])}</td>"
        f"<td>{_status(h.get('status'))}</td><td>{e(h.get('reason') or '')}</td></tr>"
        for h in doc.get("hooks") or [] if isinstance(h, dict))
    note = " \u00b7 " + e(doc["subset"]) if doc.get("subset") else ""
    return (f"<p>{e(doc.get('pass'))} PASS, {e(doc.get('fail'))} FAIL \u00b7 policy "
            f"<code>{e(str(doc.get('policy_hash'))[:16])}</code>{note}</p>"
            "<table><tr><th>hook / rule</th><th>kind</th><th>scenario</th><th>expected</th><th>fault\u2192action (s)</th>"
            f"<th>result</th><th>note</th></tr>{rows}</table>")


def judged_sections(docs: dict[str, dict]) -> list[tuple[str, str, str]]:
    """(section id, note, html) for render_report, in report order."""
    return [
        ("span-coverage", "Per service, the share of requests (traces) whose spans include every essential span "
                          "name, against the target.", coverage_section(docs.get("span_coverage"))),
        ("schemas", "The schema each judged input came in: gatewatch schemas by content hash, OTLP by schema_url "
                    "and histogram kind, Prometheus classic histograms.", schemas_section(docs.get("input_schemas"))),
        ("cardinality", "Active series per budget domain over the judged signals, against the seed budgets.",
         cardinality_section(docs.get("cardinality"))),
        ("drill", "Each hook's fault injected by its scenario through the streaming processors (gatewatch drill).",
         drill_section(docs.get("drill"))),
    ]
