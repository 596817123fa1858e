"""DruidConnection: a Pivot connection, replaced whole when any property differs.

Pivot's update re-creates the connection from the body (properties not sent are dropped),
so the plan sends the complete desired object, and only when the observed one differs.
Secret properties are compared by value in memory; only their names reach a status.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from druid_access.clients.pivot_wire import DbAuthToken, PivotConnection
from druid_access.models import DRUID_CONNECTION, DruidConnectionSpec
from druid_access.resources.base import (
    KindBase,
    PivotRemote,
    Plan,
    SecretNeed,
    SecretValues,
    deleted,
    secret_value,
)


@dataclass(frozen=True)
class CreateConnection:
    connection: PivotConnection
    reason: ClassVar[str] = "CreatedConnection"

    def describe(self) -> str:
        return f"created Pivot connection {self.connection.name!r}"

    async def apply(self, remote: PivotRemote) -> None:
        await remote.client.create_connection(self.connection)


@dataclass(frozen=True)
class UpdateConnection:
    connection: PivotConnection
    fields: tuple[str, ...]
    reason: ClassVar[str] = "UpdatedConnection"

    def describe(self) -> str:
        return f"updated Pivot connection {self.connection.name!r} ({', '.join(self.fields)})"

    async def apply(self, remote: PivotRemote) -> None:
        await remote.client.update_connection(self.connection)


def comparable(connection: PivotConnection) -> dict[str, Any]:
    body = connection.to_wire()
    body.setdefault("protocol", "plain")  # Pivot's default: absent and "plain" are the same
    return {key: value for key, value in body.items() if value is not None}


def differing_fields(desired: PivotConnection, observed: PivotConnection) -> tuple[str, ...]:
    want, have = comparable(desired), comparable(observed)
    return tuple(sorted(key for key in want.keys() | have.keys() if want.get(key) != have.get(key)))


def plan(desired: PivotConnection, observed: PivotConnection | None) -> Plan[PivotRemote]:
    if observed is None:
        return Plan(ops=(CreateConnection(desired),), drift=("connection",))
    fields = differing_fields(desired, observed)
    if not fields:
        return Plan()
    return Plan(ops=(UpdateConnection(desired, fields),), drift=fields)


def build(spec: DruidConnectionSpec, name: str, secrets: SecretValues) -> PivotConnection:
    """The Pivot connection a spec describes, with Secret references resolved."""
    token = None
    if spec.default_db_auth_token is not None:
        t = spec.default_db_auth_token
        token = DbAuthToken(
            type=t.type.value, username=t.username, password=secret_value(secrets, t.password_secret_ref)
        )
    tls = spec.tls
    socks = spec.socks
    return PivotConnection(
        name=name,
        type=spec.type.value,
        query_hosts=tuple(spec.query_hosts),
        title=spec.title,
        timeout=spec.timeout,
        default_db_auth_token=token,
        protocol=spec.protocol.value,
        ca=secret_value(secrets, tls.ca).get_secret_value() if tls and tls.ca else None,
        cert=secret_value(secrets, tls.cert).get_secret_value() if tls and tls.cert else None,
        key=secret_value(secrets, tls.key) if tls and tls.key else None,
        passphrase=secret_value(secrets, tls.passphrase) if tls and tls.passphrase else None,
        decorator=spec.decorator,
        decorator_options=spec.decorator_options,
        sock_host=socks.host if socks else None,
        sock_username=socks.username if socks else None,
        sock_password=secret_value(secrets, socks.password_secret_ref)
        if socks and socks.password_secret_ref
        else None,
    )


class ConnectionKind(KindBase[DruidConnectionSpec]):
    info = DRUID_CONNECTION
    family = "connection"

    def secret_needs(self, spec: DruidConnectionSpec) -> Sequence[SecretNeed]:
        refs = []
        if spec.default_db_auth_token is not None:
            refs.append(spec.default_db_auth_token.password_secret_ref)
        if spec.tls is not None:
            refs += [r for r in (spec.tls.ca, spec.tls.cert, spec.tls.key, spec.tls.passphrase) if r]
        if spec.socks is not None and spec.socks.password_secret_ref is not None:
            refs.append(spec.socks.password_secret_ref)
        return tuple(SecretNeed(ref) for ref in refs)

    def desired(self, spec: DruidConnectionSpec, name: str, secrets: SecretValues) -> PivotConnection:
        return build(spec, name, secrets)

    async def observe(
        self, remote: PivotRemote, name: str, desired: PivotConnection
    ) -> PivotConnection | None:
        return await remote.reads.connection(name)

    def exists(self, observed: PivotConnection | None) -> bool:
        return observed is not None

    def plan(self, desired: PivotConnection, observed: PivotConnection | None) -> Plan[PivotRemote]:
        return plan(desired, observed)

    async def delete(self, remote: PivotRemote, name: str) -> bool:
        return await deleted(remote.client.delete_connection(name), "connection")
