"""What a worker does when a pass fails with an exception nothing expected (a bug): it logs
where, once per streak and never the exception's message, and retries with backoff."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from druid_access import passes
from druid_access.loops import Record


class Boom(Exception):
    pass


SECRET = "canary-" + "secret-value"  # a value at run time: a traceback shows source, not values


async def _failing_pass(*_: Any) -> None:
    raise Boom(SECRET)


async def test_a_failed_pass_logs_where_once_per_streak_and_never_the_message(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(passes, "_reconcile_pass", _failing_pass)
    engine: Any = SimpleNamespace(claims=SimpleNamespace(loaded=True))
    app = passes.App(engine, events=lambda body: lambda *event: None, listed=True)
    retries: list[float] = []
    monkeypatch.setattr(app.loops, "retry", lambda record, delay: retries.append(delay))
    body = {"metadata": {"namespace": "team", "name": "alice", "uid": "u1"}}
    record = Record(("DruidUser", "team", "alice"), json.dumps(body).encode(), 1)
    with caplog.at_level(logging.ERROR, logger="druid_access.passes"):
        await passes.run_pass(app, record)
        await passes.run_pass(app, record)
    first, second = (r.getMessage() for r in caplog.records)
    assert first.startswith("DruidUser team/alice: pass failed: Boom\n")
    assert "in _failing_pass" in first  # the frame where it failed
    assert second == "DruidUser team/alice: pass failed: Boom"  # the same streak: one line
    assert "canary" not in first + second
    assert record.attempts == 2
    assert len(retries) == 2 and retries[1] >= retries[0] > 0
