"""A witness: cosign each new log checkpoint that is consistent with the last one it cosigned.

State file (JSON, replaced atomically and fsynced before the cosignature is published,
so a witness never cosigns two checkpoints that are not consistent with each other):
    {"origin", "size", "root" (base64)}
The first checkpoint is trusted on first use. Later ones need a consistency proof from
the state's size, which the sink puts in the message's ``proofs`` (see gatewatch.sinks.worm.sink).
A checkpoint that is older than the state is skipped; a fork (same size, other root,
or a failing proof) is refused, logged and sent to gw.dlq, and the state stays put.
"""
from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from pathlib import Path

import orjson
from prometheus_client import Counter, Gauge

from gatewatch.sinks.worm import checkpoint as cp
from gatewatch.sinks.worm import merkle
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.logs import log_event
from gatewatch.streams.runtime.statefiles import write_json_atomic
from gatewatch.streams.runtime.worker import Stage

LOG = logging.getLogger("gatewatch.witness")
COSIGNED = Counter("gatewatch_witness_cosigned_total", "Checkpoints cosigned", ["witness"])
REFUSED = Counter("gatewatch_witness_refused_total", "Checkpoints refused", ["witness"])
WITNESSED_SIZE = Gauge("gatewatch_witness_tree_size", "Tree size of the last cosigned checkpoint", ["witness"])


@dataclass
class WitnessState:
    origin: str | None = None
    size: int = 0
    root: bytes = b""

    @classmethod
    def load(cls, path: Path) -> "WitnessState":
        if not path.exists():
            return cls()
        try:
            d = orjson.loads(path.read_bytes())
            state = cls(d["origin"], d["size"], base64.b64decode(d["root"], validate=True))
            if not isinstance(state.origin, str) or type(state.size) is not int or state.size < 0:
                raise ValueError("origin or size of the wrong type")
            return state
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, binascii.Error) as e:
            # never start afresh: a witness that forgot its size cosigns whatever the log says next
            raise GatewatchError(f"witness state {path}: unreadable ({type(e).__name__}: {e}); restore it "
                                 "from a backup, or remove it to trust the log's next checkpoint anew") from None

    def save(self, path: Path) -> None:
        # fsynced and renamed into place (mode 0600, from mkstemp) before any cosignature leaves
        write_json_atomic(path, {"origin": self.origin, "size": self.size,
                                 "root": base64.b64encode(self.root).decode()})


class Refused(Exception):
    pass


def review(doc: dict, state: WitnessState, log_verifier: cp.Verifier) -> tuple[cp.Note, cp.Checkpoint] | None:
    """The note and checkpoint to cosign, None to skip silently (stale or not a log checkpoint),
    Refused(reason) when it must not be cosigned."""
    if not isinstance(doc, dict) or doc.get("kind") != "log":
        return None
    try:
        note = cp.parse_note(doc.get("note"))
        c = cp.parse_checkpoint(note.body)
    except cp.NoteError as e:
        raise Refused(f"malformed: {e}") from None
    if c.origin != log_verifier.name:
        return None
    if log_verifier.name not in cp.valid_signers(note, [log_verifier]):
        raise Refused("bad_log_signature")
    if state.size == 0:
        return note, c
    if c.size < state.size:
        return None
    if c.size == state.size:
        if c.root != state.root:
            raise Refused("fork: same size, different root")
        return note, c
    proofs = doc.get("proofs") or {}
    if not isinstance(proofs, dict):  # anyone who can write the topic can send this: refuse, never crash
        raise Refused("malformed: proofs is not a mapping")
    raw = proofs.get(str(state.size))
    if raw is None:
        raise Refused(f"no_consistency_proof from size {state.size}")
    if not isinstance(raw, list):
        raise Refused("malformed consistency proof")
    try:
        proof = [base64.b64decode(h, validate=True) for h in raw]
    except (binascii.Error, TypeError, ValueError):
        raise Refused("malformed consistency proof") from None
    if not merkle.verify_consistency(state.size, c.size, state.root, c.root, proof):
        raise Refused(f"inconsistent with cosigned size {state.size}")
    return note, c


class Witness(Stage):
    """A witness as a stage of streams.runtime.worker (group mode on gw.checkpoints): its state is
    saved before its cosignature is produced, and the batch's offsets are committed once the
    cosignatures are delivered."""
    checkpoint_interval_s = 0.0
    batch_size = 100
    poll_timeout_s = 0.2

    def __init__(self, name: str, state_path: str, origin: str = cp.DEFAULT_ORIGIN,
                 keys_dir: str | None = None, group: str | None = None):
        from gatewatch.streams.runtime.keys import load_signing_key, load_verify_key
        self.name = name
        self.group = group or f"{topics.prefix()}{name}"
        self.state_path = Path(state_path)
        self.state = WitnessState.load(self.state_path)
        self.key = load_signing_key(name, keys_dir)
        lk = load_verify_key("log", keys_dir)
        self.log_verifier = cp.Verifier(origin, cp.note_key_id(origin, lk.encode()), lk)
        self.topic = topics.topic("checkpoints")
        self.cosigned = 0

    def input_topics(self, worker) -> list[str]:
        return [self.topic]

    def producer_config(self) -> dict:
        return {"batch.num.messages": 1, "linger.ms": 0}

    def handle(self, value: bytes, partition: int = 0, offset: int = -1, worker=None) -> bytes | None:
        """The cosigned message to publish for one consumed value, or None."""
        try:
            doc = orjson.loads(value)
        except (orjson.JSONDecodeError, TypeError):
            return None  # not ours to judge; the sink dead-letters junk on this topic
        try:
            got = review(doc, self.state, self.log_verifier)
        except Refused as e:
            log_event(LOG, "checkpoint refused", logging.WARNING, witness=self.name, reason=str(e))
            REFUSED.labels(self.name).inc()
            if worker is not None:
                worker.dlq(self.topic, partition, offset, f"{self.name}: {e}", value)
            return None
        if got is None:
            return None
        note, c = got
        self.state = WitnessState(c.origin, c.size, c.root)
        self.state.save(self.state_path)  # durable before the cosignature leaves
        cosigned = cp.add_signature(note, self.name, self.key)
        self.cosigned += 1
        COSIGNED.labels(self.name).inc()
        WITNESSED_SIZE.labels(self.name).set(c.size)
        log_event(LOG, "checkpoint cosigned", witness=self.name, size=c.size)
        return orjson.dumps({"kind": "cosigned", "witness": self.name, "origin": c.origin, "size": c.size,
                             "note": cosigned.text()})

    def process(self, worker, msgs) -> None:
        for m in msgs:
            out = self.handle(m.value(), m.partition(), m.offset(), worker)
            if out is not None:
                worker.produce(self.topic, m.key(), out)
