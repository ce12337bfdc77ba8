"""`gatewatch worker ingest|signals|decide`, `gatewatch replay`, `gatewatch tail`."""
from __future__ import annotations

import base64
import contextlib
import sys
import time
import uuid
from collections import Counter

import click
import orjson

from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.errors import GatewatchError

_state_dir = click.option("--state-dir", default=".gatewatch/state", show_default=True,
                          help="Where the worker keeps its snapshots.")
_metrics = click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
                        help="Serve /metrics, /healthz, /readyz on this port (127.0.0.1 unless GATEWATCH_HTTP_HOST).")
_idle = click.option("--exit-when-idle", type=float, default=None, metavar="SECONDS",
                     help="Stop after this long without input (demos, tests).")
_assign = click.option("--assignment", type=click.Choice(["static", "group"]), default="static", show_default=True,
                       help="static: own --partitions (default all) with no group membership; group: elastic consumer group.")
_parts = click.option("--partitions", default=None, metavar="LIST",
                      help="Comma-separated input partitions this instance owns (static assignment).")


def _partition_list(text):
    if text is None:
        return None
    try:
        return sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise click.BadParameter(f"not a list of partition numbers: {text!r}", param_hint="--partitions") from None


_policy = click.option("--policy", "policy_dir", default="configs/policies", show_default=True,
                       type=click.Path(file_okay=False), help="Policy directory (project.yml, env.yml, gate YAML).")


def _load_policy(policy_dir):
    from gatewatch.streams.runtime.policy_files import load_policy_or_fail as _load
    return _load(policy_dir)


@click.group()
def worker() -> None:
    """Run one pipeline stage (ingest -> signals -> decide). Stop with SIGTERM or Ctrl-C."""


def _stage_options(f):
    for opt in reversed((_assign, _parts, _state_dir, _metrics, _idle, _policy)):
        f = opt(f)
    return f


def _run_stage(stage, metrics_port, assignment, partitions, exit_when_idle) -> None:
    from gatewatch.streams.runtime.process import run_stage
    run_stage(stage, metrics_port=metrics_port, assignment=assignment, partitions=_partition_list(partitions),
              exit_when_idle_s=exit_when_idle)


@worker.command("ingest")
@_stage_options
@click.option("--batch-size", type=click.IntRange(1, 1_000_000), default=10_000, show_default=True)
def worker_ingest(assignment, partitions, state_dir, metrics_port, exit_when_idle, policy_dir, batch_size) -> None:
    """Decode, validate and pre-aggregate gw.metrics, gw.rum and gw.cdc into gw.partials."""
    from gatewatch.processors.inputs import InputOptions
    from gatewatch.processors.windows import SignalConfig
    from gatewatch.streams.stages.ingest import IngestStage
    policy = _load_policy(policy_dir)
    cfg, opts = SignalConfig.from_policy(policy.doc, policy.hash), InputOptions.from_policy(policy.doc)
    _run_stage(IngestStage(cfg, state_dir, inputs=opts, batch_size=batch_size, policy_dir=policy_dir),
               metrics_port, assignment, partitions, exit_when_idle)


@worker.command("signals")
@_stage_options
def worker_signals(assignment, partitions, state_dir, metrics_port, exit_when_idle, policy_dir) -> None:
    """Merge partials into event-time windows and publish signals to gw.signals."""
    from gatewatch.processors.windows import SignalConfig
    from gatewatch.streams.stages.signals import SignalStage
    policy = _load_policy(policy_dir)
    cfg = SignalConfig.from_policy(policy.doc, policy.hash)
    _run_stage(SignalStage(cfg, state_dir), metrics_port, assignment, partitions, exit_when_idle)


_shadow = click.option("--shadow-policy", "shadow_dir", default=None, envvar="GATEWATCH_SHADOW_POLICY",
                       type=click.Path(file_okay=False),
                       help="A candidate policy directory run beside the active one; its decisions go to gw.shadow, "
                            "unsigned, never executed ($GATEWATCH_SHADOW_POLICY).")


@worker.command("decide")
@_stage_options
@click.option("--keys-dir", default=None, help="Key directory holding decider.key (default: $GATEWATCH_KEYS_DIR).")
@_shadow
def worker_decide(assignment, partitions, state_dir, metrics_port, exit_when_idle, policy_dir, keys_dir,
                  shadow_dir) -> None:
    """Evaluate the policy and gate over gw.signals; publish signed actions to gw.actions.

    With --shadow-policy a candidate policy decides beside it on the same batches: its decisions and
    gate records go to gw.shadow (marked shadow, no permit); `gatewatch policy shadow --live` reports
    where they diverge from gw.actions."""
    from gatewatch.streams.runtime.keys import load_signing_key
    from gatewatch.streams.runtime.policy_files import load_policy_dir
    from gatewatch.streams.stages.decide import DecideStage
    policy = _load_policy(policy_dir)  # a bad policy at start is a one-line error
    shadow = _load_policy(shadow_dir) if shadow_dir else None
    key = load_signing_key("decider", keys_dir)
    _run_stage(DecideStage(policy_dir, key, state_dir, load_policy_dir, policy=policy, shadow_policy=shadow),
               metrics_port, assignment, partitions, exit_when_idle)


def _echo_decision_root(values: list[bytes], signed: bool) -> None:
    import base64

    import orjson

    from gatewatch.processors.canonical import canonical_json
    from gatewatch.sinks.worm.store import decision_root
    pairs = [(d["id"], canonical_json(d)) for d in map(orjson.loads, values)]
    # the root covers each action's permit: unsigned ones can never match a signed log's
    note = "" if signed else " (unsigned actions: no signed log matches it; pass the decider's --keys-dir)"
    click.echo(f"gatewatch replay: {len(dict(pairs))} decisions, decision root "
               f"{base64.b64encode(decision_root(pairs)).decode()}{note}", err=True)


@click.command()
@_policy
@click.option("--keys-dir", default=None, help="Sign actions with this directory's decider key (default: unsigned).")
@click.option("--flush-every", type=click.IntRange(1, 10_000_000), default=10_000, show_default=True,
              help="Records per partial, like ingest's batch (the signals do not depend on it).")
@click.option("--quality-policy", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Trajectory/quality policy for gw.spans records (default: configs/quality.yml).")
@click.option("--shadow-policy", "shadow_dir", default=None, type=click.Path(file_okay=False),
              help="A candidate policy decided beside the active one, as decide --shadow-policy: gw.shadow lines.")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, allow_dash=True))
def replay(policy_dir, keys_dir, flush_every, quality_policy, shadow_dir, files) -> None:
    """Run the streaming processors over kcat -J NDJSON FILES with no broker.

    Prints what the streaming path would publish, one {"topic","key","value"} line each:
    signals, actions and DLQ records. Unreadable lines are counted on stderr, never fatal.
    Ends with the decision root on stderr: with the decider's --keys-dir it equals the one
    `gatewatch worm status` prints for a WORM log of the same input.
    """
    from gatewatch.streams.app.replay import Replayer, feed_files, output_line, scan_sources
    policy = _load_policy(policy_dir)
    signer = None
    if keys_dir:
        from gatewatch.processors.policy.engine import permit_signer
        from gatewatch.streams.runtime.keys import load_signing_key
        signer = permit_signer(load_signing_key("decider", keys_dir))
    from gatewatch.streams.runtime import topics
    from gatewatch.streams.runtime.policy_files import load_quality_policy
    with contextlib.ExitStack() as spool:
        paths = [_spool_stdin(spool) if p == "-" else p for p in files]  # the files are read twice
        rp = Replayer(policy, signer, flush_every, load_quality_policy(quality_policy), sources=scan_sources(paths),
                      shadow_policy=_load_policy(shadow_dir) if shadow_dir else None)
        bad: Counter = Counter()
        out = sys.stdout.buffer
        actions_topic, decisions = topics.topic("actions"), []

        def emit(recs) -> None:
            for rec in recs:
                out.write(output_line(*rec))
                if rec[0] == actions_topic:
                    decisions.append(rec[2])

        for recs in feed_files(rp, paths, bad):
            emit(recs)
    out.flush()
    _echo_decision_root(decisions, signer is not None)
    problems = bad + rp.skipped
    if problems:
        click.echo("gatewatch replay: skipped " + ", ".join(f"{n} {k}" for k, n in sorted(problems.items())), err=True)


def _spool_stdin(stack) -> str:
    import shutil
    import tempfile
    f = stack.enter_context(tempfile.NamedTemporaryFile(prefix="gatewatch-replay-", suffix=".ndjson"))
    shutil.copyfileobj(sys.stdin.buffer, f)
    f.flush()
    return f.name


@click.command()
@click.argument("topic")
@click.option("--from-beginning/--from-end", default=True, show_default=True)
@click.option("--max-records", "-n", type=click.IntRange(1), default=None, help="Stop after N records.")
@click.option("--idle", type=float, default=5.0, show_default=True, metavar="SECONDS",
              help="Stop after this long without records (0 = follow forever).")
def tail(topic, from_beginning, max_records, idle) -> None:
    """Print TOPIC's records as kcat -J envelopes (input for `gatewatch replay`).

    TOPIC is a catalogue name (metrics, signals, ...) or a full topic name.
    """
    from gatewatch.streams.runtime.brokers import kafka_bootstrap
    from gatewatch.streams.runtime.consuming import message_ts_ms
    from gatewatch.streams.runtime.kafka import consumer
    name = topics.topic(topic) if topic in topics.BY_NAME else topic
    out = sys.stdout.buffer
    with kafka_bootstrap() as bs:
        c = consumer(bs, f"gatewatch-tail-{uuid.uuid4().hex[:8]}",
                     **{"auto.offset.reset": "earliest" if from_beginning else "latest"})
        try:
            _require_topic(c, name)
            last = [None]  # idle time counts from the group join, which takes seconds on some brokers
            c.subscribe([name], on_assign=lambda *_: last.__setitem__(0, time.monotonic()))
            n = 0
            while max_records is None or n < max_records:
                msgs = c.consume(500, 0.5)
                if not msgs:
                    if idle and last[0] is not None and time.monotonic() - last[0] > idle:
                        break
                    continue
                last[0] = time.monotonic()
                for m in msgs:
                    if m.error():
                        continue
                    out.write(orjson.dumps(_envelope(m, message_ts_ms(m))) + b"\n")
                    n += 1
                    if max_records is not None and n >= max_records:
                        break
                out.flush()
        finally:
            c.close()


def _require_topic(c, name: str) -> None:
    from confluent_kafka import KafkaException
    try:
        md = c.list_topics(name, timeout=10).topics.get(name) if name else None
    except KafkaException as e:
        raise GatewatchError(f"tail {name}: {e.args[0].str()}") from None
    if md is None or md.error is not None or not md.partitions:
        raise GatewatchError(f"topic {name!r} not found (a catalogue name: {', '.join(topics.BY_NAME)}; "
                             f"or a full topic name)")


def _envelope(m, ts: int | None) -> dict:
    """A kcat -J line. A value that is not UTF-8 (otlp_proto, Avro) goes as payload_b64, which
    replay reads: decoding it with replacement characters destroyed it."""
    env = {"topic": m.topic(), "partition": m.partition(), "offset": m.offset(), "tstype": "create", "ts": ts,
           "key": None if m.key() is None else m.key().decode("utf-8", "replace")}
    value = m.value()
    try:
        env["payload"] = None if value is None else value.decode("utf-8")
    except UnicodeDecodeError:
        env["payload_b64"] = base64.b64encode(value).decode()
    return env


commands = [worker, replay, tail]
