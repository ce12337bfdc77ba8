"""Pre-aggregated inputs as real fleets send them: several replicas of a service, exports mixing
resources, points without a value or a status, two scrapes in one step, histograms with no finite
bound, declared metrics in seconds. Each case failed before its fix (wrong counts, a whole export in
the DLQ, or a latency of 0 ms); OTLP in both encodings the Collector's kafka exporter writes."""
import pytest
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb

from gatewatch.streams.runtime.policy_files import compose
from tests.inputs.metrics_gen import START_MS
from tests.inputs.test_preaggregated import (
    POLICY,
    STEP,
    _explicit,
    at,
    counter,
    encode,
    envelope,
    export,
    kv,
    ns,
    prom,
    replay,
    series_values,
)

OK = (("http.response.status_code", 200),)


@pytest.fixture(scope="module")
def policy():
    return compose([("test.yml", POLICY)])


def pod_export(instance: str, started_ms: int, t_ms: int, total: int, how: str) -> bytes:
    """One replica's cumulative request histogram: `total` requests so far, all in (0.1, 0.5] s."""
    dp = pb.HistogramDataPoint(start_time_unix_nano=ns(started_ms), time_unix_nano=ns(t_ms), count=total,
                               bucket_counts=[0, total, 0, 0], explicit_bounds=[0.1, 0.5, 1.0],
                               attributes=[kv("http.response.status_code", 200)])
    m = pb.Metric(name="http.server.request.duration", unit="s", histogram=pb.Histogram(
        aggregation_temporality=pb.AGGREGATION_TEMPORALITY_CUMULATIVE, data_points=[dp]))
    req = export([m])
    req.resource_metrics[0].resource.attributes.append(kv("service.instance.id", instance))
    return encode(req, how)


@pytest.mark.parametrize("how", ["proto", "json"])
def test_each_replica_of_a_service_is_its_own_series(policy, how):
    """Two pods export the same metric and attributes: per step, pod a serves 10 requests and pod b
    100, both up for an hour. Merged into one series, every alternation looked like a reset and
    counted a lifetime total."""
    envs = []
    for i in range(6):
        t = START_MS + i * STEP
        envs.append(envelope("otlp_metrics", 2 * i, pod_export("pod-a", START_MS - 3_600_000, t, 5000 + 10 * i, how), t))
        envs.append(envelope("otlp_metrics", 2 * i + 1, pod_export("pod-b", START_MS - 3_500_000, t, 9000 + 100 * i, how), t))
    sig, dlq, _ = replay(policy, envs)
    assert not dlq
    for i in range(1, 6):  # the first export of each pod is its baseline
        assert sig[("request_rate", "baseline", at(START_MS + i * STEP))]["samples"] == 110 * i


def test_a_request_point_without_a_status(policy):
    """error.type without a status: it failed before a response (status 500, as for traces);
    neither: skipped and counted. The export's other points count either way."""
    ok = _explicit([(START_MS + STEP, [0, 90, 0, 0])])
    failed = _explicit([(START_MS + STEP, [0, 0, 0, 5])], attrs=(("error.type", "timeout"),))
    unknown = _explicit([(START_MS + STEP, [0, 7, 0, 0])], attrs=(("http.route", "/pay"),))
    envs = [envelope("otlp_metrics", 0, encode(export([ok, failed, unknown]), "proto"), START_MS + STEP)]
    sig, dlq, skipped = replay(policy, envs)
    s = sig[("err5xx_rate", "baseline", at(START_MS + STEP))]
    assert not dlq and s["samples"] == 95 and s["value"] == pytest.approx(5 / 95)
    assert skipped["no_http_status"] == 1


@pytest.mark.parametrize("how", ["proto", "json"])
def test_a_resource_without_service_name_is_refused_alone(policy, how):
    """The Collector's batch processor puts several resources in one record: the one without a
    service.name is refused (gw.dlq, partly counted), the others count; a resource whose metrics
    are all undeclared is only skipped (nothing of it would be read)."""
    app = _explicit([(START_MS + STEP, [0, 10, 0, 0])])
    req = export([app])
    nameless = export([counter("payments_declined_total", [(START_MS, START_MS + STEP, 3)])], service=None)
    host = export([counter("system.cpu.time", [(START_MS, START_MS + STEP, 3)])], service=None)
    req.resource_metrics.extend([*nameless.resource_metrics, *host.resource_metrics])
    sig, dlq, skipped = replay(policy, [envelope("otlp_metrics", 0, encode(req, how), START_MS + STEP)])
    assert [d["reason"] for d in dlq] == ["resource:missing_field:service.name"]
    assert "1 of 3 resources refused" in dlq[0]["detail"] and "do not re-feed" in dlq[0]["detail"]
    assert sig[("request_rate", "baseline", at(START_MS + STEP))]["samples"] == 10
    assert skipped["undeclared_metric"] == 1
    # alone in its record, the nameless resource is the record's rejection, as before
    _, dlq, _ = replay(policy, [envelope("otlp_metrics", 0, encode(nameless, how), START_MS + STEP)])
    assert [d["reason"] for d in dlq] == ["missing_field:service.name"]


@pytest.mark.parametrize("how", ["proto", "json"])
def test_a_point_without_a_value_is_skipped_not_a_reset(policy, how):
    """NO_RECORDED_VALUE (flag 1: the Collector's Prometheus receiver marks a stale series so) has
    no value: read as 0 it looked like a reset, and the next point counted the lifetime total."""
    old = START_MS - 3_600_000
    pts = [(START_MS + i * STEP, 100_000 + 10 * i) for i in range(5)]
    dps = [pb.NumberDataPoint(start_time_unix_nano=ns(old), time_unix_nano=ns(t), as_int=v) for t, v in pts]
    dps[2] = pb.NumberDataPoint(start_time_unix_nano=ns(old), time_unix_nano=ns(pts[2][0]), flags=1)
    m = pb.Metric(name="payments_declined_total", sum=pb.Sum(
        aggregation_temporality=pb.AGGREGATION_TEMPORALITY_CUMULATIVE, is_monotonic=True, data_points=dps))
    envs = [envelope("otlp_metrics", 0, encode(export([m]), how), pts[-1][0])]
    sig, dlq, skipped = replay(policy, envs)
    assert not dlq and skipped["no_value"] == 1
    assert series_values(sig, "declines")[at(pts[-1][0])] == 40  # 4 increments of 10 after the baseline
    # a flagged histogram point (zero counts) is no reset either
    h = _explicit([(START_MS + i * STEP, [0, 5000 + 5 * i, 0, 0]) for i in range(4)])
    for dp in h.histogram.data_points:
        dp.start_time_unix_nano = ns(old)
    h.histogram.data_points[2].flags = 1
    h.histogram.data_points[2].ClearField("bucket_counts")
    h.histogram.data_points[2].count = 0
    sig, dlq, skipped = replay(policy, [envelope("otlp_metrics", 0, encode(export([h]), how), START_MS + 3 * STEP)])
    assert not dlq and skipped["no_value"] == 1
    assert sig[("request_rate", "baseline", at(START_MS + 3 * STEP))]["samples"] == 15


def test_non_finite_values_are_counted_as_skipped(policy):
    nan = pb.Metric(name="orders_queue_depth", gauge=pb.Gauge(data_points=[
        pb.NumberDataPoint(time_unix_nano=ns(START_MS + 1000), as_double=float("nan")),
        pb.NumberDataPoint(time_unix_nano=ns(START_MS + 2000), as_double=float("inf")),
        pb.NumberDataPoint(time_unix_nano=ns(START_MS + 3000), as_double=7.0)]))
    sig, dlq, skipped = replay(policy, [envelope("otlp_metrics", 0, encode(export([nan]), "proto"), START_MS + 3000)])
    assert not dlq and skipped["no_value"] == 1 and skipped["not_finite"] == 1
    assert series_values(sig, "queue_depth")[at(START_MS + STEP)] == 7.0


def test_a_histogram_point_without_buckets_counts_its_requests_without_latency(policy):
    """OTLP allows a point with a count and no buckets (then no bounds either); Prometheus a
    histogram with only le="+Inf". Where its observations are is unknown: no latency, not 0 ms."""
    dp = pb.HistogramDataPoint(time_unix_nano=ns(START_MS + STEP), count=12, attributes=[kv(*OK[0])])
    m = pb.Metric(name="http.server.request.duration", unit="s", histogram=pb.Histogram(
        aggregation_temporality=pb.AGGREGATION_TEMPORALITY_DELTA, data_points=[dp]))
    sig, dlq, _ = replay(policy, [envelope("otlp_metrics", 0, encode(export([m]), "json"), START_MS + STEP)])
    e = at(START_MS + STEP)
    assert not dlq and sig[("request_rate", "baseline", e)]["samples"] == 12
    assert sig[("latency_p95_ms", "baseline", e)]["value"] is None
    lab = {"job": "checkout", "instance": "a:1", "handler": "/pay", "code": "200"}
    envs = []
    for k, total in enumerate([0, 10, 20]):
        t = START_MS + k * STEP
        envs += [prom(len(envs), "http_requests_total", lab, str(total), t),
                 prom(len(envs) + 1, "http_request_duration_seconds_bucket", {**lab, "le": "+Inf"}, str(total), t)]
    sig, dlq, _ = replay(policy, envs)
    e = at(START_MS + 2 * STEP)
    assert not dlq and sig[("request_rate", "stable", e)]["samples"] == 20
    assert sig[("latency_p95_ms", "stable", e)]["value"] is None


def test_two_scrapes_in_one_step_keep_their_buckets_apart(policy):
    """A 5 s scrape interval and a 10 s step: each scrape's `le` series make one histogram (before,
    the two scrapes' bounds interleaved and were subtracted across)."""
    lab = {"job": "checkout", "instance": "a:1", "handler": "/pay", "code": "200"}
    envs = []
    for t, fast, slow in [(START_MS, 0, 0), (START_MS + 5000, 10, 0), (START_MS + 10_000, 10, 10)]:
        envs.append(prom(len(envs), "http_requests_total", lab, str(fast + slow), t))
        for le, c in (("0.1", fast), ("0.5", fast), ("1", fast + slow), ("+Inf", fast + slow)):
            envs.append(prom(len(envs), "http_request_duration_seconds_bucket", {**lab, "le": le}, str(c), t))
    sig, dlq, _ = replay(policy, envs)
    p99 = sig[("latency_p99_ms", "stable", at(START_MS + STEP))]
    # rank 0.99 * 19: between observations 19 and 20, the slow scrape's last two, at 925 and 975 ms
    # (mid-slices of (500, 1000]); before: 500.2, the scrapes' buckets subtracted across
    assert not dlq and p99["samples"] == 20 and 925 * 0.995 <= p99["value"] <= 975 * 1.005


def test_one_observation_per_export_sits_mid_bucket(policy):
    """Nine fast requests and one in (0.5, 1] s per 10 s export: histogram_quantile's p95 over 5
    minutes is 750 ms. One observation per export used to sit at its bucket's top (997 ms, over
    the default 800 ms rule); at mid-bucket it is 750, within the log histogram's 0.5 %."""
    pts = [(START_MS + i * STEP, [9 * i, 0, i, 0]) for i in range(1, 31)]
    m = _explicit(pts, bounds=(0.1, 0.5, 1.0))
    sig, dlq, _ = replay(policy, [envelope("otlp_metrics", 0, encode(export([m]), "proto"), START_MS + 30 * STEP)])
    p95 = sig[("latency_p95_ms", "baseline", at(START_MS + 30 * STEP))]["value"]
    assert not dlq and abs(p95 - 750) <= 750 * 0.01


def test_a_declared_histogram_in_seconds_gives_milliseconds(policy):
    """db_p95_ms declares unit ms; the SDK exports db.client.duration in s (semantic conventions)."""
    m = _explicit([(START_MS + STEP, [80, 15, 5, 0])], name="db.client.duration", unit="s", attrs=(),
                  bounds=(0.005, 0.02, 0.05))
    sig, _, _ = replay(policy, [envelope("otlp_metrics", 0, encode(export([m]), "proto"), START_MS + STEP)])
    v = series_values(sig, "db_p95_ms")[at(START_MS + STEP)]
    assert 19.5 * 0.995 <= v <= 23 * 1.005  # as test_preaggregated's, whose bounds are in ms


def test_an_exponential_request_histogram_in_seconds_gives_milliseconds(policy):
    counts = [0] * 10
    counts[6], counts[9] = 90, 10  # scale 0, offset -10, unit s: 90 in (1/16, 1/8] s, 10 in (1/2, 1] s
    dp = pb.ExponentialHistogramDataPoint(
        start_time_unix_nano=ns(START_MS), time_unix_nano=ns(START_MS + STEP), count=100, scale=0, zero_count=0,
        positive=pb.ExponentialHistogramDataPoint.Buckets(offset=-10, bucket_counts=counts), attributes=[kv(*OK[0])])
    m = pb.Metric(name="http.server.request.duration", unit="s", exponential_histogram=pb.ExponentialHistogram(
        aggregation_temporality=pb.AGGREGATION_TEMPORALITY_CUMULATIVE, data_points=[dp]))
    for how in ("proto", "json"):
        sig, dlq, _ = replay(policy, [envelope("otlp_metrics", 0, encode(export([m]), how), START_MS + STEP)])
        s = sig[("latency_p95_ms", "baseline", at(START_MS + STEP))]
        assert not dlq and s["samples"] == 100 and 500 * 0.995 <= s["value"] <= 1000 * 1.005


def test_an_exponential_histogram_going_to_a_finer_scale_counts_only_what_is_new(policy):
    """SDKs downscale (merge buckets) as they go; going finer, with the same start time, counted the
    whole cumulative total again. The delta is taken at the earlier, coarser scale."""
    def point(t_ms, scale, offset, counts):
        return pb.ExponentialHistogramDataPoint(
            start_time_unix_nano=ns(START_MS - 3_600_000), time_unix_nano=ns(t_ms), count=sum(counts), scale=scale,
            positive=pb.ExponentialHistogramDataPoint.Buckets(offset=offset, bucket_counts=counts),
            attributes=[kv(*OK[0])])
    # scale 0: (64, 128] ms is index 6. Scale 1 splits it into indexes 12 and 13.
    pts = [point(START_MS + STEP, 0, 6, [1000]), point(START_MS + 2 * STEP, 0, 6, [1010]),
           point(START_MS + 3 * STEP, 1, 12, [505, 525])]
    m = pb.Metric(name="http.server.request.duration", unit="ms", exponential_histogram=pb.ExponentialHistogram(
        aggregation_temporality=pb.AGGREGATION_TEMPORALITY_CUMULATIVE, data_points=pts))
    sig, dlq, _ = replay(policy, [envelope("otlp_metrics", 0, encode(export([m]), "proto"), START_MS + 3 * STEP)])
    e = at(START_MS + 3 * STEP)
    assert not dlq and sig[("request_rate", "baseline", e)]["samples"] == 10 + 20  # not 10 + 1030
    assert 64 * 0.995 <= sig[("latency_p95_ms", "baseline", e)]["value"] <= 128 * 1.005


def test_replicas_with_the_same_resource_are_told_apart_by_their_start(policy):
    """SDKs set no service.instance.id by default: two processes then send identical resources. A
    cumulative series counts from its start time, so each process is its own series (before: one
    pod dropped as a retry when both exported at the same t, a lifetime total counted when not)."""
    envs = []
    for i in range(6):
        for pod, (started, base, per_step, lag) in enumerate([(3_600_000, 5000, 10, 0), (3_500_000, 9000, 100, 1000)]):
            t = START_MS + i * STEP + lag
            dp = pb.HistogramDataPoint(start_time_unix_nano=ns(START_MS - started), time_unix_nano=ns(t),
                                       count=base + per_step * i, bucket_counts=[0, base + per_step * i, 0, 0],
                                       explicit_bounds=[0.1, 0.5, 1.0], attributes=[kv(*OK[0])])
            m = pb.Metric(name="http.server.request.duration", unit="s", histogram=pb.Histogram(
                aggregation_temporality=pb.AGGREGATION_TEMPORALITY_CUMULATIVE, data_points=[dp]))
            envs.append(envelope("otlp_metrics", len(envs), encode(export([m]), "proto"), t))
    sig, dlq, _ = replay(policy, envs)
    assert not dlq
    assert sig[("request_rate", "baseline", at(START_MS + 5 * STEP + STEP))]["samples"] == 110 * 5


def test_the_series_identity_is_the_same_in_both_encodings():
    """The Collector's protojson writes a double 1.0 as 1 and NaN as "NaN"; an intValue may be any
    string of digits. The producer part of a series must not depend on the encoding, and an
    attribute no int64 holds must not refuse the export."""
    from collections import Counter

    import orjson
    from google.protobuf.json_format import MessageToDict

    from gatewatch.processors.inputs import InputOptions
    from gatewatch.processors.inputs.otlp_metrics import decode_otlp_metrics
    m = _explicit([(START_MS + STEP, [0, 3, 0, 0])])
    req = export([m])
    for key, value in (("host.cpu.ghz", 1.0), ("weird", float("nan"))):
        req.resource_metrics[0].resource.attributes.append(pb_kv_double(key, value))
    doc = MessageToDict(req)
    for a in doc["resourceMetrics"][0]["resource"]["attributes"]:
        if a["key"] == "host.cpu.ghz":
            a["value"] = {"doubleValue": 1}  # as Go's protojson writes it
        if a["key"] == "weird":
            a["value"] = {"doubleValue": "NaN"}
    opts = InputOptions()
    proto = decode_otlp_metrics(req.SerializeToString(), opts, None, Counter())
    json = decode_otlp_metrics(orjson.dumps(doc), opts, None, Counter())
    assert [p.series for p in proto] == [p.series for p in json] and len(proto) == 1
    doc["resourceMetrics"][0]["resource"]["attributes"].append({"key": "big", "value": {"intValue": "9" * 30}})
    assert len(decode_otlp_metrics(orjson.dumps(doc), opts, None, Counter())) == 1


def pb_kv_double(k, v):
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    return KeyValue(key=k, value=AnyValue(double_value=v))
