"""``druid-access diff``: what the operator would write to a live target for a set of files.

Each custom resource in the files is taken through the operator's own steps: its spec parsed
by the model and held to what its namespace may do (``admission``, with ``--config``), the
remote name and the Secrets it needs worked out by its kind, the desired state built, the
target observed as a resync does (read whole once; live again for an object with something to
do) and the writes planned by the kind's pure ``plan``. The writes are then shown field by
field; none is sent. So ``diff`` says nothing when the operator would write nothing.

A Secret the files do not hold is *not checked*: its value is taken to be what the target
has (a user's password that verifies, a connection's secret property unchanged), and the line
says so. Secret values are never shown, only which Secret key a value comes from.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr, ValidationError

from druid_access import observation
from druid_access.clients import ApiError, PivotConnection
from druid_access.config import OperatorConfig, ProtectedPrincipals
from druid_access.models import (
    ALLOW_LABEL,
    API_VERSION,
    DRUID_ROLE,
    AdoptionPolicy,
    DruidConnectionSpec,
    SecretKeyRef,
    validation_message,
)
from druid_access.observation import (
    DruidTarget,
    PivotTarget,
    Snapshot,
    SnapshotView,
    TargetSnapshots,
    bulk_refused,
)
from druid_access.reconcile import admission
from druid_access.resources import BY_KIND, group_mapping, role, user
from druid_access.resources import connection as connection_kind
from druid_access.resources.base import AnyKind, DruidRemote, InvalidSpecError, Op, PivotRemote, Plan

# Stands in for a Secret value the files do not hold; never sent anywhere.
_NOT_GIVEN = SecretStr("\x00not given\x00")
_PARALLEL = 8


# libyaml's parser when PyYAML was built with it (its wheels are): ten times as fast for large files.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class InputError(Exception):
    """A file cannot be read or holds something that is not a YAML/JSON object."""


@dataclass(frozen=True)
class Line:
    """``+`` added, ``-`` removed, ``~`` changed, ``?`` not checked, ``!`` what stands in the way,
    ``=`` nothing to do."""

    sign: str
    text: str

    def __str__(self) -> str:
        return f"  {self.sign} {self.text}"


@dataclass
class ObjectDiff:
    title: str
    state: str  # create | change | unchanged | refused | error
    lines: list[Line] = field(default_factory=list)
    writes: int = 0  # the writes the operator would send
    not_checked: bool = False  # a Secret it reads is not in the files


# --- reading the files -----------------------------------------------------------------------


def load_documents(paths: Sequence[str]) -> list[dict[str, Any]]:
    """Every object of the files (a directory: its *.yaml, *.yml and *.json, recursively)."""
    documents: list[dict[str, Any]] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files = sorted(
                p for p in path.rglob("*") if p.suffix in {".yaml", ".yml", ".json"} and p.is_file()
            )
        elif path.is_file():
            files = [path]
        else:
            raise InputError(f"-f {given}: no such file or directory")
        for file in files:
            try:
                loaded = list(yaml.load_all(file.read_text(encoding="utf-8"), Loader=_LOADER))
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
                raise InputError(f"{file}: cannot be read as YAML: {_one_line(error)}") from None
            for doc in loaded:
                documents += _flatten(doc, file)
    return documents


def _one_line(error: Exception) -> str:
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        return f"{error.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(error).split())


def _flatten(doc: object, file: Path) -> list[dict[str, Any]]:
    if doc is None:
        return []
    if not isinstance(doc, dict):
        raise InputError(f"{file}: a document is not an object")
    if doc.get("kind") == "List" or str(doc.get("kind", "")).endswith("List"):
        return [item for entry in doc.get("items") or [] for item in _flatten(entry, file)]
    return [doc]


@dataclass
class FileSecrets:
    """The Secrets in the files: values by (namespace or "", name, key), and which opted in."""

    values: dict[tuple[str, str, str], SecretStr] = field(default_factory=dict)
    allowed: set[tuple[str, str]] = field(default_factory=set)
    present: set[tuple[str, str]] = field(default_factory=set)

    def get(self, namespace: str, ref: SecretKeyRef) -> SecretStr | None:
        return self.values.get((namespace, ref.name, ref.key)) or self.values.get(("", ref.name, ref.key))

    def not_allowed(self, namespace: str, name: str) -> bool:
        """In the files without ``druidaccess.io/allow: "true"``: the operator would not read it."""
        here = [(ns, name) for ns in (namespace, "") if (ns, name) in self.present]
        return bool(here) and not any(key in self.allowed for key in here)


def secrets_of(documents: Iterable[Mapping[str, Any]]) -> FileSecrets:
    """The Secrets of the files."""
    found = FileSecrets()
    values = found.values
    for doc in documents:
        if doc.get("kind") != "Secret" or doc.get("apiVersion") != "v1":
            continue
        meta = doc.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        found.present.add((namespace, name))
        if (meta.get("labels") or {}).get(ALLOW_LABEL) == "true":
            found.allowed.add((namespace, name))
        for key, encoded in (doc.get("data") or {}).items():
            try:
                values[(namespace, name, key)] = SecretStr(
                    base64.b64decode(str(encoded), validate=True).decode()
                )
            except (binascii.Error, UnicodeDecodeError):
                continue  # the operator reports such a value itself; here it is not given
        for key, plain in (doc.get("stringData") or {}).items():
            values[(namespace, name, key)] = SecretStr(str(plain))
    return found


# --- one object ------------------------------------------------------------------------------


@dataclass
class Targets:
    """The targets to compare with, and each one read whole (when it allows a bulk read)."""

    druid: DruidTarget | None
    pivot: PivotTarget | None
    protected: ProtectedPrincipals
    # The operator's configuration (``--config``): what a namespace may do is checked as it does.
    config: OperatorConfig | None = None
    snapshots: dict[str, Snapshot[Any]] = field(default_factory=dict)
    _owners: dict[str, TargetSnapshots[Any]] = field(default_factory=dict)

    async def read_whole(self) -> None:
        """One bulk read per target, like a resync's: every object in sync is then confirmed
        without a request of its own. A target that refuses it is read object by object."""
        if self.druid is not None:
            druid = self.druid
            await self._read("cluster", lambda: observation.read_druid(
                druid.client, druid.authenticator, druid.authorizer, passwords=True
            ))  # fmt: skip
        if self.pivot is not None:
            client = self.pivot.client
            await self._read("pivot", lambda: observation.read_pivot(client))

    async def _read(self, target_type: str, read: Callable[[], Awaitable[Any]]) -> None:
        try:
            data = await read()
        except ApiError as error:
            if not bulk_refused(error):
                raise
            return
        self._owners[target_type] = TargetSnapshots(target_type, read)
        self.snapshots[target_type] = Snapshot(data, taken=time.monotonic(), seq=0, number=1)

    def remote(self, target_type: str, *, whole: bool) -> DruidRemote | PivotRemote:
        """The remote a pass observes through: the snapshot when ``whole`` and there is one."""
        snapshot = self.snapshots.get(target_type) if whole else None
        view = SnapshotView(snapshot, self._owners[target_type]) if snapshot is not None else None
        if target_type == "pivot":
            assert self.pivot is not None
            return PivotRemote(self.pivot.client, view=view)
        assert self.druid is not None
        return DruidRemote(self.druid.client, self.druid.authenticator, self.druid.authorizer, view=view)


async def diff_object(
    doc: Mapping[str, Any], secrets: FileSecrets, targets: Targets, roles_coming: frozenset[str] = frozenset()
) -> ObjectDiff | None:
    """What the operator would write for one custom resource; None when it is not for these
    targets. ``roles_coming``: roles DruidRoles in the files create, which the operator waits for."""
    kind: AnyKind = BY_KIND[doc["kind"]]
    meta = {"name": "", "namespace": "", **(doc.get("metadata") or {})}
    namespace, meta_name = str(meta["namespace"] or ""), str(meta["name"] or "")
    title = f"{doc['kind']} {namespace + '/' if namespace else ''}{meta_name}"
    try:
        spec = kind.spec_model(doc.get("spec") or {})
    except ValidationError as error:
        return ObjectDiff(title, "error", [Line("!", f"invalid: {validation_message(error, limit=20)}")])
    name = kind.remote_name(spec, meta_name)
    if not name:
        return ObjectDiff(title, "error", [Line("!", "invalid: it has neither metadata.name nor spec.name")])
    title = f"{title} -> {kind.family} {name!r}"
    target = targets.pivot if kind.target_type == "pivot" else targets.druid
    wanted = None if target is None else (target.pivot if isinstance(target, PivotTarget) else target.cluster)
    if target is None or (wanted and kind.target_name(spec) != wanted):
        return None
    refused = _refused(kind, spec, meta, targets)
    if refused is not None:
        return ObjectDiff(title, "refused", [Line("!", refused)])
    if spec.suspend:
        return ObjectDiff(title, "unchanged", [Line("=", "suspended: the operator sends nothing for it")])
    values: dict[tuple[str, str], SecretStr] = {}
    missing: list[SecretKeyRef] = []
    for need in kind.secret_needs(spec):
        if secrets.not_allowed(namespace, need.ref.name):
            why = f'Secret {need.ref.name} is not labelled {ALLOW_LABEL}: "true": SecretNotAllowed, nothing sent'
            return ObjectDiff(title, "refused", [Line("!", why)])
        value = secrets.get(namespace, need.ref)
        if value is None:
            missing.append(need.ref)
        values[(need.ref.name, need.ref.key)] = value or _NOT_GIVEN
    try:
        desired = kind.desired(spec, name, values)
    except InvalidSpecError as error:
        return ObjectDiff(title, "error", [Line("!", f"invalid: {error}")])
    coming = roles_coming & kind.role_refs(spec)

    async def planned(whole: bool) -> tuple[Any, Plan[Any]]:
        remote = targets.remote(kind.target_type, whole=whole)
        if isinstance(desired, user.DesiredUser) and missing:
            observed = await _user_unchecked(kind, remote, name, desired)
        else:
            observed = await kind.observe(remote, name, desired)
        wanted, observed = _assume_unchanged(desired, observed, spec, missing, coming)
        return observed, kind.plan(wanted, observed)

    # As the operator does: the snapshot may confirm an object in sync; anything to do is read
    # again live, and planned from that read.
    observed, plan = await planned(whole=True)
    if plan.ops or plan.missing_roles:
        observed, plan = await planned(whole=False)
    state = "create" if not kind.exists(observed) else "change"
    result = ObjectDiff(
        title, state, _lines(plan, observed, missing), len(plan.ops), not_checked=bool(missing)
    )
    result.lines += [
        Line("!", f"role {r!r} does not exist: RoleNotFound, not granted") for r in sorted(plan.missing_roles)
    ]
    if result.writes and kind.exists(observed) and spec.adoption_policy is AdoptionPolicy.REFUSE:
        result.lines.append(
            Line(
                "!",
                "sent only if this resource made or adopted it (else AlreadyExists: adoptionPolicy Refuse)",
            )
        )
    if not result.writes:
        result.state = "unchanged"
    return result


async def _user_unchecked(
    kind: AnyKind, remote: Any, name: str, desired: user.DesiredUser
) -> user.ObservedUser:
    """A user whose password Secret is not in the files, observed without hashing a stand-in
    password (PBKDF2 per user): a stored password is taken to match, as ``?`` lines say."""
    observed: user.ObservedUser = await kind.observe(
        remote, name, dataclasses.replace(desired, password=None)
    )
    authn = await remote.reads.authenticator_user(name)
    matches = True if authn is not None and authn.credentials is not None else None
    return dataclasses.replace(observed, authn=authn, password_matches=matches)


def _refused(kind: AnyKind, spec: Any, meta: Mapping[str, Any], targets: Targets) -> str | None:
    """Why the operator would refuse the object before any remote call, or None."""
    name = kind.remote_name(spec, meta["name"])
    if targets.config is None:
        return (
            f"{name!r} is protected: the operator refuses it (Protected)"
            if kind.protected(name, targets.protected)
            else None
        )
    if not meta["namespace"]:
        return "no metadata.namespace: what its namespace may do cannot be checked (give it in the files)"
    configs = targets.config.clusters if kind.target_type == "cluster" else targets.config.pivots
    # As owned: the adoption rule is for objects the resource did not make (see the Refuse line).
    refused = admission(kind, spec, meta, configs.get(kind.target_name(spec)), owned=True)
    return f"{refused[1]} ({refused[0].value})" if refused is not None else None


def _assume_unchanged(
    desired: Any, observed: Any, spec: Any, missing: list[SecretKeyRef], coming: frozenset[str]
) -> tuple[Any, Any]:
    """Take every Secret value the files lack to be what the target has (where it has one),
    and the roles DruidRoles in the files create to exist, as they will when the operator
    assigns them (it waits for them)."""
    if coming and isinstance(observed, user.ObservedUser | group_mapping.ObservedGroupMapping):
        observed = dataclasses.replace(observed, existing_roles=observed.existing_roles | coming)
    if not missing:
        return desired, observed
    # (A user's password is taken to match where one is stored by ``_user_unchecked`` already.)
    if isinstance(desired, PivotConnection) and isinstance(observed, PivotConnection):
        return _connection_assumed(desired, observed, spec, missing), observed
    return desired, observed


def _connection_assumed(
    desired: PivotConnection,
    observed: PivotConnection,
    spec: DruidConnectionSpec,
    missing: list[SecretKeyRef],
) -> PivotConnection:
    update: dict[str, Any] = {}
    for prop, ref in connection_secret_refs(spec).items():
        if ref not in missing:
            continue
        if prop == "default_db_auth_token.password" and desired.default_db_auth_token is not None:
            have = observed.default_db_auth_token.password if observed.default_db_auth_token else None
            if have is not None:
                update["default_db_auth_token"] = desired.default_db_auth_token.model_copy(
                    update={"password": have}
                )
        elif getattr(observed, prop) is not None:  # none there: the operator would send one
            update[prop] = getattr(observed, prop)
    return desired.model_copy(update=update)


def connection_secret_refs(spec: DruidConnectionSpec) -> dict[str, SecretKeyRef]:
    """The PivotConnection property each Secret reference of a spec fills."""
    refs: dict[str, SecretKeyRef] = {}
    if spec.default_db_auth_token is not None:
        refs["default_db_auth_token.password"] = spec.default_db_auth_token.password_secret_ref
    if spec.tls is not None:
        for prop in ("ca", "cert", "key", "passphrase"):
            if (ref := getattr(spec.tls, prop)) is not None:
                refs[prop] = ref
    if spec.socks is not None and spec.socks.password_secret_ref is not None:
        refs["sock_password"] = spec.socks.password_secret_ref
    return refs


def _ref(missing: list[SecretKeyRef]) -> str:
    return ", ".join(f"Secret {r.name} key {r.key}" for r in missing)


def _lines(plan: Plan[Any], observed: Any, missing: list[SecretKeyRef]) -> list[Line]:
    lines: list[Line] = []
    for op in plan.ops:
        lines += _op_lines(op, observed, missing)
    if missing and not any(isinstance(op, user.SetPassword) for op in plan.ops):
        lines.append(Line("?", f"not checked: {_ref(missing)} not in the files (taken to match the target)"))
    return lines


def _permission(p: Any) -> str:
    return f"permission {p.action} {p.resource_type}/{p.resource_name}"


def _op_lines(op: Op[Any], observed: Any, missing: list[SecretKeyRef]) -> list[Line]:
    if isinstance(op, user.CreateAuthenticatorUser):
        return [Line("+", f"authenticator user {op.name!r}")]
    if isinstance(op, user.SetPassword):
        source = f"not in the files: {_ref(missing)}" if missing else "from its Secret"
        created = isinstance(observed, user.ObservedUser) and observed.authn is None
        if created or not (observed.authn and observed.authn.credentials):
            return [Line("+", f"password ({source})")]
        return [Line("~", "password: the stored one does not verify against the Secret's; it would be set")]
    if isinstance(op, user.CreateAuthorizerUser):
        return [Line("+", f"authorizer user {op.name!r}")]
    if isinstance(op, user.AssignRole | group_mapping.AssignMappingRole):
        return [Line("+", f"role {op.role!r}")]
    if isinstance(op, user.UnassignRole | group_mapping.UnassignMappingRole):
        return [Line("-", f"role {op.role!r}")]
    if isinstance(op, role.CreateRole):
        return [Line("+", f"role {op.name!r}")]
    if isinstance(op, role.SetPermissions):
        have = observed.permissions if observed is not None else frozenset()
        added = [Line("+", _permission(p)) for p in sorted(op.permissions - have, key=_permission)]
        removed = [Line("-", _permission(p)) for p in sorted(have - op.permissions, key=_permission)]
        return added + removed
    if isinstance(op, group_mapping.DeleteGroupMapping):
        was = observed.mapping.group_pattern if observed.mapping else None
        return [
            Line(
                "-",
                f"group mapping {op.name!r}: groupPattern {json.dumps(was)} (a pattern cannot change in place)",
            )
        ]
    if isinstance(op, group_mapping.CreateGroupMapping):
        roles = ", ".join(repr(r) for r in sorted(op.roles)) or "none"
        return [
            Line(
                "+", f"group mapping {op.name!r}: groupPattern {json.dumps(op.group_pattern)}, roles {roles}"
            )
        ]
    if isinstance(op, connection_kind.CreateConnection):
        return [Line("+", f"connection {op.connection.name!r}")] + [
            Line("+", f"{key}: {value}") for key, value in _shown(op.connection, None).items()
        ]
    if isinstance(op, connection_kind.UpdateConnection):
        want, have = _shown(op.connection, observed), _shown(observed, None)
        return [
            Line("~", f"{key}: {have.get(key, 'unset')} -> {want.get(key, 'unset')}") for key in op.fields
        ]
    return [Line("~", op.describe())]


# Properties whose values come from Secrets: shown as set, changed or unset, never by value.
_FROM_SECRETS = {"key", "passphrase", "sockPassword", "ca", "cert"}
# The properties whose values a line may show: those the model declares and no Secret fills.
# Anything else Pivot returns may be a secret the model does not know: shown by name only.
_SHOWN = (
    {field.alias or name for name, field in PivotConnection.model_fields.items()}
    - _FROM_SECRETS
    - {"defaultDbAuthToken"}
)
_TOKEN_SHOWN = ("type", "username")


def _shown(connection: PivotConnection, other: PivotConnection | None) -> dict[str, str]:
    """A connection's properties as a diff line shows them. A value from a Secret shows as
    ``(secret)``, or ``(secret, differs)`` when ``other`` has another one; a property the
    operator does not manage as ``(not managed, value hidden)``."""
    mine = connection_kind.comparable(connection)
    theirs = connection_kind.comparable(other) if other is not None else {}

    def secret(key: str, value: object, against: Mapping[str, Any]) -> str:
        return "(secret, differs)" if key in against and against[key] != value else "(secret)"

    shown: dict[str, str] = {}
    for key, value in mine.items():
        if key in _FROM_SECRETS:
            shown[key] = secret(key, value, theirs)
        elif key == "defaultDbAuthToken" and isinstance(value, dict):
            found = theirs.get(key)
            other_token: Mapping[str, Any] = found if isinstance(found, dict) else {}
            token = {k: value[k] for k in _TOKEN_SHOWN if k in value}
            token.update({k: "(hidden)" for k in value if k not in _TOKEN_SHOWN and k != "password"})
            if "password" in value:
                token["password"] = secret("password", value["password"], other_token)
            shown[key] = json.dumps(token, sort_keys=True, ensure_ascii=False)
        elif key in _SHOWN:
            shown[key] = json.dumps(value, sort_keys=True, ensure_ascii=False)
        else:
            shown[key] = "(not managed, value hidden)"
    return shown


# --- all of them -----------------------------------------------------------------------------


@dataclass
class Report:
    objects: list[ObjectDiff] = field(default_factory=list)
    other_targets: int = 0

    @property
    def changes(self) -> bool:
        return any(o.writes for o in self.objects)

    @property
    def errors(self) -> bool:
        return any(o.state == "error" for o in self.objects)

    def text(self) -> str:
        out: list[str] = []
        for item in self.objects:
            if item.state == "unchanged" and not item.lines:
                continue
            suffix = {"create": " (new)", "refused": " (refused)", "error": " (error)"}.get(item.state, "")
            out.append(item.title + suffix)
            out += [str(line) for line in item.lines]
        counts = {
            state: sum(1 for o in self.objects if o.state == state)
            for state in ("create", "change", "unchanged", "refused", "error")
        }
        unchecked = sum(1 for o in self.objects if o.not_checked)
        writes = sum(o.writes for o in self.objects)
        summary = (
            f"{len(self.objects)} objects, {writes} writes: {counts['create']} to create, {counts['change']} to change, "
            f"{counts['unchanged']} unchanged, {counts['refused']} refused, {counts['error']} invalid; "
            f"{unchecked} with Secrets not checked"
        )
        if self.other_targets:
            summary += f"; {self.other_targets} for other targets not compared"
        out.append(summary)
        return "\n".join(out) + "\n"


def _remote_name(doc: Mapping[str, Any]) -> str:
    return str((doc.get("spec") or {}).get("name") or (doc.get("metadata") or {}).get("name") or "")


async def diff(documents: Sequence[Mapping[str, Any]], targets: Targets) -> Report:
    secrets = secrets_of(documents)
    await targets.read_whole()
    report = Report()
    ours = [d for d in documents if d.get("apiVersion") == API_VERSION and d.get("kind") in BY_KIND]
    limit = asyncio.Semaphore(_PARALLEL)

    roles = frozenset(_remote_name(d) for d in ours if d.get("kind") == DRUID_ROLE.kind)

    async def one(doc: Mapping[str, Any]) -> ObjectDiff | None:
        async with limit:
            return await diff_object(doc, secrets, targets, roles)

    results = await asyncio.gather(*(one(doc) for doc in ours))
    report.objects = [r for r in results if r is not None]
    report.other_targets = sum(1 for r in results if r is None)
    return report
