"""`policy shadow --live` trusts nothing it cannot check (review finding 6): with the decider key
an action counts on the active side only if its permit verifies; every record left out is counted
by reason; a record of any shape is counted or skipped, never a traceback. gw.shadow records are
unsigned by design, so the live report says it is advisory."""
from __future__ import annotations

from contextlib import contextmanager

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from gatewatch.processors.canonical import content_id
from gatewatch.processors.shadow import shadow_decision
from gatewatch.processors.signing import issue_permit, key_id
from gatewatch.processors.timefmt import parse_time_ms
from gatewatch.streams.app.shadow import live_report
from gatewatch.streams.cli.main import main
from gatewatch.streams.runtime.keys import init_keys, load_signing_key

DECIDER, FORGER = SigningKey(b"d" * 32), SigningKey(b"f" * 32)
TRUSTED = {key_id(DECIDER.verify_key): DECIDER.verify_key}


def _decision(ts: str, rule: str = "burn_4h", action: str = "rollback") -> dict:
    body = {"scope": "checkout", "release": "2.0.0", "kind": "abort", "action": action, "policy_hash": "p" * 64,
            "rule": {"id": rule, "text": "burn_rate_per_4h >= 1.0"}, "signals": [], "ts": ts}
    return {**body, "id": content_id(body)}


def _signed(rec: dict, key: SigningKey = DECIDER) -> dict:
    return {**rec, "permit": issue_permit(key, rec, parse_time_ms(rec["ts"]) + 600_000)}


def _shadow(rec: dict) -> dict:
    return shadow_decision({**rec, "policy_hash": "c" * 64}, True)


def _values(recs) -> list[bytes]:
    return [orjson.dumps(r) for r in recs]


def test_forged_unsigned_actions_do_not_count_as_the_active_policys_decisions():
    genuine = _decision("2026-01-01T00:10:00.000Z")
    forged = _decision("2026-01-01T00:20:00.000Z", rule="burn_1h")  # an active-only decision nobody signed
    wrong_key = _decision("2026-01-01T00:30:00.000Z", rule="inp")
    actions = _values([_signed(genuine), forged, _signed(wrong_key, FORGER)])
    shadow = _values([_shadow(genuine)])
    unchecked = live_report(actions, shadow)
    assert unchecked["divergence"] == 2 and unchecked["permits"] == "not checked (no decider key)"
    rep = live_report(actions, shadow, decider_keys=TRUSTED)
    assert (rep["agree"], rep["divergence"], rep["permits"]) == (1, 0, "checked")
    assert rep["not_counted"]["actions"] == {"permit_missing_permit": 1, "permit_unknown_key": 1}
    # an edited signed action is not the decider's either
    edited = {**_signed(genuine), "action": "promote"}
    assert live_report(_values([edited]), shadow, decider_keys=TRUSTED)["not_counted"]["actions"] == \
        {"permit_mismatch_action": 1}


def test_an_old_permit_still_counts_a_report_reads_past_decisions():
    rec = _decision("2020-01-01T00:00:00.000Z")
    rep = live_report(_values([_signed(rec)]), _values([_shadow(rec)]), decider_keys=TRUSTED)
    assert (rep["agree"], rep["divergence"]) == (1, 0)


def test_a_rule_that_is_a_string_is_counted_as_malformed_not_a_crash():
    bad = {**_decision("2026-01-01T00:10:00.000Z"), "rule": "r"}
    rep = live_report(_values([bad]), _values([_shadow(bad)]))
    assert rep["not_counted"] == {"actions": {"malformed": 1}, "shadow": {"malformed": 1}}
    assert rep["divergence"] == rep["agree"] == 0


JSON = st.recursive(st.none() | st.booleans() | st.integers(-(2 ** 63), 2 ** 63 - 1)
                    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                    max_leaves=6)
FIELDS = ("scope", "release", "kind", "action", "rule", "signals", "ts", "policy_hash", "permit", "shadow", "verdict")


@st.composite
def records(draw):
    """A decision (active or shadow) with some fields replaced by any JSON, or any JSON at all."""
    rec = _decision(draw(st.sampled_from(["2026-01-01T00:10:00.000Z", "2026-01-01T00:20:00.000Z"])),
                    rule=draw(st.sampled_from(["a", "b"])))
    rec = draw(st.sampled_from([rec, _signed(rec), _shadow(rec)]))
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
        rec = {**rec, field: draw(JSON)}
        if draw(st.booleans()) and "shadow" in rec:  # keep it a shadow record by its id
            rec = {**{k: v for k, v in rec.items() if k != "id"}, "id": content_id({k: v for k, v in rec.items()
                                                                                   if k != "id"})}
    return orjson.dumps(draw(st.one_of(st.just(rec), JSON)))


@settings(max_examples=150, deadline=None)
@given(st.lists(records(), max_size=6), st.lists(records(), max_size=6), st.booleans(), st.booleans())
def test_any_records_are_counted_or_skipped_never_a_traceback(actions, shadow, keys, by_candidate):
    rep = live_report(actions, shadow, {"c" * 64} if by_candidate else None, None, TRUSTED if keys else None)
    counted_active = rep["agree"] + sum(d["active"] is not None for d in rep["diffs"])
    counted_shadow = rep["agree"] + sum(d["candidate"] is not None for d in rep["diffs"])
    assert counted_active + sum(rep["not_counted"]["actions"].values()) == len(actions)
    assert counted_shadow + sum(rep["not_counted"]["shadow"].values()) == len(shadow)
    orjson.dumps(rep)  # the --out JSON


def _fake_topics(monkeypatch, actions: list[bytes], shadow: list[bytes]) -> None:
    class Msg:
        def __init__(self, v):
            self.v = v

        def value(self):
            return self.v

    @contextmanager
    def bootstrap(engine=None):
        yield "127.0.0.1:1"

    monkeypatch.setattr("gatewatch.streams.runtime.brokers.kafka_bootstrap", bootstrap)
    monkeypatch.setattr("gatewatch.streams.runtime.kafka.read_to_end",
                        lambda bs, topic, **kw: [Msg(v) for v in (shadow if topic.endswith("shadow") else actions)])


def test_the_cli_checks_permits_with_the_keys_dir_and_says_the_report_is_advisory(tmp_path, monkeypatch, capsys):
    keys = tmp_path / "keys"
    init_keys(keys, roles=("decider",))
    decider = load_signing_key("decider", keys)
    genuine, forged = _decision("2026-01-01T00:10:00.000Z"), _decision("2026-01-01T00:20:00.000Z", rule="x")
    _fake_topics(monkeypatch, _values([_signed(genuine, decider), forged]), _values([_shadow(genuine)]))
    monkeypatch.setenv("GATEWATCH_KEYS_DIR", str(keys))
    assert main(["policy", "shadow", "--live"]) in (0, None)
    out = capsys.readouterr().out
    assert "1 decisions agree, divergence 0" in out
    assert "advisory: gw.shadow records are unsigned; `policy shadow --corpus` is the authoritative check" in out
    assert "active-side permits checked" in out and "not counted on gw.actions: 1 permit_missing_permit" in out


def test_a_keys_dir_without_a_decider_key_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    _fake_topics(monkeypatch, [], [])
    assert main(["policy", "shadow", "--live", "--keys-dir", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no decider.pub" in err[0]
