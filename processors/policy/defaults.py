"""The built-in policy layer, composed *under* project.yml (lowest precedence).

It is YAML like the user's files, so it is part of the composed document, the
policy hash (INV4: changing a built-in default changes the hash) and `explain`
(origin ``<builtin>:line``). Hook definitions and burn-rate presets live here.

``${a.b.c}`` inside a ``when`` is replaced by that value of the composed policy
(e.g. the latency hook follows ``slo.latency_p95_ms.target``).

Hooks keyed on gauges the signal catalogue lacks (see GAUGE_SIGNALS) are defined
so they can be enabled once those gauges are published.
"""
from __future__ import annotations

BUILTIN_FILE = "<builtin>"

# Gauges used by hooks below that gatewatch.processors.catalogue does not list (yet):
# name -> unit. gatewatch.processors.policy resolves them in the "gauges" domain.
GAUGE_SIGNALS: dict[str, str] = {
    "resolution_sla_breaches": "count",  # markets resolved later than their SLA, in the window
    "api_contract_breaks": "count",      # consumer-contract test failures against the release
    "dp_budget_used": "ratio",           # share of the differential-privacy budget spent
    "liquidity_depth_ratio": "ratio",    # pool depth vs its baseline
    "price_divergence": "delta",         # price vs reference oracle, fraction
    "model_psi": "count",                # population stability index of the model inputs (seed 003)
    "srm_p_value": "ratio",              # sample-ratio-mismatch test p-value of the experiment split
}

BUILTIN_YAML = """\
version: 1
slo:
  availability: {window: 28d, target: 99.9}
  latency_p95_ms: {window: 5m, target: 800}
obs:
  self_slo: {uptime_target_pct_30d: 99.9, burn_rate_max_per_4h: 1.0}
permits:
  ttl: 1h
evaluation:
  # gaps between evaluated steps longer than `max_gap` break a `for` streak and the gate's
  # clean streak; unset = max(60s, 3 x signals.step)
  # buffered steps per scope while waiting for a lagging domain (then evaluated as missing)
  max_pending_steps: 720
rule_defaults:
  on_missing: hold
  min_samples: 1
  abort_severity: page
  hook_severity: ticket
gate:
  # rules and the gate read this cohort; other cohorts are context (baseline) in the actions
  cohort: canary
  # domains not split by cohort (one database serves every cohort): any cohort counts
  shared_domains: [cdc]
  min_samples: 1
  # signals that must be present (not null, enough samples) at every step of a promotion window
  required: [latency_p95_ms, err5xx_rate, burn_rate_4h, invariant, rum_inp_p75_ms, obs_uptime]
  # conditions that block promotion while true or unknown, on top of the abort rules and
  # critical hooks; `invariant > 0` and `burn_rate_4h >= 1` (INV2, INV3) always apply
  block_when: []
  # a blocking rule's breach blocks promotion once it has lasted this long (or its own
  # `for`, if shorter), well before the rule fires; null = only as the rule fires
  breach_tolerance: 3m
  stages:
    EXEC_FAST_OK: {window: 5m}
    EXEC_FULL_OK: {window: 10m}
    ORR_OK: {window: 15m}
    CANARY_READY: {window: 30m}
presets:
  mwmbr_page: "(burn_rate_1h > 14.4 and burn_rate_5m > 14.4) or (burn_rate_6h > 6 and burn_rate_30m > 6)"
  mwmbr_ticket: "(burn_rate_1d > 3 and burn_rate_2h > 3) or (burn_rate_3d > 1 and burn_rate_6h > 1)"
hooks:
  critical: []
  must_have: []
  aliases:
    amm_invariant_breach: invariant_breach
    mbp_resolution_sla: resolution_sla
    schema_registry_drift: schema_drift
    mbp_liquidity_depth: liquidity_depth
    mbp_price_spike_divergence: price_spike_divergence
    slo_budget_breach_watch: slo_budget_breach
    dp_budget_breach_watch: dp_budget_breach
    drift: model_drift
  library:
    invariant_breach: {when: "invariant > 0", action: block_release, severity: page}
    latency_budget:
      when: "latency_p95_ms > ${slo.latency_p95_ms.target}ms for ${slo.latency_p95_ms.window}"
      action: throttle
    error_5xx: {when: "err5xx_rate > 1pct for 15m", action: rollback_release, severity: page}
    slo_budget_breach: {preset: mwmbr_page, action: freeze, severity: page}
    slo_budget_ticket: {preset: mwmbr_ticket, action: notify}
    cdc_lag: {when: "cdc_lag_p95_s > 120s for 5m", action: degrade}
    # silence is measured when nothing arrives: samples = 0 is the signal, not a gap
    cdc_freeze: {when: "cdc_silence_s > 600s", action: degrade, min_samples: 0}
    schema_drift: {when: "schema_drift > 0", action: block_release, severity: page}
    web_cwv_regression:
      when: "rum_inp_p75_ms_delta > 10pct for 30m or rum_lcp_p75_ms_delta > 10pct for 30m or rum_cls_p75_delta > 10pct for 30m"
      action: rollback_fe
    obs_self_slo: {when: "obs_uptime < ${obs.self_slo.uptime_target_pct_30d}pct for 10m", action: notify}
    resolution_sla: {when: "resolution_sla_breaches > 0", action: freeze}
    api_contract_break: {when: "api_contract_breaks > 0", action: block_release, severity: page}
    dp_budget_breach: {when: "dp_budget_used >= 100pct", action: block_release, severity: page}
    liquidity_depth: {when: "liquidity_depth_ratio < 50pct for 5m", action: freeze}
    price_spike_divergence: {when: "price_divergence > 5pct for 2m", action: freeze}
    model_drift: {when: "model_psi > 0.2 for 24h", action: rollback_baseline}
    experiment_srm: {when: "srm_p_value < 0.001", action: pause}
"""
