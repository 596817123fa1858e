"""Safe delegation, end to end: a tenant namespace never reaches Druid admin.

A real kube-apiserver, the fake Coordinator and fake Pivot, and ``druid-access run`` under
the operator's restricted identity, watching two namespaces allowed on the same cluster:
``deleg-tenant`` and ``deleg-platform``, the only one in ``privilegedNamespaces`` and
``adoptionNamespaces``. For each route to admin the tenant's resource gets a specific
reason and the Coordinator or Pivot sees no request about it (checked on the fakes'
request logs), while the same resource in the platform namespace is applied:

- a protected role given by a DruidUser or a DruidGroupMapping (also as ``Admin``);
- a DruidRole with a security-administration permission (``CONFIG`` on ``security``, or on
  a regex such as ``.*`` that matches it, READ or WRITE);
- ``adoptionPolicy: Adopt`` over a pre-existing account;
- a Secret that did not opt in, referenced by a DruidUser or a DruidConnection (its value
  reaches neither Druid nor Pivot, nor any status, Event or log line); opting in applies it;
- look-alike remote names, refused by the API server before the operator sees them;
- group patterns that are not distinguished names.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any, Literal

import pytest

from druid_access.claims import ANNOTATION
from druid_access.passwords import verify_password
from druid_access.testing.controlplane import ControlPlane
from druid_access.testing.environment import (
    FakesInThread,
    OperatorProcess,
    apply,
    install,
    kubectl_json,
    operator_config,
    purge,
    ready_condition,
    secret,
    wait_reason,
)
from druid_access.testing.fake_coordinator import Permission as FakePermission
from druid_access.testing.faults import Fault, RequestRecord

TENANT = "deleg-tenant"
PLATFORM = "deleg-platform"
NAMESPACES = (TENANT, PLATFORM)
ADMIN_PW = "admin-pw-delegation"
TOKEN = "pivot-token-delegation"
RESYNC = 2.0
SETTLE = 2 * RESYNC * 1.1 + 0.3  # two resyncs of every object
CANARY = "canary-app-db-password-5d2f"

Server = Literal["coordinator", "pivot"]


@pytest.fixture(scope="module")
def fakes() -> Iterator[FakesInThread]:
    with FakesInThread(admin_password=ADMIN_PW, pivot_token=TOKEN, credential_iterations=1000) as f:
        yield f


@pytest.fixture(scope="module")
def cluster(controlplane: ControlPlane) -> Iterator[ControlPlane]:
    cp = controlplane
    install(cp, admin_user="admin", admin_password=ADMIN_PW, pivot_token=TOKEN)
    apply(cp, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in NAMESPACES])
    yield cp
    purge(cp, NAMESPACES)


@pytest.fixture(scope="module")
def operator(
    cluster: ControlPlane, fakes: FakesInThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(
        config=operator_config(
            fakes,
            resync_seconds=RESYNC,
            allowed_namespaces=("deleg-*",),
            privileged_namespaces=(PLATFORM,),
            adoption_namespaces=(PLATFORM,),
        ),
        kubeconfig=cluster.operator_kubeconfig,
        workdir=tmp_path_factory.mktemp("operator-delegation"),
        namespaces=NAMESPACES,
    )
    proc.start()
    yield proc
    code = proc.stop()
    assert code == 0, proc.log()[-3000:]


def _doc(kind: str, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace}
    return {"apiVersion": "druidaccess.io/v1alpha1", "kind": kind, "metadata": meta, "spec": spec}


def _perm(type_: str, name: str, action: str) -> dict[str, Any]:
    return {"resource": {"type": type_, "name": name}, "action": action}


def _records(fakes: FakesInThread, server: Server) -> list[RequestRecord]:
    fake = fakes.coordinator if server == "coordinator" else fakes.pivot
    return fakes.call(lambda: list(fake.requests.records))


def _hits(fakes: FakesInThread, server: Server, mark: int, pattern: str) -> list[str]:
    """Requests after ``mark`` whose decoded path matches ``pattern``."""
    found = re.compile(pattern)
    return [f"{r.method} {r.path}" for r in _records(fakes, server)[mark:] if found.search(r.path)]


def _refused(
    cp: ControlPlane, kind: str, namespace: str, name: str, reason: str, *words: str
) -> dict[str, Any]:
    obj = wait_reason(cp, kind, namespace, name, reason)
    message = ready_condition(obj)["message"]  # type: ignore[index]
    for word in words:
        assert word in message, message
    assert obj["status"].get("owned") is not True
    return obj


def _try_apply(cp: ControlPlane, doc: dict[str, Any]) -> Any:
    return cp.kubectl("apply", "-f", "-", input=json.dumps(doc), check=False)


def _delete(cp: ControlPlane, kind: str, namespace: str, *names: str) -> None:
    cp.kubectl("delete", kind, *names, "-n", namespace, "--timeout=60s")


# ------------------------------------------------------------------ escalation to protected roles


def test_protected_role_from_a_tenant_user_or_group_mapping_is_not_permitted(
    cluster: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp, coord = cluster, fakes.coordinator
    mark = len(_records(fakes, "coordinator"))
    group = "cn=everyone,ou=groups,dc=example,dc=org"
    docs = [
        _doc("DruidUser", TENANT, "escalate-user", {"roles": ["admin"]}),
        _doc("DruidUser", TENANT, "escalate-case", {"roles": ["Admin"]}),
        _doc("DruidGroupMapping", TENANT, "escalate-map", {"groupPattern": group, "roles": ["admin"]}),
    ]
    apply(cp, docs)
    _refused(cp, "druiduser", TENANT, "escalate-user", "NotPermitted", "protected role 'admin'", TENANT)
    _refused(cp, "druiduser", TENANT, "escalate-case", "NotPermitted", "protected role 'Admin'")
    _refused(cp, "druidgroupmapping", TENANT, "escalate-map", "NotPermitted", "protected role 'admin'")
    time.sleep(SETTLE)
    assert _hits(fakes, "coordinator", mark, "escalate") == []
    assert fakes.call(
        lambda: "escalate-user" not in coord.users and "escalate-map" not in coord.group_mappings
    )

    # The platform namespace may: the same objects are applied there.
    apply(
        cp,
        [
            _doc("DruidUser", PLATFORM, "platform-admin", {"roles": ["admin"]}),
            _doc("DruidGroupMapping", PLATFORM, "platform-map", {"groupPattern": group, "roles": ["admin"]}),
        ],
    )
    wait_reason(cp, "druiduser", PLATFORM, "platform-admin", "Synced")
    wait_reason(cp, "druidgroupmapping", PLATFORM, "platform-map", "Synced")
    assert fakes.call(lambda: coord.users["platform-admin"]) == {"admin"}
    assert fakes.call(lambda: coord.group_mappings["platform-map"].roles) == {"admin"}
    _delete(cp, "druiduser", TENANT, "escalate-user", "escalate-case")
    _delete(cp, "druidgroupmapping", TENANT, "escalate-map")
    _delete(cp, "druiduser", PLATFORM, "platform-admin")
    _delete(cp, "druidgroupmapping", PLATFORM, "platform-map")
    assert _hits(fakes, "coordinator", mark, "escalate") == []


@pytest.mark.parametrize(
    ("name", "permission"),
    [
        ("sec-write", _perm("CONFIG", "security", "WRITE")),
        ("sec-read", _perm("CONFIG", "security", "READ")),
        ("sec-any", _perm("CONFIG", ".*", "WRITE")),
        ("sec-prefix", _perm("CONFIG", "sec.*", "READ")),
    ],
)
def test_security_administration_permission_from_a_tenant_is_not_permitted(
    cluster: ControlPlane,
    fakes: FakesInThread,
    operator: OperatorProcess,
    name: str,
    permission: dict[str, Any],
) -> None:
    cp, coord = cluster, fakes.coordinator
    mark = len(_records(fakes, "coordinator"))
    spec = {"permissions": [_perm("DATASOURCE", "wiki.*", "READ"), permission]}
    apply(cp, _doc("DruidRole", TENANT, name, spec))
    label = f"{permission['action']} CONFIG/{permission['resource']['name']}"
    _refused(cp, "druidrole", TENANT, name, "NotPermitted", f"security-administration permission {label}")
    time.sleep(SETTLE)
    assert _hits(fakes, "coordinator", mark, f"/roles/{name}") == []
    assert fakes.call(lambda: name not in coord.roles)

    apply(cp, _doc("DruidRole", PLATFORM, name, spec))
    wait_reason(cp, "druidrole", PLATFORM, name, "Synced")
    stored = fakes.call(lambda: {(p.type, p.name, p.action) for p in coord.roles[name]})
    resource = permission["resource"]
    assert (resource["type"], resource["name"], permission["action"]) in stored
    _delete(cp, "druidrole", TENANT, name)
    _delete(cp, "druidrole", PLATFORM, name)


def test_a_role_that_administers_security_is_as_protected_as_admin(
    cluster: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    """Whatever its name: made by the platform's DruidRole, or by hand on the Coordinator."""
    cp, coord = cluster, fakes.coordinator
    fakes.call(lambda: coord.add_role("handmade-sec", [FakePermission("CONFIG", ".*", "READ")]))
    apply(
        cp, _doc("DruidRole", PLATFORM, "sec-admins", {"permissions": [_perm("CONFIG", "security", "WRITE")]})
    )
    wait_reason(cp, "druidrole", PLATFORM, "sec-admins", "Synced")
    mark = len(_records(fakes, "coordinator"))
    group = "cn=ops,ou=groups,dc=example,dc=org"
    apply(
        cp,
        [
            _doc("DruidUser", TENANT, "grab-sec", {"roles": ["sec-admins"]}),
            _doc(
                "DruidGroupMapping",
                TENANT,
                "grab-handmade",
                {"groupPattern": group, "roles": ["handmade-sec"]},
            ),
        ],
    )
    _refused(
        cp, "druiduser", TENANT, "grab-sec", "NotPermitted", "role 'sec-admins'", "WRITE CONFIG/security"
    )
    _refused(
        cp,
        "druidgroupmapping",
        TENANT,
        "grab-handmade",
        "NotPermitted",
        "role 'handmade-sec'",
        "READ CONFIG/.*",
    )
    time.sleep(SETTLE)
    writes = [r for r in _records(fakes, "coordinator")[mark:] if r.method != "GET" and "grab-" in r.path]
    assert writes == []
    assert fakes.call(lambda: "grab-sec" not in coord.users and "grab-handmade" not in coord.group_mappings)

    apply(cp, _doc("DruidUser", PLATFORM, "ops-lead", {"roles": ["sec-admins"]}))
    wait_reason(cp, "druiduser", PLATFORM, "ops-lead", "Synced")
    assert fakes.call(lambda: coord.users["ops-lead"]) == {"sec-admins"}
    _delete(cp, "druiduser", TENANT, "grab-sec")
    _delete(cp, "druidgroupmapping", TENANT, "grab-handmade")
    _delete(cp, "druiduser", PLATFORM, "ops-lead")
    _delete(cp, "druidrole", PLATFORM, "sec-admins")


# ------------------------------------------------------------------------------------ adoption


def test_adoption_is_refused_in_a_tenant_and_allowed_in_the_platform_namespace(
    cluster: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp, coord = cluster, fakes.coordinator
    fakes.call(lambda: coord.add_user("svc-etl", password="the-etl-password", roles=[]))
    before = fakes.call(lambda: coord.credentials["svc-etl"])
    mark = len(_records(fakes, "coordinator"))
    takeover = [
        secret("takeover-pw", {"password": "tenant-chosen-password"}, TENANT),
        _doc(
            "DruidUser",
            TENANT,
            "svc-etl",
            {
                "adoptionPolicy": "Adopt",
                "password": {"secretKeyRef": {"name": "takeover-pw", "key": "password"}},
            },
        ),
    ]
    apply(cp, takeover)
    _refused(cp, "druiduser", TENANT, "svc-etl", "AdoptionNotAllowed", TENANT, "adoptionNamespaces")
    time.sleep(SETTLE)
    assert _hits(fakes, "coordinator", mark, "svc-etl") == []
    after = fakes.call(lambda: coord.credentials["svc-etl"])
    assert after == before and after is not None and verify_password("the-etl-password", after)
    _delete(cp, "druiduser", TENANT, "svc-etl")

    apply(
        cp,
        [
            secret("adopt-pw", {"password": "platform-password"}, PLATFORM),
            _doc(
                "DruidUser",
                PLATFORM,
                "svc-etl",
                {
                    "adoptionPolicy": "Adopt",
                    "deletionPolicy": "Retain",
                    "password": {"secretKeyRef": {"name": "adopt-pw", "key": "password"}},
                },
            ),
        ],
    )
    obj = wait_reason(cp, "druiduser", PLATFORM, "svc-etl", "Synced")
    assert obj["status"]["owned"] is True
    adopted = fakes.call(lambda: coord.credentials["svc-etl"])
    assert adopted is not None and verify_password("platform-password", adopted)
    _delete(cp, "druiduser", PLATFORM, "svc-etl")


# ------------------------------------------------------------------------------- Secret opt-in


def test_unlabelled_secret_reaches_neither_druid_nor_pivot_until_it_opts_in(
    cluster: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp, coord, pivot = cluster, fakes.coordinator, fakes.pivot
    coord_mark, pivot_mark = len(_records(fakes, "coordinator")), len(_records(fakes, "pivot"))
    apply(
        cp,
        [
            secret("app-db-creds", {"password": CANARY}, TENANT, allow=False),
            _doc(
                "DruidUser",
                TENANT,
                "exfil-user",
                {"password": {"secretKeyRef": {"name": "app-db-creds", "key": "password"}}},
            ),
            _doc(
                "DruidConnection",
                TENANT,
                "exfil-conn",
                {
                    "queryHosts": ["broker:8082"],
                    "defaultDbAuthToken": {
                        "username": "pivot-service",
                        "passwordSecretRef": {"name": "app-db-creds", "key": "password"},
                    },
                },
            ),
        ],
    )
    hint = "druidaccess.io/allow=true"
    _refused(cp, "druiduser", TENANT, "exfil-user", "SecretNotAllowed", "app-db-creds", hint)
    _refused(cp, "druidconnection", TENANT, "exfil-conn", "SecretNotAllowed", "app-db-creds", hint)
    time.sleep(SETTLE)
    assert _hits(fakes, "coordinator", coord_mark, "exfil") == []
    assert _hits(fakes, "pivot", pivot_mark, "exfil") == []
    assert [r for r in _records(fakes, "pivot")[pivot_mark:] if r.method == "POST"] == []
    assert fakes.call(lambda: "exfil-conn" not in pivot.connections and "exfil-user" not in coord.credentials)

    for kind, name in (("druiduser", "exfil-user"), ("druidconnection", "exfil-conn")):
        obj = json.loads(cp.kubectl("get", kind, name, "-n", TENANT, "-o", "json").stdout)
        assert CANARY not in json.dumps(obj["status"])
    events = cp.kubectl("get", "events", "-n", TENANT, "-o", "json").stdout
    assert CANARY not in events and CANARY not in operator.log()

    # Opting in is a change the watch sees: both are applied without waiting for a resync.
    cp.kubectl("label", "secret", "app-db-creds", "-n", TENANT, "druidaccess.io/allow=true")
    wait_reason(cp, "druiduser", TENANT, "exfil-user", "Synced", timeout=30)
    wait_reason(cp, "druidconnection", TENANT, "exfil-conn", "Synced", timeout=30)
    stored = fakes.call(lambda: coord.credentials["exfil-user"])
    assert stored is not None and verify_password(CANARY, stored)
    assert CANARY not in operator.log()
    _delete(cp, "druiduser", TENANT, "exfil-user")
    _delete(cp, "druidconnection", TENANT, "exfil-conn")


def test_generated_secret_carries_the_opt_in_label(
    cluster: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp = cluster
    ref = {"secretKeyRef": {"name": "gen-pw", "key": "password"}, "generate": True}
    apply(cp, _doc("DruidUser", TENANT, "gen-user", {"password": ref}))
    wait_reason(cp, "druiduser", TENANT, "gen-user", "Synced")
    generated = json.loads(cp.kubectl("get", "secret", "gen-pw", "-n", TENANT, "-o", "json").stdout)
    assert generated["metadata"]["labels"]["druidaccess.io/allow"] == "true"
    assert generated["metadata"]["ownerReferences"][0]["name"] == "gen-user"
    _delete(cp, "druiduser", TENANT, "gen-user")

    # An existing Secret without the label is never overwritten nor read, even with generate.
    apply(cp, secret("gen-taken", {"password": CANARY}, TENANT, allow=False))
    ref = {"secretKeyRef": {"name": "gen-taken", "key": "password"}, "generate": True}
    apply(cp, _doc("DruidUser", TENANT, "gen-taken-user", {"password": ref}))
    _refused(cp, "druiduser", TENANT, "gen-taken-user", "SecretNotAllowed", "gen-taken")
    kept = json.loads(cp.kubectl("get", "secret", "gen-taken", "-n", TENANT, "-o", "json").stdout)
    assert "labels" not in kept["metadata"] or "druidaccess.io/allow" not in kept["metadata"]["labels"]
    _delete(cp, "druiduser", TENANT, "gen-taken-user")
    cp.kubectl("delete", "secret", "gen-taken", "-n", TENANT)


# ------------------------------------------------------------------------- names and patterns


LOOK_ALIKES = [
    "ad\u200bmin",
    "\u202eadmin",
    " admin",
    "admin ",
    "ad\tmin",
    "admin\n",
    "\ufeffadmin",
    "a\u2028b",
]


@pytest.mark.parametrize("kind", ["DruidUser", "DruidRole", "DruidGroupMapping", "DruidConnection"])
def test_look_alike_names_are_refused_at_admission(cluster: ControlPlane, kind: str) -> None:
    extra: dict[str, Any] = {
        "DruidGroupMapping": {"groupPattern": "cn=x,dc=example"},
        "DruidConnection": {"queryHosts": ["broker:8082"]},
    }.get(kind, {})
    refused: list[str] = []
    for index, name in enumerate(LOOK_ALIKES):
        doc = _doc(kind, TENANT, f"lookalike-{index}", {**extra, "name": name})
        result = _try_apply(cluster, doc)
        if result.returncode != 0 and "spec.name" in result.stderr:
            refused.append(name)
    assert refused == LOOK_ALIKES
    if kind == "DruidUser":
        # A role list naming a look-alike is refused the same way.
        result = _try_apply(cluster, _doc(kind, TENANT, "lookalike-roles", {"roles": ["ad\u200bmin"]}))
        assert result.returncode != 0 and "spec.roles[0]" in result.stderr, result.stderr


def test_case_variant_of_a_protected_name_is_protected(
    cluster: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp = cluster
    mark = len(_records(fakes, "coordinator"))
    apply(cp, _doc("DruidUser", PLATFORM, "admin-variant", {"name": "Admin", "roles": []}))
    _refused(cp, "druiduser", PLATFORM, "admin-variant", "Protected", "'Admin'")
    time.sleep(SETTLE)
    assert _hits(fakes, "coordinator", mark, "/users/[Aa]dmin") == []
    _delete(cp, "druiduser", PLATFORM, "admin-variant")


@pytest.mark.parametrize("pattern", [".*", "analysts", "*", " cn=x,dc=y"])
def test_group_pattern_that_is_no_dn_is_refused_by_the_api_server(
    cluster: ControlPlane, pattern: str
) -> None:
    result = _try_apply(cluster, _doc("DruidGroupMapping", TENANT, "bad-pattern", {"groupPattern": pattern}))
    assert result.returncode != 0, f"{pattern!r} was accepted"
    assert "spec.groupPattern" in result.stderr, result.stderr


def test_group_patterns_are_checked_as_distinguished_names_before_any_call(
    cluster: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp, coord = cluster, fakes.coordinator
    mark = len(_records(fakes, "coordinator"))
    # Passes the schema (it has '='), but is no DN: Druid would lock out every LDAP user.
    apply(cp, _doc("DruidGroupMapping", TENANT, "not-a-dn", {"groupPattern": "cn=admins,.*"}))
    obj = _refused(cp, "druidgroupmapping", TENANT, "not-a-dn", "InvalidSpec", "distinguished name")
    assert "cn=admins,.*" in ready_condition(obj)["message"]  # type: ignore[index]
    # Druid's documented wildcard form is accepted and applied.
    wildcard = "*,ou=groups,dc=example,dc=org"
    apply(cp, _doc("DruidGroupMapping", TENANT, "wildcard", {"groupPattern": wildcard}))
    wait_reason(cp, "druidgroupmapping", TENANT, "wildcard", "Synced")
    assert fakes.call(lambda: coord.group_mappings["wildcard"].group_pattern) == wildcard
    time.sleep(SETTLE)
    assert _hits(fakes, "coordinator", mark, "not-a-dn") == []
    _delete(cp, "druidgroupmapping", TENANT, "not-a-dn", "wildcard")


# ----------------------------------------------------------------- a 400 is not sent again


def test_a_request_refused_as_invalid_is_not_resent_until_the_spec_changes(
    cluster: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp, coord = cluster, fakes.coordinator
    path = r"/roles/refused-400/permissions$"
    fault = fakes.call(
        lambda: coord.faults.add(Fault(method="POST", path=path, status=400, body={"error": "refused here"}))
    )
    mark = len(_records(fakes, "coordinator"))
    spec = {"permissions": [_perm("DATASOURCE", "wiki.*", "READ")]}
    apply(cp, _doc("DruidRole", TENANT, "refused-400", spec))
    obj = wait_reason(cp, "druidrole", TENANT, "refused-400", "Rejected")
    message = ready_condition(obj)["message"]  # type: ignore[index]
    assert "refused here" in message and "not retried until the spec" in message, message
    time.sleep(2 * SETTLE)  # four resyncs, and a backoff would have retried three times
    assert len(_hits(fakes, "coordinator", mark, path)) == 1
    fakes.call(lambda: coord.faults.remove(fault))
    time.sleep(SETTLE)
    assert len(_hits(fakes, "coordinator", mark, path)) == 1  # still waiting for a change

    apply(
        cp,
        _doc("DruidRole", TENANT, "refused-400", {"permissions": [_perm("DATASOURCE", "wiki.*", "WRITE")]}),
    )
    wait_reason(cp, "druidrole", TENANT, "refused-400", "Synced")
    assert fakes.call(lambda: [(p.name, p.action) for p in coord.roles["refused-400"]]) == [
        ("wiki.*", "WRITE")
    ]
    _delete(cp, "druidrole", TENANT, "refused-400")


def test_an_object_someone_else_created_first_is_not_taken_over(
    cluster: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    """The claim written before a create is withdrawn when the create finds the name taken: the
    object is someone else's, and the next pass treats it as pre-existing (Refuse)."""
    cp, coord = cluster, fakes.coordinator
    fakes.call(
        lambda: coord.faults.add(
            # The create goes through (as another writer's would) but answers "already exists".
            Fault(
                method="POST",
                path=r"/authentication/db/basic/users/race-user$",
                status=400,
                body={"error": "User [race-user] already exists!"},
                times=1,
                after_handling=True,
            )
        )
    )
    mark = len(_records(fakes, "coordinator"))
    apply(
        cp,
        [
            secret("race-pw", {"password": "tenant-password"}, TENANT),
            _doc(
                "DruidUser",
                TENANT,
                "race-user",
                {"password": {"secretKeyRef": {"name": "race-pw", "key": "password"}}},
            ),
        ],
    )
    obj = _refused(cp, "druiduser", TENANT, "race-user", "AlreadyExists", "Adopt")
    assert obj["status"]["owned"] is False
    time.sleep(SETTLE)
    assert _hits(fakes, "coordinator", mark, "/users/race-user/credentials") == []
    assert fakes.call(lambda: coord.credentials.get("race-user")) is None
    # The withdrawn claim is gone from the object (and the status saying owned: false would
    # outweigh it if the tenant put it back).
    obj = kubectl_json(cp, "get", "druiduser", "race-user", "-n", TENANT)
    assert ANNOTATION not in (obj["metadata"].get("annotations") or {})
    # Once the name is free again, the resource claims it afresh, creates it and owns it.
    fakes.call(lambda: coord.credentials.pop("race-user"))
    obj = wait_reason(cp, "druiduser", TENANT, "race-user", "Synced", timeout=30)
    assert obj["status"]["owned"] is True
    assert fakes.call(lambda: verify_password("tenant-password", coord.credentials["race-user"]))
    _delete(cp, "druiduser", TENANT, "race-user")
    assert fakes.call(lambda: "race-user" not in coord.credentials)  # ours now: deleted with it
