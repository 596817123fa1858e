"""Contract suite: every case runs against the fake Coordinator and a real Druid Coordinator, once per
supported Druid version (``SUPPORTED_VERSIONS``: 27.0.0 and 37.0.0).

``druid_version`` is a session fixture parametrized over the versions; ``target`` is parametrized with
ids ``fake`` and ``real`` on top of it (test ids such as ``[37.0.0-real]``; ``-k 37.0.0`` runs one
version). The real Coordinator (+ ZooKeeper) of a version is started once per session from the class
path ``make druid`` builds and stopped when the session moves on to the next version (pytest groups the
cases by session parameter), so one Coordinator runs at a time; if it cannot start, every ``real`` case
of that version fails with the reason (never skips). The fake is started per test with
``druid_version``, so it answers like that version. The real Coordinator's state is shared by the whole
session, so cases name everything they create with ``target.unique(...)`` and never assume a listing
holds only their own objects.

Expected values in the cases are what the real Coordinator of ``target.version`` answers; the fake must
match them. Where 37.0.0 answers differently from 27.0.0 a case branches on ``target.version`` (the
differences are listed in docs/druid-versions.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from contract_support import ADMIN_PASSWORD, INTERNAL_PASSWORD, ITERATIONS, Target, require_real

from druid_access.testing.druid import SUPPORTED_VERSIONS, DruidCoordinator
from druid_access.testing.fake_coordinator import FakeCoordinator


@pytest.fixture(scope="session", params=SUPPORTED_VERSIONS)
def druid_version(request: pytest.FixtureRequest) -> str:
    version: str = request.param
    return version


@pytest.fixture(scope="session")
def real_druid(
    druid_version: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DruidCoordinator | Exception]:
    """One real Coordinator of ``druid_version`` for the session, or the exception that kept it from
    starting."""
    try:
        coordinator = DruidCoordinator(
            tmp_path_factory.mktemp(f"contract-druid-{druid_version}"),
            admin_password=ADMIN_PASSWORD,
            internal_password=INTERNAL_PASSWORD,
            credential_iterations=ITERATIONS,
            version=druid_version,
        )
        coordinator.start()
    except Exception as exc:  # reported by every "real" case, see require_real
        exc.add_note(f"Druid {druid_version}")
        yield exc
        return
    try:
        yield coordinator
    finally:
        coordinator.stop()


@pytest.fixture(params=["fake", "real"])
async def target(request: pytest.FixtureRequest, druid_version: str) -> AsyncIterator[Target]:
    if request.param == "fake":
        fake = FakeCoordinator(
            admin_password=ADMIN_PASSWORD,
            internal_password=INTERNAL_PASSWORD,
            credential_iterations=ITERATIONS,
            druid_version=druid_version,
        )
        async with fake, httpx.AsyncClient(base_url=fake.url, timeout=30) as http:
            yield Target("fake", fake.url, http, version=druid_version)
    else:
        druid = require_real(request.getfixturevalue("real_druid"))
        async with httpx.AsyncClient(base_url=druid.url, timeout=30) as http:
            yield Target("real", druid.url, http, version=druid_version)
