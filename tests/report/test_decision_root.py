"""The decision root ties a WORM log to a replay of its input: `gatewatch worm status`,
`gatewatch verify` of its bundle and `gatewatch replay --keys-dir` print the same one, though the
log also holds receipts."""
import os
import re
import subprocess
import sys

from tests.report.factory import ROOT


def test_worm_status_and_replay_print_the_same_decision_root(spike):
    env = {k: v for k, v in os.environ.items() if k != "GATEWATCH_TOPIC_PREFIX"}  # the factory logs gw.*
    status = subprocess.run([sys.executable, "-m", "streams.cli", "worm", "status", "--db", str(spike["worm_db"]),
                             "--keys-dir", str(spike["keys"])], cwd=ROOT, env=env, capture_output=True, text=True)
    assert status.returncode == 0, status.stderr
    logged = re.search(r"decisions (\d+)  decision root (\S+)", status.stdout)
    replayed = re.search(r"(\d+) decisions, decision root (\S+)", spike["replay_stderr"])
    assert logged and replayed, (status.stdout, spike["replay_stderr"])
    assert logged.groups() == replayed.groups()
    assert int(logged.group(1)) == len(spike["actions"]) > 0
    assert re.search(r"size (\d+)", status.stdout).group(1) == str(len(spike["actions"]) + len(spike["receipts"]))
    bundle = subprocess.run([sys.executable, "-m", "streams.cli", "verify", str(spike["bundle"])], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert bundle.returncode == 0, bundle.stdout + bundle.stderr
    assert re.search(r"decision root (\S+) \(the (\d+) actions", bundle.stdout).groups() == \
        (replayed.group(2), replayed.group(1))
