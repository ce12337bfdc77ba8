"""Typed faust Records of gatewatch's topic values. GENERATED from schemas/*.json by
`python -m gatewatch.streams.ext.codegen`: do not edit (tests/ext/test_records.py checks it).

Each Record serializes as plain JSON without faust's metadata (include_metadata=False), so what an
agent sends is what gatewatch's decoders read. `RECORDS` maps a schema name to its Record,
`REQUIRED` a Record to the properties its schema requires.
"""
from __future__ import annotations

from typing import Optional, Union

from gatewatch.streams.ext.faust_import import faust


class Action(faust.Record, serializer="json", include_metadata=False,
             namespace="gatewatch.action"):
    """action (gw.actions): schemas/action.json."""
    id: str
    kind: str
    action: str
    scope: str
    rule: dict
    signals: list
    baseline: dict
    policy_hash: str
    ts: str
    gate: Optional[dict]
    permit: Optional[dict]
    release: str
    incident: str


class Attestation(faust.Record, serializer="json", include_metadata=False,
                  namespace="gatewatch.attestation"):
    """attestation (gw.attestations): schemas/attestation.json."""
    id: str
    type: str
    scope: str
    policy_hash: str
    state_version: int
    ts: str
    pre_state: Optional[str]
    inputs: Optional[str]
    hashes: dict
    actions: list
    rng: dict
    omitted: Optional[dict]
    signature: Optional[dict]


class CanonicalSpan(faust.Record, serializer="json", include_metadata=False,
                    namespace="gatewatch.canonical_span"):
    """canonical span (gw.spans), canonical_contract_v1; key = tenant: schemas/canonical_span.json."""
    id: str
    tenant: str
    who: str
    did: str
    this: str
    when: str
    confirmed_by: Optional[list] = None
    status: Optional[str] = None
    data: Optional[dict] = None


class Checkpoint(faust.Record, serializer="json", include_metadata=False,
                 namespace="gatewatch.checkpoint"):
    """Checkpoint: schemas/checkpoint.json."""
    kind: str
    origin: str
    size: int
    note: str
    proofs: Optional[dict] = None
    witness: Optional[str] = None


class DlqRecord(faust.Record, serializer="json", include_metadata=False,
                namespace="gatewatch.dlq_record"):
    """DLQ record (gw.dlq): schemas/dlq_record.json."""
    source_topic: str
    partition: int
    offset: int
    reason: str
    detail: str
    payload: Optional[str]
    payload_b64: Optional[str] = None


class GateRecord(faust.Record, serializer="json", include_metadata=False,
                 namespace="gatewatch.gate_record"):
    """gate record (gw.gates, key scope@release; compacted): schemas/gate_record.json."""
    kind: str
    scope: str
    release: str
    state: str
    verdict: str
    reasons: list
    missing: list
    policy_hash: str
    ts: str
    since: str
    actions: list
    steps: int
    dropped_steps: int
    error_budget: Optional[dict] = None
    shadow: Optional[bool] = None


class GaugeSample(faust.Record, serializer="json", include_metadata=False,
                  namespace="gatewatch.gauge_sample"):
    """gauge sample (gw.metrics): schemas/gauge_sample.json."""
    name: str
    value: Union[float, bool]
    type: Optional[str] = None
    service: Optional[str] = None
    cohort: Optional[str] = None
    ts: Optional[Union[str, float]] = None
    timestamp: Optional[Union[str, float]] = None
    release: Optional[str] = None


class Partial(faust.Record, serializer="json", include_metadata=False,
              namespace="gatewatch.partial"):
    """ingest partial (gw.partials, internal): schemas/partial.json."""
    id: str
    source: str
    topic: str
    partition: int
    first_offset: Optional[int]
    last_offset: Optional[int]
    next_offset: int
    watermark_ms: Optional[int]
    buckets: list
    records: Optional[int] = None
    rejected: Optional[int] = None
    origin_ms: Optional[int] = None
    max_event_ms: Optional[int] = None
    shapes: Optional[dict] = None
    first_shapes: Optional[list] = None
    caught_up: Optional[bool] = None
    task: Optional[int] = None
    tasks: Optional[int] = None


class Receipt(faust.Record, serializer="json", include_metadata=False,
              namespace="gatewatch.receipt"):
    """receipt: schemas/receipt.json."""
    id: str
    sig: str
    type: str
    seq: int
    executor: str
    ts: str
    prev: Optional[str] = None
    action_id: Optional[str] = None
    scope: Optional[str] = None
    action: Optional[str] = None
    kind: Optional[str] = None
    backend: Optional[str] = None
    idempotency_key: Optional[str] = None
    permit_nonce: Optional[str] = None
    record_digest: Optional[str] = None
    status: Optional[str] = None
    attempts: Optional[int] = None
    duration_ms: Optional[int] = None
    response_digest: Optional[str] = None
    detail: Optional[str] = None
    run: Optional[int] = None
    dry_run: Optional[bool] = None
    reason: Optional[str] = None
    delivery: Optional[str] = None
    delivery_reason: Optional[str] = None
    ack: Optional[dict] = None
    ack_key_id: Optional[str] = None
    ack_sig: Optional[str] = None


class RequestSample(faust.Record, serializer="json", include_metadata=False,
                    namespace="gatewatch.request_sample"):
    """request sample (gw.metrics): schemas/request_sample.json."""
    status: int
    latency_ms: float
    type: Optional[str] = None
    service: Optional[str] = None
    route: Optional[str] = None
    cohort: Optional[str] = None
    release: Optional[str] = None
    ts: Optional[Union[str, float]] = None
    timestamp: Optional[Union[str, float]] = None


class Signal(faust.Record, serializer="json", include_metadata=False,
             namespace="gatewatch.signal"):
    """signal (gw.signals): schemas/signal.json."""
    name: str
    scope: str
    cohort: str
    subject: str
    window_s: int
    value: Optional[float]
    samples: int
    ts: str
    baseline: Optional[float] = None
    baseline_samples: Optional[int] = None
    baseline_source: Optional[str] = None
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    domain: Optional[str] = None
    source: Optional[str] = None
    batch_n: Optional[int] = None
    release: Optional[str] = None


class TrajectoryEvent(faust.Record, serializer="json", include_metadata=False,
                      namespace="gatewatch.trajectory_event"):
    """trajectory event (gw.trajectories); key = tenant; see docs/trajectory_quality.md: schemas/trajectory_event.json."""
    type: str
    id: str
    tenant: str
    trajectory_id: str
    ts: str


class WebVitals(faust.Record, serializer="json", include_metadata=False,
                namespace="gatewatch.web_vitals"):
    """web-vitals beacon (gw.rum); an array of them is accepted too: schemas/web_vitals.json."""
    name: str
    value: float
    rating: Optional[str] = None
    delta: Optional[float] = None
    id: Optional[str] = None
    navigationType: Optional[str] = None
    route: Optional[str] = None
    page: Optional[str] = None
    path: Optional[str] = None
    cohort: Optional[str] = None
    release: Optional[str] = None
    service: Optional[str] = None
    app: Optional[str] = None
    timestamp: Optional[Union[str, float]] = None
    ts: Optional[Union[str, float]] = None


RECORDS = {
    'action': Action,
    'attestation': Attestation,
    'canonical_span': CanonicalSpan,
    'checkpoint': Checkpoint,
    'dlq_record': DlqRecord,
    'gate_record': GateRecord,
    'gauge_sample': GaugeSample,
    'partial': Partial,
    'receipt': Receipt,
    'request_sample': RequestSample,
    'signal': Signal,
    'trajectory_event': TrajectoryEvent,
    'web_vitals': WebVitals,
}

# the properties each value must carry, null or not (encode keeps them when None)
REQUIRED = {
    Action: frozenset(['action', 'baseline', 'gate', 'id', 'incident', 'kind', 'permit', 'policy_hash', 'release', 'rule', 'scope', 'signals', 'ts']),
    Attestation: frozenset(['actions', 'hashes', 'id', 'inputs', 'omitted', 'policy_hash', 'pre_state', 'rng', 'scope', 'signature', 'state_version', 'ts', 'type']),
    CanonicalSpan: frozenset(['did', 'id', 'tenant', 'this', 'when', 'who']),
    Checkpoint: frozenset(['kind', 'note', 'origin', 'size']),
    DlqRecord: frozenset(['detail', 'offset', 'partition', 'payload', 'reason', 'source_topic']),
    GateRecord: frozenset(['actions', 'dropped_steps', 'kind', 'missing', 'policy_hash', 'reasons', 'release', 'scope', 'since', 'state', 'steps', 'ts', 'verdict']),
    GaugeSample: frozenset(['name', 'value']),
    Partial: frozenset(['buckets', 'first_offset', 'id', 'last_offset', 'next_offset', 'partition', 'source', 'topic', 'watermark_ms']),
    Receipt: frozenset(['executor', 'id', 'seq', 'sig', 'ts', 'type']),
    RequestSample: frozenset(['latency_ms', 'status']),
    Signal: frozenset(['cohort', 'name', 'samples', 'scope', 'subject', 'ts', 'value', 'window_s']),
    TrajectoryEvent: frozenset(['id', 'tenant', 'trajectory_id', 'ts', 'type']),
    WebVitals: frozenset(['name', 'value']),
}
