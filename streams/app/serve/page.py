"""GET / of `gatewatch serve`: every live gate, its state, verdict and reasons, server-rendered (no
script, no external assets; every value escaped)."""
from __future__ import annotations

from html import escape

_CSS = """body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.4em .6em;border-bottom:1px solid #ddd;vertical-align:top}
.v{font-weight:600;padding:.1em .5em;border-radius:3px}.pass{background:#d4f4dd}.fail{background:#fbd5d5}
.pending{background:#fdf0c4}ul{margin:0;padding-left:1.2em}small{color:#666}"""


def _reasons(g: dict) -> str:
    items = []
    for r in g.get("reasons") or []:
        extra = [f"{k}={r[k]}" for k in ("value", "threshold", "window_s", "samples") if r.get(k) is not None]
        items.append(f"<li>{escape(str(r.get('kind')))}: {escape(str(r.get('detail')))}"
                     + (f" <small>{escape(', '.join(extra))}</small>" if extra else "") + "</li>")
    return f"<ul>{''.join(items)}</ul>" if items else ""


def render(gates: list[dict], ready: bool) -> bytes:
    rows = []
    for g in gates:
        v = g["verdict"]
        missing = ", ".join(g.get("missing") or [])
        rows.append(
            f"<tr><td>{escape(g['scope'])}</td><td>{escape(g['release'])}</td><td>{escape(str(g.get('state')))}</td>"
            f"<td><span class=\"v {escape(v)}\">{escape(v)}</span></td>"
            f"<td>{escape(missing)}</td><td>{_reasons(g)}</td>"
            f"<td><small>{escape(str(g.get('since')))}<br>{escape(str(g.get('ts')))}</small></td></tr>")
    body = "".join(rows) or '<tr><td colspan="7">no gates yet</td></tr>'
    status = "caught up with the gates topic" if ready else "NOT caught up with the gates topic yet"
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>gatewatch gates</title>"
            f"<style>{_CSS}</style></head><body><h1>gatewatch release gates</h1><p>{len(gates)} gates; "
            f"{status}. JSON: <a href=\"/v1/gates\">/v1/gates</a></p><table><thead><tr><th>scope</th>"
            f"<th>release</th><th>state</th><th>verdict</th><th>missing signals</th><th>reasons</th>"
            f"<th>since / at</th></tr></thead><tbody>{body}</tbody></table></body></html>").encode()
