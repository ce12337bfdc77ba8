"""A realistic evidence bundle without a broker: the spike scenario through `gatewatch simulate` and
`gatewatch replay` (signed actions), executor receipts for the aborts and hooks, a WORM store with a
checkpoint signed by the log and two of three witnesses, exported with configs/policies."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from gatewatch.processors.timefmt import format_ts, parse_time_ms
from gatewatch.sinks.executor.receipts import seal
from gatewatch.sinks.worm import checkpoint as cp
from gatewatch.sinks.worm.evidence import build_files, write_bundle
from gatewatch.sinks.worm.store import WormStore, candidate_from_record
from gatewatch.streams.runtime.keys import init_keys, load_signing_key, public_keys

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).with_name("spike.yaml")
POLICIES = ROOT / "configs" / "policies"
START = "2026-01-01T00:00:00Z"


def gatewatch(*args: str, stdout=None) -> str:
    """Run the CLI; returns its stderr."""
    return subprocess.run([sys.executable, "-m", "gatewatch", *args], cwd=ROOT, check=True, stdout=stdout,
                          stderr=subprocess.PIPE, text=True).stderr


def receipts_for(actions: list[dict], executor) -> list[dict]:
    """INTENT + RESULT per abort/hook action, chained like the executor's ledger."""
    out, prev = [], None
    for a in actions:
        if a.get("kind") not in ("abort", "hook"):
            continue
        t = parse_time_ms(a["ts"])
        for body in ({"type": "INTENT", "action_id": a["id"], "scope": a["scope"], "action": a["action"],
                      "kind": a["kind"], "backend": "webhook", "ts": format_ts(t + 40)},
                     {"type": "RESULT", "action_id": a["id"], "scope": a["scope"], "action": a["action"],
                      "kind": a["kind"], "backend": "webhook", "status": "success", "attempts": 1,
                      "ts": format_ts(t + 180)}):
            r = seal(executor, {**body, "seq": len(out) + 1, "prev": prev})
            prev = r["id"]
            out.append(r)
    return out


def make_bundle(tmp: Path, witnesses=("witness-1", "witness-2")) -> dict:
    keys = tmp / "keys"
    init_keys(keys)
    telemetry, replayed = tmp / "telemetry.ndjson", tmp / "replay.ndjson"
    gatewatch("simulate", str(SCENARIO), "-q", "--start", START, "--out", str(telemetry))
    with open(replayed, "wb") as f:
        replay_stderr = gatewatch("replay", "--policy", str(POLICIES), "--keys-dir", str(keys), str(telemetry),
                                  stdout=f)
    actions = [orjson.loads(line)["value"] for line in replayed.read_bytes().splitlines()
               if b'"gw.actions"' in line[:30]]
    receipts = receipts_for(actions, load_signing_key("executor", keys))
    store = WormStore(str(tmp / "worm.db"))
    store.append_batch([candidate_from_record("actions", "gw.actions", orjson.dumps(a)) for a in actions]
                       + [candidate_from_record("receipts", "gw.receipts", orjson.dumps(r)) for r in receipts])
    origin = cp.DEFAULT_ORIGIN
    note = cp.sign(cp.Checkpoint(origin, store.size, store.root()).body(), origin, load_signing_key("log", keys))
    for w in witnesses:
        note = cp.add_signature(note, w, load_signing_key(w, keys))
    store.add_note("log", origin, store.size, note.text())
    files = build_files(store, cp.default_policy(keys_path=str(keys)), public_keys(str(keys)), str(POLICIES),
                        log_key=load_signing_key("log", str(keys)))
    store.close()
    bundle = tmp / "evidence.tar.gz"
    write_bundle(files, str(bundle))
    return {"bundle": bundle, "signals": replayed, "keys": keys, "files": files, "actions": actions,
            "receipts": receipts, "worm_db": tmp / "worm.db", "replay_stderr": replay_stderr, "telemetry": telemetry}
