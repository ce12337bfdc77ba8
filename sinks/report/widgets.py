"""Small HTML building blocks and the report's palette and labels."""
from __future__ import annotations

from html import escape

BASELINE, CANARY, POLICY_REF = "#64748b", "#ea580c", "#94a3b8"
PALETTE = ("#2563eb", "#06b6d4", "#16a34a", "#ca8a04", "#9333ea", "#db2777", "#92400e", "#6b7280")
BASELINE, CANARY, POLICY_REF = "#64748b", "#ea580c", "#94a3b8"
KIND_COLOR = {"abort": "#dc2626", "hook": "#d97706", "gate": "#2563eb", "promote": "#16a34a"}
KIND_ORDER = ("abort", "hook", "gate", "promote")
CWV = (("inp", "INP", "ms"), ("lcp", "LCP", "ms"), ("cls", "CLS", ""), ("fcp", "FCP", "ms"), ("ttfb", "TTFB", "ms"))
OP_TEXT = {">=": "\u2265", "<=": "\u2264", "!=": "\u2260", ">": ">", "<": "<", "==": "="}
SECTIONS = (("summary", "Summary"), ("burn-rate", "Error-budget burn rate"), ("cwv", "Core Web Vitals p75"),
            ("cdc", "CDC freshness"), ("gates", "Gates per release"), ("actions", "Action timeline"), ("evidence", "Checkpoint and signatures"),
            ("span-coverage", "Span coverage"), ("schemas", "Input schema versions"),
            ("cardinality", "Cardinality vs budgets"), ("drill", "Drill results"))

CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f1f5f9;color:#0f172a;font:14px/1.45 Inter,"Segoe UI",Helvetica,Arial,sans-serif}
main{max-width:1260px;margin:0 auto;padding:24px 20px 48px}
header.top{background:#0f172a;color:#e2e8f0;border-radius:12px;padding:20px 24px;margin-bottom:18px}
header.top h1{margin:0 0 4px;font-size:22px;font-weight:650;color:#fff;letter-spacing:-.01em}
header.top .sub{color:#94a3b8;font-size:13px}
.verdict{display:inline-block;padding:4px 12px;border-radius:999px;font-weight:700;font-size:13px;
 letter-spacing:.04em;margin-right:8px;vertical-align:middle}
.v-bad{background:#fee2e2;color:#991b1b}.v-good{background:#dcfce7;color:#166534}
.v-warn{background:#fef3c7;color:#92400e}.v-info{background:#dbeafe;color:#1e40af}
.kpis{display:grid;grid-template-columns:repeat(6,1fr);gap:10px;margin-top:16px}
.kpi{background:#1e293b;border-radius:8px;padding:10px 12px}
.kpi b{display:block;font-size:20px;color:#fff;font-weight:650}
.kpi span{font-size:11.5px;color:#94a3b8;text-transform:uppercase;letter-spacing:.05em}
section{background:#fff;border:1px solid #e2e8f0;border-radius:12px;padding:18px 20px;margin-bottom:18px}
section h2{margin:0 0 4px;font-size:17px;font-weight:650}
p.note{margin:0 0 12px;color:#64748b;font-size:12.5px}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;margin:4px 0 8px;font-size:12px;color:#334155}
.legend i{display:inline-block;width:18px;height:3px;border-radius:2px;vertical-align:middle;margin-right:6px}
.legend i.dash{height:2px}
.legend i.box{height:10px;width:14px}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:8px 20px}
.panel h3{margin:8px 0 2px;font-size:13px;font-weight:600;color:#334155}
svg.chart{max-width:100%;height:auto;display:block}
table{border-collapse:collapse;width:100%;font-size:12.5px;margin-top:8px}
th{text-align:left;font-weight:600;color:#475569;background:#f8fafc;border-bottom:1px solid #e2e8f0;padding:6px 8px}
td{border-bottom:1px solid #f1f5f9;padding:6px 8px;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.nowrap{white-space:nowrap}
code,.mono{font-family:"JetBrains Mono",Menlo,Consolas,monospace;font-size:11.5px;word-break:break-all}
.badge{display:inline-block;padding:1px 8px;border-radius:999px;font-size:11px;font-weight:700;color:#fff}
.ok{color:#166534;font-weight:600}.bad{color:#b91c1c;font-weight:600}.muted{color:#94a3b8}
pre{background:#f8fafc;border:1px solid #e2e8f0;border-radius:8px;padding:10px 12px;font-size:11.5px;
 white-space:pre-wrap;margin:10px 0 0}
.empty{color:#94a3b8;font-style:italic;padding:8px 0}
nav{margin-top:12px;font-size:12.5px}nav a{color:#93c5fd;margin-right:14px;text-decoration:none}
footer{color:#94a3b8;font-size:11.5px;text-align:center}
"""


def e(x) -> str:
    return escape("" if x is None else str(x))


def num(v, digits: int = 4) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "\u2014"
    return f"{v:.{digits}g}"


def badge(text: str, color: str) -> str:
    return f'<span class="badge" style="background:{color}">{e(text)}</span>'


def legend(items: list[tuple[str, str, str]]) -> str:
    """items: (label, color, style) with style '', 'dash' or 'box'."""
    out = []
    for label, color, style in items:
        if style == "dash":
            out.append(f'<span><i class="dash" style="background:repeating-linear-gradient(90deg,{color} 0 5px,'
                       f'transparent 5px 8px)"></i>{e(label)}</span>')
        elif style == "box":
            out.append(f'<span><i class="box" style="background:{color};opacity:.35"></i>{e(label)}</span>')
        else:
            out.append(f'<span><i style="background:{color}"></i>{e(label)}</span>')
    return f'<div class="legend">{"".join(out)}</div>'


def th_label(th: dict, unit_pct: bool = False) -> str:
    v = f"{th['threshold'] * 100:g}%" if unit_pct else f"{th['threshold']:g}"
    return f"{th['signal']} {OP_TEXT[th['op']]} {v}" + (f"  ({', '.join(th['rules'])})" if th.get("rules") else "")


def status(ok: bool | None, yes: str = "valid", no: str = "invalid") -> str:
    if ok is None:
        return '<span class="muted">&mdash;</span>'
    text = "\u2714 " + yes if ok else "\u2718 " + no
    return f'<span class="{"ok" if ok else "bad"}">{text}</span>'


def sig_status(what) -> str:
    if what == "valid":
        return status(True)
    if what == "missing":  # a witness that did not sign is not a bad signature; the quorum row judges
        return '<span class="muted">not signed</span>'
    return status(False, no=e(what))


