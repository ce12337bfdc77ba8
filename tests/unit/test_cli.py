"""The CLI contract: --help everywhere, exit codes 0/1/2, one-line errors without tracebacks."""
import importlib

import click
import pytest

from gatewatch.streams.cli.main import COMMAND_MODULES, cli, main


def _all_command_paths(group=cli, prefix=()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        path = prefix + (name,)
        yield path
        if isinstance(cmd, click.Group):
            yield from _all_command_paths(cmd, path)


def test_the_lazy_command_table_names_every_modules_commands():
    for mod, names in COMMAND_MODULES.items():
        assert tuple(c.name for c in importlib.import_module(mod).commands) == names, mod
    listed = [name for names in COMMAND_MODULES.values() for name in names]
    assert len(listed) == len(set(listed)), "a command name listed under two modules"


def test_a_command_added_to_the_lazy_group_is_listed_and_runs(capsys):
    @click.command("hello-ext")
    def hello():
        click.echo("hello from an extension")
    cli.add_command(hello)
    try:
        assert "hello-ext" in cli.list_commands(click.Context(cli))
        assert main(["hello-ext"]) == 0
        assert capsys.readouterr().out == "hello from an extension\n"
    finally:
        cli.commands.pop("hello-ext")


def test_help_everywhere(capsys):
    assert main(["--help"]) == 0
    paths = list(_all_command_paths())
    assert ("broker",) in paths and ("topics", "create") in paths
    for path in paths:
        assert main([*path, "--help"]) == 0, path
        assert "Usage:" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["no-such-command"], ["topics", "create", "--partitions", "x"],
                                  ["broker", "--port", "99999"], ["keys", "init", "--role", "nobody"]])
def test_bad_usage_is_one_line_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


def test_failure_is_one_line_exit_1(monkeypatch, capsys):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("GATEWATCH_CONNECT_TIMEOUT_S", "1")
    assert main(["topics", "create"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("gatewatch: error:") and len(err.strip().splitlines()) == 1, err


def test_keys_init_files_are_private(tmp_path, capsys):
    assert main(["keys", "init", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "decider" in out and "ed25519:" in out
    for key_file in tmp_path.glob("*.key"):
        assert key_file.stat().st_mode & 0o777 == 0o600
    # idempotent: the same ids on a second run
    assert main(["keys", "init", "--dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == out


def test_an_os_error_on_a_given_path_is_one_line_and_debug_still_shows_it(tmp_path, monkeypatch, capsys):
    """A path the user gave (here --out in a missing directory) is their error: one line, exit 2;
    GATEWATCH_DEBUG=1 still raises it for a traceback, as for any other error."""
    out = str(tmp_path / "no-dir" / "x.json")
    argv = ["policy", "shadow", "configs/policies", "--corpus", str(tmp_path / "empty.json"), "--out", out]
    (tmp_path / "empty.json").write_text("")
    monkeypatch.delenv("GATEWATCH_DEBUG", raising=False)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("gatewatch: error:") and "no-dir" in err and len(err.strip().splitlines()) == 1, err
    monkeypatch.setenv("GATEWATCH_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        main(argv)


def test_debug_shows_where_a_refusal_came_from(tmp_path, monkeypatch, capsys):
    """README: GATEWATCH_DEBUG shows tracebacks instead of one-line errors, refusals included."""
    from gatewatch.streams.runtime.errors import GatewatchError
    argv = ["keys", "show", "--dir", str(tmp_path / "no-such-dir")]
    monkeypatch.delenv("GATEWATCH_DEBUG", raising=False)
    assert main(argv) == 1 and "no such directory" in capsys.readouterr().err
    monkeypatch.setenv("GATEWATCH_DEBUG", "1")
    with pytest.raises(GatewatchError):
        main(argv)
