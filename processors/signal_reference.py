"""docs/signals.md, rendered from the catalogue (processors.catalogue) so the reference cannot drift
from what the policy grammar accepts: `gatewatch policy signals > docs/signals.md` (a test checks)."""
from __future__ import annotations

from gatewatch.processors.catalogue import ALIASES, CATALOGUE

INPUTS = {
    "requests": "request samples on gw.metrics; OTLP traces (SERVER spans); OTLP metrics "
                "`http.server.request.duration`; Prometheus `http_requests_total` / "
                "`http_request_duration_seconds_bucket` (README, Feeding gatewatch)",
    "rum": "web-vitals beacons on gw.rum",
    "cdc": "Debezium change events on gw.cdc; scope = the owning service (`cdc.services`) or the table",
    "gauges": "gauge samples on gw.metrics (`{\"type\": \"gauge\", \"name\", \"value\"}`)",
    "trajectories": "spans on gw.spans through `gatewatch trajectories run`",
}
UNITS = {"ms": "milliseconds (a rule may write 800ms or 0.8s)", "s": "seconds", "ratio": "fraction in [0, 1] (0.1pct)",
         "delta": "relative change vs the baseline cohort, fraction (10pct = 0.10)",
         "multiple": "multiple of the error budget", "rps": "requests per second", "count": "plain number"}


def render(builtin: dict | None = None) -> str:
    """builtin: the built-in layer's declared signals (processors.declared.parse_declared)."""
    out = ["# Signal reference", "",
           "Generated from `processors/catalogue.py` by `gatewatch policy signals`; do not edit by hand.",
           "Every signal is computed per scope (service), cohort and step (10 s by default); rules and the",
           "gate read the gate cohort's value. A policy can add its own under `signals.declared`",
           "(README, Metrics instead of one record per request).", "", "## Units", ""]
    out += [f"- `{u}`: {text}" for u, text in UNITS.items()]
    for domain in ("requests", "rum", "cdc", "gauges", "trajectories"):
        out += ["", f"## {domain}", "", f"Inputs: {INPUTS[domain]}.", "", "| signal | unit | meaning |", "|---|---|---|"]
        out += [f"| `{s.name}` | {s.unit} | {s.doc} |" for s in sorted(CATALOGUE.values(), key=lambda s: s.name)
                if s.domain == domain]
    out += ["", "## Declared in the built-in layer", "",
            "The seed systems' gauges, declared in `configs/builtin.yml` (`signals.declared`) and read by the",
            "built-in hooks. The producer publishes a gauge sample on gw.metrics named like the signal; a",
            "critical hook on one that is never published stays unknown and blocks the gate.", "",
            "| signal | unit | meaning (producer) |", "|---|---|---|"]
    out += [f"| `{d.name}` | {d.unit} | {d.description} |" for d in sorted((builtin or {}).values(), key=lambda d: d.name)]
    out += ["", "## Aliases (names from the seed documents)", "", "| alias | signal |", "|---|---|"]
    out += [f"| `{a}` | `{n}` |" for a, n in sorted(ALIASES.items())]
    return "\n".join(out) + "\n"
