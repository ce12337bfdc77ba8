"""`gatewatch evidence --inputs/--signals/--drill` then `gatewatch verify`: the four files bound and reported."""
from __future__ import annotations

import orjson
import pytest

from gatewatch.processors.scenario_traces import trace_records
from gatewatch.sinks.worm.evidence import read_bundle
from gatewatch.streams.cli.main import main
from tests.evidence.test_bundle_evidence import DRILL
from tests.worm import factory


def _env(topic: str, i: int, key: str, value: dict) -> bytes:
    return orjson.dumps({"topic": topic, "partition": 0, "offset": i, "key": key,
                         "payload": orjson.dumps(value).decode()}) + b"\n"


@pytest.fixture
def setup(tmp_path, monkeypatch):
    keys = factory.keys(tmp_path)
    monkeypatch.setenv("GATEWATCH_KEYS_DIR", keys)
    monkeypatch.setenv("GATEWATCH_TOPIC_PREFIX", "gw.")
    factory.log_with_quorum(str(tmp_path / "w.db"), keys, n_actions=2).close()
    inputs = tmp_path / "inputs.ndjson"
    lines = [_env("gw.metrics", 0, "checkout", {"service": "checkout", "status": 200, "latency_ms": 5}),
             _env("gw.rum", 1, "/", {"name": "INP", "value": 90, "service": "web"})]
    lines += [_env("otlp_spans", 2 + i, svc, doc) for i, (svc, doc) in
              enumerate(trace_records([{"name": "checkout"}], 0, 600_000, drop=0.2))]
    inputs.write_bytes(b"".join(lines))
    signals = tmp_path / "signals.ndjson"
    signals.write_bytes(orjson.dumps({"name": "err5xx_rate", "domain": "requests", "scope": "checkout",
                                      "value": 0.0}) + b"\n")
    drill = tmp_path / "drill.json"
    drill.write_bytes(orjson.dumps(DRILL))
    return tmp_path, keys, ["--inputs", str(inputs), "--signals", str(signals), "--drill", str(drill)]


def test_export_binds_and_verify_reports(setup, capsys):
    tmp, keys, args = setup
    out = str(tmp / "b.tar.gz")
    assert main(["evidence", "--db", str(tmp / "w.db"), "--out", out, *args]) == 0
    files, _ = read_bundle(out)
    cov = orjson.loads(files["evidence/span_coverage.json"])
    assert cov["services"]["checkout"]["traces"] == 600 and cov["status"] == "FAIL"  # 20 % drop per span
    assert cov["input"]["files"][0]["records"] == 602
    schemas = {(r["input"], r["schema"]) for r in orjson.loads(files["evidence/input_schemas.json"])["rows"]}
    assert schemas == {("metrics", "request_sample"), ("rum", "web_vitals"),
                       ("otlp", "otlp https://opentelemetry.io/schemas/1.26.0")}
    capsys.readouterr()
    assert main(["verify", out, "--trusted-keys", keys]) == 0
    printed = capsys.readouterr().out
    assert "span coverage: FAIL (1 services, 600 traces, target 95 %, failing checkout)" in printed
    assert "cardinality: OK (series_active=1" in printed and "drill: 1 PASS, 0 FAIL" in printed


def test_same_inputs_same_bundle(setup):
    tmp, _, args = setup
    a, b = str(tmp / "a.tar.gz"), str(tmp / "b.tar.gz")
    assert main(["evidence", "--db", str(tmp / "w.db"), "--out", a, *args]) == 0
    assert main(["evidence", "--db", str(tmp / "w.db"), "--out", b, *args]) == 0
    assert read_bundle(a)[1] == read_bundle(b)[1]


def test_bad_config_and_bad_drill_are_one_line_errors(setup, capsys):
    tmp, _, args = setup
    cfg = tmp / "ev.yml"
    cfg.write_text("evidence: {essential_spans: [a, b]}\n")
    assert main(["evidence", "--db", str(tmp / "w.db"), "--out", str(tmp / "x.tar.gz"), *args,
                 "--evidence-config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "essential_spans must map service patterns" in err and "Traceback" not in err
    cfg.write_text('evidence: {essential_spans: {"checkout*": [a], "*": []}}\n')  # "*": [] would pass anything
    assert main(["evidence", "--db", str(tmp / "w.db"), "--out", str(tmp / "x.tar.gz"), *args,
                 "--evidence-config", str(cfg)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "evidence.essential_spans['*'] is empty" in err[0]
    (tmp / "drill.json").write_bytes(b'{"format": "gatewatch.drill/1", "hooks": [{"status": "MAYBE"}]}')
    assert main(["evidence", "--db", str(tmp / "w.db"), "--out", str(tmp / "x.tar.gz"), *args]) == 1
    assert "drill" in capsys.readouterr().err


def test_require_evidence_fails_a_bundle_without_it(setup, capsys):
    tmp, keys, args = setup
    bare, full = str(tmp / "bare.tar.gz"), str(tmp / "full.tar.gz")
    assert main(["evidence", "--db", str(tmp / "w.db"), "--out", bare]) == 0
    assert main(["evidence", "--db", str(tmp / "w.db"), "--out", full, *args]) == 0
    assert main(["verify", bare, "--trusted-keys", keys]) == 0  # absent evidence is only reported...
    assert "drill: not in this bundle" in capsys.readouterr().out
    assert main(["verify", bare, "--trusted-keys", keys, "--require-evidence"]) == 1  # ...unless required
    assert "file evidence/span_coverage.json: missing (evidence required)" in capsys.readouterr().err
    assert main(["verify", full, "--trusted-keys", keys, "--require-evidence"]) == 0


def test_two_includes_with_one_name_are_refused_and_a_missing_out_dir_is_one_line(setup, capsys):
    """The bundle names an include by its base name: a second one hid the first, silently."""
    tmp, _, args = setup
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    (tmp / "a" / "gate.yml").write_text("one\n")
    (tmp / "b" / "gate.yml").write_text("two\n")
    db = ["--db", str(tmp / "w.db")]
    assert main(["evidence", *db, "--out", str(tmp / "x.tar.gz"), *args,
                 "--include", str(tmp / "a" / "gate.yml"), "--include", str(tmp / "b" / "gate.yml")]) == 1
    err = capsys.readouterr().err
    assert "another included file is also named gate.yml" in err and len(err.strip().splitlines()) == 1
    assert not (tmp / "x.tar.gz").exists()
    assert main(["evidence", *db, "--out", str(tmp / "no-dir" / "x.tar.gz"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gatewatch: error:") and "No such file or directory" in err and "internal" not in err


def test_signals_without_a_signal_record_are_refused_not_counted_ok(setup, capsys):
    """--signals pointed at the wrong (or an empty) file bundled "cardinality: OK" over nothing."""
    tmp, _, args = setup
    (tmp / "signals.ndjson").write_bytes(b"")
    assert main(["evidence", "--db", str(tmp / "w.db"), "--out", str(tmp / "x.tar.gz"), *args]) == 1
    err = capsys.readouterr().err.strip()
    assert "no signal records" in err and len(err.splitlines()) == 1, err
    assert not (tmp / "x.tar.gz").exists()
