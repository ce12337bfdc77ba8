"""Seeded telemetry scenarios (SimCity): realistic records for every input topic, in event-time order.

A scenario is a YAML mapping (configs/scenarios/*.yaml):

    name, duration, step (the generator's tick, default 1s), seed
    services: [{name, routes: [...]}]
    cohorts: {baseline: {share, rps, error_rate, latency_ms: {median, p95}, release?}, canary: {...}}
             (release: the version the cohort runs; its records carry it, and the gate is per release)
    rum:     {service?, rate (beacons/s per cohort), routes: {route: {inp_ms, lcp_ms, cls, fcp_ms, ttfb_ms}},
              metrics?: [inp_ms, ...] (beacons only of these; default: a random one of all five),
              cohorts?: [canary, ...] (cohorts that send beacons; default: all)}
    cdc:     {tables: [db.table, ...], rate (changes/s per table), lag_s}
    gauges:  {every: 10s, values: {invariant: 0, obs_uptime: 0.9995}}
    phases:  [{at: 10m, until: 20m?, set: {<path>: value}}]   # overrides while active

    expect:  {actions: [{kind?, action?, rule?, scope?, fault_at?}], absent: [{kind?, action?, rule?,
              scope?}], fault_at?}   # what the default policies must / must not do (check_expect);
             # rule = the rule id (err5xx, hook:cdc_lag, gate:ORR_OK); fault_at = when the fault is
             # injected (default: the first phase's `at`), for the fault -> action time

Phase paths: cohorts.<c>.rps_multiplier | error_rate | latency_multiplier | latency_extra_ms,
rum.<cohort>.<metric>_extra (inp_ms_extra...), cdc.pause (bool), cdc.schema (incompatible|compatible),
cdc.lag_s (the connector's lag while the phase is active), gauges.<name> (every cohort),
gauges.<cohort>.<name> (one cohort; wins over gauges.<name>).

A drill injects faults no producer reports yet (api_contract_breaks, resolution_sla_breaches,
dp_budget_used...): list the gauge under gauges.values with its healthy value and override it in
a phase.

Records are (topic, key, value) with the value exactly as the real producers send it: request
samples, web-vitals callback objects, Debezium envelopes (with the schema/payload wrapper on
every other record, as both forms occur), gauge samples. Deterministic: random.Random(seed).
"""
from __future__ import annotations

import math
import random
from typing import Iterator

from gatewatch.processors.timefmt import format_ts, parse_duration_ms, parse_time_ms

Z95 = 1.6448536269514722
RUM_METRICS = ("inp_ms", "lcp_ms", "cls", "fcp_ms", "ttfb_ms")
RUM_NAME = {"inp_ms": "INP", "lcp_ms": "LCP", "cls": "CLS", "fcp_ms": "FCP", "ttfb_ms": "TTFB"}
RATING_GOOD = {"inp_ms": 200, "lcp_ms": 2500, "cls": 0.1, "fcp_ms": 1800, "ttfb_ms": 800}


def _lognormal(rng: random.Random, median: float, p95: float) -> float:
    sigma = max(1e-6, math.log(max(p95, median * 1.0001) / median) / Z95)
    return median * math.exp(rng.gauss(0.0, sigma))


def _released(cohort: dict, record: dict) -> dict:
    """The record with the cohort's `release` (the version it runs), when the spec names one."""
    if cohort.get("release"):
        record["release"] = str(cohort["release"])
    return record


def _count(rng: random.Random, mean: float) -> int:
    """Poisson count (Knuth for small means, normal approximation above 30)."""
    if not math.isfinite(mean):  # a NaN mean looped forever below
        raise ValueError(f"a rate of {mean} requests per step (check the scenario's rps and multipliers)")
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, int(round(rng.gauss(mean, math.sqrt(mean)))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


class Scenario:
    def __init__(self, spec: dict, seed: int | None = None, start_ms: int = 0,
                 duration: str | int | None = None, rate: float | None = None):
        self.spec = spec
        self.name = spec.get("name", "scenario")
        self.seed = int(spec.get("seed", 1) if seed is None else seed)
        self.start_ms = int(start_ms) - int(start_ms) % 1000
        self.duration_ms = parse_duration_ms(duration if duration is not None else spec.get("duration", "10m"))
        self.tick_ms = parse_duration_ms(spec.get("step", "1s"))
        if self.duration_ms <= 0 or self.tick_ms <= 0:
            raise ValueError(f"duration and step must be above 0 (got {self.duration_ms} ms and {self.tick_ms} ms)")
        self.rate_scale = 1.0 if rate is None else float(rate) / max(1e-9, self._base_rps())
        self.phases = [(parse_duration_ms(p.get("at", 0)),
                        parse_duration_ms(p["until"]) if "until" in p else None,
                        dict(p.get("set", {}))) for p in spec.get("phases", [])]

    def _base_rps(self) -> float:
        """Total request rate of the spec: every cohort of every service (what --rate replaces)."""
        per_service = sum(float(c.get("rps", 0)) for c in self.spec.get("cohorts", {}).values())
        return per_service * max(1, len(self.spec.get("services", [None]))) or 1.0

    def overrides(self, t_ms: int) -> dict:
        out: dict = {}
        for at, until, sets in self.phases:
            if t_ms >= at and (until is None or t_ms < until):
                out.update(sets)
        return out

    def records(self) -> Iterator[tuple[str, str, dict]]:
        rng = random.Random(self.seed)
        spec = self.spec
        services = spec.get("services", [{"name": "checkout", "routes": ["/api"]}])
        cohorts = spec.get("cohorts", {})
        rum, cdc, gauges = spec.get("rum"), spec.get("cdc"), spec.get("gauges")
        gauge_every = parse_duration_ms(gauges.get("every", "10s")) if gauges else 0
        tables = list(cdc.get("tables", [])) if cdc else []
        cdc_seq = {t: 0 for t in tables}
        paused_since = {t: None for t in tables}
        backlog: dict[str, list[int]] = {t: [] for t in tables}
        rum_seq = 0
        rum_metrics = tuple(rum.get("metrics") or RUM_METRICS) if rum else RUM_METRICS
        rum_cohorts = [c for c in cohorts if c in (rum.get("cohorts") or cohorts)] if rum else []
        for t in range(0, self.duration_ms, self.tick_ms):
            now = self.start_ms + t
            ov = self.overrides(t)
            tick: list[tuple[int, str, str, dict]] = []
            for svc in services:
                name, routes = svc["name"], svc.get("routes", ["/"])
                for cname, c in cohorts.items():
                    rps = float(c.get("rps", 0)) * self.rate_scale * float(ov.get(f"cohorts.{cname}.rps_multiplier", 1))
                    err = float(ov.get(f"cohorts.{cname}.error_rate", c.get("error_rate", 0.001)))
                    lat = c.get("latency_ms", {"median": 100, "p95": 250})
                    mult = float(ov.get(f"cohorts.{cname}.latency_multiplier", 1))
                    extra = float(ov.get(f"cohorts.{cname}.latency_extra_ms", 0))
                    for _ in range(_count(rng, rps * self.tick_ms / 1000)):
                        ts = now + int(rng.random() * self.tick_ms)
                        status = rng.choice((500, 502, 503, 504)) if rng.random() < err else rng.choice((200, 200, 200, 201, 204, 404))
                        latency = round(_lognormal(rng, lat["median"], lat["p95"]) * mult + extra, 2)
                        tick.append((ts, "metrics", name, _released(c, {
                            "service": name, "route": rng.choice(routes), "cohort": cname,
                            "status": status, "latency_ms": latency, "ts": format_ts(ts)})))
            if rum:
                for cname in rum_cohorts:
                    for route, base in rum.get("routes", {}).items():
                        for _ in range(_count(rng, float(rum.get("rate", 1)) * self.tick_ms / 1000)):
                            ts = now + int(rng.random() * self.tick_ms)
                            metric = rum_metrics[rng.randrange(len(rum_metrics))]
                            if metric not in base:
                                continue
                            extra = float(ov.get(f"rum.{cname}.{metric}_extra", 0))
                            value = _lognormal(rng, base[metric], base[metric] * 2.0) + extra
                            value = round(value, 4 if metric == "cls" else 1)
                            rum_seq += 1
                            tick.append((ts, "rum", route, _released(cohorts[cname], {
                                "name": RUM_NAME[metric], "value": value,
                                "rating": "good" if value <= RATING_GOOD[metric] else "needs-improvement",
                                "delta": value, "id": f"v4-{self.seed}-{rum_seq}", "navigationType": "navigate",
                                "route": route, "cohort": cname, "service": rum.get("service", "web"),
                                "timestamp": ts})))
            for table in tables:
                paused = bool(ov.get("cdc.pause", False))
                schema = ov.get("cdc.schema", "v1")
                n = _count(rng, float(cdc.get("rate", 1)) * self.tick_ms / 1000)
                if paused:  # the connector is stuck: changes pile up at the source
                    backlog[table].extend(now + int(rng.random() * self.tick_ms) for _ in range(n))
                    paused_since[table] = paused_since[table] or now
                    continue
                src_times = sorted(backlog[table]) + [now + int(rng.random() * self.tick_ms) for _ in range(n)]
                backlog[table] = []
                paused_since[table] = None
                for src_ts in src_times:
                    cdc_seq[table] += 1
                    if "cdc.lag_s" in ov:  # a slow connector: changes captured now happened lag ago
                        ts = now + int(rng.random() * self.tick_ms)
                        src_ts = ts - int(float(ov["cdc.lag_s"]) * 1000 * (0.5 + rng.random()))
                    else:
                        lag = int(float(cdc.get("lag_s", 1)) * 1000 * (0.5 + rng.random()))
                        ts = max(src_ts + lag, now + int(rng.random() * self.tick_ms))
                    tick.append((ts, "cdc", table, _debezium(table, cdc_seq[table], src_ts, ts, schema, rng)))
            if gauges and t % gauge_every == 0:
                for svc in services:
                    for gname, gval in gauges.get("values", {}).items():
                        for cname in cohorts:
                            v = ov.get(f"gauges.{cname}.{gname}", ov.get(f"gauges.{gname}", gval))
                            tick.append((now, "metrics", svc["name"], _released(cohorts[cname], {
                                "type": "gauge", "service": svc["name"], "cohort": cname,
                                "name": gname, "value": v, "ts": format_ts(now)})))
            tick.sort(key=lambda r: (r[0], r[1], r[2]))
            for _ts, topic, key, value in tick:
                yield topic, key, value


def _debezium(table: str, seq: int, src_ts: int, ts: int, schema: str, rng: random.Random) -> dict:
    db, _, tbl = table.partition(".")
    after = {"id": seq, "status": rng.choice(("new", "paid", "shipped")), "amount": round(rng.random() * 100, 2)}
    if schema == "incompatible":
        after["amount"] = str(after["amount"])  # type change: a breaking schema change
        del after["status"]
    elif schema == "compatible":
        after["note"] = "x"
    op = "c" if seq % 3 else "u"
    payload = {"before": None if op == "c" else dict(after), "after": after,
               "source": {"version": "2.7.0.Final", "connector": "postgresql", "name": "dbserver1",
                          "ts_ms": src_ts, "snapshot": "false", "db": db, "schema": "public", "table": tbl,
                          "txId": 1000 + seq, "lsn": 10_000 + seq},
               "op": op, "ts_ms": ts, "transaction": None}
    if seq % 2:
        return {"schema": {"type": "struct", "name": f"dbserver1.public.{tbl}.Envelope", "optional": False},
                "payload": payload}
    return payload


# --- expectations: what a scenario must (and must not) make the default policies do -------------

MATCH_KEYS = ("kind", "action", "rule", "scope")


def expectations(spec: dict) -> dict:
    """The scenario's `expect:` block, normalised: {"actions": [...], "absent": [...]} where each
    entry is a pattern over MATCH_KEYS (rule = the rule id: `err5xx`, `hook:cdc_lag`, `gate:...`)
    plus the entry's fault time in ms from the start (its own `fault_at`, else the block's, else
    the first phase's `at`, else 0)."""
    exp = spec.get("expect") or {}
    phase_ats = [parse_duration_ms(p.get("at", 0)) for p in spec.get("phases", [])]
    default_fault = parse_duration_ms(exp["fault_at"]) if "fault_at" in exp else min(phase_ats, default=0)

    def norm(entry: dict, with_fault: bool) -> dict:
        unknown = set(entry) - set(MATCH_KEYS) - {"fault_at"}
        if unknown or not any(k in entry for k in MATCH_KEYS):
            raise ValueError(f"expect entry {entry!r}: use keys {', '.join(MATCH_KEYS)} (and fault_at)")
        out = {k: str(entry[k]) for k in MATCH_KEYS if k in entry}
        if with_fault:
            out["fault_at_ms"] = parse_duration_ms(entry["fault_at"]) if "fault_at" in entry else default_fault
        return out

    return {"actions": [norm(e, True) for e in exp.get("actions") or []],
            "absent": [norm(e, False) for e in exp.get("absent") or []]}


def matches(pattern: dict, action: dict) -> bool:
    fields = {"kind": action.get("kind"), "action": action.get("action"),
              "rule": (action.get("rule") or {}).get("id"), "scope": action.get("scope")}
    return all(fields[k] == pattern[k] for k in MATCH_KEYS if k in pattern)


def observed(action: dict) -> dict:
    """What a report shows of one action: id, rule text and the values that made it true."""
    rule = action.get("rule") or {}
    values = [{k: s.get(k) for k in ("name", "cohort", "subject", "value", "op", "threshold", "samples")}
              for s in action.get("signals") or [] if s.get("state") == "breach"]
    return {"id": action.get("id"), "kind": action.get("kind"), "action": action.get("action"),
            "rule": rule.get("id"), "text": rule.get("text"), "scope": action.get("scope"),
            "ts": action.get("ts"), "values": values}


def check_expect(spec: dict, actions: list[dict], start_ms: int) -> dict:
    """Compare a run's actions (gw.actions values, in output order) with the scenario's expect block.

    Per expected pattern: the matching actions and the event time from the fault to the first
    one; per absent pattern: the actions that should not be there. ok = every expected pattern
    matched and no absent pattern did."""
    exp = expectations(spec)
    start_ms = int(start_ms) - int(start_ms) % 1000  # Scenario aligns its start to the second
    expected = []
    for pat in exp["actions"]:
        hits = sorted((a for a in actions if matches(pat, a)), key=lambda a: (parse_time_ms(a["ts"]), a["id"]))
        first = hits[0] if hits else None
        detect = None if first is None else parse_time_ms(first["ts"]) - (start_ms + pat["fault_at_ms"])
        expected.append({"pattern": {k: v for k, v in pat.items() if k != "fault_at_ms"},
                         "fault_at_s": pat["fault_at_ms"] / 1000, "ok": first is not None,
                         "count": len(hits), "first": None if first is None else observed(first),
                         "detect_s": None if detect is None else detect / 1000})
    absent = []
    for pat in exp["absent"]:
        hits = [a for a in actions if matches(pat, a)]
        absent.append({"pattern": pat, "ok": not hits, "count": len(hits),
                       "observed": [observed(a) for a in hits[:5]]})
    return {"ok": all(e["ok"] for e in expected) and all(a["ok"] for a in absent),
            "expected": expected, "absent": absent}
