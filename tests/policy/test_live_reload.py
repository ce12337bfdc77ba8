"""Live reload (issue 21): ingest takes a changed cohort table without a restart and keeps the last
good decoding options when the directory stops composing; decide's watch sees overlays too."""
import os
import shutil
from pathlib import Path

from gatewatch.processors.windows import SignalConfig
from gatewatch.streams.runtime.policy_files import PolicyWatch, load_policy_dir
from gatewatch.streams.stages.ingest import IngestStage

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "policies"


def _touch(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a visibly newer mtime


def test_ingest_takes_a_new_cohort_table_and_keeps_the_last_good_one(tmp_path):
    d = tmp_path / "pol"
    shutil.copytree(CONFIGS, d)
    pol = load_policy_dir(d)
    stage = IngestStage(SignalConfig.from_policy(pol.doc, pol.hash), tmp_path / "state", policy_dir=d)
    assert stage.options.otlp_cohorts == {}
    _touch(d / "zz.yml", 'otlp:\n  cohorts: {"2.4.0": canary}\n')
    stage._maybe_reload()
    assert stage.options.otlp_cohorts == {"2.4.0": "canary"}
    _touch(d / "zz.yml", "otlp: [not, a, mapping\n")
    stage._maybe_reload()
    assert stage.options.otlp_cohorts == {"2.4.0": "canary"}  # refused: the last good table stays


def test_the_watch_sees_overlays(tmp_path):
    d = tmp_path / "pol"
    shutil.copytree(CONFIGS, d)
    w = PolicyWatch(d)
    assert not w.changed()
    (d / "services").mkdir()
    _touch(d / "services" / "pay.yml", "selector: {scope: pay}\n")
    assert w.changed() and not w.changed()
