"""`gatewatch simulate` and `gatewatch drill` refuse arguments that cannot make a scenario, as a
usage error (exit 2) naming the option: `--rate nan` hung the generator forever, `--rate inf` and
`--duration banana` were internal errors, negative rates and durations ran, and a start in year 1
or 9999 ended in an internal error or a drill FAIL that blamed the policy."""
from __future__ import annotations

import os

import pytest

from gatewatch.streams.cli.main import main


@pytest.mark.parametrize("args, option", [
    (["--rate", "nan"], "--rate"), (["--rate", "inf"], "--rate"), (["--rate", "-5"], "--rate"),
    (["--rate", "0"], "--rate"), (["--duration", "banana"], "--duration"), (["--duration", "-5m"], "--duration"),
    (["--speed", "-1"], "--speed"), (["--speed", "nan"], "--speed"),
    (["--start", "0001-01-01T00:00:00Z"], "--start"), (["--start", "9999-12-31T23:00:00Z"], "--start"),
])
def test_simulate_refuses_what_cannot_make_a_scenario(tmp_path, capsys, args, option):
    assert main(["simulate", "healthy_canary", "--out", str(tmp_path / "x.ndjson"), "-q", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert option in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "x.ndjson").exists()


@pytest.mark.parametrize("start", ["0001-01-01T00:00:00Z", "9999-12-31T23:00:00Z", "banana"])
def test_drill_refuses_a_start_no_broker_can_store(tmp_path, capsys, start):
    assert main(["drill", "--start", start, "--out", str(tmp_path / "d.json"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--start" in err and len(err.splitlines()) == 1, err


def test_simulate_help_lists_every_scenario(capsys):
    from gatewatch.streams.app.simulate import scenario_names
    assert main(["simulate", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert all(name in out for name in scenario_names())


@pytest.mark.parametrize("change, says", [(("rum", "rate", float("nan")), "a rate of nan"),
                                          (("step", None, "0s"), "duration and step must be above 0")])
def test_a_scenario_file_that_cannot_run_is_one_line(tmp_path, capsys, change, says):
    """The options were checked, the file's own values not: a NaN rate hung, a zero step crashed."""
    import yaml
    spec = yaml.safe_load(open("configs/scenarios/healthy_canary.yaml"))
    key, sub, value = change
    if sub is None:
        spec[key] = value
    else:
        spec.setdefault(key, {})[sub] = value
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(spec))
    assert main(["simulate", str(f), "--out", str(tmp_path / "x.ndjson"), "-q", "--duration", "1m"]) == 1
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1, err


def test_a_failed_simulate_leaves_out_as_it_was(tmp_path, capsys):
    """--out streams to a file beside it, renamed at the end: an error midway kept a partial file."""
    import yaml
    spec = yaml.safe_load(open("configs/scenarios/healthy_canary.yaml"))
    spec.setdefault("rum", {})["rate"] = float("nan")  # fails only while generating
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(spec))
    out = tmp_path / "x.ndjson"
    out.write_bytes(b"old\n")
    assert main(["simulate", str(tmp_path / "bad.yaml"), "--out", str(out), "-q", "--duration", "1m"]) == 1
    assert out.read_bytes() == b"old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "x.ndjson"]
    assert main(["simulate", "healthy_canary", "--out", str(out), "-q", "--duration", "1m"]) == 0
    assert out.read_bytes().count(b"\n") > 10 and oct(out.stat().st_mode & 0o777) != "0o600"


def test_simulate_out_writes_through_special_files_and_symlinks(tmp_path):
    """--out /dev/null must stay a device, a symlink is written through, a file keeps its mode."""
    assert main(["simulate", "healthy_canary", "--out", "/dev/null", "-q", "--duration", "1m"]) == 0
    assert not os.path.isfile("/dev/null")
    target = tmp_path / "target.ndjson"
    target.write_bytes(b"")
    target.chmod(0o640)
    (tmp_path / "link.ndjson").symlink_to(target)
    assert main(["simulate", "healthy_canary", "--out", str(tmp_path / "link.ndjson"), "-q", "--duration", "1m"]) == 0
    assert (tmp_path / "link.ndjson").is_symlink() and target.read_bytes().count(b"\n") > 10
    assert oct(target.stat().st_mode & 0o777) == "0o640"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.ndjson", "target.ndjson"]
