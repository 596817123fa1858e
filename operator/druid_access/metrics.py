"""Prometheus metrics of the operator (served by ``druid-access run --metrics-port``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECONCILES = Counter(
    "druid_access_reconciles_total",
    "Reconcile passes by kind and resulting Ready reason.",
    ["kind", "reason"],
)
RECONCILE_SECONDS = Histogram(
    "druid_access_reconcile_duration_seconds",
    "Wall time of one reconcile pass, remote calls included.",
    ["kind"],
)
REMOTE_WRITES = Counter(
    "druid_access_remote_writes_total",
    "Writes made to Druid or Pivot, by kind and operation.",
    ["kind", "operation"],
)
DRIFT = Counter(
    "druid_access_drift_detected_total",
    "Times a resource that was in sync was found to differ remotely.",
    ["kind"],
)
