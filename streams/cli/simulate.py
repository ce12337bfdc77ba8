"""`gatewatch simulate SCENARIO`: realistic telemetry for every input topic."""
from __future__ import annotations

import sys
import time

import click

from gatewatch.processors.scenarios import Scenario
from gatewatch.processors.timefmt import TimeFormatError, parse_time_ms
from gatewatch.streams.app.simulate import (
    ending_now,
    load_scenario_spec,
    publish,
    scenario_names,
    write_envelopes,
)


@click.command()
@click.argument("scenario")
@click.option("--seed", type=int, default=None, help="Random seed (default: the scenario's).")
@click.option("--rate", type=float, default=None, help="Total request rate (requests/s of event time).")
@click.option("--duration", default=None, help="Event-time length, e.g. 15m, 24h (default: the scenario's).")
@click.option("--speed", type=float, default=0.0, show_default=True,
              help="Event-time compression when publishing: N seconds of event time per wall second (0 = as fast as possible).")
@click.option("--start", default="auto", show_default=True,
              help="Event time of the first record (RFC 3339, epoch, now, or auto: the scenario ends now, so "
                   "a broker accepts every record timestamp: Kafka refuses ones over an hour ahead of its clock).")
@click.option("--out", type=click.Path(dir_okay=False, allow_dash=True), default=None,
              help="Write kcat -J envelopes here instead of publishing (no broker; input for `gatewatch replay`).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def simulate(scenario, seed, rate, duration, speed, start, out, quiet) -> None:
    """Publish SCENARIO's telemetry (a name from configs/scenarios or a YAML path).

    Scenarios: healthy_canary, traffic_spike, cdc_freeze, schema_drift, fe_cwv_regress,
    invariant_breach, latency_regression.
    """
    from tqdm import tqdm
    spec = load_scenario_spec(scenario)
    try:
        start_ms = 0 if start == "auto" else int(time.time() * 1000) if start == "now" else parse_time_ms(start)
    except TimeFormatError as e:
        raise click.BadParameter(str(e), param_hint="--start") from None
    sc = Scenario(spec, seed=seed, start_ms=start_ms, duration=duration, rate=rate)
    if start == "auto":
        sc = Scenario(spec, seed=seed, start_ms=ending_now(sc.duration_ms), duration=duration, rate=rate)
    bar = tqdm(desc=sc.name, unit=" rec", disable=quiet, file=sys.stderr, mininterval=0.5)
    try:
        if out:
            f = sys.stdout.buffer if out == "-" else open(out, "wb")
            with f:
                n = write_envelopes(sc, f, bar)
        else:
            from gatewatch.streams.runtime.brokers import kafka_bootstrap
            from gatewatch.streams.runtime.kafka import create_topics, ordered_producer
            with kafka_bootstrap() as bs:
                create_topics(bs)
                n = publish(sc, ordered_producer(bs, **{"linger.ms": 20}), speed, bar)
    finally:
        bar.close()
    click.echo(f"{sc.name}: {n} records" + (f" -> {out}" if out else " published"), err=True)


simulate.__doc__ += "\n\nKnown: " + ", ".join(scenario_names())
commands = [simulate]
