"""Live policy shadow on the real broker (issue 23): ingest, signals and decide (with --shadow-policy, a
tighter burn-rate threshold) over the traffic-spike scenario; the shadow topic holds the candidate's
decisions at the earlier steps, `gatewatch policy shadow --live` names them, and the executor running
on gw.actions executes none of them; a shadow record put onto gw.actions by mistake is refused for
want of a permit."""
import shutil
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
import yaml

from gatewatch.processors.scenarios import Scenario
from gatewatch.processors.windows import SignalConfig
from gatewatch.sinks.executor.config import config_from_dict
from gatewatch.sinks.executor.worker import ExecutorWorker
from gatewatch.streams.app.simulate import publish
from gatewatch.streams.cli.main import main
from gatewatch.streams.runtime.keys import init_keys, load_signing_key
from gatewatch.streams.runtime.lifecycle import StopFlag
from gatewatch.streams.runtime.policy_files import load_policy_dir
from gatewatch.streams.runtime.worker import Worker
from gatewatch.streams.stages.decide import DecideStage
from gatewatch.streams.stages.ingest import IngestStage
from gatewatch.streams.stages.signals import SignalStage
from tests.executor.kafka_io import produce_actions, read_receipts
from tests.pipeline.helpers import envelopes, ordered_producer, read_topic, run_until_idle

pytestmark = pytest.mark.integration
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ACTIVE = CONFIGS / "policies"


def _candidate(tmp_path) -> Path:
    cand = tmp_path / "candidate"
    shutil.copytree(ACTIVE, cand)
    text = (cand / "project.yml").read_text()
    assert 'when: "burn_rate_per_4h >= 1.0"' in text
    (cand / "project.yml").write_text(text.replace('when: "burn_rate_per_4h >= 1.0"', 'when: "burn_rate_per_4h >= 0.2"'))
    return cand


def _replayed_shadow(envs: list[dict], policy, candidate) -> Counter:
    from gatewatch.streams.app.replay import Replayer, envelope_from_dict, sources_of
    from gatewatch.streams.runtime import topics
    envs = [envelope_from_dict(e) for e in envs]
    rp = Replayer(policy, None, sources=sources_of(envs), shadow_policy=candidate)
    outs = [o for env in envs for o in rp.feed(env)] + rp.finish()
    return Counter((k, v) for t, k, v in outs if t == topics.topic("shadow"))


def test_live_shadow_decisions_never_reach_the_executor(kafka_bootstrap, topic_prefix, tmp_path, monkeypatch, capsys):
    # event time 35 minutes ago, to the minute: the 30-minute scenario ends before now, and the
    # active policy's permits (ttl 1h from their step) are still valid for the executor's clock
    start_ms = (int(time.time()) // 60 - 35) * 60_000
    spec = yaml.safe_load((CONFIGS / "scenarios" / "traffic_spike.yaml").read_text())
    publish(Scenario(spec, start_ms=start_ms), ordered_producer(kafka_bootstrap))
    keys = tmp_path / "keys"
    init_keys(keys, roles=("decider", "executor"))
    policy, cand = load_policy_dir(ACTIVE), _candidate(tmp_path)
    cfg = SignalConfig.from_policy(policy.doc, policy.hash)
    quiet = dict(stop=StopFlag(install=False))
    run_until_idle([
        Worker(IngestStage(cfg, tmp_path / "ingest"), kafka_bootstrap, exit_when_idle_s=3, **quiet),
        Worker(SignalStage(cfg, tmp_path / "signals"), kafka_bootstrap, exit_when_idle_s=4, **quiet),
        Worker(DecideStage(ACTIVE, load_signing_key("decider", keys), tmp_path / "decide", load_policy_dir,
                           shadow_policy=load_policy_dir(cand)), kafka_bootstrap, exit_when_idle_s=5, **quiet),
    ], 240)

    actions = [orjson.loads(v) for _p, _o, _k, v, _ts in read_topic(kafka_bootstrap, "actions")]
    shadow = [orjson.loads(v) for _p, _o, _k, v, _ts in read_topic(kafka_bootstrap, "shadow")]
    decisions = [s for s in shadow if "verdict" not in s]
    assert actions and all(a["permit"] for a in actions) and not any(a.get("shadow") for a in actions)
    assert decisions and all(s["shadow"] is True and "permit" not in s for s in shadow)
    def burns(decided):  # (scope, release) -> the steps of the burn_4h decisions, in order
        out: dict[tuple, list] = {}
        for d in decided:
            if d["rule"]["id"] == "burn_4h":
                out.setdefault((d["scope"], d.get("release") or ""), []).append(d["ts"])
        return {k: sorted(v) for k, v in out.items()}
    active_burn, shadow_burn = burns(actions), burns(decisions)
    assert active_burn and shadow_burn.keys() == active_burn.keys(), (active_burn, shadow_burn)
    # the candidate acts earlier: its first burn decision precedes the active policy's
    assert all(shadow_burn[k][0] < active_burn[k][0] for k in active_burn), (active_burn, shadow_burn)
    # streaming = replay for the shadow topic: a pure function of the batches and the candidate
    want = _replayed_shadow(envelopes(kafka_bootstrap), policy, load_policy_dir(cand))
    assert Counter((k, v) for _p, _o, k, v, _ts in read_topic(kafka_bootstrap, "shadow")) == want

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    report = tmp_path / "live.json"
    assert main(["policy", "shadow", "--live", "--out", str(report)]) == 1
    out = capsys.readouterr().out
    rep = orjson.loads(report.read_bytes())
    assert "(live: gw.shadow vs gw.actions)" in out and rep["agree"] > 0
    diffs = [d for d in rep["diffs"] if d["rule"] == "burn_4h"]
    first = {(d["scope"], d["release"]): d for d in reversed(diffs)}  # each key's first (earliest) pair
    assert first.keys() == active_burn.keys(), diffs
    for key, d in first.items():  # the report names the exact steps: the candidate's and the active one's
        assert (d["candidate"]["ts"], d["active"]["ts"]) == (shadow_burn[key][0], active_burn[key][0])
        assert d["what"].endswith("s earlier") and f"candidate {d['candidate']['ts']}" in out

    mistaken = decisions[0]
    produce_actions(kafka_bootstrap, [mistaken])  # a shadow record on gw.actions by mistake
    exe = config_from_dict({"executor": {"keys_dir": str(keys), "group": "exec-shadow", "concurrency": 4},
                            "backends": {"dry": {"type": "dry-run"}}, "routes": [], "default_backend": "dry"})
    stats = ExecutorWorker(exe, tmp_path / "ledger.db", kafka_bootstrap).run(threading.Event(), exit_when_idle_s=2.0)
    assert stats["executed"] == len({a["id"] for a in actions}) and stats["refused"] == 1
    receipts = read_receipts(kafka_bootstrap, until=lambda rs: sum(r["type"] == "RESULT" for r in rs) >= stats["executed"]
                             and any(r["type"] == "REFUSED" for r in rs), timeout_s=60)
    ran = {r["action_id"] for r in receipts if r["type"] in ("INTENT", "RESULT")}
    assert ran == {a["id"] for a in actions}
    assert not ran & ({s["id"] for s in decisions} | {s["candidate_action_id"] for s in decisions})
    refused = [r for r in receipts if r["type"] == "REFUSED"]
    assert [(r["action_id"], r["reason"]) for r in refused] == [(mistaken["id"], "missing_permit")]
