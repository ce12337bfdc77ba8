"""`gatewatch policy hash|check|explain|eval DIR`: compose the policy files of a directory.

Files: project.yml, env.yml, then every other *.yml / *.yaml in sorted order
(later wins). A bad file exits 1 with one line: file:line: problem.
"""
from __future__ import annotations

import json
import re
import sys

import click
import orjson

from gatewatch.processors.canonical import canonical_json
from gatewatch.processors.policy.grammar import conds, render
from gatewatch.processors.timefmt import format_duration
from gatewatch.streams.runtime.policy_files import load_policy_or_fail


@click.group()
def policy() -> None:
    """Compose, hash, check and explain policy files (project -> env -> gate)."""


_scope = click.option("--scope", default=None, help="The policy of this scope: its overlay under services/, if one selects it.")


def _for_scope(pol, scope):
    if scope is None:
        return pol
    from gatewatch.processors.policy.overlays import PolicySet
    return PolicySet(pol, tuple(pol.overlays)).policy_for(scope)


@policy.command("hash")
@click.argument("directory", type=click.Path(file_okay=False))
@_scope
def policy_hash(directory, scope) -> None:
    """Print the policy hash (sha256 of the canonical JSON of the composed policy)."""
    click.echo(_for_scope(load_policy_or_fail(directory), scope).hash)


@policy.command("check")
@click.argument("directory", type=click.Path(file_okay=False))
def policy_check(directory) -> None:
    """Parse every rule, resolve every signal, check units; print a summary."""
    pol = load_policy_or_fail(directory)
    aborts = sum(1 for r in pol.rules if r.kind == "abort")
    hooks = len(pol.rules) - aborts
    for w in pol.warnings:
        click.echo(f"warning: {w}", err=True)
    shadow = pol.gate.shadow
    click.echo(f"ok {pol.hash} files={','.join(pol.files)} abort_rules={aborts} hooks={hooks} "
               f"cohort={pol.cohort}" + ("" if shadow is None else
                                         f" shadow={shadow.cohort}:{format_duration(shadow.min_duration_ms)}"
                                         f" shadow_rules={len(shadow.rules)}"))
    for o in pol.overlays:
        for w in o.policy.warnings:
            click.echo(f"warning: {o.name}: {w}", err=True)
        click.echo(f"overlay {o.name} {o.policy.hash} scope={','.join(o.patterns)} "
                   f"abort_rules={sum(1 for r in o.policy.rules if r.kind == 'abort')}")


@policy.command("explain")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable: doc, origins, rules.")
@_scope
def policy_explain(directory, as_json, scope) -> None:
    """The composed policy, where each value came from (file:line), and the compiled rules."""
    pol = _for_scope(load_policy_or_fail(directory), scope)
    rules = [{**r.describe(), "kind": r.kind, "action": r.action, "blocking": r.blocking,
              "normalized": render(r.expr), "signals": sorted({c.signal for c in conds(r.expr)}),
              "domains": list(r.domains), "origin": str(r.origin)} for r in pol.rules]
    if as_json:
        out = {"hash": pol.hash, "files": pol.files, "doc": pol.doc,
               "origins": {k: str(v) for k, v in sorted(pol.origins.items())}, "rules": rules}
        click.echo(orjson.dumps(out, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
        return
    click.echo(f"# policy {pol.hash}  files: {' -> '.join(['<builtin>'] + pol.files)}")
    for path, origin in sorted(pol.origins.items(), key=lambda kv: kv[0]):
        value = _leaf(pol.doc, path)
        if value is not _BRANCH:
            click.echo(f"{path} = {orjson.dumps(value).decode()}  # {origin}")
    click.echo("# rules (kind action blocking id: normalized condition  # origin)")
    for r in rules:
        click.echo(f"{r['kind']:5} {r['action']:16} {'blocking' if r['blocking'] else '        '} "
                   f"{r['id']}: {r['normalized']}  [on_missing={r['on_missing']} min_samples={r['min_samples']}]"
                   f"  # {r['origin']}")


@policy.command("signals")
def policy_signals() -> None:
    """Print the signal reference (docs/signals.md) from the catalogue."""
    import yaml

    from gatewatch.processors.declared import parse_declared
    from gatewatch.processors.signal_reference import render
    from gatewatch.streams.runtime.policy_files import builtin_layer
    click.echo(render(parse_declared(yaml.safe_load(builtin_layer()[1]))), nl=False)


@policy.command("shadow")
@click.argument("candidate", required=False, type=click.Path(file_okay=False))
@click.option("--policy", "active_dir", default="configs/policies", show_default=True,
              type=click.Path(file_okay=False), help="The active policy directory.")
@click.option("--corpus", "files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="kcat -J NDJSON input (repeatable), e.g. `gatewatch tail` output or a drill scenario's records.")
@click.option("--live", is_flag=True,
              help="Report on the running pipeline instead: gw.shadow (a decide worker's --shadow-policy) "
                   "against gw.actions. CANDIDATE, if given, picks its decisions on gw.shadow.")
@click.option("--since", default=None, metavar="TS", help="--live: only decisions at or after this event time.")
@click.option("--keys-dir", default=None,
              help="--live: count only actions whose permit verifies against this directory's decider.pub "
                   "(default: $GATEWATCH_KEYS_DIR or .gatewatch/keys, when it holds decider.pub).")
@click.option("--out", "out_path", default=None, type=click.Path(dir_okay=False),
              help="Also write the report as JSON (for `gatewatch evidence --include`).")
def policy_shadow(candidate, active_dir, files, live, since, keys_dir, out_path) -> None:
    """Replay a corpus with the active and a CANDIDATE policy; report where decisions diverge.

    Exit 0 when they agree everywhere (divergence 0), 1 when they diverge. Shadow decisions are
    never signed and never reach an executor. --live is advisory (gw.shadow records are unsigned,
    so a writer to that topic shapes the candidate side); --corpus is the authoritative check.
    """
    if live:
        rep = _live_report(candidate, since, keys_dir)
    else:
        if candidate is None or not files:
            raise click.UsageError("CANDIDATE and --corpus are required (or --live)")
        from gatewatch.streams.app.shadow import shadow_report
        rep = shadow_report(load_policy_or_fail(active_dir), load_policy_or_fail(candidate), list(files))
    if out_path:
        with open(out_path, "wb") as f:
            f.write(orjson.dumps(rep, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    where = " (live: gw.shadow vs gw.actions)" if live else ""
    click.echo(f"# shadow{where}: active {_short(rep['active_policy'])} vs candidate {_short(rep['candidate_policy'])}: "
               f"{rep['agree']} decisions agree, divergence {rep['divergence']}")
    if live:
        click.echo("# advisory: gw.shadow records are unsigned; `policy shadow --corpus` is the authoritative check; "
                   f"active-side permits {rep['permits']}")
        for topic, why in rep["not_counted"].items():
            if why:
                click.echo(f"# not counted on gw.{topic}: " + ", ".join(f"{n} {r}" for r, n in why.items()))
    for d in rep["diffs"]:
        at = (d["candidate"] or d["active"])["ts"]
        click.echo(f"{d['scope']}@{d['release'] or '-'} {d['kind']} {d['action']} {d['rule']}: {d['what']} "
                   f"(active {d['active']['ts'] if d['active'] else '-'}, candidate "
                   f"{d['candidate']['ts'] if d['candidate'] else '-'}; at {at})")
    if rep["divergence"]:
        sys.exit(1)  # not click's Exit: main() runs click in standalone_mode=False


def _short(hashes: str) -> str:
    return ",".join(h[:12] for h in hashes.split(","))


def _decider_keys(keys_dir: str | None) -> dict | None:
    """key id -> decider key when one is available; an explicit --keys-dir must hold decider.pub."""
    from gatewatch.processors.signing import key_id
    from gatewatch.streams.runtime.keys import keys_dir as resolve
    from gatewatch.streams.runtime.keys import load_verify_key
    path = resolve(keys_dir)
    if not (path / "decider.pub").exists():
        if keys_dir is not None:
            raise click.BadParameter(f"{path}: no decider.pub", param_hint="--keys-dir")
        return None
    vk = load_verify_key("decider", path)
    return {key_id(vk): vk}


def _live_report(candidate, since, keys_dir=None) -> dict:
    from gatewatch.processors.timefmt import TimeFormatError, parse_time_ms
    from gatewatch.streams.app.shadow import live_report, policy_hashes
    from gatewatch.streams.runtime import topics
    from gatewatch.streams.runtime.brokers import kafka_bootstrap
    from gatewatch.streams.runtime.kafka import read_to_end
    try:
        since_ms = parse_time_ms(since) if since is not None else None
    except TimeFormatError as e:
        raise click.BadParameter(str(e), param_hint="--since") from None
    wanted = policy_hashes(load_policy_or_fail(candidate)) if candidate else None
    decider = _decider_keys(keys_dir)
    with kafka_bootstrap() as bs:
        actions, shadow = ([m.value() for m in read_to_end(bs, topics.topic(t))] for t in ("actions", "shadow"))
    return live_report(actions, shadow, wanted, since_ms, decider)


@policy.command("eval")
@click.argument("directory", type=click.Path(file_okay=False))
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--keys-dir", default=None, help="Sign actions with this directory's decider key (default: unsigned).")
def policy_eval(directory, files, keys_dir) -> None:
    """Re-decide recorded signals with DIR's policy (what-if); print the actions as NDJSON.

    FILES hold signal records, one JSON per line: bare signals, `gatewatch replay`/`tail`
    lines ({"topic","key","value"} or kcat envelopes with "payload"). Signals carrying
    domain/source/batch_n (gw.signals records) are reassembled like the decide stage does;
    bare ones are batched by consecutive (scope, domain, ts).
    """
    from gatewatch.processors.policy import SignalError, permit_signer
    from gatewatch.processors.policy.scoped import ScopedEngine
    from gatewatch.processors.signal_merge import BatchAssembler

    pol = load_policy_or_fail(directory)
    signer = None
    if keys_dir:
        from gatewatch.streams.runtime.keys import load_signing_key
        signer = permit_signer(load_signing_key("decider", keys_dir))
    engine, assembler = ScopedEngine(pol, signer), BatchAssembler()
    bad = {"lines": 0, "batches": 0}
    pending: list[dict] = []

    def run(batch):
        try:
            for a in engine.on_batch(batch):
                click.echo(canonical_json(a).decode())
            engine.take_attestations()  # eval prints decisions only: do not let these pile up
        except SignalError:
            bad["batches"] += 1

    for name in files:
        with click.open_file(name, "rb") as fh:
            for line in fh:
                readable, rec = _signal_of(line)
                if rec is None:  # other topics' records are fine, garbage is counted
                    bad["lines"] += int(not readable and bool(line.strip()))
                    continue
                if {"domain", "source", "batch_n"} <= rec.keys():
                    try:
                        batches = assembler.add(rec)
                    except (KeyError, TypeError, ValueError):
                        bad["lines"] += 1
                        continue
                    for b in batches:
                        run(b)
                    continue
                if pending and _batch_key(pending[-1]) != _batch_key(rec):
                    run(pending)
                    pending = []
                pending.append(rec)
    if pending:
        run(pending)
    if bad["lines"] or bad["batches"]:
        click.echo(f"# skipped {bad['lines']} unreadable lines, {bad['batches']} refused batches", err=True)


def _signal_of(line: bytes) -> tuple[bool, dict | None]:
    """(readable, signal or None) for one input line."""
    try:
        rec = orjson.loads(line)
        if isinstance(rec, dict) and "payload" in rec and "name" not in rec:
            rec = orjson.loads(rec["payload"]) if rec["payload"] is not None else None
        elif isinstance(rec, dict) and "value" in rec and "topic" in rec:
            rec = rec["value"] if str(rec["topic"]).endswith("signals") else None
    except (orjson.JSONDecodeError, TypeError):
        return False, None
    return True, (rec if isinstance(rec, dict) and "name" in rec and "ts" in rec else None)


def _batch_key(sig: dict) -> tuple:
    from gatewatch.processors.policy.grammar import signal_info
    info = signal_info(str(sig.get("name")))
    return (sig.get("scope"), info.domain if info else None, sig.get("ts"))


_BRANCH = object()


def _leaf(doc, path: str):
    """The value at an origins path (processors.policy.source.origins spells them)."""
    cur = doc
    for name, idx, quoted in re.findall(r'([^.\[\]"]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]', path):
        cur = cur[int(idx)] if idx else cur[json.loads(quoted)] if quoted else cur[name]
    return _BRANCH if isinstance(cur, (dict, list)) and cur else cur


commands = [policy]
