"""`gatewatch demo`: the README's main command (streams.app.demo runs it)."""
from __future__ import annotations

from pathlib import Path

import click

from gatewatch.streams.app.demo import SCENARIOS, run_demo, scenario_list
from gatewatch.streams.app.simulate import load_scenario_spec
from gatewatch.streams.runtime.brokers import ENGINES
from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.paths import config_path
from gatewatch.streams.runtime.policy_files import load_policy_or_fail


def _say(msg: str, end: str = "\n") -> None:
    click.echo(msg + end, err=True, nl=False)


@click.command()
@click.option("--out", "out_dir", default="out/demo", show_default=True, type=click.Path(file_okay=False),
              help="Where keys, state, logs, the evidence bundle and the report go (replaced each run).")
@click.option("--speed", type=float, default=240.0, show_default=True,
              help="Event-time compression: seconds of scenario time per wall second.")
@click.option("--policy", "policy_dir", default=str(config_path("policies")), show_default="configs/policies",
              type=click.Path(exists=True, file_okay=False))
@click.option("--scenarios", default=SCENARIOS, show_default=True,
              help="Comma-separated NAME[:DURATION] (names from configs/scenarios or YAML paths), played in order.")
@click.option("--engine", type=click.Choice(ENGINES), default=None,
              help="Broker to start when KAFKA_BOOTSTRAP_SERVERS is unset: tansu (embedded, the default) or "
                   "kafka (Apache Kafka from Maven jars, needs Java 17).")
def demo(out_dir, speed, policy_dir, scenarios, engine) -> None:
    """Run the whole data plane end to end on this machine and prove what it decided.

    Starts a broker (the embedded tansu unless KAFKA_BOOTSTRAP_SERVERS is set or --engine kafka),
    every worker, and a local deploy webhook; plays healthy_canary then traffic_spike; ends with a
    verified evidence bundle and an HTML report.
    """
    load_policy_or_fail(policy_dir)
    for name, _d in scenario_list(scenarios):
        load_scenario_spec(name)  # unknown names fail before anything starts
    res = run_demo(Path(out_dir), speed, Path(policy_dir), scenario_list(scenarios), say=_say, engine=engine)
    kinds = ", ".join(f"{k} x{n}" for k, n in sorted(res["actions"].items())) or "none"
    click.echo(f"\ngatewatch demo finished in {res['seconds']:.0f} s")
    click.echo(f"  actions:            {kinds}")
    click.echo(f"  rollbacks executed: {len(res['permitted_rollbacks'])} with a valid permit "
               f"(webhook calls: {res['webhook_calls']})")
    if res["refused"]:
        why = ", ".join(f"{reason} x{n}" for reason, n in sorted(res["refused"].items()))
        click.echo(f"  refused by the executor: {why}"
                   + (f" (a permit lives gate.ttl past its decision's event time; the demo plays {res['event_minutes']}"
                      " min of event time ending now, so its first decisions are older than that)"
                      if "expired" in res["refused"] else ""))
    click.echo(f"  evidence bundle:    {res['bundle']}  ({'verified' if res['verified'] else 'VERIFY FAILED'})")
    deliveries = next((ln for ln in res["verify_output"].splitlines() if ln.startswith("deliveries:")), None)
    if deliveries:
        click.echo(f"  {deliveries}")
    click.echo(f"  HTML report:        {res['report'] or 'not built'}")
    click.echo(f"  logs:               {res['out'] / 'logs'}")
    for g in res["gates"]:
        click.echo(f"  gate {g['scope']}@{g['release']}: {g['verdict']} ({g['state']})")
    if not res["verified"]:
        raise GatewatchError("evidence bundle did not verify:\n" + res["verify_output"][-1500:])
    if not res["permitted_rollbacks"]:
        raise GatewatchError("no rollback was executed with a valid permit")


commands = [demo]
