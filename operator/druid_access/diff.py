"""``druid-access diff``: what the operator would write to a live target for a set of files.

Each custom resource in the files is taken through the operator's own steps: its spec parsed
by the model, the remote name and the Secrets it needs worked out by its kind, the desired
state built, the target read live (``observe``) and the writes planned by the kind's pure
``plan``. The writes are then shown field by field; none is sent. So ``diff`` says nothing
exactly when the operator would write nothing.

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
from druid_access.config import ProtectedPrincipals
from druid_access.export import DruidTarget, PivotTarget, bulk_refused
from druid_access.models import API_VERSION, DruidConnectionSpec, SecretKeyRef
from druid_access.observation import Snapshot, SnapshotView, TargetSnapshots
from druid_access.resources import connection as connection_kind
from druid_access.resources import group_mapping, role, user
from druid_access.resources.base import DruidRemote, InvalidSpecError, Op, PivotRemote, Plan
from druid_access.resources.connection import ConnectionKind
from druid_access.resources.group_mapping import GroupMappingKind
from druid_access.resources.role import RoleKind
from druid_access.resources.user import UserKind

KINDS: dict[str, Any] = {
    k.info.kind: k for k in (UserKind(), RoleKind(), GroupMappingKind(), ConnectionKind())
}
# Stands in for a Secret value the files do not hold; never sent anywhere.
_NOT_GIVEN = SecretStr("\x00not given\x00")
_PARALLEL = 8


class InputError(Exception):
    """A file cannot be read or holds something that is not a YAML/JSON object."""


@dataclass(frozen=True)
class Line:
    """``+`` added, ``-`` removed, ``~`` changed, ``?`` not checked, ``!`` what stands in the way."""

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

    @property
    def not_checked(self) -> bool:
        return any(line.sign == "?" for line in self.lines)


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
                loaded = list(yaml.safe_load_all(file.read_text(encoding="utf-8")))
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


def secrets_of(documents: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str], SecretStr]:
    """The values of the Secrets in the files, by (namespace or "", name, key)."""
    values: dict[tuple[str, str, str], SecretStr] = {}
    for doc in documents:
        if doc.get("kind") != "Secret" or doc.get("apiVersion") != "v1":
            continue
        meta = doc.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        for key, encoded in (doc.get("data") or {}).items():
            try:
                values[(namespace, name, key)] = SecretStr(
                    base64.b64decode(str(encoded), validate=True).decode()
                )
            except (binascii.Error, UnicodeDecodeError):
                continue  # the operator reports such a value itself; here it is not given
        for key, plain in (doc.get("stringData") or {}).items():
            values[(namespace, name, key)] = SecretStr(str(plain))
    return values


# --- one object ------------------------------------------------------------------------------


@dataclass
class Targets:
    """The targets to compare with, and each one read whole (when it allows a bulk read)."""

    druid: DruidTarget | None
    pivot: PivotTarget | None
    protected: ProtectedPrincipals
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
    doc: Mapping[str, Any], secrets: Mapping[tuple[str, str, str], SecretStr], targets: Targets
) -> ObjectDiff | None:
    """What the operator would write for one custom resource; None when it is not for these targets."""
    kind = KINDS[doc["kind"]]
    meta = doc.get("metadata") or {}
    namespace, meta_name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    title = f"{doc['kind']} {namespace + '/' if namespace else ''}{meta_name}"
    try:
        spec = kind.spec_model(doc.get("spec") or {})
    except ValidationError as error:
        problems = "; ".join(f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
        return ObjectDiff(title, "error", [Line("!", f"invalid: {problems}")])
    name = kind.remote_name(spec, meta_name)
    title = f"{title} -> {kind.family} {name!r}"
    target = targets.pivot if kind.target_type == "pivot" else targets.druid
    wanted = None if target is None else (target.pivot if isinstance(target, PivotTarget) else target.cluster)
    if target is None or (wanted and kind.target_name(spec) != wanted):
        return None
    if kind.protected(name, targets.protected):
        return ObjectDiff(title, "refused", [Line("!", f"{name!r} is protected: the operator refuses it")])
    if spec.suspend:
        return ObjectDiff(title, "unchanged", [Line("?", "suspended: the operator sends nothing for it")])
    values: dict[tuple[str, str], SecretStr] = {}
    missing: list[SecretKeyRef] = []
    for need in kind.secret_needs(spec):
        value = secrets.get((namespace, need.ref.name, need.ref.key)) or secrets.get(
            ("", need.ref.name, need.ref.key)
        )
        if value is None:
            missing.append(need.ref)
        values[(need.ref.name, need.ref.key)] = value or _NOT_GIVEN
    try:
        desired = kind.desired(spec, name, values)
    except InvalidSpecError as error:
        return ObjectDiff(title, "error", [Line("!", f"invalid: {error}")])
    # As the operator does: the snapshot may confirm an object in sync; anything to do is read
    # again live, and planned from that read.
    observed = await kind.observe(targets.remote(kind.target_type, whole=True), name, desired)
    wanted, observed = _assume_unchanged(desired, observed, spec, missing)
    plan: Plan[Any] = kind.plan(wanted, observed)
    if plan.ops or plan.missing_roles:
        observed = await kind.observe(targets.remote(kind.target_type, whole=False), name, desired)
        wanted, observed = _assume_unchanged(desired, observed, spec, missing)
        plan = kind.plan(wanted, observed)
    result = ObjectDiff(title, "create" if not kind.exists(observed) else "change")
    result.lines = _lines(plan, observed, missing)
    result.writes = len(plan.ops)
    result.lines += [
        Line("!", f"role {r!r} does not exist: RoleNotFound, not granted") for r in sorted(plan.missing_roles)
    ]
    if not result.writes:
        result.state = "unchanged"
    return result


def _assume_unchanged(desired: Any, observed: Any, spec: Any, missing: list[SecretKeyRef]) -> tuple[Any, Any]:
    """Take every Secret value the files lack to be what the target has."""
    if not missing:
        return desired, observed
    if isinstance(observed, user.ObservedUser) and observed.authn is not None and observed.authn.credentials:
        return desired, dataclasses.replace(observed, password_matches=True)
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
            update["default_db_auth_token"] = desired.default_db_auth_token.model_copy(
                update={"password": have}
            )
        else:
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


def _shown(connection: PivotConnection, other: PivotConnection | None) -> dict[str, str]:
    """A connection's properties as a diff line shows them. A value from a Secret shows as
    ``(secret)``, or ``(secret, differs)`` when ``other`` has another one."""
    mine = connection_kind.comparable(connection)
    theirs = connection_kind.comparable(other) if other is not None else {}
    shown: dict[str, str] = {}
    for key, value in mine.items():
        if key in _FROM_SECRETS:
            shown[key] = "(secret, differs)" if key in theirs and theirs[key] != value else "(secret)"
        elif key == "defaultDbAuthToken" and isinstance(value, dict):
            token = {k: v for k, v in value.items() if k != "password"}
            if "password" in value:
                other_token = theirs.get(key) if isinstance(theirs.get(key), dict) else {}
                differs = other_token and other_token.get("password") != value["password"]
                token["password"] = "(secret, differs)" if differs else "(secret)"
            shown[key] = json.dumps(token, sort_keys=True, ensure_ascii=False)
        else:
            shown[key] = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return shown


# --- all of them -----------------------------------------------------------------------------


@dataclass
class Report:
    objects: list[ObjectDiff] = field(default_factory=list)
    other_targets: int = 0
    other_kinds: int = 0

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


async def diff(documents: Sequence[Mapping[str, Any]], targets: Targets) -> Report:
    secrets = secrets_of(documents)
    await targets.read_whole()
    report = Report()
    ours = [d for d in documents if d.get("apiVersion") == API_VERSION and d.get("kind") in KINDS]
    limit = asyncio.Semaphore(_PARALLEL)

    async def one(doc: Mapping[str, Any]) -> ObjectDiff | None:
        async with limit:
            return await diff_object(doc, secrets, targets)

    results = await asyncio.gather(*(one(doc) for doc in ours))
    report.objects = [r for r in results if r is not None]
    report.other_targets = sum(1 for r in results if r is None)
    return report
