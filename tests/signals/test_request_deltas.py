"""Request-side canary deltas (issue 21): latency_p95_ms_delta and err5xx_rate_delta against the
baseline cohort with an interval, as Kayenta judges; a rule on the interval's lower bound catches a
canary-only latency regression, with the interval in the action, and not a baseline-only one."""
import random

import orjson
import pytest

from gatewatch.streams.app.replay import Replayer, envelope_from_dict, sources_of
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.policy_files import compose

T0, STEP = 1_767_225_600_000, 10_000
POLICY = """
abort:
  - {id: lat_delta, when: "latency_p95_ms_delta_lo > 20pct for 1m", action: rollback, min_samples: 100}
"""


def run(slow_cohort):
    rnd = random.Random(11)
    envs = []
    for i in range(60):
        reqs = []
        for cohort in ("baseline", "canary"):
            slow = 2.0 if cohort == slow_cohort and i >= 30 else 1.0
            reqs += [{"service": "checkout", "cohort": cohort, "status": 200,
                      "latency_ms": round(slow * rnd.lognormvariate(4.5, 0.4), 3),
                      "ts": T0 + i * STEP + j * 100} for j in range(50)]
        envs.append({"topic": topics.topic("metrics"), "partition": 0, "offset": i, "ts": T0 + i * STEP + 9000,
                     "key": "checkout", "payload": orjson.dumps(reqs).decode()})
    rp = Replayer(compose([("t.yml", POLICY)]), None, sources=sources_of([envelope_from_dict(e) for e in envs]))
    out = [x for e in envs for x in rp.feed(e)] + rp.finish()
    acts = [orjson.loads(v) for t, _k, v in out if t == topics.topic("actions")]
    sigs = [orjson.loads(v) for t, _k, v in out if t == topics.topic("signals")]
    return [a for a in acts if a["rule"]["id"] == "lat_delta"], sigs


def test_a_canary_only_regression_is_caught_with_its_interval():
    fired, sigs = run("canary")
    assert len(fired) == 1
    s = fired[0]["signals"][0]
    assert s["name"] == "latency_p95_ms_delta_lo" and s["value"] > 0.2
    delta = [x for x in sigs if x["name"] == "latency_p95_ms_delta" and x["ts"] == fired[0]["ts"]][0]
    assert delta["ci_low"] == pytest.approx(s["value"]) and delta["ci_low"] < delta["value"] < delta["ci_high"]
    assert delta["baseline_source"] == "cohort:baseline" and delta["baseline_samples"] > 0
    # the action carries the whole interval it judged
    ref = [r for r in fired[0]["baseline"]["references"] if r["name"] == "latency_p95_ms_delta_lo"][0]
    assert ref["ci_low"] == pytest.approx(s["value"]) and ref["ci_high"] == pytest.approx(delta["ci_high"])


def test_a_baseline_only_regression_is_not():
    fired, sigs = run("baseline")
    assert not fired
    late = [x for x in sigs if x["name"] == "latency_p95_ms_delta" and x["value"] is not None][-1]
    assert late["value"] < 0  # the canary is faster than the slowed baseline


def test_error_ratio_delta_is_deterministic_and_bounded():
    _, a = run("canary")
    _, b = run("canary")
    errs = [x for x in a if x["name"] == "err5xx_rate_delta"]
    assert errs and a == b
    assert all(x["ci_low"] <= x["value"] <= x["ci_high"] for x in errs if x["value"] is not None)
