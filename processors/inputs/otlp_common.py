"""What OTLP traces and metrics share as the Collector's kafka exporter writes them: OTLP/JSON
value and attribute forms, the service a resource names, the cohort and release its version maps to."""
from __future__ import annotations

import orjson

from gatewatch.processors.inputs.samples import Bad, InputOptions, Rejection
from gatewatch.processors.names import valid_name, why_not


def service_of(attrs: dict, key: bytes | None) -> str:
    svc = attrs.get("service.name")
    if not (isinstance(svc, str) and svc) and key:
        try:
            svc = key.decode("utf-8")
        except UnicodeDecodeError:
            svc = None
    if not (isinstance(svc, str) and svc):
        raise Bad("missing_field:service.name", "resource has no service.name and the record no key")
    if not valid_name(svc):  # it would become a signed action's scope (processors.names)
        raise Bad("bad_name", f"service.name: {why_not(svc)}")
    return svc


def http_status(raw) -> int:
    """An `http.response.status_code` attribute's value as a status (100..599), else Bad."""
    try:
        status = int(raw)
    except (TypeError, ValueError):
        raise Bad("bad_value:http.response.status_code", repr(raw)[:40]) from None
    if isinstance(raw, bool) or not 100 <= status <= 599:
        raise Bad("bad_value:http.response.status_code", repr(raw)[:40])
    return status


def cohort_of(attrs: dict, opts: InputOptions) -> tuple[str, str]:
    """(cohort, release): the cohort the table maps the attribute's value to, and that value as
    the release the spans measure (the signals stage keeps it for the canary's gate)."""
    v = attrs.get(opts.otlp_cohort_attribute)
    if v is None:
        return opts.otlp_default_cohort, ""
    v = str(v)
    return opts.otlp_cohorts.get(v, opts.otlp_default_cohort), v if len(v) <= 128 else ""


def any_json(v):
    """An OTLP JSON AnyValue -> a Python scalar (None for arrays, maps, bytes: unused here)."""
    if not isinstance(v, dict):
        return None
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        iv = v["intValue"]
        return int(iv) if isinstance(iv, (int, str)) and not isinstance(iv, bool) else None
    if "boolValue" in v:
        return v["boolValue"]
    if "doubleValue" in v:  # protojson writes 1.0 as 1 and NaN as "NaN": a float, as from otlp_proto
        dv = v["doubleValue"]
        try:
            return float(dv) if isinstance(dv, (int, float, str)) and not isinstance(dv, bool) else None
        except ValueError:
            return None
    return None


def attrs_json(items, where: str) -> dict:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise Bad(f"bad_type:{where}.attributes", type(items).__name__)
    out = {}
    for kv in items:
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise Bad(f"bad_type:{where}.attributes", "expected {key, value}")
        out[kv["key"]] = any_json(kv.get("value"))
    return out


def list_of(d: dict, f: str) -> list:
    v = d.get(f)
    if v is None:
        return []
    if not isinstance(v, list):
        raise Bad(f"bad_type:{f}", type(v).__name__)
    return v


def enum_of(v, names: dict, f: str) -> int:
    if v is None:
        return 0
    if isinstance(v, str):
        if v in names:
            return names[v]
        raise Bad(f"bad_value:{f}", v[:40])
    if isinstance(v, bool) or not isinstance(v, int):
        raise Bad(f"bad_type:{f}", type(v).__name__)
    return v


def nanos(v, f: str) -> int:
    if v is None:
        return 0
    if isinstance(v, str) and v.isdigit():
        return int(v)
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    raise Bad(f"bad_type:{f}", repr(v)[:40])


def any_proto(v):
    which = v.WhichOneof("value")
    if which in ("string_value", "int_value", "bool_value", "double_value"):
        return getattr(v, which)
    return None


def decode_export(value: bytes | None, label: str, on_json, on_proto) -> Rejection | None:
    """Parse one exporter record, told apart by content (otlp_json starts with "{", otlp_proto
    does not), and hand it to on_json(doc) or on_proto(bytes); a Rejection when it is not one.
    Never raises: bad input must never crash a worker."""
    if not value:
        return Rejection("empty", "record value is empty")
    try:
        if value[:1] == b"{":
            try:
                doc = orjson.loads(value)
            except orjson.JSONDecodeError as e:
                return Rejection("not_json", str(e)[:200])
            on_json(doc)
        else:
            on_proto(value)
    except Bad as b:
        return b.rejection
    except Exception as e:  # noqa: BLE001 - reported as the record's rejection
        return Rejection("unknown_format", f"{label}: {type(e).__name__}: {e}"[:200])
    return None
