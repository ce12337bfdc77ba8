"""`gatewatch cardinality FILE...`: active series per budget domain from a signals stream."""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

import click
import orjson

from gatewatch.processors.cardinality import count_series, report
from gatewatch.processors.timefmt import (
    TimeFormatError,
    parse_duration_ms,
    parse_time_ms,
)
from gatewatch.streams.runtime.errors import GatewatchError


def signals_from_lines(lines: Iterable[bytes], skipped: Counter) -> Iterator[dict]:
    """Signal dicts from NDJSON lines of any of: `gatewatch replay` output ({"topic","key","value"};
    only signal records), kcat -J envelopes of gw.signals ({"payload": "<json>"}), or bare signals."""
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            rec = orjson.loads(line)
            if isinstance(rec, dict) and "payload" in rec and "partition" in rec:
                rec = orjson.loads(rec["payload"]) if rec["payload"] is not None else None
            elif isinstance(rec, dict) and "value" in rec and "topic" in rec:
                rec = rec["value"]
        except (orjson.JSONDecodeError, TypeError):
            skipped["unreadable"] += 1
            continue
        if isinstance(rec, dict) and "name" in rec and "domain" in rec and "scope" in rec:
            yield rec
        else:
            skipped["not_a_signal"] += 1


def _ts(sig: dict) -> int | None:
    try:
        return parse_time_ms(sig["ts"]) if sig.get("ts") is not None else None
    except (TimeFormatError, TypeError, ValueError):
        return None


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the report (JSON) here.")
@click.option("--window", default=None,
              help="Only series with a record in this long before the stream's last signal (e.g. 1h).")
@click.option("--without-cohort", is_flag=True, help="Count signal x scope x subject (cohorts folded).")
def cardinality(files, out, window, without_cohort) -> None:
    """Count active series (signal x scope x subject x cohort) per budget domain in FILES
    (replay output, kcat -J envelopes of gw.signals, or bare signal NDJSON) against the
    seed budgets (DEC 2000, MBP 3000, FE 2000, DATA 2000, INT 1000, SEC 1000, global 12000).
    Exit 1 when a domain or the total is over budget."""
    skipped: Counter = Counter()
    sigs = []
    for path in files:
        f = sys.stdin.buffer if path == "-" else open(path, "rb")
        with f:
            sigs.extend(signals_from_lines(f, skipped))
    since = None
    if window:
        try:
            w = parse_duration_ms(window)
        except TimeFormatError as e:
            raise click.BadParameter(str(e), param_hint="--window") from None
        if w <= 0:
            raise click.BadParameter(f"{window!r} is not a window above 0", param_hint="--window")
        last = max((t for t in map(_ts, sigs) if t is not None), default=None)
        since = None if last is None else last - w
    if not sigs:  # a budget gate pointed at the wrong file must not pass on an all-zero table
        detail = ", ".join(f"{n} {k}" for k, n in sorted(skipped.items()))
        raise GatewatchError("no signal records in the input" + (f" (skipped: {detail})" if detail else "")
                             + ": nothing to count (replay output or gw.signals envelopes expected)")
    rep = report(count_series(sigs, not without_cohort, since, _ts))
    rep["input"] = {"signals": len(sigs), "skipped": dict(skipped), "window": window,
                    "cohort": not without_cohort}
    rows = [("DOMAIN", "SERIES", "BUDGET", "USED", "STATUS", "FROM", "TOP SIGNALS")]
    for dom, r in rep["domains"].items():
        top = ", ".join(f"{k}={v}" for k, v in list(r["by_signal"].items())[:3])
        rows.append((dom, str(r["series"]), "-" if r["budget"] is None else str(r["budget"]),
                     "-" if r["used_pct"] is None else f"{r['used_pct']:.1f}%", r["status"],
                     ",".join(r["sources"]) or "-", top))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    click.echo(rep["summary"])
    if skipped:
        click.echo("gatewatch cardinality: skipped " + ", ".join(f"{n} {k}" for k, n in sorted(skipped.items())),
                   err=True)
    if out:
        Path(out).write_bytes(orjson.dumps(rep, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    if rep["status"] != "OK":
        sys.exit(1)


commands = [cardinality]
