"""The gauges the dashboard and alerts read: objects by Ready reason, and each target's health."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from prometheus_client import CollectorRegistry, generate_latest

from druid_access import metrics
from druid_access.config import parse
from druid_access.kube import Kube
from druid_access.loops import Loops
from druid_access.targets import Targets

CONFIG = {
    "clusters": {"default": {"coordinatorUrl": "http://c:8081", "adminSecret": {"name": "a"}}},
    "pivots": {"main": {"url": "http://p:9095", "tokenSecret": {"name": "t"}}},
}


def _body(name: str, reason: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "ns", "uid": name, "generation": 1},
        "spec": {},
    }
    if reason is not None:
        body["status"] = {"conditions": [{"type": "Ready", "status": "False", "reason": reason}]}
    return body


def _scrape(loops: Loops, targets: Targets) -> str:
    registry = CollectorRegistry()
    registry.register(metrics.StateCollector(loops.by_reason, targets.up))
    return generate_latest(registry).decode()


def test_objects_are_counted_by_kind_and_ready_reason_and_targets_by_health() -> None:
    loops = Loops()
    targets = Targets(config=parse(CONFIG), kube=cast(Kube, None))
    loops.observe(("DruidUser", "ns", "a"), _body("a", "Synced"))
    loops.observe(("DruidUser", "ns", "b"), _body("b", "RoleNotFound"))
    loops.observe(("DruidUser", "ns", "c"), _body("c", None))  # no status yet
    loops.observe(("DruidRole", "ns", "r"), _body("r", "Synced"))
    text = _scrape(loops, targets)
    assert 'druid_access_objects{kind="DruidUser",reason="Synced"} 1.0' in text
    assert 'druid_access_objects{kind="DruidUser",reason="RoleNotFound"} 1.0' in text
    assert 'druid_access_objects{kind="DruidUser",reason="Pending"} 1.0' in text
    assert 'druid_access_objects{kind="DruidRole",reason="Synced"} 1.0' in text
    assert 'druid_access_target_up{target="default",target_type="cluster"} 1.0' in text
    assert 'druid_access_target_up{target="main",target_type="pivot"} 1.0' in text

    # The status the operator writes replaces the watch's; a closed object is no longer counted.
    loops.records[("DruidUser", "ns", "b")].remember({"conditions": [{"type": "Ready", "reason": "Synced"}]})
    loops.close(("DruidUser", "ns", "c"))
    breaker = targets.health("cluster", "default")
    breaker.down_since = breaker.down_since or datetime.now(UTC)
    text = _scrape(loops, targets)
    assert 'druid_access_objects{kind="DruidUser",reason="Synced"} 2.0' in text
    assert 'reason="RoleNotFound"' not in text and 'reason="Pending"' not in text
    assert 'druid_access_target_up{target="default",target_type="cluster"} 0.0' in text
