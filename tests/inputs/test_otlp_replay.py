"""Acceptance (replay): a generated OTLP stream, in both encodings, gives the signals and actions
of the equivalent request-sample stream.

The comparison drops one wire field of each signal record: `source`, the partition the signal
was computed from ("otlp:0" vs "metrics:0"). It is routing metadata (the decide stage's merge
drops it too); everything else, including the actions, must be byte-identical.
"""
import orjson
import pytest

from gatewatch.processors.canonical import canonical_json
from gatewatch.streams.app.replay import Replayer
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.policy_files import load_policy_dir
from tests.inputs import otlp_gen
from tests.inputs.test_otlp import OPTS

POLICY_DIR = "configs/policies"


def otlp_envelopes(batches, encode, topic="otlp_spans", partition=0):
    return [{"topic": topic, "partition": partition, "offset": i, "ts": otlp_gen.kafka_ts_ms(b), "key": None,
             "payload": encode(b, i).decode()}
            for i, b in enumerate(batches)]


def request_envelopes(batches, topic, partition=0):
    return [{"topic": topic, "partition": partition, "offset": i, "ts": otlp_gen.kafka_ts_ms(b), "key": None,
             "payload": otlp_gen.requests_json(b).decode()} for i, b in enumerate(batches)]


def without_source(value: bytes) -> bytes:
    doc = orjson.loads(value)
    doc.pop("source")
    return canonical_json(doc)


def run(envs, policy, **kw):
    rp = Replayer(policy, None, flush_every=13, inputs=OPTS, **kw)
    out = []
    for e in envs:
        out.extend(rp.feed(e))
    out.extend(rp.finish())
    return out, rp.skipped


@pytest.fixture(scope="module")
def reference():
    policy = load_policy_dir(POLICY_DIR)
    batches = otlp_gen.batches(320)  # a 5xx surge long enough (and busy enough) for the default rules to act on
    out, _ = run(request_envelopes(batches, topics.topic("metrics")), policy)
    return policy, batches, out


def split(out):
    sig = [without_source(v) for t, _k, v in out if t == topics.topic("signals")]
    act = [v for t, _k, v in out if t == topics.topic("actions")]
    dlq = [v for t, _k, v in out if t == topics.topic("dlq")]
    return sig, act, dlq


def test_otlp_json_replay_equals_request_samples(reference):
    policy, batches, want = reference
    got, skipped = run(otlp_envelopes(batches, otlp_gen.otlp_json), policy)
    ws, wa, wd = split(want)
    gs, ga, gd = split(got)
    assert len(ws) > 1000 and not wd and not gd
    assert gs == ws
    assert ga == wa and any(b'"abort"' in a for a in wa)  # the canary's error surge
    n_not_server = sum(s["kind"] != 2 for b in batches for s in b)
    assert skipped["otlp_span:not_server"] == n_not_server
    assert skipped["otlp_span:no_http_status"] > 0


def test_otlp_proto_replay_equals_request_samples(reference):
    """Binary values travel base64-encoded in the envelope ("payload_b64")."""
    import base64
    policy, batches, want = reference
    envs = [{**e, "payload": None, "payload_b64": base64.b64encode(otlp_gen.otlp_proto(b, i)).decode()}
            for i, (e, b) in enumerate(zip(otlp_envelopes(batches, otlp_gen.otlp_json), batches))]
    got, _ = run(envs, policy)
    gs, ga, gd = split(got)
    ws, wa, _ = split(want)
    assert gs == ws and ga == wa and not gd


def test_gatewatch_replay_cli(tmp_path):
    """`gatewatch replay` over kcat -J files: the OTLP file (JSON and base64 protobuf partitions)
    prints the request file's signals (minus source) and lists the ignored spans on stderr. The
    shipped policy has no otlp cohort table, so every span is in the "stable" cohort."""
    from click.testing import CliRunner

    from gatewatch.streams.cli.main import cli
    batches = otlp_gen.batches(60)
    import base64
    otlp_lines = [orjson.dumps(e) for e in otlp_envelopes(batches, otlp_gen.otlp_json)]
    otlp_lines += [orjson.dumps({"topic": "otlp_spans", "partition": 1, "offset": i, "ts": otlp_gen.kafka_ts_ms(b),
                                 "key": None, "payload_b64": base64.b64encode(otlp_gen.otlp_proto(b, i)).decode()})
                   for i, b in enumerate(batches)]
    req_lines = [orjson.dumps({**e, "payload": otlp_gen.requests_json(b, {}).decode()})
                 for e, b in zip(request_envelopes(batches, topics.topic("metrics")), batches)]
    (tmp_path / "otlp.ndjson").write_bytes(b"\n".join(otlp_lines) + b"\n")
    (tmp_path / "req.ndjson").write_bytes(b"\n".join(req_lines) + b"\n")
    runner = CliRunner()

    def replay(name):
        r = runner.invoke(cli, ["replay", "--policy", POLICY_DIR, str(tmp_path / name)])
        assert r.exit_code == 0, r.output
        sig = {}
        for line in r.stdout_bytes.splitlines():
            rec = orjson.loads(line)
            if rec["topic"] == topics.topic("signals"):
                src = rec["value"]["source"]
                sig.setdefault(src, []).append(without_source(orjson.dumps(rec["value"])))
        return sig, r.stderr

    got, err = replay("otlp.ndjson")
    want, _ = replay("req.ndjson")
    assert set(got) == {"otlp:0", "otlp:1"} and set(want) == {"metrics:0"}
    assert got["otlp:0"] == got["otlp:1"] == want["metrics:0"]
    assert "otlp_span:not_server" in err and "otlp_span:no_http_status" in err
