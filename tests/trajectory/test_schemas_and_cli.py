"""Wire contract (schemas/canonical_span, schemas/trajectory_event) and the `gatewatch quality` CLI."""
import io

import fastavro
import jsonschema
import orjson

import gatewatch.schemas
from gatewatch.streams.cli.main import main
from gatewatch.streams.cli.quality import generate_spans, load_policy, simulate_lines


def _corpus_events(n=4000):
    lines = generate_spans(n, seed=2)
    events = []
    simulate_lines(lines, load_policy(None), events.append)
    return lines, events


def test_spans_and_events_match_their_json_and_avro_schemas():
    lines, events = _corpus_events()
    span_js = jsonschema.Draft202012Validator(gatewatch.schemas.json_schema("canonical_span"))
    ev_js = jsonschema.Draft202012Validator(gatewatch.schemas.json_schema("trajectory_event"))
    for line in lines[:500]:
        span_js.validate(orjson.loads(line))
    assert {e["type"] for e in events} == {"trajectory_edge", "trajectory_closed", "trajectory_quality",
                                           "diamond_candidate"}
    for ev in events:
        ev_js.validate(ev)
    spans = [dict({"confirmed_by": []}, **orjson.loads(x)) for x in lines[:200]]  # Avro fills the default
    for name, docs in (("canonical_span", spans), ("trajectory_event", events)):
        buf = io.BytesIO()
        fastavro.writer(buf, gatewatch.schemas.avro_schema(name), docs)
        buf.seek(0)
        back = list(fastavro.reader(buf))
        assert [{k: v for k, v in b.items() if v is not None} for b in back] == \
               [{k: v for k, v in d.items() if v is not None} for d in docs]


def test_quality_generate_and_simulate_cli(tmp_path, capsys):
    spans, out, dlq = tmp_path / "s.ndjson", tmp_path / "ev.ndjson", tmp_path / "dlq.ndjson"
    assert main(["quality", "generate", "--n", "3000", "--seed", "4", "--invalid-rate", "0.01",
                 "--out", str(spans)]) == 0
    assert main(["quality", "simulate", "--spans", str(spans), "--out", str(out), "--dlq", str(dlq),
                 "--policy", "configs/quality.yml", "--json"]) == 0
    summary = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    lines = spans.read_bytes().splitlines()
    want = []
    _, rejects = simulate_lines(lines, load_policy(None), want.append)
    assert out.read_bytes() == b"".join(orjson.dumps(e) + b"\n" for e in want)
    assert summary["rejected"] == dict(sorted(rejects.items())) and sum(rejects.values()) > 0
    assert len(dlq.read_bytes().splitlines()) == sum(rejects.values())
    assert summary["candidates"] == sum(e["type"] == "diamond_candidate" for e in want)
    for k in ("trajectories", "closed", "active", "scored", "share", "tenants"):
        assert k in summary
    # human summary too
    assert main(["quality", "simulate", "--spans", str(spans), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "candidates" in text and "p95" in text


def test_simulate_reports_a_bad_policy_as_one_line(tmp_path, capsys):
    bad = tmp_path / "p.yml"
    bad.write_text("quality_meter: {percentile_target: p100}\n")
    spans = tmp_path / "s.ndjson"
    spans.write_bytes(b"")
    assert main(["quality", "simulate", "--spans", str(spans), "--out", str(tmp_path / "o"),
                 "--policy", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "percentile_target" in err
    for text, kind in (("5\n", "int"), ("- 1\n", "list")):  # a file that is no mapping says what it must be
        bad.write_text(text)
        assert main(["quality", "simulate", "--spans", str(spans), "--out", str(tmp_path / "o"),
                     "--policy", str(bad)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "must be a mapping of sections" in err and f"not {kind}" in err, err


def test_quality_signals_drive_a_policy_rule(tmp_path, capsys):
    """trajectory_quality_p95 from `simulate --signals` is policy vocabulary: a rule on it fires."""
    spans, sig = tmp_path / "s.ndjson", tmp_path / "sig.ndjson"
    spans.write_bytes(b"\n".join(generate_spans(5000, seed=3)) + b"\n")
    assert main(["quality", "simulate", "--spans", str(spans), "--out", str(tmp_path / "ev"),
                 "--signals", str(sig)]) == 0
    pol = tmp_path / "pol"
    pol.mkdir()
    (pol / "project.yml").write_text('version: 1\nabort_rules:\n  - id: tq\n'
                                     '    when: "trajectory_quality_p95 < 70 for 10m"\n    action: freeze\n')
    capsys.readouterr()
    assert main(["policy", "eval", str(pol), str(sig)]) == 0
    actions = [orjson.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
    assert actions and {a["rule"]["id"] for a in actions} == {"tq"}
    assert {a["scope"] for a in actions} <= {"t_bakery", "t_studio", "t_lab", "t_farm", "t_contracts"}


def test_record_outputs_lists_what_the_worker_publishes(monkeypatch):
    from gatewatch.processors.quality import SpanCycle
    from gatewatch.streams.stages.trajectories import record_outputs
    monkeypatch.setenv("GATEWATCH_TOPIC_PREFIX", "gw.")
    cycle = SpanCycle(load_policy(None))
    events, reason, out = record_outputs(cycle, "gw.spans", 1, 7, generate_spans(1, seed=1)[0])
    assert reason is None and [t for t, _, _ in out] == ["gw.trajectories"] * len(events)
    assert out[0][1] == events[0]["tenant"].encode() and orjson.loads(out[0][2]) == events[0]
    _, reason, out = record_outputs(cycle, "gw.spans", 1, 8, b"\xffnope")
    assert reason == "not_json" and out == [("gw.dlq", b"gw.spans", orjson.dumps(
        {"source_topic": "gw.spans", "partition": 1, "offset": 8, "reason": "not_json", "detail": "",
         "payload": None, "payload_b64": "/25vcGU="}))]  # the one gw.dlq shape: bytes kept exactly
