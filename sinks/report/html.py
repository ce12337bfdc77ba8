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
  (default: those the actions report);
- judged: the bundle's evidence/ documents by short name (span_coverage, input_schemas, cardinality,
  drill; gatewatch.sinks.worm.evidence_files.evidence_docs), shown as four tables.

No scripts, no external resources: it renders offline from a file. Same input => same bytes.
"""
from __future__ import annotations

from collections import Counter

from gatewatch.sinks.report import svg
from gatewatch.sinks.report.gates import gates_section
from gatewatch.sinks.report.judged import judged_sections
from gatewatch.sinks.report.sections import (
    Ctx,
    action_ts,
    actions_section,
    burn_section,
    cdc_section,
    cwv_section,
    evidence_section,
    pick_release,
    pick_scope,
    verdict_of,
)
from gatewatch.sinks.report.series import (
    index_signals,
    merge_thresholds,
    receipts_by_action,
    thresholds_from_actions,
)
from gatewatch.sinks.report.widgets import CSS, KIND_ORDER, SECTIONS, e

_TEXT_FIELDS = ("kind", "action", "scope", "release", "id")


def shown(a: dict) -> dict:
    """An action as the page reads it. A bundle that fails verification still gets a page (its
    evidence section says why), so a field of the wrong type is shown as text, never a crash."""
    out = dict(a)
    for k in _TEXT_FIELDS:
        if out.get(k) is not None and not isinstance(out[k], str):
            out[k] = str(out[k])
    rule = out.get("rule")
    if rule is not None:
        rule = rule if isinstance(rule, dict) else {"text": rule}
        out["rule"] = {k: str(v) for k, v in rule.items() if k in ("id", "text") and v is not None}
    if "gate" in out and not (isinstance(out["gate"], dict) and all(
            isinstance(out["gate"].get(k), (str, type(None))) for k in ("from", "to"))):
        del out["gate"]
    sigs = out.get("signals")
    out["signals"] = [_shown_signal(s) for s in sigs if isinstance(s, dict)] if isinstance(sigs, list) else []
    return out


def _shown_signal(s: dict) -> dict:
    out = {k: str(s[k]) for k in ("name", "subject", "state", "cohort") if s.get(k) is not None}
    if isinstance(s.get("op"), str):
        out["op"] = s["op"]
    for k in ("value", "threshold"):
        if isinstance(s.get(k), (int, float)) and not isinstance(s[k], bool):
            out[k] = s[k]
    return out


def render_report(signals: list[dict], actions: list[dict], receipts: list[dict], verification: dict,
                  policy_hash: str | None, *, thresholds: list[dict] | None = None, scope: str | None = None,
                  cohort: str = "canary", title: str = "gatewatch evidence report", max_points: int = 2000,
                  judged: dict[str, dict] | None = None, judged_withheld: str | None = None,
                  release: str | None = None) -> str:
    timed = sorted(((t, shown(a)) for a in actions if isinstance(a, dict) and (t := action_ts(a)) is not None),
                   key=lambda ta: (ta[0], KIND_ORDER.index(ta[1].get("kind")) if ta[1].get("kind") in KIND_ORDER
                                   else 9, str(ta[1].get("id"))))
    if scope is None:
        scope = pick_scope([a for _, a in timed], index_signals(signals) if not timed else {})
    release = release if release is not None else pick_release([a for _, a in timed], scope)
    series = index_signals(signals, release)  # one release's charts: two canaries' lines would interleave
    from_actions = thresholds_from_actions([a for _, a in timed])
    ths = merge_thresholds(list(thresholds) + from_actions) if thresholds is not None else from_actions
    times = [p.t for pts in series.values() for p in (pts[0], pts[-1])] + [t for t, _ in timed]
    t_range = (min(times), max(times)) if times else (0, 3_600_000)
    ctx = Ctx(series, timed, ths, t_range, max_points)
    by_action = receipts_by_action(receipts)
    verdict, vclass = verdict_of([a for _, a in timed], by_action)
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
    header = (f'<header class="top" id="summary"><h1>{e(title)}</h1>'
              f'<div class="sub">scope <b style="color:#fff">{e(scope or "-")}</b> \u00b7 release '
              f'<b style="color:#fff">{e(release or "-")}</b> \u00b7 gate cohort '
              f'<b style="color:#fff">{e(cohort)}</b> \u00b7 event time {e(span)}</div>'
              f'<div style="margin-top:12px"><span class="verdict {vclass}">{e(verdict)}</span>{ev_badge}'
              f'<span class="sub">policy <code>{e((policy_hash or "none")[:16])}</code> \u00b7 Merkle root '
              f'<code>{e(str(verification.get("root") or "-")[:16])}</code></span></div>'
              f'<div class="kpis">{"".join(f"<div class=kpi><b>{e(v)}</b><span>{e(k)}</span></div>" for v, k in kpis)}</div>'
              f"<nav>{nav}</nav></header>")
    body = [
        ("burn-rate", f"Scope {scope or '-'}, {cohort} cohort, one line per window (log scale). Dashed: the policy's "
                      "thresholds; shaded: where a window is beyond one; numbered lines: actions (see the timeline).",
         burn_section(ctx, scope, cohort)),
        ("cwv", f"p75 per cohort on the busiest route, with the {cohort}'s 90% confidence interval; right: the "
                "relative change the rules read.", cwv_section(ctx, scope, cohort)),
        ("cdc", "Replication lag p95 and time since the last change event, per table.", cdc_section(ctx)),
        ("gates", "Each scope and release's gate as its logged actions leave it: final state, verdict (fail once "
                  "an abort fired, pass at CANARY_READY), and why.", gates_section(ctx.actions, svg.utc, signals, cohort)),
        ("actions", "Every decision in event-time order with the rule that fired, the signals it read and "
                    "what the executor did.", actions_section(ctx, by_action)),
        ("evidence", "Offline verification of the WORM bundle: manifest, keys, co-signed checkpoint, inclusion "
                     "proofs, permits.", evidence_section(verification, policy_hash)),
        *judged_sections(judged or {}, judged_withheld),
    ]
    titles = dict(SECTIONS)
    sections = "".join(f'<section id="{sid}"><h2>{titles[sid]}</h2><p class="note">{e(note)}</p>{content}</section>'
                       for sid, note, content in body)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{e(title)}</title>"
            f"<style>{CSS}</style></head><body><main>{header}{sections}"
            f"<footer>gatewatch \u00b7 generated from the evidence bundle and recorded signals; "
            f"same inputs give the same bytes</footer></main></body></html>\n")
