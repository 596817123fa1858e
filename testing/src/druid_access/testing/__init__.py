"""Test doubles and launchers, so users can test their manifests: the ``druid-access-testing``
distribution (``testing/`` in the repository), not the operator's wheel or image.

- ``FakeCoordinator``: a stateful HTTP server that behaves like Druid's Coordinator
  basic-security API (see ``fake_coordinator``).
- ``FakePivot``: a stateful HTTP server that behaves like Pivot's connections API.
- ``controlplane``: a local etcd + kube-apiserver + kube-controller-manager for end-to-end tests.
- ``cli``: the ``druid-access-testing`` command (``fake-coordinator``, ``fake-pivot``,
  ``controlplane``, ``druid``).
"""

from druid_access.testing.fake_coordinator import FakeCoordinator
from druid_access.testing.fake_pivot import FakePivot

__all__ = ["FakeCoordinator", "FakePivot"]
