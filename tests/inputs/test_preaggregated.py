"""Pre-aggregated inputs (issue 22): OTLP metrics built with the opentelemetry-proto package, in both
encodings the Collector's kafka exporter writes, and prometheus-kafka-adapter's JSON, through replay
(the streaming path's functions): every metric type and temporality, resets, empty buckets, what is
skipped or dead-lettered and why, and how per-request and pre-aggregated input of one service add up."""
import orjson
import pytest
from google.protobuf.json_format import MessageToJson
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb

from gatewatch.streams.app.replay import Replayer, envelope_from_dict, sources_of
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.policy_files import compose
from tests.inputs.metrics_gen import START_MS, adapter_sample

STEP = 10_000
POLICY = """
signals:
  declared:
    queue_depth: {metric: orders_queue_depth, kind: gauge, aggregation: max, window: 1m}
    declines_per_s: {metric: payments_declined_total, kind: counter, window: 1m, unit: rps}
    declines: {metric: payments_declined_total, kind: counter, aggregation: increase, window: 1m}
    db_p95_ms: {metric: db.client.duration, kind: histogram, aggregation: p95, window: 1m, unit: ms}
    inflight: {metric: http.server.active_requests, kind: gauge, aggregation: last, window: 1m}
    eu_declines: {metric: payments_declined_total, labels: {region: eu}, kind: counter, aggregation: increase,
                  window: 1m}
otlp:
  cohorts: {"1.4.0": baseline, "1.5.0": canary}
abort:
  - {id: queue, when: "queue_depth > 100", action: pause}
"""


@pytest.fixture(scope="module")
def policy():
    return compose([("test.yml", POLICY)])


def kv(k, v):
    return KeyValue(key=k, value=AnyValue(int_value=v) if isinstance(v, int) else AnyValue(string_value=v))


def export(metrics: list, service: str | None = "checkout", version: str = "1.4.0") -> ExportMetricsServiceRequest:
    attrs = [kv("service.version", version)] + ([kv("service.name", service)] if service else [])
    rm = pb.ResourceMetrics(resource={"attributes": attrs}, scope_metrics=[pb.ScopeMetrics(metrics=metrics)])
    return ExportMetricsServiceRequest(resource_metrics=[rm])


def ns(ms: int) -> int:
    return ms * 1_000_000


def counter(name, points, cumulative=True, monotonic=True, attrs=()):
    """points: [(start ms, t ms, value)]"""
    t = pb.AGGREGATION_TEMPORALITY_CUMULATIVE if cumulative else pb.AGGREGATION_TEMPORALITY_DELTA
    return pb.Metric(name=name, sum=pb.Sum(aggregation_temporality=t, is_monotonic=monotonic, data_points=[
        pb.NumberDataPoint(start_time_unix_nano=ns(s), time_unix_nano=ns(t_), as_int=v, attributes=list(attrs))
        for s, t_, v in points]))


def gauge(name, points):
    return pb.Metric(name=name, gauge=pb.Gauge(data_points=[
        pb.NumberDataPoint(time_unix_nano=ns(t), as_double=v) for t, v in points]))


def encode(req, how):
    return req.SerializeToString() if how == "proto" else MessageToJson(req).encode()


def envelope(topic, i, value, ts, partition=0, key=None):
    env = {"topic": topic, "partition": partition, "offset": i, "ts": ts, "key": key}
    if value[:1] in (b"{", b"["):
        env["payload"] = value.decode()
    else:
        import base64
        env["payload"], env["payload_b64"] = None, base64.b64encode(value).decode()
    return env


def clocked(envs):
    """The input and, on each of its partitions, a record of another service past the lateness:
    windows close when event time has moved past them, at the end of input as in streaming."""
    end = max(e["ts"] for e in envs) + 120_000 + 2 * STEP
    tail = []
    for topic, part in sorted({(e["topic"], e["partition"]) for e in envs}):
        if topic == "otlp_metrics":
            value = encode(export([gauge("orders_queue_depth", [(end, 0.0)])], service="zz-clock"), "proto")
        else:
            value = orjson.dumps({"type": "gauge", "service": "zz-clock", "cohort": "baseline",
                                  "name": "orders_queue_depth", "value": 0, "ts": end})
        tail.append(envelope(topic, 10_000, value, end, partition=part))
    return envs + tail


def replay(policy, envs):
    envs = clocked(envs)
    rp = Replayer(policy, None, flush_every=7, sources=sources_of([envelope_from_dict(e) for e in envs]))
    out = []
    for e in envs:
        out.extend(rp.feed(e))
    out.extend(rp.finish())
    sig, dlq = {}, []
    for t, _k, v in out:
        if t == topics.topic("signals"):
            s = orjson.loads(v)
            sig[(s["name"], s["cohort"], s["ts"])] = s
        elif t == topics.topic("dlq"):
            dlq.append(orjson.loads(v))
    return sig, dlq, rp.skipped


def at(ms: int) -> str:
    from gatewatch.processors.timefmt import format_ts
    return format_ts(ms)


def series_values(sig, name, cohort="baseline"):
    return {k[2]: v["value"] for k, v in sig.items() if k[0] == name and k[1] == cohort}


@pytest.mark.parametrize("how", ["proto", "json"])
def test_cumulative_counter_rate_and_resets(policy, how):
    s0, s1 = START_MS, START_MS + 25_000
    # cumulative totals; the process restarts (new start time) at +25 s, then the count goes down
    # without a new start time (another kind of reset)
    pts = [(s0, s0 + 10_000, 100), (s0, s0 + 20_000, 250), (s1, s0 + 30_000, 30), (s1, s0 + 40_000, 80),
           (s1, s0 + 50_000, 5)]
    envs = [envelope("otlp_metrics", i, encode(export([counter("payments_declined_total", [p])]), how), p[1])
            for i, p in enumerate(pts)]
    sig, dlq, skipped = replay(policy, envs)
    assert not dlq
    inc = series_values(sig, "declines")
    # the 1m window at +60 s holds every increment: 100 + 150 + 30 (restart) + 50 + 5 (reset)
    assert inc[at(s0 + 60_000)] == 335
    assert series_values(sig, "declines_per_s")[at(s0 + 60_000)] == pytest.approx(335 / 60)
    # per step: each export's increment lands in the step its interval ends in
    assert inc[at(s0 + 20_000)] == 250


def test_delta_counter_counts_as_it_comes_and_labels_select(policy):
    pts = [(START_MS + i * STEP, START_MS + (i + 1) * STEP, 7) for i in range(3)]
    eu = counter("payments_declined_total", pts, cumulative=False, attrs=[kv("region", "eu")])
    us = counter("payments_declined_total", pts, cumulative=False, attrs=[kv("region", "us")])
    envs = [envelope("otlp_metrics", 0, encode(export([eu, us]), "proto"), START_MS + 3 * STEP)]
    sig, dlq, _ = replay(policy, envs)
    assert not dlq
    assert series_values(sig, "declines")[at(START_MS + 3 * STEP)] == 42
    assert series_values(sig, "eu_declines")[at(START_MS + 3 * STEP)] == 21


def test_gauges_and_non_monotonic_sums(policy):
    depth = gauge("orders_queue_depth", [(START_MS + 1000, 40.0), (START_MS + 5000, 120.0), (START_MS + 9000, 60.0)])
    active = counter("http.server.active_requests", [(START_MS, START_MS + 9500, 12)], monotonic=False)
    envs = [envelope("otlp_metrics", 0, encode(export([depth, active]), "json"), START_MS + 9500)]
    sig, dlq, _ = replay(policy, envs)
    assert series_values(sig, "queue_depth")[at(START_MS + STEP)] == 120.0
    assert series_values(sig, "inflight")[at(START_MS + STEP)] == 12


def _explicit(points, name="http.server.request.duration", unit="s", attrs=(("http.response.status_code", 200),),
              cumulative=True, bounds=(0.1, 0.5, 1.0)):
    t = pb.AGGREGATION_TEMPORALITY_CUMULATIVE if cumulative else pb.AGGREGATION_TEMPORALITY_DELTA
    return pb.Metric(name=name, unit=unit, histogram=pb.Histogram(aggregation_temporality=t, data_points=[
        pb.HistogramDataPoint(start_time_unix_nano=ns(START_MS), time_unix_nano=ns(t_), count=sum(c),
                              bucket_counts=c, explicit_bounds=list(bounds), attributes=[kv(k, v) for k, v in attrs])
        for t_, c in points]))


def test_histogram_with_empty_buckets_gives_exact_counts(policy):
    ok = _explicit([(START_MS + STEP, [0, 0, 0, 0]), (START_MS + 2 * STEP, [0, 10, 0, 0]),
                    (START_MS + 3 * STEP, [0, 10, 0, 0])])
    err = _explicit([(START_MS + 2 * STEP, [0, 0, 0, 2])], attrs=(("http.response.status_code", 503),))
    envs = [envelope("otlp_metrics", 0, encode(export([ok, err]), "proto"), START_MS + 3 * STEP)]
    sig, dlq, _ = replay(policy, envs)
    assert not dlq
    e = at(START_MS + 3 * STEP)
    assert sig[("err5xx_rate", "baseline", e)]["samples"] == 12
    assert sig[("err5xx_rate", "baseline", e)]["value"] == pytest.approx(2 / 12)
    p95 = sig[("latency_p95_ms", "baseline", e)]["value"]
    assert 1000 * 0.995 <= p95 <= 1000 * 1.005  # the +Inf bucket's errors sit at the last bound


def test_exponential_histogram(policy):
    # scale 0: bucket i covers (2**i, 2**(i+1)] ms; 90 requests in (64, 128], 10 in (512, 1024]
    counts = [0] * 10
    counts[6], counts[9] = 90, 10
    dp = pb.ExponentialHistogramDataPoint(
        start_time_unix_nano=ns(START_MS), time_unix_nano=ns(START_MS + STEP), count=100, scale=0, zero_count=0,
        positive=pb.ExponentialHistogramDataPoint.Buckets(offset=0, bucket_counts=counts),
        attributes=[kv("http.response.status_code", 200)])
    m = pb.Metric(name="http.server.request.duration", unit="ms", exponential_histogram=pb.ExponentialHistogram(
        aggregation_temporality=pb.AGGREGATION_TEMPORALITY_CUMULATIVE, data_points=[dp]))
    sig, dlq, _ = replay(policy, [envelope("otlp_metrics", 0, encode(export([m]), "json"), START_MS + STEP)])
    s = sig[("latency_p95_ms", "baseline", at(START_MS + STEP))]
    assert s["samples"] == 100 and 512 * 0.995 <= s["value"] <= 1024 * 1.005


def test_declared_histogram_quantile(policy):
    m = _explicit([(START_MS + STEP, [80, 15, 5, 0])], name="db.client.duration", unit="ms", attrs=(),
                  bounds=(5, 20, 50))
    sig, _, _ = replay(policy, [envelope("otlp_metrics", 0, encode(export([m]), "proto"), START_MS + STEP)])
    v = series_values(sig, "db_p95_ms")[at(START_MS + STEP)]
    # the rank sits between the last observation of (5, 20] and the first of (20, 50]: the signal
    # is between those two, each at its bucket's mid-slice (19.5 and 23), within 0.5 %
    assert 19.5 * 0.995 <= v <= 23 * 1.005


def test_no_service_name_goes_to_the_dlq_with_its_reason(policy):
    m = gauge("orders_queue_depth", [(START_MS + 1000, 1.0)])
    sig, dlq, _ = replay(policy, [envelope("otlp_metrics", 0, encode(export([m], service=None), "proto"), START_MS)])
    assert [d["reason"] for d in dlq] == ["missing_field:service.name"]
    # with a record key the key names the service, as for traces
    sig, dlq, _ = replay(policy, [envelope("otlp_metrics", 0, encode(export([m], service=None), "json"), START_MS,
                                           key="checkout")])
    assert not dlq and series_values(sig, "queue_depth")


def test_what_is_skipped_is_counted(policy):
    summary = pb.Metric(name="rpc.duration", summary=pb.Summary(data_points=[
        pb.SummaryDataPoint(time_unix_nano=ns(START_MS), count=1)]))
    other = gauge("jvm.memory.used", [(START_MS, 1.0)])
    req_summary = pb.Metric(name="orders_queue_depth", summary=pb.Summary())
    envs = [envelope("otlp_metrics", 0, encode(export([summary, other, req_summary]), "proto"), START_MS)]
    _, dlq, skipped = replay(policy, envs)
    assert not dlq
    assert skipped["undeclared_metric"] == 2 and skipped["otlp_metric:summary"] == 1


def test_per_request_and_preaggregated_input_of_one_service_add_up(policy):
    """The rule: request counts, errors and latency histograms of one (service, cohort, release) are
    sums over every input, per-request samples and pre-aggregated series alike. A service sending
    both for the same requests is counted twice: send each request once."""
    reqs = [{"service": "checkout", "cohort": "baseline", "status": 500 if i < 3 else 200, "latency_ms": 50,
             "ts": START_MS + 1000 + i} for i in range(10)]
    hist = _explicit([(START_MS + STEP, [20, 0, 0, 0])])
    envs = [envelope(topics.topic("metrics"), 0, orjson.dumps(reqs), START_MS + 2000),
            envelope("otlp_metrics", 0, encode(export([hist]), "proto"), START_MS + STEP)]
    sig, dlq, _ = replay(policy, envs)
    s = sig[("err5xx_rate", "baseline", at(START_MS + STEP))]
    assert not dlq and s["samples"] == 30 and s["value"] == pytest.approx(3 / 30)


# ---- prometheus-kafka-adapter on gw.metrics ----------------------------------------------------

def prom(i, name, labels, value, ms):
    return envelope(topics.topic("metrics"), i, adapter_sample(name, labels, value, ms), ms)


def test_prometheus_counter_reset_stale_marker_and_bad_values(policy):
    lab = {"job": "checkout", "instance": "a:1", "code": "200", "handler": "/pay"}
    err = {**lab, "code": "500"}
    vals = [(0, "10", "0"), (1, "40", "3"), (2, "5", "1"), (3, "NaN", "NaN")]  # a restart at the 3rd scrape
    envs = []
    for k, ok, bad in vals:
        envs += [prom(len(envs), "http_requests_total", lab, ok, START_MS + k * STEP),
                 prom(len(envs) + 1, "http_requests_total", err, bad, START_MS + k * STEP)]
    envs.append(prom(len(envs), "http_requests_total", {**lab, "code": "OK"}, "1", START_MS + 3 * STEP))
    envs.append(prom(len(envs), "http_requests_total", lab, "+Inf", START_MS + 3 * STEP))
    sig, dlq, skipped = replay(policy, envs)
    assert sorted(d["reason"] for d in dlq) == ["bad_value:labels.code", "bad_value:value"]
    assert skipped["stale_sample"] == 2
    s = sig[("err5xx_rate", "stable", at(START_MS + 3 * STEP))]
    assert s["samples"] == (30 + 3) + (5 + 1) and s["value"] == pytest.approx(4 / 39)


def test_prometheus_label_mapping_and_skips(policy):
    mapped = compose([("test.yml", POLICY), ("prom.yml", "prometheus: {service_label: service, status_label: status}")])
    lab = {"service": "search", "status": "200", "instance": "a:1"}
    envs = [prom(0, "http_requests_total", lab, "1", START_MS), prom(1, "http_requests_total", lab, "9", START_MS + STEP),
            prom(2, "http_request_duration_seconds_count", lab, "9", START_MS + STEP),
            prom(3, "go_goroutines", lab, "12", START_MS + STEP),
            envelope(topics.topic("metrics"), 4, b"[]", START_MS + STEP)]
    sig, dlq, skipped = replay(mapped, envs)
    assert not dlq
    assert sig[("request_rate", "stable", at(START_MS + 2 * STEP))]["samples"] == 8
    assert skipped["histogram_count_or_sum"] == 1 and skipped["undeclared_metric"] == 1
    assert skipped["empty_batch"] == 1


def test_declared_gauge_and_counter_from_gw_metrics_trigger_a_rule(policy):
    envs = [envelope(topics.topic("metrics"), i, orjson.dumps({"type": "gauge", "service": "checkout", "cohort": "canary",
                                                               "name": "orders_queue_depth", "value": v,
                                                               "ts": START_MS + i * STEP}), START_MS + i * STEP)
            for i, v in enumerate([10, 50, 150, 20])]
    rp = Replayer(policy, None)
    out = [x for e in clocked(envs) for x in rp.feed(e)] + rp.finish()
    acts = [orjson.loads(v) for t, _k, v in out if t == topics.topic("actions")]
    assert [a["rule"]["id"] for a in acts if a["kind"] == "abort"] == ["queue"]
    sigs = [orjson.loads(v) for t, _k, v in out if t == topics.topic("signals")]
    assert not [s for s in sigs if s["name"] == "orders_queue_depth"]  # it feeds the declared signal instead


def test_an_unknown_signal_lists_the_declared_ones():
    from gatewatch.processors.policy import PolicyError
    with pytest.raises(PolicyError, match="declared here: .*db_p95_ms, declines, .*queue_depth"):
        compose([("test.yml", POLICY), ("bad.yml", "abort: [{when: 'queue_dept > 1', action: pause}]")])


def test_a_prometheus_version_over_128_characters_is_no_release():
    """As for OTLP (otlp_common.cohort_of): the gate record's release is at most 128 characters."""
    from gatewatch.processors.inputs.prometheus import decode_prometheus
    from gatewatch.processors.inputs.samples import InputOptions
    opts = InputOptions(otlp_cohorts={"v" * 200: "canary", "1.5.0": "canary"})
    for version, release in (("1.5.0", "1.5.0"), ("v" * 200, "")):
        out: list = []
        doc = orjson.loads(adapter_sample("http_requests_total", {"job": "checkout", "code": "200",
                                                                   "service_version": version}, "3", START_MS))
        decode_prometheus(doc, None, None, out, opts)
        assert [(p.cohort, p.release) for p in out] == [("canary", release)]
