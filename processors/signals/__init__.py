"""Windowed signals from ingest partials: one task per gw.partials partition owns its scopes.

Scope / cohort / subject conventions:
  requests  scope = service, cohort = sample cohort (default "stable"), subject = "" (requests.py)
  gauges    scope = service, cohort, subject = "", name = the gauge name (gauges.py)
  rum       scope = the sample's service/app (default "web"), cohort, subject = route (vitals.py)
  cdc       scope = the record's scope or db.table, cohort = "stable", subject = db.table (tables.py)
Batches: one SignalBatch (a list that also carries .domain and .scope) per (E, domain, scope),
ordered by E, then domain, then scope; signals inside a batch ordered by (name, cohort, subject,
window_s). The task and its watermark: task.py; the record: common.py.
"""
from gatewatch.processors.signals.common import DEFAULT_COHORT, SignalBatch, batch_domain
from gatewatch.processors.signals.pipeline import run_pipeline
from gatewatch.processors.signals.task import SignalTask
from gatewatch.processors.windows import SignalConfig

__all__ = ["DEFAULT_COHORT", "SignalBatch", "SignalConfig", "SignalTask", "batch_domain", "run_pipeline"]
