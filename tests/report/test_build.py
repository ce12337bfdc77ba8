"""`gatewatch report` / build_report over a real bundle: verified, tampered, and shipped inside a re-export."""
from __future__ import annotations

import base64
import hashlib

import orjson

from gatewatch.sinks.report.build import (
    build_report,
    parse_signal_line,
    read_signals,
    verification_summary,
)
from gatewatch.sinks.worm import checkpoint as cp
from gatewatch.sinks.worm.evidence import (
    build_files,
    read_bundle,
    sign_manifest,
    verify_bundle,
    write_bundle,
)
from gatewatch.sinks.worm.store import WormStore
from gatewatch.streams.cli.main import main
from gatewatch.streams.runtime.keys import load_signing_key, public_keys
from tests.report.factory import POLICIES

SIG = {"name": "burn_rate_5m", "scope": "s", "cohort": "canary", "subject": "", "value": 1.5,
       "ts": "2026-01-01T00:00:00Z", "window_s": 300}


def test_signal_lines_in_every_shape(tmp_path):
    assert parse_signal_line(orjson.dumps({"topic": "gw.signals", "key": "s", "value": SIG})) == [SIG]
    assert parse_signal_line(orjson.dumps({"topic": "p.gw.signals", "payload": orjson.dumps(SIG).decode()})) == [SIG]
    assert parse_signal_line(orjson.dumps({"signals": [SIG, {"x": 1}]})) == [SIG]
    assert parse_signal_line(orjson.dumps(SIG)) == [SIG]
    assert parse_signal_line(orjson.dumps({"topic": "gw.actions", "value": SIG})) == []
    assert parse_signal_line(b"not json") == [] and parse_signal_line(b"[1]") == []
    f = tmp_path / "s.ndjson"
    f.write_bytes(orjson.dumps(SIG) + b"\n\n{broken\n" + orjson.dumps({"topic": "gw.signals", "value": SIG}) + b"\n")
    assert read_signals(f) == [SIG, SIG]


def test_cli_report_of_a_verified_bundle(spike, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["report", "--bundle", str(spike["bundle"]), "--signals", str(spike["signals"]),
                 "--out", str(out), "--trusted-keys", str(spike["keys"])]) == 0
    assert "bundle verified" in capsys.readouterr().out
    html = out.read_text()
    assert "ROLLED BACK (rollback)" in html and "EVIDENCE VERIFIED" in html
    for rule in ("burn_4h", "err5xx", "hook:cdc_freeze", "gate:EXEC_FAST_OK"):
        assert rule in html
    assert html.count("RESULT success") == sum(a["kind"] in ("abort", "hook") for a in spike["actions"])
    assert "witness-3" in html and "not signed" in html and "2-of-3" in html
    assert "INV1 EvidenceBound: ok" in html
    # the decision root (what two runs of the same input compare) sits in the evidence table
    root = verify_bundle(str(spike["bundle"])).decision_root
    assert f"<th style='width:200px'>decision root</th><td><code>{root}</code>" in html
    # the function the demo calls gives the same bytes
    again = build_report(spike["bundle"], spike["signals"], tmp_path / "again.html", trusted_keys=str(spike["keys"]))
    assert again.read_bytes() == out.read_bytes()


def test_tampered_bundle_is_reported_and_exits_1(spike, tmp_path, capsys):
    files = dict(spike["files"])
    note = cp.parse_note(files["checkpoint.note"].decode())
    name, kid, sig = next(s for s in note.signatures if s[0] == "witness-2")
    note.signatures = [s if s[0] != "witness-2" else (name, kid, bytes([sig[0] ^ 1]) + sig[1:])
                       for s in note.signatures]
    files["checkpoint.note"] = note.text().encode()
    manifest = orjson.loads(files["manifest.json"])
    manifest["files"]["checkpoint.note"] = hashlib.sha256(files["checkpoint.note"]).hexdigest()
    files["manifest.json"] = orjson.dumps(manifest, option=orjson.OPT_INDENT_2)
    files["manifest.sig"] = sign_manifest(files, cp.DEFAULT_ORIGIN, load_signing_key("log", str(spike["keys"])))
    bad = tmp_path / "bad.tar.gz"
    write_bundle(files, str(bad))
    out = tmp_path / "bad.html"
    assert main(["report", "--bundle", str(bad), "--out", str(out)]) == 1
    assert "does not verify" in capsys.readouterr().err
    summary = verification_summary(bad)
    assert not summary["ok"] and "quorum not met" in summary["error"]
    assert {s["name"]: s["status"] for s in summary["signatures"]} == {
        cp.DEFAULT_ORIGIN: "valid", "witness-1": "valid", "witness-2": "invalid", "witness-3": "missing"}
    html = out.read_text()
    assert "EVIDENCE NOT VERIFIED" in html and "quorum not met" in html
    assert "<th style='width:200px'>decision root</th><td><span class=\"muted\">" in html  # not vouched for


def test_report_then_reexport_including_it(spike, tmp_path):
    """The documented order: export, report, export again with --include report.html."""
    report = build_report(spike["bundle"], spike["signals"], tmp_path / "report.html")
    keys = str(spike["keys"])
    store = WormStore(str(spike["bundle"].with_name("worm.db")))
    try:
        files = build_files(store, cp.default_policy(keys_path=keys), public_keys(keys), str(POLICIES),
                            (str(report),), load_signing_key("log", keys))
    finally:
        store.close()
    final = tmp_path / "final.tar.gz"
    write_bundle(files, str(final))
    first, second = verify_bundle(str(spike["bundle"])), verify_bundle(str(final))
    assert (second.root, second.size) == (first.root, first.size)
    inner, _ = read_bundle(str(final))
    assert inner["include/report.html"] == report.read_bytes()
    assert base64.b64decode(second.root) and first.bundle_sha256 in report.read_text()
