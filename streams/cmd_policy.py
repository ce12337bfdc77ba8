"""`gatewatch policy hash|check|explain DIR`: compose the policy files of a directory.

Files: project.yml, env.yml, then every other *.yml / *.yaml in sorted order
(later wins). A bad file exits 1 with one line: file:line: problem.
"""
from __future__ import annotations

from pathlib import Path

import click
import orjson

from processors.policy import Policy, PolicyError, compose
from processors.policy.grammar import conds, render
from streams.errors import GatewatchError

FIRST = ("project.yml", "env.yml")


def policy_files(path: str | Path) -> list[Path]:
    d = Path(path)
    if not d.is_dir():
        raise GatewatchError(f"policy directory not found: {d}")
    first = [d / n for n in FIRST if (d / n).is_file()]
    rest = sorted(p for p in d.iterdir()
                  if p.is_file() and p.suffix in (".yml", ".yaml") and p.name not in FIRST)
    files = first + rest
    if not files:
        raise GatewatchError(f"no policy files (*.yml) in {d}")
    return files


def load_policy_dir(path: str | Path) -> Policy:
    """Read and compose a policy directory. Raises PolicyError (a ValueError) on a bad file."""
    sources = []
    for p in policy_files(path):
        try:
            sources.append((p.name, p.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as e:
            raise PolicyError(p.name, None, f"cannot read: {e}") from None
    return compose(sources)


def reload_policy(path: str | Path, current: Policy | None) -> tuple[Policy | None, str | None]:
    """For running workers: (new policy, None), or (current, one-line reason) when the
    directory is refused, so the worker keeps the last good policy."""
    try:
        return load_policy_dir(path), None
    except (PolicyError, GatewatchError) as e:
        return current, str(e)


def _load(path) -> Policy:
    try:
        return load_policy_dir(path)
    except PolicyError as e:
        raise GatewatchError(f"policy refused: {e}") from None


@click.group()
def policy() -> None:
    """Compose, hash, check and explain policy files (project -> env -> gate)."""


@policy.command("hash")
@click.argument("directory", type=click.Path(file_okay=False))
def policy_hash(directory) -> None:
    """Print the policy hash (sha256 of the canonical JSON of the composed policy)."""
    click.echo(_load(directory).hash)


@policy.command("check")
@click.argument("directory", type=click.Path(file_okay=False))
def policy_check(directory) -> None:
    """Parse every rule, resolve every signal, check units; print a summary."""
    pol = _load(directory)
    aborts = sum(1 for r in pol.rules if r.kind == "abort")
    hooks = len(pol.rules) - aborts
    click.echo(f"ok {pol.hash} files={','.join(pol.files)} abort_rules={aborts} hooks={hooks} "
               f"cohort={pol.cohort}")


@policy.command("explain")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable: doc, origins, rules.")
def policy_explain(directory, as_json) -> None:
    """The composed policy, where each value came from, and the compiled rules."""
    pol = _load(directory)
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


_BRANCH = object()


def _leaf(doc, path: str):
    import re
    cur = doc
    for name, idx in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path):
        cur = cur[int(idx)] if idx else cur[name]
    return _BRANCH if isinstance(cur, (dict, list)) and cur else cur


commands = [policy]
