"""Test doubles and launchers shipped with the package so users can test their manifests.

- ``FakeCoordinator``: a stateful HTTP server that behaves like Druid's Coordinator
  basic-security API (see ``fake_coordinator``).
- ``FakePivot``: a stateful HTTP server that behaves like Pivot's connections API.
- ``controlplane``: a local etcd + kube-apiserver for end-to-end tests.
"""

from druid_access.testing.fake_coordinator import FakeCoordinator
from druid_access.testing.fake_pivot import FakePivot

__all__ = ["FakeCoordinator", "FakePivot"]
