"""Contract: the authentication store (users, credentials, login) and the project's CoordinatorClient."""

from __future__ import annotations

import base64
import hashlib

import pytest
from contract_support import (
    AUTHN,
    AUTHZ,
    ITERATIONS,
    JSON,
    SECURITY_RW,
    Target,
    assert_error,
    assert_json,
    assert_ok_empty,
    authn,
    authz,
    ra,
    seg,
)
from pydantic import SecretStr

from druid_access.clients import (
    AlreadyExists,
    AuthenticatorName,
    AuthorizerName,
    Conflict,
    CoordinatorClient,
    Forbidden,
    Invalid,
    NotFound,
    Permission,
    ServerError,
    Unauthorized,
    UnknownAuthenticator,
    UnknownAuthorizer,
)
from druid_access.passwords import StoredCredentials, verify_password
from druid_access.testing.fake_coordinator import smile_decode

pytestmark = pytest.mark.contract

BASIC_AUTHN = AuthenticatorName("basic")
BASIC_AUTHZ = AuthorizerName("basic")
NON_ASCII_PASSWORD = "pässwörd-ÜÇ-日本-✓-😀"


async def stored_credentials(target: Target, user: str) -> StoredCredentials:
    response = await target.request("GET", authn(f"/users/{seg(user)}"))
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["name", "credentials"]
    assert list(body["credentials"]) == ["salt", "hash", "iterations"]
    return StoredCredentials.from_json(body["credentials"])


# ------------------------------------------------------------------------------------------ users


async def test_authenticator_user_lifecycle(target: Target) -> None:
    user = target.unique("u")
    assert_ok_empty(await target.request("POST", authn(f"/users/{user}")))
    assert_error(await target.request("POST", authn(f"/users/{user}")), f"User [{user}] already exists.")
    assert_json(await target.request("GET", authn(f"/users/{user}")), {"name": user, "credentials": None})
    users = await target.request("GET", authn("/users"))
    assert users.headers["content-type"] == JSON
    assert {user, "admin", "druid_system"} <= set(users.json())
    assert_ok_empty(await target.request("DELETE", authn(f"/users/{user}")))
    assert user not in (await target.request("GET", authn("/users"))).json()
    assert_error(await target.request("DELETE", authn(f"/users/{user}")), f"User [{user}] does not exist.")
    assert_error(await target.request("GET", authn(f"/users/{user}")), f"User [{user}] does not exist.")
    response = await target.request("POST", authn(f"/users/{user}/credentials"), json={"password": "x"})
    assert_error(response, f"User [{user}] does not exist.")


async def test_stores_are_independent(target: Target) -> None:
    both, only_authn = target.unique("both"), target.unique("authn")
    await target.make_user(both, "pw")
    assert_ok_empty(await target.request("DELETE", authn(f"/users/{both}")))
    assert_json(await target.request("GET", authz(f"/users/{both}")), {"name": both, "roles": []})
    assert_ok_empty(await target.request("POST", authn(f"/users/{only_authn}")))
    assert_error(
        await target.request("GET", authz(f"/users/{only_authn}")), f"User [{only_authn}] does not exist."
    )


async def test_bootstrapped_admin_credentials(target: Target) -> None:
    for user, password in (("admin", target.admin[1]), ("druid_system", None)):
        record = await stored_credentials(target, user)
        assert record.iterations == 10000  # Druid's default, not credentialIterations
        if password is not None:
            assert verify_password(password, record)


# ------------------------------------------------------------------------------------ credentials


@pytest.mark.parametrize("password", ["plain-ASCII-pw-1", NON_ASCII_PASSWORD, "with:colon", "\x00nul"])
async def test_stored_credentials_verify_locally(target: Target, password: str) -> None:
    user = target.unique("cred")
    await target.make_user(user, password)
    record = await stored_credentials(target, user)
    assert record.iterations == ITERATIONS
    assert len(record.salt_bytes()) == 32
    assert len(record.hash_bytes()) == 64
    # Java's PBKDF2WithHmacSHA512 over the UTF-8 bytes: the local check agrees with Druid's stored hash.
    expected = hashlib.pbkdf2_hmac("sha512", password.encode(), record.salt_bytes(), ITERATIONS, 64)
    assert record.hash_bytes() == expected
    assert verify_password(password, record)
    assert not verify_password(password + "x", record)


async def test_every_credentials_post_draws_a_new_salt(target: Target) -> None:
    user = target.unique("salt")
    await target.make_user(user)
    records = []
    for iterations in (None, 5):
        body = {"password": "same"} if iterations is None else {"password": "same", "iterations": iterations}
        assert_ok_empty(await target.request("POST", authn(f"/users/{user}/credentials"), json=body))
        records.append(await stored_credentials(target, user))
    assert records[0].salt != records[1].salt
    assert [r.iterations for r in records] == [ITERATIONS, 5]
    assert all(verify_password("same", r) for r in records)


async def test_empty_and_null_passwords_are_refused(target: Target) -> None:
    user = target.unique("empty")
    await target.make_user(user)
    cls = "org.apache.druid.security.basic.authentication.entity.BasicAuthenticatorCredentialUpdate"
    for body, problem in (({"password": ""}, "empty"), ({"password": None}, "null"), ({}, "null")):
        response = await target.request("POST", authn(f"/users/{user}/credentials"), json=body)
        assert response.status_code == 400
        message = response.json()["error"]
        assert message.startswith(
            f"Cannot construct instance of `{cls}`, problem: Cannot assign {problem} password."
        )
    assert_json(await target.request("GET", authn(f"/users/{user}")), {"name": user, "credentials": None})


async def test_body_is_checked_before_the_user(target: Target) -> None:
    ghost = target.unique("ghost")
    response = await target.request("POST", authn(f"/users/{ghost}/credentials"), json={"password": ""})
    assert "Cannot assign empty password." in response.json()["error"]
    # Hashing (and its iteration check) happens before the user is looked up.
    response = await target.request(
        "POST", authn(f"/users/{ghost}/credentials"), json={"password": "x", "iterations": 0}
    )
    assert response.status_code == 500


# ------------------------------------------------------------------------------------------ login


async def test_login_with_non_ascii_password_after_state_read(target: Target) -> None:
    user, role = target.unique("zoë"), target.unique("state")
    await target.make_role(role, [ra("STATE", "STATE", "READ")])
    await target.make_user(user, NON_ASCII_PASSWORD, [role])
    response = await target.request("GET", "/status", auth=(user, NON_ASCII_PASSWORD))
    assert response.status_code == 200
    assert response.json()["version"] == target.version
    assert (await target.request("GET", "/status", auth=(user, NON_ASCII_PASSWORD + "x"))).status_code == 401
    # The Basic header is UTF-8; Latin-1 bytes of the same text are a different password.
    token = base64.b64encode(f"{user}:{NON_ASCII_PASSWORD}".encode()).decode()
    assert (
        await target.request("GET", "/status", auth=None, headers={"Authorization": f"Basic {token}"})
    ).status_code == 200
    latin1 = base64.b64encode(f"{user}:pässwörd".encode("latin-1")).decode()
    assert (
        await target.request("GET", "/status", auth=None, headers={"Authorization": f"Basic {latin1}"})
    ).status_code == 401


async def test_password_change_takes_effect_immediately(target: Target) -> None:
    user, role = target.unique("erin"), target.unique("sec")
    await target.make_role(role, SECURITY_RW)
    await target.make_user(user, "old", [role])
    for _ in range(2):  # the second login may come from Druid's credential cache
        assert (await target.request("GET", authz("/roles"), auth=(user, "old"))).status_code == 200
    assert_ok_empty(
        await target.request("POST", authn(f"/users/{user}/credentials"), json={"password": "new"})
    )
    assert (await target.request("GET", authz("/roles"), auth=(user, "old"))).status_code == 401
    assert (await target.request("GET", authz("/roles"), auth=(user, "new"))).status_code == 200


async def test_password_with_colon_logs_in_from_37_on(target: Target) -> None:
    """27 splits the Basic credentials on every ':' (``split(":")``), so a password with a colon can
    never log in; 37 splits on the first one only and accepts it."""
    user, role = target.unique("dave"), target.unique("sec")
    await target.make_role(role, SECURITY_RW)
    await target.make_user(user, "a:b", [role])
    response = await target.request("GET", authz("/roles"), auth=(user, "a:b"))
    assert response.status_code == (200 if target.major >= 37 else 401)


async def test_authenticator_cached_user_map_is_smile(target: Target) -> None:
    user, nopw = target.unique("cached"), target.unique("nopw")
    await target.make_user(user, "pw")
    assert_ok_empty(await target.request("POST", authn(f"/users/{nopw}")))
    response = await target.request("GET", authn("/cachedSerializedUserMap"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-jackson-smile"
    # An unchanged store is served as the same bytes (the client reuses its parse of them).
    assert (await target.request("GET", authn("/cachedSerializedUserMap"))).content == response.content
    decoded = smile_decode(response.content)
    assert isinstance(decoded, dict)
    assert decoded[nopw] == {"name": nopw, "credentials": None}
    entry = decoded[user]
    assert set(entry) == {"name", "credentials"}
    credentials = entry["credentials"]
    assert isinstance(credentials["salt"], bytes)  # native Smile binary, not base64 text
    record = StoredCredentials(
        salt=base64.b64encode(credentials["salt"]).decode(),
        hash=base64.b64encode(credentials["hash"]).decode(),
        iterations=credentials["iterations"],
    )
    assert record == await stored_credentials(target, user)
    assert verify_password("pw", record)


# --------------------------------------------------------------------------- the CoordinatorClient


async def test_client_round_trip(target: Target) -> None:
    user, role, mapping = target.unique("cu"), target.unique("cr"), target.unique("cg")
    perms = {
        Permission(resource_type="CONFIG", resource_name="security", action="READ"),
        Permission(resource_type="STATE", resource_name="STATE", action="READ"),
    }
    async with target.client() as c:
        assert await c.health()
        assert await c.authentication_load_status() == {BASIC_AUTHN: True}
        assert await c.authorization_load_status() == {BASIC_AUTHZ: True}
        await c.create_authenticator_user(BASIC_AUTHN, user)
        assert (await c.get_authenticator_user(BASIC_AUTHN, user)).credentials is None
        assert not await c.check_login(user, NON_ASCII_PASSWORD)
        await c.set_password(BASIC_AUTHN, user, SecretStr(NON_ASCII_PASSWORD))
        stored = (await c.get_authenticator_user(BASIC_AUTHN, user)).credentials
        assert stored is not None
        assert stored.iterations == ITERATIONS
        assert verify_password(NON_ASCII_PASSWORD, stored)
        assert await c.check_login(user, SecretStr(NON_ASCII_PASSWORD))  # 403 on /status still means a login
        assert not await c.check_login(user, SecretStr("wrong"))
        await c.create_authorizer_user(BASIC_AUTHZ, user)
        await c.create_role(BASIC_AUTHZ, role)
        await c.set_permissions(BASIC_AUTHZ, role, perms)
        await c.assign_role(BASIC_AUTHZ, user=user, role=role)
        await c.create_group_mapping(BASIC_AUTHZ, mapping, group_pattern="cn=x,.*", roles=[role])
        assert await c.get_permissions(BASIC_AUTHZ, role) == perms
        full_user = await c.get_user_full(BASIC_AUTHZ, user)
        assert full_user.role_names == {role}
        assert full_user.permissions == perms
        assert (await c.get_authorizer_user(BASIC_AUTHZ, user)).roles == {role}
        with_users = await c.get_role(BASIC_AUTHZ, role, full=True)
        assert with_users.users == {user}
        assert with_users.groups == {mapping}
        simplified = await c.get_role(BASIC_AUTHZ, role, full=True, simplify_permissions=True)
        assert simplified.users == {user}
        assert simplified.groups is None
        assert simplified.permissions == perms
        mapped = await c.get_group_mapping(BASIC_AUTHZ, mapping)
        assert (mapped.group_pattern, mapped.roles) == ("cn=x,.*", {role})
        assert user in await c.list_authenticator_users(BASIC_AUTHN)
        assert user in await c.list_authorizer_users(BASIC_AUTHZ)
        assert role in await c.list_roles(BASIC_AUTHZ)
        assert mapping in await c.list_group_mappings(BASIC_AUTHZ)
        await c.delete_group_mapping(BASIC_AUTHZ, mapping)
        await c.unassign_role(BASIC_AUTHZ, user=user, role=role)
        await c.delete_role(BASIC_AUTHZ, role)
        await c.delete_authorizer_user(BASIC_AUTHZ, user)
        await c.delete_authenticator_user(BASIC_AUTHN, user)
        assert not await c.check_login(user, SecretStr(NON_ASCII_PASSWORD))


async def test_client_bulk_reads_match_the_per_object_reads(target: Target) -> None:
    """The cache-sync maps, decoded by the product, give what the JSON endpoints give one by one."""
    user, bare, role, mapping = (target.unique(p) for p in ("bu", "bbare", "br", "bg"))
    perms = {Permission(resource_type="DATASOURCE", resource_name="wiki.*", action="READ")}
    async with target.client() as c:
        await c.create_authenticator_user(BASIC_AUTHN, user)
        await c.set_password(BASIC_AUTHN, user, SecretStr(NON_ASCII_PASSWORD))
        await c.create_authenticator_user(BASIC_AUTHN, bare)
        await c.create_authorizer_user(BASIC_AUTHZ, user)
        await c.create_role(BASIC_AUTHZ, role)
        await c.set_permissions(BASIC_AUTHZ, role, perms)
        await c.assign_role(BASIC_AUTHZ, user=user, role=role)
        await c.create_group_mapping(BASIC_AUTHZ, mapping, group_pattern="cn=.*", roles=[role])

        users = await c.authenticator_users(BASIC_AUTHN)
        assert users[user] == await c.get_authenticator_user(BASIC_AUTHN, user)
        credentials = users[user].credentials
        assert credentials is not None and verify_password(NON_ASCII_PASSWORD, credentials)
        assert users[bare].credentials is None
        assert set(users) == await c.list_authenticator_users(BASIC_AUTHN)

        maps = await c.authorizer_maps(BASIC_AUTHZ, group_mappings=True)
        assert maps.users[user] == await c.get_authorizer_user(BASIC_AUTHZ, user)
        assert set(maps.users) == await c.list_authorizer_users(BASIC_AUTHZ)
        assert set(maps.roles) == await c.list_roles(BASIC_AUTHZ)
        assert maps.roles[role].permissions == perms == await c.get_permissions(BASIC_AUTHZ, role)
        assert maps.group_mappings is not None
        assert maps.group_mappings[mapping] == await c.get_group_mapping(BASIC_AUTHZ, mapping)
        assert (await c.authorizer_maps(BASIC_AUTHZ)).group_mappings is None
        with pytest.raises(UnknownAuthorizer):
            await c.authorizer_maps(AuthorizerName("nonexistent"))


async def test_client_error_classes(target: Target) -> None:
    user, role, mapping, ghost = (
        target.unique("eu"),
        target.unique("er"),
        target.unique("eg"),
        target.unique("ghost"),
    )
    async with target.client() as c:
        await c.create_authenticator_user(BASIC_AUTHN, user)
        await c.create_authorizer_user(BASIC_AUTHZ, user)
        await c.create_role(BASIC_AUTHZ, role)
        await c.create_group_mapping(BASIC_AUTHZ, mapping, group_pattern="x")
        # The operator relies on these refusals to create a new user or role without reading
        # it first: a taken name in either store is refused, never overwritten.
        with pytest.raises(AlreadyExists):
            await c.create_authenticator_user(BASIC_AUTHN, user)
        with pytest.raises(AlreadyExists):
            await c.create_authorizer_user(BASIC_AUTHZ, user)
        with pytest.raises(AlreadyExists):
            await c.create_role(BASIC_AUTHZ, role)
        with pytest.raises(AlreadyExists):
            await c.create_group_mapping(BASIC_AUTHZ, mapping, group_pattern="y")
        with pytest.raises(NotFound) as missing_role:
            await c.assign_role(BASIC_AUTHZ, user=ghost, role=ghost)
        assert (missing_role.value.entity, missing_role.value.entity_name) == ("role", ghost)
        with pytest.raises(NotFound) as missing_user:
            await c.assign_role(BASIC_AUTHZ, user=ghost, role=role)
        assert (missing_user.value.entity, missing_user.value.entity_name) == ("user", ghost)
        with pytest.raises(NotFound) as missing_mapping:
            await c.get_group_mapping(BASIC_AUTHZ, ghost)
        assert missing_mapping.value.entity == "groupMapping"
        await c.assign_role(BASIC_AUTHZ, user=user, role=role)
        with pytest.raises(Conflict):
            await c.assign_role(BASIC_AUTHZ, user=user, role=role)
        await c.unassign_role(BASIC_AUTHZ, user=user, role=role)
        with pytest.raises(Conflict):
            await c.unassign_role(BASIC_AUTHZ, user=user, role=role)
        with pytest.raises(Invalid) as bad_regex:
            await c.set_permissions(
                BASIC_AUTHZ,
                role,
                [Permission(resource_type="DATASOURCE", resource_name="wiki(", action="READ")],
            )
        assert "does not compile" in bad_regex.value.message
        with pytest.raises(Invalid) as empty:
            await c.set_password(BASIC_AUTHN, user, "")
        assert "Cannot assign empty password." in empty.value.message
        assert "Source" not in empty.value.message
        with pytest.raises(UnknownAuthenticator):
            await c.list_authenticator_users(AuthenticatorName("nope"))
        with pytest.raises(UnknownAuthorizer):
            await c.get_role(AuthorizerName("nope"), "admin")
        with pytest.raises(ServerError) as bad_name:  # IdUtils rejects it: an unmapped DruidException
            await c.list_roles(AuthorizerName(".hidden"))
        assert bad_name.value.status == 500
        assert "Value [.hidden] cannot start with" in bad_name.value.message
    async with target.client(password="wrong") as wrong:
        with pytest.raises(Unauthorized) as unauthorized:
            await wrong.list_roles(BASIC_AUTHZ)
        assert unauthorized.value.status == 401
        assert "User authentication failed." in unauthorized.value.message
    viewer = target.unique("viewer")
    await target.make_role(f"{viewer}-ds", [ra(".*", "DATASOURCE", "READ")])
    await target.make_user(viewer, "viewer-pw", [f"{viewer}-ds"])
    async with target.client(username=viewer, password="viewer-pw") as weak:
        with pytest.raises(Forbidden):
            await weak.list_roles(BASIC_AUTHZ)
        with pytest.raises(Forbidden):
            await weak.create_role(BASIC_AUTHZ, target.unique("sneaky"))


async def test_client_names_round_trip(target: Target) -> None:
    async with target.client() as c:
        for suffix in ("@example.com", " space", ".dots", "-ünï-日本", "+plus", ";semi", "/slash", "%41"):
            name = target.unique("cn") + suffix
            await c.create_role(BASIC_AUTHZ, name)
            assert (await c.get_role(BASIC_AUTHZ, name)).name == name
            assert name in await c.list_roles(BASIC_AUTHZ)
            await c.delete_role(BASIC_AUTHZ, name)
    assert (await target.request("GET", f"{AUTHZ}/loadStatus")).status_code == 200
    assert (await target.request("GET", f"{AUTHN}/loadStatus")).status_code == 200


async def _maps_match_the_per_object_reads(c: CoordinatorClient, why: str) -> int:
    maps = await c.authorizer_maps(BASIC_AUTHZ)
    assert set(maps.users) == await c.list_authorizer_users(BASIC_AUTHZ), why
    assert set(maps.roles) == await c.list_roles(BASIC_AUTHZ), why
    for name, role in maps.roles.items():
        assert role.permissions == await c.get_permissions(BASIC_AUTHZ, name), (why, name)
    return len(maps.users)


async def test_the_decoder_follows_the_coordinators_shared_names_past_their_limits(target: Target) -> None:
    """Smile shares property names through a table of 1,024 that starts again when full, and a
    generator never refers to the entries whose index ends in 0xFE or 0xFF. A cluster of
    thousands of users crosses both: the authorizer's map names each user, then every role's
    permission fields, which are registered wherever the count stands. Users are added one by
    one across the next such index (until the role fields' first entries straddle it), then
    past 1,024 names, and the typed bulk read must agree with the per-object reads each time."""
    role = target.unique("shared")
    await target.make_role(role, [ra("wiki", "DATASOURCE", "READ"), ra("x", "STATE", "WRITE")])
    async with target.client() as c:
        users = await _maps_match_the_per_object_reads(c, "at the start")
        # "userMap", "name" and "roles", then one name per user, "roleMap", the first role,
        # then its permission fields: the first of them lands 5 to 10 entries past the users.
        window = next((k for k in (254, 510, 766, 1022) if k - 10 >= users), 0)
        enough = max(1030, users + 1)
        added = 0
        while users < enough:
            name = target.unique("shared-user")
            assert_ok_empty(await target.request("POST", authz(f"/users/{seg(name)}")))
            added += 1
            users += 1
            if window - 12 <= users <= window - 3:
                users = await _maps_match_the_per_object_reads(c, f"{users} users")
        assert await _maps_match_the_per_object_reads(c, f"{users} users") >= 1030
        assert added > 0 and (window == 0 or added >= 10)
