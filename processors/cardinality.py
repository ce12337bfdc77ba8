"""Active series per budget domain, against the seed 000 cardinality budget.

A series is one (signal name, scope, subject, cohort) as published on gw.signals: what a metrics
backend would store as one time series. "Active" = seen in the input (optionally: with a record
at or after `since_ms`, e.g. the last hour of the stream).

Budgets (seed 000, docs/mbp/sprint-2/cardinality_budget.md): DEC 2000, MBP 3000, FE 2000,
DATA 2000, INT 1000, SEC 1000; global 12000.

Our signal domains -> budget domains:
  requests     -> DEC   the exchange/API request path (latency, 5xx, burn rates, request rate)
  rum          -> FE    Core Web Vitals from the browser
  cdc          -> DATA  change-data-capture tables (lag, silence, schema drift)
  trajectories -> INT   agent trajectory quality (integrations)
  gauges       -> MBP   business gauges (market resolution SLA, experiment SRM, model drift...),
                        except those named in SIGNAL_BUDGET (the pool invariant and its market
                        gauges are DEC's, contracts and the observability self-SLO are INT's,
                        the privacy budget is SEC's)
Anything else counts under OTHER (no budget of its own, still in the global total).
"""
from __future__ import annotations

from typing import Iterable

BUDGETS: dict[str, int] = {"DEC": 2000, "MBP": 3000, "FE": 2000, "DATA": 2000, "INT": 1000, "SEC": 1000}
GLOBAL_BUDGET = 12000
DOMAIN_BUDGET: dict[str, str] = {"requests": "DEC", "rum": "FE", "cdc": "DATA", "trajectories": "INT",
                                 "gauges": "MBP"}
SIGNAL_BUDGET: dict[str, str] = {
    "invariant": "DEC", "liquidity_depth_ratio": "DEC", "price_divergence": "DEC",
    "api_contract_breaks": "INT", "obs_uptime": "INT",
    "dp_budget_used": "SEC",
}
OTHER = "OTHER"
FORMAT = "gatewatch.cardinality/1"


def budget_domain(signal: dict) -> str:
    return SIGNAL_BUDGET.get(signal.get("name")) or DOMAIN_BUDGET.get(signal.get("domain"), OTHER)


def series_key(signal: dict, with_cohort: bool = True) -> tuple:
    key = (str(signal.get("name")), str(signal.get("scope")), str(signal.get("subject") or ""))
    return key + (str(signal.get("cohort") or ""),) if with_cohort else key


def count_series(signals: Iterable[dict], with_cohort: bool = True, since_ms: int | None = None,
                 ts_ms=None) -> dict[str, dict[tuple, str]]:
    """budget domain -> {series key: our domain}. ts_ms(signal) gives a signal's time when
    since_ms is set (signals without a time are kept)."""
    out: dict[str, dict[tuple, str]] = {}
    for s in signals:
        if not isinstance(s, dict) or "name" not in s:
            continue
        if since_ms is not None and ts_ms is not None:
            t = ts_ms(s)
            if t is not None and t < since_ms:
                continue
        out.setdefault(budget_domain(s), {})[series_key(s, with_cohort)] = str(s.get("domain"))
    return out


def report(series: dict[str, dict[tuple, str]], budgets: dict[str, int] | None = None,
           global_budget: int = GLOBAL_BUDGET) -> dict:
    """The cardinality report: per budget domain series, budget, status and the top signals."""
    budgets = BUDGETS if budgets is None else budgets
    domains = {}
    total = 0
    for dom in sorted(set(budgets) | set(series)):
        keys = series.get(dom, {})
        n = len(keys)
        total += n
        by_signal: dict[str, int] = {}
        for k in keys:
            by_signal[k[0]] = by_signal.get(k[0], 0) + 1
        budget = budgets.get(dom)
        domains[dom] = {
            "series": n, "budget": budget,
            "used_pct": None if not budget else round(100.0 * n / budget, 2),
            "status": "OK" if budget is None or n <= budget else "OVER",
            "sources": sorted(set(keys.values())),
            "by_signal": dict(sorted(by_signal.items(), key=lambda kv: (-kv[1], kv[0]))),
        }
    over = [d for d, r in domains.items() if r["status"] == "OVER"]
    status = "OVER" if over or total > global_budget else "OK"
    return {"format": FORMAT, "series_active": total, "budget_global": global_budget, "status": status,
            "over": over + (["GLOBAL"] if total > global_budget else []), "domains": domains,
            "mapping": {"domains": dict(DOMAIN_BUDGET), "signals": dict(SIGNAL_BUDGET), "other": OTHER},
            "summary": f"series_active={total}, budget_global={global_budget}, status={status}"}
