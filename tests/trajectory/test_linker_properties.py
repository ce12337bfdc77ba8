"""Linker invariants (issue 7 acceptance), with small timeouts so every path is exercised."""
from collections import Counter

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch.processors.quality import CyclePolicy, SpanCycle
from gatewatch.processors.timefmt import format_ts, parse_time_ms

MIN = 60_000
T0 = parse_time_ms("2025-10-01T00:00:00Z")
POLICY = CyclePolicy.from_dict({
    "trajectory_linker": {"close_timeout": "60m", "window": "300m"},
    "quality_meter": {"min_samples": 3},
    "derived_events_perf": {"max_per_minute": 0},
})
TIMEOUT, WINDOW = 60 * MIN, 300 * MIN

step = st.tuples(
    st.sampled_from(["ta", "tb"]),
    st.sampled_from(["x", "y", "z", "heartbeat-1"]),
    st.one_of(st.integers(0, 40), st.integers(-90, 0), st.integers(40, 200)),  # minutes vs the tenant clock
    st.sampled_from(["confirmed"] * 9 + ["completed"]),
    st.booleans(),
)


def build(steps):
    """Span lines: each tenant's clock moves by the step's minutes (negative = out of order)."""
    clock, lines = {}, []
    for i, (tenant, this, dm, status, conf) in enumerate(steps):
        clock[tenant] = clock.get(tenant, T0) + dm * MIN
        lines.append(orjson.dumps({"id": f"s{i}", "tenant": tenant, "who": "w", "did": "d", "this": this,
                                   "when": format_ts(clock[tenant]), "status": status,
                                   "confirmed_by": ["c"] if conf else []}))
    return lines


def run(lines, cycle=None, with_signals=False):
    cycle = cycle or SpanCycle(POLICY)
    per_span = []
    for line in lines:
        events, reason = cycle.process(line)
        signals = cycle.take_signals()
        per_span.append((events, reason, signals) if with_signals else (events, reason))
    return cycle, per_span


@settings(max_examples=150, deadline=None)
@given(st.lists(step, max_size=120))
def test_linking_is_a_pure_function_of_the_ordered_input(steps):
    lines = build(steps)
    _, a = run(lines)
    _, b = run(lines)
    assert orjson.dumps(a) == orjson.dumps(b)
    for events, _ in a:
        for ev in events:
            assert ev["id"] and ev["ts"].endswith("Z") and ev["tenant"] and ev["trajectory_id"].startswith("t_")


@settings(max_examples=150, deadline=None)
@given(st.lists(step, max_size=120), st.integers(0, 120))
def test_state_round_trip_through_json_continues_identically(steps, cut):
    lines = build(steps)
    cut = min(cut, len(lines))
    _, whole = run(lines, with_signals=True)
    first, head = run(lines[:cut], with_signals=True)
    restored = SpanCycle.from_state(POLICY, orjson.loads(orjson.dumps(first.to_state())))
    _, tail = run(lines[cut:], restored, with_signals=True)
    assert orjson.dumps(head + tail) == orjson.dumps(whole)


@settings(max_examples=150, deadline=None)
@given(st.lists(step, max_size=120))
def test_every_span_lands_in_exactly_one_trajectory_unless_excepted(steps):
    lines = build(steps)
    _, out = run(lines)
    edges = Counter()
    traj_of = {}
    for events, _ in out:
        for ev in events:
            if ev["type"] == "trajectory_edge":
                edges[ev["src_span_id"]] += 1
                traj_of[ev["src_span_id"]] = ev["trajectory_id"]
    for line, (events, reason) in zip(lines, out):
        doc = orjson.loads(line)
        if doc["this"].startswith("heartbeat-") or reason == "late":
            assert edges[doc["id"]] == 0
        else:
            assert edges[doc["id"]] == 1
    # positions in a trajectory are 0..n-1 in order, and its closed event counts them
    by_traj: dict[str, list] = {}
    for events, _ in out:
        for ev in events:
            if ev["type"] == "trajectory_edge":
                by_traj.setdefault(ev["trajectory_id"], []).append(ev["position"])
            elif ev["type"] == "trajectory_closed":
                assert ev["spans"] == len(by_traj[ev["trajectory_id"]])
    for positions in by_traj.values():
        assert positions == list(range(len(positions)))


@settings(max_examples=150, deadline=None)
@given(st.lists(step, max_size=120))
def test_closes_happen_exactly_at_close_timeout_in_event_time(steps):
    lines = build(steps)
    cycle = SpanCycle(POLICY)
    clock: dict[str, int] = {}
    traj: dict[str, dict] = {}          # trajectory id -> first/last when
    for line in lines:
        doc = orjson.loads(line)
        tenant, when = doc["tenant"], parse_time_ms(doc["when"])
        before = clock.get(tenant)
        clock[tenant] = when if before is None else max(before, when)
        events, _ = cycle.process(line)
        for ev in events:
            ts = parse_time_ms(ev["ts"])
            if ev["type"] == "trajectory_edge":
                t = traj.setdefault(ev["trajectory_id"], {"first": ts, "last": ts})
                t["last"] = max(t["last"], ts)
            elif ev["type"] == "trajectory_closed":
                t = traj[ev["trajectory_id"]]
                if ev["reason"] == "timeout":
                    assert ts == t["last"] + TIMEOUT <= t["first"] + WINDOW
                elif ev["reason"] == "window":
                    assert ts == t["first"] + WINDOW < t["last"] + TIMEOUT
                else:
                    assert ev["reason"] == "rule" and ts == when
                if ev["reason"] != "rule":
                    # revealed by exactly this span: the tenant clock crossed the deadline just now
                    assert clock[tenant] >= ts and (before is None or before < ts)
                t["closed"] = True
        # nothing overdue stays open
        for tr in cycle.linker.tenants[tenant].open.values():
            deadline = min(tr.last_ms + TIMEOUT, tr.first_ms + WINDOW)
            assert deadline > clock[tenant]


def test_timeout_boundary_is_inclusive():
    """A span exactly close_timeout after the last one finds the trajectory closed and opens a new one."""
    lines = build([("ta", "x", 0, "confirmed", False), ("ta", "x", 60, "confirmed", False)])
    _, out = run(lines)
    types = [ev["type"] for ev in out[1][0]]
    assert types == ["trajectory_closed", "trajectory_quality", "trajectory_edge"]
    assert out[1][0][0]["ts"] == "2025-10-01T01:00:00.000Z"
    assert out[1][0][2]["position"] == 0 and out[1][0][2]["trajectory_id"] != out[0][0][0]["trajectory_id"]
    lines = build([("ta", "x", 0, "confirmed", False), ("ta", "x", 59, "confirmed", False)])
    _, out = run(lines)
    assert [ev["position"] for ev in out[1][0]] == [1]


def test_trajectory_id_is_a_content_hash_of_tenant_key_and_first_span():
    from gatewatch.processors.canonical import content_id
    _, out = run(build([("ta", "x", 0, "confirmed", False)]))
    edge = out[0][0][0]
    assert edge["trajectory_id"] == "t_" + content_id({"tenant": "ta", "key": {"this": "x"}, "first_span_id": "s0"})
    assert edge["id"] == content_id({k: v for k, v in edge.items() if k != "id"})


def test_window_closes_a_long_running_trajectory_at_first_plus_window():
    steps = [("ta", "x", 0 if i == 0 else 50, "confirmed", True) for i in range(7)]   # 0, 50, …, 300 min
    _, out = run(build(steps))
    closed = [ev for events, _ in out for ev in events if ev["type"] == "trajectory_closed"]
    assert [(c["reason"], c["ts"], c["spans"]) for c in closed] == [("window", "2025-10-01T05:00:00.000Z", 6)]
    assert out[6][0][-1]["type"] == "trajectory_edge" and out[6][0][-1]["position"] == 0


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 200_000_000_000_000), st.sampled_from(["canonical", "Z", "offset", "micro"]))
def test_edge_ts_is_format_ts_of_when_whatever_its_spelling(ms, style):
    from datetime import datetime, timedelta, timezone

    from gatewatch.processors.spans import decode
    from gatewatch.processors.trajectory import _span_ts
    dt = datetime.fromtimestamp(ms // 1000, tz=timezone.utc) + timedelta(milliseconds=ms % 1000)
    when = {"canonical": format_ts(ms), "Z": dt.strftime("%Y-%m-%dT%H:%M:%S") + "Z" if ms % 1000 == 0 else format_ts(ms),
            "offset": dt.astimezone(timezone(timedelta(hours=2))).isoformat(timespec="milliseconds"),
            "micro": dt.isoformat(timespec="microseconds")}[style]
    span = decode(orjson.dumps({"id": "s", "tenant": "t", "who": "w", "did": "d", "this": "x", "when": when}))
    assert _span_ts(span) == format_ts(ms)
