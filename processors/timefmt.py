"""Event-time parsing and formatting. Integer epoch milliseconds internally."""
from __future__ import annotations

from datetime import datetime, timezone

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class TimeFormatError(ValueError):
    pass


# years 1..9999: what format_ts (datetime) can write back; a time outside is no time
MIN_MS, MAX_MS = -62_135_596_800_000, 253_402_300_799_999


def parse_time_ms(value) -> int:
    """RFC 3339 string or epoch number (s, ms, µs or ns, told apart by magnitude) -> epoch ms."""
    if isinstance(value, bool) or value is None:
        raise TimeFormatError(f"not a timestamp: {value!r}")
    if isinstance(value, (int, float)):
        ms = _epoch_number_ms(value)
    elif isinstance(value, str):
        s = value.strip()
        if not s:
            raise TimeFormatError("empty timestamp")
        if s.lstrip("-").replace(".", "", 1).isdigit():
            ms = _epoch_number_ms(float(s) if "." in s else int(s))
        else:
            ms = _rfc3339_ms(s)
    else:
        raise TimeFormatError(f"not a timestamp: {value!r}")
    if not MIN_MS <= ms <= MAX_MS:
        raise TimeFormatError(f"outside the years 1..9999: {str(value)[:40]!r}")
    return ms


_PARSED: dict[str, int] = {}  # timestamp text -> epoch ms, for parse_time_ms_cached
_PARSED_MAX = 4096
_TEXT_MAX = 64  # an RFC 3339 text with nanoseconds and an offset is 35 characters


def parse_time_ms_cached(value) -> int:
    """parse_time_ms, remembering the strings it parsed: the signals of one step share their ts
    text, so decide parses each step once instead of once per signal. Same result and the same
    errors (a string that does not parse is never remembered); other types are not cached."""
    if type(value) is str and len(value) <= _TEXT_MAX:  # bounded in bytes too: long texts are not kept
        ms = _PARSED.get(value)
        if ms is None:
            ms = parse_time_ms(value)
            if len(_PARSED) >= _PARSED_MAX:
                _PARSED.clear()  # bounded: steps move forward, old texts are not read again
            _PARSED[value] = ms
        return ms
    return parse_time_ms(value)


def _epoch_number_ms(v) -> int:
    if v != v or v in (float("inf"), float("-inf")):
        raise TimeFormatError(f"not a timestamp: {v!r}")
    a = abs(v)
    if a < 1e11:  # seconds (until year 5138)
        return int(round(v * 1000))
    if a < 1e14:
        return int(v)
    if a < 1e17:
        return int(v // 1000)
    return int(v // 1_000_000)


def _rfc3339_ms(s: str) -> int:
    t = s.replace("z", "Z")
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    if len(t) > 10 and t[10] in " t":
        t = t[:10] + "T" + t[11:]
    try:
        dt = datetime.fromisoformat(t)
    except ValueError as e:
        raise TimeFormatError(f"not RFC 3339: {s!r}") from e
    if dt.tzinfo is None:
        raise TimeFormatError(f"RFC 3339 timestamp without offset: {s!r}")
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def format_ts(ms: int) -> str:
    """epoch ms -> RFC 3339 UTC with milliseconds and Z (the wire format of every ts)."""
    secs, milli = divmod(int(ms), 1000)
    dt = datetime.fromtimestamp(secs, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{milli:03d}Z"


_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_duration_ms(text) -> int:
    """'10s', '5m', '24h', '3d', '250ms' or a number of seconds -> ms."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return int(text * 1000)
    s = str(text).strip().lower()
    for unit in ("ms", "s", "m", "h", "d", "w"):
        if s.endswith(unit):
            num = s[: -len(unit)]
            if unit == "s" and num.endswith("m"):
                continue
            try:
                return int(float(num) * _UNITS_MS[unit])
            except ValueError:
                break
    raise TimeFormatError(f"not a duration: {text!r} (use e.g. 250ms, 10s, 5m, 24h, 3d)")


def format_duration(ms: int) -> str:
    for unit in ("d", "h", "m", "s"):
        if ms % _UNITS_MS[unit] == 0 and ms >= _UNITS_MS[unit]:
            return f"{ms // _UNITS_MS[unit]}{unit}"
    return f"{ms}ms"
