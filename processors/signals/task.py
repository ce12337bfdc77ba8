"""A signals task: every scope one gw.partials partition owns, merged from all source partitions.

`SignalTask(task, config).apply(partial)` merges one partial (processors.routing cut it for this
task), advances that source's progress and returns the signal batches of every step end E the
task's watermark passed. Time model and window layout: processors.windows.

The task's watermark (docs/time.md) is the minimum over its source partitions (every partition of
every input topic: `expect()`) of their watermarks, as Kafka Streams' stream time is the minimum
over a task's partitions: a step E is emitted only when every source has passed E, so every sample
before E, wherever it was produced, is in its windows. Idle sources, as Kafka Streams handles
them (KIP-695: a partition counts as empty only once the consumer knows it is at its end): a source
ingest reported caught up is left out of the minimum once the other sources' newest event time is
`idle_source_after` (default: the lateness) past its own, or at once when it never had a record.
A source that never reported holds the task back. Data that arrives from a source after the task
emitted past it is late: dropped, counted in `late` and handed to the stage (`take_late`) for gw.dlq.

So a signal (name, scope, cohort, subject, window) is one value whatever the partitioning: counts,
ratios and burn rates are exact sums over every partition, quantiles come from exactly merged
histograms, a gauge's last value is chosen by (event time, value), never by record order.
"""
from __future__ import annotations

from gatewatch.processors.digest import LogHistogram
from gatewatch.processors.signals.common import SignalBatch
from gatewatch.processors.signals.declared import Declared
from gatewatch.processors.signals.gauges import Gauges
from gatewatch.processors.signals.requests import Requests, request_deltas
from gatewatch.processors.signals.series import Series
from gatewatch.processors.signals.sources import Source
from gatewatch.processors.signals.tables import Cdc
from gatewatch.processors.signals.vitals import Rum, rum_signals
from gatewatch.processors.windows import SignalConfig, floor_to

DOMAINS = {"requests": Requests, "gauges": Gauges, "rum": Rum, "cdc": Cdc, "declared": Declared, "series": Series}
ORDER = ("cdc", "declared", "gauges", "requests", "rum")  # emission order of domains (alphabetical)
BATCH_DOMAIN = {"declared": "gauges"}  # declared signals reach the policy in the gauges domain


def _samples(x: dict) -> int:
    h = x.get("h")
    hist = LogHistogram.read(h).count if h else 0  # JSON, or replay's objects
    return max(x.get("n", 0), x.get("rows", 0), hist)


class SignalTask:
    def __init__(self, task: int = 0, config: SignalConfig | None = None):
        self.task = int(task)
        self.config = config or SignalConfig()
        self.idle_after_ms = self.config.idle_source_after
        self.sources: dict[str, Source] = {}
        self.emitted_until: int | None = None
        self.keys: dict[str, dict] = {d: {} for d in DOMAINS}
        self.shapes: dict[str, list] = {}
        self.counters = {"duplicates": 0, "conflicts": 0, "reconciled": 0, "late_buckets": 0, "late_samples": 0}
        self._late: list[dict] = []
        self._compat: dict[tuple, dict] = {}
        self._evicted_until: int | None = None  # emission point of the last _evict (not state)

    # ---- input ---------------------------------------------------------------------------
    def expect(self, names) -> None:
        """Source partitions ("metrics:0", ...) the watermark waits for until they report."""
        for n in names:
            if n not in self.sources:
                self.sources[n] = Source(n)

    def apply(self, partial: dict) -> list[SignalBatch]:
        name = partial.get("source") or f"{partial['topic']}:{partial['partition']}"
        src = self.sources.get(name)
        if src is None:
            src = self.sources[name] = Source(name)
        buckets = src.admit(partial, self.counters)
        if buckets is None:
            return []
        self.shapes.update(partial.get("shapes") or {})
        late = self._merge(buckets)
        for fs in partial.get("first_shapes") or []:
            st = self.keys["cdc"].get((fs[0], fs[1]))
            if st is not None and len(fs) > 3:
                st.offer_shape(fs[3], fs[2])
        if late:
            self._report_late(partial, name, late)
        return self._emit()

    def _merge(self, buckets: list[dict]) -> list[dict]:
        """Merge buckets into their keys' state; returns those behind the emission point (late)."""
        eu, cfg, late = self.emitted_until, self.config, []
        for x in buckets:
            keys = self.keys.get(x["d"])
            if keys is None:
                continue
            if eu is not None and x["b"] < eu:  # behind what this task already emitted
                late.append(x)
                continue
            k = tuple(x["k"])
            st = keys.get(k)
            if st is None:
                st = keys[k] = DOMAINS[x["d"]](cfg)
            st.merge(x, cfg)
        return late

    def _drain_series(self, until: int) -> None:
        """Points of pre-aggregated series the watermark has passed -> request / declared buckets
        (processors.signals.series), before the steps up to `until` are emitted."""
        series, step = self.keys["series"], self.config.step_ms
        made = [x for k in sorted(series) for x in series[k].drain(k, until, step)]
        late = self._merge(made)
        if late:
            self._report_late({}, "series", late)

    def _report_late(self, partial: dict, name: str, late: list[dict]) -> None:
        n = sum(_samples(x) for x in late)
        self.counters["late_buckets"] += len(late)
        self.counters["late_samples"] += n
        self._late.append({"source": name, "first_offset": partial.get("first_offset"),
                           "last_offset": partial.get("last_offset"), "buckets": len(late), "samples": n,
                           "emitted_until_ms": self.emitted_until})

    def take_late(self) -> list[dict]:
        """What was dropped as late since the last call (for gw.dlq, reason late_at_merge)."""
        out, self._late = self._late, []
        return out

    # ---- time ----------------------------------------------------------------------------
    def watermark(self) -> int | None:
        """The minimum over the sources that count (module docstring); None while one that
        counts has not reported a watermark."""
        newest = max((s.max_event_ms for s in self.sources.values() if s.max_event_ms is not None), default=None)
        marks = []
        for s in self.sources.values():
            if s.caught_up and (s.max_event_ms is None or
                                (newest is not None and newest - s.max_event_ms >= self.idle_after_ms)):
                continue  # idle: at its end and far behind the others, or never had a record
            if s.watermark_ms is None:
                return None
            marks.append(s.watermark_ms)
        return min(marks) if marks else None

    def waiting_for(self) -> list[str]:
        """The sources that hold the watermark back: never reported, or lowest."""
        wm = self.watermark()
        if wm is None:
            return sorted(s.name for s in self.sources.values() if s.watermark_ms is None and not s.caught_up)
        return sorted(s.name for s in self.sources.values() if s.watermark_ms == wm)

    def _emit(self) -> list[SignalBatch]:
        wm = self.watermark()
        if wm is None:
            return []
        cfg = self.config
        step = cfg.step_ms
        last = floor_to(wm, step)
        if self.keys["series"]:
            self._drain_series(last)
        if self.emitted_until is None:
            first = min((st.first_b for keys in self.keys.values() for st in keys.values()
                         if st.first_b is not None), default=None)
            if first is None:
                return []
            self.emitted_until = min(last, floor_to(first, step))
        batches: list[SignalBatch] = []
        while self.emitted_until < last:
            end = self.emitted_until + step
            if not any(st.due(end, step) for keys in self.keys.values() for st in keys.values()):
                # nothing to emit until the next data bucket: skip the idle steps at once (a gap
                # of days costs nothing); idle keys' windows are empty, rebuild them anyway
                nxt = min((b for keys in self.keys.values() for st in keys.values()
                           for b in st.fine if b >= end), default=None)
                self.emitted_until = last if nxt is None else min(last, floor_to(nxt, step))
                for keys in self.keys.values():
                    for st in keys.values():
                        st.rebuild(self.emitted_until, cfg)
                continue
            batches.extend(self._step(end))
            self.emitted_until = end
        self._evict()
        return batches

    def _step(self, end: int) -> list[SignalBatch]:
        cfg = self.config
        step = cfg.step_ms
        by_batch: dict[tuple, list] = {}
        for d in ORDER:  # "series" never emits: drained into requests / declared buckets
            keys = self.keys[d]
            active = []
            for k in sorted(keys):
                st = keys[k]
                st.advance(end, step, cfg)
                if st.active(end):
                    active.append(k)
            if not active:
                continue
            if d == "rum":
                sigs = rum_signals(keys, active, end, cfg)
            elif d == "cdc":
                sigs = []
                for k in active:
                    keys[k].fix_reference(cfg.cdc_shapes.get(k[1]), self.shapes)
                    sigs.extend(keys[k].signals(k, end, cfg, self.shapes, self._compat.setdefault(k, {})))
            else:
                sigs = [s for k in active for s in keys[k].signals(k, end, cfg)]
                if d == "requests":
                    sigs += request_deltas(keys, active, end, cfg)
            bd = BATCH_DOMAIN.get(d, d)
            for s in sigs:
                by_batch.setdefault((bd, s["scope"]), []).append(s)
        out = []
        for bk in sorted(by_batch):
            batch = SignalBatch(sorted(by_batch[bk], key=lambda s: (s["name"], s["cohort"], s["subject"], s["window_s"])))
            batch.domain, batch.scope = bk
            out.append(batch)
        return out

    def _evict(self) -> None:
        until, cfg = self.emitted_until, self.config
        # Runs after every applied partial, but most leave the emission point where it was. Then
        # there is nothing to evict: merges only add buckets at or after it (earlier ones are late),
        # which no threshold below reaches and which keep their key. Pre-aggregated series are the
        # exception (a drain empties them, their retention is by point time): with any, always run.
        if until == self._evicted_until and not self.keys["series"]:
            return
        self._evicted_until = until
        for d, keys in self.keys.items():
            for k in list(keys):
                st = keys[k]
                st.evict(until, cfg)
                # A CDC table is kept (its reference shape and last change are history);
                # other idle keys go: a fresh key behaves exactly like an idle one.
                if d != "cdc" and not st.active(until) and not st.has_future(until) \
                        and st.first_b is not None and st.first_b < until:
                    del keys[k]

    # ---- state ---------------------------------------------------------------------------
    def to_state(self) -> dict:
        """The snapshot, for orjson.dumps: per-bucket histograms are orjson.Fragment pieces
        (common.hists_json); orjson.loads of the bytes gives the plain document from_state reads."""
        return {"task": self.task, "emitted_until": self.emitted_until, "counters": dict(self.counters),
                "sources": [s.to_json() for _, s in sorted(self.sources.items())],
                "shapes": dict(sorted(self.shapes.items())),
                "keys": {d: [[list(k), st.to_json()] for k, st in sorted(keys.items())]
                         for d, keys in self.keys.items()}}

    @classmethod
    def from_state(cls, state: dict, config: SignalConfig | None = None) -> "SignalTask":
        t = cls(state["task"], config)
        t.emitted_until = state["emitted_until"]
        t.counters.update(state.get("counters") or {})
        t.sources = {j["name"]: Source.from_json(j) for j in state["sources"]}
        t.shapes = dict(state["shapes"])
        for d, items in state["keys"].items():
            t.keys[d] = {tuple(k): DOMAINS[d].from_json(j, t.config) for k, j in items}
        return t
