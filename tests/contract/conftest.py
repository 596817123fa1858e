"""Contract suite: every case runs against the fake Coordinator and a real Druid 27.0.0 Coordinator.

``target`` is parametrized with ids ``fake`` and ``real``. The real Coordinator (+ ZooKeeper) is started
once per session from the class path ``make druid`` builds and stopped at the end; if it cannot start,
every ``real`` case fails with the reason (never skips). The fake is started per test. The real
Coordinator's state is shared by the whole session, so cases name everything they create with
``target.unique(...)`` and never assume a listing holds only their own objects.

Expected values in the cases are what the real 27.0.0 Coordinator answers; the fake must match them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from contract_support import ADMIN_PASSWORD, INTERNAL_PASSWORD, ITERATIONS, Target, require_real

from druid_access.testing.druid import DruidCoordinator
from druid_access.testing.fake_coordinator import FakeCoordinator


@pytest.fixture(scope="session")
def real_druid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DruidCoordinator | Exception]:
    """One real Coordinator for the session, or the exception that kept it from starting."""
    try:
        coordinator = DruidCoordinator(
            tmp_path_factory.mktemp("contract-druid"),
            admin_password=ADMIN_PASSWORD,
            internal_password=INTERNAL_PASSWORD,
            credential_iterations=ITERATIONS,
        )
        coordinator.start()
    except Exception as exc:  # reported by every "real" case, see require_real
        yield exc
        return
    try:
        yield coordinator
    finally:
        coordinator.stop()


@pytest.fixture(params=["fake", "real"])
async def target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    if request.param == "fake":
        fake = FakeCoordinator(
            admin_password=ADMIN_PASSWORD,
            internal_password=INTERNAL_PASSWORD,
            credential_iterations=ITERATIONS,
        )
        async with fake, httpx.AsyncClient(base_url=fake.url, timeout=30) as http:
            yield Target("fake", fake.url, http)
    else:
        druid = require_real(request.getfixturevalue("real_druid"))
        async with httpx.AsyncClient(base_url=druid.url, timeout=30) as http:
            yield Target("real", druid.url, http)
