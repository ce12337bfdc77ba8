"""The evidence report as one self-contained HTML document. Pure: data in, HTML string out.

render_report(signals, actions, receipts, verification, policy_hash, ...) -> str

- signals: signal records {"name","scope","cohort","subject","window_s","value","samples","ts",
  optional "baseline","ci_low","ci_high"} (any order; a later record for the same series and ts wins);
- actions: gw.actions values {"id","kind","action","scope","rule":{"id","text"},"signals":[...],"ts",...};
- receipts: executor receipts {"type": INTENT|RESULT|REFUSED, "action_id", "status", "reason", "ts", ...};
- verification: the bundle check (see `build.verification_summary`): {"ok","error","bundle_sha256",
  "origin","size","root","decision_root","signatures":[{"role","name","key_id","status"}],
  "quorum":{"k","n","met","signers"},"actions_verified","files","inv1","lines"};
- policy_hash: the composed policy hash (or None); thresholds: [{"signal","op","threshold","rules"}]
  (default: those the actions report).

No scripts, no external resources: it renders offline from a file. Same input => same bytes.
"""
from __future__ import annotations

from collections import Counter
from html import escape

from gatewatch.sinks.report import svg
from gatewatch.sinks.report.series import (
    OPS,
    Point,
    breach_intervals,
    downsample,
    index_signals,
    merge_thresholds,
    receipts_by_action,
    thresholds_from_actions,
    ts_ms,
    union,
)

PALETTE = ("#2563eb", "#06b6d4", "#16a34a", "#ca8a04", "#9333ea", "#db2777", "#92400e", "#6b7280")
BASELINE, CANARY, POLICY_REF = "#64748b", "#ea580c", "#94a3b8"
KIND_COLOR = {"abort": "#dc2626", "hook": "#d97706", "gate": "#2563eb", "promote": "#16a34a"}
KIND_ORDER = ("abort", "hook", "gate", "promote")
CWV = (("inp", "INP", "ms"), ("lcp", "LCP", "ms"), ("cls", "CLS", ""), ("fcp", "FCP", "ms"), ("ttfb", "TTFB", "ms"))
OP_TEXT = {">=": "\u2265", "<=": "\u2264", "!=": "\u2260", ">": ">", "<": "<", "==": "="}
SECTIONS = (("summary", "Summary"), ("burn-rate", "Error-budget burn rate"), ("cwv", "Core Web Vitals p75"),
            ("cdc", "CDC freshness"), ("actions", "Action timeline"), ("evidence", "Checkpoint and signatures"))

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


def _e(x) -> str:
    return escape("" if x is None else str(x))


def _num(v, digits: int = 4) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "\u2014"
    return f"{v:.{digits}g}"


def _badge(text: str, color: str) -> str:
    return f'<span class="badge" style="background:{color}">{_e(text)}</span>'


def _legend(items: list[tuple[str, str, str]]) -> str:
    """items: (label, color, style) with style '', 'dash' or 'box'."""
    out = []
    for label, color, style in items:
        if style == "dash":
            out.append(f'<span><i class="dash" style="background:repeating-linear-gradient(90deg,{color} 0 5px,'
                       f'transparent 5px 8px)"></i>{_e(label)}</span>')
        elif style == "box":
            out.append(f'<span><i class="box" style="background:{color};opacity:.35"></i>{_e(label)}</span>')
        else:
            out.append(f'<span><i style="background:{color}"></i>{_e(label)}</span>')
    return f'<div class="legend">{"".join(out)}</div>'


def _th_label(th: dict, unit_pct: bool = False) -> str:
    v = f"{th['threshold'] * 100:g}%" if unit_pct else f"{th['threshold']:g}"
    return f"{th['signal']} {OP_TEXT[th['op']]} {v}" + (f"  ({', '.join(th['rules'])})" if th.get("rules") else "")


def _action_ts(a: dict) -> int | None:
    return ts_ms(a.get("ts"))


def _pick_scope(actions: list[dict], series: dict) -> str:
    c = Counter(str(a.get("scope")) for a in actions if a.get("scope"))
    if c:
        return sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    burn = Counter(k[0] for k in series if k[1].startswith("burn_rate_"))
    return sorted(burn.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] if burn else ""


def _window_label(name: str) -> str:
    return name[len("burn_rate_"):]


def _window_order(name: str) -> int:
    w = _window_label(name)
    mult = {"s": 1, "m": 60, "h": 3600, "d": 86400}.get(w[-1:], 0)
    try:
        return int(w[:-1]) * mult
    except ValueError:
        return 1 << 40


def _verdict(actions: list[dict], by_action: dict[str, list[dict]]) -> tuple[str, str]:
    aborts = [a for a in actions if a.get("kind") == "abort"]
    executed = [a for a in aborts if any(r.get("type") == "RESULT" and r.get("status") == "success"
                                         for r in by_action.get(a.get("id"), []))]
    if executed:
        return f"ROLLED BACK ({', '.join(sorted({str(a.get('action')) for a in executed}))})", "v-bad"
    if aborts:
        return "ABORT DECIDED", "v-bad"
    if any(a.get("kind") == "promote" for a in actions):
        return "PROMOTED", "v-good"
    gates = [a for a in actions if a.get("kind") == "gate" and isinstance(a.get("gate"), dict)]
    if gates:
        return f"IN PROGRESS \u00b7 gate at {gates[-1]['gate'].get('to')}", "v-info"
    if any(a.get("kind") == "hook" for a in actions):
        return "HOOKS FIRED", "v-warn"
    return "NO DECISIONS", "v-info"


class _Ctx:
    def __init__(self, series, actions, thresholds, t_range, max_points):
        self.series, self.actions, self.thresholds = series, actions, thresholds
        self.t_range, self.max_points = t_range, max_points
        many = len(actions) > 40
        self.markers = [{"t": t, "color": KIND_COLOR.get(a.get("kind"), "#475569"),
                         "label": f"#{i} {a.get('kind')} {a.get('action')} {(a.get('rule') or {}).get('id', '')}",
                         "tag": "" if many else str(i)}
                        for i, (t, a) in enumerate(actions, 1)]

    def points(self, key, n_series: int) -> list[Point]:
        return downsample(self.series.get(key, []), max(50, self.max_points // max(1, n_series)))

    def ths(self, signal: str) -> list[dict]:
        return [t for t in self.thresholds if t["signal"] == signal]


def _burn_section(ctx: _Ctx, scope: str, cohort: str) -> str:
    keys = sorted({k for k in ctx.series if k[0] == scope and k[2] == cohort and k[1].startswith("burn_rate_")},
                  key=lambda k: (_window_order(k[1]), k))
    if not keys:
        return '<p class="empty">No burn-rate signals for this scope and cohort.</p>'
    series, legend, shade, ths = [], [], [], []
    for i, k in enumerate(keys):
        color = PALETTE[i % len(PALETTE)]
        pts = ctx.points(k, len(keys))
        # short windows drawn last: the fast-moving lines stay on top where windows coincide
        series.insert(0, {"label": _window_label(k[1]), "color": color, "points": pts, "width": 1.8})
        legend.append((_window_label(k[1]), color, ""))
        for th in ctx.ths(k[1]):
            shade += breach_intervals(ctx.series[k], th["op"], th["threshold"])
    by_value: dict[float, list[dict]] = {}
    for th in ctx.thresholds:
        if th["signal"].startswith("burn_rate_"):
            by_value.setdefault(th["threshold"], []).append(th)
    for value, group in sorted(by_value.items()):
        names = ", ".join(sorted({_window_label(t["signal"]) for t in group}))
        rules = ", ".join(sorted({r for t in group for r in t["rules"]}))
        ops = "/".join(sorted({OP_TEXT[t["op"]] for t in group}))
        ths.append({"value": value, "label": f"{names} {ops} {value:g}" + (f"  ({rules})" if rules else ""),
                    "color": svg.BREACH})
    legend += [("policy threshold", svg.BREACH, "dash"), ("a window beyond its threshold", svg.BREACH, "box")]
    chart = svg.time_chart("burn", series, t_range=ctx.t_range, height=320, y_title="burn rate (\u00d7 budget)",
                           thresholds=ths, markers=ctx.markers, shade=union(shade), log_floor=0.01)
    return _legend(legend) + chart


def _cwv_route(ctx: _Ctx, scope: str, metric: str) -> tuple[str, str] | None:
    """(p75 signal name, busiest route) for the metric, or None without canary data."""
    for name in (f"rum_{metric}_p75_ms", f"rum_{metric}_p75"):
        routes = Counter()
        for k, pts in ctx.series.items():
            if k[0] == scope and k[1] == name and k[2] == "canary":
                routes[k[3]] += sum(int(p.extra.get("samples") or 0) for p in pts) or len(pts)
        if routes:
            return name, sorted(routes.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    return None


def _cwv_section(ctx: _Ctx, scope: str, cohort: str) -> str:
    rows, panels = [], []
    for metric, label, unit in CWV:
        found = _cwv_route(ctx, scope, metric)
        if not found:
            continue
        name, route = found
        dname = name + "_delta"
        base = ctx.points((scope, name, "baseline", route), 4)
        can = ctx.points((scope, name, cohort, route), 4)
        delta = ctx.series.get((scope, dname, cohort, route), [])
        band = [Point(p.t, p.extra["baseline"] * (1 + p.v), p.extra["baseline"] * (1 + p.lo),
                      p.extra["baseline"] * (1 + p.hi)) for p in delta
                if isinstance(p.extra.get("baseline"), (int, float)) and p.lo is not None and p.hi is not None]
        ref = [Point(p.t, float(p.extra["baseline"])) for p in ctx.series.get((scope, dname, "baseline", route), [])
               if p.extra.get("baseline_source") == "env" and isinstance(p.extra.get("baseline"), (int, float))]
        abs_series = [{"label": "baseline", "color": BASELINE, "points": base, "width": 1.6},
                      {"label": "canary CI", "color": CANARY, "points": downsample(band, ctx.max_points // 4),
                       "band": True, "width": 0},
                      {"label": cohort, "color": CANARY, "points": can, "width": 1.8}]
        if ref:
            abs_series.insert(0, {"label": "policy", "color": POLICY_REF, "points": downsample(ref, 200),
                                  "dash": "4 4", "width": 1.2})
        unit_txt = f" ({unit})" if unit else ""
        a = svg.time_chart(f"cwv-{metric}", abs_series, t_range=ctx.t_range, width=580, height=220,
                           y_title=f"{label} p75{unit_txt}", markers=ctx.markers)
        d_series = [{"label": "delta", "color": CANARY, "points": downsample(delta, ctx.max_points // 2),
                     "band": True, "width": 1.8}]
        d_ths = [{"value": t["threshold"], "label": _th_label(t, True), "color": svg.BREACH} for t in ctx.ths(dname)]
        shade = union([s for t in ctx.ths(dname) for s in breach_intervals(delta, t["op"], t["threshold"])])
        d = svg.time_chart(f"cwv-{metric}-delta", d_series, t_range=ctx.t_range, width=580, height=220,
                           y_title=f"{label} canary vs baseline", thresholds=d_ths, markers=ctx.markers,
                           shade=shade, y_min=None, y_pct=True)
        panels.append(f'<div class="panel"><h3>{label} p75 \u00b7 route <code>{_e(route)}</code></h3>{a}</div>'
                      f'<div class="panel"><h3>{label} relative change, 90% CI</h3>{d}</div>')
        routes = sorted({k[3] for k in ctx.series if k[0] == scope and k[1] == name})
        for r in routes:
            b = ctx.series.get((scope, name, "baseline", r), [])
            c = ctx.series.get((scope, name, cohort, r), [])
            dl = ctx.series.get((scope, dname, cohort, r), [])
            last = dl[-1] if dl else None
            breach = bool(last) and any(OPS[t["op"]](last.v, t["threshold"]) for t in ctx.ths(dname))
            ci = (f"[{last.lo * 100:+.1f}%, {last.hi * 100:+.1f}%]" if last and last.lo is not None
                  and last.hi is not None else "\u2014")
            rows.append(f"<tr><td>{label}</td><td><code>{_e(r)}</code></td>"
                        f'<td class="num">{_num(b[-1].v) if b else "&mdash;"}</td>'
                        f'<td class="num">{_num(c[-1].v) if c else "&mdash;"}</td>'
                        f'<td class="num {"bad" if breach else ""}">{f"{last.v * 100:+.1f}%" if last else "&mdash;"}</td>'
                        f'<td class="num">{ci}</td>'
                        f'<td class="num">{_e(c[-1].extra.get("samples", "")) if c else ""}</td></tr>')
    if not panels:
        return '<p class="empty">No web-vitals signals for this scope.</p>'
    legend = _legend([("baseline cohort p75", BASELINE, ""), (f"{cohort} p75", CANARY, ""),
                      (f"{cohort} 90% CI", CANARY, "box"), ("policy baseline (env)", POLICY_REF, "dash"),
                      ("policy threshold", svg.BREACH, "dash")])
    table = ("<table><tr><th>metric</th><th>route</th><th>baseline p75</th><th>canary p75</th>"
             "<th>change</th><th>90% CI</th><th>canary samples</th></tr>" + "".join(rows) + "</table>")
    return legend + f'<div class="grid2">{"".join(panels)}</div>' + \
        '<p class="note" style="margin-top:10px">Latest window per route:</p>' + table


def _cdc_section(ctx: _Ctx) -> str:
    out = []
    for name, title in (("cdc_lag_p95_s", "lag p95 (s)"), ("cdc_silence_s", "silence (s)")):
        keys = sorted(k for k in ctx.series if k[1] == name)
        if not keys:
            continue
        series, shade = [], []
        for i, k in enumerate(keys):
            series.append({"label": k[3] or k[0], "color": PALETTE[i % len(PALETTE)],
                           "points": ctx.points(k, len(keys))})
            for th in ctx.ths(name):
                shade += breach_intervals(ctx.series[k], th["op"], th["threshold"])
        ths = [{"value": t["threshold"], "label": _th_label(t), "color": svg.BREACH} for t in ctx.ths(name)]
        chart = svg.time_chart(f"cdc-{name}", series, t_range=ctx.t_range, width=580, height=230,
                               y_title=title, thresholds=ths, markers=ctx.markers, shade=union(shade))
        legend = _legend([(s["label"], s["color"], "") for s in series] + [("policy threshold", svg.BREACH, "dash")])
        out.append(f'<div class="panel"><h3>CDC {title}</h3>{legend}{chart}</div>')
    if not out:
        return '<p class="empty">No CDC signals.</p>'
    return f'<div class="grid2">{"".join(out)}</div>'


def _signals_cell(a: dict) -> str:
    parts = []
    for s in a.get("signals") or []:
        if not isinstance(s, dict):
            continue
        if s.get("op") in OPS and isinstance(s.get("threshold"), (int, float)):
            cls = "bad" if s.get("state") == "true" or (isinstance(s.get("value"), (int, float))
                                                        and OPS[s["op"]](s["value"], s["threshold"])) else ""
            sub = f"[{s['subject']}]" if s.get("subject") else ""
            parts.append(f'<span class="{cls}">{_e(s.get("name"))}{_e(sub)} = {_num(s.get("value"))} '
                         f'{OP_TEXT[s["op"]]} {_num(s["threshold"])}</span>')
    if not parts and a.get("kind") == "gate":
        names = sorted({str(s.get("name")) for s in a.get("signals") or [] if isinstance(s, dict)})
        return f'<span class="muted">{len(names)} required signals clean: {_e(", ".join(names))}</span>'
    return "<br>".join(parts) or '<span class="muted">&mdash;</span>'


def _receipts_cell(rs: list[dict]) -> str:
    out = []
    for r in rs:
        t = r.get("type")
        if t == "RESULT":
            ok = r.get("status") == "success"
            out.append(f'<span class="{"ok" if ok else "bad"}">RESULT {_e(r.get("status"))}</span>')
        elif t == "REFUSED":
            out.append(f'<span class="bad">REFUSED {_e(r.get("reason"))}</span>')
        else:
            out.append(f"<span>{_e(t)}</span>")
    return " \u2192 ".join(out) or '<span class="muted">no receipt</span>'


def _actions_section(ctx: _Ctx, by_action: dict[str, list[dict]]) -> str:
    if not ctx.actions:
        return '<p class="empty">No actions were decided.</p>'
    kinds = [k for k in KIND_ORDER if any(a.get("kind") == k for _, a in ctx.actions)]
    kinds += sorted({str(a.get("kind")) for _, a in ctx.actions} - set(kinds))
    lanes = [(k, KIND_COLOR.get(k, "#475569")) for k in kinds]
    events = [{"t": t, "lane": str(a.get("kind")), "color": KIND_COLOR.get(a.get("kind"), "#475569"),
               "tag": str(i), "label": f"#{i} {a.get('action')} {(a.get('rule') or {}).get('text', '')}"}
              for i, (t, a) in enumerate(ctx.actions, 1)]
    chart = svg.lanes_chart("actions", lanes, events, t_range=ctx.t_range)
    rows = []
    for i, (t, a) in enumerate(ctx.actions, 1):
        rule = a.get("rule") if isinstance(a.get("rule"), dict) else {}
        what = _e(a.get("action"))
        if a.get("kind") == "gate" and isinstance(a.get("gate"), dict):
            what += f'<br><span class="muted">{_e(a["gate"].get("from"))} \u2192 {_e(a["gate"].get("to"))}</span>'
        permit = '<span class="ok">signed</span>' if isinstance(a.get("permit"), dict) else '<span class="muted">none</span>'
        rows.append(f'<tr><td class="num">{i}</td><td class="mono nowrap">{_e(svg.utc(t).strftime("%m-%d %H:%M:%S"))}</td>'
                    f'<td>{_badge(str(a.get("kind")), KIND_COLOR.get(a.get("kind"), "#475569"))}</td>'
                    f"<td>{what}</td><td>{_e(a.get('scope'))}</td>"
                    f'<td><b>{_e(rule.get("id"))}</b><br><span class="muted">{_e(rule.get("text"))}</span></td>'
                    f"<td>{_signals_cell(a)}</td><td>{permit}</td>"
                    f"<td>{_receipts_cell(by_action.get(a.get('id'), []))}</td></tr>")
    table = ("<table><tr><th>#</th><th>event time (UTC)</th><th>kind</th><th>action</th><th>scope</th>"
             "<th>rule</th><th>signals vs thresholds</th><th>permit</th><th>executor receipts</th></tr>"
             + "".join(rows) + "</table>")
    return chart + table


def _status(ok: bool | None, yes: str = "valid", no: str = "invalid") -> str:
    if ok is None:
        return '<span class="muted">&mdash;</span>'
    text = "\u2714 " + yes if ok else "\u2718 " + no
    return f'<span class="{"ok" if ok else "bad"}">{text}</span>'


def _sig_status(status) -> str:
    if status == "valid":
        return _status(True)
    if status == "missing":  # a witness that did not sign is not a bad signature; the quorum row judges
        return '<span class="muted">not signed</span>'
    return _status(False, no=_e(status))


def _evidence_section(v: dict, policy_hash: str | None) -> str:
    q = v.get("quorum") or {}
    rows = [("bundle sha256", f'<code>{_e(v.get("bundle_sha256"))}</code>'),
            ("log origin", _e(v.get("origin"))),
            ("checkpoint size", f'{_e(v.get("size"))} entries'),
            ("Merkle root", f'<code>{_e(v.get("root"))}</code>'),
            ("decision root", f'<code>{_e(v.get("decision_root"))}</code> <span class="muted">the actions in id '
                              'order: equal across runs of the same input, policy and decider key</span>'
                              if v.get("decision_root") else '<span class="muted">&mdash;</span>'),
            ("policy hash", f"<code>{_e(policy_hash)}</code>" if policy_hash else '<span class="muted">none bundled</span>'),
            ("entries", f'{_e(v.get("size"))} inclusion proofs, {_e(v.get("actions_verified"))} action permits'
                        if v.get("ok") else '<span class="muted">&mdash;</span>'),
            ("witness quorum", f'{_e(q.get("k"))}-of-{_e(q.get("n"))} '
                               f'{_status(q.get("met"), "met", "not met")} ({_e(", ".join(q.get("signers") or []) or "none")})'),
            ("INV1 EvidenceBound", _status(v.get("inv1"), "ok", "not shown")),
            ("bundle verification", _status(v.get("ok"), "verified", "FAILED")
             + (f'<br><span class="bad">{_e(v.get("error"))}</span>' if v.get("error") else ""))]
    table1 = "<table>" + "".join(f"<tr><th style='width:200px'>{k}</th><td>{val}</td></tr>" for k, val in rows) + "</table>"
    sig_rows = "".join(
        f"<tr><td>{_e(s.get('role'))}</td><td>{_e(s.get('name'))}</td><td><code>{_e(s.get('key_id'))}</code></td>"
        f"<td>{_sig_status(s.get('status'))}</td></tr>"
        for s in v.get("signatures") or [])
    table2 = ("<h3 style='font-size:13px;margin:16px 0 0'>Checkpoint signatures</h3><table><tr><th>role</th>"
              "<th>key name</th><th>key id</th><th>signature</th></tr>" + sig_rows + "</table>") if sig_rows else ""
    lines = "\n".join(v.get("lines") or [])
    return table1 + table2 + (f"<pre>{_e(lines)}</pre>" if lines else "")


def render_report(signals: list[dict], actions: list[dict], receipts: list[dict], verification: dict,
                  policy_hash: str | None, *, thresholds: list[dict] | None = None, scope: str | None = None,
                  cohort: str = "canary", title: str = "gatewatch evidence report", max_points: int = 2000) -> str:
    series = index_signals(signals)
    timed = sorted(((t, a) for a in actions if isinstance(a, dict) and (t := _action_ts(a)) is not None),
                   key=lambda ta: (ta[0], KIND_ORDER.index(ta[1].get("kind")) if ta[1].get("kind") in KIND_ORDER
                                   else 9, str(ta[1].get("id"))))
    ths = merge_thresholds(list(thresholds) + thresholds_from_actions(actions)) if thresholds is not None \
        else thresholds_from_actions(actions)
    times = [p.t for pts in series.values() for p in (pts[0], pts[-1])] + [t for t, _ in timed]
    t_range = (min(times), max(times)) if times else (0, 3_600_000)
    scope = scope if scope is not None else _pick_scope([a for _, a in timed], series)
    ctx = _Ctx(series, timed, ths, t_range, max_points)
    by_action = receipts_by_action(receipts)
    verdict, vclass = _verdict([a for _, a in timed], by_action)
    kinds = Counter(str(a.get("kind")) for _, a in timed)
    rtypes = Counter(str(r.get("type")) for r in receipts if isinstance(r, dict))
    ev_ok = verification.get("ok")
    ev_badge = ('<span class="verdict v-good">EVIDENCE VERIFIED</span>' if ev_ok
                else '<span class="verdict v-bad">EVIDENCE NOT VERIFIED</span>')
    span = f"{svg.utc(t_range[0]).strftime('%Y-%m-%d %H:%M')} \u2013 {svg.utc(t_range[1]).strftime('%Y-%m-%d %H:%M')} UTC"
    kpis = [(len(signals), "signal records"), (len(series), "series"),
            (kinds.get("abort", 0), "aborts"), (kinds.get("hook", 0), "hooks fired"),
            (kinds.get("gate", 0) + kinds.get("promote", 0), "gate steps / promote"),
            (f"{rtypes.get('RESULT', 0)}/{rtypes.get('REFUSED', 0)}", "executed / refused")]
    nav = "".join(f'<a href="#{sid}">{name}</a>' for sid, name in SECTIONS[1:])
    header = (f'<header class="top" id="summary"><h1>{_e(title)}</h1>'
              f'<div class="sub">scope <b style="color:#fff">{_e(scope or "-")}</b> \u00b7 gate cohort '
              f'<b style="color:#fff">{_e(cohort)}</b> \u00b7 event time {_e(span)}</div>'
              f'<div style="margin-top:12px"><span class="verdict {vclass}">{_e(verdict)}</span>{ev_badge}'
              f'<span class="sub">policy <code>{_e((policy_hash or "none")[:16])}</code> \u00b7 Merkle root '
              f'<code>{_e(str(verification.get("root") or "-")[:16])}</code></span></div>'
              f'<div class="kpis">{"".join(f"<div class=kpi><b>{_e(v)}</b><span>{_e(k)}</span></div>" for v, k in kpis)}</div>'
              f"<nav>{nav}</nav></header>")
    body = [
        ("burn-rate", f"Scope {scope or '-'}, {cohort} cohort, one line per window (log scale). Dashed: the policy's "
                      "thresholds; shaded: where a window is beyond one; numbered lines: actions (see the timeline).",
         _burn_section(ctx, scope, cohort)),
        ("cwv", f"p75 per cohort on the busiest route, with the {cohort}'s 90% confidence interval; right: the "
                "relative change the rules read.", _cwv_section(ctx, scope, cohort)),
        ("cdc", "Replication lag p95 and time since the last change event, per table.", _cdc_section(ctx)),
        ("actions", "Every decision in event-time order with the rule that fired, the signals it read and "
                    "what the executor did.", _actions_section(ctx, by_action)),
        ("evidence", "Offline verification of the WORM bundle: manifest, keys, co-signed checkpoint, inclusion "
                     "proofs, permits.", _evidence_section(verification, policy_hash)),
    ]
    titles = dict(SECTIONS)
    sections = "".join(f'<section id="{sid}"><h2>{titles[sid]}</h2><p class="note">{_e(note)}</p>{content}</section>'
                       for sid, note, content in body)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{_e(title)}</title>"
            f"<style>{CSS}</style></head><body><main>{header}{sections}"
            f"<footer>gatewatch \u00b7 generated from the evidence bundle and recorded signals; "
            f"same inputs give the same bytes</footer></main></body></html>\n")
