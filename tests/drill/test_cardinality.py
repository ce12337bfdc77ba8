"""Cardinality: series per budget domain against a hand-computed example; CLI formats and exit code."""
from __future__ import annotations

import json

import orjson
from click.testing import CliRunner

from gatewatch.processors.cardinality import count_series, report


def sig(name, domain, scope="svc", subject="", cohort="canary", ts="2026-01-01T00:00:10.000Z"):
    return {"name": name, "domain": domain, "scope": scope, "subject": subject, "cohort": cohort,
            "ts": ts, "value": 1, "samples": 1, "window_s": 300}


EXAMPLE = [
    # DEC: err5xx_rate x {baseline, canary} x scope svc, repeated (still 2), + scope other (3),
    # + invariant gauge (DEC by name) canary = 4
    sig("err5xx_rate", "requests", cohort="baseline"), sig("err5xx_rate", "requests"),
    sig("err5xx_rate", "requests", ts="2026-01-01T00:00:20.000Z"),
    sig("err5xx_rate", "requests", scope="other"), sig("invariant", "gauges"),
    # FE: inp p75 on 2 routes x 1 cohort = 2
    sig("rum_inp_p75_ms", "rum", subject="/"), sig("rum_inp_p75_ms", "rum", subject="/m"),
    # DATA: 1 table, cohort stable = 1
    sig("cdc_lag_p95_s", "cdc", scope="shop.orders", subject="shop.orders", cohort="stable"),
    # MBP 1, SEC 1, INT 2 (contract gauge + trajectories), OTHER 1
    sig("resolution_sla_breaches", "gauges"), sig("dp_budget_used", "gauges"),
    sig("api_contract_breaks", "gauges"), sig("trajectory_quality_p50", "trajectories", scope="tenant-a"),
    sig("mystery", "weird"),
]


def test_hand_computed_example():
    rep = report(count_series(EXAMPLE))
    counts = {d: r["series"] for d, r in rep["domains"].items()}
    assert counts == {"DEC": 4, "FE": 2, "DATA": 1, "MBP": 1, "SEC": 1, "INT": 2, "OTHER": 1}
    assert rep["series_active"] == 12 and rep["status"] == "OK"
    assert rep["domains"]["DEC"]["by_signal"] == {"err5xx_rate": 3, "invariant": 1}
    assert rep["domains"]["DEC"]["sources"] == ["gauges", "requests"]
    assert rep["domains"]["OTHER"]["budget"] is None
    assert rep["summary"] == "series_active=12, budget_global=12000, status=OK"
    # cohorts folded: err5xx on svc is one series, not two
    assert report(count_series(EXAMPLE, with_cohort=False))["domains"]["DEC"]["series"] == 3


def test_over_budget():
    rep = report(count_series(EXAMPLE), budgets={"DEC": 3, "FE": 2})
    assert rep["status"] == "OVER" and rep["over"] == ["DEC"]
    assert rep["domains"]["FE"]["status"] == "OK"  # at the budget is within it
    assert report(count_series(EXAMPLE), global_budget=11)["over"] == ["GLOBAL"]


def test_cli_reads_replay_kcat_and_bare_lines(tmp_path):
    from gatewatch.streams.cli.main import cli
    lines = [orjson.dumps({"topic": "gw.signals", "key": "svc", "value": EXAMPLE[0]}),
             orjson.dumps({"topic": "gw.actions", "key": "svc", "value": {"kind": "abort"}}),
             orjson.dumps({"topic": "gw.signals", "partition": 0, "offset": 1, "key": "svc",
                           "payload": orjson.dumps(EXAMPLE[1]).decode()}),
             orjson.dumps(EXAMPLE[5]), b"not json"]
    f = tmp_path / "s.ndjson"
    f.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "card.json"
    r = CliRunner().invoke(cli, ["cardinality", str(f), "--out", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    assert rep["series_active"] == 3 and rep["domains"]["DEC"]["series"] == 2
    assert rep["input"]["skipped"] == {"not_a_signal": 1, "unreadable": 1}


def test_cli_window_and_exit_1_over_budget(tmp_path):
    from gatewatch.streams.cli.main import cli
    many = [sig("obs_uptime", "gauges", scope=f"s{i}") for i in range(1001)]  # INT budget 1000
    many.append(sig("obs_uptime", "gauges", scope="late", ts="2026-01-01T02:00:00.000Z"))
    f = tmp_path / "s.ndjson"
    f.write_bytes(b"\n".join(orjson.dumps(s) for s in many) + b"\n")
    r = CliRunner().invoke(cli, ["cardinality", str(f)])
    assert r.exit_code == 1 and "OVER" in r.output
    r = CliRunner().invoke(cli, ["cardinality", str(f), "--window", "1h"])
    assert r.exit_code == 0 and "series_active=1," in r.output


def test_default_scenarios_fit_the_budget(scenario_run):
    rep = report(count_series(scenario_run("healthy_canary")["signals"]))
    assert rep["status"] == "OK" and rep["domains"]["DEC"]["series"] > 0 and rep["domains"]["FE"]["series"] > 0


def test_cli_fails_on_input_without_signals_and_on_a_window_of_nothing(tmp_path, capsys):
    """A CI budget gate pointed at the wrong file passed on an all-zero table; --window -1h counted
    nothing and passed too."""
    from gatewatch.streams.cli.main import main
    empty, junk = tmp_path / "empty.ndjson", tmp_path / "junk.ndjson"
    empty.write_bytes(b"")
    junk.write_bytes(b"not json\n" + orjson.dumps({"service": "svc", "status": 200}) + b"\n")
    for f in (empty, junk):
        assert main(["cardinality", str(f)]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("gatewatch: error: no signal records in the input") and len(err.splitlines()) == 1, err
    ok = tmp_path / "s.ndjson"
    ok.write_bytes(orjson.dumps(EXAMPLE[0]) + b"\n")
    assert main(["cardinality", str(ok), "--window", "-1h"]) == 2
    assert "--window" in capsys.readouterr().err
