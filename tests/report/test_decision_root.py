"""The decision root ties a WORM log to a replay of its input: `gatewatch worm status`,
`gatewatch verify` of its bundle and `gatewatch replay --keys-dir` print the same one, though the
log also holds receipts."""
import os
import re
import shutil
import subprocess
import sys

import orjson

from gatewatch.sinks.worm.store import WormStore, candidate_from_record
from tests.report.factory import ROOT


def _status(db, keys):
    # the factory logged gw.*: status must not depend on the prefix of the shell that runs it
    env = {**os.environ, "GATEWATCH_TOPIC_PREFIX": "elsewhere."}
    out = subprocess.run([sys.executable, "-m", "gatewatch", "worm", "status", "--db", str(db),
                          "--keys-dir", str(keys)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_worm_status_and_replay_print_the_same_decision_root(spike):
    env = {k: v for k, v in os.environ.items() if k != "GATEWATCH_TOPIC_PREFIX"}
    status = _status(spike["worm_db"], spike["keys"])
    logged = re.search(r"^decisions (\d+)  decision root (\S+)", status, re.M)
    replayed = re.search(r"(\d+) decisions, decision root (\S+)$", spike["replay_stderr"], re.M)
    assert logged and replayed, (status, spike["replay_stderr"])
    assert "at the quorum checkpoint" not in status  # the witnesses cosigned the whole log
    assert logged.groups() == replayed.groups()
    assert int(logged.group(1)) == len(spike["actions"]) > 0
    assert re.search(r"size (\d+)", status).group(1) == str(len(spike["actions"]) + len(spike["receipts"]))
    bundle = subprocess.run([sys.executable, "-m", "gatewatch", "verify", str(spike["bundle"]),
                             "--trusted-keys", str(spike["keys"])], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert bundle.returncode == 0, bundle.stdout + bundle.stderr
    assert re.search(r"decision root (\S+) \(the (\d+) actions", bundle.stdout).groups() == \
        (replayed.group(2), replayed.group(1))


def test_status_also_prints_the_root_a_bundle_exported_now_would_verify(spike, tmp_path):
    """Actions logged after the newest quorum checkpoint are in the log's decision root but in no
    bundle yet: status prints both, and the checkpoint's one is replay's."""
    db = tmp_path / "worm.db"
    shutil.copy(spike["worm_db"], db)
    late = {**spike["actions"][0], "id": "f" * 64}
    with WormStore(str(db)) as store:
        store.append_batch([candidate_from_record("actions", "gw.actions", orjson.dumps(late))])
    status = _status(db, spike["keys"])
    n = len(spike["actions"])
    replayed = re.search(r"(\d+) decisions, decision root (\S+)$", spike["replay_stderr"], re.M).groups()
    whole = re.search(r"^decisions (\d+)  decision root (\S+)", status, re.M).groups()
    at_q = re.search(r"^at the quorum checkpoint: decisions (\d+)  decision root (\S+)", status, re.M)
    assert at_q, status
    assert at_q.groups() == replayed and whole[0] == str(n + 1) and whole[1] != replayed[1]


def test_replay_without_keys_says_its_root_is_unsigned(spike):
    out = subprocess.run([sys.executable, "-m", "gatewatch", "replay", "--policy", str(ROOT / "configs" / "policies"),
                          str(spike["telemetry"])], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "decision root" in out.stderr and "unsigned actions" in out.stderr
    assert "unsigned" not in spike["replay_stderr"]
