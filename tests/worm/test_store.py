"""The append-only store: dedupe by id, triggers, reopen, proofs from persisted nodes, record mapping."""
from __future__ import annotations

import sqlite3

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch.processors.canonical import canonical_json
from gatewatch.sinks.worm import merkle
from gatewatch.sinks.worm.store import (
    Candidate,
    Rejected,
    WormStore,
    candidate_from_record,
    decision_root,
)


def _cands(ids):
    return [Candidate(i, "gw.actions", canonical_json({"id": i})) for i in ids]


def test_append_dedupe_reopen(tmp_path):
    db = tmp_path / "w.db"
    with WormStore(db) as s:
        assert s.append_batch(_cands(["a", "b", "a", "c"])) == [0, 1, 2]
        assert s.append_batch(_cands(["b", "d"])) == [3]
        assert s.append_batch([]) == []
        root = s.root()
    with WormStore(db) as s:
        assert s.size == 4 and s.root() == root
        leaves = [e.leaf for e in s.entries()]
        assert root == merkle.root(leaves)
        assert [e.id for e in s.entries()] == ["a", "b", "c", "d"]
        s.append_batch(_cands(["e"]))
        assert s.root() == merkle.root(leaves + [canonical_json({"id": "e"})])


def test_triggers_refuse_update_delete(tmp_path):
    with WormStore(tmp_path / "w.db") as s:
        s.append_batch(_cands(["a", "b"]))
        s.add_note("log", "o", 2, "note\n")
        for sql in ("UPDATE entries SET topic='x'", "DELETE FROM entries", "DELETE FROM nodes",
                    "UPDATE notes SET note='y'", "DELETE FROM notes"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                s.db.execute(sql)
        assert s.size == 2


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.integers(0, 60), max_size=12), min_size=1, max_size=8))
def test_batches_match_reference_and_proofs(tmp_path_factory, batches):
    path = tmp_path_factory.mktemp("s") / "w.db"
    seen, leaves = set(), []
    with WormStore(path) as s:
        for b in batches:
            ids = [f"id{x}" for x in b]
            s.append_batch(_cands(ids))
            for i in ids:
                if i not in seen:
                    seen.add(i)
                    leaves.append(canonical_json({"id": i}))
            assert s.size == len(leaves) and s.root() == merkle.root(leaves)
        n = len(leaves)
        for i in range(n):
            assert s.inclusion_proof(i) == merkle.inclusion_proof(leaves, i)
            assert s.consistency_proof(i + 1) == merkle.consistency_proof(leaves, i + 1)
            assert s.root_at(i + 1) == merkle.root(leaves[: i + 1])


def test_failed_batch_leaves_state_consistent(tmp_path):
    with WormStore(tmp_path / "w.db") as s:
        s.append_batch(_cands(["a"]))
        bad = _cands(["b"]) + [Candidate("c", "gw.actions", None)]  # NOT NULL leaf violation
        with pytest.raises(Exception):
            s.append_batch(bad)
        assert s.size == 1 and s.root() == merkle.root([canonical_json({"id": "a"})])
        assert s.append_batch(_cands(["b"])) == [1]


def test_candidate_from_record():
    c = candidate_from_record("actions", "gw.actions", b'{"b":1, "id":"x"}')
    assert c == Candidate("x", "gw.actions", b'{"b":1,"id":"x"}')
    assert candidate_from_record("trajectories", "t", orjson.dumps({"type": "trajectory_edge", "id": "y"})) is None
    assert candidate_from_record("trajectories", "t", orjson.dumps({"type": "diamond_candidate", "id": "y"})).id == "y"
    for raw, reason in ((b"{", "not_json"), (b"[1]", "not_an_object"), (b'{"id": 3}', "missing_id"),
                        (b'{"x": 1}', "missing_id"), (None, "empty_value")):
        with pytest.raises(Rejected, match=reason):
            candidate_from_record("receipts", "gw.receipts", raw)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1, max_size=8), st.binary(max_size=16)), unique_by=lambda t: t[0],
                min_size=1, max_size=12), st.randoms(use_true_random=False), st.data())
def test_decision_root_depends_on_the_decisions_not_their_order(actions, rnd, data):
    shuffled = list(actions)
    rnd.shuffle(shuffled)
    redelivered = shuffled + [data.draw(st.sampled_from(actions))]  # a re-delivery adds nothing
    assert decision_root(redelivered) == decision_root(actions)
    assert decision_root(actions) == merkle.root(leaf for _id, leaf in sorted(actions))
    i, leaf = actions[0]
    assert decision_root([(i, leaf + b"x"), *actions[1:]]) != decision_root(actions)
    assert decision_root(actions[1:]) != decision_root(actions)


def test_decisions_are_the_action_entries_in_log_order(tmp_path):
    a1, a2 = ({"id": "a1", "kind": "abort"}, {"id": "a2", "kind": "hook"})
    with WormStore(str(tmp_path / "w.db")) as s:
        s.append_batch([candidate_from_record("actions", "p.actions", orjson.dumps(a2)),
                        candidate_from_record("receipts", "p.receipts", orjson.dumps({"id": "r1"})),
                        candidate_from_record("actions", "p.actions", orjson.dumps(a1))])
        assert [(e.id, e.leaf) for e in s.decisions()] == [("a2", canonical_json(a2)), ("a1", canonical_json(a1))]


def test_status_and_evidence_refuse_a_file_that_is_not_a_worm_log(tmp_path, capsys):
    """Pointed at another component's SQLite file, they say so and leave it as it was."""
    import sqlite3

    from gatewatch.streams.cli.main import main
    other = tmp_path / "executor.db"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE receipts(id TEXT)")
    text = tmp_path / "notes.txt"
    text.write_text("not sqlite at all\n" * 100)
    for path in (other, text):
        before = path.read_bytes()
        for args in (["worm", "status", "--db", str(path)],
                     ["evidence", "--db", str(path), "--out", str(tmp_path / "b.tar.gz")]):
            assert main(args) != 0
            assert "not a WORM log" in capsys.readouterr().err
        assert path.read_bytes() == before
