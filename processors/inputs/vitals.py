"""gw.rum: the objects the web-vitals library hands its callbacks (or its batch body), routed."""
from __future__ import annotations

from urllib.parse import urlsplit

from gatewatch.processors.inputs.samples import (
    DEFAULT_COHORT,
    DEFAULT_RUM_SCOPE,
    Bad,
    InputOptions,
    Vital,
    field_num,
    field_release,
    field_str,
    field_time,
    key_str,
)

RUM_NAMES = {"INP": "inp", "LCP": "lcp", "CLS": "cls", "FCP": "fcp", "TTFB": "ttfb"}
UNMATCHED_ROUTE = "(unmatched)"
_URL_FIELDS = ("navigationURL", "url", "pageURL", "href")


def route_for_path(path: str, templates: tuple) -> str:
    """The route template a URL path belongs to (see the module docstring)."""
    path = "/" + path.strip("/")
    if not templates:
        return path
    segs = path.split("/")[1:] if path != "/" else []
    for t in templates:
        tsegs = t.strip("/").split("/") if t.strip("/") else []
        if tsegs and tsegs[-1] == "*":
            if len(segs) < len(tsegs) - 1:
                continue
            tsegs, rest_ok = tsegs[:-1], True
        else:
            if len(segs) != len(tsegs):
                continue
            rest_ok = False
        if all(ts.startswith(":") or ts == s for ts, s in zip(tsegs, segs)) and (rest_ok or len(segs) == len(tsegs)):
            return t
    return UNMATCHED_ROUTE


def _page_url(d: dict):
    for f in _URL_FIELDS:
        if d.get(f) is not None:
            return f, d[f]
    att = d.get("attribution")
    if isinstance(att, dict):
        for f in ("navigationURL", "url"):
            if att.get(f) is not None:
                return f"attribution.{f}", att[f]
    return None, None


def _route_from_url(f: str, url, templates: tuple) -> str:
    if not isinstance(url, str) or not url:
        raise Bad(f"bad_type:{f}" if not isinstance(url, str) else f"bad_value:{f}", "expected a URL")
    try:
        path = urlsplit(url).path
    except ValueError as e:
        raise Bad(f"bad_value:{f}", str(e)[:100]) from None
    return route_for_path(path, templates)


def decode_rum(d: dict, key, kafka_ts_ms, out: list, opts=None) -> None:
    name = field_str(d, "name")
    metric = RUM_NAMES.get(name.upper())
    if metric is None:
        raise Bad("bad_value:name", f"{name[:40]} (expected one of {', '.join(RUM_NAMES)})")
    v = field_num(d, "value")
    if v < 0:
        raise Bad("bad_value:value", repr(v))
    route = d.get("route") or d.get("page") or d.get("path")
    if route is None:
        f, url = _page_url(d)
        if f is not None:
            route = _route_from_url(f, url, (opts or InputOptions()).route_templates)
        else:
            route = key_str(key)
    if route is None:
        raise Bad("missing_field:route")
    if not isinstance(route, str):
        raise Bad("bad_type:route", type(route).__name__)
    scope = d.get("service") or d.get("app") or DEFAULT_RUM_SCOPE
    if not isinstance(scope, str):
        raise Bad("bad_type:service", type(scope).__name__)
    out.append(Vital(scope, route, field_str(d, "cohort", DEFAULT_COHORT), metric, v,
                     field_time(d, ("timestamp", "ts"), kafka_ts_ms), field_release(d)))
