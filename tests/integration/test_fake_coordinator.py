"""The fake Coordinator over real HTTP (httpx), endpoint by endpoint.

What the fake does is pinned to a real Druid 27.0.0 Coordinator by the contract suite (tests/contract);
these tests cover the fake's own features too (direct state, contention, the request log, the CLI) and
run without Java.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import os
import random
import re
import signal
import struct
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from druid_access.javaregex import JavaRegexError, java_regex
from druid_access.passwords import StoredCredentials, verify_password
from druid_access.testing import FakeCoordinator
from druid_access.testing.fake_coordinator import (
    KNOWN_RESOURCE_TYPES,
    GroupMapping,
    Permission,
    java_double,
    smile_decode,
    smile_encode,
    superuser_permissions,
)

ADMIN_PW = "admin-pw"
CREDENTIAL_UPDATE = "org.apache.druid.security.basic.authentication.entity.BasicAuthenticatorCredentialUpdate"
AUTHN = "/druid-ext/basic-security/authentication"
AUTHZ = "/druid-ext/basic-security/authorization"
ITERATIONS = 1000
SECURITY_RW: list[dict[str, object]] = [
    {"resource": {"name": "security", "type": "CONFIG"}, "action": "READ"},
    {"resource": {"name": "security", "type": "CONFIG"}, "action": "WRITE"},
]
CLI = Path(sys.executable).parent / "druid-access-testing"  # the druid-access-testing distribution


def seg(name: str) -> str:
    """Percent-encode one path segment completely (what a careful client sends)."""
    return quote(name, safe="")


def authn(path: str = "", authenticator: str = "basic") -> str:
    return f"{AUTHN}/db/{authenticator}{path}"


def authz(path: str = "", authorizer: str = "basic") -> str:
    return f"{AUTHZ}/db/{authorizer}{path}"


JSON_CT = {"Content-Type": "application/json"}


def assert_error(response: httpx.Response, message: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"error": message}


def assert_ok_empty(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.content == b""
    assert response.headers["Content-Type"] == "application/json"


def assert_empty(response: httpx.Response, status: int) -> None:
    """Jersey's own rejections: no body and no Content-Type."""
    assert response.status_code == status, response.text
    assert response.content == b""
    assert "Content-Type" not in response.headers


def title(response: httpx.Response) -> str:
    """The message of a Jetty error page (ISO-8859-1 HTML)."""
    assert response.headers["Content-Type"] == "text/html;charset=iso-8859-1"
    match = re.search(r"<title>Error \d+ (.*?)</title>", response.text, re.DOTALL)
    assert match is not None, response.text
    return html.unescape(match.group(1))


def ra(name: str, type_: str, action: str) -> dict[str, object]:
    return {"resource": {"name": name, "type": type_}, "action": action}


def full(name: str, type_: str, action: str) -> dict[str, object]:
    return {"resourceAction": ra(name, type_, action), "resourceNamePattern": name}


def client_for(server: FakeCoordinator, user: str, password: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, auth=(user, password), timeout=10)


@pytest.fixture
async def fake() -> AsyncIterator[FakeCoordinator]:
    async with FakeCoordinator(admin_password=ADMIN_PW, credential_iterations=ITERATIONS) as server:
        yield server


@pytest.fixture
async def admin(fake: FakeCoordinator) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(fake, "admin", ADMIN_PW) as client:
        yield client


@pytest.fixture
async def anon(fake: FakeCoordinator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fake.url, timeout=10) as client:
        yield client


async def make_user(admin: httpx.AsyncClient, name: str, password: str | None, *roles: str) -> None:
    """Create a user in both stores through the API, optionally with a password and roles."""
    assert_ok_empty(await admin.post(authn(f"/users/{seg(name)}")))
    if password is not None:
        resp = await admin.post(authn(f"/users/{seg(name)}/credentials"), json={"password": password})
        assert_ok_empty(resp)
    assert_ok_empty(await admin.post(authz(f"/users/{seg(name)}")))
    for role in roles:
        assert_ok_empty(await admin.post(authz(f"/users/{seg(name)}/roles/{seg(role)}")))


async def make_role(admin: httpx.AsyncClient, name: str, permissions: list[dict[str, object]]) -> None:
    assert_ok_empty(await admin.post(authz(f"/roles/{seg(name)}")))
    assert_ok_empty(await admin.post(authz(f"/roles/{seg(name)}/permissions"), json=permissions))


def basic(raw: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


# ------------------------------------------------------------------------------------------- smile


@pytest.mark.parametrize(
    "value",
    [
        {"a": [None, True, False, "", 0, -16, 15, 16, -17, 2**31 - 1, -(2**31), 2**40, -(2**40)]},
        {"k" * 64: "v" * 32, "k" * 65: "v" * 33, "w" * 200: "x" * 64 + "y"},
        {"é": "é", "ключ" * 14: "значение" * 4, "日本" * 10: "日" * 22},
        {"bin": [b"", b"\x00", bytes(range(7)), bytes(range(256)), os.urandom(64)]},
        [
            {"name": "a", "roles": []},
            {"name": "b", "roles": ["x"]},
            {"name": "c", "k" * 65: 1, "k" * 65 + "x": 2},
        ],
        {f"key{i}": {f"key{i}": i} for i in range(1100)},  # more than 1024 shared names: the table resets
    ],
)
def test_smile_round_trips(value: object) -> None:
    assert smile_decode(smile_encode(value)) == value


def test_smile_matches_druids_encoding() -> None:
    """Header 0x05 (shared names + raw binary), names back-referenced, bytes as raw binary (0xFD)."""
    data = smile_encode({"admin": {"name": "admin", "salt": b"\x01\x02"}, "x": {"name": "x"}})
    assert data == (
        b":)\n\x05\xfa\x84admin\xfa\x83nameDadmin\x83salt\xfd\x82\x01\x02\xfb\x80x\xfa\x41@x\xfb\xfb"
    )


def test_smile_decoder_reads_shared_values_and_numbers() -> None:
    # Header with shared names and shared values; a float, a double, a big integer, a shared value ref.
    data = bytes.fromhex("3a290a03") + bytes([0xF8, 0x41]) + b"ab" + bytes([0x01, 0xC2, 0xF9])
    assert smile_decode(data) == ["ab", "ab", 1]
    double = smile_encode_double(2.5)
    assert smile_decode(b":)\n\x00" + double) == 2.5


def _random_document(rnd: random.Random, depth: int = 0) -> object:
    """Every value kind the encoder writes: strings of every length class (tiny, short, long;
    ASCII and not), ints of every size class, raw binary, nested lists and objects."""
    kind = rnd.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rnd.choice(["", None, True, False])
    if kind == 1:
        return rnd.choice(
            [rnd.randrange(-16, 16), rnd.randrange(-(2**31), 2**31), rnd.randrange(-(2**63), 2**63)]
        )
    if kind in (2, 3):
        return "".join(rnd.choice("abcXYZ09-é中") for _ in range(rnd.randrange(0, 90)))
    if kind == 4:
        return rnd.randbytes(rnd.randrange(0, 80))
    if kind == 5:
        return rnd.choice(["user-1", "role-2", "READ", "DATASOURCE"])  # the same values again
    if kind == 6:
        return [_random_document(rnd, depth + 1) for _ in range(rnd.randrange(0, 6))]
    names = ["name", "roles", "credentials", "k" * rnd.randrange(1, 70), "ключ", f"k{rnd.randrange(1200)}"]
    return {rnd.choice(names): _random_document(rnd, depth + 1) for _ in range(rnd.randrange(0, 6))}


def test_smile_decoder_reads_random_documents_and_refuses_them_truncated() -> None:
    rnd = random.Random(20261128)
    for n in range(400):
        value = _random_document(rnd) if n % 2 else [_random_document(rnd)]
        data = smile_encode(value)
        assert smile_decode(data) == value
        for cut in range(4, len(data), max(1, len(data) // 9)):
            with pytest.raises(ValueError, match="Smile"):
                smile_decode(data[:cut])


def smile_encode_double(value: float) -> bytes:
    bits = int.from_bytes(struct.pack(">d", value), "big")
    groups = [(bits >> (7 * i)) & 0x7F for i in range(9, -1, -1)]
    return bytes([0x29, *groups])


# ------------------------------------------------------------------------------ Java emulation helpers


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (2.5, "2.5"),
        (1e3, "1000.0"),
        (5.0e40, "5.0E40"),
        (1e7, "1.0E7"),
        (0.001, "0.001"),
        (1e-4, "1.0E-4"),
        (-0.0, "-0.0"),
    ],
)
def test_java_double(value: float, text: str) -> None:
    assert java_double(value) == text


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("wiki.*", ["wiki", "wikipedia"], ["awiki"]),
        ("(?<n>a)\\k<n>", ["aa"], ["ab"]),
        ("x(?i)y|z", ["xY", "Z"], ["X"]),
        ("[a-z&&[^aeiou]]+", ["xyz"], ["abc"]),
        ("\\Qa.b\\E", ["a.b"], ["axb"]),
        ("\\p{Alpha}{2}\\d", ["ab1"], ["a1"]),
        ("a{2}{3}", ["aa"], ["a"]),
        ("(?x) a b # comment", ["ab"], ["a b"]),
        ("\\w+", ["a_1"], ["é"]),  # Java's \w is ASCII-only
    ],
)
def test_java_regex_translation_matches_like_java(
    pattern: str, matches: list[str], misses: list[str]
) -> None:
    compiled = java_regex(pattern)
    assert all(compiled.fullmatch(m) for m in matches)
    assert not any(compiled.fullmatch(m) for m in misses)


@pytest.mark.parametrize("pattern", ["wiki(", "a{", "(?P<n>x)", "\\k<n>", "[^]", "x**", "\\p{Nope}", "\\y"])
def test_java_regex_refuses_what_java_refuses(pattern: str) -> None:
    with pytest.raises(JavaRegexError):
        java_regex(pattern)


# ------------------------------------------------------------------------------ health, status, auth


async def test_health_is_unsecured(anon: httpx.AsyncClient) -> None:
    resp = await anon.get("/status/health", headers={"Authorization": "Basic !!!"})
    assert resp.status_code == 200
    assert resp.json() is True


async def test_status_needs_state_read(fake: FakeCoordinator, admin: httpx.AsyncClient) -> None:
    resp = await admin.get("/status")
    assert resp.status_code == 200
    assert set(resp.json()) == {"version", "modules", "memory"}
    await make_role(admin, "sec", SECURITY_RW)
    await make_user(admin, "op", "op-pw", "sec")
    resp = await admin.get("/status", auth=("op", "op-pw"))
    assert resp.status_code == 403
    assert resp.json() == {"Access-Check-Result": "Allowed:false, Message:"}
    fake.roles["sec"].append(Permission("STATE", "STATE", "READ"))
    assert (await admin.get("/status", auth=("op", "op-pw"))).status_code == 200


async def test_missing_authorization_is_401_json(anon: httpx.AsyncClient) -> None:
    # The scheme is case-sensitive: "basic ..." is not Basic auth.
    for headers in ({}, {"Authorization": "Bearer abc"}, {"Authorization": "basic YTpi"}):
        resp = await anon.get(f"{AUTHZ}/loadStatus", headers=headers)
        assert resp.status_code == 401
        assert resp.headers["WWW-Authenticate"] == "Basic"
        assert resp.headers["Content-Type"] == "application/json;charset=utf-8"
        body = resp.json()
        assert body["error"] == "Unauthorized request"
        assert set(body) == {"error", "errorMessage", "errorClass", "host"}


@pytest.mark.parametrize(
    "header",
    [
        {"Authorization": "Basic !!!not-base64"},
        basic(b"admin"),  # no colon
        basic(f"admin:{ADMIN_PW}:extra".encode()),  # three parts
        basic(b"admin:"),  # empty password: Java split drops it
        basic(b":"),
    ],
)
async def test_malformed_basic_credentials_are_401_jetty(
    anon: httpx.AsyncClient, header: dict[str, str]
) -> None:
    resp = await anon.get(f"{AUTHZ}/loadStatus", headers=header)
    assert resp.status_code == 401
    assert title(resp) == "Unauthorized"
    assert "WWW-Authenticate" not in resp.headers


async def test_trailing_colons_are_dropped_like_java_split(anon: httpx.AsyncClient) -> None:
    resp = await anon.get(f"{AUTHZ}/loadStatus", headers=basic(f"admin:{ADMIN_PW}::".encode()))
    assert resp.status_code == 200


async def test_unknown_user_and_wrong_password(anon: httpx.AsyncClient) -> None:
    unknown = await anon.get(f"{AUTHZ}/loadStatus", auth=("nobody", "x"))
    assert unknown.status_code == 401
    assert title(unknown) == "Unauthorized"
    wrong = await anon.get(f"{AUTHZ}/loadStatus", auth=("admin", "wrong"))
    assert wrong.status_code == 401
    assert title(wrong) == "User authentication failed."  # 27.0.0 does not name the user
    assert "admin" not in wrong.text
    assert "wrong" not in wrong.text


async def test_user_without_password_cannot_log_in(admin: httpx.AsyncClient) -> None:
    await make_user(admin, "nopw", None)
    resp = await admin.get(f"{AUTHZ}/loadStatus", auth=("nopw", ""))
    assert resp.status_code == 401


async def test_authenticated_but_not_authorized_is_403_text(admin: httpx.AsyncClient) -> None:
    await make_role(admin, "reader", [ra("wiki.*", "DATASOURCE", "READ")])
    await make_user(admin, "alice", "alice-pw", "reader")
    resp = await admin.get(f"{AUTHZ}/loadStatus", auth=("alice", "alice-pw"))
    assert resp.status_code == 403
    assert resp.headers["Content-Type"] == "text/plain"
    assert resp.text == "Access-Check-Result: Allowed:false, Message:"
    # Only in the authenticator, not in the authorizer: still 403, not 401.
    assert_ok_empty(await admin.post(authn("/users/bob")))
    assert_ok_empty(await admin.post(authn("/users/bob/credentials"), json={"password": "bob-pw"}))
    resp = await admin.get(f"{AUTHZ}/loadStatus", auth=("bob", "bob-pw"))
    assert resp.status_code == 403


async def test_read_for_get_write_for_other_methods(admin: httpx.AsyncClient) -> None:
    await make_role(admin, "ro", [SECURITY_RW[0]])
    await make_role(admin, "wo", [SECURITY_RW[1]])
    await make_user(admin, "reader", "r-pw", "ro")
    await make_user(admin, "writer", "w-pw", "wo")
    assert (await admin.get(authz("/roles"), auth=("reader", "r-pw"))).status_code == 200
    assert (await admin.get(f"{AUTHZ}/refreshAll", auth=("reader", "r-pw"))).status_code == 200
    assert (await admin.post(authz("/roles/x"), auth=("reader", "r-pw"))).status_code == 403
    # WRITE does not imply READ.
    assert (await admin.get(authz("/roles"), auth=("writer", "w-pw"))).status_code == 403
    assert (await admin.post(authz("/roles/x"), auth=("writer", "w-pw"))).status_code == 200
    assert (await admin.delete(authz("/roles/x"), auth=("writer", "w-pw"))).status_code == 200


async def test_permission_names_are_full_match_regexes(admin: httpx.AsyncClient) -> None:
    await make_role(admin, "partial", [ra("secur", "CONFIG", "READ")])
    await make_role(admin, "pattern", [ra("secur.*", "CONFIG", "READ")])
    await make_user(admin, "p1", "pw1", "partial")
    await make_user(admin, "p2", "pw2", "pattern")
    assert (await admin.get(authz("/roles"), auth=("p1", "pw1"))).status_code == 403
    assert (await admin.get(authz("/roles"), auth=("p2", "pw2"))).status_code == 200


async def test_missing_roles_of_a_user_are_skipped_for_authorization(
    fake: FakeCoordinator, admin: httpx.AsyncClient
) -> None:
    await make_role(admin, "sec", SECURITY_RW)
    await make_user(admin, "carol", "c-pw", "sec")
    fake.users["carol"].add("ghost")
    assert (await admin.get(authz("/roles"), auth=("carol", "c-pw"))).status_code == 200


async def test_colon_in_password_locks_the_user_out(admin: httpx.AsyncClient) -> None:
    await make_role(admin, "sec", SECURITY_RW)
    await make_user(admin, "dave", "a:b", "sec")
    assert (await admin.get(authz("/roles"), auth=("dave", "a:b"))).status_code == 401


async def test_non_ascii_password_and_user_log_in(admin: httpx.AsyncClient, fake: FakeCoordinator) -> None:
    await make_role(admin, "sec", SECURITY_RW)
    password = "pässwörd-日本-\U0001f511"
    await make_user(admin, "zoë", password, "sec")
    assert (await admin.get(authz("/roles"), auth=("zoë", password))).status_code == 200
    stored = fake.credentials["zoë"]
    assert stored is not None
    expected = hashlib.pbkdf2_hmac("sha512", password.encode(), stored.salt_bytes(), ITERATIONS, 64)
    assert stored.hash_bytes() == expected


async def test_password_change_invalidates_cached_login(admin: httpx.AsyncClient) -> None:
    await make_role(admin, "sec", SECURITY_RW)
    await make_user(admin, "erin", "old", "sec")
    assert (await admin.get(authz("/roles"), auth=("erin", "old"))).status_code == 200
    assert (await admin.get(authz("/roles"), auth=("erin", "old"))).status_code == 200  # cached
    resp = await admin.post(authn("/users/erin/credentials"), json={"password": "new"})
    assert_ok_empty(resp)
    assert (await admin.get(authz("/roles"), auth=("erin", "old"))).status_code == 401
    assert (await admin.get(authz("/roles"), auth=("erin", "new"))).status_code == 200


async def test_default_iterations_is_10000() -> None:
    server = FakeCoordinator(admin_password=ADMIN_PW)
    async with server, client_for(server, "admin", ADMIN_PW) as client:
        admin_record = (await client.get(authn("/users/admin"))).json()["credentials"]
        assert admin_record["iterations"] == 10000
        assert_ok_empty(await client.post(authn("/users/u")))
        assert_ok_empty(await client.post(authn("/users/u/credentials"), json={"password": "pw"}))
        record = (await client.get(authn("/users/u"))).json()["credentials"]
    assert record["iterations"] == 10000
    assert verify_password("pw", StoredCredentials.from_json(record))
    expected = hashlib.pbkdf2_hmac("sha512", b"pw", base64.b64decode(record["salt"]), 10000, 64)
    assert base64.b64decode(record["hash"]) == expected


async def test_bootstrap_users_and_superuser_roles() -> None:
    server = FakeCoordinator(admin_password=ADMIN_PW, internal_password="internal", credential_iterations=1)
    async with server, client_for(server, "druid_system", "internal") as client:
        assert (await client.get(authn("/users"))).json() == ["admin", "druid_system"]
        assert (await client.get(authz("/users"))).json() == ["admin", "druid_system"]
        assert (await client.get(authz("/roles"))).json() == ["admin", "druid_system"]
        assert (await client.get(authz("/users/druid_system"))).json() == {
            "name": "druid_system",
            "roles": ["druid_system"],
        }
        perms = (await client.get(authz("/roles/admin/permissions"))).json()
    expected = [full(".*", t, a) for t in KNOWN_RESOURCE_TYPES for a in ("READ", "WRITE")]
    assert perms == expected
    assert len(expected) == 14
    assert server.roles["admin"] == superuser_permissions()


async def test_random_internal_password_by_default(fake: FakeCoordinator, anon: httpx.AsyncClient) -> None:
    assert fake.internal_password
    resp = await anon.get(authz("/users"), auth=("druid_system", fake.internal_password))
    assert resp.status_code == 200


# ------------------------------------------------------------------------------- routing and media types


async def test_unknown_path_and_wrong_method(admin: httpx.AsyncClient, anon: httpx.AsyncClient) -> None:
    assert (await anon.get(f"{AUTHZ}/nothing")).status_code == 401  # filters run before routing
    assert_empty(await admin.get(f"{AUTHZ}/nothing"), 404)
    resp = await admin.put(authz("/roles/x"))
    assert_empty(resp, 405)
    assert set(resp.headers["Allow"].split(",")) >= {"GET", "POST", "DELETE"}
    outside = await admin.get("/nothing/at/all")  # not a Jersey path: Jetty's own page
    assert outside.status_code == 404
    assert title(outside) == "Not Found"


async def test_content_type_and_accept_negotiation(admin: httpx.AsyncClient) -> None:
    assert_empty(
        await admin.post(authz("/roles/x"), content=b"x", headers={"Content-Type": "text/plain"}), 415
    )
    assert (await admin.get(authz("/roles"))).status_code == 200
    assert_empty(await admin.get(authz("/roles"), headers={"Accept": "application/x-jackson-smile"}), 406)
    resp = await admin.get(authz("/roles"), headers={"Accept": "text/html, application/*;q=0.9"})
    assert resp.status_code == 200
    resp = await admin.get(authz("/roles"), headers={"Accept": "application/json;q=0"})
    assert resp.status_code == 200  # Jersey 1 does not read q-values


async def test_entity_endpoints_need_a_content_type_after_the_403_check(admin: httpx.AsyncClient) -> None:
    await make_role(admin, "r1", [])
    await make_user(admin, "weak", "weak-pw")
    for path in (
        authn("/users/admin/credentials"),
        authz("/roles/r1/permissions"),
        authz("/groupMappings/g"),
    ):
        assert_empty(await admin.post(path), 415)
        assert (await admin.post(path, auth=("weak", "weak-pw"))).status_code == 403


async def test_load_status_and_refresh_all(admin: httpx.AsyncClient) -> None:
    assert (await admin.get(f"{AUTHN}/loadStatus")).json() == {"basic": True}
    assert (await admin.get(f"{AUTHZ}/loadStatus")).json() == {"basic": True}
    assert_ok_empty(await admin.get(f"{AUTHN}/refreshAll"))
    assert_ok_empty(await admin.get(f"{AUTHZ}/refreshAll"))


async def test_custom_authenticator_and_authorizer_names() -> None:
    server = FakeCoordinator(
        admin_password=ADMIN_PW, authenticator="db", authorizer="rbac", credential_iterations=1
    )
    async with server, client_for(server, "admin", ADMIN_PW) as client:
        assert (await client.get(f"{AUTHN}/loadStatus")).json() == {"db": True}
        assert (await client.get(f"{AUTHZ}/loadStatus")).json() == {"rbac": True}
        assert (await client.get(authn("/users", "db"))).status_code == 200
        assert (await client.get(authz("/users", "rbac"))).status_code == 200
        resp = await client.get(authn("/users"))
        assert_error(resp, "Basic authenticator with name [basic] does not exist.")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/users"),
        ("GET", "/users/admin"),
        ("POST", "/users/new"),
        ("DELETE", "/users/admin"),
    ],
)
async def test_unknown_authenticator(admin: httpx.AsyncClient, method: str, path: str) -> None:
    resp = await admin.request(method, authn(path, "nope"))
    assert_error(resp, "Basic authenticator with name [nope] does not exist.")


@pytest.mark.parametrize(
    "path",
    [
        authn("/cachedSerializedUserMap", "nope"),
        authz("/cachedSerializedUserMap", "nope"),
        authz("/cachedSerializedGroupMappingMap", "nope"),
    ],
)
async def test_handler_errors_of_smile_endpoints_are_smile(admin: httpx.AsyncClient, path: str) -> None:
    resp = await admin.get(path)
    assert resp.status_code == 400
    assert resp.headers["Content-Type"] == "application/x-jackson-smile"
    kind = "authenticator" if "/authentication/" in path else "authorizer"
    assert smile_decode(resp.content) == {"error": f"Basic {kind} with name [nope] does not exist."}


async def test_unknown_authenticator_on_credentials(admin: httpx.AsyncClient) -> None:
    resp = await admin.post(authn("/users/admin/credentials", "nope"), json={"password": "x"})
    assert_error(resp, "Basic authenticator with name [nope] does not exist.")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/users", None),
        ("GET", "/users/admin", None),
        ("POST", "/users/new", None),
        ("DELETE", "/users/admin", None),
        ("POST", "/users/admin/roles/admin", None),
        ("DELETE", "/users/admin/roles/admin", None),
        ("GET", "/groupMappings", None),
        ("GET", "/groupMappings/g", None),
        ("POST", "/groupMappings/g", {"groupPattern": "x"}),
        ("DELETE", "/groupMappings/g", None),
        ("POST", "/groupMappings/g/roles/admin", None),
        ("DELETE", "/groupMappings/g/roles/admin", None),
        ("GET", "/roles", None),
        ("GET", "/roles/admin", None),
        ("POST", "/roles/new", None),
        ("DELETE", "/roles/admin", None),
        ("POST", "/roles/admin/permissions", []),
        ("GET", "/roles/admin/permissions", None),
    ],
)
async def test_unknown_authorizer(admin: httpx.AsyncClient, method: str, path: str, body: object) -> None:
    resp = await admin.request(method, authz(path, "nope"), json=body)
    assert_error(resp, "Basic authorizer with name [nope] does not exist.")


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        (".hidden", "cannot start with '.'."),
        ("a\tb", "contains illegal whitespace characters.  Only space is allowed."),
        ("a\nb", "contains illegal whitespace characters.  Only space is allowed."),
        ("a\x01b", "contains illegal UTF8 character [#1] at position [1]"),
        ("a\U0001f511", "contains illegal UTF8 character [#55357] at position [1]"),
    ],
)
async def test_invalid_authorizer_and_authenticator_names(
    admin: httpx.AsyncClient, name: str, problem: str
) -> None:
    for url, field in (
        (authz("/users", seg(name)), "authorizerName"),
        (authn("/users", seg(name)), "authenticatorName"),
    ):
        resp = await admin.get(url)
        assert resp.status_code == 500  # an unmapped DruidException in 27.0.0
        shown = "".join("?" if ord(c) < 0x20 and c not in "\t\n\r" else c for c in name)
        shown = shown.encode("iso-8859-1", errors="replace").decode("iso-8859-1")
        expected = f"Invalid value for field [{field}]: Value [{shown}] {problem}"
        assert title(resp) == f"org.apache.druid.error.DruidException: {expected}"


async def test_space_in_authorizer_name_is_valid_but_unknown(admin: httpx.AsyncClient) -> None:
    assert_error(
        await admin.get(authz("/users", "my%20authz")),
        "Basic authorizer with name [my authz] does not exist.",
    )


async def test_encoded_slash_and_dot_segments_are_decoded_into_names(
    fake: FakeCoordinator, admin: httpx.AsyncClient
) -> None:
    """Jetty 9.4 (Druid 27) hands %2F and %2E%2E to Jersey, which decodes them into the name."""
    assert_ok_empty(await admin.post(authz("/roles/a%2Fb")))
    assert "a/b" in fake.roles
    assert (await admin.get(authz("/roles/a%2Fb"))).json() == {"name": "a/b", "permissions": []}
    assert_error(await admin.get(authz("/roles/%2E%2E")), "Role [..] does not exist.")


async def test_ambiguous_uris_are_rejected_before_auth_when_asked() -> None:
    """``reject_ambiguous_uris=True``: Jetty 12's (Druid 35+) 400 before any filter runs."""
    server = FakeCoordinator(admin_password=ADMIN_PW, credential_iterations=1, reject_ambiguous_uris=True)
    async with server, client_for(server, "admin", ADMIN_PW) as admin:
        for auth in (("admin", ADMIN_PW), None):
            resp = await admin.post(authz("/roles/a%2Fb"), auth=auth)
            assert resp.status_code == 400
            assert title(resp) == "Ambiguous URI path separator"
            resp = await admin.get(authz("/roles/%2E%2E"), auth=auth)
            assert title(resp) == "Ambiguous URI path segment"
        assert (await admin.get(authz("/roles"))).json() == ["admin", "druid_system"]


async def test_matrix_parameters_are_dropped(fake: FakeCoordinator, admin: httpx.AsyncClient) -> None:
    assert_ok_empty(await admin.post(authz("/roles/x;version=2")))
    assert "x" in fake.roles
    assert_error(await admin.get(authz("/roles/x%3Bv")), "Role [x;v] does not exist.")


@pytest.mark.parametrize(
    "name", ["alice@example.com", "with space", "dots.in.name", "ünïcödé-日本", "a+b", "x;y", "a/b", "%"]
)
async def test_percent_encoded_names(fake: FakeCoordinator, admin: httpx.AsyncClient, name: str) -> None:
    await make_role(admin, name, [ra("security", "CONFIG", "READ")])
    await make_user(admin, name, "pw", name)
    resp = await admin.post(authz(f"/groupMappings/{seg(name)}"), json={"groupPattern": "*", "roles": [name]})
    assert_ok_empty(resp)
    assert name in (await admin.get(authz("/roles"))).json()
    assert name in (await admin.get(authn("/users"))).json()
    assert (await admin.get(authz(f"/users/{seg(name)}"))).json() == {"name": name, "roles": [name]}
    assert (await admin.get(authz(f"/groupMappings/{seg(name)}"))).json()["name"] == name
    assert (await admin.get(authz("/roles"), auth=(name, "pw"))).status_code == 200
    record = fake.requests.filter("GET", "/groupMappings/")[-1]
    assert record.path.endswith("/groupMappings/" + name)
    assert record.raw_path.endswith("/groupMappings/" + seg(name))


async def test_literal_at_sign_in_path(admin: httpx.AsyncClient) -> None:
    assert_ok_empty(await admin.post(authz("/users/a@b")))
    assert (await admin.get(authz("/users/a%40b"))).json() == {"name": "a@b", "roles": []}


# ------------------------------------------------------------------------------- authentication API


async def test_authenticator_user_lifecycle(admin: httpx.AsyncClient) -> None:
    assert_ok_empty(await admin.post(authn("/users/u1")))
    assert_error(await admin.post(authn("/users/u1")), "User [u1] already exists.")
    assert (await admin.get(authn("/users/u1"))).json() == {"name": "u1", "credentials": None}
    assert (await admin.get(authn("/users"))).json() == ["admin", "druid_system", "u1"]
    assert_ok_empty(await admin.delete(authn("/users/u1")))
    assert_error(await admin.delete(authn("/users/u1")), "User [u1] does not exist.")
    assert_error(await admin.get(authn("/users/u1")), "User [u1] does not exist.")


async def test_credentials_are_pbkdf2_with_new_salt_each_time(admin: httpx.AsyncClient) -> None:
    assert_ok_empty(await admin.post(authn("/users/u1")))
    records = []
    for _ in range(2):
        assert_ok_empty(await admin.post(authn("/users/u1/credentials"), json={"password": "same"}))
        body = (await admin.get(authn("/users/u1"))).json()
        assert body["name"] == "u1"
        records.append(StoredCredentials.from_json(body["credentials"]))
    assert records[0].salt != records[1].salt
    for record in records:
        assert record.iterations == ITERATIONS
        assert len(record.salt_bytes()) == 32
        assert len(record.hash_bytes()) == 64
        assert verify_password("same", record)


async def test_credentials_iterations_from_body(admin: httpx.AsyncClient) -> None:
    assert_ok_empty(await admin.post(authn("/users/u1")))
    # -1 (and null, "", "null") mean the authenticator's credentialIterations; floats are truncated.
    for iterations, stored in (
        (5, 5),
        ("7", 7),
        (2.9, 2),
        (None, ITERATIONS),
        (-1, ITERATIONS),
        ("", ITERATIONS),
    ):
        body = {"password": "pw", "iterations": iterations}
        assert_ok_empty(await admin.post(authn("/users/u1/credentials"), json=body))
        record = (await admin.get(authn("/users/u1"))).json()["credentials"]
        assert record["iterations"] == stored


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"password": ""}, "Cannot assign empty password."),
        ({}, "Cannot assign null password."),
        ({"password": None}, "Cannot assign null password."),
        ([], f"Cannot deserialize instance of `{CREDENTIAL_UPDATE}` out of START_ARRAY token"),
        (
            {"password": {"x": 1}},
            "Cannot deserialize instance of `java.lang.String` out of START_OBJECT token",
        ),
        ({"password": "pw", "iterations": "many"}, 'from String "many": not a valid Integer value'),
        ({"password": "pw", "iterations": 2**31}, "Numeric value (2147483648) out of range of int"),
    ],
)
async def test_bad_credential_bodies_are_400_jackson(
    admin: httpx.AsyncClient, body: object, fragment: str
) -> None:
    resp = await admin.post(authn("/users/admin/credentials"), json=body)
    assert resp.status_code == 400
    assert fragment in resp.json()["error"]


async def test_jackson_locations_and_reference_chains(admin: httpx.AsyncClient) -> None:
    """Jackson 2.10's texts: line/column of the token (byte-based), then the reference chain."""
    resp = await admin.post(
        authn("/users/admin/credentials"), content=b'{"password":"x",\n "iterations":"9x"}', headers=JSON_CT
    )
    assert_error(
        resp,
        'Cannot deserialize value of type `java.lang.Integer` from String "9x": not a valid Integer value\n'
        " at [Source: (org.eclipse.jetty.server.HttpInputOverHTTP); line: 2, column: 15]"
        f' (through reference chain: {CREDENTIAL_UPDATE}["iterations"])',
    )


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        # A syntax error inside a wrapped deserializer (list element, bean property value) is a 400 ...
        (b'{"password": "x', 400, "Unexpected end-of-input in VALUE_STRING"),
        # ... at the top of the entity it escapes Jersey: 500 (ServletException around Jackson's exception).
        (
            b"{not json",
            500,
            "javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException: ",
        ),
        (
            b'{"password":"x"',
            500,
            "javax.servlet.ServletException: com.fasterxml.jackson.core.io.JsonEOFException: ",
        ),
        (b"", 500, "java.lang.NullPointerException: "),
        (b"null", 500, "java.lang.NullPointerException: "),
        (
            b'{"password":"x","iterations":0}',
            500,
            "java.lang.IllegalArgumentException: invalid iterationCount value",
        ),
        (b'{"password":"x"} trailing content is never read', 200, ""),
    ],
)
async def test_credential_body_syntax(
    admin: httpx.AsyncClient, body: bytes, status: int, expected: str
) -> None:
    resp = await admin.post(authn("/users/admin/credentials"), content=body, headers=JSON_CT)
    assert resp.status_code == status
    if status == 400:
        assert resp.json()["error"].startswith(expected)
    elif status == 500:
        assert title(resp).startswith(expected)


async def test_credentials_error_order_and_server_errors(admin: httpx.AsyncClient) -> None:
    # The entity is read before the handler: a bad body wins over a missing user.
    resp = await admin.post(authn("/users/ghost/credentials"), json={"password": ""})
    assert "Cannot assign empty password." in resp.json()["error"]
    assert_error(
        await admin.post(authn("/users/ghost/credentials"), json={"password": "x"}),
        "User [ghost] does not exist.",
    )
    assert_empty(await admin.post(authn("/users/admin/credentials")), 415)  # no Content-Type
    null_entity = await admin.post(authn("/users/admin/credentials"), content=b"", headers=JSON_CT)
    assert null_entity.status_code == 500  # null entity: NPE
    bad_iterations = {"password": "x", "iterations": 0}
    assert (await admin.post(authn("/users/ghost/credentials"), json=bad_iterations)).status_code == 500
    # The authenticator name is checked before the NPE.
    resp = await admin.post(authn("/users/x/credentials", "nope"), content=b"null", headers=JSON_CT)
    assert_error(resp, "Basic authenticator with name [nope] does not exist.")
    assert (await admin.get(f"{AUTHN}/loadStatus")).status_code == 200  # admin password unchanged


async def test_stores_are_independent(admin: httpx.AsyncClient) -> None:
    await make_user(admin, "u1", "pw")
    assert_ok_empty(await admin.delete(authn("/users/u1")))
    assert (await admin.get(authz("/users/u1"))).json() == {"name": "u1", "roles": []}
    assert_ok_empty(await admin.post(authn("/users/u2")))
    assert_error(await admin.get(authz("/users/u2")), "User [u2] does not exist.")


async def test_authenticator_cached_user_map_is_smile(
    fake: FakeCoordinator, admin: httpx.AsyncClient
) -> None:
    assert_ok_empty(await admin.post(authn("/users/nopw")))
    resp = await admin.get(authn("/cachedSerializedUserMap"))
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/x-jackson-smile"
    decoded = smile_decode(resp.content)
    assert isinstance(decoded, dict)
    assert sorted(decoded) == ["admin", "druid_system", "nopw"]
    assert decoded["nopw"] == {"name": "nopw", "credentials": None}
    stored = fake.credentials["admin"]
    assert stored is not None
    assert decoded["admin"] == {
        "name": "admin",
        "credentials": {"salt": stored.salt_bytes(), "hash": stored.hash_bytes(), "iterations": 10000},
    }
    assert resp.content[:4] == b":)\n\x05"  # shared names, raw binary: as Druid writes it
    refused = await admin.get(authn("/cachedSerializedUserMap"), headers={"Accept": "application/json"})
    assert_empty(refused, 406)


@pytest.mark.parametrize(
    "path",
    [
        f"{AUTHN}/listen/basic",
        f"{AUTHZ}/listen/basic",
        f"{AUTHZ}/listen/users/basic",
        f"{AUTHZ}/listen/groupMappings/basic",
    ],
)
async def test_listen_endpoints_are_404_on_the_coordinator(
    admin: httpx.AsyncClient, anon: httpx.AsyncClient, path: str
) -> None:
    for headers in ({}, JSON_CT):
        resp = await admin.post(path, content=b"{}", headers=headers)
        assert resp.status_code == 404
        assert resp.content == b""
        assert resp.headers["Content-Type"] == "application/json"
    smile = {"Content-Type": "application/x-jackson-smile"}  # the listen endpoints consume JSON in 27.0.0
    assert_empty(await admin.post(path, content=smile_encode({}), headers=smile), 415)
    assert (await anon.post(path, content=b"", headers=smile)).status_code == 401


# ------------------------------------------------------------------------------- authorization: users


async def test_authorizer_user_lifecycle(admin: httpx.AsyncClient) -> None:
    assert_ok_empty(await admin.post(authz("/users/u1")))
    assert_error(await admin.post(authz("/users/u1")), "User [u1] already exists.")
    assert (await admin.get(authz("/users/u1"))).json() == {"name": "u1", "roles": []}
    assert "u1" in (await admin.get(authz("/users"))).json()
    assert_ok_empty(await admin.delete(authz("/users/u1")))
    assert_error(await admin.delete(authz("/users/u1")), "User [u1] does not exist.")
    assert_error(await admin.get(authz("/users/u1")), "User [u1] does not exist.")
    assert_error(await admin.get(authz("/users/u1?full")), "User [u1] does not exist.")


async def test_user_get_flag_shapes(fake: FakeCoordinator, admin: httpx.AsyncClient) -> None:
    await make_role(admin, "r1", [ra("wiki", "DATASOURCE", "read")])
    await make_role(admin, "r2", [])
    await make_user(admin, "u1", None, "r1", "r2")
    fake.users["u1"].add("ghost")  # a role that no longer exists
    plain = {"name": "u1", "roles": ["ghost", "r1", "r2"]}
    assert (await admin.get(authz("/users/u1"))).json() == plain
    assert (await admin.get(authz("/users/u1?simplifyPermissions"))).json() == plain
    full_shape = {
        "name": "u1",
        "roles": [
            {"name": "r1", "permissions": [full("wiki", "DATASOURCE", "READ")]},
            {"name": "r2", "permissions": []},
        ],
    }
    for query in ("full", "full=true", "full=false", "full="):
        assert (await admin.get(authz(f"/users/u1?{query}"))).json() == full_shape
    simplified = {
        "name": "u1",
        "roles": [
            {"name": "r1", "users": None, "permissions": [ra("wiki", "DATASOURCE", "READ")]},
            {"name": "r2", "users": None, "permissions": []},
        ],
    }
    assert (await admin.get(authz("/users/u1?full&simplifyPermissions"))).json() == simplified
    assert (await admin.get(authz("/users/u1?simplifyPermissions=false&full=false"))).json() == simplified


async def test_role_assignment_is_not_idempotent(admin: httpx.AsyncClient) -> None:
    assert_ok_empty(await admin.post(authz("/roles/r1")))
    assert_ok_empty(await admin.post(authz("/users/u1")))
    assert_error(await admin.post(authz("/users/ghost/roles/nope")), "Role [nope] does not exist.")
    assert_error(await admin.post(authz("/users/ghost/roles/r1")), "User [ghost] does not exist.")
    assert_ok_empty(await admin.post(authz("/users/u1/roles/r1")))
    assert_error(await admin.post(authz("/users/u1/roles/r1")), "User [u1] already has role [r1].")
    assert (await admin.get(authz("/users/u1"))).json() == {"name": "u1", "roles": ["r1"]}
    assert_ok_empty(await admin.delete(authz("/users/u1/roles/r1")))
    assert_error(await admin.delete(authz("/users/u1/roles/r1")), "User [u1] does not have role [r1].")
    assert_error(await admin.delete(authz("/users/ghost/roles/nope")), "Role [nope] does not exist.")
    assert_error(await admin.delete(authz("/users/ghost/roles/r1")), "User [ghost] does not exist.")


# ------------------------------------------------------------------------------- authorization: roles


async def test_role_lifecycle(admin: httpx.AsyncClient) -> None:
    assert_ok_empty(await admin.post(authz("/roles/r1")))
    assert_error(await admin.post(authz("/roles/r1")), "Role [r1] already exists.")
    assert (await admin.get(authz("/roles"))).json() == ["admin", "druid_system", "r1"]
    assert (await admin.get(authz("/roles/r1"))).json() == {"name": "r1", "permissions": []}
    assert_ok_empty(await admin.delete(authz("/roles/r1")))
    assert_error(await admin.delete(authz("/roles/r1")), "Role [r1] does not exist.")
    for query in ("", "?full", "?simplifyPermissions", "?full&simplifyPermissions"):
        assert_error(await admin.get(authz(f"/roles/r1{query}")), "Role [r1] does not exist.")


async def test_role_get_flag_shapes(admin: httpx.AsyncClient) -> None:
    await make_role(admin, "r1", [ra("wiki.*", "DATASOURCE", "READ"), ra("security", "CONFIG", "write")])
    await make_user(admin, "u2", None, "r1")
    await make_user(admin, "u1", None, "r1")
    resp = await admin.post(authz("/groupMappings/g1"), json={"groupPattern": "cn=x", "roles": ["r1"]})
    assert_ok_empty(resp)
    full_perms = [full("wiki.*", "DATASOURCE", "READ"), full("security", "CONFIG", "WRITE")]
    simple_perms = [ra("wiki.*", "DATASOURCE", "READ"), ra("security", "CONFIG", "WRITE")]
    assert (await admin.get(authz("/roles/r1"))).json() == {"name": "r1", "permissions": full_perms}
    assert (await admin.get(authz("/roles/r1?full=false"))).json() == {
        "name": "r1",
        "users": ["u1", "u2"],
        "groups": ["g1"],
        "permissions": full_perms,
    }
    assert (await admin.get(authz("/roles/r1?simplifyPermissions"))).json() == {
        "name": "r1",
        "users": None,
        "permissions": simple_perms,
    }
    both = (await admin.get(authz("/roles/r1?full&simplifyPermissions"))).json()
    assert both == {"name": "r1", "users": ["u1", "u2"], "permissions": simple_perms}
    assert "groups" not in both


async def test_role_deletion_strips_assignments(fake: FakeCoordinator, admin: httpx.AsyncClient) -> None:
    await make_role(admin, "doomed", [])
    await make_role(admin, "kept", [])
    await make_user(admin, "u1", None, "doomed", "kept")
    resp = await admin.post(
        authz("/groupMappings/g1"), json={"groupPattern": "x", "roles": ["doomed", "kept"]}
    )
    assert_ok_empty(resp)
    assert_ok_empty(await admin.delete(authz("/roles/doomed")))
    assert (await admin.get(authz("/users/u1"))).json() == {"name": "u1", "roles": ["kept"]}
    assert (await admin.get(authz("/groupMappings/g1"))).json()["roles"] == ["kept"]
    assert_ok_empty(await admin.post(authz("/roles/doomed")))
    assert (await admin.get(authz("/roles/doomed?full"))).json()["users"] == []
    assert fake.group_mappings["g1"].roles == {"kept"}


# ------------------------------------------------------------------------------- permissions


async def test_permissions_replace_and_normalise(admin: httpx.AsyncClient) -> None:
    await make_role(admin, "r1", [ra("a", "DATASOURCE", "READ"), ra("b", "DATASOURCE", "READ")])
    new = [ra("c", "datasource", "wRiTe"), ra("d.*", "MY_CUSTOM_TYPE", "read")]
    assert_ok_empty(await admin.post(authz("/roles/r1/permissions"), json=new))
    assert (await admin.get(authz("/roles/r1/permissions"))).json() == [
        full("c", "datasource", "WRITE"),
        full("d.*", "MY_CUSTOM_TYPE", "READ"),
    ]


async def test_permissions_empty_body_or_list_clears(admin: httpx.AsyncClient) -> None:
    await make_role(admin, "r1", [ra("a", "DATASOURCE", "READ")])
    assert_ok_empty(await admin.post(authz("/roles/r1/permissions"), json=[]))
    assert (await admin.get(authz("/roles/r1/permissions"))).json() == []
    for index, body in enumerate((b"", b"null")):  # a null entity clears too
        await make_role(admin, f"r{index + 2}", [ra("a", "DATASOURCE", "READ")])
        assert_ok_empty(
            await admin.post(authz(f"/roles/r{index + 2}/permissions"), content=body, headers=JSON_CT)
        )
        assert (await admin.get(authz(f"/roles/r{index + 2}/permissions"))).json() == []


async def test_invalid_regex_changes_nothing(admin: httpx.AsyncClient) -> None:
    await make_role(admin, "r1", [ra("a", "DATASOURCE", "READ")])
    bad = [ra("ok", "DATASOURCE", "READ"), ra("wiki(", "DATASOURCE", "READ")]
    resp = await admin.post(authz("/roles/r1/permissions"), json=bad)
    assert_error(resp, "Invalid permission, resource name regex[wiki(] does not compile.")
    assert (await admin.get(authz("/roles/r1/permissions"))).json() == [full("a", "DATASOURCE", "READ")]


async def test_unknown_action_is_jackson_400(admin: httpx.AsyncClient) -> None:
    await make_role(admin, "r1", [ra("a", "DATASOURCE", "READ")])
    resp = await admin.post(authz("/roles/r1/permissions"), json=[ra("x", "DATASOURCE", "execute")])
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert "org.apache.druid.server.security.Action" in error
    assert "No enum constant org.apache.druid.server.security.Action.EXECUTE" in error
    assert (await admin.get(authz("/roles/r1/permissions"))).json() == [full("a", "DATASOURCE", "READ")]


async def test_permission_check_order(admin: httpx.AsyncClient) -> None:
    # Role existence is checked before the regex; the body is parsed before either.
    assert_error(
        await admin.post(authz("/roles/nope/permissions"), json=[ra("(", "X", "READ")]),
        "Role [nope] does not exist.",
    )
    assert_error(await admin.get(authz("/roles/nope/permissions")), "Role [nope] does not exist.")
    resp = await admin.post(authz("/roles/nope/permissions"), json=[ra("x", "X", "FLY")])
    assert "No enum constant" in resp.json()["error"]


@pytest.mark.parametrize(
    ("body", "status", "prefix"),
    [
        ({"resource": {"name": "x", "type": "X"}, "action": "READ"}, 400, "Cannot deserialize instance of"),
        (["x"], 400, "Cannot construct instance of `org.apache.druid.server.security.ResourceAction`"),
        ([{"resource": "x", "action": "READ"}], 400, "Cannot construct instance of"),
        (
            [{"resource": {"name": ["x"], "type": "X"}, "action": "READ"}],
            400,
            "Cannot deserialize instance of",
        ),
        ([None], 500, "java.lang.NullPointerException: "),
        ([{"action": "READ"}], 500, "java.lang.NullPointerException: "),
        ([{"resource": {"type": "X"}, "action": "READ"}], 500, "java.lang.NullPointerException: "),
    ],
)
async def test_malformed_permission_bodies(
    admin: httpx.AsyncClient, body: object, status: int, prefix: str
) -> None:
    await make_role(admin, "r1", [ra("a", "DATASOURCE", "READ")])
    resp = await admin.post(authz("/roles/r1/permissions"), json=body)
    assert resp.status_code == status
    message = resp.json()["error"] if status == 400 else title(resp)
    assert message.startswith(prefix)
    assert (await admin.get(authz("/roles/r1/permissions"))).json() == [full("a", "DATASOURCE", "READ")]


async def test_syntax_errors_inside_a_permission_are_400(admin: httpx.AsyncClient) -> None:
    await make_role(admin, "r1", [])
    resp = await admin.post(authz("/roles/r1/permissions"), content=b"[{", headers=JSON_CT)
    assert_error(
        resp,
        "Unexpected end-of-input: expected close marker for Object (start marker at [Source: "
        "(org.eclipse.jetty.server.HttpInputOverHTTP); line: 1, column: 2])\n at [Source: "
        "(org.eclipse.jetty.server.HttpInputOverHTTP); line: 1, column: 3] (through reference chain: java.util.ArrayList[0])",
    )
    resp = await admin.post(authz("/roles/r1/permissions"), content=b"[", headers=JSON_CT)
    assert resp.status_code == 500  # between elements: not wrapped, escapes as a ServletException


async def test_java_regex_validation(admin: httpx.AsyncClient) -> None:
    await make_role(admin, "r1", [])
    for accepted in ("(?<n>x)\\k<n>", "\\p{L}+", "x(?i)y", "a{2}{3}", "\\Qa(b\\E"):
        assert_ok_empty(await admin.post(authz("/roles/r1/permissions"), json=[ra(accepted, "D", "READ")]))
    for refused in ("(?P<n>x)", "a{", "${name}"):
        resp = await admin.post(authz("/roles/r1/permissions"), json=[ra(refused, "D", "READ")])
        assert_error(resp, f"Invalid permission, resource name regex[{refused}] does not compile.")


async def test_null_action_and_type_are_stored(admin: httpx.AsyncClient) -> None:
    await make_role(admin, "r1", [])
    body = [{"resource": {"name": 5, "type": None}}]
    assert_ok_empty(await admin.post(authz("/roles/r1/permissions"), json=body))
    assert (await admin.get(authz("/roles/r1?simplifyPermissions"))).json()["permissions"] == [
        {"resource": {"name": "5", "type": None}, "action": None}
    ]


# ------------------------------------------------------------------------------- group mappings


async def test_group_mapping_lifecycle(admin: httpx.AsyncClient) -> None:
    await make_role(admin, "r1", [ra("a", "DATASOURCE", "READ")])
    body = {"name": "ignored", "groupPattern": "CN=admins,.*", "roles": ["r1", "missing"]}
    assert_ok_empty(await admin.post(authz("/groupMappings/g1"), json=body))
    assert (await admin.get(authz("/groupMappings"))).json() == ["g1"]
    assert (await admin.get(authz("/groupMappings/g1"))).json() == {
        "name": "g1",
        "groupPattern": "CN=admins,.*",
        "roles": ["missing", "r1"],
    }
    assert (await admin.get(authz("/groupMappings/g1?full=false"))).json() == {
        "name": "g1",  # the full variant has no groupPattern
        "roles": [{"name": "r1", "permissions": [full("a", "DATASOURCE", "READ")]}],
    }
    again = {"groupPattern": "other", "roles": []}
    assert_error(
        await admin.post(authz("/groupMappings/g1"), json=again), "Group mapping [g1] already exists."
    )
    assert (await admin.get(authz("/groupMappings/g1"))).json()["groupPattern"] == "CN=admins,.*"
    assert_ok_empty(await admin.delete(authz("/groupMappings/g1")))
    assert_error(await admin.delete(authz("/groupMappings/g1")), "Group mapping [g1] does not exist.")
    assert_error(await admin.get(authz("/groupMappings/g1")), "Group mapping [g1] does not exist.")
    assert_error(await admin.get(authz("/groupMappings/g1?full")), "Group mapping [g1] does not exist.")


async def test_group_mapping_bodies(fake: FakeCoordinator, admin: httpx.AsyncClient) -> None:
    assert_empty(await admin.post(authz("/groupMappings/g1")), 415)  # no Content-Type
    null_entity = await admin.post(authz("/groupMappings/g1"), content=b"", headers=JSON_CT)
    assert title(null_entity).startswith("java.lang.NullPointerException: ")
    # The NPE comes before the authorizer name check.
    null_entity = await admin.post(authz("/groupMappings/g1", "nope"), content=b"null", headers=JSON_CT)
    assert title(null_entity).startswith("java.lang.NullPointerException: ")
    assert "g1" not in fake.group_mappings
    resp = await admin.post(authz("/groupMappings/g1"), json=["x"])
    assert resp.status_code == 400
    assert "Cannot deserialize instance of" in resp.json()["error"]
    resp = await admin.post(authz("/groupMappings/g1"), json={"groupPattern": "x", "roles": "r1"})
    assert "`java.util.HashSet<java.lang.Object>` out of VALUE_STRING token" in resp.json()["error"]
    assert_ok_empty(await admin.post(authz("/groupMappings/g2"), json={"roles": ["a", None, 1]}))
    assert (await admin.get(authz("/groupMappings/g2"))).json()["roles"] == [None, "1", "a"]  # null kept
    assert_ok_empty(await admin.post(authz("/groupMappings/g1"), json={}))
    assert (await admin.get(authz("/groupMappings/g1"))).json() == {
        "name": "g1",
        "groupPattern": None,
        "roles": [],
    }
    assert fake.group_mappings["g1"] == GroupMapping(None, set())


async def test_group_mapping_role_assignment(admin: httpx.AsyncClient) -> None:
    assert_ok_empty(await admin.post(authz("/roles/r1")))
    assert_ok_empty(await admin.post(authz("/groupMappings/g1"), json={"groupPattern": "x"}))
    assert_error(await admin.post(authz("/groupMappings/ghost/roles/nope")), "Role [nope] does not exist.")
    assert_error(
        await admin.post(authz("/groupMappings/ghost/roles/r1")), "Group mapping [ghost] does not exist."
    )
    assert_ok_empty(await admin.post(authz("/groupMappings/g1/roles/r1")))
    assert_error(
        await admin.post(authz("/groupMappings/g1/roles/r1")), "Group mapping [g1] already has role [r1]."
    )
    assert (await admin.get(authz("/groupMappings/g1"))).json()["roles"] == ["r1"]
    assert_ok_empty(await admin.delete(authz("/groupMappings/g1/roles/r1")))
    assert_error(
        await admin.delete(authz("/groupMappings/g1/roles/r1")), "Group mapping [g1] does not have role [r1]."
    )
    assert_error(await admin.delete(authz("/groupMappings/ghost/roles/nope")), "Role [nope] does not exist.")
    assert_error(
        await admin.delete(authz("/groupMappings/ghost/roles/r1")), "Group mapping [ghost] does not exist."
    )


async def test_authorizer_cached_maps_are_smile(fake: FakeCoordinator, admin: httpx.AsyncClient) -> None:
    await make_role(admin, "r1", [ra("wiki", "DATASOURCE", "READ")])
    await make_user(admin, "u1", None, "r1")
    assert_ok_empty(await admin.post(authz("/groupMappings/g1"), json={"groupPattern": "p", "roles": ["r1"]}))
    users = await admin.get(authz("/cachedSerializedUserMap"))
    groups = await admin.get(authz("/cachedSerializedGroupMappingMap"))
    for resp in (users, groups):
        assert resp.status_code == 200
        assert resp.headers["Content-Type"] == "application/x-jackson-smile"
    user_map = smile_decode(users.content)
    group_map = smile_decode(groups.content)
    assert isinstance(user_map, dict)
    assert isinstance(group_map, dict)
    assert user_map["userMap"]["u1"] == {"name": "u1", "roles": ["r1"]}
    role_map = {"name": "r1", "permissions": [full("wiki", "DATASOURCE", "READ")]}
    assert user_map["roleMap"]["r1"] == role_map
    assert sorted(user_map["roleMap"]) == ["admin", "druid_system", "r1"]
    assert group_map == {
        "groupMappingMap": {"g1": {"name": "g1", "groupPattern": "p", "roles": ["r1"]}},
        "roleMap": user_map["roleMap"],
    }


# ------------------------------------------------------------------------------- direct state, contention


async def test_direct_state_helpers_simulate_drift(fake: FakeCoordinator, admin: httpx.AsyncClient) -> None:
    fake.add_role("ops", [Permission("CONFIG", "security", "READ")])
    fake.add_user("frank", password="f-pw", roles=["ops", "ghost"])
    assert (await admin.get(authz("/users/frank"))).json() == {"name": "frank", "roles": ["ghost", "ops"]}
    assert (await admin.get(authz("/roles"), auth=("frank", "f-pw"))).status_code == 200
    fake.set_password("frank", "changed", iterations=3)
    assert (await admin.get(authn("/users/frank"))).json()["credentials"]["iterations"] == 3
    assert (await admin.get(authz("/roles"), auth=("frank", "f-pw"))).status_code == 401
    del fake.roles["ops"]
    assert (await admin.get(authz("/roles"), auth=("frank", "changed"))).status_code == 403
    fake.add_user("ghost-only")
    assert fake.credentials["ghost-only"] is None


async def test_contention_failures(fake: FakeCoordinator, admin: httpx.AsyncClient) -> None:
    fake.contention_failures = 2
    # Validation errors come first and do not consume a failure.
    assert_error(await admin.delete(authz("/roles/nope")), "Role [nope] does not exist.")
    for _ in range(2):
        resp = await admin.post(authz("/roles/r1"))
        assert resp.status_code == 500
        assert "Could not create role[r1] due to concurrent update contention." in resp.text
        assert "r1" not in fake.roles
    assert_ok_empty(await admin.post(authz("/roles/r1")))
    assert fake.contention_failures == 0
    fake.contention_failures = 1
    resp = await admin.post(authn("/users/admin/credentials"), json={"password": "other"})
    assert resp.status_code == 500
    assert (await admin.get(f"{AUTHN}/loadStatus")).status_code == 200  # password unchanged


async def test_request_log_records_the_user(
    fake: FakeCoordinator, admin: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    await admin.get(authz("/users"))
    await anon.get(authz("/users"))
    last_two = fake.requests.records[-2:]
    assert [(r.status, r.user) for r in last_two] == [(200, "admin"), (401, None)]


async def test_url_and_port() -> None:
    server = FakeCoordinator(admin_password="x", credential_iterations=1)
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url
    async with server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        with pytest.raises(RuntimeError, match="already running"):
            await server.start()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.port


# ------------------------------------------------------------------------------- standalone


async def test_standalone_cli_serves_until_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        str(CLI),
        *("fake-coordinator", "--port", "0", "--admin-password", "x", "--authorizer", "rbac"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout=30)).decode().strip()
        prefix = "fake-coordinator ready on http://127.0.0.1:"
        assert line.startswith(prefix), line
        url = line.removeprefix("fake-coordinator ready on ")
        async with httpx.AsyncClient(base_url=url, auth=("admin", "x"), timeout=10) as client:
            assert (await client.get(f"{AUTHZ}/loadStatus")).json() == {"rbac": True}
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=15) == 0
        rest = await asyncio.wait_for(proc.stdout.read(), timeout=5)
        assert rest == b""  # exactly one line
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# ------------------------------------------------------------------------- druid_version (27 vs 37)


def test_druid_version_is_checked_and_reported() -> None:
    assert FakeCoordinator(admin_password=ADMIN_PW).druid_version == "27.0.0"
    assert FakeCoordinator(admin_password=ADMIN_PW, druid_version="37.0.0").major == 37
    with pytest.raises(ValueError, match="druid_version must be one of"):
        FakeCoordinator(admin_password=ADMIN_PW, druid_version="30.0.0")


@pytest.mark.parametrize("version", ["27.0.0", "37.0.0"])
async def test_version_switch_changes_basic_auth_403_and_bodies(version: str) -> None:
    """The differences the contract suite pins to the real Coordinators, in one place per version."""
    new = version == "37.0.0"
    async with FakeCoordinator(
        admin_password=ADMIN_PW, credential_iterations=1, druid_version=version
    ) as server:
        server.add_user("colon", password="a:b", roles=["reader"])
        server.add_role("reader", [Permission("DATASOURCE", "x", "READ")])
        async with client_for(server, "admin", ADMIN_PW) as admin:
            status = await admin.get("/status")
            assert status.json()["version"] == version
            # 37 splits Basic credentials on the first ':' only.
            colon = await admin.get(f"{AUTHZ}/loadStatus", auth=("colon", "a:b"))
            assert colon.status_code == (403 if new else 401)
            if new:
                assert colon.text == "Access-Check-Result: Unauthorized"
            # 37 reads past the first JSON value.
            await admin.post(f"{AUTHN}/db/basic/users/u1")
            trailing = await admin.post(
                f"{AUTHN}/db/basic/users/u1/credentials",
                content=b'{"password":"x"} {}',
                headers={"Content-Type": "application/json"},
            )
            assert trailing.status_code == (400 if new else 200)
            if new:
                assert "FAIL_ON_TRAILING_TOKENS" in trailing.json()["error"]
            # 37's 400 messages carry no location.
            empty = await admin.post(f"{AUTHN}/db/basic/users/u1/credentials", json={"password": ""})
            assert empty.status_code == 400
            assert ("[Source:" in empty.json()["error"]) is not new
