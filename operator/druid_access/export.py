"""``druid-access export``: the custom resources that describe what a target already holds.

Teams adopting the operator have users, roles and group mappings made by hand in Druid, and
connections made in Pivot's console. This module reads them and writes one YAML stream of
DruidUser, DruidRole, DruidGroupMapping and DruidConnection objects with
``adoptionPolicy: Adopt``, so that applying it in an adoption namespace puts every object under
management without a remote write.

What it never does: write to a target, or print a credential. A user's password and a
connection's secret properties are left out; a comment says how to add a Secret reference
(with the current value in the Secret, adoption then changes nothing). Protected principals
(``admin``, ``druid_system`` by default) are skipped, like the operator would refuse them.

Every spec is checked by the same models and ``desired`` functions the operator uses, so an
exported object is one the operator accepts; what does not pass is left out and reported on
stderr with the reason. ``render`` is pure; the reads are in ``read_druid``/``read_pivot``.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from druid_access import clients as wire
from druid_access import observation
from druid_access.config import ProtectedPrincipals
from druid_access.models import (
    ALLOW_LABEL,
    API_VERSION,
    DRUID_CONNECTION,
    DRUID_GROUP_MAPPING,
    DRUID_ROLE,
    DRUID_USER,
    KindInfo,
    validation_message,
)
from druid_access.observation import DruidSnapshot, DruidTarget, PivotTarget, bulk_refused
from druid_access.resources import BY_KIND
from druid_access.resources.base import AnyKind, InvalidSpecError

Progress = Callable[[str], None]

# Kubernetes object names: DNS subdomains. Kept to 63 characters so that names derived from them
# (a generated Secret's, an Event's) stay valid too.
_NAME_MAX = 63
_HASH_CHARS = 8
_LABEL = re.compile(r"[^a-z0-9]+")
# Per-object reads when the bulk read is refused: at most this many at a time.
_PARALLEL_READS = 8
_PROGRESS_EVERY = 500


@dataclass(frozen=True)
class Exported:
    """One custom resource to write: its kind, remote name, spec and the comments above it."""

    info: KindInfo
    remote_name: str
    spec: dict[str, Any]
    comments: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skipped:
    """A remote object left out, and why (shown on stderr)."""

    info: KindInfo
    remote_name: str
    why: str

    def __str__(self) -> str:
        return f"skipped {self.info.kind} {self.remote_name!r}: {self.why}"


@dataclass
class Export:
    resources: list[Exported] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


# --- names -----------------------------------------------------------------------------------


def _digest(remote_name: str) -> str:
    return hashlib.blake2b(remote_name.encode("utf-8"), digest_size=8).hexdigest()[:_HASH_CHARS]


def _slug(remote_name: str) -> str:
    """The remote name as a DNS subdomain, as close as it can be read: accents dropped, '@' as
    '-at-', every other run of characters outside [a-z0-9] as '-', dots kept between labels."""
    ascii_name = unicodedata.normalize("NFKD", remote_name).encode("ascii", "ignore").decode("ascii")
    labels = (_LABEL.sub("-", part).strip("-") for part in ascii_name.lower().replace("@", "-at-").split("."))
    return ".".join(label for label in labels if label)


def metadata_name(remote_name: str, prefix: str) -> str:
    """A valid, stable ``metadata.name`` for a remote name: the name itself when it is one,
    else its slug with a short hash of the name (so two names with the same slug differ, and
    the same name always gives the same result); ``prefix`` stands in for an empty slug."""
    if remote_name == _slug(remote_name) and len(remote_name) <= _NAME_MAX:
        return remote_name
    slug = _slug(remote_name) or prefix
    head = slug[: _NAME_MAX - _HASH_CHARS - 1].rstrip("-.")
    return f"{head}-{_digest(remote_name)}"


def _unique(names: Iterable[tuple[str, str]]) -> dict[str, str]:
    """metadata.name per remote name, unique within one kind. A clash (a remote name equal to
    another's slug-and-hash) is settled by hashing again, deterministically."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for remote, name in sorted(names, key=lambda pair: (pair[1] != pair[0], pair[0])):
        candidate, salt = name, 0
        while candidate in taken:
            salt += 1
            candidate = f"{name[: _NAME_MAX - _HASH_CHARS - 1]}-{_digest(f'{remote}#{salt}')}"
        taken.add(candidate)
        out[remote] = candidate
    return out


# --- reads -----------------------------------------------------------------------------------


async def read_druid(
    client: wire.CoordinatorClient,
    authenticator: wire.AuthenticatorName,
    authorizer: wire.AuthorizerName,
    progress: Progress,
) -> DruidSnapshot:
    """The cluster's users, roles and group mappings: three bulk reads, or, when the
    Coordinator (or a proxy before it) refuses them, one read per object."""
    try:
        found = await observation.read_druid(client, authenticator, authorizer, passwords=True)
    except wire.ApiError as error:
        if not bulk_refused(error):
            raise
        progress(f"the bulk read was refused ({error.status}); reading one object at a time")
        found = await _read_druid_one_by_one(client, authenticator, authorizer, progress)
    progress(
        f"read {len(found.authn or {})} authenticator users, {len(found.users)} authorizer users, "
        f"{len(found.roles)} roles, {len(found.group_mappings)} group mappings"
    )
    return found


async def _read_druid_one_by_one(
    client: wire.CoordinatorClient,
    authenticator: wire.AuthenticatorName,
    authorizer: wire.AuthorizerName,
    progress: Progress,
) -> DruidSnapshot:
    limit = asyncio.Semaphore(_PARALLEL_READS)
    done = 0

    async def each(names: Iterable[str], read: Callable[[str], Any], what: str) -> dict[str, Any]:
        nonlocal done
        out: dict[str, Any] = {}

        async def one(name: str) -> None:
            nonlocal done
            async with limit:
                out[name] = await read(name)
            done += 1
            if done % _PROGRESS_EVERY == 0:
                progress(f"read {done} objects ({what})")

        await asyncio.gather(*(one(name) for name in sorted(names)))
        return out

    authn_names = await client.list_authenticator_users(authenticator)
    users = await each(
        authn_names, lambda n: client.get_authenticator_user(authenticator, n), "authenticator users"
    )
    authz_users = await each(
        await client.list_authorizer_users(authorizer),
        lambda n: client.get_authorizer_user(authorizer, n),
        "authorizer users",
    )
    roles = await each(await client.list_roles(authorizer), lambda n: client.get_role(authorizer, n), "roles")
    mappings = await each(
        await client.list_group_mappings(authorizer),
        lambda n: client.get_group_mapping(authorizer, n),
        "group mappings",
    )
    return DruidSnapshot(authn=users, users=authz_users, roles=roles, group_mappings=mappings)


async def read_pivot(client: wire.PivotClient, progress: Progress) -> tuple[wire.PivotConnection, ...]:
    connections = tuple((await observation.read_pivot(client)).connections.values())
    progress(f"read {len(connections)} Pivot connections")
    return connections


# --- what to write ---------------------------------------------------------------------------

_USER, _ROLE, _MAPPING, _CONNECTION = (
    BY_KIND[info.kind] for info in (DRUID_USER, DRUID_ROLE, DRUID_GROUP_MAPPING, DRUID_CONNECTION)
)


def _checked(
    out: Export,
    kind: AnyKind,
    spec: dict[str, Any],
    comments: list[str],
    protected: ProtectedPrincipals,
) -> None:
    """Keep the spec if the operator would accept it (its model, and ``desired`` for a spec that
    names no Secret), noting what only a privileged namespace may apply; else say why not."""
    name = spec["name"]
    try:
        model = kind.spec_model(spec)
        if not kind.secret_needs(model):
            kind.desired(model, name, {})
    except ValidationError as error:
        problems = validation_message(error)
        out.skipped.append(Skipped(kind.info, name, f"the operator could not manage it ({problems})"))
        return
    except InvalidSpecError as error:
        out.skipped.append(Skipped(kind.info, name, f"the operator could not manage it ({error})"))
        return
    comments += [
        f"It needs a privileged namespace: it gives the {grant}."
        for grant in kind.privileged_grants(model, protected)
    ]
    out.resources.append(Exported(kind.info, name, spec, tuple(comments)))


def _target(spec: dict[str, Any], field_name: str, value: str | None) -> dict[str, Any]:
    base: dict[str, Any] = {"name": spec.pop("name")}
    if value:
        base[field_name] = value
    base["adoptionPolicy"] = "Adopt"
    return {**base, **spec}


def druid_resources(
    inventory: DruidSnapshot, *, cluster: str | None, protected: ProtectedPrincipals
) -> Export:
    """The DruidRoles, DruidUsers and DruidGroupMappings that describe ``inventory`` (pure)."""
    out = Export()
    authn = inventory.authn or {}
    for name, role in sorted(inventory.roles.items()):
        if protected.role(name):
            out.skipped.append(Skipped(DRUID_ROLE, name, "a protected role of the cluster"))
            continue
        _role(out, name, role, cluster, protected)
    for name in sorted(authn.keys() | inventory.users.keys()):
        if protected.user(name):
            out.skipped.append(Skipped(DRUID_USER, name, "a protected user of the cluster"))
            continue
        _user(out, name, authn.get(name), inventory.users.get(name), cluster, protected)
    for name, mapping in sorted(inventory.group_mappings.items()):
        if protected.group_mapping(name):
            out.skipped.append(Skipped(DRUID_GROUP_MAPPING, name, "a protected group mapping of the cluster"))
            continue
        _mapping(out, name, mapping, cluster, protected)
    return out


def _role(
    out: Export, name: str, role: wire.Role, cluster: str | None, protected: ProtectedPrincipals
) -> None:
    permissions = [
        {"resource": {"type": p.resource_type, "name": p.resource_name}, "action": p.action}
        for p in sorted(role.permissions, key=lambda p: (p.resource_type, p.resource_name, p.action))
    ]
    spec = _target({"name": name, "permissions": permissions}, "cluster", cluster)
    _checked(out, _ROLE, spec, [], protected)


def _user(
    out: Export,
    name: str,
    authn: wire.AuthenticatorUser | None,
    authz: wire.AuthorizerUser | None,
    cluster: str | None,
    protected: ProtectedPrincipals,
) -> None:
    spec = _target({"name": name, "roles": sorted(authz.roles) if authz else []}, "cluster", cluster)
    comments: list[str] = []
    if authn is not None and authn.credentials is not None:
        comments += [
            "It has a password in the authenticator, which the operator leaves alone while",
            "spec.password is not set. To manage it, put the current password in a Secret",
            f'labelled {ALLOW_LABEL}: "true" and add to the spec:',
            "  password: {secretKeyRef: {name: SECRET, key: password}}",
            "Adopting it then changes nothing; a different password in the Secret is set.",
        ]
    elif authn is not None:
        comments.append("It exists in the authenticator without a password.")
    else:
        comments.append("It exists in the authorizer only (a user who logs in elsewhere, e.g. LDAP).")
    if authz is None:
        comments.append("It has no authorizer user: adopting it creates one, with the roles listed.")

    _checked(out, _USER, spec, comments, protected)


def _mapping(
    out: Export, name: str, mapping: wire.GroupMapping, cluster: str | None, protected: ProtectedPrincipals
) -> None:
    if mapping.group_pattern is None:
        out.skipped.append(Skipped(DRUID_GROUP_MAPPING, name, "it has no group pattern"))
        return
    spec = _target(
        {"name": name, "groupPattern": mapping.group_pattern, "roles": sorted(mapping.roles)},
        "cluster",
        cluster,
    )
    _checked(out, _MAPPING, spec, [], protected)


# The Secret keys a connection's secret properties are referenced under, in the spec's order.
CONNECTION_SECRET_KEYS = {
    "db-password": "the password of defaultDbAuthToken's user",
    "ca": "the CA certificate (PEM) Pivot trusts",
    "cert": "the client certificate (PEM)",
    "key": "the client private key (PEM)",
    "passphrase": "the passphrase of the private key",
    "socks-password": "the SOCKS proxy user's password",
}


def connection_secret_name(metadata: str) -> str:
    """The Secret a connection's secret properties are read from: its name and ``-secrets``,
    shortened with a hash of the whole when that is too long (so never shared by two)."""
    return metadata_name(f"{metadata}-secrets", "connection-secrets")


def pivot_resources(
    connections: Iterable[wire.PivotConnection],
    *,
    pivot: str | None,
    protected: ProtectedPrincipals,
    names: Mapping[str, str],
) -> Export:
    """The DruidConnections that describe ``connections`` (pure). ``names`` gives each
    connection's metadata.name, which names its placeholder Secret."""
    out = Export()
    for connection in sorted(connections, key=lambda c: c.name):
        if protected.connection(connection.name):
            out.skipped.append(Skipped(DRUID_CONNECTION, connection.name, "a protected connection"))
            continue
        secret = connection_secret_name(names.get(connection.name, connection.name))
        spec, keys = _connection_spec(connection, secret)
        comments: list[str] = []
        if keys:
            comments += [
                f"Its secret properties are read from the Secret {secret!r}, which this export does not",
                f'write. Create it, labelled {ALLOW_LABEL}: "true", with the current values of:',
                *(f"  {key}: {CONNECTION_SECRET_KEYS[key]}" for key in keys),
                "With the current values adopting it changes nothing; other values are sent to Pivot.",
            ]
        extra = sorted(connection.model_extra or {})
        if extra:
            comments.append(
                f"Pivot holds properties the operator does not manage ({', '.join(extra)}): adopting "
                "it rewrites the connection without them."
            )
        _checked(out, _CONNECTION, _target(spec, "pivot", pivot), comments, protected)
    return out


def _connection_spec(connection: wire.PivotConnection, secret: str) -> tuple[dict[str, Any], list[str]]:
    keys: list[str] = []

    def ref(key: str) -> dict[str, str]:
        keys.append(key)
        return {"name": secret, "key": key}

    spec: dict[str, Any] = {"name": connection.name, "type": connection.type}
    spec["queryHosts"] = list(connection.query_hosts or ())
    for key, value in (
        ("title", connection.title),
        ("timeout", connection.timeout),
        ("protocol", connection.protocol),
        ("decorator", connection.decorator),
        ("decoratorOptions", connection.decorator_options),
    ):
        if value is not None:
            spec[key] = value
    token = connection.default_db_auth_token
    if token is not None and token.username:
        spec["defaultDbAuthToken"] = {
            "type": token.type,
            "username": token.username,
            "passwordSecretRef": ref("db-password"),
        }
    tls = {
        field_name: ref(key)
        for field_name, key, value in (
            ("ca", "ca", connection.ca),
            ("cert", "cert", connection.cert),
            ("key", "key", connection.key),
            ("passphrase", "passphrase", connection.passphrase),
        )
        if value is not None
    }
    if tls:
        spec["tls"] = tls
    if connection.sock_host:
        socks: dict[str, Any] = {"host": connection.sock_host}
        if connection.sock_username:
            socks["username"] = connection.sock_username
        if connection.sock_password is not None:
            socks["passwordSecretRef"] = ref("socks-password")
        spec["socks"] = socks
    return spec, keys


# --- the YAML stream -------------------------------------------------------------------------


def render(export: Export, *, namespace: str | None, header: Iterable[str] = ()) -> str:
    """One YAML stream: each object with its comments above it, in the order the operator
    needs them (roles before the users and mappings that name them), names unique per kind."""
    order = {DRUID_ROLE.kind: 0, DRUID_USER.kind: 1, DRUID_GROUP_MAPPING.kind: 2, DRUID_CONNECTION.kind: 3}
    by_kind: dict[str, list[Exported]] = {}
    for item in export.resources:
        by_kind.setdefault(item.info.kind, []).append(item)
    parts = _comment(header)
    for kind in sorted(by_kind, key=order.__getitem__):
        items = by_kind[kind]
        names = _unique(
            (item.remote_name, metadata_name(item.remote_name, item.info.singular)) for item in items
        )
        for item in sorted(items, key=lambda i: names[i.remote_name]):
            metadata: dict[str, Any] = {"name": names[item.remote_name]}
            if namespace:
                metadata["namespace"] = namespace
            document = {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": item.spec}
            parts.append("---\n")
            parts += _comment(item.comments)
            parts.append(yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100))
    return "".join(parts)


def _comment(lines: Iterable[str]) -> list[str]:
    """YAML comment lines. Text from a target (a permission's resource name, say) may hold line
    breaks: each piece gets its own ``#``, so none can end a comment and start a document."""
    return [f"# {piece}\n" for line in lines for piece in (line.splitlines() or [""])]


# Plain scalars that PyYAML writes unquoted but YAML 1.1 readers such as kubectl's take for
# something else: y/n as booleans, 1e3 and 0o17 as numbers.
_AMBIGUOUS = re.compile(r"^(?:[yYnN]|[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+|0o[0-7]+)$")


# libyaml's emitter when PyYAML was built with it (its wheels are): five times as fast at 10,000 objects.
_SafeDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_SafeDumper):  # type: ignore[valid-type,misc]
    """Quotes every string a YAML reader could take for another type."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "'" if _AMBIGUOUS.match(data) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def connection_names(connections: Iterable[wire.PivotConnection]) -> dict[str, str]:
    """The metadata.name each connection gets in ``render`` (its placeholder Secret is named after it)."""
    return _unique((c.name, metadata_name(c.name, DRUID_CONNECTION.singular)) for c in connections)


# --- the command -----------------------------------------------------------------------------


async def export(
    *,
    druid: DruidTarget | None,
    pivot: PivotTarget | None,
    namespace: str | None,
    protected: ProtectedPrincipals,
    progress: Progress,
) -> tuple[str, list[Skipped]]:
    """Read the targets and render the stream; also what was left out."""
    result = Export()
    header = ["Written by `druid-access export`: the objects found, to be applied in an adoption namespace."]
    if druid is not None:
        header.append(
            f"Druid: {druid.client.base_url} (authenticator {druid.authenticator!r}, authorizer {druid.authorizer!r})"
        )
        inventory = await read_druid(druid.client, druid.authenticator, druid.authorizer, progress)
        found = druid_resources(inventory, cluster=druid.cluster, protected=protected)
        result.resources += found.resources
        result.skipped += found.skipped
    if pivot is not None:
        header.append(f"Pivot: {pivot.client.base_url}")
        connections = await read_pivot(pivot.client, progress)
        found = pivot_resources(
            connections, pivot=pivot.pivot, protected=protected, names=connection_names(connections)
        )
        result.resources += found.resources
        result.skipped += found.skipped
    return render(result, namespace=namespace, header=header), result.skipped
