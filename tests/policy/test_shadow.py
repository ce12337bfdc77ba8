"""Policy shadow runs (issue 23, seed 002): a candidate with a tighter burn-rate threshold, run over
the traffic-spike scenario beside the active policy, reports the exact steps where it would have
acted earlier; the same policy as candidate diverges nowhere."""
import shutil
from pathlib import Path

import orjson
import pytest
import yaml

from gatewatch.processors.scenarios import Scenario
from gatewatch.processors.timefmt import parse_time_ms
from gatewatch.streams.app.drill import DRILL_START
from gatewatch.streams.app.simulate import write_envelopes
from gatewatch.streams.cli.main import main

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("shadow")
    spec = yaml.safe_load((CONFIGS / "scenarios" / "traffic_spike.yaml").read_text())
    path = d / "spike.ndjson"
    with open(path, "wb") as f:
        write_envelopes(Scenario(spec, start_ms=parse_time_ms(DRILL_START)), f)
    return path


def test_a_tighter_burn_threshold_acts_earlier_at_the_steps_it_names(corpus, tmp_path, capsys):
    cand = tmp_path / "candidate"
    shutil.copytree(CONFIGS / "policies", cand)
    text = (cand / "project.yml").read_text()
    assert 'when: "burn_rate_per_4h >= 1.0"' in text
    (cand / "project.yml").write_text(text.replace('when: "burn_rate_per_4h >= 1.0"', 'when: "burn_rate_per_4h >= 0.2"'))
    report = tmp_path / "shadow.json"
    rc = main(["policy", "shadow", str(cand), "--policy", str(CONFIGS / "policies"), "--corpus", str(corpus),
               "--out", str(report)])
    out = capsys.readouterr().out
    assert rc == 1
    rep = orjson.loads(report.read_bytes())
    burns = [d for d in rep["diffs"] if d["rule"] == "burn_4h"]
    assert burns and all(d["what"].startswith("candidate acts") and d["what"].endswith("s earlier") for d in burns)
    for d in burns:  # the exact steps: the candidate's step, before the active one's, and its condition
        assert d["candidate"]["ts"] < d["active"]["ts"]
        assert d["candidate"]["condition"] == "burn_rate_per_4h >= 0.2"
        assert f"candidate {d['candidate']['ts']}" in out
    assert rep["divergence"] == len(rep["diffs"]) and rep["agree"] > 0


def test_the_same_policy_diverges_nowhere(corpus, capsys):
    assert main(["policy", "shadow", str(CONFIGS / "policies"), "--corpus", str(corpus)]) == 0
    assert "divergence 0" in capsys.readouterr().out
