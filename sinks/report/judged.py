"""The report's tables of what the gate judged, from the bundle's evidence/ files
(gatewatch.sinks.worm.evidence_files): span coverage vs target, input schema versions,
cardinality vs budgets, drill results. Pure: documents in, HTML out. The documents come from a
bundle that may fail verification, so every shape is guarded: a malformed part is left out, never
a crash (render_from_bundle also passes only documents that pass their verify check)."""
from __future__ import annotations

from gatewatch.sinks.report.widgets import e

SECTION_IDS = ("span-coverage", "schemas", "cardinality", "drill")


def _status(s) -> str:
    cls = "ok" if s in ("PASS", "OK") else "bad" if s in ("FAIL", "OVER") else "muted"
    return f'<span class="{cls}">{e(s)}</span>'


def _absent(what: str, withheld: str | None = None) -> str:
    if withheld:
        return f'<div class="empty">{e(what.capitalize())} not shown: {e(withheld)}.</div>'
    return f'<div class="empty">No {e(what)} in this bundle (`gatewatch evidence` was not given its input).</div>'


def _dict(v) -> dict:
    return v if isinstance(v, dict) else {}


def _dicts(v) -> list[dict]:
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []


def _names(v) -> str:
    return ", ".join(map(str, v)) if isinstance(v, list) else ""


def _share(v, fmt: str = ".2f") -> str:
    return f"{v * 100:{fmt}} %" if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


def _lowest(windows) -> str:
    """The window with the lowest coverage: a dip the total hides."""
    ws = [w for w in _dicts(windows) if isinstance(w.get("coverage"), (int, float))]
    if not ws:
        return "-"
    w = min(ws, key=lambda w: (w["coverage"], str(w.get("start"))))
    return f"{w['coverage'] * 100:.2f} % <span class=muted>at {e(str(w.get('start'))[:16])}Z, {e(w.get('traces'))} traces</span>"


def coverage_section(doc: dict | None, withheld: str | None = None) -> str:
    if not isinstance(doc, dict) or not doc:
        return _absent("span coverage", withheld)
    target = doc.get("target")
    rows = "".join(
        f"<tr><td>{e(svc)}</td><td class=num>{e(r.get('traces'))}</td><td class=num>{e(r.get('covered'))}</td>"
        f"<td class=num>{_share(r.get('coverage'))}</td><td class=num>{_share(target, 'g')}</td>"
        f"<td>{_status(r.get('status'))}</td><td>{_lowest(r.get('windows'))}</td>"
        f"<td>{e(_names(r.get('essential')) or '-')}</td>"
        f"<td>{e(', '.join(f'{k} ({v})' for k, v in _dict(r.get('missing')).items()) or '-')}</td></tr>"
        for svc, r in _dict(doc.get("services")).items() if isinstance(r, dict))
    files = ", ".join(str(f.get("file")) for f in _dicts(_dict(doc.get("input")).get("files")))
    return (f"<p>Overall {_status(doc.get('status'))} \u00b7 {e(doc.get('traces'))} traces \u00b7 inputs read: "
            f"<code>{e(files or '-')}</code></p><table><tr><th>service</th><th>traces</th><th>covered</th><th>coverage</th><th>target</th>"
            "<th>result</th><th>lowest window</th><th>essential spans</th><th>missing (traces)</th></tr>"
            f"{rows or '<tr><td colspan=9 class=muted>no traces</td></tr>'}</table>")


def schemas_section(doc: dict | None, withheld: str | None = None) -> str:
    if not isinstance(doc, dict) or not doc:
        return _absent("input schema summary", withheld)
    rows = "".join(
        f"<tr><td>{e(r.get('service'))}</td><td>{e(r.get('input'))}</td><td>{e(r.get('schema'))}</td>"
        f"<td><code>{e(r.get('version') or '-')}</code></td><td>{e(r.get('histogram'))}</td>"
        f"<td class=num>{e(r.get('records'))}</td></tr>" for r in _dicts(doc.get("rows")))
    hist = _names(doc.get("histogram_schemas")) or "none"
    return (f"<p>Histogram schemas judged: <b>{e(hist)}</b> \u00b7 {e(doc.get('records'))} input records</p>"
            "<table><tr><th>service</th><th>input</th><th>schema</th><th>version</th><th>histogram</th>"
            f"<th>records</th></tr>{rows}</table>")


def _pct(v) -> str:
    return "-" if not isinstance(v, (int, float)) else f"{v:.1f} %"


def cardinality_section(doc: dict | None, withheld: str | None = None) -> str:
    if not isinstance(doc, dict) or not doc:
        return _absent("cardinality report", withheld)
    rows = "".join(
        f"<tr><td>{e(dom)}</td><td class=num>{e(r.get('series'))}</td>"
        f"<td class=num>{e('-' if r.get('budget') is None else r['budget'])}</td>"
        f"<td class=num>{_pct(r.get('used_pct'))}</td>"
        f"<td>{_status(r.get('status'))}</td><td>{e(_names(r.get('sources')) or '-')}</td></tr>"
        for dom, r in _dict(doc.get("domains")).items() if isinstance(r, dict))
    return (f"<p>{_status(doc.get('status'))} \u00b7 series_active {e(doc.get('series_active'))} of global budget "
            f"{e(doc.get('budget_global'))}</p><table><tr><th>budget domain</th><th>active series</th><th>budget</th>"
            f"<th>used</th><th>status</th><th>from</th></tr>{rows}</table>")


def drill_section(doc: dict | None, withheld: str | None = None) -> str:
    if not isinstance(doc, dict) or not doc:
        return _absent("drill report", withheld)
    rows = "".join(
        f"<tr><td>{e(h.get('hook'))}</td><td>{e(h.get('kind', 'hook'))}</td><td>{e(h.get('scenario') or '-')}</td>"
        f"<td>{e(', '.join(str(x.get('action', '*')) for x in _dicts(h.get('expected'))) or '-')}</td>"
        f"<td class=num>{e('-' if h.get('detect_s') is None else h['detect_s'])}</td>"
        f"<td>{_status(h.get('status'))}</td><td>{e(h.get('reason') or '')}</td></tr>"
        for h in _dicts(doc.get("hooks")))
    note = " \u00b7 " + e(doc["subset"]) if doc.get("subset") else ""
    return (f"<p>{e(doc.get('pass'))} PASS, {e(doc.get('fail'))} FAIL \u00b7 policy "
            f"<code>{e(str(doc.get('policy_hash'))[:16])}</code>{note}</p>"
            "<table><tr><th>hook / rule</th><th>kind</th><th>scenario</th><th>expected</th><th>fault\u2192action (s)</th>"
            f"<th>result</th><th>note</th></tr>{rows}</table>")


def judged_sections(docs: dict[str, dict], withheld: str | None = None) -> list[tuple[str, str, str]]:
    """(section id, note, html) for render_report, in report order. withheld: why no documents are
    shown (the bundle failed verification), said in each table's place."""
    return [
        ("span-coverage", "Per service, the share of requests (traces) whose spans include every essential span "
                          "name, against the target.", coverage_section(docs.get("span_coverage"), withheld)),
        ("schemas", "The schema each judged input came in: gatewatch schemas by content hash, OTLP by schema_url "
                    "and histogram kind, Prometheus classic histograms.",
         schemas_section(docs.get("input_schemas"), withheld)),
        ("cardinality", "Active series per budget domain over the judged signals, against the seed budgets.",
         cardinality_section(docs.get("cardinality"), withheld)),
        ("drill", "Each hook's fault injected by its scenario through the streaming processors (gatewatch drill).",
         drill_section(docs.get("drill"), withheld)),
    ]
