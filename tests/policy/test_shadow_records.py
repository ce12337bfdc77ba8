"""Shadow decision records (processors.shadow): whatever the engine's action, its shadow record is
unsigned, marked, never carries an action's id, is told apart from an action only off gw.actions,
and stops being one when any field is altered."""
from hypothesis import given
from hypothesis import strategies as st

from gatewatch.processors.policy.records import action_id
from gatewatch.processors.shadow import is_shadow_decision, same_step, shadow_decision
from gatewatch.sinks.worm.store import is_action

text = st.text(min_size=1, max_size=12)


@st.composite
def actions(draw):
    rec = {"kind": draw(st.sampled_from(["abort", "hook", "promote", "gate"])), "action": draw(text),
           "scope": draw(text), "release": draw(st.sampled_from(["", "1.6.0"])),
           "rule": {"id": draw(text), "text": draw(text)}, "policy_hash": draw(st.text("0123456789abcdef", min_size=64,
                                                                                       max_size=64)),
           "ts": f"2026-01-01T00:{draw(st.integers(0, 59)):02d}:00.000Z", "incident": "",
           "signals": [{"name": draw(text), "value": draw(st.floats(allow_nan=False, allow_infinity=False))}],
           "permit": None}
    rec["id"] = action_id(rec["policy_hash"], rec["scope"], rec["rule"]["id"], rec["ts"], rec["action"], rec["release"])
    return rec


@given(actions(), st.booleans(), text)
def test_a_shadow_record_is_never_an_executable_action(a, same, junk):
    s = shadow_decision(a, same)
    assert "permit" not in s and s["shadow"] is True and s["active_same_step"] is same
    assert s["id"] != a["id"] and s["candidate_action_id"] == a["id"] and is_shadow_decision(s)
    assert not is_action("gw.shadow", s) and is_action("gw.actions", s)
    assert not is_shadow_decision({**s, "action": s["action"] + junk})
    assert not is_shadow_decision({**s, "permit": {"sig": junk}})
    assert not is_shadow_decision({**s, "shadow": False})


@given(actions())
def test_same_step_means_same_kind_action_rule_and_step(a):
    mine = {"id": a["id"], "kind": a["kind"], "action": a["action"], "rule": a["rule"]["id"], "ts": a["ts"]}
    assert same_step([mine], a)
    assert not same_step([{**mine, "ts": "2027-01-01T00:00:00.000Z"}], a)
    assert not same_step([{**mine, "rule": a["rule"]["id"] + "x"}], a) and not same_step([], a)
