"""The operator's RBAC (deploy/rbac.yaml) is enough for a whole lifecycle and no broader than needed.

The operator of every e2e module runs with ``controlplane.operator_kubeconfig``: the identity
``system:serviceaccount:druid-access:druid-access-operator`` bound by deploy/rbac.yaml. Here a
short lifecycle of all four kinds (generated password Secret, Events, finalizers, status) runs
under it, and ``kubectl auth can-i`` with that same kubeconfig checks what it may and may not do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import yaml

from druid_access.claims import KEY_SECRET
from druid_access.testing.controlplane import OPERATOR_NAMESPACE, OPERATOR_USER, ControlPlane
from druid_access.testing.environment import (
    FakesInThread,
    OperatorProcess,
    apply,
    install,
    json_documents,
    kubectl_json,
    operator_config,
    repo_root,
    secret,
    wait_for,
    wait_reason,
)

NS = "rbac"
ADMIN_PW = "admin-pw-rbac"
TOKEN = "pivot-token-rbac"
GROUP = "druidaccess.io"
PLURALS = ("druidusers", "druidroles", "druidgroupmappings", "druidconnections")


@pytest.fixture(scope="module")
def fakes() -> Iterator[FakesInThread]:
    with FakesInThread(admin_password=ADMIN_PW, pivot_token=TOKEN, credential_iterations=1000) as f:
        yield f


@pytest.fixture(scope="module")
def operator(
    controlplane: ControlPlane, fakes: FakesInThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    install(controlplane, admin_user="admin", admin_password=ADMIN_PW, pivot_token=TOKEN)
    controlplane.kubectl("create", "namespace", NS)
    proc = OperatorProcess(
        config=operator_config(fakes, resync_seconds=30.0),
        kubeconfig=controlplane.operator_kubeconfig,
        workdir=tmp_path_factory.mktemp("operator-rbac"),
    )
    proc.start()
    try:
        yield proc
    finally:
        controlplane.kubectl("delete", "druid", "--all", "-n", NS, "--timeout=60s", check=False)
        code = proc.stop()
        assert code == 0, proc.log()[-3000:]


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def _db_password(fakes: FakesInThread, connection: str) -> object:
    token = fakes.pivot.connections[connection].get("defaultDbAuthToken")
    return token.get("password") if isinstance(token, dict) else None


def can_i(cp: ControlPlane, verb: str, resource: str, *extra: str) -> bool:
    """``kubectl auth can-i`` as the operator itself (its own kubeconfig, not --as)."""
    result = cp.kubectl(
        "auth", "can-i", verb, resource, *extra, kubeconfig=cp.operator_kubeconfig, check=False
    )
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), f"can-i {verb} {resource} {extra}: {result.stdout} {result.stderr}"
    return answer == "yes"


def test_operator_kubeconfig_is_the_service_account(
    controlplane: ControlPlane, operator: OperatorProcess
) -> None:
    assert operator.kubeconfig == controlplane.operator_kubeconfig
    review = kubectl_json(
        controlplane, "auth", "whoami", "--kubeconfig", str(controlplane.operator_kubeconfig)
    )
    assert review["status"]["userInfo"]["username"] == OPERATOR_USER
    assert "system:masters" not in review["status"]["userInfo"].get("groups", [])


def test_lifecycle_passes_under_the_operator_rbac(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp = controlplane
    apply(cp, secret("erin-pw", {"password": "erin-secret-rbac"}, NS))
    apply(
        cp,
        [
            _doc(
                "DruidRole",
                "rbac-readers",
                {"permissions": [{"resource": {"type": "DATASOURCE", "name": "rbac.*"}, "action": "READ"}]},
            ),
            _doc(
                "DruidUser",
                "erin",
                {
                    "roles": ["rbac-readers"],
                    "password": {"secretKeyRef": {"name": "erin-pw", "key": "password"}},
                },
            ),
            # A generated password: the operator creates this Secret itself.
            _doc(
                "DruidUser",
                "frank",
                {
                    "roles": ["rbac-readers"],
                    "password": {"secretKeyRef": {"name": "frank-pw", "key": "password"}, "generate": True},
                },
            ),
            _doc(
                "DruidGroupMapping", "rbac-analysts", {"groupPattern": "cn=rbac", "roles": ["rbac-readers"]}
            ),
            _doc(
                "DruidConnection",
                "rbac-conn",
                {
                    "queryHosts": ["broker:8082"],
                    "defaultDbAuthToken": {
                        "username": "erin",
                        "passwordSecretRef": {"name": "erin-pw", "key": "password"},
                    },
                },
            ),
        ],
    )
    objects = (
        ("druidrole", "rbac-readers"),
        ("druiduser", "erin"),
        ("druiduser", "frank"),
        ("druidgroupmapping", "rbac-analysts"),
        ("druidconnection", "rbac-conn"),
    )
    for kind, name in objects:
        obj = wait_reason(cp, kind, NS, name, "Synced", timeout=60)
        # Finalizer (patch of the object) and status (patch of /status) both went through.
        assert f"{GROUP}/finalizer" in obj["metadata"].get("finalizers", [])
        assert obj["status"]["owned"] is True
    coord = fakes.coordinator
    assert coord.users["erin"] == {"rbac-readers"} and coord.users["frank"] == {"rbac-readers"}
    assert "rbac-analysts" in coord.group_mappings
    assert _db_password(fakes, "rbac-conn") == "erin-secret-rbac"
    generated = kubectl_json(cp, "get", "secret", "frank-pw", "-n", NS)
    assert generated["metadata"]["ownerReferences"][0]["name"] == "frank"
    # Events were created by the operator's identity.
    events = kubectl_json(cp, "get", "events", "-n", NS)["items"]
    reasons = {e["reason"] for e in events if e["involvedObject"]["namespace"] == NS}
    assert {"CreatedRole", "CreatedAuthenticatorUser", "CreatedGroupMapping"} <= reasons, reasons

    # A Secret change reaches the operator through its watch (list/watch secrets).
    apply(cp, secret("erin-pw", {"password": "erin-secret-rbac-2"}, NS))
    wait_for(
        lambda: _db_password(fakes, "rbac-conn") == "erin-secret-rbac-2",
        timeout=30,
        what="the rotated password in Pivot",
    )

    for kind, name in objects[::-1]:
        cp.kubectl("delete", kind, name, "-n", NS, "--timeout=60s")
    assert not {"erin", "frank"} & set(coord.users)
    assert "rbac-readers" not in coord.roles
    assert "rbac-analysts" not in coord.group_mappings
    assert "rbac-conn" not in fakes.pivot.connections

    log = operator.log()
    # RBAC denials name the identity; other 403s (a namespace left Terminating by another
    # module, as there is no namespace controller here) are not about these rules.
    denied = [line for line in log.splitlines() if 'forbidden: User "system:serviceaccount' in line]
    assert denied == []
    assert "Traceback" not in log


# (verb, API group, resource, subresource)
Check = tuple[str, str, str, str]
RBAC_GROUP = "rbac.authorization.k8s.io"
CRDS = ("apiextensions.k8s.io", "customresourcedefinitions")

MUST: list[Check] = [
    *[(verb, GROUP, plural, "") for plural in PLURALS for verb in ("get", "list", "watch", "patch")],
    *[(verb, GROUP, plural, "status") for plural in PLURALS for verb in ("get", "patch")],
    *[(verb, "", "secrets", "") for verb in ("get", "list", "watch", "create")],
    ("create", "", "events", ""),
    ("create", "events.k8s.io", "events", ""),
    *[(verb, *CRDS, "") for verb in ("get", "list", "watch")],
    *[(verb, "", "namespaces", "") for verb in ("list", "watch")],
]

MUST_NOT: list[Check] = [
    *[(verb, "", "secrets", "") for verb in ("update", "patch", "delete", "deletecollection")],
    *[(verb, "", "pods", "") for verb in ("create", "delete", "get")],
    ("create", "", "pods", "exec"),
    *[
        (verb, GROUP, plural, "")
        for plural in PLURALS
        for verb in ("create", "update", "delete", "deletecollection")
    ],
    *[("update", GROUP, plural, "status") for plural in PLURALS],
    *[(verb, *CRDS, "") for verb in ("create", "update", "patch", "delete")],
    *[
        (verb, RBAC_GROUP, resource, "")
        for resource in ("clusterroles", "clusterrolebindings", "roles", "rolebindings")
        for verb in ("create", "update", "patch", "delete")
    ],
    *[
        (verb, RBAC_GROUP, resource, "")
        for resource in ("clusterroles", "roles")
        for verb in ("escalate", "bind")
    ],
    *[
        (verb, "", "configmaps", "")
        for verb in ("create", "get", "list", "watch", "update", "patch", "delete")
    ],
    *[("impersonate", "", resource, "") for resource in ("users", "groups", "serviceaccounts")],
    ("create", "", "serviceaccounts", "token"),
    *[(verb, "", "events", "") for verb in ("update", "delete")],
    *[(verb, "", "namespaces", "") for verb in ("create", "delete", "update")],
    ("get", "", "nodes", ""),
    ("*", "*", "*", ""),
    ("*", GROUP, "druidusers", ""),
    ("*", "", "secrets", ""),
    ("get", "*", "*", ""),
]

SCOPES = (NS, OPERATOR_NAMESPACE, "")  # "" = cluster-wide (all namespaces)


def _label(check: Check, namespace: str) -> str:
    verb, group, resource, sub = check
    where = f"-n {namespace}" if namespace else "--all-namespaces"
    return f"{verb} {resource}{'/' + sub if sub else ''}{'.' + group if group else ''} {where}"


def access(cp: ControlPlane, checks: Sequence[Check], namespaces: Sequence[str]) -> dict[str, bool]:
    """What ``kubectl auth can-i`` asks, for many checks in one call: SelfSubjectAccessReviews
    created with the operator's own kubeconfig, so the API server answers for that identity."""
    cases = [(check, ns) for check in checks for ns in namespaces]
    reviews = [
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "verb": verb,
                    "group": group,
                    "resource": resource,
                    "subresource": sub,
                    "namespace": ns,
                }
            },
        }
        for (verb, group, resource, sub), ns in cases
    ]
    result = cp.kubectl(
        "create",
        "-f",
        "-",
        "-o",
        "json",
        kubeconfig=cp.operator_kubeconfig,
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": reviews}),
    )
    # One document per review created (or a List of them).
    items = [
        i
        for doc in json_documents(result.stdout)
        for i in (doc["items"] if doc.get("kind") == "List" else [doc])
    ]
    assert len(items) == len(cases)
    return {
        _label(check, ns): bool(item["status"]["allowed"])
        for (check, ns), item in zip(cases, items, strict=True)
    }


def test_operator_can_do_what_it_needs(controlplane: ControlPlane) -> None:
    answers = access(controlplane, MUST, (NS, ""))
    assert [check for check, ok in answers.items() if not ok] == []
    # The same through `kubectl auth can-i` itself, for a few of them.
    assert can_i(controlplane, "patch", f"druidusers.{GROUP}", "--subresource=status", "-n", NS)
    assert can_i(controlplane, "create", "secrets", "--all-namespaces")
    assert can_i(controlplane, "watch", f"druidconnections.{GROUP}", "--all-namespaces")
    # The key of the ownership claims: one Secret in its own namespace.
    assert can_i(controlplane, "create", "secrets", "-n", OPERATOR_NAMESPACE)
    assert can_i(controlplane, "get", f"secrets/{KEY_SECRET}", "-n", OPERATOR_NAMESPACE)


def test_operator_cannot_do_more(controlplane: ControlPlane) -> None:
    answers = access(controlplane, MUST_NOT, SCOPES)
    assert [check for check, ok in answers.items() if ok] == []
    for args in (
        ("delete", "secrets", "-n", NS),
        ("update", "secrets", "--all-namespaces"),
        ("delete", f"druidusers.{GROUP}", "-n", NS),
        ("create", "pods", "-n", OPERATOR_NAMESPACE),
        ("create", "configmaps", "-n", OPERATOR_NAMESPACE),
        ("patch", f"secrets/{KEY_SECRET}", "-n", OPERATOR_NAMESPACE),
        ("delete", f"secrets/{KEY_SECRET}", "-n", OPERATOR_NAMESPACE),
        ("impersonate", "serviceaccounts"),
        ("*", "*", "--all-namespaces"),
    ):
        assert not can_i(controlplane, *args), args


def test_effective_rules_have_no_wildcards(controlplane: ControlPlane) -> None:
    """SelfSubjectRulesReview as the operator: no `*` verb, resource or group on any resource rule."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": NS},
    }
    result = controlplane.kubectl(
        "create",
        "-f",
        "-",
        "-o",
        "json",
        kubeconfig=controlplane.operator_kubeconfig,
        input=json.dumps(review),
    )
    rules = json.loads(result.stdout)["status"]["resourceRules"]
    assert any("druidusers" in rule.get("resources", []) for rule in rules), rules
    wild = [
        rule
        for rule in rules
        if "*" in [*rule.get("verbs", []), *rule.get("resources", []), *rule.get("apiGroups", [])]
    ]
    assert wild == []


def test_rbac_manifest_has_no_wildcards() -> None:
    docs = [d for d in yaml.safe_load_all((repo_root() / "deploy" / "rbac.yaml").read_text()) if d]
    roles = [d for d in docs if d["kind"] in ("ClusterRole", "Role")]
    assert roles, "deploy/rbac.yaml defines no role"
    for role in roles:
        for rule in role["rules"]:
            assert "nonResourceURLs" not in rule, rule
            assert "resourceNames" not in rule or rule["resourceNames"], rule
            for field in ("apiGroups", "resources", "verbs"):
                values = rule.get(field, [])
                assert values, f"{field} missing in {rule}"
                assert not [v for v in values if "*" in v], f"wildcard in {field}: {rule}"
            # Nothing that lets the operator hand itself more rights.
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
    bindings = [d for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    for binding in bindings:
        assert binding["roleRef"]["name"] in {r["metadata"]["name"] for r in roles}, binding
        assert binding["roleRef"]["name"] != "cluster-admin"
