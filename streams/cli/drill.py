"""`gatewatch drill`: inject every hook's fault (a scenario) through the replay path; PASS/FAIL per hook."""
from __future__ import annotations

import inspect
import sys
from pathlib import Path

import click
import orjson


@click.command()
@click.option("--policy", "policy_dir", default="configs/policies", show_default=True,
              type=click.Path(file_okay=False), help="Policy directory whose hooks are drilled.")
@click.option("--out", default="out/drill.json", show_default=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the drill report (JSON) here; include it with `gatewatch evidence --include`.")
@click.option("--hooks", default=None, help="Comma-separated hook names (default: every hook the policy enables).")
@click.option("--start", default=None, help="Event time of the scenarios' first record (default: 2026-01-01T00:00:00Z).")
@click.option("--aborts", is_flag=True, help="Drill the policy's abort rules too (rule ids; usable in --hooks).")
@click.option("--controls/--no-controls", default=None,
              help="Also check the negative controls (healthy_canary promotes, nothing aborts); "
                   "default: on unless --hooks is given.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
def drill(policy_dir, out, hooks, start, aborts, controls, quiet) -> None:
    """Run each hook's scenario through the streaming processors and compare actions.

    Per hook: PASS/FAIL, the expected and observed actions (ids, rule text, values), the event
    time from fault injection to the action and the run's wall time. Exit 1 if any hook FAILs.
    The hook -> scenario map is gatewatch.streams.app.drill.HOOK_SCENARIOS.
    """
    from gatewatch.streams.app.drill import DRILL_START, run_drill, table
    from gatewatch.streams.cli.simulate import scenario_start
    from gatewatch.streams.runtime.policy_files import load_policy_or_fail as _load
    if start is not None:
        scenario_start(start)
    policy = _load(policy_dir)
    wanted = [h.strip() for h in hooks.split(",") if h.strip()] if hooks else None
    say = None if quiet else (lambda m: click.echo(m, err=True))
    report = run_drill(policy, wanted, start or DRILL_START, progress=say, aborts=aborts, controls=controls)
    click.echo(table(report), err=out == "-")  # stdout carries the JSON then
    data = orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    if out == "-":
        sys.stdout.buffer.write(data)
    elif out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_bytes(data)
        click.echo(f"drill report -> {out}", err=True)
    if not report["ok"]:
        sys.exit(1)


def _map_help() -> str:
    from gatewatch.streams.app.drill import HOOK_SCENARIOS
    return "\n\nHook -> scenario: " + ", ".join(f"{h} -> {s}" for h, s in HOOK_SCENARIOS.items()) + "."


drill.help = inspect.cleandoc(drill.help or "") + _map_help()
commands = [drill]
