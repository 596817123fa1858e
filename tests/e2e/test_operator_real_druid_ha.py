"""The operator against two REAL Druid Coordinators sharing ZooKeeper and the metadata store.

Production Druid runs several Coordinators; only the leader serves the basic-security API and the
others answer every request with ``307`` to the leader's own address. ZooKeeper and the Derby
metadata server (``SharedState``) outlive either Coordinator, as a real cluster's do. Coordinator
``a`` starts first and leads; ``b`` follows.

The operator (restricted identity, namespace ``realdruid-ha``) has four clusters on them:
``via-b`` (the follower's URL, ``leaderHosts: [127.0.0.1]``), ``via-a`` (the leader's URL, same
list), ``via-service`` (a round-robin proxy over both, standing in for a Kubernetes Service, same
list) and ``strict`` (the follower's URL, no list: the redirect must be refused and nothing
written). Then the leader is killed while users are being created, and everything converges on
the Coordinator that takes over; restarted, ``a`` follows and ``via-a`` converges through it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from druid_access.clients import AuthenticatorName, AuthorizerName, CoordinatorClient, NotFound
from druid_access.testing.controlplane import ControlPlane
from druid_access.testing.druid import DruidCoordinator, SharedState
from druid_access.testing.environment import (
    OperatorProcess,
    apply,
    kubectl_json,
    operator_on_real_druid,
    secret,
    wait_for,
    wait_reason,
)
from druid_access.testing.service import RoundRobinService

pytestmark = pytest.mark.contract

ADMIN_PW = "ha-Adm1n-pw"
INTERNAL_PW = "ha-internal-pw"
ADMIN_SECRET = "druid-admin-realdruid-ha"
AUTHN = AuthenticatorName("basic")
AUTHZ = AuthorizerName("basic")
CLUSTERS = ("via-b", "via-a", "via-service")
# A killed leader's ZooKeeper session, and with it its leadership, ends after this long.
SESSION_TIMEOUT_MS = 3000


@pytest.fixture(scope="module")
def ns(druid_version: str) -> str:
    """One namespace per Druid version: the local control plane deletes no namespace."""
    return f"realdruid-ha-{druid_version.split('.')[0]}"


@pytest.fixture(scope="module")
def coordinators(
    druid_version: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[DruidCoordinator, DruidCoordinator]]:
    root = tmp_path_factory.mktemp(f"realdruid-ha-{druid_version}")
    with SharedState(root / "shared", version=druid_version) as shared:
        pair = tuple(
            DruidCoordinator(
                root / name,
                admin_password=ADMIN_PW,
                internal_password=INTERNAL_PW,
                zookeeper=shared.zookeeper,
                metadata_uri=shared.metadata_uri,
                version=druid_version,
                extra_properties={"druid.zk.service.sessionTimeoutMs": str(SESSION_TIMEOUT_MS)},
            )
            for name in ("a", "b")
        )
        try:
            for coordinator in pair:  # in order: the first one takes the leadership
                coordinator.start()
            yield pair[0], pair[1]
        finally:
            for coordinator in pair:
                coordinator.stop()


@pytest.fixture(scope="module")
def service(coordinators: tuple[DruidCoordinator, DruidCoordinator]) -> Iterator[RoundRobinService]:
    with RoundRobinService([("127.0.0.1", c.port) for c in coordinators]) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def operator(
    controlplane: ControlPlane,
    coordinators: tuple[DruidCoordinator, DruidCoordinator],
    service: RoundRobinService,
    tmp_path_factory: pytest.TempPathFactory,
    ns: str,
) -> Iterator[OperatorProcess]:
    a, b = coordinators

    def cluster(url: str, leader_hosts: list[str]) -> dict[str, Any]:
        return {"coordinatorUrl": url, "leaderHosts": leader_hosts, "resyncSeconds": 5, "timeoutSeconds": 5}

    clusters = {
        "via-b": cluster(b.url, ["127.0.0.1"]),
        "via-a": cluster(a.url, ["127.0.0.1"]),
        "via-service": cluster(service.url, ["127.0.0.1"]),
        "strict": cluster(b.url, []),
    }
    with operator_on_real_druid(
        controlplane,
        clusters=clusters,
        namespace=ns,
        admin_secret=ADMIN_SECRET,
        admin_password=ADMIN_PW,
        workdir=tmp_path_factory.mktemp("realdruid-ha-operator"),
    ) as proc:
        yield proc


def leader_of(coordinators: tuple[DruidCoordinator, ...]) -> DruidCoordinator:
    """The Coordinator whose ``isLeader`` says true (unauthenticated endpoint)."""

    def probe() -> DruidCoordinator | None:
        for coordinator in coordinators:
            try:
                response = httpx.get(f"{coordinator.url}/druid/coordinator/v1/isLeader", timeout=2)
            except httpx.HTTPError:
                continue
            if response.status_code == 200 and response.json().get("leader") is True:
                return coordinator
        return None

    return wait_for(probe, timeout=60, what="a Coordinator leader")


def roles_on(leader: DruidCoordinator, user: str) -> frozenset[str] | None:
    async def run() -> frozenset[str] | None:
        async with CoordinatorClient(leader.url, username="admin", password=SecretStr(ADMIN_PW)) as client:
            try:
                return (await client.get_authorizer_user(AUTHZ, user)).roles
            except NotFound:
                return None

    return asyncio.run(run())


def can_login(leader: DruidCoordinator, user: str, password: str) -> bool:
    async def run() -> bool:
        async with CoordinatorClient(leader.url, username="admin", password=SecretStr(ADMIN_PW)) as client:
            return await client.check_login(user, SecretStr(password))

    return asyncio.run(run())


def doc(ns: str, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "druidaccess.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def user(ns: str, name: str, cluster: str, role: str) -> dict[str, Any]:
    return doc(
        ns,
        "DruidUser",
        name,
        {
            "cluster": cluster,
            "roles": [role],
            "password": {"secretKeyRef": {"name": "ha-pw", "key": "password"}},
        },
    )


def test_every_kind_syncs_through_the_follower_and_the_leader(
    controlplane: ControlPlane,
    coordinators: tuple[DruidCoordinator, DruidCoordinator],
    operator: OperatorProcess,
    ns: str,
) -> None:
    cp = controlplane
    a, b = coordinators
    assert leader_of(coordinators) is a
    # The follower really redirects (the failure this module exists for).
    follower = httpx.get(
        f"{b.url}/druid-ext/basic-security/authentication/db/basic/users", auth=("admin", ADMIN_PW), timeout=5
    )
    assert follower.status_code == 307
    assert follower.headers["location"].startswith(a.url)

    apply(cp, secret("ha-pw", {"password": "ha-user-pw-1"}, ns))
    objects = []
    for cluster in CLUSTERS:
        role, mapping = f"ha-readers-{cluster}", f"ha-mapping-{cluster}"
        objects += [
            doc(
                ns,
                "DruidRole",
                role,
                {
                    "cluster": cluster,
                    "permissions": [{"resource": {"type": "STATE", "name": "STATE"}, "action": "READ"}],
                },
            ),
            user(ns, f"ha-user-{cluster}", cluster, role),
            doc(
                ns,
                "DruidGroupMapping",
                mapping,
                {"cluster": cluster, "groupPattern": f"cn={cluster},ou=groups", "roles": [role]},
            ),
        ]
    apply(cp, objects)
    for obj in objects:
        wait_reason(cp, obj["kind"].lower(), ns, obj["metadata"]["name"], "Synced", timeout=90)
    for cluster in CLUSTERS:
        assert roles_on(a, f"ha-user-{cluster}") == frozenset({f"ha-readers-{cluster}"})
        assert can_login(a, f"ha-user-{cluster}", "ha-user-pw-1")


def test_a_redirect_outside_leader_hosts_is_refused_and_nothing_is_written(
    controlplane: ControlPlane,
    coordinators: tuple[DruidCoordinator, DruidCoordinator],
    operator: OperatorProcess,
    ns: str,
) -> None:
    cp = controlplane
    a, _ = coordinators
    apply(
        cp,
        [
            doc(ns, "DruidRole", "ha-strict-role", {"cluster": "strict", "permissions": []}),
            user(ns, "ha-strict-user", "strict", "ha-strict-role"),
        ],
    )
    obj = wait_reason(cp, "druiduser", ns, "ha-strict-user", "RedirectRefused", timeout=60)
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert "leaderHosts" in ready["message"]
    assert a.url.removeprefix("http://") in ready["message"]
    assert "the request was not sent there" in ready["message"]
    assert roles_on(a, "ha-strict-user") is None
    events = kubectl_json(
        cp, "get", "events", "-n", ns, "--field-selector", "involvedObject.name=ha-strict-user"
    )
    assert {e["reason"] for e in events["items"]} >= {"RedirectRefused"}


def test_the_leader_killed_mid_run_and_everything_converges(
    controlplane: ControlPlane,
    coordinators: tuple[DruidCoordinator, DruidCoordinator],
    operator: OperatorProcess,
    ns: str,
) -> None:
    cp = controlplane
    a, b = coordinators
    names = [f"ha-failover-{i}" for i in range(20)]
    apply(cp, [user(ns, name, "via-b", "ha-readers-via-b") for name in names])
    a.kill()  # while those users are being created, through the follower, on the leader
    items = kubectl_json(cp, "get", "druidusers", "-n", ns)["items"]  # one read, right after the kill
    synced_at_kill = sum(
        1
        for obj in items
        if obj["metadata"]["name"] in names
        and any(c.get("reason") == "Synced" for c in (obj.get("status") or {}).get("conditions") or [])
    )
    assert synced_at_kill < len(names), "the leader was killed too late to be mid-run"
    assert leader_of((b,)) is b
    for name in names:
        wait_reason(cp, "druiduser", ns, name, "Synced", timeout=120)
        assert roles_on(b, name) == frozenset({"ha-readers-via-b"})
    assert can_login(b, names[-1], "ha-user-pw-1")
    # Through the Service, the dead Coordinator's endpoint is skipped and "b" leads.
    apply(cp, user(ns, "ha-service-after-kill", "via-service", "ha-readers-via-service"))
    wait_reason(cp, "druiduser", ns, "ha-service-after-kill", "Synced", timeout=60)
    assert roles_on(b, "ha-service-after-kill") == frozenset({"ha-readers-via-service"})

    # "via-a" lost its Coordinator: its objects say so, and nothing is lost.
    apply(cp, user(ns, "ha-after-kill", "via-a", "ha-readers-via-a"))
    wait_reason(cp, "druiduser", ns, "ha-after-kill", "Unreachable", timeout=60)

    # Restarted at the same address, "a" now follows and redirects to "b": "via-a" converges.
    a.start()
    assert leader_of(coordinators) is b
    obj = wait_reason(cp, "druiduser", ns, "ha-after-kill", "Synced", timeout=120)
    assert obj["status"]["owned"] is True
    assert roles_on(b, "ha-after-kill") == frozenset({"ha-readers-via-a"})
    # What was made through "a" before the kill is still there: the metadata store outlived it.
    assert roles_on(b, "ha-user-via-a") == frozenset({"ha-readers-via-a"})
