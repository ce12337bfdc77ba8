"""`gatewatch keys`: Ed25519 keys for the decider, executor, log and witnesses."""
from __future__ import annotations

import click
import orjson

from gatewatch.streams.runtime.keys import ROLES, init_keys, keys_dir, public_keys


@click.group()
def keys() -> None:
    """Create and show signing keys (files 0600, key ids derived from the public key)."""


@keys.command("init")
@click.option("--dir", "directory", default=None, help="Key directory (default: $GATEWATCH_KEYS_DIR or .gatewatch/keys).")
@click.option("--role", "roles", multiple=True, type=click.Choice(ROLES), help="Only these roles (repeatable).")
@click.option("--force", is_flag=True, help="Replace existing keys.")
def keys_init(directory, roles, force) -> None:
    """Create the keys that do not exist yet and print their ids."""
    for role, kid in init_keys(directory, roles or ROLES, force).items():
        click.echo(f"{role:10} {kid}")
    click.echo(f"# keys in {keys_dir(directory)}", err=True)


@keys.command("show")
@click.option("--dir", "directory", default=None)
def keys_show(directory) -> None:
    """Print the public keys as JSON (safe to share)."""
    click.echo(orjson.dumps(public_keys(directory), option=orjson.OPT_INDENT_2).decode())


commands = [keys]
