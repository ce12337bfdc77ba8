"""The report's "Gates per release" table: one row per scope and release, replayed from the logged
actions, and equal to the final gate record decide published for each release of the same stream."""
from __future__ import annotations

import re
from html import unescape

import orjson

from gatewatch.processors.timefmt import format_ts
from gatewatch.sinks.report.gates import gate_rows
from gatewatch.sinks.report.html import render_report
from gatewatch.sinks.report.sections import action_ts
from gatewatch.streams.runtime import topics
from tests.policy.test_releases import two_releases
from tests.report.test_html import VERIFIED

T0 = 1_767_225_600_000


def _table(html: str) -> list[list[str]]:
    """The rows (cells as text) of the Gates section's table."""
    sec = re.search(r'<section id="gates">(.*?)</section>', html, re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", sec, re.S)[1:]
    return [[" ".join(unescape(re.sub(r"<[^>]+>", " ", c)).split()) for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
            for r in rows]


def test_two_releases_from_the_real_decide_match_their_gate_records():
    out = two_releases()  # healthy_canary (1.5.0) then traffic_spike (1.6.0) through the real processors
    actions = [orjson.loads(v) for t, _k, v in out if t == topics.topic("actions")]
    final = {}
    for t, k, v in out:
        if t == topics.topic("gates"):
            final[k.decode()] = orjson.loads(v)  # compacted: the last record per scope@release
    html = render_report([], actions, [], VERIFIED, None)
    rows = _table(html)
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == \
        [(g["scope"], g["release"], g["state"], g["verdict"]) for g in sorted(final.values(), key=lambda g: g["since"])]
    assert [r[3] for r in rows] == ["pass", "fail"]  # release 2 judged on its own actions only
    assert any(":" in r[4] for r in rows if r[3] == "fail")  # the abort's rule is named


def _act(kind, scope, release, minute, to=None, action="advance", rule="r"):
    return {"id": f"{kind}{scope}{release}{minute}", "kind": kind, "action": action, "scope": scope,
            "release": release, "ts": format_ts(T0 + minute * 60_000), "rule": {"id": rule, "text": rule},
            "gate": {"from": "?", "to": to} if to else None, "signals": []}


def test_rows_per_scope_and_release_without_release_and_hooks_only():
    acts = [_act("gate", "checkout", "2.0.0", 1, "EXEC_FAST_OK"),
            _act("hook", "search", "", 2, action="notify"),
            _act("gate", "checkout", "2.0.0", 3, "EXEC_FULL_OK"),
            _act("abort", "cart", "7", 4, action="rollback", rule="err5xx"),
            {"kind": "gate", "scope": None, "ts": format_ts(T0)}]  # no scope: not a gate of anything
    rows = gate_rows(sorted(((action_ts(a), a) for a in acts if action_ts(a) is not None), key=lambda x: x[0]))
    assert [(r["scope"], r["release"], r["state"], r["verdict"]) for r in rows] == [
        ("cart", "7", "PLAN_OK", "fail"), ("checkout", "2.0.0", "EXEC_FULL_OK", "pending"),
        ("search", "", "PLAN_OK", "pending")]
    assert rows[0]["aborts"] == ["err5xx: rollback"]
    assert rows[1]["transitions"] == ["EXEC_FAST_OK", "EXEC_FULL_OK"]


def test_escaped_and_empty():
    html = render_report([], [_act("abort", "<b>x</b>", "<i>1</i>", 1, action="rollback")], [], VERIFIED, None)
    sec = re.search(r'<section id="gates">(.*?)</section>', html, re.S).group(1)
    assert "<b>x</b>" not in sec and "&lt;b&gt;x&lt;/b&gt;" in sec
    assert "No action with a scope was logged." in render_report([], [], [], VERIFIED, None)


def _budget_sig(name, scope, release, minute, value, cohort="canary"):
    s = {"name": name, "scope": scope, "cohort": cohort, "subject": "", "window_s": 2_419_200, "value": value,
         "samples": 900, "ts": format_ts(T0 + minute * 60_000)}
    return dict(s, release=release) if release else s


def test_error_budget_column_shows_the_latest_gate_cohort_budget_per_release():
    acts = [_act("gate", "checkout", "2.0.0", 1, "EXEC_FAST_OK"), _act("hook", "search", "", 2, action="notify"),
            _act("gate", "cart", "7", 3, "EXEC_FAST_OK")]
    sigs = [_budget_sig("error_budget_consumed", "checkout", "2.0.0", 5, 0.25),
            _budget_sig("error_budget_remaining", "checkout", "2.0.0", 5, 0.75),
            _budget_sig("error_budget_consumed", "checkout", "2.0.0", 0, 0.10),   # older: not shown
            _budget_sig("error_budget_consumed", "checkout", "2.0.0", 10, 0.9, cohort="baseline"),  # context
            _budget_sig("error_budget_consumed", "search", "", 5, 1.5),          # overspent
            _budget_sig("error_budget_remaining", "search", "", 5, -0.5)]
    rows = _table(render_report(sigs, acts, [], VERIFIED, None))
    assert {r[0]: r[6] for r in rows} == {"cart": "\u2014", "checkout": "consumed 25.0% remaining 75.0%",
                                          "search": "consumed 150.0% remaining -50.0%"}
    html = render_report(sigs, acts, [], VERIFIED, None)
    assert "<th>error budget</th>" in re.search(r'<section id="gates">(.*?)</section>', html, re.S).group(1)


def test_no_error_budget_signals_no_column():
    html = render_report([], [_act("gate", "checkout", "2.0.0", 1, "EXEC_FAST_OK")], [], VERIFIED, None)
    sec = re.search(r'<section id="gates">(.*?)</section>', html, re.S).group(1)
    assert "error budget" not in sec and len(_table(html)[0]) == 6


def _sig(cohort, state="breach"):
    return {"name": "latency_p95_ms_delta_lo", "cohort": cohort, "subject": None, "state": state}


def test_a_release_that_failed_its_shadow_phase_shows_shadow_and_fail():
    shadow_abort = dict(_act("abort", "checkout", "2.0.0", 1, action="block_release", rule="shadow_latency"),
                        signals=[_sig("shadow")])
    canary_abort = dict(_act("abort", "checkout", "3.0.0", 1, action="rollback", rule="err"),
                        signals=[_sig("canary"), _sig("shadow", "ok")])
    moved = dict(_act("gate", "checkout", "4.0.0", 2, "PLAN_OK"), gate={"from": "SHADOW", "to": "PLAN_OK"})
    later = dict(_act("abort", "checkout", "4.0.0", 3, action="rollback", rule="err"), signals=[_sig("shadow")])
    acts = [shadow_abort, canary_abort, moved, later]
    rows = gate_rows(sorted(((action_ts(a), a) for a in acts), key=lambda x: x[0]))
    assert [(r["release"], r["state"], r["verdict"]) for r in rows] == [
        ("2.0.0", "SHADOW", "fail"), ("3.0.0", "PLAN_OK", "fail"), ("4.0.0", "PLAN_OK", "fail")]
    assert rows[0]["aborts"] == ["shadow_latency: block_release (shadow)"]
    assert rows[2]["transitions"] == ["SHADOW", "PLAN_OK"] and rows[2]["aborts"] == ["err: rollback"]
    # the gate cohort is the report's: a policy whose gate cohort is "shadow" reads it as a scope rule
    assert gate_rows([(action_ts(shadow_abort), shadow_abort)], cohort="shadow")[0]["state"] == "PLAN_OK"
    table = _table(render_report([], acts, [], VERIFIED, None))
    assert table[0][2:4] == ["SHADOW", "fail"] and "(shadow)" in table[0][4]
