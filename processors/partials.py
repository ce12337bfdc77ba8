"""Ingest-side pre-aggregation: one `PartitionAggregator` per source (topic, partition).

`add()` decodes a record (gatewatch.processors.inputs), rejects late samples against the partition's
watermark (max event time seen - lateness; the record's own samples do not move the watermark
they are judged by; reason "late") and samples stamped more than max_future past the Kafka
record timestamp (reason "future"), and folds the rest into per-(key, bucket) aggregates. A
multi-sample record (a JSON array) with only some samples dropped returns "late_partial" /
"future_partial": the others were counted. What a record holds nothing of (an empty batch, an
undeclared metric, a stale marker) is counted by reason in `take_skipped()`, never dropped silently.
`flush()` hands the aggregates out as a *partial*, a JSON dict whose fields docs/partials.md lists;
processors.routing cuts it into one partial per signals task (the buckets of the scopes each
owns); `progress()` is the partial of a partition with nothing new (position and watermark only).
"""
from __future__ import annotations

from collections import Counter, defaultdict

from orjson import JSONDecodeError as _JSONDecodeError
from orjson import loads as _loads

from gatewatch.processors.canonical import canonical_json, content_id, sha256_hex
from gatewatch.processors.digest import _INV_LN_GAMMA, _MIN, LogHistogram, _ceil, _log
from gatewatch.processors.inputs import (
    MAX_TS_MS,
    MIN_TS_MS,
    Change,
    Gauge,
    InputOptions,
    Rejection,
    Request,
    Vital,
    decode,
    fast_request,
    is_tombstone,
)
from gatewatch.processors.inputs.points import Point, point_json
from gatewatch.processors.partial_body import body_of, load_body
from gatewatch.processors.request_batch import add_request_batch, fold_groups
from gatewatch.processors.timefmt import format_ts
from gatewatch.processors.windows import SignalConfig, later_sample

_INF = float("inf")
_NO_OPTIONS = InputOptions()


class PartitionAggregator:
    def __init__(self, topic: str, partition: int, config: SignalConfig | None = None,
                 options: InputOptions | None = None):
        self.topic = topic
        self.options = options or _NO_OPTIONS
        self.skipped: Counter = Counter()  # reason -> what was fed and skipped without a rejection
        self.partition = int(partition)
        self.source = f"{topic}:{self.partition}"
        self.config = config or SignalConfig()
        self._lateness = self.config.lateness_ms
        self._step = self.config.step_ms
        self._max_future = self.config.max_future_ms
        self._baseline = frozenset(self.config.baseline_cohorts)
        self.fast_path = topic == "metrics"  # add_batch's inlined loop for request records
        self.max_event_ms: int | None = None
        self.origin_ms: int | None = None
        self._shape_ids: dict[tuple, str] = {}
        self._valid_services: set[str] = set()  # processors.request_batch's memo of valid names
        self._reset()

    def _reset(self) -> None:
        self.first_offset = None
        self.last_offset = None
        self.records = 0
        self.rejected = 0
        self.req: dict = {}
        self.gauge: dict = {}
        self.rum: dict = {}
        self.cdc: dict = {}
        self.series: dict = {}
        self.shapes: dict = {}
        self.first_shapes: dict = {}
        # request samples of add_batch's loop not yet counted into req (processors.request_batch):
        # (service, cohort, release as sent, bucket) -> latencies, and -> status >= 500 count
        self.latency_groups: defaultdict[tuple, list] = defaultdict(list)
        self.error_groups: defaultdict[tuple, int] = defaultdict(int)

    @property
    def watermark_ms(self) -> int | None:
        return None if self.max_event_ms is None else self.max_event_ms - self.config.lateness_ms

    @property
    def pending(self) -> int:
        return self.records

    def add(self, offset: int, key: bytes | None, value: bytes | None,
            kafka_ts_ms: int | None) -> Rejection | None:
        if self.first_offset is None:
            self.first_offset = offset
        self.last_offset = offset
        self.records += 1
        if self.fast_path and value and value[0] == 123:  # b"{": try the request fast path
            try:
                doc = _loads(value)
            except _JSONDecodeError:
                doc = None
            if type(doc) is dict:
                t = fast_request(doc)
                if t is not None:
                    return self._add_request(t, kafka_ts_ms)
        samples = self._decode(key, value, kafka_ts_ms)
        if type(samples) is Rejection:
            self.rejected += 1
            return samples
        if not samples:
            self._skip_empty(value)
        mx = self.max_event_ms
        wm = None if mx is None else mx - self._lateness
        step = self._step
        late = future = 0
        horizon = (kafka_ts_ms + self._max_future
                   if kafka_ts_ms is not None and MIN_TS_MS < kafka_ts_ms < MAX_TS_MS else None)
        n = len(samples)
        refused = None
        for s in samples:
            if type(s) is str:  # a skip marker: counted, not a sample
                self.skipped[s] += 1
                n -= 1
                continue
            if type(s) is Rejection:  # part of the record refused (an OTLP resource), the rest counted
                refused = s
                n -= 1
                continue
            ts = s.ts_ms
            if type(s) is Point and s.kind != "gauge":
                ts -= 1  # a point counts its interval up to t: it is late if t - 1 is (points.interval_bucket)
            if wm is not None and ts < wm:
                late += 1
                continue
            if horizon is not None and ts > horizon:
                future += 1
                continue
            if mx is None:
                self.origin_ms = ts
                mx = ts
            elif ts > mx:
                mx = ts
            b = ts - ts % step
            t = type(s)
            if t is Request:
                self._count_request(s.service, s.cohort, s.release, b, s.status, s.latency_ms)
            elif t is Vital:
                k = (s.scope, s.route, s.cohort, s.metric, self._release(s.cohort, s.release), b)
                h = self.rum.get(k)
                if h is None:
                    h = self.rum[k] = LogHistogram()
                h.add(s.value)
            elif t is Gauge:
                k = (s.service, s.cohort, s.name, self._release(s.cohort, s.release), b)
                a = self.gauge.get(k)
                if a is None:
                    self.gauge[k] = [1, ts, s.value]
                else:
                    a[0] += 1
                    if later_sample(ts, s.value, a[1], a[2]):
                        a[1], a[2] = ts, s.value
            elif t is Change:
                self._add_change(s, b)
            elif t is Point:
                k = (s.service, s.cohort, self._release(s.cohort, s.release), s.role, b)
                ps = self.series.get(k)
                if ps is None:
                    ps = self.series[k] = []
                ps.append(point_json(s))
            # Heartbeat: moves stream time only
        self.max_event_ms = mx
        if refused is not None:
            return refused if not (future or late) else \
                Rejection(refused.reason, f"{refused.detail}; {self._dropped(late, future, n, wm, kafka_ts_ms).detail}")
        if future or late:
            return self._dropped(late, future, n, wm, kafka_ts_ms)
        return None

    def _decode(self, key, value, kafka_ts_ms):
        return decode(self.topic, key, value, kafka_ts_ms, self.options)

    def _skip_empty(self, value) -> None:
        """A record that decoded to nothing: a Debezium tombstone, or an empty JSON array."""
        if self.topic == "cdc" and is_tombstone(self.topic, value):
            self.skipped["cdc:tombstone"] += 1
        else:
            self.skipped["empty_batch"] += 1

    def take_skipped(self) -> Counter:
        out, self.skipped = self.skipped, Counter()
        return out

    def add_batch(self, offsets, keys, values, kafka_ts, raw_values=None) -> list[tuple[int, Rejection]]:
        """add() over parallel sequences, in order; returns (index, rejection) of each rejected
        record. Same state and rejections as calling add() record by record (property-tested).
        Request samples of the metrics topic run through processors.request_batch's loop (msgspec
        decodes and validates them in C); `values` may then be str, with `raw_values` the same
        records as bytes (what add() gets)."""
        if self.fast_path:
            return add_request_batch(self, offsets, keys, values, kafka_ts, raw_values)
        if raw_values is not None:
            values = raw_values
        add = self.add
        return [(i, r) for i in range(len(values))
                if (r := add(offsets[i], keys[i], values[i], kafka_ts[i])) is not None]

    def _add_request(self, t: tuple, kafka_ts_ms: int | None) -> Rejection | None:
        """add() for one fast-path request sample: the same rules as processors.request_batch's loop."""
        service, cohort, _route, status, lat, ts, release = t
        mx = self.max_event_ms
        if mx is not None and ts < mx - self._lateness:
            return self._dropped(1, 0, 1, mx - self._lateness, kafka_ts_ms)
        if kafka_ts_ms is not None and MIN_TS_MS < kafka_ts_ms < MAX_TS_MS \
                and ts > kafka_ts_ms + self._max_future:
            return self._dropped(0, 1, 1, None if mx is None else mx - self._lateness, kafka_ts_ms)
        if mx is None:
            self.origin_ms = self.max_event_ms = ts
        elif ts > mx:
            self.max_event_ms = ts
        self._count_request(service, cohort, release, ts - ts % self._step, status, lat)
        return None

    def _release(self, cohort: str, release: str) -> str:
        """The release a sample counts for: none for a baseline cohort (the reference whatever its
        version), its own for the others (each release gets its gate)."""
        return "" if cohort in self._baseline else release

    def _count_request(self, service: str, cohort: str, release: str, b: int, status: int, lat: float) -> None:
        k = (service, cohort, self._release(cohort, release), b)
        a = self.req.get(k)
        if a is None:
            a = self.req[k] = [0, 0, LogHistogram()]
        a[0] += 1
        if status >= 500:
            a[1] += 1
        if lat > _MIN:  # LogHistogram.add inlined: this is the hottest line of ingest
            pos = a[2].pos
            hk = _ceil(_log(lat) * _INV_LN_GAMMA)
            pos[hk] = pos.get(hk, 0) + 1
        else:
            a[2].add(lat)

    def _dropped(self, late: int, future: int, n: int, wm, kafka_ts_ms) -> Rejection:
        """The rejection for a record with late and/or future samples. A record whose samples
        were all dropped is "late"/"future"; one partly counted says so ("late_partial" /
        "future_partial"), so nobody re-feeds it."""
        if future + late == n:
            self.rejected += 1
        why = "future" if future else "late"
        reason = why if future + late == n else why + "_partial"
        parts = []
        if late:
            parts.append(f"{late} of {n} samples before watermark {format_ts(wm)}")
        if future:
            parts.append(f"{future} of {n} samples more than {self._max_future} ms past "
                         f"the record timestamp {format_ts(kafka_ts_ms)}")
        return Rejection(reason, "; ".join(parts))

    def _add_change(self, s: Change, b: int) -> None:
        k = (s.scope, s.table, b)
        a = self.cdc.get(k)
        if a is None:
            a = self.cdc[k] = [0, 0, None, LogHistogram(), {}]
        if s.lag_ms is not None:  # not a snapshot read
            a[0] += 1
            a[3].add(s.lag_ms)
            if a[2] is None or s.ts_ms > a[2]:
                a[2] = s.ts_ms
        if s.shape is not None:
            a[1] += 1
            sid = self._shape_ids.get(s.shape)
            if sid is None:
                sid = sha256_hex(canonical_json([list(p) for p in s.shape]))[:16]
                self._shape_ids[s.shape] = sid
            a[4][sid] = a[4].get(sid, 0) + 1
            if sid not in self.shapes:
                self.shapes[sid] = [list(p) for p in s.shape]
            first = self.first_shapes.get((s.scope, s.table))
            if first is None or [s.ts_ms, sid] < first:  # the earliest by event time, as the task reads it
                self.first_shapes[(s.scope, s.table)] = [s.ts_ms, sid]

    def _body(self, wire: bool = True) -> dict:
        if self.latency_groups:
            fold_groups(self)
        return body_of(self, wire)

    def flush(self, caught_up: bool = False, wire: bool = True) -> dict | None:
        """The partial for everything added since the last flush (None when nothing was added).
        caught_up: the consumer had read the partition to its end (the signals task may then
        leave this source out of its watermark once it falls behind: processors.signals.task).
        wire=False: histograms as objects and no id, for a task in this process (replay): the JSON
        round trip was ~8 % of replay's CPU."""
        if self.first_offset is None:
            return None
        body = self._body(wire)
        body["next_offset"] = body["last_offset"] + 1
        body["caught_up"] = bool(caught_up)
        if wire:
            body["id"] = content_id(body)
        self._reset()
        return body

    def progress(self, next_offset: int, caught_up: bool) -> dict:
        """A partial with no records: this source's position, watermark and caught-up flag, for a
        partition with nothing new (an empty one included: the task must not wait for it)."""
        body = {"source": self.source, "topic": self.topic, "partition": self.partition,
                "first_offset": None, "last_offset": None, "next_offset": next_offset, "records": 0,
                "rejected": 0, "max_event_ms": self.max_event_ms, "watermark_ms": self.watermark_ms,
                "caught_up": bool(caught_up), "buckets": [], "shapes": {}, "first_shapes": []}
        body["id"] = content_id(body)
        return body

    # ---- state ----
    def to_state(self) -> dict:
        return {"topic": self.topic, "partition": self.partition, "max_event_ms": self.max_event_ms,
                "origin_ms": self.origin_ms,
                "pending": self._body() if self.first_offset is not None else None}

    @classmethod
    def from_state(cls, state: dict, config: SignalConfig | None = None) -> "PartitionAggregator":
        agg = cls(state["topic"], state["partition"], config)
        agg.max_event_ms = state.get("max_event_ms")
        agg.origin_ms = state.get("origin_ms")
        if state.get("pending"):
            agg._load_body(state["pending"])
        return agg

    @classmethod
    def from_partial(cls, partial: dict, config: SignalConfig | None = None) -> "PartitionAggregator":
        """Resume after the last published partial of this partition (restart after a crash)."""
        agg = cls(partial["topic"], partial["partition"], config)
        agg.max_event_ms = partial.get("max_event_ms")
        agg.origin_ms = partial.get("origin_ms")
        return agg

    def _load_body(self, body: dict) -> None:
        load_body(self, body)
