"""The integration kits in docs/integrations/, exercised as the controllers use them, against serve
holding the demo scenarios' real gate records: healthy_canary (release 1.5.0, pass) then
traffic_spike (1.6.0, fail), replayed through the real processors and published to the gates topic."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.serve.helpers import demo_gate_records, gate, http, publish, publish_raw

DOCS = Path(__file__).resolve().parents[2] / "docs" / "integrations"
IN_CLUSTER = "http://gatewatch-serve.gatewatch.svc:8088"


def yaml_blocks(page: str) -> list[dict]:
    text = (DOCS / page).read_text()
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.S)]


def k8s_jsonpath(template: str, doc):
    """The subset of Kubernetes JSONPath the kit uses: `{$.a.b}` (a field path)."""
    m = re.fullmatch(r"\{\$((?:\.[A-Za-z_][A-Za-z0-9_]*)+)\}", template)
    assert m, f"the kit's jsonPath {template!r} is no plain field path"
    for key in m.group(1).split(".")[1:]:
        doc = doc[key]
    return doc


def expr_condition(cond: str, result) -> bool:
    """The kit's conditions are `result == "<string>"` (antonmedv/expr equality on a string)."""
    m = re.fullmatch(r'result == "([a-z]+)"', cond)
    assert m, f"condition {cond!r} is not of the form result == \"...\""
    return result == m.group(1)


def argo_measurement(metric: dict, url: str, token: str | None = None) -> str:
    """One measurement as metricproviders/webmetric + utils/evaluate do it."""
    code, body = http("GET", url, token=token)
    if not 200 <= code < 300:
        return "Error"
    result = k8s_jsonpath(metric["provider"]["web"]["jsonPath"], body)
    failed = expr_condition(metric["failureCondition"], result)
    succeeded = expr_condition(metric["successCondition"], result)
    if failed:
        return "Failed"
    return "Successful" if succeeded else "Inconclusive"


def _serve_demo(kafka_bootstrap, start_serve):
    publish_raw(kafka_bootstrap, "gates", list(demo_gate_records()))
    publish(kafka_bootstrap, [gate("checkout", "1.7.0", "pending", ts=1_800_000_000_000,
                                   missing=("latency_p95_ms",))])
    return start_serve()


def test_demo_releases_pass_and_fail_through_the_api(kafka_bootstrap, start_serve):
    s = _serve_demo(kafka_bootstrap, start_serve)
    code, doc = http("GET", s.url + "/v1/gates/checkout?release=1.5.0")
    assert code == 200 and doc["verdict"] == "pass" and doc["state"] == "CANARY_READY"
    code, doc = http("GET", s.url + "/v1/gates/checkout?release=1.6.0")
    assert code == 200 and doc["verdict"] == "fail"
    assert {r["rule"] for r in doc["reasons"]} == {"burn_4h", "err5xx"}


def test_argo_rollouts_kit_successful_failed_inconclusive(kafka_bootstrap, start_serve):
    s = _serve_demo(kafka_bootstrap, start_serve)
    template = next(b for b in yaml_blocks("argo-rollouts.md") if b["kind"] == "AnalysisTemplate")
    rollout = next(b for b in yaml_blocks("argo-rollouts.md") if b["kind"] == "Rollout")
    metric = template["spec"]["metrics"][0]
    assert metric["provider"]["web"]["jsonPath"] == "{$.verdict}"
    assert {a["name"] for a in template["spec"]["args"]} >= {"scope", "release"}
    assert rollout["spec"]["strategy"]["canary"]["analysis"]["templates"][0]["templateName"] == \
        template["metadata"]["name"]

    def measure(release: str) -> str:
        url = metric["provider"]["web"]["url"].replace(IN_CLUSTER, s.url)
        url = url.replace("{{args.scope}}", "checkout").replace("{{args.release}}", release)
        return argo_measurement(metric, url)

    assert measure("1.5.0") == "Successful"
    assert measure("1.6.0") == "Failed"
    assert measure("1.7.0") == "Inconclusive"  # pending on latency_p95_ms
    assert measure("9.9.9") == "Error"         # no gate: never Successful


def test_flagger_kit_each_webhook_with_flaggers_payload(kafka_bootstrap, start_serve):
    s = _serve_demo(kafka_bootstrap, start_serve)
    canary = next(b for b in yaml_blocks("flagger.md") if b["kind"] == "Canary")
    hooks = {w["type"]: w for w in canary["spec"]["analysis"]["webhooks"]}
    assert set(hooks) == {"rollout", "confirm-promotion", "rollback"}
    want = {"1.5.0": {"rollout": 200, "confirm-promotion": 200, "rollback": 409},
            "1.6.0": {"rollout": 403, "confirm-promotion": 403, "rollback": 200},
            "1.7.0": {"rollout": 200, "confirm-promotion": 409, "rollback": 409}}
    for release, statuses in want.items():
        for kind, w in hooks.items():
            payload = {"name": canary["metadata"]["name"], "namespace": canary["metadata"]["namespace"],
                       "phase": "Progressing", "checksum": "6d9f5c7b8",
                       "metadata": dict(w["metadata"], release=release)}
            code, doc = http("POST", w["url"].replace(IN_CLUSTER, s.url), body=payload)
            assert (release, kind, code) == (release, kind, statuses[kind]), doc
            assert doc["release"] == release and doc["scope"] == "checkout"
