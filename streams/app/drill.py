"""Hook drills: inject each hook's fault with a scenario and check the policy reacts as expected.

A drill run = scenario records -> kcat -J envelopes -> gatewatch.streams.app.replay.Replayer (the processors the
streaming workers run, no broker) -> actions -> gatewatch.processors.scenarios.check_expect.

Which scenario drills which hook: HOOK_SCENARIOS below; a hook not listed there is drilled by
the first scenario (by name) whose `expect.actions` names `rule: hook:<name>`. A hook with
neither is a FAIL ("no scenario"), never skipped.

A hook PASSes when its scenario's expected entries for `hook:<name>` all match an action whose
action name is the one the policy gives the hook, and none of the scenario's `absent` patterns
match (a drill that also trips unrelated rules is not a clean drill). Each scenario runs once
however many hooks it drills.
"""
from __future__ import annotations

import io
import time
from collections import Counter

import orjson

from gatewatch.processors.scenarios import Scenario, check_expect, expectations
from gatewatch.processors.timefmt import parse_time_ms
from gatewatch.streams.app.simulate import (
    load_scenario_spec,
    scenario_names,
    write_envelopes,
)

# Fixed event-time start: drills are reproducible run to run (same action ids, same timings).
DRILL_START = "2026-01-01T00:00:00Z"
DRILL_FORMAT = "gatewatch.drill/1"
# Records per partial in replay. The output does not depend on it; small partials keep the
# engine's buffer of steps waiting for a sparser domain short (fe_cwv_regress: 24 h of steps).
FLUSH_EVERY = 50

# hook name -> scenario (configs/scenarios/<name>.yaml) that injects its fault
HOOK_SCENARIOS: dict[str, str] = {
    "invariant_breach": "invariant_breach",      # canary pool invariant gauge = 1 for 3 min
    "slo_budget_breach": "traffic_spike",        # x1.5 RPS and 15% 5xx on the canary: fast burn
    "error_5xx": "traffic_spike",                # ... for 15 minutes
    "latency_budget": "latency_regression",      # canary latency x3.5 (p95 ~1.1 s > 800 ms)
    "cdc_lag": "cdc_freeze",                     # slow catch-up after the freeze: lag ~5 min
    "cdc_freeze": "cdc_freeze",                  # connector paused 660 s (hook: silence > 600 s)
    "schema_drift": "schema_drift",              # Debezium rows change a field's type, drop one
    "web_cwv_regression": "fe_cwv_regress",      # +80 ms INP on the canary for 24 h
    "api_contract_break": "api_contract_break",  # contract-test failures gauge on the canary
    "resolution_sla": "resolution_sla_breach",   # late market resolutions gauge
    "dp_budget_breach": "dp_budget_exhausted",   # differential-privacy budget spent past 100%
}


# Negative controls: nothing is injected; their expect blocks say the policy promotes, no abort.
CONTROL_SCENARIOS = ("healthy_canary",)


def policy_hooks(policy, aborts: bool = False) -> list[dict]:
    """The hooks the policy enables (and with ABORTS its abort rules): name (hook name, or the
    abort rule's id), kind, rule id, action, when-text, critical (blocks the gate)."""
    return [{"hook": r.id.split(":", 1)[1] if r.kind == "hook" else r.id, "kind": r.kind, "rule": r.id,
             "action": r.action, "text": r.text, "critical": bool(r.blocking)}
            for r in policy.rules if r.kind == "hook" or (aborts and r.kind == "abort")]


def scenario_for(rule_id: str, specs: dict[str, dict]) -> str | None:
    hook = rule_id.split(":", 1)[1] if rule_id.startswith("hook:") else None
    if hook in HOOK_SCENARIOS and HOOK_SCENARIOS[hook] in specs:
        return HOOK_SCENARIOS[hook]
    for name in sorted(specs):
        if any(e.get("rule") == rule_id for e in expectations(specs[name])["actions"]):
            return name
    return None


def run_scenario(spec: dict, policy, start: str = DRILL_START) -> dict:
    """Generate SPEC's records and replay them: {"actions", "signals", "dlq", "records", "start_ms",
    "wall_s"} (wall_s = generation + replay, wall clock)."""
    from gatewatch.streams.app.replay import Replayer, read_envelopes, sources_of
    t0 = time.monotonic()
    sc = Scenario(spec, start_ms=parse_time_ms(start))
    buf = io.BytesIO()
    n = write_envelopes(sc, buf)
    bad: Counter = Counter()
    buf.seek(0)
    envs = list(read_envelopes(buf, bad))
    rp = Replayer(policy, None, FLUSH_EVERY, sources=sources_of(envs))
    actions, dlq, signals, gates = [], [], [], []
    lists = {rp.t_actions: actions, rp.t_signals: signals, rp.t_dlq: dlq, rp.t_gates: gates}

    def take(recs):
        for topic, _key, value in recs:
            judged = lists.get(topic)  # attestations (and shadow decisions) are not what a drill judges
            if judged is not None:
                judged.append(orjson.loads(value))

    take(rp.feed_many(envs))
    take(rp.finish())
    return {"actions": actions, "signals": signals, "dlq": dlq, "gates": gates, "records": n,
            "start_ms": sc.start_ms, "wall_s": time.monotonic() - t0}


def _hook_result(hook: dict, scenario: str | None, spec: dict | None, run: dict | None) -> dict:
    res = {**hook, "scenario": scenario, "status": "FAIL", "reason": None, "expected": [],
           "observed": [], "observed_count": 0, "fault_at_s": None, "detect_s": None, "wall_s": None, "unexpected": []}
    if scenario is None:
        res["reason"] = "no scenario"
        return res
    check = check_expect(spec, run["actions"], run["start_ms"])
    mine = [e for e in check["expected"] if e["pattern"].get("rule") == hook["rule"]]
    res["wall_s"] = round(run["wall_s"], 3)
    res["expected"] = [e["pattern"] for e in mine]
    res["observed"] = [e["first"] for e in mine if e["first"]]
    res["observed_count"] = sum(e["count"] for e in mine)
    res["unexpected"] = [{"pattern": a["pattern"], "count": a["count"], "observed": a["observed"]}
                         for a in check["absent"] if not a["ok"]]
    if mine:
        res["fault_at_s"] = mine[0]["fault_at_s"]
        res["detect_s"] = mine[0]["detect_s"]
    wrong_action = [e["pattern"]["action"] for e in mine
                    if e["pattern"].get("action") not in (None, hook["action"])]
    if not mine:
        res["reason"] = f"scenario {scenario} does not expect {hook['rule']}"
    elif wrong_action:
        res["reason"] = f"scenario expects action {wrong_action[0]}, the policy's hook does {hook['action']}"
    elif not all(e["ok"] for e in mine):
        res["reason"] = f"no {hook['rule']} action"
    elif any(o["action"] != hook["action"] for o in res["observed"]):
        res["reason"] = "observed a different action than the policy's"
    elif res["unexpected"]:
        u = res["unexpected"][0]
        res["reason"] = f"unexpected action(s) matching {u['pattern']} ({u['count']})"
    else:
        res["status"] = "PASS"
    return res


def _control_result(scenario: str, spec: dict, run: dict) -> dict:
    """A negative control: the scenario's whole expect block (healthy_canary: promote, no abort)."""
    check = check_expect(spec, run["actions"], run["start_ms"])
    missing = [e["pattern"] for e in check["expected"] if not e["ok"]]
    extra = [{"pattern": a["pattern"], "count": a["count"], "observed": a["observed"]}
             for a in check["absent"] if not a["ok"]]
    reason = (f"missing {missing[0]}" if missing else
              f"unexpected action(s) matching {extra[0]['pattern']} ({extra[0]['count']})" if extra else None)
    return {"hook": scenario, "kind": "control", "rule": None, "action": None, "text": spec.get("description"),
            "critical": False, "scenario": scenario, "status": "FAIL" if reason else "PASS", "reason": reason,
            "expected": [e["pattern"] for e in check["expected"]],
            "absent": [a["pattern"] for a in check["absent"]],
            "observed": [e["first"] for e in check["expected"] if e["first"]],
            "observed_count": sum(e["count"] for e in check["expected"]),
            "fault_at_s": None, "detect_s": None, "wall_s": round(run["wall_s"], 3), "unexpected": extra}


def run_drill(policy, hooks: list[str] | None = None, start: str = DRILL_START, progress=None,
              aborts: bool = False, controls: bool | None = None) -> dict:
    """Drill every hook the policy enables (or only HOOKS); returns the drill.json document.
    With ABORTS, the abort rules too (by rule id; scenario = the first whose expect names it).
    With CONTROLS (default: when drilling every hook), the CONTROL_SCENARIOS' expect blocks are
    rows too: the drill also shows the policy stays quiet and promotes when nothing is wrong.

    A name in HOOKS the policy does not enable is a FAIL ("not enabled by the policy")."""
    enabled = policy_hooks(policy, aborts)
    by_name = {h["hook"]: h for h in enabled}
    aliases = policy.get("hooks.aliases") or {}
    wanted = list(by_name) if not hooks else list(dict.fromkeys(aliases.get(h, h) for h in hooks))
    specs = {n: load_scenario_spec(n) for n in scenario_names()}
    t0 = time.monotonic()
    runs: dict[str, dict] = {}
    results = []
    for name in wanted:
        hook = by_name.get(name)
        if hook is None:
            results.append({**_hook_result({"hook": name, "kind": "hook", "rule": f"hook:{name}", "action": None,
                                            "text": None, "critical": False}, None, None, None),
                            "reason": "not enabled by the policy"})
            continue
        scenario = scenario_for(hook["rule"], specs)
        if scenario is not None and scenario not in runs:
            if progress:
                progress(f"drill: running {scenario} (for {name})")
            runs[scenario] = run_scenario(specs[scenario], policy, start)
        results.append(_hook_result(hook, scenario, specs.get(scenario), runs.get(scenario)))
    for name in CONTROL_SCENARIOS if (not hooks if controls is None else controls) else ():
        if name not in specs:
            results.append({**_hook_result({"hook": name, "kind": "control", "rule": None, "action": None,
                                            "text": None, "critical": False}, None, None, None)})
            continue
        if name not in runs:
            if progress:
                progress(f"drill: running {name} (control)")
            runs[name] = run_scenario(specs[name], policy, start)
        results.append(_control_result(name, specs[name], runs[name]))
    scen = {}
    for name, run in sorted(runs.items()):
        check = check_expect(specs[name], run["actions"], run["start_ms"])
        scen[name] = {"records": run["records"], "signals": len(run["signals"]), "dlq": len(run["dlq"]),
                      "expect_ok": check["ok"], "wall_s": round(run["wall_s"], 3),
                      "actions": [{k: a.get(k) for k in ("id", "ts", "kind", "action", "scope")}
                                  | {"rule": (a.get("rule") or {}).get("id")} for a in run["actions"]]}
    n_pass = sum(r["status"] == "PASS" for r in results)
    return {"format": DRILL_FORMAT, "policy_hash": policy.hash, "start": start,
            "ok": n_pass == len(results), "pass": n_pass, "fail": len(results) - n_pass,
            "hooks": results, "scenarios": scen, "hook_scenarios": dict(HOOK_SCENARIOS),
            "wall_s": round(time.monotonic() - t0, 3)}


def table(report: dict) -> str:
    """A fixed-width summary, one hook per line."""
    t0 = parse_time_ms(report["start"])
    rows = [("HOOK / RULE", "RESULT", "SCENARIO", "EXPECTED", "OBSERVED (T = scenario start)", "FAULT->ACTION", "WALL", "NOTE")]
    for r in report["hooks"]:
        kind = r.get("kind", "hook")
        exp = ",".join(f"{e.get('action', '*')}" for e in r["expected"]) or "-"
        if kind == "control":
            nots = ",".join(p.get("rule") or p.get("kind") or p.get("action") or "*" for p in r.get("absent", []))
            exp = (r["expected"][-1].get("action", "*") if r["expected"] else "-") + (f"; no {nots}" if nots else "")
        shown = r["observed"][-1:] if kind == "control" else r["observed"]  # a control: its outcome
        obs = ",".join(f"{o['action']}@T+{_dur((parse_time_ms(o['ts']) - t0) / 1000)}" for o in shown) or "-"
        det = "-" if r["detect_s"] is None else _dur(r["detect_s"])
        wall = "-" if r["wall_s"] is None else f"{r['wall_s']:.1f}s"
        rows.append((r["hook"] if kind == "hook" else f"{kind}:{r['hook']}", r["status"], r["scenario"] or "-", exp, obs, det, wall, r["reason"] or ""))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row[:-1], widths)) + "  " + row[-1] for row in rows]
    lines.append(f"{report['pass']} PASS, {report['fail']} FAIL  (policy {report['policy_hash'][:12]}, "
                 f"{len(report['scenarios'])} scenarios, {report['wall_s']:.1f}s)")
    return "\n".join(line.rstrip() for line in lines)


def _dur(s: float) -> str:
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return (f"{h}h" if h else "") + (f"{m}m" if m or h else "") + f"{sec}s"
