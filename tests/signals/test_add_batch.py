"""PartitionAggregator.add_batch (msgspec hot loop) is add() record by record: same partials,
same rejections, same watermark, for any mix of records and any batch cut."""
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch.processors.digest import LogHistogram
from gatewatch.processors.partials import PartitionAggregator
from gatewatch.processors.request_batch import add_all
from gatewatch.processors.timefmt import format_ts
from gatewatch.processors.windows import SignalConfig

T0 = 1_800_000_000_000

good_ts = st.one_of(st.integers(-200_000, 400_000).map(lambda d: T0 + d),            # epoch ms
                   st.integers(-200_000, 400_000).map(lambda d: format_ts(T0 + d)))  # canonical RFC 3339
odd_ts = st.one_of(st.integers(-200_000, 400_000).map(lambda d: format_ts(T0 + d)[:19] + "Z"),
                   st.integers(-200, 400).map(lambda d: (T0 // 1000) + d),          # epoch seconds
                   st.sampled_from(["2027-01-15T08:00:00.00Z", "2027-01-15T08:00:00.0x0Z", "nope", "", None,
                                    "9500-01-01T00:00:00.000Z", "1900-01-01T00:00:00.000Z",
                                    "1972-01-01T00:00:00.000Z"]),
                   st.floats(allow_nan=False, allow_infinity=False))
GOOD = {"service": st.sampled_from(["svc-a", "svc-b", "ü"]),
        "status": st.sampled_from([200, 204, 499, 500, 503, 599]),
        "latency_ms": st.one_of(st.floats(0, 1e4, allow_nan=False), st.integers(0, 10**6),
                                st.sampled_from([0, 1e-12, -0.0])),
        "ts": good_ts,
        "cohort": st.sampled_from(["baseline", "canary", None]),
        "route": st.sampled_from(["/a", "", None])}
ODD = {"service": st.sampled_from(["", None, 3, "a b", "-lead", "x" * 129, "svc\n", "svc-a\u0301"]),
       "status": st.one_of(st.integers(90, 610), st.sampled_from([True, "200", 200.0, None])),
       "latency_ms": st.sampled_from([-1, -0.5, "12", None, True]),
       "ts": odd_ts,
       "cohort": st.sampled_from(["", 3]),
       "route": st.sampled_from([7, []]),
       "type": st.sampled_from(["request", None, "gauge"])}


@st.composite
def records(draw):
    kind = draw(st.sampled_from(["good"] * 6 + ["odd", "gauge", "raw", "array"]))
    if kind == "raw":
        good = b'{"service":"a","status":200,"latency_ms":5,"ts":1800000000000'
        return draw(st.sampled_from([b"", b"{", b"[]", b"null", b"42", b'{"service":"\\ud800"}',
                                     b'{"service":"a","status":200,"latency_ms":1e400,"ts":1800000000000}',
                                     # msgspec and orjson must agree on what is malformed
                                     b'{"service":"\xff","status":200,"latency_ms":5,"ts":1800000000000}',
                                     good + b',"x":"\xff"}', good + b',"x":1e400}', good + b',"typ\xff":1}',
                                     good + b',"x":' + b"[" * 1100 + b"]" * 1100 + b"}",
                                     good + b',"trace_id":"abc"}', good + b',"type":1e400}', b"\xef\xbb\xbf" + good + b"}"]))
    if kind == "gauge":
        return orjson.dumps({"type": "gauge", "service": "svc-a", "name": "invariant",
                             "value": draw(st.integers(0, 3)), "ts": draw(good_ts)})
    d = {f: draw(strat) for f, strat in GOOD.items() if f in ("service", "status", "latency_ms", "ts")
         or draw(st.booleans())}
    if kind == "odd":  # one field absent or odd: the general path decides
        f = draw(st.sampled_from(sorted(ODD)))
        if draw(st.booleans()) and f in d:
            del d[f]
        else:
            d[f] = draw(ODD[f])
    return orjson.dumps([d, d]) if kind == "array" else orjson.dumps(d)


# A small max_future so that record timestamps reject some samples as "future".
CONFIG = SignalConfig(max_future_ms=100_000)
kafka_ts = st.one_of(st.none(), st.integers(-200_000, 400_000).map(lambda d: T0 + d), st.just(-1))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(records(), kafka_ts,
                          st.sampled_from([b"svc-k", None])), min_size=1, max_size=80),
       st.lists(st.integers(1, 60), max_size=4))
def test_add_batch_equals_add_loop(recs, cuts):
    cfg = CONFIG
    one, many = PartitionAggregator("metrics", 0, cfg), PartitionAggregator("metrics", 0, cfg)
    expected = []
    for off, (v, kts, key) in enumerate(recs):
        rej = one.add(off, key, v, kts)
        if rej is not None:
            expected.append((off, rej))
    got, start = [], 0
    for end in sorted({min(c, len(recs)) for c in cuts} | {len(recs)}):
        part = recs[start:end]
        res = many.add_batch(list(range(start, end)), [k for _v, _t, k in part], [v for v, _t, _k in part],
                             [t for _v, t, _k in part])
        got.extend((start + i, r) for i, r in res)
        start = end
    assert got == expected
    assert many.max_event_ms == one.max_event_ms and many.origin_ms == one.origin_ms
    assert many.flush() == one.flush()


def test_boundaries_match_add():
    """Exactly at the watermark (kept) and exactly max_future past the record time (kept)."""
    lateness, fut = CONFIG.lateness_ms, CONFIG.max_future_ms
    rows = [(T0, T0), (T0 - lateness, T0), (T0 - lateness - 1, T0), (T0 + fut, T0), (T0 + fut + 1, T0)]
    vals = [orjson.dumps({"service": "s", "status": 500, "latency_ms": 3, "ts": ts}) for ts, _k in rows]
    one, many = PartitionAggregator("metrics", 0, CONFIG), PartitionAggregator("metrics", 0, CONFIG)
    want = [(i, r) for i, (v, (_ts, k)) in enumerate(zip(vals, rows)) if (r := one.add(i, None, v, k)) is not None]
    got = many.add_batch(list(range(len(rows))), [None] * len(rows), vals, [k for _t, k in rows])
    assert [r.reason for _i, r in got] == ["late", "future"] and got == want
    assert many.flush() == one.flush()


def test_replay_envelopes_never_raise_and_match_the_dict_path():
    """read_envelopes (msgspec) on lines the old orjson reader handled: same envelopes, no crash."""
    from collections import Counter

    from gatewatch.streams.app.replay import envelope_from_dict, read_envelopes
    good = b'{"topic":"gw.metrics","partition":0,"offset":1,"ts":5,"key":"k","payload":"{}"'
    lines = [good + b"}", good + b',"tstype":"create","broker":0}', b'{"partition":"1","offset":2}',
             b'{"partition":0,"offset":3,"payload":"\xff"}', good + b',"h":' + b"[" * 1100 + b"]" * 1100 + b"}",
             b'{"partition":0,"offset":4,"key":7,"payload":{"a":1}}', b"", b"  ", b"[1]", b"nope",
             b'{"partition":0}', b'{"partition":0,"offset":1e400}']
    bad = Counter()
    got = list(read_envelopes(lines, bad))
    want = []
    for line in lines:
        try:
            want.append(envelope_from_dict(orjson.loads(line)))
        except Exception:
            pass
    assert got == want and bad["bad_envelope"] == len([x for x in lines if x.strip()]) - len(want)
    # read 1024 lines at a time: batches of good lines only, and batches with a bad one somewhere
    many = [good + b"}"] * 1500 + lines + [good + b"}"] * 1500
    bad = Counter()
    assert list(read_envelopes(iter(many), bad)) == [want[0]] * 1500 + want + [want[0]] * 1500
    assert bad["bad_envelope"] == len([x for x in lines if x.strip()]) - len(want)


def test_timestamp_strings_outside_the_fast_range_go_to_the_general_path():
    rows = ["9500-01-01T00:00:00.000Z", "1900-01-01T00:00:00.000Z", "1972-01-01T00:00:00.000Z", T0]
    for kts in (None, T0):
        vals = [orjson.dumps({"service": "s", "status": 200, "latency_ms": 3, "ts": ts}) for ts in rows]
        one, many = PartitionAggregator("metrics", 0, CONFIG), PartitionAggregator("metrics", 0, CONFIG)
        want = [(i, r) for i, v in enumerate(vals) if (r := one.add(i, None, v, kts)) is not None]
        assert many.add_batch(list(range(len(vals))), [None] * len(vals), vals, [kts] * len(vals)) == want
        assert (many.max_event_ms, many.origin_ms, many.flush()) == (one.max_event_ms, one.origin_ms, one.flush())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(records(), st.one_of(kafka_ts, st.just(0)), st.sampled_from(["svc-k", None]),
                          st.sampled_from(["payload"] * 4 + ["b64", "none"])), min_size=1, max_size=60))
def test_replay_runs_equal_add_loop(recs):
    """replay's columns (payload strings decoded as they are; keys, offsets and bytes read lazily)
    give add()'s rejections and partial, record by record."""
    import base64

    from gatewatch.streams.app.replay import Envelope, _add_run
    envs = []
    for off, (v, kts, key, form) in enumerate(recs):
        text = v.decode("utf-8", "replace")
        if form == "b64":
            envs.append(Envelope(partition=0, offset=off, ts=kts, key=key, payload_b64=base64.b64encode(v).decode()))
        else:
            envs.append(Envelope(partition=0, offset=off, ts=kts, key=key, payload=None if form == "none" else text))
    one, many = PartitionAggregator("metrics", 0, CONFIG), PartitionAggregator("metrics", 0, CONFIG)
    want = []
    for i, e in enumerate(envs):
        value = base64.b64decode(e.payload_b64) if e.payload_b64 is not None else \
            None if e.payload is None else e.payload.encode()
        rej = one.add(e.offset, None if e.key is None else e.key.encode(), value,
                      e.ts if e.ts is not None and e.ts > 0 else None)
        if rej is not None:
            want.append((i, rej, value))
    rejects, values = _add_run(many, envs)
    assert [(i, r, values[i]) for i, r in rejects] == want
    assert many.max_event_ms == one.max_event_ms and many.flush() == one.flush()


def hist_of(values) -> LogHistogram:
    h = LogHistogram()
    for v in values:
        h.add(v)
    return h


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(1e-12, 1e7, allow_nan=False), st.integers(1, 10**6),
                          st.sampled_from([0.0, -0.0, 1e-9, 1.0000000001e-9, -3.5, 5e-324])), max_size=200),
       st.lists(st.floats(1e-3, 1e4), max_size=20))
def test_add_all_equals_add_one_by_one(xs, before):
    """request_batch.add_all (counted in C for positive lists, by add() otherwise) lands every value in the
    bucket add() puts it in, onto a histogram that already holds some."""
    one, many = hist_of(before), hist_of(before)
    for x in xs:
        one.add(x)
    add_all(many, xs)
    assert (many.pos, many.neg, many.zero) == (one.pos, one.neg, one.zero)
    positive = [x for x in xs if x > 1e-9]
    one, many = LogHistogram(), LogHistogram()
    for x in positive:
        one.add(x)
    add_all(many, positive)
    assert (many.pos, many.neg, many.zero) == (one.pos, one.neg, one.zero)


def test_scan_sources_reads_batches_like_lines(tmp_path):
    """scan_sources decodes 1024 lines at a time: the sources of the envelopes a line-by-line read
    finds (a line that names a partition without being an envelope names no source: see
    tests/signals/test_replay_sources.py)."""
    from collections import Counter

    from gatewatch.streams.app.replay import read_envelopes, scan_sources, sources_of

    odd = [b'{"topic":"gw.rum","partition":"3","offset":1}', b'{"topic":"gw.cdc","partition":2}', b"",
           b"nope", b'{"topic":"gw.metrics","partition":9,"offset":1,"payload":"\xff"}', b"[1]"]
    good = [b'{"topic":"gw.metrics","partition":%d,"offset":%d}' % (i % 3, i) for i in range(3000)]
    for lines in (good, good[:1500] + odd + good[1500:], odd):
        path = tmp_path / "in.json"
        path.write_bytes(b"\n".join(lines) + b"\n")
        assert scan_sources([str(path)]) == sources_of(read_envelopes(lines, Counter()))
    assert scan_sources([str(path)]) == ["rum:3"]


@given(st.lists(st.integers(-50, 50), max_size=200), st.dictionaries(st.integers(-50, 50), st.integers(1, 9)))
def test_the_python_count_loop_counts_as_collections_does(xs, start):
    from collections import _count_elements

    from gatewatch.processors.request_batch import count_into
    a, b = dict(start), dict(start)
    _count_elements(a, xs)
    count_into(b, xs)
    assert a == b and list(a) == list(b)
