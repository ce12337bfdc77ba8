"""Error budget (issue 21): error_budget_consumed over the SLO's own 28-day window, usable in rules;
a compressed 28-day scenario (one batch of requests every 5 minutes, signals every 5 minutes)
freezes when half the budget is spent, at the same step and with the same bytes however replay
cuts its flushes."""
import orjson
import pytest

from gatewatch.processors.timefmt import format_ts
from gatewatch.streams.app.replay import Replayer, envelope_from_dict, sources_of
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.policy_files import compose

pytestmark = pytest.mark.xdist_group("error_budget")  # its module fixtures are built once (tests/conftest.py)

DAY, STEP = 86_400_000, 300_000
T0 = 1_767_225_600_000
POLICY = """
slo: {availability: {window: 28d, target: 99.9}}
signals: {step: 5m}
abort:
  - {id: budget_half, when: "error_budget_consumed > 0.5", action: freeze, min_samples: 1000}
"""


def envelopes(days=24):
    """20 canary requests per 5 minutes; from day 14 one in 600 fails (the budget is one in 1000),
    so consumed(t) = (1/600) (t - 14) / t / 0.001, which passes 0.5 at day 20."""
    out = []
    for i in range(days * DAY // STEP):
        fail = i >= 14 * DAY // STEP and i % 30 == 0
        reqs = [{"service": "checkout", "cohort": "canary", "status": 500 if (fail and j == 0) else 200,
                 "latency_ms": 50, "ts": T0 + i * STEP + j * 1000} for j in range(20)]
        out.append({"topic": topics.topic("metrics"), "partition": 0, "offset": i, "ts": T0 + i * STEP + 20_000,
                    "key": "checkout", "payload": orjson.dumps(reqs).decode()})
    return out


def replay(envs, flush_every):
    rp = Replayer(compose([("budget.yml", POLICY)]), None, flush_every=flush_every,
                  sources=sources_of([envelope_from_dict(e) for e in envs]))
    out = []
    for e in envs:
        out.extend(rp.feed(e))
    return out + rp.finish()


@pytest.fixture(scope="module")
def runs():
    envs = envelopes()
    return replay(envs, 1000), replay(envs, 37)


def test_freezes_when_half_the_budget_is_spent(runs):
    out, _ = runs
    acts = [orjson.loads(v) for t, _k, v in out if t == topics.topic("actions")]
    freezes = [a for a in acts if a["rule"]["id"] == "budget_half"]
    assert len(freezes) == 1
    at = freezes[0]["ts"]
    assert format_ts(T0 + 19 * DAY) < at < format_ts(T0 + 21 * DAY)
    sig = freezes[0]["signals"][0]
    assert sig["name"] == "error_budget_consumed" and 0.5 < sig["value"] < 0.51
    consumed = [orjson.loads(v) for t, _k, v in out if t == topics.topic("signals") and b"error_budget_consumed" in v]
    assert consumed and all(s["window_s"] == 28 * 86_400 for s in consumed)
    assert max(s["value"] or 0 for s in consumed if s["ts"] < format_ts(T0 + 14 * DAY)) == 0


def test_the_same_bytes_whatever_the_flushes(runs):
    a, b = runs
    assert a == b
