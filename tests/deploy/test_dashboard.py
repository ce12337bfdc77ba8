"""Every PromQL query of the Grafana dashboard names metrics that running gatewatch processes
really export: ingest, signals, decide, executor and the WORM sink as subprocesses on the test
broker (each with --metrics-port), `gatewatch serve` in-process on the gates topic, and every
metric name a dashboard expression names must appear on one of their live /metrics pages."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from gatewatch.streams.app.serve import Serve
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.kafka import producer
from gatewatch.streams.runtime.keys import init_keys
from tests.inputs.metrics_gen import request_records, traffic
from tests.serve.helpers import demo_gate_records, gate, publish

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = json.loads((ROOT / "docker/grafana/dashboards/gatewatch.json").read_text())

# PromQL words that are not metric names: functions and aggregations are followed by "(" and
# stripped as such; these are the keywords and Grafana's variables/functions left over
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
             "offset", "le", "inf", "nan"}
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def expressions() -> list[str]:
    """Every query in the dashboard: panel targets and template-variable queries."""
    out = [t["expr"] for p in DASHBOARD["panels"] for t in p.get("targets", [])]
    for v in DASHBOARD["templating"]["list"]:
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        out.append(q)
    return out


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (label matchers, grouping clauses, strings, ranges,
    function calls and Grafana variables removed)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # strings
    e = re.sub(r"\{[^}]*\}", "", e)                        # label matchers
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)                       # range and subquery selectors
    e = re.sub(r"\$\w+", "", e)                            # Grafana variables ($scope, $__range)
    e = re.sub(r"label_values\(([^,()]+),[^)]*\)", r"\1", e)  # Grafana's label_values(metric, label)
    e = re.sub(r"[a-zA-Z_]\w*\s*\(", "(", e)               # function and aggregation names
    e = re.sub(r"\b\d+(\.\d+)?([eE][-+]?\d+)?\b", "", e)   # numbers
    return {w for w in _IDENT.findall(e) if w.lower() not in _KEYWORDS}


def grouping_labels(expr: str) -> set[str]:
    return {lab.strip() for m in re.finditer(r"\bby\s*\(([^)]*)\)", expr) for lab in m.group(1).split(",")
            if lab.strip()}


def test_parser_finds_names_and_nothing_else():
    assert metric_names('histogram_quantile(0.99, sum by (stage, le) (rate(gatewatch_worker_batch_seconds_bucket[5m])))') \
        == {"gatewatch_worker_batch_seconds_bucket"}
    assert metric_names('time() - min by (topic) (gatewatch_ingest_watermark_seconds)') \
        == {"gatewatch_ingest_watermark_seconds"}
    assert metric_names('label_values(gatewatch_gate_state{scope=~"$scope"}, release)') == {"gatewatch_gate_state"}
    assert metric_names('max by (scope) (gatewatch_gate_state{scope=~"$scope"} == 1) or vector(0)') \
        == {"gatewatch_gate_state"}
    every = set().union(*map(metric_names, expressions()))
    assert every and all(n.startswith("gatewatch_") for n in every), every


def test_dashboard_uses_the_provisioned_datasource():
    import yaml
    prov = yaml.safe_load((ROOT / "docker/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = prov["datasources"][0]["uid"]
    panels = [p for p in DASHBOARD["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in DASHBOARD["panels"]}) == len(DASHBOARD["panels"])
    for p in panels:
        assert p["datasource"]["uid"] == uid and all(t["datasource"]["uid"] == uid for t in p["targets"]), p["title"]
    for v in DASHBOARD["templating"]["list"]:
        assert v["datasource"]["uid"] == uid


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError:
        return 0, ""


def _page_names(text: str) -> tuple[set[str], dict[str, set[str]]]:
    """(names on the page: declared by # HELP/# TYPE or sampled, {sampled name: label names}).
    A histogram declared without children yet (labels never observed) has its _bucket, _sum and
    _count series as soon as it observes: they count as declared."""
    declared, labels = set(), {}
    for line in text.splitlines():
        if line.startswith(("# HELP ", "# TYPE ")):
            declared.add(line.split()[2])
            if line.startswith("# TYPE ") and line.split()[3] == "histogram":
                declared.update(line.split()[2] + s for s in ("_bucket", "_sum", "_count"))
        elif line and not line.startswith("#"):
            m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?", line)
            declared.add(m.group(1))
            labels.setdefault(m.group(1), set()).update(re.findall(r'(\w+)="', m.group(3) or ""))
    return declared, labels


@pytest.fixture
def live_pages(kafka_bootstrap, topic_prefix, tmp_path):
    """{process: /metrics URL} of real processes running on the test broker and topic prefix."""
    keys = tmp_path / "keys"
    init_keys(keys)
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, GATEWATCH_TOPIC_PREFIX=topic_prefix,
               GATEWATCH_KEYS_DIR=str(keys), GATEWATCH_LOG_LEVEL="WARNING", GATEWATCH_HTTP_HOST="127.0.0.1",
               GATEWATCH_EXECUTOR_HTTP_HOST="127.0.0.1")
    cfg = tmp_path / "executor.yml"
    cfg.write_text("executor: {group: %sexecutor}\nbackends:\n  dry-run: {type: dry-run}\n"
                   "routes:\n  - {kind: abort, backend: dry-run}\n  - {kind: promote, backend: dry-run}\n"
                   "  - {kind: hook, backend: dry-run}\n" % topic_prefix)
    policy = str(ROOT / "configs/policies")
    argvs = {
        "ingest": ["worker", "ingest", "--assignment", "group", "--state-dir", str(tmp_path / "state"),
                   "--policy", policy],
        "signals": ["worker", "signals", "--assignment", "group", "--state-dir", str(tmp_path / "state"),
                    "--policy", policy],
        "decide": ["worker", "decide", "--assignment", "group", "--state-dir", str(tmp_path / "state"),
                   "--policy", policy],
        "executor": ["executor", "run", "--config", str(cfg), "--ledger", str(tmp_path / "executor.db")],
        "worm": ["worm", "run", "--db", str(tmp_path / "worm.db")],
    }
    procs, urls = [], {}
    try:
        for name, argv in argvs.items():
            port = _free_port()
            log = open(tmp_path / f"{name}.log", "ab")
            procs.append(subprocess.Popen([sys.executable, "-m", "gatewatch", *argv, "--metrics-port", str(port)],
                                          env=env, stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL))
            log.close()
            urls[name] = f"http://127.0.0.1:{port}"
        # serve, on gate records built by the real processors plus one waiting on a missing signal
        publish(kafka_bootstrap, [orjson.loads(v) for _, v in demo_gate_records()]
                + [gate("checkout", "2.0.0", "pending", missing=("requests",))])
        svc = Serve(kafka_bootstrap, port=0).start()
        assert svc.materializer.wait_ready(60), "serve did not catch up with the gates topic"
        urls["serve"] = svc.url
        # some input, so the stages consume and produce while we look
        p = producer(kafka_bootstrap)
        for ts, value in request_records(traffic(steps=20, per_step=20)):
            p.produce(topics.topic("metrics", topic_prefix), key=b"checkout", value=value, timestamp=ts)
        assert p.flush(30) == 0
        deadline = time.monotonic() + 90
        for name, url in urls.items():
            while _get(url + "/readyz")[0] != 200:
                crashed = [n for n, pr in zip(argvs, procs) if pr.poll() is not None]
                assert not crashed, f"{crashed} exited; logs in {tmp_path}"
                assert time.monotonic() < deadline, f"{name} never became ready; logs in {tmp_path}"
                time.sleep(0.5)
        yield urls, tmp_path
        svc.stop()
    finally:
        for pr in procs:
            pr.terminate()
        for pr in procs:
            try:
                pr.wait(20)
            except subprocess.TimeoutExpired:
                pr.kill()
                pr.wait(5)


def test_every_dashboard_query_names_a_live_metric(live_pages):
    urls, logs = live_pages
    # wait (bounded) until the input reached ingest, so the pipeline counters carry samples too
    deadline = time.monotonic() + 60
    while 'gatewatch_worker_records_total{stage="ingest"}' not in _get(urls["ingest"] + "/metrics")[1]:
        assert time.monotonic() < deadline, f"ingest consumed nothing; logs in {logs}"
        time.sleep(0.5)
    declared, labels = set(), {}
    for name, url in urls.items():
        status, text = _get(url + "/metrics")
        assert status == 200, f"{name}: /metrics answered {status}"
        d, lab = _page_names(text)
        declared |= d
        for k, v in lab.items():
            labels.setdefault(k, set()).update(v)
    for expr in expressions():
        names = metric_names(expr)
        assert names, f"no metric name in {expr!r}"
        missing = names - declared
        assert not missing, f"{expr!r} names {sorted(missing)}: on no live /metrics page"
        # where the page shows samples, the labels the query groups by must be theirs
        sampled = [labels[n] for n in names if n in labels]
        if sampled:
            have = set().union(*sampled) | {"le"}
            assert grouping_labels(expr) <= have, f"{expr!r} groups by {grouping_labels(expr) - have}"
    # serve's gate series carry the pending gate and its missing signal
    text = _get(urls["serve"] + "/metrics")[1]
    assert 'gatewatch_gate_verdict{release="2.0.0",scope="checkout",verdict="pending"} 1.0' in text
    assert 'gatewatch_gate_missing_signals{release="2.0.0",scope="checkout"} 1.0' in text
