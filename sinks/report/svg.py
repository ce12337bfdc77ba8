"""Inline SVG charts (pure string building, fixed number formatting => deterministic bytes).

Time axes are UTC; coordinates are rounded to 0.1 px to keep the file small.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone
from html import escape

from gatewatch.sinks.report.series import Point

FONT = "font-family=\"Inter, 'Segoe UI', Helvetica, Arial, sans-serif\""
AXIS = "#94a3b8"
GRID = "#e2e8f0"
TEXT = "#475569"
BREACH = "#dc2626"
_TIME_STEPS_S = (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
                 172800, 604800)


def f1(x: float) -> str:
    s = f"{x:.1f}"
    return s[:-2] if s.endswith(".0") else s


def fmt_num(v: float, step: float | None = None) -> str:
    """Compact number: decimals follow the tick step (or the magnitude), k/M for big values."""
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e4:
        return f"{v / 1e3:.3g}k"
    if step:  # enough decimals to tell ticks apart (0.025 steps need 3)
        dec = next((d for d in range(0, 7) if abs(step * 10 ** d - round(step * 10 ** d)) < 1e-6), 6)
    else:
        dec = max(0, min(6, -math.floor(math.log10(a)) + 2))
    s = f"{v:.{dec}f}"
    return s.rstrip("0").rstrip(".") if "." in s and not step else s


def utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def nice_step(span: float, target: int) -> float:
    raw = span / max(1, target)
    if raw <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def time_ticks(t0: int, t1: int, max_ticks: int) -> list[int]:
    span_s = max(1, (t1 - t0) / 1000)
    step = next((s for s in _TIME_STEPS_S if span_s / s <= max_ticks), None)
    if step is None:  # beyond the longest step: whole weeks, still at most max_ticks (a stray year-1 signal)
        step = math.ceil(span_s / max_ticks / _TIME_STEPS_S[-1]) * _TIME_STEPS_S[-1]
    step *= 1000
    first = -(-t0 // step) * step
    return list(range(first, t1 + 1, step))


def time_label(ms: int, with_date: bool, seconds: bool) -> str:
    d = utc(ms)
    hm = d.strftime("%H:%M:%S" if seconds else "%H:%M")
    return f"{d.strftime('%b %d')} {hm}" if with_date else hm


class Frame:
    """Plot area geometry: data -> pixels."""

    def __init__(self, width: int, height: int, t0: int, t1: int, y0: float, y1: float,
                 left: int = 58, right: int = 16, top: int = 14, bottom: int = 34, log: bool = False):
        self.w, self.h, self.log = width, height, log
        self.l, self.r, self.t, self.b = left, width - right, top, height - bottom
        self.t0, self.t1 = t0, max(t1, t0 + 1)
        self.y0, self.y1 = y0, (y1 if y1 > y0 else y0 + 1)

    def x(self, t: int) -> float:
        return self.l + (t - self.t0) * (self.r - self.l) / (self.t1 - self.t0)

    def y(self, v: float) -> float:
        if self.log:  # y0/y1 are then decades; values at or below 10**y0 sit on the axis
            v = math.log10(max(v, 10 ** self.y0))
        return self.b - (v - self.y0) * (self.b - self.t) / (self.y1 - self.y0)


_Y_LIMIT = 1e12


def y_range(series: list[dict], thresholds: list[dict], y_min: float | None) -> tuple[float, float]:
    vals = [p.v for s in series for p in s["points"]] + [th["value"] for th in thresholds]
    if not vals:
        return 0.0, 1.0
    # an axis spans at most +-1e12: a wild value (1e308) overflowed the tick arithmetic; it is drawn off the chart
    lo, hi = max(min(vals), -_Y_LIMIT), min(max(vals), _Y_LIMIT)
    if y_min is not None:
        lo = min(lo, y_min)
    if hi == lo:
        hi = lo + (abs(lo) * 0.5 or 1.0)
    pad = (hi - lo) * 0.08
    return (lo if y_min is not None and lo == y_min else lo - pad), hi + pad


def _runs(points: list[Point]) -> list[list[Point]]:
    """Split where the gap is > 3x the median step (no line drawn across missing data)."""
    if len(points) < 3:
        return [points] if points else []
    steps = sorted(b.t - a.t for a, b in zip(points, points[1:]))
    limit = 3 * max(1, steps[len(steps) // 2])
    runs, cur = [], [points[0]]
    for a, b in zip(points, points[1:]):
        if b.t - a.t > limit:
            runs.append(cur)
            cur = []
        cur.append(b)
    runs.append(cur)
    return runs


def _path(fr: Frame, pts: list[Point]) -> str:
    return "M" + "L".join(f"{f1(fr.x(p.t))},{f1(fr.y(p.v))}" for p in pts)


def _band(fr: Frame, pts: list[Point]) -> list[str]:
    out, run = [], []
    for p in pts + [None]:
        if p is not None and p.lo is not None and p.hi is not None:
            run.append(p)
            continue
        if len(run) >= 2:
            up = "L".join(f"{f1(fr.x(q.t))},{f1(fr.y(q.hi))}" for q in run)
            down = "L".join(f"{f1(fr.x(q.t))},{f1(fr.y(q.lo))}" for q in reversed(run))
            out.append(f"M{up}L{down}Z")
        run = []
    return out


def time_chart(chart_id: str, series: list[dict], *, t_range: tuple[int, int], width: int = 1180,
               height: int = 260, y_title: str = "", thresholds: list[dict] = (), markers: list[dict] = (),
               shade: list[tuple[int, int]] = (), y_min: float | None = 0.0, y_pct: bool = False,
               log_floor: float | None = None) -> str:
    """series: {"label","color","points":[Point],"dash"?,"band"?: bool, "width"?};
    thresholds: {"value","label","color"}; markers: {"t","color","label","tag"?}; shade: breach spans;
    log_floor: a log10 y axis from this value up (values below it drawn on the axis)."""
    t0, t1 = t_range
    if log_floor:  # decades from the floor to the largest value or threshold
        vals = [p.v for s in series for p in s["points"]] + [th["value"] for th in thresholds]
        top = max([v for v in vals if v > 0] or [10 * log_floor])
        lo, hi, step = math.floor(math.log10(log_floor)), math.ceil(math.log10(top * 1.5)), 1.0
        hi = max(hi, lo + 1)
    else:
        lo, hi = y_range(series, list(thresholds), y_min)
        step = nice_step(hi - lo, max(3, height // 55))
        lo = math.floor(lo / step) * step if y_min is None or lo < y_min else lo
        hi = math.ceil(hi / step) * step
    v, ticks = lo, []
    while v <= hi + step * 1e-9:
        ticks.append(v)
        v = lo + step * len(ticks)
    if log_floor:
        labels = [fmt_num(10 ** v) for v in ticks]
    else:
        labels = [(fmt_num(v * 100, step * 100) + "%") if y_pct else fmt_num(v, step) for v in ticks]
    left = max(54, 30 + 7 * max(len(x) for x in labels))  # room for the widest tick label + the title
    fr = Frame(width, height, t0, t1, lo, hi, left=left, log=bool(log_floor))
    o = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
         f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(chart_id)}" {FONT}>',
         f'<defs><clipPath id="c-{escape(chart_id)}"><rect x="{fr.l}" y="{fr.t}" width="{fr.r - fr.l}" '
         f'height="{fr.b - fr.t}"/></clipPath></defs>']
    for a, b in shade:
        x0, x1 = fr.x(a), fr.x(b)
        o.append(f'<rect x="{f1(x0)}" y="{fr.t}" width="{f1(max(1.5, x1 - x0))}" height="{fr.b - fr.t}" '
                 f'fill="{BREACH}" fill-opacity="0.08"/>')
    for v, label in zip(ticks, labels):  # grid + y labels
        y = f1(fr.y(10 ** v if log_floor else v))
        o.append(f'<line x1="{fr.l}" x2="{fr.r}" y1="{y}" y2="{y}" stroke="{GRID}" stroke-width="1"/>')
        o.append(f'<text x="{fr.l - 6}" y="{y}" dy="4" text-anchor="end" font-size="11" fill="{TEXT}">{label}</text>')
    # time axis
    tt = time_ticks(t0, t1, max(2, (fr.r - fr.l) // 95))
    secs = any(t % 60000 for t in tt)
    prev_day = None
    for t in tt:
        x = f1(fr.x(t))
        day = utc(t).date()
        o.append(f'<line x1="{x}" x2="{x}" y1="{fr.t}" y2="{fr.b}" stroke="{GRID}" stroke-width="1"/>')
        o.append(f'<text x="{x}" y="{fr.b + 16}" text-anchor="middle" font-size="11" fill="{TEXT}">'
                 f'{time_label(t, day != prev_day, secs)}</text>')
        prev_day = day
    o.append(f'<line x1="{fr.l}" x2="{fr.r}" y1="{fr.b}" y2="{fr.b}" stroke="{AXIS}" stroke-width="1"/>')
    o.append(f'<line x1="{fr.l}" x2="{fr.l}" y1="{fr.t}" y2="{fr.b}" stroke="{AXIS}" stroke-width="1"/>')
    if y_title:
        o.append(f'<text transform="translate(13 {f1((fr.t + fr.b) / 2)}) rotate(-90)" text-anchor="middle" '
                 f'font-size="11" fill="{TEXT}">{escape(y_title)}</text>')
    o.append(f'<text x="{fr.r}" y="{height - 3}" text-anchor="end" font-size="10" fill="{AXIS}">UTC</text>')
    o.append(f'<g clip-path="url(#c-{escape(chart_id)})">')
    for s in series:
        if s.get("band"):
            for d in _band(fr, s["points"]):
                o.append(f'<path d="{d}" fill="{s["color"]}" fill-opacity="0.16" stroke="none"/>')
    for th in thresholds:
        y = f1(fr.y(th["value"]))
        o.append(f'<line x1="{fr.l}" x2="{fr.r}" y1="{y}" y2="{y}" stroke="{th.get("color", BREACH)}" '
                 f'stroke-width="1.4" stroke-dasharray="6 4"/>')
    for s in (s for s in series if s.get("width", 1.6) > 0):  # width 0: a CI band only
        dash = f' stroke-dasharray="{s["dash"]}"' if s.get("dash") else ""
        for run in _runs(s["points"]):
            if len(run) == 1:
                p = run[0]
                o.append(f'<circle cx="{f1(fr.x(p.t))}" cy="{f1(fr.y(p.v))}" r="2" fill="{s["color"]}"/>')
            else:
                o.append(f'<path d="{_path(fr, run)}" fill="none" stroke="{s["color"]}" '
                         f'stroke-width="{s.get("width", 1.6)}" stroke-linejoin="round"{dash}/>')
    o.append("</g>")
    for th in thresholds:  # labels last, on top of the lines
        y = fr.y(th["value"])
        o.append(f'<text x="{fr.r - 4}" y="{f1(y - 4)}" text-anchor="end" font-size="10.5" font-weight="600" '
                 f'fill="{th.get("color", BREACH)}" stroke="#fff" stroke-width="3" paint-order="stroke">'
                 f'{escape(th["label"])}</text>')
    last_x = [-1e9, -1e9, -1e9]  # tag rows: a tag goes to the first row with room, else it is left out
    for m in markers:
        if t0 <= m["t"] <= t1:
            xv = fr.x(m["t"])
            x = f1(xv)
            o.append(f'<line x1="{x}" x2="{x}" y1="{fr.t}" y2="{fr.b}" stroke="{m["color"]}" stroke-width="1.2" '
                     f'stroke-opacity="0.75" stroke-dasharray="2 3"><title>{escape(m["label"])}</title></line>')
            row = next((i for i, lx in enumerate(last_x) if xv - lx >= 6 + 6 * len(m.get("tag") or "")), None)
            if m.get("tag") and row is not None:
                last_x[row] = xv
                o.append(f'<text x="{x}" y="{fr.t + 10 + 11 * row}" text-anchor="middle" font-size="9.5" '
                         f'font-weight="700" fill="{m["color"]}" stroke="#fff" stroke-width="3" '
                         f'paint-order="stroke">{escape(m["tag"])}</text>')
    o.append("</svg>")
    return "".join(o)


def lanes_chart(chart_id: str, lanes: list[tuple[str, str]], events: list[dict], *, t_range: tuple[int, int],
                width: int = 1180) -> str:
    """Action timeline: one lane per kind; events {"t","lane","color","tag","label"}."""
    lane_h, top, bottom = 30, 8, 34
    height = top + lane_h * max(1, len(lanes)) + bottom
    fr = Frame(width, height, t_range[0], t_range[1], 0, 1, left=90, top=top, bottom=bottom)
    o = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
         f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(chart_id)}" {FONT}>']
    tt = time_ticks(fr.t0, fr.t1, max(2, (fr.r - fr.l) // 95))
    secs = any(t % 60000 for t in tt)
    prev_day = None
    for t in tt:
        x = f1(fr.x(t))
        day = utc(t).date()
        o.append(f'<line x1="{x}" x2="{x}" y1="{top}" y2="{fr.b}" stroke="{GRID}"/>')
        o.append(f'<text x="{x}" y="{fr.b + 16}" text-anchor="middle" font-size="11" fill="{TEXT}">'
                 f'{time_label(t, day != prev_day, secs)}</text>')
        prev_day = day
    row = {}
    for i, (lane, color) in enumerate(lanes):
        y = top + lane_h * i + lane_h / 2
        row[lane] = y
        o.append(f'<line x1="{fr.l}" x2="{fr.r}" y1="{f1(y)}" y2="{f1(y)}" stroke="{GRID}" stroke-width="1"/>')
        o.append(f'<text x="{fr.l - 10}" y="{f1(y)}" dy="4" text-anchor="end" font-size="12" font-weight="600" '
                 f'fill="{color}">{escape(lane)}</text>')
    o.append(f'<line x1="{fr.l}" x2="{fr.r}" y1="{fr.b}" y2="{fr.b}" stroke="{AXIS}"/>')
    o.append(f'<text x="{fr.r}" y="{height - 3}" text-anchor="end" font-size="10" fill="{AXIS}">UTC</text>')
    for e in events:
        if e["lane"] not in row:
            continue
        x, y = f1(fr.x(e["t"])), f1(row[e["lane"]])
        o.append(f'<g><title>{escape(e["label"])}</title><circle cx="{x}" cy="{y}" r="9" fill="{e["color"]}" '
                 f'stroke="#fff" stroke-width="1.5"/><text x="{x}" y="{y}" dy="3.5" text-anchor="middle" '
                 f'font-size="9.5" font-weight="700" fill="#fff">{escape(e["tag"])}</text></g>')
    o.append("</svg>")
    return "".join(o)
