"""End-to-end fixtures: one real etcd + kube-apiserver per test session (see ``druid_access.testing.controlplane``).

Every test collected under ``tests/e2e`` is marked ``e2e`` so the suite can be split with ``-m``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from druid_access.testing.controlplane import ControlPlane
from druid_access.testing.druid import SUPPORTED_VERSIONS

E2E_DIR = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Conftest hooks see the whole session's items, so restrict the marker to this directory.
    for item in items:
        if item.path.is_relative_to(E2E_DIR):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def controlplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A started control plane shared by the session; empty apart from what the apiserver bootstraps."""
    plane = ControlPlane(tmp_path_factory.mktemp("controlplane"))
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="module", params=SUPPORTED_VERSIONS)
def druid_version(request: pytest.FixtureRequest) -> str:
    """A module that asks for it runs once per supported Druid release."""
    version: str = request.param
    return version
