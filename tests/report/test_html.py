"""The pure generator: deterministic, self-contained, escaped, every section, bounded size."""
from __future__ import annotations

import random
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch.processors.timefmt import format_ts
from gatewatch.sinks.report.html import SECTIONS, render_report
from gatewatch.sinks.report.series import (
    Point,
    breach_intervals,
    downsample,
    merge_thresholds,
    thresholds_from_actions,
)

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
VERIFIED = {"ok": True, "error": None, "bundle_sha256": "ab" * 32, "origin": "gatewatch.local/worm", "size": 3,
            "root": "cm9vdA==", "inv1": True, "actions_verified": 1, "files": 9, "lines": ["INV1 EvidenceBound: ok"],
            "signatures": [{"role": "log", "name": "gatewatch.local/worm", "key_id": "01020304", "status": "valid"},
                           {"role": "witness", "name": "witness-1", "key_id": "0a0b0c0d", "status": "valid"},
                           {"role": "witness", "name": "witness-2", "key_id": "0e0f1011", "status": "invalid"}],
            "quorum": {"k": 2, "n": 3, "met": False, "signers": ["witness-1"]}}


def sig(name, t, v, cohort="canary", subject="", scope="checkout", **extra):
    return {"name": name, "scope": scope, "cohort": cohort, "subject": subject, "window_s": 300,
            "value": v, "samples": 50, "ts": format_ts(t), **extra}


def signals(n=120, step=10_000):
    out = []
    for i in range(n):
        t = T0 + i * step
        for w, k in (("5m", 1.0), ("1h", 0.5), ("4h", 0.2)):
            out.append(sig(f"burn_rate_{w}", t, k * i / 10))
        out.append(sig("rum_inp_p75_ms", t, 200 + i, subject="/"))
        out.append(sig("rum_inp_p75_ms", t, 200, cohort="baseline", subject="/"))
        out.append(sig("rum_inp_p75_ms_delta", t, i / 200, subject="/", baseline=200.0,
                       baseline_source="cohort:baseline", ci_low=i / 250, ci_high=i / 150))
        out.append(sig("cdc_lag_p95_s", t, 1.5, cohort="stable", subject="shop.orders", scope="shop.orders"))
        out.append(sig("cdc_silence_s", t, 0.3 + (i * 10 if i > 60 else 0), cohort="stable",
                       subject="shop.orders", scope="shop.orders"))
    return out


ABORT = {"id": "a1", "kind": "abort", "action": "rollback", "scope": "checkout", "ts": format_ts(T0 + 600_000),
         "rule": {"id": "burn_4h", "text": "burn_rate_4h >= 1 <script>alert(1)</script>"},
         "signals": [{"name": "burn_rate_4h", "value": 1.2, "op": ">=", "threshold": 1.0, "state": "true"}],
         "permit": {"alg": "ed25519"}}
GATE = {"id": "g1", "kind": "gate", "action": "advance", "scope": "checkout", "ts": format_ts(T0 + 300_000),
        "gate": {"from": "PLAN_OK", "to": "EXEC_FAST_OK"}, "rule": {"id": "gate:EXEC_FAST_OK", "text": "clean 5m"},
        "signals": [{"name": "burn_rate_4h", "value": 0.1, "op": None, "threshold": None}], "permit": None}
RECEIPTS = [{"type": "INTENT", "action_id": "a1", "seq": 1}, {"type": "RESULT", "action_id": "a1", "seq": 2,
                                                              "status": "success"}]
THRESHOLDS = [{"signal": "rum_inp_p75_ms_delta", "op": ">", "threshold": 0.1, "rules": ["inp_regression"]},
              {"signal": "cdc_silence_s", "op": ">", "threshold": 600.0, "rules": ["hook:cdc_freeze"]}]


def render(sigs=None, **kw):
    return render_report(signals() if sigs is None else sigs, [GATE, ABORT], RECEIPTS, VERIFIED, "9b51" * 16,
                         thresholds=THRESHOLDS, **kw)


def test_every_section_and_the_facts():
    html = render()
    assert 'id="summary"' in html
    for sid, title in SECTIONS[1:]:
        assert f'<section id="{sid}"><h2>{title}</h2>' in html
    assert "ROLLED BACK (rollback)" in html and "EVIDENCE VERIFIED" in html
    assert "RESULT success" in html and "PLAN_OK \u2192 EXEC_FAST_OK" in html
    assert "4h \u2265 1" in html  # the threshold the abort reported, on the burn chart
    assert "rum_inp_p75_ms_delta &gt; 10%" in html and "cdc_silence_s &gt; 600" in html
    assert "2-of-3" in html and "not met" in html and "witness-2" in html and "invalid" in html
    assert html.count("<svg") >= 5


def test_self_contained_and_escaped():
    html = render()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # no fetches: the only URL is the SVG namespace
    assert set(re.findall(r"https?://[^\"' )]+", html)) <= {"http://www.w3.org/2000/svg"}
    assert not re.search(r"\b(src|href)=\"(?!#)", html)


def test_same_input_same_bytes_whatever_the_order():
    sigs = signals()
    shuffled = sigs[:]
    random.Random(3).shuffle(shuffled)
    assert render(sigs) == render(shuffled) == render(sigs)


def test_long_series_are_downsampled():
    html = render(signals(n=20_000, step=1_000))  # 20k points per series, ~5.5 h
    for chart in re.findall(r'<svg class="chart".*?</svg>', html):
        coords = sum(len(d.split("L")) for d in re.findall(r' d="M([^"]*)"', chart))
        assert coords <= 2 * 2000 + 200, coords  # lines + CI band outlines
    assert len(html) < 1_500_000


def test_empty_inputs_render():
    html = render_report([], [], [], {"ok": False, "error": "file x: missing"}, None)
    assert "NO DECISIONS" in html and "EVIDENCE NOT VERIFIED" in html and "file x: missing" in html
    assert "No burn-rate signals" in html


def test_thresholds_from_actions():
    assert thresholds_from_actions([ABORT, GATE]) == [
        {"signal": "burn_rate_4h", "op": ">=", "threshold": 1.0, "rules": ["burn_4h"]}]


def test_merged_thresholds_keep_every_rule():
    merged = [{"signal": "x", "op": ">", "threshold": 1.0, "rules": ["r2"]}]
    assert thresholds_from_actions([]) == [] and merge_thresholds(
        merged + [{"signal": "x", "op": ">", "threshold": 1, "rule": "r1"}, {"signal": "x", "op": "~", "threshold": 1}]
    ) == [{"signal": "x", "op": ">", "threshold": 1.0, "rules": ["r1", "r2"]}]
    assert "(burn_4h, r9)" in render_report(signals(), [ABORT], [], VERIFIED, None, thresholds=[
        {"signal": "burn_rate_4h", "op": ">=", "threshold": 1.0, "rules": ["r9"]}])


def test_breach_intervals():
    pts = [Point(t, v) for t, v in [(0, 0), (10, 2), (20, 3), (30, 0), (40, 5)]]
    assert breach_intervals(pts, ">=", 2) == [(10, 30), (40, 40)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=3000), st.integers(4, 400))
def test_downsample_keeps_extremes_order_and_budget(values, budget):
    pts = [Point(i * 1000, v) for i, v in enumerate(values)]
    out = downsample(pts, budget)
    assert len(out) <= max(budget, len(pts) if len(pts) <= budget else budget)
    assert [p.t for p in out] == sorted({p.t for p in out})
    assert max(p.v for p in out) == max(values) and min(p.v for p in out) == min(values)


def test_verdicts():
    promote = {**GATE, "id": "p1", "kind": "promote", "action": "promote", "ts": format_ts(T0 + 900_000)}
    refused = [{"type": "REFUSED", "action_id": "a1", "seq": 1, "reason": "expired"}]
    assert "IN PROGRESS \u00b7 gate at EXEC_FAST_OK" in render_report([], [GATE], [], VERIFIED, None)
    assert "PROMOTED" in render_report([], [GATE, promote], [], VERIFIED, None)
    html = render_report([], [GATE, ABORT], refused, VERIFIED, None)
    assert "ABORT DECIDED" in html and "REFUSED expired" in html


def test_receipts_show_whether_the_recipient_confirmed_delivery():
    # named by the pinned key verify checked the ack against (recipient-<backend>), never by the
    # ack's free-text "recipient", which the signer chooses
    confirmed = [{**RECEIPTS[1], "backend": "deploy", "delivery": "confirmed", "ack": {"recipient": "CISO <prod>"}}]
    html = render_report([], [GATE, ABORT], confirmed, VERIFIED, None)
    assert "acked by recipient-deploy" in html and "CISO" not in html
    unconfirmed = [{**RECEIPTS[1], "delivery": "unconfirmed", "delivery_reason": "bad_signature"}]
    html = render_report([], [GATE, ABORT], unconfirmed, VERIFIED, None)
    assert '<span class="bad">unconfirmed (bad_signature)</span>' in html and "acked by" not in html


def _section(html: str, sid: str) -> str:
    s = html[html.index(f'<section id="{sid}"'):]
    return s[:s.index("</section>")]


def test_the_burn_chart_draws_one_line_per_window():
    """The legend list once shadowed the window keys: the chart had thresholds and markers, no line."""
    burn = _section(render(), "burn-rate")
    lines = re.findall(r'<path d="M[^"]*"[^>]*stroke="(#[0-9a-f]+)"', burn)
    assert len(set(lines)) == 3, lines  # 5m, 1h, 4h
    for w in ("5m", "1h", "4h"):
        assert f">{w}<" in burn


def two_canaries() -> list[dict]:
    """1.5.0 and 1.6.0 canaries publishing at the same steps: 1.6.0 burns, 1.5.0 does not."""
    out = []
    for i in range(60):
        t = T0 + i * 10_000
        out.append(sig("burn_rate_4h", t, 0.01, release="1.5.0"))
        out.append(sig("burn_rate_4h", t, 2.0, release="1.6.0"))
        out.append(sig("rum_inp_p75_ms", t, 200, cohort="baseline", subject="/"))
    return out


def test_one_release_is_charted_whatever_the_line_order():
    abort = dict(ABORT, release="1.6.0")
    sigs = two_canaries()
    pages = {render_report(s, [GATE, abort], RECEIPTS, VERIFIED, None) for s in (sigs, sigs[::-1])}
    assert len(pages) == 1
    page = pages.pop()
    assert 'release <b style="color:#fff">1.6.0</b>' in page
    older = render_report(sigs, [GATE, abort], RECEIPTS, VERIFIED, None, release="1.5.0")
    assert _section(older, "burn-rate") != _section(page, "burn-rate")


def test_a_page_for_a_bundle_that_fails_verification_even_with_odd_fields():
    """The page shows why a bundle does not verify; a field of the wrong type must not stop it."""
    odd = [dict(ABORT, rule="rollback it", id="o1"), dict(ABORT, kind=["abort"], id="o2"),
           dict(ABORT, signals=7, id="o3"), dict(ABORT, signals=[{"name": ["x"], "op": [">"], "threshold": "1"}],
                                                  id="o4"), dict(GATE, gate={"from": 1, "to": []}, id="o5")]
    sigs = [sig("rum_inp_p75_ms", T0, 200, samples="abc", subject="/"), sig("cdc_lag_p95_s", T0, 1e308,
                                                                            cohort="stable", scope="shop.orders")]
    html = render_report(signals() + sigs, odd, [], {"ok": False, "error": "file entries.ndjson: edited"}, None)
    assert "EVIDENCE NOT VERIFIED" in html and "rollback it" in html


def test_a_stray_timestamp_keeps_the_page_small():
    """One signal in year 1 and one in 9999 made 172 MB of tick labels."""
    far = [sig("cdc_lag_p95_s", -62_135_596_800_000, 1, cohort="stable", scope="other"),
           sig("cdc_lag_p95_s", 253_370_764_800_000, 1, cohort="stable", scope="other")]
    assert len(render(signals() + far)) < 2 * len(render())


def test_an_or_rules_terms_that_did_not_fire_say_so():
    either = dict(ABORT, id="a2", signals=[
        {"name": "burn_rate_1h", "value": 6.0, "op": ">", "threshold": 14.4},
        {"name": "burn_rate_6h", "value": 7.0, "op": ">", "threshold": 6.0}])
    cell = _section(render_report([], [either], [], VERIFIED, None), "actions")
    assert "burn_rate_1h = 6 > 14.4 <span class=\"muted\">(not met)</span>" in cell, cell
    assert "burn_rate_6h = 7 > 6</span>" in cell
