"""Per source partition, what a signals task has applied: offsets, watermark, caught-up.

Exactly once over at-least-once delivery: a partial whose last offset is at or below the last
applied one is a re-delivery (`duplicates`). A partial that overlaps the applied range (on a broker
where aborted transactions are visible, tansu, the restarted ingest worker re-cuts the range from
its committed offset) is reconciled exactly when it starts where a kept piece starts: the last
ledger.MAX_PIECES applied ranges are kept and only partial - pieces is applied (`reconciled`); a
shorter re-cut splits a piece so that its successor reconciles too. Anything else is refused and
counted (`conflicts`) rather than double-counted. On Apache Kafka, readers use read_committed and
none of this happens.
"""
from __future__ import annotations

from gatewatch.processors import ledger


class Source:
    __slots__ = ("name", "last_offset", "next_offset", "watermark_ms", "max_event_ms", "caught_up", "pieces")

    def __init__(self, name: str):
        self.name = name
        self.last_offset: int | None = None   # last record offset whose buckets were applied
        self.next_offset: int | None = None   # the source position the last applied partial reported
        self.watermark_ms: int | None = None
        self.max_event_ms: int | None = None
        self.caught_up = False                # ingest had read the partition to its end
        self.pieces: list[dict] = []

    def admit(self, partial: dict, counters: dict) -> list[dict] | None:
        """The buckets of `partial` still to apply (possibly []), or None when it is a
        re-delivery or an unreconcilable overlap. Advances the progress either way it applies."""
        lo, hi = partial.get("first_offset"), partial.get("last_offset")
        nxt = partial.get("next_offset", None if hi is None else hi + 1)
        if hi is None:  # progress only: the position, watermark and caught-up flag
            if self.next_offset is not None and nxt is not None and nxt < self.next_offset:
                counters["duplicates"] += 1
                return None
            self._progress(partial, nxt)
            return []
        buckets = partial["buckets"]
        last = self.last_offset
        if last is not None and hi <= last:
            counters["duplicates"] += 1
            self._split_piece(lo, hi, buckets)
            return None
        if last is not None and lo <= last:
            i = self._piece_at(lo)
            delta = None
            if i is not None:
                covered = ledger.combine([p["buckets"] for p in self.pieces[i:]])
                delta = ledger.difference(buckets, covered)
            if delta is None:
                counters["conflicts"] += 1
                return None
            counters["reconciled"] += 1
            buckets, lo = delta, last + 1
        self.last_offset = hi
        self.pieces.append(ledger.piece(lo, hi, buckets))
        del self.pieces[:-ledger.MAX_PIECES]
        self._progress(partial, nxt)
        return buckets

    def _progress(self, partial: dict, nxt: int | None) -> None:
        if nxt is not None and (self.next_offset is None or nxt >= self.next_offset):
            self.next_offset = nxt
            self.caught_up = bool(partial.get("caught_up"))
        for f in ("watermark_ms", "max_event_ms"):
            v = partial.get(f)
            if v is not None and (getattr(self, f) is None or v > getattr(self, f)):
                setattr(self, f, v)

    def _piece_at(self, first: int) -> int | None:
        for i, p in enumerate(self.pieces):
            if p["first"] == first:
                return i
        return None

    def _split_piece(self, lo: int, hi: int, buckets: list[dict]) -> None:
        """A shorter re-cut of applied offsets: nothing to apply, but split the kept pieces at
        hi so that the re-cut's successor (starting at hi + 1) can be reconciled too."""
        i = self._piece_at(lo)
        if i is None:
            return
        j = next((j for j in range(i, len(self.pieces)) if self.pieces[j]["last"] >= hi), None)
        if j is None or self.pieces[j]["last"] == hi:
            return
        # only cut the piece that holds hi; the finer pieces before it keep their boundaries,
        # which a later re-cut may start at
        pj = self.pieces[j]
        before = ledger.combine([p["buckets"] for p in self.pieces[i:j]])
        head = ledger.difference(buckets, before) if before else buckets
        tail = None if head is None else ledger.difference(pj["buckets"], head)
        if tail is None:
            return
        self.pieces[j:j + 1] = [ledger.piece(pj["first"], hi, head), ledger.piece(hi + 1, pj["last"], tail)]

    def to_json(self) -> dict:
        j = {f: getattr(self, f) for f in self.__slots__}
        j["pieces"] = list(map(ledger.wire_piece, self.pieces))
        return j

    @classmethod
    def from_json(cls, j: dict) -> "Source":
        s = cls(j["name"])
        for f in cls.__slots__[1:]:
            setattr(s, f, j.get(f, getattr(s, f)))
        s.pieces = list(s.pieces or [])
        return s
