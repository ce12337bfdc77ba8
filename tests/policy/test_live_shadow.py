"""Live policy shadow in the decide stage (issue 23): a candidate policy decides beside the active one on
the same batches; its decisions go to gw.shadow unsigned and marked, never to gw.actions or gw.gates;
the live report over gw.actions + gw.shadow is the offline report; a restart from a snapshot changes
no shadow output. Without a broker: `gatewatch replay --shadow-policy` and DecideStage.handle."""
import shutil
from collections import Counter
from pathlib import Path

import jsonschema
import orjson
import pytest
import yaml

from gatewatch.processors.canonical import content_id
from gatewatch.processors.scenarios import Scenario
from gatewatch.processors.shadow import is_shadow_decision
from gatewatch.processors.timefmt import parse_time_ms
from gatewatch.schemas import json_schema
from gatewatch.streams.app.drill import DRILL_START
from gatewatch.streams.app.replay import Replayer, feed_files, scan_sources
from gatewatch.streams.app.shadow import live_report, shadow_report
from gatewatch.streams.app.simulate import write_envelopes
from gatewatch.streams.cli.main import main
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.policy_files import load_policy_dir
from gatewatch.streams.stages.decide import DecideStage

pytestmark = pytest.mark.xdist_group("live_shadow")  # its module fixtures are built once (tests/conftest.py)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ACTIVE = CONFIGS / "policies"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("live-shadow")
    spec = yaml.safe_load((CONFIGS / "scenarios" / "traffic_spike.yaml").read_text())
    path = d / "spike.ndjson"
    with open(path, "wb") as f:
        write_envelopes(Scenario(spec, start_ms=parse_time_ms(DRILL_START)), f)
    return path


@pytest.fixture(scope="module")
def candidate(tmp_path_factory):
    """The active policy with a tighter burn-rate threshold."""
    cand = tmp_path_factory.mktemp("candidate") / "policies"
    shutil.copytree(ACTIVE, cand)
    text = (cand / "project.yml").read_text()
    assert 'when: "burn_rate_per_4h >= 1.0"' in text
    (cand / "project.yml").write_text(text.replace('when: "burn_rate_per_4h >= 1.0"', 'when: "burn_rate_per_4h >= 0.2"'))
    return cand


def _replay(corpus, shadow_dir) -> dict[str, list[tuple[bytes, bytes]]]:
    rp = Replayer(load_policy_dir(ACTIVE), None, sources=scan_sources([str(corpus)]),
                  shadow_policy=load_policy_dir(shadow_dir) if shadow_dir else None)
    by_topic: dict[str, list] = {}
    for recs in feed_files(rp, [str(corpus)], Counter()):
        for t, k, v in recs:
            by_topic.setdefault(t, []).append((k, v))
    return by_topic


@pytest.fixture(scope="module")
def replayed(corpus, candidate):
    return _replay(corpus, None), _replay(corpus, candidate)


def test_the_shadow_changes_no_live_output_and_publishes_only_to_its_topic(replayed):
    plain, shadowed = replayed
    t_shadow = topics.topic("shadow")
    assert t_shadow not in plain  # no shadow policy: no shadow topic, nothing else changes
    assert {t: v for t, v in shadowed.items() if t != t_shadow} == plain
    shadow = [orjson.loads(v) for _k, v in shadowed[t_shadow]]
    decisions = [s for s in shadow if "verdict" not in s]
    gates = [s for s in shadow if "verdict" in s]
    assert decisions and gates and all(s["shadow"] is True for s in shadow)
    validator = jsonschema.Draft202012Validator(json_schema("shadow_decision"))  # the gw.shadow contract
    for s in shadow:
        validator.validate(s)
    for d, (k, _v) in zip(shadow, shadowed[t_shadow]):  # keyed like the live records
        assert k == (f"{d['scope']}@{d['release']}" if "verdict" in d else d["scope"]).encode()
    for d in decisions:  # never signed; an id that is no action's
        assert "permit" not in d and is_shadow_decision(d)
        assert d["id"] == content_id({k: v for k, v in d.items() if k != "id"}) != d["candidate_action_id"]


def test_the_live_report_is_the_offline_report_and_names_the_earlier_steps(replayed, corpus, candidate):
    _plain, shadowed = replayed
    live = live_report([v for _k, v in shadowed[topics.topic("actions")]],
                       [v for _k, v in shadowed[topics.topic("shadow")]])
    offline = shadow_report(load_policy_dir(ACTIVE), load_policy_dir(candidate), [str(corpus)])
    assert {k: live[k] for k in ("agree", "divergence", "diffs", "active_policy", "candidate_policy")} == \
        {k: offline[k] for k in ("agree", "divergence", "diffs", "active_policy", "candidate_policy")}
    burns = [d for d in live["diffs"] if d["rule"] == "burn_4h"]
    assert burns and all(d["candidate"]["ts"] < d["active"]["ts"] for d in burns)
    shadow = [orjson.loads(v) for _k, v in shadowed[topics.topic("shadow")]]
    earlier = {(d["scope"], d["candidate"]["ts"]) for d in burns}
    # the records themselves say it live: at those steps the active policy did not decide the same
    marked = {(s["scope"], s["ts"]) for s in shadow if s.get("rule", {}).get("id") == "burn_4h"
              and s["active_same_step"] is False}
    assert earlier <= marked
    assert any(s["active_same_step"] for s in shadow if "verdict" not in s)  # the rules both fire at once
    # decide publishes at least once: every record twice (a redelivery) is the same report
    acts = [v for _k, v in shadowed[topics.topic("actions")]]
    shad = [v for _k, v in shadowed[topics.topic("shadow")]]
    twice = live_report(acts + acts, shad + shad)
    assert {k: twice[k] for k in ("agree", "divergence", "diffs")} == {k: live[k] for k in ("agree", "divergence", "diffs")}
    assert twice["not_counted"]["actions"]["duplicate"] > 0 and twice["not_counted"]["shadow"]["duplicate"] > 0


def test_the_same_policy_as_shadow_agrees_everywhere(corpus):
    shadowed = _replay(corpus, ACTIVE)
    shadow = [orjson.loads(v) for _k, v in shadowed[topics.topic("shadow")]]
    decisions = [s for s in shadow if "verdict" not in s]
    assert decisions and all(s["active_same_step"] for s in decisions)
    active_ids = {orjson.loads(v)["id"] for _k, v in shadowed[topics.topic("actions")]}
    # the same policy: the would-be action ids are the active ones, the shadow records' ids never are
    assert {s["candidate_action_id"] for s in decisions} == active_ids
    assert not active_ids & {s["id"] for s in decisions}
    rep = live_report([v for _k, v in shadowed[topics.topic("actions")]], [orjson.dumps(s) for s in shadow])
    assert rep["divergence"] == 0 and rep["agree"] == len(decisions)


class _Msg:
    def __init__(self, value: bytes, offset: int):
        self._value, self._offset = value, offset

    def value(self):
        return self._value

    def topic(self):
        return topics.topic("signals")

    def partition(self):
        return 0

    def offset(self):
        return self._offset


def test_a_restart_from_the_snapshot_changes_no_shadow_output(replayed, candidate, tmp_path):
    """The shadow engine's state is in the decide snapshot: stopping half way and resuming from the
    dumped state gives the bytes an uninterrupted run gives (and the replay gives)."""
    plain, shadowed = replayed
    signals = [v for _k, v in plain[topics.topic("signals")]]
    shadow_policy = load_policy_dir(candidate)

    def stage():
        return DecideStage(ACTIVE, None, tmp_path / "state", load_policy_dir, shadow_policy=shadow_policy)

    def run(st, state, values, start):
        return [o for i, v in enumerate(values) for o in st.handle(None, state, _Msg(v, start + i))]

    whole = stage()
    straight = run(whole, whole.new_state(None, 0), signals, 0)
    half = len(signals) // 2
    first = stage()
    state = first.new_state(None, 0)
    out = run(first, state, signals[:half], 0)
    doc = orjson.loads(orjson.dumps(first.dump_state(state)))
    assert set(doc) == {"engine", "assembler", "shadow"}
    second = stage()
    out += run(second, second.load_state(None, 0, doc), signals[half:], half)
    assert out == straight
    t_shadow = topics.topic("shadow")
    assert Counter((k, v) for t, k, v in straight if t == t_shadow) == Counter(shadowed[t_shadow])


def test_without_a_shadow_policy_the_snapshot_is_as_before(tmp_path):
    st = DecideStage(ACTIVE, None, tmp_path / "state", load_policy_dir)
    assert set(st.dump_state(st.new_state(None, 0))) == {"engine", "assembler"}


def test_replay_cli_prints_the_shadow_topic(corpus, candidate, capsys):
    main(["replay", "--policy", str(ACTIVE), "--shadow-policy", str(candidate), str(corpus)])
    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    shadow = [r["value"] for r in lines if r["topic"] == topics.topic("shadow")]
    assert shadow and all(s["shadow"] is True for s in shadow)
    assert all("shadow" not in r["value"] for r in lines if r["topic"] == topics.topic("actions"))


def test_live_needs_no_corpus_but_offline_does(candidate, capsys):
    assert main(["policy", "shadow", str(candidate)]) != 0
    assert "--corpus" in capsys.readouterr().err


def test_a_bad_shadow_policy_is_a_one_line_error_before_any_broker(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "project.yml").write_text("rules: [\n")
    assert main(["worker", "decide", "--shadow-policy", str(bad), "--state-dir", str(tmp_path / "s")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gatewatch: error: policy refused: project.yml:2:")


def test_the_stack_runs_the_shadow_policy_in_decide_only(candidate, tmp_path):
    from gatewatch.streams.app.stack import Stack
    stack = Stack("127.0.0.1:1", "t.", ACTIVE, tmp_path / "stack", shadow_policy_dir=candidate)
    argv = {n: w.argv for n, w in stack.supervisor.workers.items()}
    assert argv["decide"][-2:] == ["--shadow-policy", str(candidate)]
    assert not any("--shadow-policy" in a for n, a in argv.items() if n != "decide")


def test_the_live_report_filters_by_event_time_and_candidate_and_ignores_misplaced_shadow_records(replayed):
    _plain, shadowed = replayed
    acts = [v for _k, v in shadowed[topics.topic("actions")]]
    shadow = [v for _k, v in shadowed[topics.topic("shadow")]]
    full = live_report(acts, shadow)
    # a shadow record on gw.actions (by mistake) and junk are not the active policy's decisions;
    # the report counts each left out, by reason
    misplaced = [v for v in shadow if "verdict" not in orjson.loads(v)][:3] + shadow[:3]
    mixed = live_report(acts + misplaced + [b"junk", b"[]"], shadow)
    assert {k: v for k, v in mixed.items() if k != "not_counted"} == {k: v for k, v in full.items() if k != "not_counted"}
    gates = sum("verdict" in orjson.loads(v) for v in misplaced)
    assert mixed["not_counted"]["actions"] == {"gate_record": gates, "shadow_record": len(misplaced) - gates,
                                               "not_a_decision": 1, "not_json": 1}
    assert full["not_counted"]["actions"] == {} and full["permits"] == "not checked (no decider key)"
    assert live_report(acts, shadow, candidate_hashes={"0" * 64})["candidate_policy"] == "-"
    cut = max(d["ts"] for d in map(orjson.loads, acts + shadow) if "verdict" not in d)
    late = live_report(acts, shadow, since_ms=parse_time_ms(cut))
    assert late["agree"] + late["divergence"] < full["agree"] + full["divergence"]
    assert all((d["candidate"] or d["active"])["ts"] >= cut for d in late["diffs"])
