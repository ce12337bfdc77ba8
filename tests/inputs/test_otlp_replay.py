"""Acceptance (replay): a generated OTLP stream, in both encodings, gives the signals and actions
of the equivalent request-sample stream, byte for byte."""
import orjson
import pytest

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
    sig = [v for t, _k, v in out if t == topics.topic("signals")]
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
    """`gatewatch replay` over kcat -J files: an OTLP file (JSON) and one of the same spans as
    protobuf (base64) each print the request file's signals and list the ignored spans on stderr;
    the two OTLP partitions together count every request twice, as one scope's data should. The
    shipped policy has no otlp cohort table, so every span is in the "stable" cohort."""
    import base64

    from click.testing import CliRunner

    from gatewatch.streams.cli.main import cli
    batches = otlp_gen.batches(60)
    json_lines = [orjson.dumps(e) for e in otlp_envelopes(batches, otlp_gen.otlp_json)]
    proto_lines = [orjson.dumps({"topic": "otlp_spans", "partition": 1, "offset": i, "ts": otlp_gen.kafka_ts_ms(b),
                                 "key": None, "payload_b64": base64.b64encode(otlp_gen.otlp_proto(b, i)).decode()})
                   for i, b in enumerate(batches)]
    req_lines = [orjson.dumps({**e, "payload": otlp_gen.requests_json(b, {}).decode()})
                 for e, b in zip(request_envelopes(batches, topics.topic("metrics")), batches)]
    for name, lines in (("json", json_lines), ("proto", proto_lines), ("both", json_lines + proto_lines),
                        ("req", req_lines)):
        (tmp_path / f"{name}.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    runner = CliRunner()

    def replay(name):
        r = runner.invoke(cli, ["replay", "--policy", POLICY_DIR, str(tmp_path / f"{name}.ndjson")])
        assert r.exit_code == 0, r.output
        sig = [orjson.loads(line)["value"] for line in r.stdout_bytes.splitlines()
               if orjson.loads(line)["topic"] == topics.topic("signals")]
        return sig, r.stderr

    want, _ = replay("req")
    got, err = replay("json")
    assert got == want and len(want) > 50
    assert replay("proto")[0] == want
    assert "otlp_span:not_server" in err and "otlp_span:no_http_status" in err
    both = {(s["name"], s["scope"], s["cohort"], s["ts"]): s for s in replay("both")[0]}
    one = {(s["name"], s["scope"], s["cohort"], s["ts"]): s for s in want}
    assert both.keys() <= one.keys()
    assert all(both[k]["samples"] == 2 * one[k]["samples"] for k in both if k[0] == "request_rate")
