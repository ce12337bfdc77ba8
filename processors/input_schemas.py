"""Which schema each judged input came in, counted per (service, input, schema, histogram).

The evidence names the schema version of the metrics it judged (seed 000: Evidence.histogram_schema_ver):
- gw.metrics: gatewatch `request_sample` / `gauge_sample` (schemas/*.json; the caller versions them
  by content hash), Confluent-framed Avro by schema id, or a Prometheus adapter sample, whose
  `_bucket` series are the classic (`le`-bucket) histogram;
- gw.rum: `web_vitals`; gw.cdc: `debezium_envelope` (with or without the schema/payload wrapper);
- OTLP traces: `otlp_traces` with the resource's schema_url; OTLP metrics: per metric, histogram
  kind `explicit` or `exponential scale=<n>` (and sum/gauge), with the resource's schema_url.
Pure: no I/O, no clock; never raises (an unreadable record is counted as schema `unreadable`).
"""
from __future__ import annotations

from typing import NamedTuple

import orjson

FORMAT = "gatewatch.input-schemas/1"
NO_HISTOGRAM = "-"


class SchemaKey(NamedTuple):
    service: str
    input: str
    schema: str
    histogram: str


def _str(v, default: str = "") -> str:
    return v if isinstance(v, str) and v else default


def _key(key: bytes | None) -> str:
    try:
        return key.decode("utf-8") if key else ""
    except UnicodeDecodeError:
        return ""


def schemas_of(topic: str, value: bytes | None, key: bytes | None = None) -> list[SchemaKey]:
    """The schema keys of one input record of logical topic (metrics, rum, cdc, otlp, otlp_metrics)."""
    if not value:
        return [SchemaKey(_key(key) or "?", topic, "empty", NO_HISTOGRAM)]
    if value[:1] == b"\x00" and len(value) >= 5:
        return [SchemaKey(_key(key) or "?", topic, f"avro id {int.from_bytes(value[1:5], 'big')}", NO_HISTOGRAM)]
    if topic == "otlp_metrics" and value[:1] != b"{":
        return _otlp_metrics_proto(value, key)
    if topic == "otlp" and value[:1] != b"{":
        return _otlp_traces_proto(value, key)
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        return [SchemaKey(_key(key) or "?", topic, "unreadable", NO_HISTOGRAM)]
    if topic == "metrics":
        return [_metrics(doc, key)]
    if topic == "rum":
        return [SchemaKey(_str(doc.get("service"), "web"), topic, "web_vitals", NO_HISTOGRAM)]
    if topic == "cdc":
        wrapped = "payload" in doc and "schema" in doc
        return [SchemaKey(_key(key) or "?", topic, "debezium_envelope" + (" (schema+payload)" if wrapped else ""),
                          NO_HISTOGRAM)]
    if topic == "otlp":
        return [SchemaKey(_resource_service(rs.get("resource"), key), topic, _schema_url(rs), NO_HISTOGRAM)
                for rs in _dicts(doc.get("resourceSpans"))] or [SchemaKey(_key(key) or "?", topic, "unreadable", NO_HISTOGRAM)]
    if topic == "otlp_metrics":
        out = []
        for rm in _dicts(doc.get("resourceMetrics")):
            service, url = _resource_service(rm.get("resource"), key), _schema_url(rm)
            for sm in _dicts(rm.get("scopeMetrics")):
                for m in _dicts(sm.get("metrics")):
                    out.append(SchemaKey(service, topic, url, _otlp_kind_json(m)))
        return out or [SchemaKey(_key(key) or "?", topic, "unreadable", NO_HISTOGRAM)]
    return [SchemaKey(_key(key) or "?", topic, "unknown", NO_HISTOGRAM)]


def _dicts(v) -> list[dict]:
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []


def _metrics(doc: dict, key) -> SchemaKey:
    labels = doc.get("labels")
    if isinstance(labels, dict) and "value" in doc:  # prometheus-kafka-adapter
        name = _str(doc.get("name")) or _str(labels.get("__name__"))
        hist = "prometheus classic (le buckets)" if name.endswith("_bucket") else NO_HISTOGRAM
        return SchemaKey(_str(labels.get("job"), "?"), "metrics", "prometheus adapter sample", hist)
    service = _str(doc.get("service")) or _key(key) or "?"
    if doc.get("type") == "gauge":
        return SchemaKey(service, "metrics", "gauge_sample", NO_HISTOGRAM)
    return SchemaKey(service, "metrics", "request_sample", "per-request samples")


def _resource_service(resource, key) -> str:
    attrs = resource.get("attributes") if isinstance(resource, dict) else None
    for kv in _dicts(attrs):
        if kv.get("key") == "service.name":
            v = kv.get("value")
            if isinstance(v, dict) and _str(v.get("stringValue")):
                return v["stringValue"]
    return _key(key) or "?"


def _schema_url(res: dict) -> str:
    return "otlp " + (_str(res.get("schemaUrl")) or "(no schema_url)")


def _otlp_kind_json(metric: dict) -> str:
    if isinstance(metric.get("histogram"), dict):
        return "explicit"
    eh = metric.get("exponentialHistogram")
    if isinstance(eh, dict):
        scales = sorted({p.get("scale") or 0 for p in _dicts(eh.get("dataPoints")) if isinstance(p.get("scale") or 0, int)})
        return "exponential scale=" + ",".join(map(str, scales or [0]))
    for kind in ("sum", "gauge", "summary"):
        if isinstance(metric.get(kind), dict):
            return kind
    return NO_HISTOGRAM


def _otlp_metrics_proto(value: bytes, key) -> list[SchemaKey]:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    try:
        req = ExportMetricsServiceRequest.FromString(value)
    except DecodeError:
        return [SchemaKey(_key(key) or "?", "otlp_metrics", "unreadable", NO_HISTOGRAM)]
    out = []
    for rm in req.resource_metrics:
        service = next((kv.value.string_value for kv in rm.resource.attributes if kv.key == "service.name"), "") \
            or _key(key) or "?"
        url = "otlp " + (rm.schema_url or "(no schema_url)")
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                which = m.WhichOneof("data") or NO_HISTOGRAM
                if which == "histogram":
                    kind = "explicit"
                elif which == "exponential_histogram":
                    kind = "exponential scale=" + ",".join(
                        map(str, sorted({p.scale for p in m.exponential_histogram.data_points}) or [0]))
                else:
                    kind = which
                out.append(SchemaKey(service, "otlp_metrics", url, kind))
    return out or [SchemaKey(_key(key) or "?", "otlp_metrics", "unreadable", NO_HISTOGRAM)]


def _otlp_traces_proto(value: bytes, key) -> list[SchemaKey]:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    try:
        req = ExportTraceServiceRequest.FromString(value)
    except DecodeError:
        return [SchemaKey(_key(key) or "?", "otlp", "unreadable", NO_HISTOGRAM)]
    return [SchemaKey(next((kv.value.string_value for kv in rs.resource.attributes if kv.key == "service.name"), "")
                      or _key(key) or "?", "otlp", "otlp " + (rs.schema_url or "(no schema_url)"), NO_HISTOGRAM)
            for rs in req.resource_spans] or [SchemaKey(_key(key) or "?", "otlp", "unreadable", NO_HISTOGRAM)]


def schema_report(counts: dict[SchemaKey, int], versions: dict[str, str] | None = None,
                  records: int | None = None) -> dict:
    """Rows sorted by key; versions maps a gatewatch schema name to its version (content hash).
    counts: per key, the input records that carried it (a record counted once per key, though an
    OTLP record may carry several keys, one per resource or metric kind); records: the input
    records read (default: the sum of counts, right when each record has one key)."""
    versions = versions or {}
    rows = [{"service": k.service, "input": k.input, "schema": k.schema,
             "version": versions.get(k.schema.split(" ")[0], ""), "histogram": k.histogram, "records": n}
            for k, n in sorted(counts.items())]
    hist = sorted({r["histogram"] for r in rows if r["histogram"] != NO_HISTOGRAM})
    total = sum(counts.values()) if records is None else records
    return {"format": FORMAT, "rows": rows, "records": total, "histogram_schemas": hist}
