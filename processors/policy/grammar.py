"""The rule grammar, parsed by a small recursive-descent parser (never eval).

    expr  := term ("or" term)*
    term  := atom ("and" atom)*
    atom  := "(" expr ")" | cond
    cond  := SIGNAL OP NUMBER [ms|s|pct] ["for" DURATION]
    OP    := > | >= | < | <= | == | !=

Thresholds are converted to the catalogue unit of the signal: 800ms or 0.8s for a
millisecond signal, 120s or 2000ms for a seconds signal, 10pct = 0.10 for ratio and
delta signals; a bare number is already in the signal's unit. `for D` means the
condition held at every evaluated step over D.
"""
from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass

from gatewatch.processors import catalogue
from gatewatch.processors.timefmt import (
    TimeFormatError,
    format_duration,
    parse_duration_ms,
)

OPS = (">=", "<=", "==", "!=", ">", "<")

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>-?(?:\d+\.\d*|\.\d+|\d+)(?:e-?\d+)?(?:ms|s|m|h|d|w|pct|%)?(?![A-Za-z0-9_]))
  | (?P<op>>=|<=|==|!=|>|<)
  | (?P<lp>\()
  | (?P<rp>\))
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
""", re.VERBOSE)
_NUM_UNIT = re.compile(r"^(-?(?:\d+\.\d*|\.\d+|\d+)(?:e-?\d+)?)(ms|s|m|h|d|w|pct|%)?$")


class GrammarError(ValueError):
    pass


@dataclass(frozen=True)
class Cond:
    signal: str      # catalogue name
    written: str     # the name as written (may be an alias)
    op: str
    threshold: float  # in the signal's catalogue unit
    for_ms: int = 0

    def text(self) -> str:
        t = f"{self.signal} {self.op} {_num(self.threshold)}"
        return t + (f" for {format_duration(self.for_ms)}" if self.for_ms else "")


@dataclass(frozen=True)
class And:
    items: tuple


@dataclass(frozen=True)
class Or:
    items: tuple


def _num(x: float) -> str:
    return repr(int(x)) if float(x).is_integer() else repr(x)


@dataclass(frozen=True)
class SignalInfo:
    name: str
    unit: str
    domain: str


def signal_info(name: str, declared: dict | None = None) -> SignalInfo | None:
    """A catalogue signal or one the policy declares (the seed gauges are declared in configs/builtin.yml) (declared: name -> unit;
    declared signals reach the engine in the gauges domain: processors.signals.task)."""
    d = catalogue.resolve(name)
    if d is not None:
        return SignalInfo(d.name, d.unit, d.domain)
    if declared and name in declared:
        return SignalInfo(name, declared[name], "gauges")
    return None


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise GrammarError(f"unexpected {text[pos:pos + 12]!r} at column {pos + 1}")
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group(), pos + 1))
        pos = m.end()
    return out


def convert_threshold(number: str, signal: SignalInfo) -> float:
    m = _NUM_UNIT.match(number)
    value, suffix = float(m.group(1)), m.group(2) or ""
    if not math.isfinite(value) or abs(value) > 1e15:
        raise GrammarError(f"bad threshold: {number!r} is not a finite number of sensible size (|x| <= 1e15)")
    unit = signal.unit
    if suffix == "":
        return value
    if suffix in ("ms", "s"):
        if unit not in ("ms", "s"):
            raise GrammarError(f"bad unit: {number!r} is a duration but {signal.name} is in {unit}")
        ms = value if suffix == "ms" else value * 1000
        return ms if unit == "ms" else ms / 1000
    if suffix in ("pct", "%"):
        if unit not in ("ratio", "delta"):
            raise GrammarError(f"bad unit: {number!r} is a percentage but {signal.name} is in {unit}"
                               " (pct applies to ratio and delta signals)")
        return value / 100
    raise GrammarError(f"bad unit: {number!r} (use ms, s or pct)")


class _Parser:
    def __init__(self, text: str, declared: dict | None = None):
        self.text = text
        self.declared = declared
        self.toks = _tokens(text)
        self.i = 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else ("end", "", len(self.text) + 1)

    def take(self):
        t = self.peek()
        self.i += 1
        return t

    def fail(self, expected: str):
        kind, val, col = self.peek()
        got = "end of text" if kind == "end" else repr(val)
        raise GrammarError(f"expected {expected} at column {col}, got {got}")

    def parse(self):
        if not self.toks:
            raise GrammarError("empty condition")
        e = self.expr()
        if self.peek()[0] != "end":
            self.fail("'and', 'or' or end")
        return e

    def expr(self):
        items = [self.term()]
        while self.peek() == ("word", "or", self.peek()[2]):
            self.take()
            items.append(self.term())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def term(self):
        items = [self.atom()]
        while self.peek() == ("word", "and", self.peek()[2]):
            self.take()
            items.append(self.atom())
        return items[0] if len(items) == 1 else And(tuple(items))

    def atom(self):
        kind, val, col = self.peek()
        if kind == "lp":
            self.take()
            e = self.expr()
            if self.peek()[0] != "rp":
                self.fail("')'")
            self.take()
            return e
        if kind != "word" or val in ("and", "or", "for"):
            self.fail("a signal name")
        self.take()
        info = signal_info(val, self.declared)
        if info is None:
            raise GrammarError(f"unknown signal {val!r} at column {col}{_known(val, self.declared)}")
        kind, op, _ = self.peek()
        if kind != "op":
            self.fail("a comparison (>, >=, <, <=, ==, !=)")
        self.take()
        kind, number, ncol = self.peek()
        if kind != "num" or number[-1] in "mhdw" and not number.endswith("ms"):
            self.fail("a number (optionally with ms, s or pct)")
        self.take()
        threshold = convert_threshold(number, info)
        for_ms = 0
        if self.peek()[:2] == ("word", "for"):
            self.take()
            kind, dur, dcol = self.peek()
            if kind != "num":
                self.fail("a duration such as 5m")
            self.take()
            try:
                for_ms = parse_duration_ms(dur)
            except TimeFormatError:
                raise GrammarError(f"bad duration {dur!r} at column {dcol} (use e.g. 30s, 5m, 24h)") from None
            if for_ms <= 0:
                raise GrammarError(f"duration must be positive at column {dcol}")
        return Cond(info.name, val, op, threshold, for_ms)


def parse_condition(text: str, declared: dict | None = None):
    """Parse a `when` text into Cond / And / Or (declared: the policy's declared signals, name ->
    unit). Raises GrammarError."""
    if not isinstance(text, str):
        raise GrammarError(f"a condition must be a string, got {type(text).__name__}")
    return _Parser(text, declared).parse()


def _known(name: str, declared: dict | None) -> str:
    """What an unknown name could have been: the closest name, and the policy's declared ones."""
    names = sorted(set(catalogue.CATALOGUE) | set(catalogue.ALIASES) | set(declared or ()))
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    mine = f"; declared here: {', '.join(sorted(declared))}" if declared else "; this policy declares none"
    return f"{hint}: the built-in signals are in docs/signals.md{mine} (signals.declared)"


def conds(expr) -> list[Cond]:
    """Every Cond of an expression, left to right."""
    if isinstance(expr, Cond):
        return [expr]
    return [c for item in expr.items for c in conds(item)]


def render(expr) -> str:
    """Normalized text: catalogue names, thresholds in catalogue units."""
    if isinstance(expr, Cond):
        return expr.text()
    sep = " and " if isinstance(expr, And) else " or "
    return sep.join(f"({render(i)})" if isinstance(i, (And, Or)) else render(i) for i in expr.items)
