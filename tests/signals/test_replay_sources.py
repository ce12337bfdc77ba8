"""`gatewatch replay` waits for exactly the input partitions the feed reads envelopes of: a line
that only names a partition (no offset, a payload that is not UTF-8, not JSON after its topic)
is a skipped line, never a source the signals task waits for to the end of the input."""
from __future__ import annotations

from collections import Counter

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch.streams.app.replay import Replayer, feed_files, read_envelopes, scan_sources, sources_of
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.policy_files import load_policy_dir

from .mixed import mixed_feed

POLICY = load_policy_dir("configs/policies")
NAMES_A_PARTITION = [  # each names a partition no good line has; none is an envelope the feed reads
    b'{"topic":"%s","partition":7}',
    b'{"topic":"%s","partition":8,"offset":1,"payload":"\xff"}',
    b'{"topic":"%s","partition":9,"offset":1,"payload":"x"',
    b'{"topic":"%s","partition":10,"offset":"one"}',
]


def kcat_lines(seed: int, n: int) -> list[bytes]:
    return [orjson.dumps({"topic": topics.topic(t), "partition": p, "offset": o, "ts": kts,
                         "key": None if k is None else k.decode(), "payload": None if raw is None else raw.decode("utf-8", "replace")})
            for t, p, o, k, raw, kts in mixed_feed(seed, n).records]


def replay(lines: list[bytes], path) -> tuple[list, Counter]:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    rp, bad = Replayer(POLICY, None, flush_every=500, sources=scan_sources([str(path)])), Counter()
    return [rec for recs in feed_files(rp, [str(path)], bad) for rec in recs], bad


def test_a_line_naming_a_partition_does_not_hold_the_signals_back(tmp_path):
    good = kcat_lines(4, 3000)
    want, bad = replay(good, tmp_path / "good.json")
    assert want and not bad
    odd = [line % topics.topic("metrics").encode() for line in NAMES_A_PARTITION]
    for at in (0, 1500, len(good)):
        got, bad = replay(good[:at] + odd + good[at:], tmp_path / "odd.json")
        assert got == want  # before the fix: no signal and no decision at all
        assert bad == Counter(bad_envelope=len(odd))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(NAMES_A_PARTITION + [b"", b"nope", b"[1]"]),
                          st.builds(lambda p, o: b'{"topic":"%%s","partition":%d,"offset":%d}' % (p, o),
                                    st.integers(0, 3), st.integers(0, 9))),
                max_size=2500),
       st.sampled_from(["metrics", "rum", "spans"]))
def test_scan_finds_the_sources_of_the_envelopes_the_feed_reads(tmp_path_factory, shapes, logical):
    """Also across scan_sources' batches of 1024 lines, with odd lines anywhere."""
    lines = [shape % topics.topic(logical).encode() if b"%s" in shape else shape for shape in shapes]
    path = tmp_path_factory.mktemp("scan") / "in.json"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    assert scan_sources([str(path)]) == sources_of(read_envelopes(lines, Counter()))


def test_unreadable_lines_are_counted_not_fatal(tmp_path):
    """A payload_b64 that is not base64 stopped replay (and `policy shadow`) with an internal error;
    a negative offset, with a KeyError at the end of input. Each is one skipped line."""
    good = kcat_lines(4, 3000)
    want, _ = replay(good, tmp_path / "good.json")
    metrics = topics.topic("metrics").encode()
    b64 = b'{"topic":"%s","partition":5,"offset":0,"ts":1796637600000,"key":null,"payload_b64":"abc"}' % metrics
    negative = b'{"topic":"%s","partition":3,"offset":-1,"ts":1796637600000,"key":null,"payload":"{}"}' % metrics
    got, bad = replay(good + [negative], tmp_path / "neg.json")
    assert got == want and bad == Counter(bad_envelope=1)
    path = tmp_path / "b64.json"
    path.write_bytes(b"".join(line + b"\n" for line in good[:1500] + [b64] + good[1500:]))
    rp = Replayer(POLICY, None, flush_every=500, sources=scan_sources([str(path)]))
    out = [rec for recs in feed_files(rp, [str(path)], Counter()) for rec in recs]
    assert rp.skipped["bad_payload_b64"] == 1
    # its partition is one streaming would wait for too (the record exists): the decisions are the same
    assert [r for r in out if r[0] != topics.topic("signals")] == [r for r in want if r[0] != topics.topic("signals")]
