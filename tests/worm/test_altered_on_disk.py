"""An insider with write access to the WORM database (triggers dropped, rows edited): the exporter
refuses to sign a bundle over it, `worm status` exits 1 naming the damage, and the sink refuses to
start rather than sign a checkpoint that contradicts the one it signed before (a fork that the
witnesses would refuse in silence)."""
from __future__ import annotations

import sqlite3

import pytest

from gatewatch.processors.canonical import canonical_json
from gatewatch.sinks.worm import checkpoint as cp
from gatewatch.sinks.worm.bundle import BundleError
from gatewatch.sinks.worm.evidence import build_files
from gatewatch.sinks.worm.sink import SinkConfig, WormSink
from gatewatch.streams.cli.main import main
from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.keys import load_signing_key, public_keys
from tests.worm import factory


@pytest.fixture
def log(tmp_path, monkeypatch):
    monkeypatch.delenv("GATEWATCH_TOPIC_PREFIX", raising=False)
    keys = factory.keys(tmp_path)
    db = str(tmp_path / "w.db")
    factory.log_with_quorum(db, keys, n_actions=7).close()  # 7 actions, 14 receipts, 2 diamonds: 23 entries
    return db, keys


def edit(db: str, sql: str, *args) -> None:
    con = sqlite3.connect(db)
    for t in ("entries", "nodes"):
        for op in ("update", "delete"):
            con.execute(f"DROP TRIGGER IF EXISTS {t}_no_{op}")
    con.execute(sql, args)
    con.commit()
    con.close()


def export(db: str, keys: str) -> dict:
    from gatewatch.sinks.worm.store import WormStore
    with WormStore(db) as store:
        return build_files(store, cp.default_policy(keys_path=keys), public_keys(keys), None,
                           log_key=load_signing_key("log", keys))


def status(db: str, keys: str, capsys) -> tuple[int, str]:
    code = main(["worm", "status", "--db", db, "--keys-dir", keys])
    return code, capsys.readouterr().err.strip()


def test_control_an_untouched_log_exports_reports_and_restarts(log, capsys):
    db, keys = log
    assert "entries.ndjson" in export(db, keys)
    assert status(db, keys, capsys) == (0, "")
    WormSink(SinkConfig(db=db, keys_dir=keys)).store.close()


def test_a_leaf_edited_under_its_hash_is_named_and_never_exported(log, capsys):
    db, keys = log
    with sqlite3.connect(db) as con:
        leaf = con.execute("SELECT leaf FROM entries WHERE idx=13").fetchone()[0]
    edit(db, "UPDATE entries SET leaf=? WHERE idx=13", canonical_json({"edited": leaf.decode()[:20]}))
    with pytest.raises(BundleError, match="entry 13: its leaf does not hash to the logged leaf hash"):
        export(db, keys)
    code, err = status(db, keys, capsys)
    assert code == 1 and "entry 13: its leaf does not hash" in err and len(err.splitlines()) == 1, err


def test_a_truncated_log_refuses_to_export_report_or_sign_on(log, capsys):
    db, keys = log
    edit(db, "DELETE FROM entries WHERE idx >= 15")
    with pytest.raises(BundleError, match="altered"):
        export(db, keys)
    code, err = status(db, keys, capsys)
    assert code == 1 and ("altered" in err or "truncated" in err), err
    with pytest.raises(GatewatchError, match="does not hold the tree it signed at size 23"):
        WormSink(SinkConfig(db=db, keys_dir=keys))


def test_entries_rewritten_with_their_nodes_stop_the_sink_before_it_forks_the_log(log, capsys):
    """Entries 15.. and every node over them dropped: a consistent tree of 15 again, which the sink
    would have grown and signed; the witnesses then refuse every checkpoint in silence."""
    db, keys = log
    edit(db, "DELETE FROM entries WHERE idx >= 15")
    edit(db, "DELETE FROM nodes WHERE ((idx + 1) << level) > 15")
    with pytest.raises(GatewatchError, match="truncated or rewritten; refusing to sign anything more"):
        WormSink(SinkConfig(db=db, keys_dir=keys))
    code, err = status(db, keys, capsys)
    assert code == 1 and "not the tree it signed at size 23" in err, err


def test_a_leaf_edited_into_bytes_that_are_not_json_is_named_too(log, capsys):
    db, keys = log
    edit(db, "UPDATE entries SET leaf=? WHERE idx=3", b"\xff\xfe not json")
    with pytest.raises(BundleError, match="entry 3: its leaf does not hash"):
        export(db, keys)
    code, err = status(db, keys, capsys)
    assert code == 1 and "entry 3: its leaf does not hash" in err, err


def test_the_exporter_refuses_names_verify_would_refuse(log, tmp_path):
    """Two policy files differing only in case exported fine and then failed verify as tampering."""
    db, keys = log
    pol = tmp_path / "pol"
    pol.mkdir()
    for name in ("NOTES.md", "notes.md"):
        (pol / name).write_text("# notes\n")
    from gatewatch.sinks.worm.store import WormStore
    with WormStore(db) as store, pytest.raises(BundleError, match="cannot export .*same name but for case.*rename it"):
        build_files(store, cp.default_policy(keys_path=keys), public_keys(keys), str(pol),
                    log_key=load_signing_key("log", keys))
