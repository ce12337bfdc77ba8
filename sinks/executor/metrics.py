"""Prometheus metrics of one executor (own registry, so tests can run several in one process)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ExecutorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.executions = Counter("gatewatch_executor_executions_total", "Actions carried out, by result",
                                  ["action", "status"], registry=r)
        self.refusals = Counter("gatewatch_executor_refusals_total", "Actions refused, by reason", ["reason"],
                                registry=r)
        self.attempts = Counter("gatewatch_executor_attempts_total", "Backend attempts (webhook tries, runs)",
                                ["backend"], registry=r)
        self.duplicates = Counter("gatewatch_executor_duplicates_total",
                                  "Re-delivered actions that already had a RESULT (not run again)", registry=r)
        self.reruns = Counter("gatewatch_executor_inflight_reruns_total",
                              "In-flight actions (INTENT without RESULT) re-run after a restart", registry=r)
        self.latency = Histogram("gatewatch_executor_effect_duration_seconds", "Backend time per action",
                                 ["backend"], registry=r,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.pending = Gauge("gatewatch_executor_pending_actions", "Actions consumed but not yet settled",
                             registry=r)
        self.intent_unpublished = Counter("gatewatch_executor_intent_unpublished_total",
                                          "Effects started before their INTENT receipt reached Kafka (timeout)",
                                          registry=r)
        self.deliveries = Counter("gatewatch_executor_deliveries_total",
                                  "Webhook deliveries with a recipient ack configured, by confirmed/unconfirmed "
                                  "and reason", ["backend", "delivery", "reason"], registry=r)
        self.receipts = Counter("gatewatch_executor_receipts_published_total", "Receipts delivered to Kafka",
                                registry=r)
