"""The report's sections (burn rate, Core Web Vitals, CDC, actions, evidence), each HTML from the
data gathered in a Ctx; html.py puts them together."""
from __future__ import annotations

from collections import Counter

from gatewatch.sinks.report import svg
from gatewatch.sinks.report.series import (
    OPS,
    Point,
    breach_intervals,
    downsample,
    ts_ms,
    union,
)
from gatewatch.sinks.report.widgets import (
    BASELINE,
    CANARY,
    CWV,
    KIND_COLOR,
    KIND_ORDER,
    OP_TEXT,
    PALETTE,
    POLICY_REF,
    badge,
    e,
    legend,
    num,
    sig_status,
    status,
    th_label,
)


def action_ts(a: dict) -> int | None:
    return ts_ms(a.get("ts"))


def pick_scope(actions: list[dict], series: dict) -> str:
    c = Counter(str(a.get("scope")) for a in actions if a.get("scope"))
    if c:
        return sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    burn = Counter(k[0] for k in series if k[1].startswith("burn_rate_"))
    return sorted(burn.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] if burn else ""


def pick_release(actions: list[dict], scope: str) -> str | None:
    """The release the page is about: that of the scope's last abort, else of its last action
    that names one (actions in time order); None when none does."""
    named = [a for a in actions if a.get("scope") == scope and isinstance(a.get("release"), str) and a["release"]]
    aborts = [a for a in named if a.get("kind") == "abort"]
    return (aborts or named)[-1]["release"] if named else None


def _window_label(name: str) -> str:
    return name[len("burn_rate_"):]


def _window_order(name: str) -> int:
    w = _window_label(name)
    mult = {"s": 1, "m": 60, "h": 3600, "d": 86400}.get(w[-1:], 0)
    try:
        return int(w[:-1]) * mult
    except ValueError:
        return 1 << 40


def verdict_of(actions: list[dict], by_action: dict[str, list[dict]]) -> tuple[str, str]:
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


class Ctx:
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


def burn_section(ctx: Ctx, scope: str, cohort: str) -> str:
    keys = sorted({k for k in ctx.series if k[0] == scope and k[2] == cohort and k[1].startswith("burn_rate_")},
                  key=lambda k: (_window_order(k[1]), k))
    if not keys:
        return '<p class="empty">No burn-rate signals for this scope and cohort.</p>'
    series, legend_keys, shade, ths = [], [], [], []
    for i, k in enumerate(keys):
        color = PALETTE[i % len(PALETTE)]
        pts = ctx.points(k, len(keys))
        # short windows drawn last: the fast-moving lines stay on top where windows coincide
        series.insert(0, {"label": _window_label(k[1]), "color": color, "points": pts, "width": 1.8})
        legend_keys.append((_window_label(k[1]), color, ""))
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
    legend_keys += [("policy threshold", svg.BREACH, "dash"), ("a window beyond its threshold", svg.BREACH, "box")]
    chart = svg.time_chart("burn", series, t_range=ctx.t_range, height=320, y_title="burn rate (\u00d7 budget)",
                           thresholds=ths, markers=ctx.markers, shade=union(shade), log_floor=0.01)
    return legend(legend_keys) + chart


def _cwv_route(ctx: Ctx, scope: str, metric: str) -> tuple[str, str] | None:
    """(p75 signal name, busiest route) for the metric, or None without canary data."""
    for name in (f"rum_{metric}_p75_ms", f"rum_{metric}_p75"):
        routes = Counter()
        for k, pts in ctx.series.items():
            if k[0] == scope and k[1] == name and k[2] == "canary":
                routes[k[3]] += sum(int(p.extra.get("samples") or 0) for p in pts) or len(pts)
        if routes:
            return name, sorted(routes.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    return None


def cwv_section(ctx: Ctx, scope: str, cohort: str) -> str:
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
        d_ths = [{"value": t["threshold"], "label": th_label(t, True), "color": svg.BREACH} for t in ctx.ths(dname)]
        shade = union([s for t in ctx.ths(dname) for s in breach_intervals(delta, t["op"], t["threshold"])])
        d = svg.time_chart(f"cwv-{metric}-delta", d_series, t_range=ctx.t_range, width=580, height=220,
                           y_title=f"{label} canary vs baseline", thresholds=d_ths, markers=ctx.markers,
                           shade=shade, y_min=None, y_pct=True)
        panels.append(f'<div class="panel"><h3>{label} p75 \u00b7 route <code>{e(route)}</code></h3>{a}</div>'
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
            rows.append(f"<tr><td>{label}</td><td><code>{e(r)}</code></td>"
                        f'<td class="num">{num(b[-1].v) if b else "&mdash;"}</td>'
                        f'<td class="num">{num(c[-1].v) if c else "&mdash;"}</td>'
                        f'<td class="num {"bad" if breach else ""}">{f"{last.v * 100:+.1f}%" if last else "&mdash;"}</td>'
                        f'<td class="num">{ci}</td>'
                        f'<td class="num">{e(c[-1].extra.get("samples", "")) if c else ""}</td></tr>')
    if not panels:
        return '<p class="empty">No web-vitals signals for this scope.</p>'
    key = legend([("baseline cohort p75", BASELINE, ""), (f"{cohort} p75", CANARY, ""),
                      (f"{cohort} 90% CI", CANARY, "box"), ("policy baseline (env)", POLICY_REF, "dash"),
                      ("policy threshold", svg.BREACH, "dash")])
    table = ("<table><tr><th>metric</th><th>route</th><th>baseline p75</th><th>canary p75</th>"
             "<th>change</th><th>90% CI</th><th>canary samples</th></tr>" + "".join(rows) + "</table>")
    return key + f'<div class="grid2">{"".join(panels)}</div>' + \
        '<p class="note" style="margin-top:10px">Latest window per route:</p>' + table


def cdc_section(ctx: Ctx) -> str:
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
        ths = [{"value": t["threshold"], "label": th_label(t), "color": svg.BREACH} for t in ctx.ths(name)]
        chart = svg.time_chart(f"cdc-{name}", series, t_range=ctx.t_range, width=580, height=230,
                               y_title=title, thresholds=ths, markers=ctx.markers, shade=union(shade))
        key = legend([(s["label"], s["color"], "") for s in series] + [("policy threshold", svg.BREACH, "dash")])
        out.append(f'<div class="panel"><h3>CDC {title}</h3>{key}{chart}</div>')
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
            # an OR rule's other terms: without the mark "6.0 > 14.4" read as a false statement
            unmet = "" if cls else ' <span class="muted">(not met)</span>'
            parts.append(f'<span class="{cls}">{e(s.get("name"))}{e(sub)} = {num(s.get("value"))} '
                         f'{OP_TEXT[s["op"]]} {num(s["threshold"])}{unmet}</span>')
    if not parts and a.get("kind") == "gate":
        names = sorted({str(s.get("name")) for s in a.get("signals") or [] if isinstance(s, dict)})
        return f'<span class="muted">{len(names)} required signals clean: {e(", ".join(names))}</span>'
    return "<br>".join(parts) or '<span class="muted">&mdash;</span>'


def _delivery(r: dict) -> str:
    """The recipient's signed acknowledgement (verified by `gatewatch verify` before the report is built):
    named by the pinned key it was checked against, recipient-<backend>, never the ack's free-text
    "recipient", which the signer could set to anything."""
    if r.get("delivery") == "confirmed":
        return f' <span class="ok">acked by recipient-{e(r.get("backend"))}</span>'
    if r.get("delivery") == "unconfirmed":
        return f' <span class="bad">unconfirmed ({e(r.get("delivery_reason"))})</span>'
    return ""


def _receipts_cell(rs: list[dict]) -> str:
    out = []
    for r in rs:
        t = r.get("type")
        if t == "RESULT":
            ok = r.get("status") == "success"
            out.append(f'<span class="{"ok" if ok else "bad"}">RESULT {e(r.get("status"))}</span>{_delivery(r)}')
        elif t == "REFUSED":
            out.append(f'<span class="bad">REFUSED {e(r.get("reason"))}</span>')
        else:
            out.append(f"<span>{e(t)}</span>")
    return " \u2192 ".join(out) or '<span class="muted">no receipt</span>'


def actions_section(ctx: Ctx, by_action: dict[str, list[dict]]) -> str:
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
        what = e(a.get("action"))
        if a.get("kind") == "gate" and isinstance(a.get("gate"), dict):
            what += f'<br><span class="muted">{e(a["gate"].get("from"))} \u2192 {e(a["gate"].get("to"))}</span>'
        permit = '<span class="ok">signed</span>' if isinstance(a.get("permit"), dict) else '<span class="muted">none</span>'
        rows.append(f'<tr><td class="num">{i}</td><td class="mono nowrap">{e(svg.utc(t).strftime("%m-%d %H:%M:%S"))}</td>'
                    f'<td>{badge(str(a.get("kind")), KIND_COLOR.get(a.get("kind"), "#475569"))}</td>'
                    f"<td>{what}</td><td>{e(a.get('scope'))}</td>"
                    f'<td><b>{e(rule.get("id"))}</b><br><span class="muted">{e(rule.get("text"))}</span></td>'
                    f"<td>{_signals_cell(a)}</td><td>{permit}</td>"
                    f"<td>{_receipts_cell(by_action.get(a.get('id'), []))}</td></tr>")
    table = ("<table><tr><th>#</th><th>event time (UTC)</th><th>kind</th><th>action</th><th>scope</th>"
             "<th>rule</th><th>signals vs thresholds</th><th>permit</th><th>executor receipts</th></tr>"
             + "".join(rows) + "</table>")
    return chart + table


def evidence_section(v: dict, policy_hash: str | None) -> str:
    q = v.get("quorum") or {}
    rows = [("bundle sha256", f'<code>{e(v.get("bundle_sha256"))}</code>'),
            ("log origin", e(v.get("origin"))),
            ("checkpoint size", f'{e(v.get("size"))} entries'),
            ("Merkle root", f'<code>{e(v.get("root"))}</code>'),
            ("decision root", f'<code>{e(v.get("decision_root"))}</code> <span class="muted">the actions in id '
                              'order: equal across runs of the same input, policy and decider key</span>'
                              if v.get("decision_root") else '<span class="muted">&mdash;</span>'),
            ("policy hash", f"<code>{e(policy_hash)}</code>" if policy_hash else '<span class="muted">none bundled</span>'),
            ("entries", f'{e(v.get("size"))} inclusion proofs, {e(v.get("actions_verified"))} action permits'
                        if v.get("ok") else '<span class="muted">&mdash;</span>'),
            ("witness quorum", f'{e(q.get("k"))}-of-{e(q.get("n"))} '
                               f'{status(q.get("met"), "met", "not met")} ({e(", ".join(q.get("signers") or []) or "none")})'),
            ("INV1 EvidenceBound", status(v.get("inv1"), "ok", "not shown")),
            ("bundle verification", status(v.get("ok"), "verified", "FAILED")
             + (f'<br><span class="bad">{e(v.get("error"))}</span>' if v.get("error") else ""))]
    table1 = "<table>" + "".join(f"<tr><th style='width:200px'>{k}</th><td>{val}</td></tr>" for k, val in rows) + "</table>"
    sig_rows = "".join(
        f"<tr><td>{e(s.get('role'))}</td><td>{e(s.get('name'))}</td><td><code>{e(s.get('key_id'))}</code></td>"
        f"<td>{sig_status(s.get('status'))}</td></tr>"
        for s in v.get("signatures") or [])
    table2 = ("<h3 style='font-size:13px;margin:16px 0 0'>Checkpoint signatures</h3><table><tr><th>role</th>"
              "<th>key name</th><th>key id</th><th>signature</th></tr>" + sig_rows + "</table>") if sig_rows else ""
    lines = "\n".join(v.get("lines") or [])
    return table1 + table2 + (f"<pre>{e(lines)}</pre>" if lines else "")


