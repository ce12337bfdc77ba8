"""`gatewatch` command line. Subcommands live in their own modules, listed in COMMAND_MODULES and imported on use.

Exit codes: 0 ok, 1 failure, 2 usage; a command may define more (`gatewatch verify`: 3, 4). Errors are one line on stderr, never a traceback
(set GATEWATCH_DEBUG=1 to see one).
"""
from __future__ import annotations

import importlib
import logging
import os
import sys

import click

from gatewatch.streams.runtime.errors import ExitStatus, GatewatchError

# Each module exposes `commands`, a list of click commands or groups; this table names them so that
# a command imports only its own module (all of them took ~0.5 s: every worker, `gate status` and
# `verify` paid it at start). tests/unit/test_cli.py checks the table against the modules.
COMMAND_MODULES = {
    "gatewatch.streams.cli.kafka": ("broker", "topics"),
    "gatewatch.streams.cli.doctor": ("doctor",),
    "gatewatch.streams.cli.workers": ("worker", "replay", "tail"),
    "gatewatch.streams.cli.simulate": ("simulate",),
    "gatewatch.streams.cli.demo": ("demo",),
    "gatewatch.streams.cli.keys": ("keys",),
    "gatewatch.streams.cli.policy": ("policy",),
    "gatewatch.streams.cli.quality": ("quality", "trajectories"),
    "gatewatch.streams.cli.worm": ("worm", "witness", "evidence", "verify"),
    "gatewatch.streams.cli.executor": ("executor",),
    "gatewatch.streams.cli.drill": ("drill",),
    "gatewatch.streams.cli.cardinality": ("cardinality",),
    "gatewatch.streams.cli.report": ("report",),
    "gatewatch.streams.cli.serve": ("serve", "gate"),
}
_MODULE_OF = {name: mod for mod, names in COMMAND_MODULES.items() for name in names}


class LazyGroup(click.Group):
    """click's documented pattern for lazily loaded subcommands (click docs, "Lazily Loading
    Subcommands"): list_commands from the table, get_command imports the one module it names.
    Commands added with cli.add_command (an extension's, a test's) are listed and found as well."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*_MODULE_OF, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        mod = _MODULE_OF.get(cmd_name)
        if mod is None:
            return self.commands.get(cmd_name)
        return next(c for c in importlib.import_module(mod).commands if c.name == cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="gatewatch")
def cli() -> None:
    """gatewatch: streaming release-safety data plane on Kafka.

    Without KAFKA_BOOTSTRAP_SERVERS, commands that need Kafka start an embedded
    broker (tansu) on 127.0.0.1 and stop it when they finish.
    """


# click >= 8.2 raises this for a group called without a subcommand
_NO_ARGS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _usage_line(e: click.UsageError) -> str:
    path = e.ctx.command_path if e.ctx else "gatewatch"
    return f"{path}: {e.format_message()} (see '{path} --help')"


def main(argv: list[str] | None = None) -> int:
    rdkafka = logging.getLogger("gatewatch.rdkafka")
    if not rdkafka.handlers and not os.environ.get("GATEWATCH_DEBUG"):
        # without a configured handler Python prints every WARNING: librdkafka's line per reconnect
        # attempt (hundreds against a broker that is down) buried the command's one-line error.
        # Workers configure their own handlers (streams.runtime.logs) and still log these.
        rdkafka.addHandler(logging.NullHandler())
    try:
        cli.main(args=argv, prog_name="gatewatch", standalone_mode=False)
        return 0
    except _NO_ARGS_HELP as e:  # a bare group prints its help, as a usage error
        click.echo(e.ctx.get_help() if e.ctx else "", err=True)
        return 2
    except click.UsageError as e:
        click.echo(_usage_line(e), err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("gatewatch: aborted", err=True)
        return 130
    except click.exceptions.Exit as e:
        return e.exit_code
    except ExitStatus as e:  # a command's own exit code (e.g. `gatewatch verify`'s)
        if str(e):
            click.echo(f"gatewatch: error: {e}", err=True)
        return e.code
    except SystemExit as e:  # a command's own exit status (click's Exit is swallowed in this mode)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except (click.ClickException, GatewatchError) as e:
        if isinstance(e, GatewatchError) and os.environ.get("GATEWATCH_DEBUG"):
            raise  # where a refusal came from, for whoever debugs it
        msg = e.format_message() if isinstance(e, click.ClickException) else str(e)
        click.echo(f"gatewatch: error: {msg}", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("gatewatch: interrupted", err=True)
        return 130
    except OSError as e:  # a path the user gave (an --out in a missing directory...) is a usage error
        if os.environ.get("GATEWATCH_DEBUG"):
            raise
        where = f"{e.filename}: " if e.filename else ""
        click.echo(f"gatewatch: error: {where}{e.strerror or e}", err=True)
        return 2 if e.filename else 1
    except Exception as e:  # a bug: still one line unless debugging
        if os.environ.get("GATEWATCH_DEBUG"):
            raise
        click.echo(f"gatewatch: internal error: {type(e).__name__}: {e} (GATEWATCH_DEBUG=1 for a traceback)", err=True)
        return 1


def entrypoint() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()
