"""Prometheus metrics of the operator (served by ``druid-access run --metrics-port``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

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


class StateCollector(Collector):
    """Gauges read from the operator's own state when Prometheus scrapes, so that keeping them
    costs the reconcile path nothing: objects by kind and Ready reason, and each target's health."""

    def __init__(
        self,
        objects: Callable[[], Mapping[tuple[str, str], int]],
        targets: Callable[[], Iterable[tuple[str, str, bool]]],
    ) -> None:
        self._objects = objects
        self._targets = targets

    def collect(self) -> Iterator[Metric]:
        objects = GaugeMetricFamily(
            "druid_access_objects",
            "Custom resources watched, by kind and the reason of their Ready condition (Pending: none yet).",
            labels=["kind", "reason"],
        )
        for (kind, reason), count in sorted(self._objects().items()):
            objects.add_metric([kind, reason], count)
        yield objects
        up = GaugeMetricFamily(
            "druid_access_target_up",
            "1 while a configured Druid cluster or Pivot instance answers, 0 while its breaker is open "
            "(it opens when the passes of three objects got no answer: a target with fewer stays 1).",
            labels=["target_type", "target"],
        )
        for target_type, name, answering in self._targets():
            up.add_metric([target_type, name], 1.0 if answering else 0.0)
        yield up
