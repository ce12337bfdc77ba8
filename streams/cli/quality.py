"""`gatewatch quality simulate|generate` (seed 002 §7, §18: the dry run) and `gatewatch trajectories run`.

simulate drives gatewatch.processors.quality.SpanCycle exactly as the worker does, one span line at a time
in file order, with no broker: its events are what the worker publishes for the same spans.
"""
from __future__ import annotations

import contextlib
import random
import sys
from collections import Counter

import click
import orjson

from gatewatch.processors.quality import CyclePolicy, SpanCycle
from gatewatch.processors.timefmt import format_ts, parse_time_ms
from gatewatch.streams.runtime.policy_files import load_quality_policy as load_policy

# --- corpus generator ----------------------------------------------------------------------------
# (tenant, trajectories' mean gap between spans in minutes, Beta(a, b) of a trajectory's confirm rate,
#  share of trajectories that end with a closing status, relative volume)
TENANT_PROFILES = (
    ("t_bakery", 20, (1.5, 3.5), 0.7, 5),
    ("t_studio", 45, (1.0, 2.5), 0.4, 3),
    ("t_lab", 30, (1.5, 3.0), 0.5, 2),
    ("t_farm", 90, (0.8, 2.5), 0.3, 2),
    ("t_contracts", 60, (1.5, 2.5), 0.6, 1),
)
VERBS = ("sale.post", "order.create", "order.pack", "order.ship", "payment.capture", "review.add",
         "contract.sign", "sample.measure", "batch.bake", "invoice.issue")


def generate_spans(n: int, seed: int = 1, start: str = "2025-10-01T00:00:00Z",
                   invalid_rate: float = 0.0, heartbeat_rate: float = 0.05) -> list[bytes]:
    """n span lines (JSON bytes) in event-time order: several tenants, heavy-tailed (Pareto)
    trajectory lengths, exponential gaps (occasionally longer than close_timeout), a per-trajectory
    confirmation rate, some closing statuses, heartbeat spans matching the default exception, and
    optionally malformed lines. Seeded: the same arguments give the same bytes."""
    rng = random.Random(seed)
    t0 = parse_time_ms(start)
    days = max(1.0, n / 15_000)
    horizon = int(days * 86_400_000)
    weights = [p[4] for p in TENANT_PROFILES]
    rows: list[tuple[int, int, dict]] = []
    seq = 0
    n_heart = int(n * heartbeat_rate)
    while len(rows) < n - n_heart:
        tenant, gap_min, (a, b), close_share, _ = rng.choices(TENANT_PROFILES, weights)[0]
        length = min(400, int(rng.paretovariate(1.25)))   # 1, 1, 2, 1, 3, … 40 …
        when = t0 + rng.randrange(horizon)
        confirm = rng.betavariate(a, b)
        closes = rng.random() < close_share
        this = f"{rng.choice(('order', 'case', 'lot', 'job'))}:{rng.getrandbits(40):010x}"
        who = f"user{rng.randrange(200)}"
        for i in range(length):
            if len(rows) >= n - n_heart:
                break
            if i:
                when += int(rng.expovariate(1.0 / (gap_min * 60_000)))
            if when >= t0 + horizon:
                break  # the corpus is a cut of a longer stream: trajectories running past it are truncated
            seq += 1
            doc = {"id": f"s_{seed}_{seq:09d}", "tenant": tenant, "who": who, "did": rng.choice(VERBS),
                   "this": this, "when": format_ts(when),
                   "confirmed_by": [f"pos://register-{rng.randrange(9)}"] if rng.random() < confirm else [],
                   "status": "completed" if closes and i == length - 1 else "confirmed",
                   "data": {"amount": round(rng.lognormvariate(3, 1), 2)}}
            rows.append((when, seq, doc))
    for _ in range(n_heart):
        seq += 1
        when = t0 + rng.randrange(horizon)
        tenant = rng.choices(TENANT_PROFILES, weights)[0][0]
        rows.append((when, seq, {"id": f"s_{seed}_{seq:09d}", "tenant": tenant, "who": "agent",
                                 "did": "heartbeat", "this": f"heartbeat-{rng.randrange(4)}",
                                 "when": format_ts(when), "status": "ok"}))
    rows.sort(key=lambda r: (r[0], r[1]))
    out = []
    for _, _, doc in rows:
        if invalid_rate and rng.random() < invalid_rate:
            kind = rng.randrange(3)
            if kind == 0:
                doc = {k: v for k, v in doc.items() if k != "who"}
            elif kind == 1:
                doc = dict(doc, when="yesterday")
            else:
                out.append(orjson.dumps(doc)[:-7])  # truncated line
                continue
        out.append(orjson.dumps(doc))
    return out


# --- commands ------------------------------------------------------------------------------------
def simulate_lines(lines, policy: CyclePolicy, on_event, on_reject=None,
                   on_signals=None) -> tuple[SpanCycle, Counter]:
    """The dry run: each line through SpanCycle.process, in order (exactly the worker's per-record call)."""
    cycle = SpanCycle(policy)
    rejects: Counter = Counter()
    for line in lines:
        line = line.strip()
        if not line:
            continue
        events, reason = cycle.process(line)
        for ev in events:
            on_event(ev)
        for batch in cycle.take_signals():
            if on_signals:
                on_signals(batch)
        if reason:
            rejects[reason] += 1
            if on_reject:
                on_reject(line, reason)
    return cycle, rejects


def format_summary(summary: dict, rejects: Counter) -> str:
    lines = [f"policy {summary['policy_hash'][:16]}",
             f"trajectories {summary['trajectories']}  closed {summary['closed']}  active {summary['active']}",
             f"scored {summary['scored']}  candidates {summary['candidates']}  share {summary['share'] * 100:.2f}%",
             f"rejected {sum(rejects.values())}" + (f" ({', '.join(f'{k} {v}' for k, v in sorted(rejects.items()))})"
                                                     if rejects else "")]
    lines.append(f"{'tenant':14} {'spans':>7} {'closed':>7} {'p50':>6} {'p95':>6} {'p99':>6} {'cand':>5} {'share':>6}")
    for t, s in summary["tenants"].items():
        fmt = lambda x: "-" if x is None else f"{x:.1f}"  # noqa: E731
        lines.append(f"{t:14} {s['spans']:7} {sum(s['closed'].values()):7} {fmt(s['score_p50']):>6} "
                     f"{fmt(s['score_p95']):>6} {fmt(s['score_p99']):>6} {s['candidates']:5} {s['share'] * 100:5.2f}%")
    return "\n".join(lines)


@click.group()
def quality() -> None:
    """Trajectory quality: dry run and corpus generator (seed 002 §18)."""


@quality.command("simulate")
@click.option("--spans", "spans_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="NDJSON file of canonical spans, in stream order.")
@click.option("--policy", "policy_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Policy YAML (default configs/quality.yml).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Where to write the trajectory events (NDJSON, as published on gw.trajectories).")
@click.option("--dlq", "dlq_path", type=click.Path(dir_okay=False), default=None,
              help="Also write rejected lines with their reason (NDJSON).")
@click.option("--signals", "signals_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the trajectory_quality_* signals (NDJSON, one signal a line).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def simulate(spans_path, policy_path, out_path, dlq_path, signals_path, as_json) -> None:
    """Run the span cycle over a file with no broker and summarize (trajectories, scores, candidates)."""
    from tqdm import tqdm

    from gatewatch.processors.spans import dlq_record
    policy = load_policy(policy_path)
    with open(spans_path, "rb") as src, open(out_path, "wb") as out, \
            (open(dlq_path, "wb") if dlq_path else contextlib.nullcontext()) as dlq, \
            (open(signals_path, "wb") if signals_path else contextlib.nullcontext()) as sig:
        offset = [0]  # line number of the record being processed: the DLQ "offset" of a file

        def on_reject(line, reason):
            if dlq is not None:
                dlq.write(orjson.dumps(dlq_record("file:" + str(spans_path), 0, offset[0], reason, line)) + b"\n")

        def lines():
            for i, line in enumerate(tqdm(src, desc="spans", unit=" spans", disable=not sys.stderr.isatty())):
                offset[0] = i
                yield line

        def on_signals(batch):
            if sig is not None:
                sig.write(b"".join(orjson.dumps(x) + b"\n" for x in batch))

        cycle, rejects = simulate_lines(lines(), policy, lambda ev: out.write(orjson.dumps(ev) + b"\n"), on_reject,
                                        on_signals)
    summary = cycle.summary()
    summary["rejected"] = dict(sorted(rejects.items()))
    click.echo(orjson.dumps(summary).decode() if as_json else format_summary(summary, rejects))


@quality.command("generate")
@click.option("--n", "n", type=click.IntRange(1, 10_000_000), default=100_000, show_default=True,
              help="Number of spans (at most 10 million: the corpus is built in memory).")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--invalid-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of malformed lines (missing field, bad time, truncated JSON).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False))
def generate(n, seed, invalid_rate, out_path) -> None:
    """Write a seeded, realistic span corpus (several tenants, heavy-tailed trajectories)."""
    lines = generate_spans(n, seed, invalid_rate=invalid_rate)
    with open(out_path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
    click.echo(f"wrote {len(lines)} spans to {out_path}")


@click.group()
def trajectories() -> None:
    """The trajectory worker: gw.spans -> gw.trajectories (+ gw.dlq)."""


@trajectories.command("run")
@click.option("--state", "state_path", type=click.Path(file_okay=False), default="trajectory-state",
              show_default=True, help="Snapshot directory: one file per partition (processor state + next offset).")
@click.option("--policy", "policy_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Policy YAML (default configs/quality.yml).")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Serve /metrics, /healthz, /readyz on 127.0.0.1:PORT (0 = a free port).")
@click.option("--exit-when-idle", type=click.FloatRange(0), default=None,
              help="Stop after this many seconds without input (for batch runs and tests).")
@click.option("--group", default=None, help="Consumer group id (default: gatewatch-trajectories, under a topic prefix other than gw. <prefix>gatewatch-trajectories).")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=2000, show_default=True,
              help="Records per consume call.")
@click.option("--snapshot-interval", type=click.FloatRange(0), default=1.0, show_default=True,
              help="Seconds between flush + snapshot + commit (a crash re-applies at most this much).")
@click.option("--allow-policy-change", is_flag=True,
              help="Resume snapshots taken under another policy (default: refuse them).")
def trajectories_run(state_path, policy_path, metrics_port, exit_when_idle, group, batch_size,
                     snapshot_interval, allow_policy_change) -> None:
    """Consume gw.spans, link and score in batches, publish to gw.trajectories and gw.dlq."""
    from gatewatch.streams.runtime.process import run_stage
    from gatewatch.streams.stages.trajectories import TrajectoryStage
    stage = TrajectoryStage(load_policy(policy_path), state_path, group=group, batch_size=batch_size,
                            snapshot_interval=snapshot_interval, allow_policy_change=allow_policy_change)
    run_stage(stage, metrics_port=metrics_port, assignment="group", exit_when_idle_s=exit_when_idle)


commands = [quality, trajectories]
