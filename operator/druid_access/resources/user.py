"""DruidUser: an authenticator user with credentials and an authorizer user with roles.

Druid keeps the two in independent stores, so a user with a password exists
in both and one without (LDAP) only in the authorizer. Assigning a role twice is an error,
so the plan assigns exactly the missing roles and removes exactly the extra ones. The
password is compared locally by PBKDF2 over Druid's stored salt, so a correct credential is
never rewritten, and each verdict is remembered, so a resync does not hash again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from pydantic import SecretStr

from druid_access.clients.druid_wire import AuthenticatorUser, AuthorizerUser
from druid_access.config import ClusterConfig, PivotConfig
from druid_access.models import DRUID_USER, DruidUserSpec
from druid_access.observation import both
from druid_access.passwords import Verdicts, verify_password
from druid_access.resources.base import (
    AUTHENTICATOR_LANE,
    DruidRemote,
    KindBase,
    Op,
    Plan,
    RoleChange,
    SecretNeed,
    SecretValues,
    deleted,
    secret_value,
)


@dataclass(frozen=True)
class DesiredUser:
    name: str
    roles: frozenset[str]
    password: SecretStr | None  # None: authorization only (LDAP)


@dataclass(frozen=True)
class ObservedUser:
    authn: AuthenticatorUser | None
    authz: AuthorizerUser | None
    existing_roles: frozenset[str]
    # Does the desired password verify against ``authn``'s credentials? Worked out by
    # ``observe`` (remembered, off the event loop); None: ``plan`` checks it itself.
    password_matches: bool | None = None


# One table for the process: verdicts outlive a pass, and a resync re-checks nothing.
VERDICTS = Verdicts()


@dataclass(frozen=True)
class CreateAuthenticatorUser:
    name: str
    reason: ClassVar[str] = "CreatedAuthenticatorUser"
    lane: ClassVar[str] = AUTHENTICATOR_LANE  # the authenticator's store

    def describe(self) -> str:
        return f"created authenticator user {self.name!r}"

    async def apply(self, remote: DruidRemote) -> None:
        await remote.client.create_authenticator_user(remote.authenticator, self.name)

    async def undo(self, remote: DruidRemote) -> None:
        await remote.client.delete_authenticator_user(remote.authenticator, self.name)


@dataclass(frozen=True)
class SetPassword:
    name: str
    password: SecretStr

    reason: ClassVar[str] = "SetPassword"
    lane: ClassVar[str] = AUTHENTICATOR_LANE  # the authenticator's store

    def describe(self) -> str:
        return f"set the password of {self.name!r}"

    async def apply(self, remote: DruidRemote) -> None:
        await remote.client.set_password(remote.authenticator, self.name, self.password)


@dataclass(frozen=True)
class CreateAuthorizerUser:
    name: str
    reason: ClassVar[str] = "CreatedAuthorizerUser"

    def describe(self) -> str:
        return f"created authorizer user {self.name!r}"

    async def apply(self, remote: DruidRemote) -> None:
        await remote.client.create_authorizer_user(remote.authorizer, self.name)

    async def undo(self, remote: DruidRemote) -> None:
        await remote.client.delete_authorizer_user(remote.authorizer, self.name)


class AssignRole(RoleChange):
    reason: ClassVar[str] = "AssignedRole"

    async def apply(self, remote: DruidRemote) -> None:
        await remote.client.assign_role(remote.authorizer, user=self.name, role=self.role)


class UnassignRole(RoleChange):
    reason: ClassVar[str] = "UnassignedRole"

    async def apply(self, remote: DruidRemote) -> None:
        await remote.client.unassign_role(remote.authorizer, user=self.name, role=self.role)


def plan(desired: DesiredUser, observed: ObservedUser) -> Plan[DruidRemote]:
    ops: list[Op[DruidRemote]] = []
    drift: list[str] = []
    name = desired.name
    if desired.password is not None:
        if observed.authn is None:
            ops += [CreateAuthenticatorUser(name), SetPassword(name, desired.password)]
            drift.append("authenticatorUser")
        elif not _password_matches(desired.password, observed):
            ops.append(SetPassword(name, desired.password))
            drift.append("password")
    current: frozenset[str] = frozenset()
    if observed.authz is None:
        ops.append(CreateAuthorizerUser(name))
        drift.append("authorizerUser")
    else:
        current = observed.authz.roles
    missing = desired.roles - observed.existing_roles
    to_add = sorted(desired.roles - current - missing)
    to_remove = sorted(current - desired.roles)
    ops += [AssignRole(name, role) for role in to_add]
    ops += [UnassignRole(name, role) for role in to_remove]
    if observed.authz is not None and (to_add or to_remove):
        drift.append("roles")
    return Plan(ops=tuple(ops), drift=tuple(drift), missing_roles=missing)


def _password_matches(password: SecretStr, observed: ObservedUser) -> bool:
    if observed.authn is None or observed.authn.credentials is None:
        return False
    if observed.password_matches is not None:
        return observed.password_matches
    return verify_password(password.get_secret_value(), observed.authn.credentials)


class UserKind(KindBase[DruidUserSpec]):
    info = DRUID_USER
    family = "user"
    # Druid refuses to create a user whose name is taken, in either store (without a password,
    # only the authorizer's user is made, and only it is read by a pass that reads first).
    creates_prove_free = True

    def secret_needs(self, spec: DruidUserSpec) -> Sequence[SecretNeed]:
        if spec.password is None:
            return ()
        return (SecretNeed(spec.password.secret_key_ref, generate=spec.password.generate),)

    def unsupported(self, spec: DruidUserSpec, target: ClusterConfig | PivotConfig) -> str | None:
        if (
            spec.password is not None
            and isinstance(target, ClusterConfig)
            and target.credentials_validator == "ldap"
        ):
            # Druid would store the password in the authenticator and never read it: logins go to LDAP.
            return (
                f"cluster {spec.cluster!r} checks passwords against LDAP (credentialsValidator: ldap), "
                "so spec.password would never log in: remove it (the user's roles still apply)"
            )
        return None

    def role_refs(self, spec: DruidUserSpec) -> frozenset[str]:
        return frozenset(spec.roles)

    def consumer_secret(self, spec: DruidUserSpec) -> str | None:
        return spec.password.secret_key_ref.name if spec.password else None

    def desired(self, spec: DruidUserSpec, name: str, secrets: SecretValues) -> DesiredUser:
        password = secret_value(secrets, spec.password.secret_key_ref) if spec.password else None
        return DesiredUser(name=name, roles=frozenset(spec.roles), password=password)

    async def observe(self, remote: DruidRemote, name: str, desired: DesiredUser) -> ObservedUser:
        reads = remote.reads

        async def authn() -> AuthenticatorUser | None:
            if desired.password is None:
                return None  # LDAP users are not managed in the authenticator
            return await reads.authenticator_user(name)

        authn_user, authz_user = await both(authn(), reads.authorizer_user(name))
        matches = None
        if desired.password is not None and authn_user is not None and authn_user.credentials is not None:
            matches = await VERDICTS.verify(desired.password.get_secret_value(), authn_user.credentials)
        assigned = authz_user.roles if authz_user is not None else frozenset()
        # Druid strips a deleted role from every user, so assigned roles exist: the others are
        # read only when the user lacks a role it should have (never for a user in sync).
        missing = desired.roles - assigned
        roles = (assigned | await reads.present_roles(missing)) if missing else assigned
        return ObservedUser(
            authn=authn_user, authz=authz_user, existing_roles=roles, password_matches=matches
        )

    async def absent(self, remote: DruidRemote, name: str, desired: DesiredUser) -> ObservedUser:
        roles = await remote.reads.present_roles(desired.roles) if desired.roles else frozenset()
        return ObservedUser(authn=None, authz=None, existing_roles=roles)

    def exists(self, observed: ObservedUser) -> bool:
        return observed.authn is not None or observed.authz is not None

    def plan(self, desired: DesiredUser, observed: ObservedUser) -> Plan[DruidRemote]:
        return plan(desired, observed)

    async def delete(self, remote: DruidRemote, name: str) -> bool:
        """Remove the user from both stores; False when neither had it."""
        authn = await deleted(remote.client.delete_authenticator_user(remote.authenticator, name), "user")
        authz = await deleted(remote.client.delete_authorizer_user(remote.authorizer, name), "user")
        return authn or authz
