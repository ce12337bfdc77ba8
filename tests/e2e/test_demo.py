"""`gatewatch demo` as a user runs it: a rollback executed with a permit, a verified bundle, an HTML report."""
import os
import re
import subprocess
import sys
import tarfile

import pytest

pytestmark = pytest.mark.integration


def test_demo_end_to_end(kafka_bootstrap, tmp_path):
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap)
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "gatewatch", "demo", "--out", str(out), "--speed", "0"],
                       env=env, capture_output=True, text=True, timeout=420)
    assert r.returncode == 0, r.stderr[-3000:]
    m = re.search(r"rollbacks executed: (\d+) with a valid permit", r.stdout)
    assert m and int(m.group(1)) >= 1, r.stdout
    assert "promote:promote" in r.stdout, r.stdout  # healthy_canary reached CANARY_READY
    assert "(verified)" in r.stdout
    refused = re.search(r"refused by the executor: (.*)", r.stdout)  # said, with why, when any
    assert refused is None or "expired" not in refused.group(1) or "gate.ttl" in refused.group(1), r.stdout
    # serve ran beside the streaming pipeline and answered from the gates topic decide wrote:
    # the promoted healthy_canary release passes, the traffic_spike release fails
    assert "gate checkout@1.5.0: pass (CANARY_READY)" in r.stdout, r.stdout
    assert re.search(r"gate checkout@1\.6\.0: fail \(", r.stdout), r.stdout
    assert re.search(r"gatewatch serve at http://127\.0\.0\.1:\d+", r.stderr), r.stderr[-2000:]
    bundle = out / "evidence.tar.gz"
    with tarfile.open(bundle) as t:
        names = t.getnames()
    assert "manifest.json" in names and "checkpoint.note" in names and "include/report.html" in names
    assert {"evidence/span_coverage.json", "evidence/input_schemas.json", "evidence/cardinality.json",
            "evidence/drill.json"} <= set(names)
    report = out / "report.html"
    html = report.read_text()
    assert report.exists() and "<svg" in html
    # the four tables of what was judged, each with data from this run
    for sid in ("span-coverage", "schemas", "cardinality", "drill"):
        section = html[html.index(f'<section id="{sid}">'):]
        section = section[:section.index("</section>")]
        assert "<table>" in section and "in this bundle" not in section, sid
    assert re.search(r"<td>checkout</td><td class=num>\d+</td><td class=num>\d+</td><td class=num>9\d\.\d\d %</td>"
                     r"<td class=num>95 %</td><td><span class=\"ok\">PASS</span>", html), "span coverage row"
    assert "<td>request_sample</td>" in html and "per-request samples" in html
    assert "<td>DEC</td>" in html and "<td>cdc_lag</td><td>hook</td>" in html
    # the bundle verifies again, offline, with a fresh process, and every action replays from its
    # attestation (recorded pre-state and inputs -> recorded post-state hash and the same record)
    v = subprocess.run([sys.executable, "-m", "gatewatch", "verify", str(bundle), "--trusted-keys", str(out / "keys"),
                        "--replay"], capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr
    m = re.search(r"replay: (\d+) of (\d+) actions re-derived from (\d+) attestations", v.stdout)
    assert m and m.group(1) == m.group(2) and int(m.group(1)) >= 2 and int(m.group(3)) >= 1, v.stdout
    # the deploy webhook signed its acks; verify re-checked them against the pinned recipient key
    for printed in (r.stdout, v.stdout):
        assert re.search(r"deliveries: [1-9]\d* recipient acks verified, 0 unconfirmed", printed), printed
    assert "span coverage: PASS (1 services" in v.stdout and "cardinality: OK" in v.stdout
    # the whole seed hook library and the controls, drilled beside the pipeline, all PASS
    drilled = re.search(r"drill: (\d+) PASS, 0 FAIL", v.stdout)
    assert drilled and int(drilled.group(1)) >= 12 and "subset" not in v.stdout, v.stdout
    assert "input schemas:" in v.stdout
