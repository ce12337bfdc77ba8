"""Every benchmark under bench/ still starts (its imports follow the package's moves): `--help`."""
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
# helpers that bench/ingest.py runs as subprocesses with positional arguments, not benchmarks
HELPERS = {"plain_consumer.py", "faust_counter.py"}


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py") if p.name not in HELPERS))
def test_bench_script_starts(script):
    r = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
