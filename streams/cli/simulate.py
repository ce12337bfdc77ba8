"""`gatewatch simulate SCENARIO`: realistic telemetry for every input topic."""
from __future__ import annotations

import contextlib
import math
import sys
import time

import click

from gatewatch.processors.scenarios import Scenario
from gatewatch.processors.timefmt import TimeFormatError, parse_duration_ms, parse_time_ms
from gatewatch.streams.app.simulate import (
    ending_now,
    load_scenario_spec,
    publish,
    scenario_names,
    write_envelopes,
)
from gatewatch.streams.runtime.errors import GatewatchError

# event times a broker stores: Kafka refuses negative timestamps, and a scenario runs for days at most
EARLIEST_START_MS, LATEST_START_MS = 86_400_000, parse_time_ms("9000-01-01T00:00:00Z")


def scenario_start(text: str, hint: str = "--start") -> int:
    """A scenario's first event time from RFC 3339 or epoch text; BadParameter when it is none, or
    outside 1970-01-02 .. 9000-01-01."""
    try:
        ms = parse_time_ms(text)
    except TimeFormatError as e:
        raise click.BadParameter(str(e), param_hint=hint) from None
    if not EARLIEST_START_MS <= ms <= LATEST_START_MS:
        raise click.BadParameter(f"{text!r} is outside 1970-01-02 .. 9000-01-01", param_hint=hint)
    return ms


def _positive(ctx, param, value):
    """A finite number above 0 (nan passed every range check and hung the generator)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"{value} is not a finite number above 0")
    return value


def _not_negative(ctx, param, value):
    if not (math.isfinite(value) and value >= 0):
        raise click.BadParameter(f"{value} is not a finite number of at least 0")
    return value


def _duration(ctx, param, value):
    if value is None:
        return None
    try:
        ms = parse_duration_ms(value)
    except TimeFormatError as e:
        raise click.BadParameter(str(e)) from None
    if ms <= 0:
        raise click.BadParameter(f"{value!r} is not a duration above 0")
    return value


@click.command()
@click.argument("scenario")
@click.option("--seed", type=int, default=None, help="Random seed (default: the scenario's).")
@click.option("--rate", type=float, default=None, callback=_positive,
              help="Total request rate (requests/s of event time).")
@click.option("--duration", default=None, callback=_duration,
              help="Event-time length, e.g. 15m, 24h (default: the scenario's).")
@click.option("--speed", type=float, default=0.0, show_default=True, callback=_not_negative,
              help="Event-time compression when publishing: N seconds of event time per wall second (0 = as fast as possible).")
@click.option("--start", default="auto", show_default=True,
              help="Event time of the first record (RFC 3339, epoch, now, or auto: the scenario ends now, so "
                   "a broker accepts every record timestamp: Kafka refuses ones over an hour ahead of its clock).")
@click.option("--out", type=click.Path(dir_okay=False, allow_dash=True), default=None,
              help="Write kcat -J envelopes here instead of publishing (no broker; input for `gatewatch replay`).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def simulate(scenario, seed, rate, duration, speed, start, out, quiet) -> None:
    """Publish SCENARIO's telemetry (a name from configs/scenarios or a YAML path)."""
    from tqdm import tqdm
    spec = load_scenario_spec(scenario)
    start_ms = 0 if start == "auto" else int(time.time() * 1000) if start == "now" else scenario_start(start)
    try:
        sc = Scenario(spec, seed=seed, start_ms=start_ms, duration=duration, rate=rate)
        if start == "auto":
            sc = Scenario(spec, seed=seed, start_ms=ending_now(sc.duration_ms), duration=duration, rate=rate)
    except ValueError as e:  # TimeFormatError too: a bad duration or step in the file
        raise GatewatchError(f"scenario {scenario}: {e}") from None
    bar = tqdm(desc=sc.name, unit=" rec", disable=quiet, file=sys.stderr, mininterval=0.5)
    try:
        if out:
            from gatewatch.streams.runtime.statefiles import replaced_on_success
            with contextlib.nullcontext(sys.stdout.buffer) if out == "-" else replaced_on_success(out) as f:
                n = write_envelopes(sc, f, bar)
        else:
            from gatewatch.streams.runtime.brokers import kafka_bootstrap
            from gatewatch.streams.runtime.kafka import create_topics, ordered_producer
            with kafka_bootstrap() as bs:
                create_topics(bs)
                n = publish(sc, ordered_producer(bs, **{"linger.ms": 20}), speed, bar)
    except ValueError as e:  # a value of the scenario that only shows while generating (a NaN rate)
        raise GatewatchError(f"scenario {scenario}: {e}") from None
    finally:
        bar.close()
    click.echo(f"{sc.name}: {n} records" + (f" -> {out}" if out else " published"), err=True)


simulate.help = (simulate.help or "") + "\n\nScenarios: " + ", ".join(scenario_names()) + "."
commands = [simulate]
