"""The reconcile engine (``Engine.reconcile`` and ``Engine.finalize``): every reason a pass ends
with and every guard, in the order they apply, against the stateful fake Coordinator and fake
Pivot on loopback and an in-memory Kubernetes (``memory_kube.MemoryKube``).

The engine is built the way ``runner.run`` builds it (``Targets``, ``SecretStore``, ``Claims``
from a configuration); a pass is driven the way ``passes`` drives it: ``reconcile`` with the
finalizer helper as ``hold``, then ``write_status`` with the Events collected.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import trustme
from aiohttp import web
from memory_kube import MemoryKube

from druid_access import finalizer
from druid_access import health as health_module
from druid_access.claims import ANNOTATION, Claims
from druid_access.config import parse
from druid_access.health import THRESHOLD
from druid_access.kube import KubeError
from druid_access.models import API_VERSION
from druid_access.observation import AUTHENTICATOR_LANE
from druid_access.passwords import verify_password
from druid_access.reconcile import Claimant, DeletionBlocked, Engine, Result, RolesComing
from druid_access.resources import BY_KIND
from druid_access.resources.base import AnyKind, Claim
from druid_access.secret_store import SecretStore
from druid_access.status import DELETION_BLOCKED, DRIFTED, Outcome, Reason, ready_condition
from druid_access.targets import LIVE_READERS, Targets
from druid_access.testing import FakeCoordinator, FakePivot
from druid_access.testing.fake_coordinator import Permission
from druid_access.testing.faults import Fault

USER, ROLE, MAPPING, CONNECTION = (
    BY_KIND[k] for k in ("DruidUser", "DruidRole", "DruidGroupMapping", "DruidConnection")
)
OPERATOR_NAMESPACE = "druid-access"
ADMIN_PASSWORD = "engine-admin-pw-7f3a"
PIVOT_TOKEN = "engine-pivot-token-91c2"
PASSWORD = {"secretKeyRef": {"name": "alice-pw", "key": "password"}}
GROUP_PATTERN = "cn=analysts,ou=groups,dc=example,dc=org"
SECURITY_WRITE = {"resource": {"type": "CONFIG", "name": "security"}, "action": "WRITE"}
STATE_READ = {"resource": {"type": "STATE", "name": "STATE"}, "action": "READ"}
WIKI_READ = {"resource": {"type": "DATASOURCE", "name": "wiki.*"}, "action": "READ"}
OLDER = Claimant(created="2020-01-01T00:00:00Z", namespace="team-b", name="first", uid="uid-older")
USERS = "/authorization/db/basic/users/alice$"
CREDENTIALS = "/authentication/db/basic/users/alice/credentials$"

Event = tuple[str, str, str]


@pytest.fixture(autouse=True)
def no_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """An open breaker probes its target only after the test is over (never, in effect)."""
    monkeypatch.setattr(health_module, "_probe_delay", lambda attempt: 3600.0)


# ------------------------------------------------------------------------------------ harness


@dataclass
class Pass:
    """One reconcile pass: its result, the status ``write_status`` made of it (None: postponed,
    nothing written) and the Events it posted."""

    result: Result
    status: dict[str, Any] | None
    events: list[Event]

    @property
    def reason(self) -> Reason:
        return self.result.outcome.reason

    @property
    def message(self) -> str:
        return self.result.outcome.message


@dataclass
class Env:
    kube: MemoryKube
    druid: FakeCoordinator
    pivot: FakePivot
    targets: Targets
    engine: Engine
    claimants: dict[tuple[str, str, str], list[Claimant]] = field(default_factory=dict)

    # -- objects ----------------------------------------------------------------------------------

    def create(
        self,
        kind: AnyKind,
        name: str,
        spec: Mapping[str, Any],
        *,
        namespace: str = "team-a",
        status: Mapping[str, Any] | None = None,
        held: bool = False,
    ) -> dict[str, Any]:
        """A new object; ``held``: with the operator's finalizer (a pass held it already)."""
        body = {
            "apiVersion": API_VERSION,
            "kind": kind.info.kind,
            "metadata": {
                "name": name,
                "namespace": namespace,
                **({"finalizers": [finalizer.FINALIZER]} if held else {}),
            },
            "spec": dict(spec),
            "status": dict(status or {}),
        }
        return self.kube.put_object(kind.info.plural, body)

    def current(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        return self.kube.object(BY_KIND[obj["kind"]].info.plural, meta["namespace"], meta["name"])

    def update(self, obj: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
        """Change the stored object: ``spec`` replaces the spec, ``annotations`` are added."""
        body = self.current(obj)
        if "spec" in changes:
            body["spec"] = changes["spec"]
        body["metadata"].setdefault("annotations", {}).update(changes.get("annotations", {}))
        return self.kube.put_object(BY_KIND[obj["kind"]].info.plural, body)

    async def claim(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """The sealed claim a pass puts on an object before its first create."""
        return self.update(obj, annotations=await self.engine.claims.annotation(obj["metadata"]["uid"]))

    def older_claimant(self, obj: Mapping[str, Any], remote_name: str) -> None:
        meta = obj["metadata"]
        kind = BY_KIND[obj["kind"]]
        target = kind.target_name(kind.spec_model(obj["spec"]))
        mine = Claimant(meta["creationTimestamp"], meta["namespace"], meta["name"], meta["uid"])
        self.claimants[(kind.family, target, remote_name)] = [mine, OLDER]

    def lookup(self, claim: Claim) -> list[Claimant]:
        return self.claimants.get((claim.family, claim.target, claim.remote_name), [])

    def ready(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        condition = ready_condition(self.current(obj).get("status"))
        assert condition is not None
        return condition

    def held(self, obj: Mapping[str, Any]) -> bool:
        return finalizer.held(self.current(obj)["metadata"])

    def claimed(self, obj: Mapping[str, Any]) -> bool:
        return ANNOTATION in (self.current(obj)["metadata"].get("annotations") or {})

    # -- targets ----------------------------------------------------------------------------------

    def remote_requests(self) -> int:
        return len(self.druid.requests) + len(self.pivot.requests)

    def remote_writes(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.druid.requests.writes() + self.pivot.requests.writes()]

    def forget_requests(self) -> None:
        self.druid.requests.clear()
        self.pivot.requests.clear()

    def open_breaker(self, target_type: str = "cluster", name: str = "default") -> None:
        health = self.targets.health(target_type, name)
        for attempt in range(THRESHOLD):
            health.unanswered(f"ConnectError: connection refused ({attempt})")
        assert health.down

    # -- passes -----------------------------------------------------------------------------------

    async def reconcile(
        self,
        obj: Mapping[str, Any],
        *,
        bulk: bool = False,
        roles_coming: RolesComing | None = None,
        body: dict[str, Any] | None = None,
    ) -> Pass:
        """A pass on the stored object (or on ``body``, as a lagging watch brought it), then
        its status, as ``passes._reconcile_pass`` runs them."""
        body = body if body is not None else self.current(obj)
        kind = BY_KIND[body["kind"]]
        meta = body["metadata"]

        async def hold(annotations: Mapping[str, str]) -> bool:
            return await finalizer.hold(self.kube, kind.info.plural, meta, annotations)

        events: list[Event] = []

        def emit(type_: str, reason: str, message: str) -> None:
            events.append((type_, reason, message))

        result = await self.engine.reconcile(
            kind, body, self.lookup, emit, bulk=bulk, roles_coming=roles_coming, hold=hold
        )
        status = None
        if not result.postponed:
            status = await self.engine.write_status(kind, body, result.outcome, emit=emit)
        return Pass(result, status, events)

    async def finalize(self, obj: Mapping[str, Any]) -> tuple[str, list[Event]]:
        body = self.kube.delete_object(BY_KIND[obj["kind"]].info.plural, *_key(obj))
        events: list[Event] = []
        done = await self.engine.finalize(
            BY_KIND[body["kind"]], body, self.lookup, lambda *event: events.append(event)
        )
        return done, events


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


def _cluster(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "coordinatorUrl": url,
        "adminSecret": {"name": "druid-admin"},
        "allowedNamespaces": ["team-*", "platform"],
        "privilegedNamespaces": ["platform"],
        "adoptionNamespaces": ["platform", "team-adopt"],
        "brokerUrl": "http://broker.druid:8082",
        "timeoutSeconds": 5,
        **extra,
    }


@contextlib.asynccontextmanager
async def environment(**clusters: Mapping[str, Any]) -> AsyncIterator[Env]:
    """Fakes, an in-memory Kubernetes and an engine built as ``runner.run`` builds it; the
    clusters ``default`` and ``ldap`` (its passwords in LDAP) on the fake Coordinator, the Pivot
    ``default`` on the fake Pivot, and ``clusters`` (name: settings) besides."""
    async with (
        FakeCoordinator(admin_password=ADMIN_PASSWORD, credential_iterations=1000) as druid,
        FakePivot(token=PIVOT_TOKEN) as pivot,
    ):
        druid.add_role("readers", [Permission("DATASOURCE", "wiki", "READ")])
        druid.add_role("writers", [Permission("DATASOURCE", "wiki", "WRITE")])
        druid.add_role("sec-admins", [Permission("CONFIG", ".*", "WRITE")])
        kube = MemoryKube()
        admin = {"username": "admin", "password": ADMIN_PASSWORD}
        kube.put_secret(OPERATOR_NAMESPACE, "druid-admin", admin, allowed=False)
        kube.put_secret(OPERATOR_NAMESPACE, "pivot-token", {"token": PIVOT_TOKEN}, allowed=False)
        config = parse(
            {
                "namespace": OPERATOR_NAMESPACE,
                "clusters": {
                    "default": _cluster(druid.url),
                    "ldap": _cluster(druid.url, credentialsValidator="ldap"),
                    **{name: _cluster(druid.url, **settings) for name, settings in clusters.items()},
                },
                "pivots": {
                    "default": {
                        "url": pivot.url,
                        "tokenSecret": {"name": "pivot-token"},
                        "allowedNamespaces": ["team-*", "platform"],
                        "adoptionNamespaces": ["platform"],
                        "timeoutSeconds": 5,
                    }
                },
            }
        )
        targets = Targets(config, kube)
        engine = Engine(targets, kube, SecretStore(kube, None), Claims(kube, OPERATOR_NAMESPACE))
        await engine.claims.load()  # as every pass does first (passes.run_pass)
        kube.calls.clear()
        try:
            yield Env(kube, druid, pivot, targets, engine)
        finally:
            await targets.close()


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with environment() as made:
        yield made


def _alice_secret(env: Env, password: str = "alice-pw-1", *, allowed: bool = True) -> None:
    env.kube.put_secret("team-a", "alice-pw", {"password": password}, allowed=allowed)


def _logs_in(env: Env, user: str, password: str) -> bool:
    stored = env.druid.credentials.get(user)
    return stored is not None and verify_password(password, stored)


def _coming(*roles: str) -> RolesComing:
    return lambda target, wanted: wanted & frozenset(roles)


def _warning_or_normal(reason: Reason) -> str:
    quiet = (Reason.SUSPENDED, Reason.DRIFTED, Reason.ROLE_NOT_FOUND, Reason.SECRET_NOT_FOUND)
    return "Normal" if reason in quiet else "Warning"


# -------------------------------------------------------- guards: refused before any remote call


@dataclass(frozen=True)
class Refused:
    id: str
    kind: AnyKind
    spec: Mapping[str, Any]
    reason: Reason
    fragment: str
    namespace: str = "team-a"
    name: str = "alice"
    setup: Callable[[Env], object] = lambda env: None
    older: bool = False  # an older resource claims the same remote name
    coming: tuple[str, ...] = ()  # roles a DruidRole is about to create


REFUSED = [
    # Each guard alone.
    Refused("invalid-spec", USER, {"roles": "readers"}, Reason.INVALID_SPEC, "spec.roles: Input should be"),
    Refused("unknown-field", ROLE, {"permisions": []}, Reason.INVALID_SPEC, "spec.permisions: Extra inputs"),
    Refused(
        "cluster-not-found",
        USER,
        {"cluster": "nope"},
        Reason.TARGET_NOT_FOUND,
        "Druid cluster 'nope' is not in the operator configuration",
    ),
    Refused(
        "pivot-not-found",
        CONNECTION,
        {"pivot": "nope", "queryHosts": ["broker:8082"]},
        Reason.TARGET_NOT_FOUND,
        "Pivot instance 'nope' is not in the operator configuration",
    ),
    Refused(
        "namespace-not-allowed",
        USER,
        {},
        Reason.NAMESPACE_NOT_ALLOWED,
        "namespace 'outsider' may not manage Druid cluster 'default'",
        namespace="outsider",
    ),
    Refused(
        "protected-user",
        USER,
        {"name": "admin"},
        Reason.PROTECTED,
        "'admin' is a protected principal of 'default'",
        namespace="platform",
    ),
    Refused(
        "protected-look-alike-role",
        ROLE,
        {"name": "Druid_System"},
        Reason.PROTECTED,
        "'Druid_System' is a protected principal of 'default'",
        namespace="platform",
    ),
    Refused(
        "grants-protected-role",
        USER,
        {"roles": ["readers", "admin"]},
        Reason.NOT_PERMITTED,
        "namespace 'team-a' may not grant protected role 'admin' on Druid cluster 'default': "
        "only the cluster's privilegedNamespaces may",
    ),
    Refused(
        "mapping-grants-protected-role",
        MAPPING,
        {"groupPattern": GROUP_PATTERN, "roles": ["druid_system"]},
        Reason.NOT_PERMITTED,
        "may not grant protected role 'druid_system'",
    ),
    Refused(
        "role-administers-security",
        ROLE,
        {"permissions": [WIKI_READ, SECURITY_WRITE]},
        Reason.NOT_PERMITTED,
        "may not grant security-administration permission WRITE CONFIG/security",
    ),
    Refused(
        "unsupported-on-target",
        USER,
        {"cluster": "ldap", "password": PASSWORD},
        Reason.INVALID_SPEC,
        "cluster 'ldap' checks passwords against LDAP (credentialsValidator: ldap)",
    ),
    Refused(
        "adoption-not-allowed",
        USER,
        {"adoptionPolicy": "Adopt"},
        Reason.ADOPTION_NOT_ALLOWED,
        "namespace 'team-a' may not adopt existing objects on Druid cluster 'default'",
    ),
    Refused(
        "suspended",
        USER,
        {"suspend": True},
        Reason.SUSPENDED,
        "suspended: no remote calls until spec.suspend is false",
    ),
    Refused(
        "older-claimant",
        USER,
        {"roles": ["readers"]},
        Reason.CONFLICT,
        "user 'alice' on 'default' is claimed by the older DruidUser team-b/first",
        older=True,
    ),
    Refused(
        "roles-coming",
        USER,
        {"roles": ["readers", "fresh"]},
        Reason.ROLE_NOT_FOUND,
        "waiting for role(s) being created: fresh",
        coming=("fresh", "other"),
    ),
    Refused(
        "secret-not-found",
        USER,
        {"password": PASSWORD},
        Reason.SECRET_NOT_FOUND,
        "Secret team-a/alice-pw does not exist",
    ),
    Refused(
        "secret-key-not-found",
        USER,
        {"password": {"secretKeyRef": {"name": "alice-pw", "key": "other"}}},
        Reason.SECRET_NOT_FOUND,
        "Secret team-a/alice-pw has no key 'other'",
        setup=_alice_secret,
    ),
    Refused(
        "secret-value-not-text",
        USER,
        {"password": PASSWORD},
        Reason.SECRET_NOT_FOUND,
        "the value under key 'password' of Secret team-a/alice-pw is not UTF-8 text",
        setup=lambda env: env.kube.put_secret("team-a", "alice-pw", {"password": b"\xff\xfe"}),
    ),
    Refused(
        "secret-not-allowed",
        USER,
        {"password": PASSWORD},
        Reason.SECRET_NOT_ALLOWED,
        "Secret team-a/alice-pw is not labelled druidaccess.io/allow=true",
        setup=lambda env: _alice_secret(env, allowed=False),
    ),
    Refused(
        "connection-secret-not-allowed",
        CONNECTION,
        {
            "queryHosts": ["broker:8082"],
            "defaultDbAuthToken": {
                "username": "pivot",
                "passwordSecretRef": {"name": "alice-pw", "key": "password"},
            },
        },
        Reason.SECRET_NOT_ALLOWED,
        "kubectl label secret -n team-a alice-pw druidaccess.io/allow=true",
        setup=lambda env: _alice_secret(env, allowed=False),
    ),
    Refused(
        "secret-read-fails",
        USER,
        {"password": PASSWORD},
        Reason.KUBERNETES_ERROR,
        "read_allowed_secret: HTTP 500 Internal Server Error",
        setup=lambda env: env.kube.fail("read_allowed_secret"),
    ),
    Refused(
        "generating-secret-fails",
        USER,
        {"password": {**PASSWORD, "generate": True}},
        Reason.KUBERNETES_ERROR,
        "create_generated_secret: HTTP 403 Forbidden",
        setup=lambda env: env.kube.fail("create_generated_secret", status=403),
    ),
    Refused(
        "regex-druid-cannot-compile",
        ROLE,
        {"permissions": [{"resource": {"type": "DATASOURCE", "name": "wiki("}, "action": "READ"}]},
        Reason.INVALID_SPEC,
        "resource name 'wiki(' is not a valid Java regular expression",
    ),
    Refused(
        "breaker-open",
        USER,
        {"roles": ["readers"]},
        Reason.UNREACHABLE,
        "ConnectError: connection refused (2)",
        setup=Env.open_breaker,
    ),
    Refused(
        "pivot-breaker-open",
        CONNECTION,
        {"queryHosts": ["broker:8082"]},
        Reason.UNREACHABLE,
        "ConnectError: connection refused (2)",
        setup=lambda env: env.open_breaker("pivot"),
    ),
    # Two guards at once: the first in the engine's order decides.
    Refused(
        "invalid-spec-before-everything",
        USER,
        {"cluster": "nope", "suspend": "maybe"},
        Reason.INVALID_SPEC,
        "spec.suspend",
        namespace="outsider",
    ),
    Refused(
        "target-before-namespace",
        USER,
        {"cluster": "nope"},
        Reason.TARGET_NOT_FOUND,
        "'nope'",
        namespace="outsider",
    ),
    Refused(
        "namespace-before-protection",
        USER,
        {"name": "admin"},
        Reason.NAMESPACE_NOT_ALLOWED,
        "namespace 'outsider'",
        namespace="outsider",
    ),
    Refused(
        "protection-before-privilege",
        USER,
        {"name": "admin", "roles": ["admin"]},
        Reason.PROTECTED,
        "'admin' is a protected principal",
    ),
    Refused(
        "privilege-before-unsupported",
        USER,
        {"cluster": "ldap", "roles": ["admin"], "password": PASSWORD},
        Reason.NOT_PERMITTED,
        "protected role 'admin'",
    ),
    Refused(
        "unsupported-before-adoption",
        USER,
        {"cluster": "ldap", "password": PASSWORD, "adoptionPolicy": "Adopt"},
        Reason.INVALID_SPEC,
        "credentialsValidator: ldap",
    ),
    Refused(
        "adoption-before-suspension",
        USER,
        {"adoptionPolicy": "Adopt", "suspend": True},
        Reason.ADOPTION_NOT_ALLOWED,
        "adoptionNamespaces",
    ),
    Refused(
        "suspension-before-conflict",
        USER,
        {"suspend": True, "roles": ["fresh"]},
        Reason.SUSPENDED,
        "suspended",
        older=True,
        coming=("fresh",),
    ),
    Refused(
        "conflict-before-roles-coming",
        USER,
        {"roles": ["fresh"]},
        Reason.CONFLICT,
        "claimed by the older",
        older=True,
        coming=("fresh",),
    ),
    Refused(
        "roles-coming-before-secrets",
        USER,
        {"roles": ["fresh"], "password": PASSWORD},
        Reason.ROLE_NOT_FOUND,
        "being created: fresh",
        coming=("fresh",),
        setup=lambda env: env.kube.fail("read_allowed_secret"),
    ),
    Refused(
        "secrets-before-breaker",
        USER,
        {"password": PASSWORD},
        Reason.SECRET_NOT_FOUND,
        "does not exist",
        setup=Env.open_breaker,
    ),
    Refused(
        "invalid-regex-before-breaker",
        ROLE,
        {"permissions": [{"resource": {"type": "DATASOURCE", "name": "[x"}, "action": "READ"}]},
        Reason.INVALID_SPEC,
        "not a valid Java regular expression",
        setup=Env.open_breaker,
    ),
]


@pytest.mark.parametrize("case", REFUSED, ids=lambda case: case.id)
async def test_a_refused_pass_makes_no_remote_request(env: Env, case: Refused) -> None:
    case.setup(env)
    obj = env.create(case.kind, case.name, case.spec, namespace=case.namespace)
    if case.older:
        env.older_claimant(obj, case.name)
    done = await env.reconcile(obj, roles_coming=_coming(*case.coming) if case.coming else None)
    assert done.reason is case.reason, done.message
    assert case.fragment in done.message
    assert env.remote_requests() == 0
    assert not env.held(obj) and not env.claimed(obj)  # nothing made: the deletion need not wait
    if done.result.postponed:  # no status, no Event: passed again once the role is there
        assert done.status is None and done.events == [] and env.kube.calls == []
        return
    assert env.kube.count("set_finalizers") == 0 and len(env.kube.status_patches) == 1
    ready = env.ready(obj)
    assert (ready["status"], ready["reason"], ready["message"]) == ("False", case.reason.value, done.message)
    assert ready["observedGeneration"] == 1
    assert done.events == [(_warning_or_normal(case.reason), case.reason.value, done.message)]


async def test_the_oldest_claimant_goes_ahead(env: Env) -> None:
    obj = env.create(USER, "alice", {"roles": ["readers"]})
    meta = obj["metadata"]
    newer = Claimant("2030-01-01T00:00:00Z", "team-c", "later", "uid-newer")
    env.claimants[("user", "default", "alice")] = [
        newer,
        Claimant(meta["creationTimestamp"], *_key(obj), meta["uid"]),
    ]
    done = await env.reconcile(obj)
    assert done.reason is Reason.SYNCED and env.druid.users["alice"] == {"readers"}


# ------------------------------------------------------------------------------------ synced


@dataclass(frozen=True)
class Synced:
    id: str
    kind: AnyKind
    name: str
    spec: Mapping[str, Any]
    made: Callable[[Env], bool]  # the remote side as the spec says
    first_write: str
    secret: str | None = None


SYNCED = [
    Synced(
        "user-with-password",
        USER,
        "alice",
        {"roles": ["readers"], "password": PASSWORD},
        lambda env: env.druid.users["alice"] == {"readers"} and _logs_in(env, "alice", "alice-pw-1"),
        "CreatedAuthenticatorUser",
        secret="alice-pw",
    ),
    Synced(
        "ldap-user",
        USER,
        "bob",
        {"cluster": "ldap", "roles": ["readers", "writers"]},
        lambda env: env.druid.users["bob"] == {"readers", "writers"} and "bob" not in env.druid.credentials,
        "CreatedAuthorizerUser",
    ),
    Synced(
        "role",
        ROLE,
        "analysts",
        {"permissions": [WIKI_READ]},
        lambda env: env.druid.roles["analysts"] == [Permission("DATASOURCE", "wiki.*", "READ")],
        "CreatedRole",
    ),
    Synced(
        "group-mapping",
        MAPPING,
        "analysts",
        {"groupPattern": GROUP_PATTERN, "roles": ["readers"]},
        lambda env: env.druid.group_mappings["analysts"].roles == {"readers"},
        "CreatedGroupMapping",
    ),
    Synced(
        "connection",
        CONNECTION,
        "analytics",
        {"queryHosts": ["broker:8082"], "title": "Analytics"},
        lambda env: env.pivot.connections["analytics"]["title"] == "Analytics",
        "CreatedConnection",
    ),
]


@pytest.mark.parametrize("case", SYNCED, ids=lambda case: case.id)
async def test_a_new_object_is_created_and_then_left_alone(env: Env, case: Synced) -> None:
    _alice_secret(env)
    obj = env.create(case.kind, case.name, case.spec)
    done = await env.reconcile(obj)
    assert (done.reason, done.message) == (Reason.SYNCED, "in sync")
    assert case.made(env)
    status = env.current(obj)["status"]
    secret = env.kube.secrets[("team-a", "alice-pw")]
    assert status == done.status
    assert status["remoteName"] == case.name and status["owned"] is True
    assert status["observedGeneration"] == 1 and status["lastSyncTime"]
    assert status.get("secret") == case.secret
    assert status.get("secretVersion") == (f"alice-pw@{secret.resource_version}" if case.secret else None)
    assert ready_condition(status) == env.ready(obj) and env.ready(obj)["status"] == "True"
    assert [call[0] for call in env.kube.writes()] == ["set_finalizers", "patch_status"]
    # The claim went on with the finalizer, before the first create; the status holds it now.
    assert env.held(obj) and env.claimed(obj)
    assert env.engine.claims.holds(env.current(obj)["metadata"])
    (type_, reason, message), *rest = done.events
    assert (type_, reason, rest) == ("Normal", case.first_write, [])
    assert message.endswith("(new resource)")

    # In sync: a live pass writes nothing, here or there, and says nothing.
    env.forget_requests()
    again = await env.reconcile(obj)
    assert again.reason is Reason.SYNCED and again.result.confirmed == 0
    assert env.remote_writes() == [] and again.events == [] and env.kube.count("patch_status") == 1
    # A resync through the target's snapshot confirms it in sync on that snapshot.
    resync = await env.reconcile(obj, bulk=True)
    assert resync.reason is Reason.SYNCED and resync.result.confirmed > 0 and env.remote_writes() == []


async def test_a_pass_sends_its_writes_to_one_store_without_another_pass_between_them(env: Env) -> None:
    # Each store of a cluster is one serialised write chain (a lane); a pass hands it its
    # consecutive writes there as one batch, so passes run at once do not interleave a user's
    # two writes. (Passes that read first: under Adopt, a new object is always read.)
    names = [f"user-{i}" for i in range(6)]
    objs = []
    for name in names:
        env.kube.put_secret("platform", f"{name}-pw", {"password": f"{name}-secret"}, allowed=True)
        spec = {
            "roles": ["readers"],
            "password": {"secretKeyRef": {"name": f"{name}-pw", "key": "password"}},
            "adoptionPolicy": "Adopt",
        }
        objs.append(env.create(USER, name, spec, namespace="platform"))  # may adopt
    done = await asyncio.gather(*(env.reconcile(obj) for obj in objs))
    assert [d.reason for d in done] == [Reason.SYNCED] * len(names)
    authn = [w for w in env.remote_writes() if "/authentication/" in w]
    authz = [w for w in env.remote_writes() if "/authorization/" in w]
    assert len(authn) == len(authz) == 2 * len(names)
    for i in range(0, 2 * len(names), 2):
        assert authn[i + 1] == f"{authn[i]}/credentials", authn
        assert authz[i + 1].startswith(f"{authz[i]}/roles/"), authz


async def test_objects_created_together_read_a_few_at_a_time_so_the_first_writes_go_out_early(
    env: Env,
) -> None:
    # Objects that read themselves live before their first write (all under Adopt; see
    # ``unread`` in ``Engine._reconcile``). Read all at once, the write lanes would wait for
    # every one of those reads; a few passes read at a time, in order.
    count = 4 * LIVE_READERS
    env.druid.faults.add(Fault(method="GET", path=r"/users/user-\d+$", latency=0.1))
    objs = []
    for i in range(count):
        env.kube.put_secret("platform", f"user-{i}-pw", {"password": f"user-{i}-secret"}, allowed=True)
        spec = {
            "roles": ["readers"],
            "password": {"secretKeyRef": {"name": f"user-{i}-pw", "key": "password"}},
            "adoptionPolicy": "Adopt",
        }
        objs.append(env.create(USER, f"user-{i}", spec, namespace="platform"))  # may adopt
    done = await asyncio.gather(*(env.reconcile(obj) for obj in objs))
    assert [d.reason for d in done] == [Reason.SYNCED] * count
    records = env.druid.requests.records
    reads = [r for r in records if r.method == "GET" and "/users/user-" in r.path]
    assert len(reads) == 2 * count  # each user read in both stores, once
    # Never more than LIVE_READERS passes' reads (two each) at the Coordinator at once.
    in_flight = max(
        sum(1 for o in reads if o.timestamp <= r.timestamp < o.timestamp + o.duration) for r in reads
    )
    assert in_flight <= 2 * LIVE_READERS, in_flight
    first_write = min(r.timestamp for r in records if r.method == "POST")
    assert first_write < max(r.timestamp for r in reads)  # the first write did not wait for every read


async def test_a_generated_password_secret_is_made_for_applications(env: Env) -> None:
    spec = {"roles": ["readers"], "password": {**PASSWORD, "generate": True}}
    obj = env.create(USER, "alice", spec)
    done = await env.reconcile(obj)
    assert done.reason is Reason.SYNCED
    secret = env.kube.secrets[("team-a", "alice-pw")]
    password = secret.data.pop("password")
    assert secret.data == {"username": "alice", "brokerUrl": "http://broker.druid:8082"}
    assert isinstance(password, str) and len(password) == 32
    assert _logs_in(env, "alice", password)
    assert secret.allowed and [ref["uid"] for ref in secret.owner_references] == [obj["metadata"]["uid"]]
    assert done.status is not None and done.status["secret"] == "alice-pw"


async def test_a_secret_made_meanwhile_by_someone_else_is_read_not_overwritten(env: Env) -> None:
    create = env.kube.create_generated_secret

    async def raced(*args: Any, **kwargs: Any) -> Any:
        _alice_secret(env, "theirs")  # a user's Secret lands just before ours
        return await create(*args, **kwargs)

    env.kube.create_generated_secret = raced  # type: ignore[method-assign]
    obj = env.create(USER, "alice", {"password": {**PASSWORD, "generate": True}})
    done = await env.reconcile(obj)
    assert done.reason is Reason.SYNCED
    assert env.kube.secrets[("team-a", "alice-pw")].data == {"password": "theirs"}
    assert _logs_in(env, "alice", "theirs")


async def test_a_role_missing_on_the_cluster_leaves_the_rest_applied(env: Env) -> None:
    obj = env.create(USER, "alice", {"roles": ["readers", "ghost"]})
    done = await env.reconcile(obj)
    assert (done.reason, done.message) == (Reason.ROLE_NOT_FOUND, "waiting for role(s) to exist: ghost")
    assert env.druid.users["alice"] == {"readers"} and "ghost" not in env.druid.roles
    assert done.status is not None and done.status["owned"] is True
    assert [event[:2] for event in done.events] == [
        ("Normal", "CreatedAuthorizerUser"),
        ("Normal", "RoleNotFound"),  # an expected step while roles are being created
    ]
    env.druid.add_role("ghost")
    assert (await env.reconcile(obj)).reason is Reason.SYNCED
    assert env.druid.users["alice"] == {"readers", "ghost"}


# --------------------------------------------------------------- privilege, read live on the cluster


@dataclass(frozen=True)
class Live:
    id: str
    kind: AnyKind
    namespace: str
    spec: Mapping[str, Any]
    reason: Reason
    existing: bool = False  # the user exists already (adoption)


LIVE = [
    Live(
        "user-gets-security-admin-role",
        USER,
        "team-a",
        {"roles": ["readers", "sec-admins"]},
        Reason.NOT_PERMITTED,
    ),
    Live(
        "mapping-gets-security-admin-role",
        MAPPING,
        "team-a",
        {"groupPattern": GROUP_PATTERN, "roles": ["sec-admins"]},
        Reason.NOT_PERMITTED,
    ),
    Live(
        "adopted-user-gets-security-admin-role",
        USER,
        "team-adopt",
        {"roles": ["sec-admins"], "adoptionPolicy": "Adopt"},
        Reason.NOT_PERMITTED,
        existing=True,
    ),
    Live("privileged-namespace-may", USER, "platform", {"roles": ["sec-admins"]}, Reason.SYNCED),
    Live("harmless-role", USER, "team-a", {"roles": ["readers"]}, Reason.SYNCED),
]


@pytest.mark.parametrize("case", LIVE, ids=lambda case: case.id)
async def test_a_role_administering_security_is_given_only_from_a_privileged_namespace(
    env: Env, case: Live
) -> None:
    if case.existing:
        env.druid.add_user("alice")
    obj = env.create(case.kind, "alice", case.spec, namespace=case.namespace)
    done = await env.reconcile(obj)
    assert done.reason is case.reason, done.message
    if case.reason is Reason.SYNCED:
        assert env.remote_writes()
        return
    assert done.message == (
        f"namespace {case.namespace!r} may not grant role 'sec-admins' (it holds security-administration "
        "permission WRITE CONFIG/.*) on Druid cluster 'default': only the cluster's privilegedNamespaces may"
    )
    assert env.druid.requests.count("GET", "/roles/sec-admins$") == 1  # read live, not from a snapshot
    assert env.remote_writes() == []
    assert not env.held(obj)
    assert [event for event in done.events if event[1] == "Adopted"] == []  # nothing taken over
    assert done.status is not None and done.status.get("owned") is None


async def test_an_adoption_refused_as_not_permitted_takes_nothing_over(env: Env) -> None:
    env.druid.add_user("alice")
    spec = {"roles": ["sec-admins"], "adoptionPolicy": "Adopt"}
    obj = env.create(USER, "alice", spec, namespace="team-adopt")
    done = await env.reconcile(obj)
    assert done.reason is Reason.NOT_PERMITTED
    # Nothing on record: deleting the object now leaves alice alone, with no remote call.
    assert env.current(obj)["status"].get("owned") is not True
    assert not env.held(obj) and not env.claimed(obj)
    assert "Adopted" not in [reason for _, reason, _ in done.events]
    assert env.remote_writes() == []
    released = await env.engine.finalize(USER, env.current(obj), env.lookup, lambda *event: None)
    assert released.startswith("released") and "alice" in env.druid.users
    # Once the spec asks for what the namespace may grant, the adoption goes on record, held.
    obj = env.update(obj, spec={"roles": ["readers"], "adoptionPolicy": "Adopt"})
    done = await env.reconcile(obj)
    assert done.reason is Reason.SYNCED and "Adopted" in [reason for _, reason, _ in done.events]
    assert env.current(obj)["status"]["owned"] is True and env.held(obj)


# --------------------------------------------------------------------------- existing remote objects


async def test_an_existing_object_is_refused_by_default(env: Env) -> None:
    env.druid.add_user("alice", roles=["writers"])
    obj = env.create(USER, "alice", {"roles": ["readers"]})
    done = await env.reconcile(obj)
    assert done.reason is Reason.ALREADY_EXISTS
    assert done.message == (
        "user 'alice' already exists on 'default' and was not created by this resource; "
        "set spec.adoptionPolicy: Adopt to take it over"
    )
    assert done.status is not None and done.status["owned"] is False
    assert env.remote_writes() == [] and env.druid.users["alice"] == {"writers"}
    assert not env.held(obj) and not env.claimed(obj)
    # A later claim on the object does not outweigh the refusal on record.
    await env.claim(obj)
    assert (await env.reconcile(obj)).reason is Reason.ALREADY_EXISTS
    assert env.remote_writes() == []


# ------------------------------------------------- new objects: created before they are claimed

AUTHN_USERS = "/druid-ext/basic-security/authentication/db/basic/users"
AUTHZ_BASE = "/druid-ext/basic-security/authorization/db/basic"


async def _answering(env: Env, holds: list[tuple[bool, list[str]]] | None = None) -> None:
    """A first pass on the cluster, so that it has answered just now (``TargetHealth.clear``);
    its requests (and its ``hold``) forgotten."""
    obj = env.create(ROLE, "warm-up", {"permissions": [WIKI_READ]})
    assert (await env.reconcile(obj)).reason is Reason.SYNCED
    env.forget_requests()
    if holds is not None:
        holds.clear()


@pytest.fixture
def holds(monkeypatch: pytest.MonkeyPatch, env: Env) -> list[tuple[bool, list[str]]]:
    """Each ``hold`` of a pass: whether it claimed, and the remote writes made before it."""
    calls: list[tuple[bool, list[str]]] = []
    real = finalizer.hold

    async def hold(kube: Any, plural: str, meta: Mapping[str, Any], annotations: Mapping[str, str]) -> bool:
        calls.append((ANNOTATION in annotations, env.remote_writes()))
        return await real(kube, plural, meta, annotations)

    monkeypatch.setattr(finalizer, "hold", hold)
    return calls


def _user(env: Env, name: str, **spec: Any) -> dict[str, Any]:
    env.kube.put_secret("team-a", f"{name}-pw", {"password": f"{name}-pw-1"}, allowed=True)
    password = {"secretKeyRef": {"name": f"{name}-pw", "key": "password"}}
    return env.create(USER, name, {"roles": ["readers"], "password": password, **spec})


async def test_a_new_user_is_created_unread_and_claimed_once_its_creates_prove_the_name_free(
    env: Env, holds: list[tuple[bool, list[str]]]
) -> None:
    # The first pass on a target not heard from lately reads first: a target that does not
    # answer, or cannot be trusted, then costs the object no write at all.
    first = _user(env, "alice")
    assert (await env.reconcile(first)).reason is Reason.SYNCED
    assert env.druid.requests.count("GET", "/users/alice$") == 2
    env.forget_requests()
    holds.clear()
    bob = _user(env, "bob")
    done = await env.reconcile(bob)
    assert (done.reason, done.message) == (Reason.SYNCED, "in sync")
    assert env.druid.requests.count("GET", "/users/bob$") == 0  # read in neither store
    creates = [f"POST {AUTHN_USERS}/bob", f"POST {AUTHZ_BASE}/users/bob"]
    assert env.remote_writes() == [
        *creates,
        f"POST {AUTHN_USERS}/bob/credentials",
        f"POST {AUTHZ_BASE}/users/bob/roles/readers",
    ]
    # Claimed (with the finalizer) after both creates answered, before anything else.
    assert holds == [(True, creates)]
    assert _logs_in(env, "bob", "bob-pw-1") and env.druid.users["bob"] == {"readers"}
    assert done.status is not None and done.status["owned"] is True and env.held(bob)
    assert done.events == [
        (
            "Normal",
            "CreatedAuthenticatorUser",
            "created authenticator user 'bob'; created authorizer user 'bob'; set the password of "
            "'bob'; assigned role 'readers' to 'bob' (new resource)",
        )
    ]


@pytest.mark.parametrize("store", ["authorizer", "authenticator"])
async def test_a_new_user_whose_name_is_taken_is_refused_in_the_same_pass_and_never_claimed(
    env: Env, holds: list[tuple[bool, list[str]]], store: str
) -> None:
    await _answering(env, holds)
    if store == "authorizer":
        env.druid.users["alice"] = {"writers"}  # someone else's user, in the authorizer only
    else:
        env.druid.set_password("alice", "someone-elses", iterations=1000)  # in the authenticator only
    obj = _user(env, "alice")
    done = await env.reconcile(obj)
    # The create of the taken name is refused; what the pass made is removed again, and the
    # pass goes on as one that reads first: the name is someone else's (Refuse).
    assert done.reason is Reason.ALREADY_EXISTS
    assert done.message.startswith("user 'alice' already exists on 'default' and was not created")
    assert done.status is not None and done.status["owned"] is False
    made = [f"POST {AUTHN_USERS}/alice"]
    if store == "authorizer":
        made += [f"POST {AUTHZ_BASE}/users/alice", f"DELETE {AUTHN_USERS}/alice"]
    assert env.remote_writes() == made
    assert env.druid.requests.count("GET", "/users/alice$") == 2  # then read, in both stores
    assert env.druid.requests.count("POST", CREDENTIALS) == 0  # no password was ever set
    if store == "authorizer":
        assert "alice" not in env.druid.credentials and env.druid.users["alice"] == {"writers"}
    else:
        assert _logs_in(env, "alice", "someone-elses") and "alice" not in env.druid.users
    assert holds == [] and not env.held(obj) and not env.claimed(obj)
    assert [event[1] for event in done.events] == ["AlreadyExists"]


async def test_a_new_role_whose_name_is_taken_is_refused_with_nothing_changed(
    env: Env, holds: list[tuple[bool, list[str]]]
) -> None:
    await _answering(env, holds)
    theirs = [Permission("DATASOURCE", "other", "READ")]
    env.druid.add_role("analysts", theirs)
    obj = env.create(ROLE, "analysts", {"permissions": [WIKI_READ]})
    done = await env.reconcile(obj)
    assert done.reason is Reason.ALREADY_EXISTS and done.status is not None
    assert done.status["owned"] is False and holds == [] and not env.claimed(obj)
    assert env.remote_writes() == [f"POST {AUTHZ_BASE}/roles/analysts"]  # refused: taken
    assert env.druid.roles["analysts"] == theirs


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (Fault(method="POST", path=r"/authorization/db/basic/users/alice$", status=500), Reason.SERVER_ERROR),
        (Fault(method="POST", path=r"/authorization/db/basic/users/alice$", status=503), Reason.UNREACHABLE),
        (Fault(method="POST", path=r"/authorization/db/basic/users/alice$", reset=True), Reason.UNREACHABLE),
    ],
    ids=["500", "503", "no-answer"],
)
async def test_a_failed_create_before_the_claim_leaves_nothing_made_and_nothing_claimed(
    env: Env, holds: list[tuple[bool, list[str]]], fault: Fault, reason: Reason
) -> None:
    await _answering(env, holds)
    env.druid.faults.add(dataclasses.replace(fault, times=1))
    obj = _user(env, "alice")
    done = await env.reconcile(obj)
    assert done.reason is reason
    assert done.message.endswith("; what this pass had created of it was removed again")
    assert env.remote_writes() == [
        f"POST {AUTHN_USERS}/alice",
        f"POST {AUTHZ_BASE}/users/alice",
        f"DELETE {AUTHN_USERS}/alice",
    ]
    assert "alice" not in env.druid.credentials and "alice" not in env.druid.users
    assert holds == [] and not env.held(obj) and not env.claimed(obj)
    assert done.status is not None and "owned" not in done.status
    # With a status on record, the next pass reads first; the name is free, so it is created.
    env.forget_requests()
    again = await env.reconcile(obj)
    assert again.reason is Reason.SYNCED and env.druid.requests.count("GET", "/users/alice$") == 2
    assert _logs_in(env, "alice", "alice-pw-1") and env.druid.users["alice"] == {"readers"}


async def test_a_create_that_landed_unanswered_is_never_taken_over(
    env: Env, holds: list[tuple[bool, list[str]]]
) -> None:
    # The create got no answer although Druid made the user: the pass cannot tell it from a
    # user someone else made, so it is not removed, not claimed, and later reported as taken.
    await _answering(env, holds)
    env.druid.faults.add(
        Fault(
            method="POST",
            path=r"/authentication/db/basic/users/alice$",
            reset=True,
            after_handling=True,
            times=1,
        )
    )
    obj = _user(env, "alice")
    done = await env.reconcile(obj)
    assert done.reason is Reason.UNREACHABLE and holds == [] and not env.claimed(obj)
    assert env.remote_writes() == [f"POST {AUTHN_USERS}/alice"]
    again = await env.reconcile(obj)
    assert again.reason is Reason.ALREADY_EXISTS and again.status is not None
    assert again.status["owned"] is False and env.druid.credentials.get("alice") is None


async def _busy_lane(env: Env, lane: str = AUTHENTICATOR_LANE) -> tuple[asyncio.Event, asyncio.Task[None]]:
    """One of the cluster's write lanes, busy until the event is set."""
    release = asyncio.Event()

    async def busy() -> None:
        await release.wait()

    return release, asyncio.create_task(env.targets.write("cluster", "default", lane, busy))


async def _waiting_in_the_lane(env: Env, obj: Mapping[str, Any], made: list[str]) -> asyncio.Task[Pass]:
    """A pass on ``obj`` that has made ``made`` and whose next create waits in a busy lane."""
    task = asyncio.create_task(env.reconcile(obj))
    for _ in range(200):  # bounded: until it has read the role it assigns and made ``made``
        await asyncio.sleep(0.01)
        if env.druid.requests.count("GET", "/roles/readers$") and env.remote_writes() == made:
            break
    await asyncio.sleep(0.05)
    assert not task.done() and env.remote_writes() == made
    return task


@pytest.mark.parametrize("which", ["first", "second"])
async def test_a_create_the_breaker_keeps_back_before_the_claim_leaves_nothing_unclaimed(
    env: Env, holds: list[tuple[bool, list[str]]], which: str
) -> None:
    await _answering(env, holds)
    # The first create (the authenticator's) or the second waits in its lane while the breaker
    # opens: it is kept back (``NotSent``), and so is the removal of the first one.
    release, lane = await _busy_lane(env, AUTHENTICATOR_LANE if which == "first" else "")
    obj = _user(env, "alice")
    made = [] if which == "first" else [f"POST {AUTHN_USERS}/alice"]
    task = await _waiting_in_the_lane(env, obj, made)
    env.open_breaker()
    release.set()
    done = await task
    await lane
    assert done.reason is Reason.UNREACHABLE and env.remote_writes() == made
    assert env.druid.credentials.get("alice") is None and "alice" not in env.druid.users
    if which == "first":  # nothing made: nothing claimed
        assert holds == [] and not env.held(obj) and not env.claimed(obj)
        return
    # Its removal was kept back too: what it made found its name free, so it is claimed (after
    # the create, never before it), and the next pass, once the target answers, finishes it.
    assert holds == [(True, made)] and env.held(obj)
    assert done.message.endswith(
        "; what this pass had created of it could not be removed, and is claimed as this resource's own"
    )
    assert done.status is not None and done.status["owned"] is True
    env.targets.health("cluster", "default").heard()
    again = await env.reconcile(obj)
    assert again.reason is Reason.SYNCED and again.status is not None and again.status["owned"] is True
    assert _logs_in(env, "alice", "alice-pw-1") and env.druid.users["alice"] == {"readers"}


async def test_a_new_user_on_a_cluster_of_several_coordinators_is_read_and_claimed_first() -> None:
    # A leader failover may carry out a create unanswered: there, the claim precedes the create.
    async with environment(ha={"leaderHosts": ["127.0.0.1"]}) as env:
        await _answering(env)
        obj = _user(env, "alice", cluster="ha")
        env.forget_requests()
        done = await env.reconcile(obj)
        assert done.reason is Reason.SYNCED
        assert env.druid.requests.count("GET", "/users/alice$") == 2  # read in both stores first


async def test_what_a_pass_made_before_the_target_stopped_answering_is_its_own_not_someone_elses(
    env: Env, holds: list[tuple[bool, list[str]]]
) -> None:
    # A leader killed mid-pass: the authorizer's create and the removal of the authenticator's
    # user both go unanswered. Before, the next pass found the user it had made as someone
    # else's (AlreadyExists) and never took it over.
    await _answering(env, holds)
    for method, path in (("POST", rf"{AUTHZ_BASE}/users/alice$"), ("DELETE", rf"{AUTHN_USERS}/alice$")):
        env.druid.faults.add(Fault(method=method, path=path, reset=True, times=1))
    obj = _user(env, "alice")
    done = await env.reconcile(obj)
    assert done.reason is Reason.UNREACHABLE
    assert done.message.endswith("could not be removed, and is claimed as this resource's own")
    assert [claimed for claimed, _ in holds] == [True] and env.claimed(obj) and env.held(obj)
    assert env.druid.credentials.get("alice") is None and "alice" not in env.druid.users
    again = await env.reconcile(obj)
    assert again.reason is Reason.SYNCED and again.status is not None and again.status["owned"] is True
    assert _logs_in(env, "alice", "alice-pw-1") and env.druid.users["alice"] == {"readers"}
    # Its own: deleting the resource removes the user from both stores.
    finalized, _ = await env.finalize(obj)
    assert "alice" not in env.druid.users and "alice" not in env.druid.credentials, finalized


async def test_a_pass_cancelled_while_its_create_waits_in_the_lane_makes_and_claims_nothing(
    env: Env, holds: list[tuple[bool, list[str]]]
) -> None:
    await _answering(env, holds)
    release, lane = await _busy_lane(env)
    obj = _user(env, "alice")
    task = await _waiting_in_the_lane(env, obj, [])
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    await lane
    assert env.remote_writes() == [] and holds == [] and not env.claimed(obj)


async def test_a_taken_name_whose_removal_fails_is_reported_and_never_taken_over(
    env: Env, holds: list[tuple[bool, list[str]]]
) -> None:
    await _answering(env, holds)
    env.druid.users["alice"] = {"writers"}  # someone else's, in the authorizer only
    env.druid.faults.add(Fault(method="DELETE", path=r"/authentication/db/basic/users/alice$", status=500))
    obj = _user(env, "alice")
    done = await env.reconcile(obj)
    # Not read in the same pass: what it made of the name is still there.
    assert done.reason is Reason.CONCURRENT_CHANGE
    assert done.message.endswith("; what this pass had created of it could not be removed")
    assert holds == [] and not env.claimed(obj) and env.druid.credentials.get("alice") is None
    again = await env.reconcile(obj)
    assert again.reason is Reason.ALREADY_EXISTS and again.status is not None
    assert again.status["owned"] is False and env.druid.users["alice"] == {"writers"}


async def test_a_new_role_is_claimed_between_its_create_and_its_permissions(
    env: Env, holds: list[tuple[bool, list[str]]]
) -> None:
    await _answering(env, holds)
    obj = env.create(ROLE, "analysts", {"permissions": [WIKI_READ]})
    done = await env.reconcile(obj)
    assert done.reason is Reason.SYNCED and env.druid.requests.count("GET", "/roles/analysts$") == 0
    create = f"POST {AUTHZ_BASE}/roles/analysts"
    assert env.remote_writes() == [create, f"{create}/permissions"] and holds == [(True, [create])]
    assert [event[1] for event in done.events] == ["CreatedRole"]


async def test_a_grant_a_tenant_may_not_make_is_refused_before_any_create(env: Env) -> None:
    await _answering(env)
    obj = _user(env, "alice", roles=["sec-admins"])  # a role that administers security
    done = await env.reconcile(obj)
    assert done.reason is Reason.NOT_PERMITTED and env.remote_writes() == []


@pytest.mark.parametrize("how", ["claimed", "adopt"])
async def test_what_is_not_a_new_object_under_refuse_is_read_first_on_a_target_that_answers(
    env: Env, how: str
) -> None:
    await _answering(env)
    if how == "claimed":  # a claim left by a pass that stopped before its status
        obj = _user(env, "alice")
        obj = await env.claim(obj)
    else:
        env.kube.put_secret("platform", "alice-pw", {"password": "alice-pw-1"}, allowed=True)
        spec = {"roles": ["readers"], "password": PASSWORD, "adoptionPolicy": "Adopt"}
        obj = env.create(USER, "alice", spec, namespace="platform")
    done = await env.reconcile(obj)
    assert done.reason is Reason.SYNCED and env.druid.requests.count("GET", "/users/alice$") == 2


@pytest.mark.parametrize("how", ["changed", "kube-error", "committed-unanswered", "crash"])
async def test_what_is_created_before_a_claim_that_fails_is_removed_or_never_taken_over(
    env: Env, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    await _answering(env)
    real = finalizer.hold

    async def hold(kube: Any, plural: str, meta: Mapping[str, Any], annotations: Mapping[str, str]) -> bool:
        if how == "changed":  # e.g. the object was deleted meanwhile
            return False
        if how == "kube-error":
            raise KubeError("patching the object: the API server is away")
        if how == "committed-unanswered":  # the API server wrote the patch; its answer was lost
            await real(kube, plural, meta, annotations)
            raise KubeError("patching the object: no answer")
        raise RuntimeError("the operator stops here")  # a crash between the creates and the claim

    monkeypatch.setattr(finalizer, "hold", hold)
    obj = _user(env, "alice")
    if how == "crash":
        with pytest.raises(RuntimeError):
            await env.reconcile(obj)
        # What it made stays, unclaimed: the next pass cannot tell it from someone else's.
        monkeypatch.undo()
        again = await env.reconcile(obj)
        assert again.reason is Reason.ALREADY_EXISTS and not env.claimed(obj)
        assert env.druid.credentials.get("alice") is None and env.druid.users["alice"] == set()
        return
    done = await env.reconcile(obj)
    assert done.reason is Reason.KUBERNETES_ERROR and done.result.postponed is (how == "changed")
    monkeypatch.undo()
    env.forget_requests()
    if how == "committed-unanswered":
        # The claim is on the object: what the creates made is kept, and is its own.
        assert env.claimed(obj) and "alice" in env.druid.users
        assert done.message == "patching the object: no answer"
        again = await env.reconcile(obj)
        assert again.reason is Reason.SYNCED and again.status is not None and again.status["owned"] is True
        assert env.druid.requests.count("POST", f"{AUTHZ_BASE}/users/alice$") == 0  # not created again
        assert _logs_in(env, "alice", "alice-pw-1") and env.druid.users["alice"] == {"readers"}
        return
    assert done.message.endswith("; what this pass had created of it was removed again")
    assert "alice" not in env.druid.users and "alice" not in env.druid.credentials
    assert not env.claimed(obj) and env.druid.requests.count("POST", CREDENTIALS) == 0
    # The next pass reads first (a pass that failed so is not tried without reading again).
    again = await env.reconcile(obj)
    assert again.reason is Reason.SYNCED and env.druid.requests.count("GET", "/users/alice$") == 2


@pytest.mark.parametrize("roles", [["readers"], ["writers"]], ids=["corrected", "in-sync-already"])
async def test_adopt_takes_an_existing_object_over(env: Env, roles: list[str]) -> None:
    env.druid.add_user("alice", roles=["writers"])
    obj = env.create(USER, "alice", {"roles": roles, "adoptionPolicy": "Adopt"}, namespace="platform")
    done = await env.reconcile(obj)
    assert done.reason is Reason.SYNCED and env.druid.users["alice"] == set(roles)
    assert done.events[0] == ("Normal", "Adopted", "took over the existing user 'alice'")
    assert len(done.events) == (2 if roles == ["readers"] else 1)
    assert done.status is not None and done.status["owned"] is True
    assert env.held(obj) and not env.claimed(obj)  # adopted, not created: the status says so
    # Owned now: later passes adopt nothing again.
    assert (await env.reconcile(obj)).events == []


# ------------------------------------------------------------------------------ remote failures


@dataclass(frozen=True)
class Failing:
    id: str
    reason: Reason
    fragment: str
    fault: Fault | None = None
    setup: Callable[[Env], object] = lambda env: None
    kind: AnyKind = ROLE
    unanswered: bool = False  # counted by the target's breaker


def _wrong_admin_password(env: Env) -> None:
    env.kube.put_secret(
        OPERATOR_NAMESPACE, "druid-admin", {"username": "admin", "password": "x"}, allowed=False
    )


def _pivot_fault(status: int, body: dict[str, object] | None = None) -> Fault:
    return Fault(method="GET", path="/api/v1/connections", status=status, body=body)


FAILING = [
    Failing("401", Reason.UNAUTHORIZED, "Druid refused the operator's credentials (401)", Fault(status=401)),
    Failing(
        "wrong-admin-password",
        Reason.UNAUTHORIZED,
        "refused the operator's credentials",
        setup=_wrong_admin_password,
    ),
    Failing(
        "admin-without-config-security",
        Reason.FORBIDDEN,
        "Druid denied the operator's account (403): Access-Check-Result: Allowed:false",
        setup=lambda env: env.druid.users["admin"].clear(),
    ),
    Failing(
        "500", Reason.SERVER_ERROR, "Druid failed (500): boom", Fault(status=500, body={"error": "boom"})
    ),
    Failing(
        "malformed-success",
        Reason.SERVER_ERROR,
        "Druid answered unexpectedly (200)",
        Fault(method="GET", status=200, body="<html>", content_type="text/html"),
    ),
    Failing("undocumented-404", Reason.SERVER_ERROR, "Druid answered unexpectedly (404)", Fault(status=404)),
    Failing("503", Reason.UNREACHABLE, "Druid is unreachable: ", Fault(status=503), unanswered=True),
    Failing("reset", Reason.UNREACHABLE, "Druid is unreachable: ", Fault(reset=True), unanswered=True),
    Failing("429", Reason.UNREACHABLE, "Druid is unreachable: ", Fault(status=429)),
    Failing(
        "admin-secret-missing",
        Reason.SECRET_NOT_FOUND,
        "Secret druid-access/druid-admin does not exist",
        setup=lambda env: env.kube.delete_secret(OPERATOR_NAMESPACE, "druid-admin"),
    ),
    Failing(
        "credential-read-fails",
        Reason.KUBERNETES_ERROR,
        "read_secret: HTTP 500 Internal Server Error",
        setup=lambda env: env.kube.fail("read_secret"),
    ),
    Failing(
        "pivot-401",
        Reason.UNAUTHORIZED,
        "Pivot refused the operator's credentials (401)",
        setup=lambda env: setattr(env.pivot, "token", "rotated"),
        kind=CONNECTION,
    ),
    Failing(
        "pivot-403",
        Reason.FORBIDDEN,
        "Pivot denied the operator's account (403): no",
        _pivot_fault(403, {"error": "no"}),
        kind=CONNECTION,
    ),
    Failing("pivot-500", Reason.SERVER_ERROR, "Pivot failed (500)", _pivot_fault(500), kind=CONNECTION),
    Failing(
        "pivot-504",
        Reason.UNREACHABLE,
        "Pivot is unreachable",
        _pivot_fault(504),
        kind=CONNECTION,
        unanswered=True,
    ),
    Failing(
        "pivot-token-missing",
        Reason.SECRET_NOT_FOUND,
        "Secret druid-access/pivot-token does not exist",
        setup=lambda env: env.kube.delete_secret(OPERATOR_NAMESPACE, "pivot-token"),
        kind=CONNECTION,
    ),
]


@pytest.mark.parametrize("case", FAILING, ids=lambda case: case.id)
async def test_a_failed_read_is_reported_and_nothing_is_written(env: Env, case: Failing) -> None:
    case.setup(env)
    if case.fault is not None:
        (env.pivot if case.kind is CONNECTION else env.druid).faults.add(case.fault)
    spec = {"queryHosts": ["broker:8082"]} if case.kind is CONNECTION else {}
    obj = env.create(case.kind, "analytics", spec)
    done = await env.reconcile(obj)
    assert done.reason is case.reason, done.message
    assert case.fragment in done.message
    assert env.remote_writes() == [] and not env.held(obj)
    assert done.status is not None and "owned" not in done.status
    assert done.events == [(_warning_or_normal(case.reason), case.reason.value, done.message)]
    health = env.targets.health(case.kind.target_type, "default")
    assert health.failures == (1 if case.unanswered else 0)


async def test_a_dead_target_is_sent_one_request_per_pace_by_passes_at_once_and_then_none(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of new objects on a target that died while idle: one request per pass, one
    pass at a time, a pace apart, until the breaker opens; then every pass answers
    Unreachable without a request."""
    pace = 0.2
    monkeypatch.setattr(health_module, "PACE", pace)
    env.druid.faults.add(Fault(reset=True))
    users = [env.create(USER, f"user-{n}", {}) for n in range(8)]
    done = await asyncio.gather(*(env.reconcile(obj) for obj in users))
    assert {one.reason for one in done} == {Reason.UNREACHABLE}
    assert env.targets.health("cluster", "default").down
    arrivals = sorted(record.timestamp for record in env.druid.requests)
    # One request per pass until THRESHOLD objects went unanswered (the second read of each
    # pass was cancelled before it was sent); none after.
    assert len(arrivals) == THRESHOLD
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert min(gaps) >= pace * 0.9  # a lower bound: a slow machine only widens it
    assert env.remote_writes() == []


@pytest.mark.parametrize(
    ("cluster", "reason", "fragment"),
    [
        ("tls", Reason.CERTIFICATE_NOT_TRUSTED, "TLS certificate is not trusted"),
        ("moved", Reason.REDIRECT_REFUSED, "Druid redirected to http://127.0.0.1:"),
    ],
)
async def test_a_target_that_cannot_be_trusted_is_not_sent_credentials(
    cluster: str, reason: Reason, fragment: str
) -> None:
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    seen: list[bool] = []

    async with contextlib.AsyncExitStack() as stack:
        leader = await stack.enter_async_context(FakeCoordinator(admin_password=ADMIN_PASSWORD))

        async def redirect(request: web.Request) -> web.Response:
            seen.append("Authorization" in request.headers)
            return web.Response(status=307, headers={"Location": f"{leader.url}{request.path_qs}"})

        url = await stack.enter_async_context(_serving(redirect, context if cluster == "tls" else None))
        env = await stack.enter_async_context(environment(**{cluster: {"coordinatorUrl": url}}))
        obj = env.create(ROLE, "analysts", {"cluster": cluster})
        done = await env.reconcile(obj)
    assert done.reason is reason and fragment in done.message, done.message
    assert len(leader.requests) == 0 and not env.held(obj)
    assert seen == ([] if cluster == "tls" else [True])  # the TLS handshake failed before any request


@pytest.mark.parametrize("store", ["authenticator", "authorizer"])
async def test_a_misnamed_security_store_is_not_reported_as_a_concurrent_change(store: str) -> None:
    """The configuration names a store the cluster lacks: TargetNotFound, not another writer."""
    async with environment(misnamed={store: "nope"}) as env:
        _alice_secret(env)
        obj = env.create(USER, "alice", {"cluster": "misnamed", "password": PASSWORD})
        done = await env.reconcile(obj)
    assert f"Basic {store} with name [nope] does not exist" in done.message
    assert env.remote_writes() == []
    assert done.reason is Reason.TARGET_NOT_FOUND
    assert "does not have the security store the operator configuration names" in done.message


@contextlib.asynccontextmanager
async def _serving(
    handler: Callable[[web.Request], Any], context: ssl.SSLContext | None
) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        yield f"{'https' if context else 'http'}://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


# ------------------------------------------------------------------ writes refused or left in doubt


@pytest.mark.parametrize(
    ("answer", "reason", "owned"),
    [
        ({"status": 400, "body": {"error": "nope"}}, Reason.REJECTED, False),
        ({"status": 403, "body": "Access-Check-Result: Allowed:false, Message:"}, Reason.FORBIDDEN, False),
        (
            {"status": 400, "body": {"error": "Role [analysts] already exists."}},
            Reason.CONCURRENT_CHANGE,
            False,
        ),
        (
            {"status": 500, "body": "Could not create role[analysts] due to concurrent update contention."},
            Reason.CONCURRENT_CHANGE,
            False,
        ),
        ({"status": 500, "body": {"error": "boom"}}, Reason.SERVER_ERROR, True),
        ({"reset": True}, Reason.UNREACHABLE, True),
    ],
    ids=["400", "403", "taken", "contention", "500", "reset"],
)
async def test_a_refused_first_create_withdraws_the_claim_one_in_doubt_keeps_it(
    env: Env, answer: dict[str, Any], reason: Reason, owned: bool
) -> None:
    env.druid.faults.add(Fault(method="POST", path="/roles/analysts$", times=1, **answer))
    obj = env.create(ROLE, "analysts", {"permissions": [WIKI_READ]})
    done = await env.reconcile(obj)
    assert done.reason is reason, done.message
    assert done.status is not None and done.status["owned"] is owned
    assert env.held(obj)  # the finalizer went on before the create
    assert env.claimed(obj) is owned and env.engine.claims.holds(env.current(obj)["metadata"]) is owned
    writes = [call[0] for call in env.kube.writes()]
    if owned:  # the target may have made it: the next pass finds out, and it is ours
        assert writes == ["set_finalizers", "patch_status"]
    else:  # the refusal goes on record before the claim is taken off
        assert writes == ["set_finalizers", "patch_status", "remove_annotation", "patch_status"]
        assert env.kube.status_patches[0][3] == {"owned": False}
    # The next pass, the write allowed, claims the name afresh (the refusal on record goes first);
    # a rejected write is sent again only for a new generation.
    if reason is Reason.REJECTED:
        assert (await env.reconcile(obj)).reason is Reason.REJECTED
        env.update(obj, spec={"permissions": [WIKI_READ, STATE_READ]})
    again = await env.reconcile(obj)
    assert again.reason is Reason.SYNCED and env.druid.roles["analysts"]
    assert again.status is not None and again.status["owned"] is True
    assert ({"owned": None} in [patch for *_, patch in env.kube.status_patches]) is not owned


@pytest.mark.parametrize("undo_fails", [False, True], ids=["undone", "undo-fails"])
@pytest.mark.parametrize("claim", ["this-pass", "on-record"])
async def test_a_name_taken_between_read_and_write_undoes_what_the_pass_made(
    env: Env, undo_fails: bool, claim: str
) -> None:
    _alice_secret(env)
    env.druid.faults.add(
        Fault(method="POST", path=USERS, status=400, body={"error": "User [alice] already exists."}, times=1)
    )
    if undo_fails:
        env.druid.faults.add(Fault(method="DELETE", path="/authentication/db/basic/users/alice$", status=500))
    obj = env.create(USER, "alice", {"password": PASSWORD})
    if claim == "on-record":  # a claim a pass wrote before it stopped: owned, with no status yet
        obj = await env.claim(obj)
    done = await env.reconcile(obj)
    assert done.reason is Reason.CONCURRENT_CHANGE
    assert done.message.startswith("Druid refused a request (400): User [alice] already exists.")
    assert done.message.endswith(
        "; what this pass had created of it could not be removed"
        if undo_fails
        else "; what this pass had created of it was removed again"
    )
    assert ("alice" in env.druid.credentials) is undo_fails
    assert done.status is not None and done.status["owned"] is False and not env.claimed(obj)
    # What was applied is on record, in the Event named after the first write.
    assert done.events[0][:2] == ("Normal", "CreatedAuthenticatorUser")
    assert "set the password of 'alice'" in done.events[0][2]


# ---------------------------------------------------------------------------------- rejected (400)


@pytest.mark.parametrize("change", ["spec", "secret"])
async def test_a_rejected_write_is_not_sent_again_until_its_inputs_change(env: Env, change: str) -> None:
    _alice_secret(env)
    env.druid.faults.add(Fault(method="POST", path=CREDENTIALS, status=400, body={"error": "weak password"}))
    obj = env.create(USER, "alice", {"password": PASSWORD})
    done = await env.reconcile(obj)
    assert (done.reason, done.message) == (
        Reason.REJECTED,
        "Druid rejected a request (400): weak password; not retried until the spec or a referenced Secret changes",
    )
    assert done.status is not None and done.status["owned"] is True  # it made the authenticator user
    env.druid.faults.clear()
    env.forget_requests()
    for _ in range(2):  # remembered: not even a read, and nothing new to say
        again = await env.reconcile(obj)
        assert (again.reason, again.message, again.events) == (Reason.REJECTED, done.message, [])
    env.open_breaker()  # the remembered refusal is answered before the breaker is asked
    assert (await env.reconcile(obj)).reason is Reason.REJECTED
    assert env.remote_requests() == 0
    env.targets.health("cluster", "default").heard()
    if change == "spec":
        env.update(obj, spec={"password": PASSWORD, "roles": ["readers"]})
    else:
        _alice_secret(env, "alice-pw-2")
    fixed = await env.reconcile(obj)
    assert fixed.reason is Reason.SYNCED
    password = "alice-pw-2" if change == "secret" else "alice-pw-1"
    assert _logs_in(env, "alice", password)


# ------------------------------------------------------------------------------------------ drift


async def _synced_user(env: Env, **spec: Any) -> dict[str, Any]:
    _alice_secret(env)
    obj = env.create(USER, "alice", {"roles": ["readers"], "password": PASSWORD, **spec})
    assert (await env.reconcile(obj)).reason is Reason.SYNCED
    env.forget_requests()
    return obj


async def test_drift_is_reported_once_and_left_alone_under_report(env: Env) -> None:
    obj = await _synced_user(env, driftPolicy="Report")
    env.druid.users["alice"] = {"writers"}  # changed behind the operator's back
    done = await env.reconcile(obj)
    assert (done.reason, done.message) == (
        Reason.DRIFTED,
        "the remote object differs from the spec; driftPolicy is Report",
    )
    assert env.remote_writes() == [] and env.druid.users["alice"] == {"writers"}
    assert done.status is not None and done.status["driftCount"] == 1 and done.status["owned"] is True
    drifted = [c for c in done.status["conditions"] if c["type"] == DRIFTED]
    assert [(c["status"], c["message"]) for c in drifted] == [("True", "remote differs in: roles")]
    assert done.events == [("Normal", "Drifted", done.message)]
    patches = len(env.kube.status_patches)
    again = await env.reconcile(obj)  # the same drift: counted once, nothing rewritten or said
    assert again.reason is Reason.DRIFTED and again.events == []
    assert len(env.kube.status_patches) == patches and env.current(obj)["status"]["driftCount"] == 1


async def test_drift_is_corrected_under_correct(env: Env) -> None:
    obj = await _synced_user(env)
    env.druid.users["alice"] = {"writers"}
    env.druid.set_password("alice", "changed-by-hand", iterations=1000)
    done = await env.reconcile(obj)
    assert (done.reason, done.message) == (Reason.SYNCED, "drift corrected")
    assert env.druid.users["alice"] == {"readers"}
    assert _logs_in(env, "alice", "alice-pw-1")
    assert done.events == [
        (
            "Normal",
            "SetPassword",
            "set the password of 'alice'; assigned role 'readers' to 'alice'; "
            "removed role 'writers' from 'alice' (drift on the remote side)",
        )
    ]
    assert done.status is not None and done.status["driftCount"] == 1
    assert [c["type"] for c in done.status["conditions"]] == ["Ready"]


async def test_a_rotated_secret_is_applied_even_under_report(env: Env) -> None:
    obj = await _synced_user(env, driftPolicy="Report")
    _alice_secret(env, "alice-pw-2")
    done = await env.reconcile(obj)
    assert (done.reason, done.message) == (Reason.SYNCED, "in sync")
    assert done.events == [
        ("Normal", "SetPassword", "set the password of 'alice' (referenced Secret changed)")
    ]
    assert _logs_in(env, "alice", "alice-pw-2")
    rv = env.kube.secrets[("team-a", "alice-pw")].resource_version
    assert done.status is not None and done.status["secretVersion"] == f"alice-pw@{rv}"
    assert "driftCount" not in done.status


# -------------------------------------------------------------------------------- Kubernetes side


async def test_the_finalizer_not_going_on_postpones_the_pass(env: Env) -> None:
    obj = env.create(USER, "alice", {"roles": ["readers"]})
    stale = env.current(obj)
    env.kube.objects.pop((USER.info.plural, *_key(obj)))  # deleted meanwhile: nothing may be made for it
    done = await env.reconcile(obj, body=stale)
    assert done.result.postponed and done.reason is Reason.KUBERNETES_ERROR
    assert done.message == "the object changed while the operator's finalizer was being put on it"
    assert env.remote_writes() == [] and "alice" not in env.druid.users


async def test_a_kubernetes_failure_putting_the_finalizer_on_writes_nothing_remote(env: Env) -> None:
    env.kube.fail("set_finalizers", times=1)
    obj = env.create(USER, "alice", {"roles": ["readers"]})
    done = await env.reconcile(obj)
    assert (done.reason, done.message) == (
        Reason.KUBERNETES_ERROR,
        "set_finalizers: HTTP 500 Internal Server Error",
    )
    assert env.remote_writes() == [] and not env.held(obj)
    assert (await env.reconcile(obj)).reason is Reason.SYNCED


async def test_a_status_is_written_only_when_it_changes_and_a_failure_said_once(env: Env) -> None:
    env.druid.faults.add(Fault(status=500, body={"error": "boom"}))
    obj = env.create(ROLE, "analysts", {})
    first, second = await env.reconcile(obj), await env.reconcile(obj)
    assert first.reason is second.reason is Reason.SERVER_ERROR
    assert len(first.events) == 1 and second.events == []
    assert env.kube.count("patch_status") == 1
    env.kube.fail("patch_status")  # the API server away: write_status says so to its caller
    with pytest.raises(KubeError, match="patch_status: HTTP 500"):
        await env.engine.write_status(ROLE, env.current(obj), Outcome(Reason.SYNCED, "in sync"))


# ---------------------------------------------------------------------------------------- finalize


def _gone_already(env: Env) -> None:
    del env.druid.users["alice"], env.druid.credentials["alice"]


@dataclass(frozen=True)
class Released:
    id: str
    spec: Mapping[str, Any]
    expected: str
    name: str = "alice"
    namespace: str = "team-a"
    owned: bool = True  # its status says so
    claimed: bool = False  # its sealed claim says so (no status yet)
    older: bool = False
    setup: Callable[[Env], object] = lambda env: None
    event: Event | None = None
    asks: bool = False  # the target is asked to delete it


DELETED = ("Normal", "Deleted", "deleted user 'alice'")
RELEASED = [
    Released("invalid-spec", {"roles": 7}, "released: the spec was never valid, nothing was created"),
    Released(
        "retain", {"deletionPolicy": "Retain"}, "released: deletionPolicy Retain leaves user 'alice' in place"
    ),
    Released(
        "never-owned", {}, "released: user 'alice' was never created or adopted by this resource", owned=False
    ),
    Released(
        "target-removed",
        {"cluster": "retired"},
        "target 'retired' is no longer configured: released without deleting user 'alice'",
        event=(
            "Warning",
            "TargetRemoved",
            "target 'retired' is no longer configured: released without deleting user 'alice'",
        ),
    ),
    Released(
        "protected",
        {"name": "admin"},
        "released: user 'admin' is protected or outside this namespace's targets",
    ),
    Released(
        "namespace-no-longer-allowed",
        {},
        "released: user 'alice' is protected or outside this namespace's targets",
        namespace="outsider",
    ),
    Released("another-claimant", {}, "released: user 'alice' belongs to team-b/first", older=True),
    Released("deleted", {}, "deleted user 'alice'", event=DELETED, asks=True),
    Released(
        "deleted-by-claim", {}, "deleted user 'alice'", owned=False, claimed=True, event=DELETED, asks=True
    ),
    Released("already-gone", {}, "user 'alice' was already gone", setup=_gone_already, asks=True),
    # Two at once: the first in the engine's order decides.
    Released("invalid-before-retain", {"deletionPolicy": "Retain", "roles": 7}, "the spec was never valid"),
    Released("retain-before-ownership", {"deletionPolicy": "Retain"}, "deletionPolicy Retain", owned=False),
    Released("ownership-before-target", {"cluster": "retired"}, "never created or adopted", owned=False),
    Released(
        "target-before-protection",
        {"cluster": "retired", "name": "admin"},
        "no longer configured",
        event=(
            "Warning",
            "TargetRemoved",
            "target 'retired' is no longer configured: released without deleting user 'admin'",
        ),
    ),
    Released("protection-before-claimants", {"name": "admin"}, "is protected", older=True),
    Released("claimants-before-breaker", {}, "belongs to team-b/first", older=True, setup=Env.open_breaker),
]


@pytest.mark.parametrize("case", RELEASED, ids=lambda case: case.id)
async def test_finalize_releases_the_object(env: Env, case: Released) -> None:
    env.druid.add_user("alice", password="pw", roles=["readers"])
    status = {"owned": True} if case.owned else None
    obj = env.create(USER, case.name, case.spec, namespace=case.namespace, status=status, held=True)
    if case.claimed:
        obj = await env.claim(obj)
    if case.older:
        env.older_claimant(obj, case.spec.get("name", case.name))
    case.setup(env)
    done, events = await env.finalize(obj)
    assert case.expected in done
    assert events == ([case.event] if case.event else [])
    assert ("alice" in env.druid.users) is not case.asks
    if case.asks:
        assert env.remote_writes() == [
            "DELETE /druid-ext/basic-security/authentication/db/basic/users/alice",
            "DELETE /druid-ext/basic-security/authorization/db/basic/users/alice",
        ]
    else:
        assert env.remote_requests() == 0


@pytest.mark.parametrize("kind", [USER, ROLE, MAPPING, CONNECTION], ids=lambda kind: kind.info.kind)
async def test_finalize_deletes_what_the_object_made(env: Env, kind: AnyKind) -> None:
    spec = {
        CONNECTION: {"queryHosts": ["broker:8082"]},
        MAPPING: {"groupPattern": GROUP_PATTERN, "roles": ["readers"]},
    }.get(kind, {})
    obj = env.create(kind, "made", spec)
    assert (await env.reconcile(obj)).reason is Reason.SYNCED
    done, events = await env.finalize(obj)
    assert done == f"deleted {kind.family} 'made'" and events == [("Normal", "Deleted", done)]
    remote = {
        USER: env.druid.users,
        ROLE: env.druid.roles,
        MAPPING: env.druid.group_mappings,
        CONNECTION: env.pivot.connections,
    }[kind]
    assert "made" not in remote


async def test_deleting_a_suspended_object_makes_no_remote_call(env: Env) -> None:
    env.druid.add_user("alice", roles=["readers"])
    obj = env.create(USER, "alice", {"suspend": True}, status={"owned": True}, held=True)
    done, _ = await env.finalize(obj)
    assert done.startswith("released")
    assert env.remote_requests() == 0 and env.druid.users["alice"] == {"readers"}


@dataclass(frozen=True)
class Blocked:
    id: str
    reason: Reason
    fragment: str
    setup: Callable[[Env], object]


def _druid_fault(**answer: Any) -> Callable[[Env], object]:
    return lambda env: env.druid.faults.add(Fault(method="DELETE", **answer))


BLOCKED = [
    Blocked("breaker-open", Reason.UNREACHABLE, "ConnectError: connection refused (2)", Env.open_breaker),
    Blocked("no-answer", Reason.UNREACHABLE, "Druid is unreachable: ", _druid_fault(reset=True)),
    Blocked(
        "admin-secret-missing",
        Reason.SECRET_NOT_FOUND,
        "Secret druid-access/druid-admin does not exist",
        lambda env: env.kube.delete_secret(OPERATOR_NAMESPACE, "druid-admin"),
    ),
    Blocked(
        "kubernetes-error",
        Reason.KUBERNETES_ERROR,
        "read_secret: HTTP 500 Internal Server Error",
        lambda env: env.kube.fail("read_secret"),
    ),
    Blocked(
        "forbidden", Reason.FORBIDDEN, "Druid denied the operator's account (403)", _druid_fault(status=403)
    ),
    Blocked("server-error", Reason.SERVER_ERROR, "Druid failed (500)", _druid_fault(status=500)),
]


@pytest.mark.parametrize("case", BLOCKED, ids=lambda case: case.id)
async def test_finalize_is_blocked_while_the_target_cannot_be_asked(env: Env, case: Blocked) -> None:
    env.druid.add_user("alice", roles=["readers"])
    obj = env.create(USER, "alice", {}, status={"owned": True}, held=True)
    case.setup(env)
    with pytest.raises(DeletionBlocked) as blocked:
        await env.finalize(obj)
    assert blocked.value.reason is case.reason and case.fragment in blocked.value.message
    assert env.druid.users["alice"] == {"readers"} and env.held(obj)
    # What the deletion pass writes meanwhile: a DeletionBlocked condition beside Ready.
    outcome = Outcome(Reason.DELETION_BLOCKED, blocked.value.message)
    status = await env.engine.write_status(
        USER, env.current(obj), outcome, deletion_blocked=blocked.value.message
    )
    conditions = {c["type"]: (c["status"], c["reason"], c["message"]) for c in status["conditions"]}
    assert conditions[DELETION_BLOCKED] == ("True", "DeletionBlocked", blocked.value.message)
    assert env.current(obj)["status"]["conditions"] == status["conditions"]
