"""The suite relies on pytest-xdist's `--dist loadgroup` (pyproject addopts): tests marked with one
xdist_group run on one worker, so a session fixture such as the 3-node Kafka cluster starts once and
helm is built once. pytest 9.2 with pytest-xdist 3.8 ignored the mark without a word (each of four
workers built helm at once and the suite ran out of time). This runs a two-worker session over a
small grouped module and checks that one worker ran it all."""
from __future__ import annotations

import subprocess
import sys


def test_tests_of_one_xdist_group_run_on_one_worker(tmp_path):
    (tmp_path / "test_grouped.py").write_text(
        "import os, pytest\n"
        "pytestmark = pytest.mark.xdist_group('g')\n"
        "@pytest.mark.parametrize('i', range(8))\n"
        "def test_one(i):\n"
        "    with open(os.path.join(os.path.dirname(__file__), 'workers.txt'), 'a') as f:\n"
        "        f.write(os.environ['PYTEST_XDIST_WORKER'] + '\\n')\n")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p", "no:randomly",
                        "-p", "no:cacheprovider", "-c", "/dev/null", "--rootdir", str(tmp_path), str(tmp_path)],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    workers = (tmp_path / "workers.txt").read_text().split()
    assert len(workers) == 8 and len(set(workers)) == 1, workers
