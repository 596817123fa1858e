"""Namespace teardown never wedges: deleting a tenant namespace removes every remote object and the
namespace, in both RBAC modes of the chart.

The control plane runs kube-controller-manager's namespace controller and garbage collector, so a
deleted namespace is emptied as on a real cluster: its RoleBindings go at once, its custom resources
wait for the operator to remove their finalizers. The operator runs as the chart would run it (the
Deployment's args, the ConfigMap's config, the chart's ServiceAccount), once with
``watch.allNamespaces`` (ClusterRoleBindings) and once watching named namespaces (RoleBindings there).

Each mode: objects of all four kinds (a generated password Secret among them) reach the fakes, then
``kubectl delete namespace`` must end with the namespace gone, no finalizer left and nothing of
it on the fake Coordinator or Pivot, within ``TEARDOWN_TIMEOUT``. Also: a generated Secret is
collected with its DruidUser; and a namespace deleted while the operator is down stays
Terminating until the operator is back, then completes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from chart_support import ChartOperator, Helm, helm_path, install_release, read_back, sa_kubeconfig

from druid_access.testing.controlplane import ControlPlane
from druid_access.testing.environment import FakesInThread, apply, kubectl_json, secret, wait_for, wait_reason

RELEASE_NS = "dao-teardown"
ADMIN_PW = "admin-pw-teardown"
TOKEN = "pivot-token-teardown"
ADMIN_SECRET = "teardown-druid-admin"
PIVOT_SECRET = "teardown-pivot-token"
GROUP = "druidaccess.io"
KINDS = "druidusers,druidroles,druidgroupmappings,druidconnections"
TEARDOWN_TIMEOUT = 90.0
FORBIDDEN = 'forbidden: User "system:serviceaccount'


@dataclass(frozen=True)
class Mode:
    id: str
    all_namespaces: bool

    @property
    def release(self) -> str:
        return f"dao-td-{self.id}"

    @property
    def tenants(self) -> tuple[str, str]:
        return f"td-{self.id}-a", f"td-{self.id}-b"


MODES = [Mode("cluster", all_namespaces=True), Mode("namespaced", all_namespaces=False)]


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    path = helm_path()
    if not path.is_file():
        pytest.fail(f"helm not found at {path}: run `make helm` (or set $HELM)")
    return Helm(path, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="module")
def fakes() -> Iterator[FakesInThread]:
    with FakesInThread(admin_password=ADMIN_PW, pivot_token=TOKEN, credential_iterations=1000) as f:
        yield f


@pytest.fixture(scope="module", params=MODES, ids=[m.id for m in MODES])
def mode(request: pytest.FixtureRequest) -> Mode:
    value: Mode = request.param
    return value


@pytest.fixture(scope="module")
def operator(
    helm: Helm,
    controlplane: ControlPlane,
    fakes: FakesInThread,
    mode: Mode,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ChartOperator]:
    cp = controlplane
    for ns in (RELEASE_NS, *mode.tenants):
        if cp.kubectl("get", "namespace", ns, check=False).returncode != 0:
            cp.kubectl("create", "namespace", ns)
    apply(
        cp,
        [
            secret(ADMIN_SECRET, {"username": "admin", "password": ADMIN_PW}, RELEASE_NS),
            secret(PIVOT_SECRET, {"token": TOKEN}, RELEASE_NS),
        ],
    )
    target = {"allowedNamespaces": list(mode.tenants), "resyncSeconds": 5, "timeoutSeconds": 5}
    values = {
        "watch": {"allNamespaces": True}
        if mode.all_namespaces
        else {"allNamespaces": False, "namespaces": list(mode.tenants)},
        "clusters": {
            "default": {
                "coordinatorUrl": fakes.coordinator.url,
                "adminSecret": {"name": ADMIN_SECRET},
                **target,
            }
        },
        "pivots": {"default": {"url": fakes.pivot.url, "tokenSecret": {"name": PIVOT_SECRET}, **target}},
    }
    workdir = tmp_path_factory.mktemp(f"teardown-{mode.id}")
    release = install_release(helm, cp, mode.release, values, workdir, namespace=RELEASE_NS)
    args, config_text = read_back(cp, release)
    proc = ChartOperator(
        deployment_args=args,
        config_text=config_text,
        kubeconfig=sa_kubeconfig(cp, release.fullname, RELEASE_NS, workdir / "sa.kubeconfig"),
        workdir=workdir / "operator",
        pod_namespace=RELEASE_NS,
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        helm.run(
            "uninstall", mode.release, "-n", RELEASE_NS, "--wait", kubeconfig=cp.admin_kubeconfig, check=False
        )
        # Anything still here would wedge: say so through the tests, then let later modules run.
        for ns in mode.tenants:
            for ref in cp.kubectl("get", KINDS, "-n", ns, "-o", "name", check=False).stdout.split():
                cp.kubectl(
                    "patch",
                    ref,
                    "-n",
                    ns,
                    "--type=merge",
                    "-p",
                    '{"metadata":{"finalizers":null}}',
                    check=False,
                )
    log = proc.log()
    assert FORBIDDEN not in log, [line for line in log.splitlines() if FORBIDDEN in line][:5]
    assert "Traceback" not in log, log[-3000:]


def doc(kind: str, name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def populate(cp: ControlPlane, ns: str) -> list[tuple[str, str]]:
    """Objects of all four kinds in ``ns`` (remote names prefixed with it), all Synced."""
    apply(cp, secret("pw", {"password": f"{ns}-password-1"}, ns))
    password = {"secretKeyRef": {"name": "pw", "key": "password"}}
    objects = [
        doc(
            "DruidRole",
            "readers",
            ns,
            {
                "name": f"{ns}-readers",
                "permissions": [{"resource": {"type": "DATASOURCE", "name": "x"}, "action": "READ"}],
            },
        ),
        *(
            doc(
                "DruidUser",
                f"user-{i}",
                ns,
                {"name": f"{ns}-user-{i}", "roles": [f"{ns}-readers"], "password": password},
            )
            for i in range(5)
        ),
        doc(
            "DruidUser",
            "generated",
            ns,
            {
                "name": f"{ns}-generated",
                "roles": [f"{ns}-readers"],
                "password": {"secretKeyRef": {"name": "generated-pw", "key": "password"}, "generate": True},
            },
        ),
        doc(
            "DruidGroupMapping",
            "analysts",
            ns,
            {"name": f"{ns}-analysts", "groupPattern": f"cn={ns}", "roles": [f"{ns}-readers"]},
        ),
        doc(
            "DruidConnection",
            "main",
            ns,
            {
                "name": f"{ns}-main",
                "queryHosts": ["broker:8082"],
                "defaultDbAuthToken": {
                    "username": "svc",
                    "passwordSecretRef": {"name": "pw", "key": "password"},
                },
            },
        ),
    ]
    apply(cp, objects)
    refs = [(o["kind"].lower(), o["metadata"]["name"]) for o in objects]
    for kind, name in refs:
        wait_reason(cp, kind, ns, name, "Synced", timeout=60)
    return refs


def remote_names(fakes: FakesInThread, ns: str) -> set[str]:
    """Everything on the fakes whose name the namespace's objects gave it."""
    coord, pivot = fakes.coordinator, fakes.pivot

    def collect() -> set[str]:
        names = set(coord.users) | set(coord.roles) | set(coord.group_mappings) | set(pivot.connections)
        return {n for n in names if n.startswith(f"{ns}-")}

    return fakes.call(collect)


def namespace_gone(cp: ControlPlane, ns: str) -> bool:
    return cp.kubectl("get", "namespace", ns, check=False).returncode != 0


def test_deleting_a_tenant_namespace_removes_everything_and_never_wedges(
    controlplane: ControlPlane, fakes: FakesInThread, operator: ChartOperator, mode: Mode
) -> None:
    cp = controlplane
    ns = mode.tenants[0]
    populate(cp, ns)
    assert len(remote_names(fakes, ns)) == 9  # 6 users, a role, a group mapping, a connection
    generated = kubectl_json(cp, "get", "secret", "generated-pw", "-n", ns)
    assert generated["metadata"]["ownerReferences"][0]["kind"] == "DruidUser"
    bindings = kubectl_json(
        cp, "get", "rolebindings", "-n", ns, "-l", f"app.kubernetes.io/instance={mode.release}"
    )
    # Namespaced mode: the RoleBinding the namespace controller deletes at once, before the resources.
    assert len(bindings["items"]) == (0 if mode.all_namespaces else 1)

    started = time.monotonic()
    cp.kubectl("delete", "namespace", ns, "--wait=false")
    wait_for(lambda: namespace_gone(cp, ns), timeout=TEARDOWN_TIMEOUT, what=f"namespace {ns} to be deleted")
    took = time.monotonic() - started
    print(f"{mode.id}: namespace {ns} with 9 resources deleted in {took:.1f} s")
    assert remote_names(fakes, ns) == set()


def test_a_generated_secret_goes_with_its_druid_user(
    controlplane: ControlPlane, fakes: FakesInThread, operator: ChartOperator, mode: Mode
) -> None:
    cp = controlplane
    ns = mode.tenants[1]
    populate(cp, ns)
    cp.kubectl("delete", "druiduser", "generated", "-n", ns, "--timeout=60s")
    # The garbage collector follows the Secret's ownerReference to the deleted DruidUser.
    wait_for(
        lambda: cp.kubectl("get", "secret", "generated-pw", "-n", ns, check=False).returncode != 0,
        timeout=60,
        what="the garbage collector to delete the generated Secret",
    )
    assert f"{ns}-generated" not in remote_names(fakes, ns)
    assert cp.kubectl("get", "secret", "pw", "-n", ns, check=False).returncode == 0  # not owned: kept


def test_a_namespace_deleted_while_the_operator_is_down_completes_when_it_is_back(
    controlplane: ControlPlane, fakes: FakesInThread, operator: ChartOperator, mode: Mode
) -> None:
    cp = controlplane
    ns = mode.tenants[1]
    before = remote_names(fakes, ns)
    assert before  # left by the previous test
    assert operator.stop() == 0
    cp.kubectl("delete", "namespace", ns, "--wait=false")

    def all_marked() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = kubectl_json(cp, "get", KINDS, "-n", ns)["items"]
        return items if items and all(o["metadata"].get("deletionTimestamp") for o in items) else None

    # The namespace controller marks every resource deleted; their finalizers keep them.
    stuck = wait_for(all_marked, timeout=60, what="the namespace controller to delete the resources")
    time.sleep(5)  # and nothing else happens while the operator is away
    assert len(kubectl_json(cp, "get", KINDS, "-n", ns)["items"]) == len(stuck)
    assert kubectl_json(cp, "get", "namespace", ns)["status"]["phase"] == "Terminating"
    assert remote_names(fakes, ns) == before  # nothing was deleted remotely

    operator.start()
    wait_for(lambda: namespace_gone(cp, ns), timeout=TEARDOWN_TIMEOUT, what=f"namespace {ns} to be deleted")
    assert remote_names(fakes, ns) == set()
