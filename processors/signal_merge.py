"""From signal records on gw.signals back to the engine's batches.

The signal stage publishes each signal as its own record (readable in Kafka UI), with
"domain", "source" (the input stream, e.g. "rum:2") and "batch_n" (how many signals its
(scope, domain, source, ts) batch holds). Records of one source batch may interleave with
other producers' records, and may be re-delivered.

A scope's domain can be fed by several sources (RUM is keyed by route, so one scope's
routes can live in several partitions). A merged (scope, domain, ts) batch is released once
every source known for that (scope, domain) has completed ts or a later step. Determinism
therefore holds from the moment all of a scope's sources have appeared; a source whose first
batch arrives after the others have moved on joins from its own first step.
"""
from __future__ import annotations

from gatewatch.processors.canonical import canonical_json
from gatewatch.processors.timefmt import parse_time_ms_cached


def wire_records(batch: list[dict], domain: str, source: str) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs for one signal batch: key = scope, value = canonical JSON."""
    n = len(batch)
    out = []
    for sig in batch:
        rec = dict(sig, domain=domain, source=source, batch_n=n)
        out.append((str(sig["scope"]).encode(), canonical_json(rec)))
    return out


def _sig_key(sig: dict) -> tuple:
    return (sig["name"], sig.get("cohort"), sig.get("subject"), sig.get("window_s"), sig.get("release") or "")


def _order(key: tuple) -> tuple:
    """A released batch's order: its signal keys (_sig_key) as text, None as "" (written out: sorted per batch)."""
    name, cohort, subject, window_s, release = key
    return ("" if name is None else str(name), "" if cohort is None else str(cohort),
            "" if subject is None else str(subject), "" if window_s is None else str(window_s),
            "" if release is None else str(release))


class BatchAssembler:
    def __init__(self):
        # (scope, domain) -> {"done": {source: last complete ts}, "open": {(source, ts): {sigkey: sig}},
        #                      "ready": {ts: {sigkey: sig}}, "released": last released ts}
        self.streams: dict[tuple[str, str], dict] = {}

    def add(self, rec: dict) -> list[list[dict]]:
        """Feed one record from gw.signals; returns merged batches now complete, in ts order."""
        scope, domain, source = rec["scope"], rec["domain"], rec["source"]
        ts = parse_time_ms_cached(rec["ts"])
        st = self.streams.get((scope, domain))
        if st is None:  # (not setdefault: its default would be built for every record)
            st = self.streams[(scope, domain)] = {"done": {}, "open": {}, "ready": {}, "released": None}
        if ts <= st["done"].get(source, -1) or (st["released"] is not None and ts <= st["released"]):
            return []  # re-delivery of a completed batch
        sig = rec.copy()  # the source stays: the engine reads it
        sig.pop("batch_n", None)
        group = st["open"].setdefault((source, ts), {})
        group[_sig_key(sig)] = sig
        if len(group) < rec["batch_n"]:
            return []
        del st["open"][(source, ts)]
        st["done"][source] = ts
        st["ready"].setdefault(ts, {}).update(group)
        return self._release(st)

    @staticmethod
    def _release(st: dict) -> list[list[dict]]:
        frontier = min(st["done"].values())
        out = []
        for ts in sorted(t for t in st["ready"] if t <= frontier):
            sigs = st["ready"].pop(ts)
            out.append([sigs[k] for k in sorted(sigs, key=_order)])
            st["released"] = ts
        return out

    def to_state(self) -> dict:
        return {"streams": [
            {"scope": s, "domain": d, "done": st["done"], "released": st["released"],
             "open": [[src, ts, list(g.values())] for (src, ts), g in st["open"].items()],
             "ready": [[ts, list(g.values())] for ts, g in st["ready"].items()]}
            for (s, d), st in self.streams.items()]}

    @classmethod
    def from_state(cls, state: dict) -> "BatchAssembler":
        a = cls()
        for row in state.get("streams", []):
            a.streams[(row["scope"], row["domain"])] = {
                "done": dict(row["done"]), "released": row["released"],
                "open": {(src, ts): {_sig_key(s): s for s in sigs} for src, ts, sigs in row["open"]},
                "ready": {ts: {_sig_key(s): s for s in sigs} for ts, sigs in row["ready"]},
            }
        return a
