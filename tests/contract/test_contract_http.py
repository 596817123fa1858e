"""Contract: authentication (401), authorization (403), HTTP plumbing and request bodies."""

from __future__ import annotations

import base64
import re

import httpx
import pytest
from contract_support import (
    AUTHN,
    AUTHZ,
    INTERNAL_PASSWORD,
    JSON,
    SECURITY_RW,
    Target,
    assert_empty,
    assert_error,
    assert_json,
    assert_ok_empty,
    authn,
    authz,
    jetty_title,
    ra,
    seg,
)

from druid_access.testing.fake_coordinator import smile_decode

pytestmark = pytest.mark.contract
SMILE = "application/x-jackson-smile"


def basic(raw: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


# ------------------------------------------------------------------------------------ liveness, status


async def test_health_is_unsecured(target: Target) -> None:
    for auth in (None, ("admin", "wrong"), ("nobody", "x")):
        assert_json(await target.request("GET", "/status/health", auth=auth), True)
    assert_json(await target.request("GET", "/status/health", headers={"Authorization": "Basic !!!"}), True)


async def test_load_status_and_refresh_all(target: Target) -> None:
    assert_json(await target.request("GET", f"{AUTHN}/loadStatus"), {"basic": True})
    assert_json(await target.request("GET", f"{AUTHZ}/loadStatus"), {"basic": True})
    assert_ok_empty(await target.request("GET", f"{AUTHN}/refreshAll"))
    assert_ok_empty(await target.request("GET", f"{AUTHZ}/refreshAll"))


async def test_status_shape_and_state_read(target: Target) -> None:
    response = await target.request("GET", "/status")
    assert response.status_code == 200
    assert response.headers["content-type"] == JSON
    body = response.json()
    assert set(body) == {"version", "modules", "memory"}
    assert body["version"] == target.version
    assert {m["artifact"] for m in body["modules"]} >= {"druid-basic-security"}
    assert set(body["memory"]) == {"maxMemory", "totalMemory", "freeMemory", "usedMemory", "directMemory"}
    # /status needs STATE READ; CONFIG/security is not enough (the JSON ForbiddenException mapper).
    role, user = target.unique("sec"), target.unique("op")
    await target.make_role(role, SECURITY_RW)
    await target.make_user(user, "op-pw", [role])
    assert_json(
        await target.request("GET", "/status", auth=(user, "op-pw")),
        {"Access-Check-Result": access_denied(target)},
        status=403,
    )
    await target.make_role(f"{role}-state", [ra("STATE", "STATE", "READ")])
    assert_ok_empty(await target.request("POST", authz(f"/users/{user}/roles/{role}-state")))
    response = await target.request("GET", "/status", auth=(user, "op-pw"))
    assert response.status_code == 200
    assert response.json()["version"] == target.version


# --------------------------------------------------------------------------------------- 401 and 403


async def test_no_authorization_header_is_401_json(target: Target) -> None:
    for headers in ({}, {"Authorization": "Bearer abc"}, {"Authorization": "Basic"}):
        response = await target.request("GET", f"{AUTHZ}/loadStatus", auth=None, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Basic"
        assert response.headers["content-type"] == "application/json;charset=utf-8"
        body = response.json()
        host = body.pop("host")
        assert isinstance(host, str)
        assert host
        assert body == {"error": "Unauthorized request", "errorMessage": None, "errorClass": None}


async def test_wrong_password_is_401_user_authentication_failed(target: Target) -> None:
    response = await target.request("GET", f"{AUTHZ}/loadStatus", auth=("admin", "wrong"))
    assert jetty_title(response, 401) == "User authentication failed."
    assert "www-authenticate" not in response.headers
    assert "username[" not in response.text


def access_denied(target: Target) -> str:
    """The Access-Check-Result of a 403: 27 prints the Access object, 37 a fixed "Unauthorized"."""
    return "Unauthorized" if target.major >= 37 else "Allowed:false, Message:"


@pytest.mark.parametrize(
    ("header", "split_on_first_colon"),
    [
        pytest.param({"Authorization": "Basic !!!not-base64"}, False, id="not-base64"),
        pytest.param(basic(b"admin"), False, id="no-colon"),
        pytest.param(basic(b"admin:pw:extra"), True, id="two-colons"),
        pytest.param(basic(b"admin:"), True, id="empty-password"),
        pytest.param(basic(b":"), False, id="colon-only"),
        pytest.param({"Authorization": "Basic  YWRtaW46eA=="}, False, id="two-spaces"),
    ],
)
async def test_malformed_basic_credentials_are_401_unauthorized(
    target: Target, header: dict[str, str], split_on_first_colon: bool
) -> None:
    """27 rejects anything that is not exactly ``user:password`` after ``split(":")`` as "Unauthorized".
    37 splits on the first colon only: ``admin:pw:extra`` and ``admin:`` are the admin with a wrong
    password ("User authentication failed.")."""
    response = await target.request("GET", f"{AUTHZ}/loadStatus", auth=None, headers=header)
    failed = split_on_first_colon and target.major >= 37
    assert jetty_title(response, 401) == ("User authentication failed." if failed else "Unauthorized")


async def test_unknown_user_and_user_without_password_are_401_unauthorized(target: Target) -> None:
    response = await target.request("GET", f"{AUTHZ}/loadStatus", auth=(target.unique("nobody"), "x"))
    assert jetty_title(response, 401) == "Unauthorized"
    user = target.unique("nopw")
    await target.make_user(user)
    response = await target.request("GET", f"{AUTHZ}/loadStatus", auth=(user, "x"))
    assert jetty_title(response, 401) == "Unauthorized"


async def test_basic_scheme_is_case_sensitive_and_padding_optional(target: Target) -> None:
    token = base64.b64encode(f"druid_system:{INTERNAL_PASSWORD}".encode()).decode()
    path = f"{target.url}{AUTHZ}/loadStatus"
    # A fresh connection per request: on a kept-alive connection Jetty 9.4's header-field cache would
    # hand "basic <token>" the earlier "Basic <token>" field (matched case-insensitively).
    for header, status in (
        (f"Basic {token}", 200),
        (f"Basic {token.rstrip('=')}", 200),
        (f"basic {token}", 401),
        (f"BASIC {token}", 401),
    ):
        async with httpx.AsyncClient(timeout=30) as fresh:
            response = await fresh.get(path, headers={"Authorization": header})
        assert response.status_code == status, header
        if status == 401:
            assert response.headers["content-type"] == "application/json;charset=utf-8"
    # Trailing colons vanish in 27's String.split(":"); 37 keeps them in the password.
    auth = ("druid_system", f"{INTERNAL_PASSWORD}::")
    response = await target.request("GET", f"{AUTHZ}/loadStatus", auth=auth)
    if target.major >= 37:
        assert jetty_title(response, 401) == "User authentication failed."
    else:
        assert response.status_code == 200


async def test_authenticated_without_config_security_is_403_text(target: Target) -> None:
    role, user = target.unique("reader"), target.unique("alice")
    await target.make_role(role, [ra("wiki.*", "DATASOURCE", "READ")])
    await target.make_user(user, "alice-pw", [role])
    for method in ("GET", "POST", "DELETE"):
        response = await target.request(method, authz(f"/roles/{role}"), auth=(user, "alice-pw"))
        assert response.status_code == 403
        assert response.headers["content-type"] == "text/plain"
        assert response.text == f"Access-Check-Result: {access_denied(target)}"
    # A user known only to the authenticator is authenticated too: 403, not 401.
    only_authn = target.unique("bob")
    assert_ok_empty(await target.request("POST", authn(f"/users/{only_authn}")))
    response = await target.request("POST", authn(f"/users/{only_authn}/credentials"), json={"password": "b"})
    assert_ok_empty(response)
    assert (await target.request("GET", f"{AUTHZ}/loadStatus", auth=(only_authn, "b"))).status_code == 403


async def test_read_for_get_write_for_the_rest(target: Target) -> None:
    ro, wo = target.unique("ro"), target.unique("wo")
    await target.make_role(ro, [SECURITY_RW[0]])
    await target.make_role(wo, [SECURITY_RW[1]])
    reader, writer = target.unique("reader"), target.unique("writer")
    await target.make_user(reader, "r-pw", [ro])
    await target.make_user(writer, "w-pw", [wo])
    new = target.unique("x")
    assert (await target.request("GET", authz("/roles"), auth=(reader, "r-pw"))).status_code == 200
    assert (await target.request("GET", f"{AUTHZ}/refreshAll", auth=(reader, "r-pw"))).status_code == 200
    assert (await target.request("POST", authz(f"/roles/{new}"), auth=(reader, "r-pw"))).status_code == 403
    assert (
        await target.request("GET", authz("/roles"), auth=(writer, "w-pw"))
    ).status_code == 403  # no implied READ
    assert_ok_empty(await target.request("POST", authz(f"/roles/{new}"), auth=(writer, "w-pw")))
    assert_ok_empty(await target.request("DELETE", authz(f"/roles/{new}"), auth=(writer, "w-pw")))


async def test_permission_names_are_full_match_java_regexes(target: Target) -> None:
    partial, pattern = target.unique("partial"), target.unique("pattern")
    await target.make_role(partial, [ra("secur", "CONFIG", "READ")])
    await target.make_role(pattern, [ra("secu\\p{Alpha}{2}ty", "CONFIG", "READ")])
    p1, p2 = target.unique("p1"), target.unique("p2")
    await target.make_user(p1, "pw1", [partial])
    await target.make_user(p2, "pw2", [pattern])
    assert (await target.request("GET", authz("/roles"), auth=(p1, "pw1"))).status_code == 403
    assert (await target.request("GET", authz("/roles"), auth=(p2, "pw2"))).status_code == 200


# ------------------------------------------------------------------------- authenticator/authorizer names


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/users"),
        ("GET", "/users/admin"),
        ("POST", "/users/new"),
        ("DELETE", "/users/admin"),
        ("GET", "/cachedSerializedUserMap"),
    ],
)
async def test_unknown_authenticator(target: Target, method: str, path: str) -> None:
    response = await target.request(method, authn(path, "nope"))
    assert_handler_error(response, "Basic authenticator with name [nope] does not exist.")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/users", None),
        ("GET", "/users/admin?full", None),
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
        ("POST", "/roles/admin/permissions", [None]),  # the name is checked before the NPE
        ("GET", "/roles/admin/permissions", None),
        ("GET", "/cachedSerializedUserMap", None),
        ("GET", "/cachedSerializedGroupMappingMap", None),
    ],
)
async def test_unknown_authorizer(target: Target, method: str, path: str, body: object) -> None:
    response = await target.request(method, authz(path, "nope"), json=body)
    assert_handler_error(response, "Basic authorizer with name [nope] does not exist.")


def assert_handler_error(response: httpx.Response, message: str) -> None:
    """400 ``{"error": message}``, Smile-encoded on the ``cachedSerialized*`` (Smile) endpoints."""
    if response.headers.get("content-type") == SMILE:
        assert response.status_code == 400
        assert smile_decode(response.content) == {"error": message}
    else:
        assert_error(response, message)


async def test_unknown_authenticator_is_checked_after_the_body_and_before_the_npe(target: Target) -> None:
    path = authn("/users/x/credentials", "nope")
    response = await target.request("POST", path, json={"password": ""})
    assert response.status_code == 400
    assert "Cannot assign empty password." in response.json()["error"]
    for body in ({"password": "x"}, {"password": "x", "iterations": 0}, None):
        headers = {"Content-Type": JSON}
        content = b"null" if body is None else None
        response = await target.request("POST", path, json=body, content=content, headers=headers)
        assert_error(response, "Basic authenticator with name [nope] does not exist.")


async def test_group_mapping_null_body_npe_comes_before_the_authorizer_check(target: Target) -> None:
    response = await target.request(
        "POST", authz("/groupMappings/g", "nope"), content=b"null", headers={"Content-Type": JSON}
    )
    assert jetty_title(response, 500).startswith("java.lang.NullPointerException")


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        (".x", "cannot start with '.'."),
        ("a\tb", "contains illegal whitespace characters.  Only space is allowed."),
        ("a\x01b", "contains illegal UTF8 character [#1] at position [1]"),
    ],
)
async def test_invalid_authenticator_and_authorizer_names_are_500_html(
    target: Target, name: str, problem: str
) -> None:
    for path, field in (
        (authz("/users", seg(name)), "authorizerName"),
        (authn("/users", seg(name)), "authenticatorName"),
    ):
        title = jetty_title(await target.request("GET", path), 500)
        shown = name.replace("\x01", "?")  # Jetty's page replaces control characters
        expected = f"org.apache.druid.error.DruidException: Invalid value for field [{field}]: Value [{shown}] {problem}"
        assert title == expected


async def test_space_in_authorizer_name_is_valid_but_unknown(target: Target) -> None:
    response = await target.request("GET", authz("/users", "my%20authz"))
    assert_error(response, "Basic authorizer with name [my authz] does not exist.")


# ---------------------------------------------------------------------------------------- names in paths


@pytest.mark.parametrize(
    "suffix",
    [
        pytest.param("@example.com", id="at"),
        pytest.param(" with space", id="space"),
        pytest.param(".dots.in.name", id="dots"),
        pytest.param("-ünïcödé-日本-😀", id="unicode"),
        pytest.param("+plus", id="plus"),
        pytest.param(";semi", id="semicolon"),
        pytest.param("%41pct", id="percent"),
        pytest.param("/slash", id="slash"),
        pytest.param(":colon", id="colon"),
    ],
)
async def test_names_round_trip_percent_encoded(target: Target, suffix: str) -> None:
    name = target.unique("n") + suffix
    await target.make_role(name, SECURITY_RW)
    await target.make_user(name, "pw", [name])
    response = await target.request(
        "POST", authz(f"/groupMappings/{seg(name)}"), json={"groupPattern": ".*", "roles": [name]}
    )
    assert_ok_empty(response)
    assert name in (await target.request("GET", authz("/roles"))).json()
    assert name in (await target.request("GET", authn("/users"))).json()
    assert name in (await target.request("GET", authz("/groupMappings"))).json()
    assert_json(await target.request("GET", authz(f"/users/{seg(name)}")), {"name": name, "roles": [name]})
    assert (await target.request("GET", authz(f"/groupMappings/{seg(name)}"))).json()["name"] == name
    assert (await target.request("GET", authn(f"/users/{seg(name)}"))).json()["name"] == name
    # Basic auth with that user name (a ':' in the name splits wrong: 401).
    status = (await target.request("GET", authz("/roles"), auth=(name, "pw"))).status_code
    assert status == (401 if ":" in name else 200)
    assert_ok_empty(await target.request("DELETE", authz(f"/groupMappings/{seg(name)}")))
    assert_ok_empty(await target.request("DELETE", authz(f"/roles/{seg(name)}")))
    assert_ok_empty(await target.request("DELETE", authz(f"/users/{seg(name)}")))
    assert_ok_empty(await target.request("DELETE", authn(f"/users/{seg(name)}")))


async def test_literal_at_sign_and_encoded_dots(target: Target) -> None:
    name = target.unique("a") + "@b"
    assert_ok_empty(await target.request("POST", authz(f"/users/{name}")))
    assert_json(await target.request("GET", authz(f"/users/{seg(name)}")), {"name": name, "roles": []})
    # Both decode %2E%2E into the name: Jetty 9.4 (27), and Druid 37 on Jetty 12 too (no "Ambiguous URI").
    assert_error(await target.request("GET", authz("/roles/%2E%2E")), "Role [..] does not exist.")
    assert_error(await target.request("GET", authz("/roles/%2E")), "Role [.] does not exist.")


async def test_matrix_parameters_are_dropped_from_names(target: Target) -> None:
    role = target.unique("m")
    assert_ok_empty(await target.request("POST", authz(f"/roles/{role};version=2")))
    assert_json(await target.request("GET", authz(f"/roles/{role}")), {"name": role, "permissions": []})
    assert_json(await target.request("GET", authz(f"/roles/{role};x")), {"name": role, "permissions": []})
    assert_error(await target.request("GET", authz(f"/roles/{role}%3Bx")), f"Role [{role};x] does not exist.")


# ------------------------------------------------------------------------------ routing and media types


async def test_unknown_path_and_wrong_method(target: Target) -> None:
    assert (await target.request("GET", f"{AUTHZ}/nothing", auth=None)).status_code == 401  # filters first
    assert_empty(await target.request("GET", f"{AUTHZ}/nothing"), 404)
    assert_empty(await target.request("PUT", authz("/roles/x")), 405)


async def test_content_type_and_accept(target: Target) -> None:
    role = target.unique("ct")
    text = {"Content-Type": "text/plain"}
    assert_empty(await target.request("POST", authz(f"/roles/{role}"), content=b"x", headers=text), 415)
    assert_empty(await target.request("GET", authz("/roles"), headers=text), 415)
    accept_smile = {"Accept": "application/x-jackson-smile"}
    assert_empty(await target.request("GET", authz("/roles"), headers=accept_smile), 406)
    assert_empty(await target.request("GET", authz("/roles"), headers={"Accept": "text/html"}), 406)
    for accept in ("text/html, application/*;q=0.9", "application/json;q=0", "*/*"):
        assert (await target.request("GET", authz("/roles"), headers={"Accept": accept})).status_code == 200
    # A JSON body-less POST needs no Content-Type; "application/json; charset=utf-8" is JSON.
    assert_ok_empty(await target.request("POST", authz(f"/roles/{role}")))
    response = await target.request(
        "POST",
        authz(f"/roles/{role}/permissions"),
        content=b"[]",
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert_ok_empty(response)


async def test_entity_endpoints_without_content_type_are_415_after_the_403_check(target: Target) -> None:
    role, user, mapping = target.unique("r"), target.unique("u"), target.unique("g")
    await target.make_role(role)
    await target.make_user(user, "pw")
    for path in (
        authn(f"/users/{user}/credentials"),
        authz(f"/roles/{role}/permissions"),
        authz(f"/groupMappings/{mapping}"),
        authz(f"/groupMappings/{mapping}", "nope"),  # before the authorizer check, too
    ):
        assert_empty(await target.request("POST", path), 415)
        assert (await target.request("POST", path, auth=(user, "pw"))).status_code == 403


async def test_listen_endpoints_are_404_and_consume_json(target: Target) -> None:
    for path in (
        f"{AUTHN}/listen/basic",
        f"{AUTHZ}/listen/basic",
        f"{AUTHZ}/listen/users/basic",
        f"{AUTHZ}/listen/groupMappings/basic",
    ):
        for headers in ({}, {"Content-Type": JSON}):
            response = await target.request("POST", path, content=b"{}", headers=headers)
            assert response.status_code == 404
            assert response.content == b""
            assert response.headers["content-type"] == JSON
        smile = {"Content-Type": "application/x-jackson-smile"}
        assert_empty(await target.request("POST", path, content=b"", headers=smile), 415)
        assert (await target.request("POST", path, auth=None)).status_code == 401


# ------------------------------------------------------------------------------------- request bodies

_ABBREVIATIONS = {
    "$CU": "org.apache.druid.security.basic.authentication.entity.BasicAuthenticatorCredentialUpdate",
    "$GM": "org.apache.druid.security.basic.authorization.entity.BasicAuthorizerGroupMapping",
    "$RA": "org.apache.druid.server.security.ResourceAction",
    "$RS": "org.apache.druid.server.security.Resource",
    "$AC": "org.apache.druid.server.security.Action",
}


_SOURCES = {
    27: "[Source: (org.eclipse.jetty.server.HttpInputOverHTTP); line: \\1, column: \\2]",
    37: "[Source: REDACTED (`StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION` disabled); line: \\1, column: \\2]",
}


def _expand(text: str, major: int = 27) -> str:
    for short, long in _ABBREVIATIONS.items():
        text = text.replace(short, long)
    return re.sub(r"@(\d+):(\d+)", _SOURCES[major], text)


# (endpoint, body, status, text): 400 -> the whole {"error"} message; 500 -> the Jetty page's title.
# Recorded from the real 27.0.0 Coordinator (Jackson 2.10.5): where a syntax error sits decides 400 vs 500.
# fmt: off
BODIES = [
    ('credentials', b'{"password":""}', 400, 'Cannot construct instance of `$CU`, problem: Cannot assign empty password.\n at @1:15'),
    ('credentials', b'{}', 400, 'Cannot construct instance of `$CU`, problem: Cannot assign null password.\n at @1:2'),
    ('credentials', b'{"password":null}', 400, 'Cannot construct instance of `$CU`, problem: Cannot assign null password.\n at @1:17'),
    ('credentials', b'[]', 400, 'Cannot deserialize instance of `$CU` out of START_ARRAY token\n at @1:1'),
    ('credentials', b'"x"', 400, "Cannot construct instance of `$CU` (although at least one Creator exists): no String-argument constructor/factory method to deserialize from String value ('x')\n at @1:1"),
    ('credentials', b'5', 400, 'Cannot construct instance of `$CU` (although at least one Creator exists): no int/Int-argument constructor/factory method to deserialize from Number value (5)\n at @1:1'),
    ('credentials', b'{"password":{"x":1}}', 400, 'Cannot deserialize instance of `java.lang.String` out of START_OBJECT token\n at @1:13 (through reference chain: $CU["password"])'),
    ('credentials', b'{"password":"pw","iterations":"many"}', 400, 'Cannot deserialize value of type `java.lang.Integer` from String "many": not a valid Integer value\n at @1:31 (through reference chain: $CU["iterations"])'),
    ('credentials', b'{"password":"pw","iterations":true}', 400, 'Cannot deserialize instance of `java.lang.Integer` out of VALUE_TRUE token\n at @1:31 (through reference chain: $CU["iterations"])'),
    ('credentials', b'{"password":"x","iterations":2147483648}', 400, 'Numeric value (2147483648) out of range of int (-2147483648 - 2147483647)\n at @1:40 (through reference chain: $CU["iterations"])'),
    ('credentials', b'{"password":"x","iterations":"99999999999"}', 400, 'Cannot deserialize value of type `java.lang.Integer` from String "99999999999": Overflow: numeric value (99999999999) out of range of Integer (-2147483648 - 2147483647)\n at @1:30 (through reference chain: $CU["iterations"])'),
    ('credentials', b'{"password":"","iterations":5,"x":1}', 400, 'Cannot construct instance of `$CU`, problem: Cannot assign empty password.\n at @1:31'),
    ('credentials', b'{"password":"x","iterations":5,"password":"y"}', 400, 'No fallback setter/field defined for creator property \'password\' (through reference chain: $CU["password"])'),
    ('credentials', b'\n\n{"password":\n""}', 400, 'Cannot construct instance of `$CU`, problem: Cannot assign empty password.\n at @4:3'),
    ('credentials', b'{"password": "x', 400, 'Unexpected end-of-input in VALUE_STRING\n at @1:16 (through reference chain: $CU["password"])'),
    ('credentials', b'{"password":"a\\qb"}', 400, 'Unrecognized character escape \'q\' (code 113)\n at @1:17 (through reference chain: $CU["password"])'),
    ('credentials', b'{"password":"a\nb"}', 400, 'Illegal unquoted character ((CTRL-CHAR, code 10)): has to be escaped using backslash to be included in string value\n at @1:16 (through reference chain: $CU["password"])'),
    ('credentials', b'{', 500, 'javax.servlet.ServletException: com.fasterxml.jackson.core.io.JsonEOFException: Unexpected end-of-input: expected close marker for Object (start marker at @1:1)\n at @1:2'),
    ('credentials', b'{not json', 500, "javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException: Unexpected character ('n' (code 110)): was expecting double-quote to start field name\n at @1:3"),
    ('credentials', b'{"password":"x"', 500, 'javax.servlet.ServletException: com.fasterxml.jackson.core.io.JsonEOFException: Unexpected end-of-input: expected close marker for Object (start marker at @1:1)\n at @1:16'),
    ('credentials', b'{"password"', 500, 'javax.servlet.ServletException: com.fasterxml.jackson.core.io.JsonEOFException: Unexpected end-of-input within/between Object entries\n at @1:12'),
    ('credentials', b'{"pass', 500, 'javax.servlet.ServletException: com.fasterxml.jackson.core.io.JsonEOFException: Unexpected end-of-input in field name\n at @1:7'),
    ('credentials', b'{"password":tru}', 500, "javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException: Unrecognized token 'tru': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')\n at @1:17"),
    ('credentials', b'{"password":01}', 500, 'javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException: Invalid numeric value: Leading zeroes not allowed\n at @1:14'),
    ('credentials', b'{"password":-}', 500, "javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException: Unexpected character ('}' (code 125)) in numeric value: expected digit (0-9) to follow minus sign, for valid numeric value\n at @1:15"),
    ('credentials', b'{"password":"x",}', 500, "javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException: Unexpected character ('}' (code 125)): was expecting double-quote to start field name\n at @1:18"),
    ('credentials', b'{"password" "x"}', 500, 'javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException: Unexpected character (\'"\' (code 34)): was expecting a colon to separate field name and value\n at @1:14'),
    ('credentials', b'{"password":"x" "iterations":5}', 500, 'javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException: Unexpected character (\'"\' (code 34)): was expecting comma to separate Object entries\n at @1:18'),
    ('credentials', b'{"password":"x","zz":[}', 500, "javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException: Unexpected close marker '}': expected ']' (for Array starting at @1:22)\n at @1:24"),
    ('credentials', b'{"password":-Infinity}', 500, "javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException: Non-standard token '-Infinity': enable JsonParser.Feature.ALLOW_NON_NUMERIC_NUMBERS to allow\n at @1:22"),
    ('credentials', b'5x', 500, "javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException: Unexpected character ('x' (code 120)): Expected space separating root-level values\n at @1:3"),
    ('credentials', b']', 500, "javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException: Unexpected close marker ']': expected '}' (for root starting at @1:0)\n at @1:2"),
    ('credentials', b'', 500, 'java.lang.NullPointerException'),
    ('credentials', b'null', 500, 'java.lang.NullPointerException'),
    ('credentials', b'{"password":"x","iterations":0}', 500, 'java.lang.IllegalArgumentException: invalid iterationCount value'),
    ('credentials', b'{"password":"x","iterations":-2}', 500, 'java.lang.IllegalArgumentException: invalid iterationCount value'),
    ('credentials', b'{"password":"xyz"} trailing garbage is never read', 200, ''),
    ('permissions', b'[{', 400, 'Unexpected end-of-input: expected close marker for Object (start marker at @1:2)\n at @1:3 (through reference chain: java.util.ArrayList[0])'),
    ('permissions', b'[', 500, 'javax.servlet.ServletException: com.fasterxml.jackson.core.io.JsonEOFException: Unexpected end-of-input: expected close marker for Array (start marker at @1:1)\n at @1:2'),
    ('permissions', b'{not json', 400, 'Cannot deserialize instance of `java.util.ArrayList<$RA>` out of START_OBJECT token\n at @1:1'),
    ('permissions', b'"x"', 400, 'Cannot deserialize instance of `java.util.ArrayList<$RA>` out of VALUE_STRING token\n at @1:1'),
    ('permissions', b'""', 400, "Cannot construct instance of `java.util.ArrayList` (although at least one Creator exists): no String-argument constructor/factory method to deserialize from String value ('')\n at @1:1"),
    ('permissions', b'["x"]', 400, "Cannot construct instance of `$RA` (although at least one Creator exists): no String-argument constructor/factory method to deserialize from String value ('x')\n at @1:2 (through reference chain: java.util.ArrayList[0])"),
    ('permissions', b'[1]', 400, 'Cannot construct instance of `$RA` (although at least one Creator exists): no int/Int-argument constructor/factory method to deserialize from Number value (1)\n at @1:2 (through reference chain: java.util.ArrayList[0])'),
    ('permissions', b'[12345678901]', 400, 'Cannot construct instance of `$RA` (although at least one Creator exists): no long/Long-argument constructor/factory method to deserialize from Number value (12345678901)\n at @1:2 (through reference chain: java.util.ArrayList[0])'),
    ('permissions', b'[2.5]', 400, 'Cannot construct instance of `$RA` (although at least one Creator exists): no double/Double-argument constructor/factory method to deserialize from Number value (2.5)\n at @1:2 (through reference chain: java.util.ArrayList[0])'),
    ('permissions', b'[true]', 400, 'Cannot construct instance of `$RA` (although at least one Creator exists): no boolean/Boolean-argument constructor/factory method to deserialize from boolean value (true)\n at @1:2 (through reference chain: java.util.ArrayList[0])'),
    ('permissions', b'[[]]', 400, 'Cannot deserialize instance of `$RA` out of START_ARRAY token\n at @1:2 (through reference chain: java.util.ArrayList[0])'),
    ('permissions', b'[{"resource":"x","action":"READ"}]', 400, 'Cannot construct instance of `$RS` (although at least one Creator exists): no String-argument constructor/factory method to deserialize from String value (\'x\')\n at @1:14 (through reference chain: java.util.ArrayList[0]->$RA["resource"])'),
    ('permissions', b'[{"resource":{"name":["x"],"type":"X"},"action":"READ"}]', 400, 'Cannot deserialize instance of `java.lang.String` out of START_ARRAY token\n at @1:22 (through reference chain: java.util.ArrayList[0]->$RA["resource"]->$RS["name"])'),
    ('permissions', b'[{"resource":{"name":"x","type":"DATASOURCE"},"action":"execute"}]', 400, 'Cannot construct instance of `$AC`, problem: No enum constant $AC.EXECUTE\n at @1:56 (through reference chain: java.util.ArrayList[0]->$RA["action"])'),
    ('permissions', b'[{"resource":{"name":"x","type":"D"},"action":5}]', 400, 'Cannot construct instance of `$AC`, problem: No enum constant $AC.5\n at @1:47 (through reference chain: java.util.ArrayList[0]->$RA["action"])'),
    ('permissions', b'[{"resource":{"name":"x","type":"D"},"action":tru}]', 400, "Unrecognized token 'tru': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')\n at @1:51 (through reference chain: java.util.ArrayList[0])"),
    ('permissions', b'[{"resource":{"name":"x","type":"D"},"action":"READ"}', 500, 'javax.servlet.ServletException: com.fasterxml.jackson.core.io.JsonEOFException: Unexpected end-of-input: expected close marker for Array (start marker at @1:1)\n at @1:54'),
    ('permissions', b'[{"resource":{"name":"x","type":"D"},"action":"READ"},]', 500, "javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException: Unexpected character (']' (code 93)): expected a value\n at @1:56"),
    ('permissions', b'[{"resource":{"name":"x","type":"D","name":"y"},"action":"READ"}]', 400, 'No fallback setter/field defined for creator property \'name\' (through reference chain: java.util.ArrayList[0]->$RA["resource"]->$RS["name"])'),
    ('permissions', b'[null]', 500, 'java.lang.NullPointerException'),
    ('permissions', b'[{"action":"READ"}]', 500, 'java.lang.NullPointerException'),
    ('permissions', b'[{"resource":{"type":"X"},"action":"READ"}]', 500, 'java.lang.NullPointerException'),
    ('permissions', b'[{"action":["READ"],"resource":{"name":"x","type":"D"}}]', 500, 'java.lang.NullPointerException'),
    ('groupMapping', b'["x"]', 400, 'Cannot deserialize instance of `$GM` out of START_ARRAY token\n at @1:1'),
    ('groupMapping', b'{"groupPattern":"x","roles":"r1"}', 400, 'Cannot deserialize instance of `java.util.HashSet<java.lang.Object>` out of VALUE_STRING token\n at @1:29 (through reference chain: $GM["roles"])'),
    ('groupMapping', b'{"roles":[["x"]]}', 400, 'Cannot deserialize instance of `java.lang.String` out of START_ARRAY token\n at @1:11 (through reference chain: $GM["roles"]->java.util.HashSet[0])'),
    ('groupMapping', b'{"roles":["a",', 400, 'Unexpected end-of-input within/between Array entries\n at @1:15 (through reference chain: $GM["roles"]->java.util.HashSet[1])'),
    ('groupMapping', b'{"roles":["a" "b"]}', 400, 'Unexpected character (\'"\' (code 34)): was expecting comma to separate Array entries\n at @1:16 (through reference chain: $GM["roles"]->java.util.HashSet[1])'),
    ('groupMapping', b'{"groupPattern": ["x"]}', 400, 'Cannot deserialize instance of `java.lang.String` out of START_ARRAY token\n at @1:18 (through reference chain: $GM["groupPattern"])'),
    ('groupMapping', b'{"name":"n","groupPattern":"x","roles":["a"],"name":"m"}', 400, 'No fallback setter/field defined for creator property \'name\' (through reference chain: $GM["name"])'),
    ('groupMapping', b'{', 500, 'javax.servlet.ServletException: com.fasterxml.jackson.core.io.JsonEOFException: Unexpected end-of-input: expected close marker for Object (start marker at @1:1)\n at @1:2'),
    ('groupMapping', b'', 500, 'java.lang.NullPointerException'),
    ('groupMapping', b'null', 500, 'java.lang.NullPointerException'),
]

# Where the real 37.0.0 Coordinator (Jackson 2.20) answers a row of BODIES differently: row -> (status, text).
# 400 messages carry no location and no reference chain (but "No fallback setter" names its class), many
# are reworded; 500 pages say REDACTED for the source and "Unexpected character/close marker" columns are
# one less; trailing content (row 36) is read; an array as "action" (row 59) is a 400, not an NPE.
BODIES_37 = {
    0: (400, 'Cannot construct instance of `$CU`, problem: Cannot assign empty password.'),
    1: (400, 'Cannot construct instance of `$CU`, problem: Cannot assign null password.'),
    2: (400, 'Cannot construct instance of `$CU`, problem: Cannot assign null password.'),
    3: (400, 'Cannot deserialize value of type `$CU` from Array value (token `JsonToken.START_ARRAY`)'),
    4: (400, "Cannot construct instance of `$CU` (although at least one Creator exists): no String-argument constructor/factory method to deserialize from String value ('x')"),
    5: (400, 'Cannot construct instance of `$CU` (although at least one Creator exists): no int/Int-argument constructor/factory method to deserialize from Number value (5)'),
    6: (400, 'Cannot deserialize value of type `java.lang.String` from Object value (token `JsonToken.START_OBJECT`)'),
    7: (400, 'Cannot deserialize value of type `java.lang.Integer` from String "many": not a valid `java.lang.Integer` value'),
    8: (400, 'Cannot deserialize value of type `java.lang.Integer` from Boolean value (token `JsonToken.VALUE_TRUE`)'),
    9: (400, 'Numeric value (2147483648) out of range of int (-2147483648 - 2147483647)'),
    10: (400, 'Cannot deserialize value of type `java.lang.Integer` from String "99999999999": Overflow: numeric value (99999999999) out of range of `java.lang.Integer` (-2147483648 -2147483647)'),
    11: (400, 'Cannot construct instance of `$CU`, problem: Cannot assign empty password.'),
    12: (400, 'No fallback setter/field defined for creator property \'password\' (of `$CU`) (through reference chain: $CU["password"])'),
    13: (400, 'Cannot construct instance of `$CU`, problem: Cannot assign empty password.'),
    14: (400, 'Unexpected end-of-input in VALUE_STRING'),
    15: (400, "Unrecognized character escape 'q' (code 113)"),
    16: (400, 'Illegal unquoted character ((CTRL-CHAR, code 10)): has to be escaped using backslash to be included in string value'),
    17: (500, 'javax.servlet.ServletException: com.fasterxml.jackson.core.io.JsonEOFException: Unexpected end-of-input: expected close marker for Object (start marker at @1:1)\n at @1:2'),
    18: (500, "javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException: Unexpected character ('n' (code 110)): was expecting double-quote to start field name\n at @1:2"),
    19: (500, 'javax.servlet.ServletException: com.fasterxml.jackson.core.io.JsonEOFException: Unexpected end-of-input: expected close marker for Object (start marker at @1:1)\n at @1:16'),
    20: (500, 'javax.servlet.ServletException: com.fasterxml.jackson.core.io.JsonEOFException: Unexpected end-of-input within/between Object entries\n at @1:12'),
    21: (500, 'javax.servlet.ServletException: com.fasterxml.jackson.core.io.JsonEOFException: Unexpected end-of-input in field name\n at @1:7'),
    22: (500, "javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException: Unrecognized token 'tru': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')\n at @1:17"),
    23: (500, 'javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException: Invalid numeric value: Leading zeroes not allowed\n at @1:14'),
    24: (500, "javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException: Unexpected character ('}' (code 125)) in numeric value: expected digit (0-9) to follow minus sign, for valid numeric value\n at @1:14"),
    25: (500, "javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException: Unexpected character ('}' (code 125)): was expecting double-quote to start field name\n at @1:17"),
    26: (500, 'javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException: Unexpected character (\'"\' (code 34)): was expecting a colon to separate field name and value\n at @1:13'),
    27: (500, 'javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException: Unexpected character (\'"\' (code 34)): was expecting comma to separate Object entries\n at @1:17'),
    28: (500, "javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException: Unexpected close marker '}': expected ']' (for Array starting at @1:22)\n at @1:23"),
    29: (500, "javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException: Non-standard token '-Infinity': enable `JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS` to allow\n at @1:22"),
    30: (500, "javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException: Unexpected character ('x' (code 120)): Expected space separating root-level values\n at @1:2"),
    31: (500, "javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException: Unexpected close marker ']': no open Array to close\n at @1:1"),
    36: (500, "javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException: Unrecognized token 'trailing': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')\n at @1:29"),
    37: (400, 'Unexpected end-of-input: expected close marker for Object (start marker at @1:2)'),
    38: (500, 'javax.servlet.ServletException: com.fasterxml.jackson.core.io.JsonEOFException: Unexpected end-of-input: expected close marker for Array (start marker at @1:1)\n at @1:2'),
    39: (400, 'Cannot deserialize value of type `java.util.ArrayList<$RA>` from Object value (token `JsonToken.START_OBJECT`)'),
    40: (400, 'Cannot deserialize value of type `java.util.ArrayList<$RA>` from String value (token `JsonToken.VALUE_STRING`)'),
    41: (400, 'Cannot deserialize value of type `java.util.ArrayList<$RA>` from String value (token `JsonToken.VALUE_STRING`)'),
    42: (400, "Cannot construct instance of `$RA` (although at least one Creator exists): no String-argument constructor/factory method to deserialize from String value ('x')"),
    43: (400, 'Cannot construct instance of `$RA` (although at least one Creator exists): no int/Int-argument constructor/factory method to deserialize from Number value (1)'),
    44: (400, 'Cannot construct instance of `$RA` (although at least one Creator exists): no long/Long-argument constructor/factory method to deserialize from Number value (12345678901)'),
    45: (400, 'Cannot construct instance of `$RA` (although at least one Creator exists): no double/Double-argument constructor/factory method to deserialize from Number value (2.5)'),
    46: (400, 'Cannot construct instance of `$RA` (although at least one Creator exists): no boolean/Boolean-argument constructor/factory method to deserialize from boolean value (true)'),
    47: (400, 'Cannot deserialize value of type `$RA` from Array value (token `JsonToken.START_ARRAY`)'),
    48: (400, "Cannot construct instance of `$RS` (although at least one Creator exists): no String-argument constructor/factory method to deserialize from String value ('x')"),
    49: (400, 'Cannot deserialize value of type `java.lang.String` from Array value (token `JsonToken.START_ARRAY`)'),
    50: (400, 'Cannot construct instance of `$AC`, problem: No enum constant $AC.EXECUTE'),
    51: (400, 'Cannot construct instance of `$AC`, problem: No enum constant $AC.5'),
    52: (400, "Unrecognized token 'tru': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')"),
    53: (500, 'javax.servlet.ServletException: com.fasterxml.jackson.core.io.JsonEOFException: Unexpected end-of-input: expected close marker for Array (start marker at @1:1)\n at @1:54'),
    54: (500, "javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException: Unexpected character (']' (code 93)): expected a value\n at @1:55"),
    55: (400, 'No fallback setter/field defined for creator property \'name\' (of `$RS`) (through reference chain: java.util.ArrayList[0]->$RA["resource"]->$RS["name"])'),
    59: (400, 'Input mismatch reading Enum `$AC`: properties-based `@JsonCreator` ([method $AC#fromString(java.lang.String)]) expects String Value, got Array value (`JsonToken.START_ARRAY`)'),
    60: (400, 'Cannot deserialize value of type `$GM` from Array value (token `JsonToken.START_ARRAY`)'),
    61: (400, "Cannot construct instance of `java.util.HashSet` (although at least one Creator exists): no String-argument constructor/factory method to deserialize from String value ('r1')"),
    62: (400, 'Cannot deserialize value of type `java.lang.String` from Array value (token `JsonToken.START_ARRAY`)'),
    63: (400, 'Unexpected end-of-input within/between Array entries'),
    64: (400, 'Unexpected character (\'"\' (code 34)): was expecting comma to separate Array entries'),
    65: (400, 'Cannot deserialize value of type `java.lang.String` from Array value (token `JsonToken.START_ARRAY`)'),
    66: (400, 'No fallback setter/field defined for creator property \'name\' (of `$GM`) (through reference chain: $GM["name"])'),
    67: (500, 'javax.servlet.ServletException: com.fasterxml.jackson.core.io.JsonEOFException: Unexpected end-of-input: expected close marker for Object (start marker at @1:1)\n at @1:2'),
}
# fmt: on


@pytest.mark.parametrize(
    ("endpoint", "body", "status", "text"),
    BODIES,
    ids=[f"{i:02d}-{row[0]}" for i, row in enumerate(BODIES)],
)
async def test_request_bodies(target: Target, endpoint: str, body: bytes, status: int, text: str) -> None:
    if target.major >= 37:
        row = next(i for i, candidate in enumerate(BODIES) if candidate[:2] == (endpoint, body))
        status, text = BODIES_37.get(row, (status, text))
    await _check_body(target, endpoint, body, status, text)


async def _check_body(target: Target, endpoint: str, body: bytes, status: int, text: str) -> None:
    user, role, mapping = target.unique("u"), target.unique("r"), target.unique("g")
    assert_ok_empty(await target.request("POST", authn(f"/users/{user}")))
    await target.make_role(role)
    path = {
        "credentials": authn(f"/users/{user}/credentials"),
        "permissions": authz(f"/roles/{role}/permissions"),
        "groupMapping": authz(f"/groupMappings/{mapping}"),
    }[endpoint]
    response = await target.request("POST", path, content=body, headers={"Content-Type": JSON})
    expected = _expand(text, target.major)
    if status == 400:
        assert_error(response, expected)
    elif status == 500:
        title = jetty_title(response, 500)
        # A JIT-compiled JVM may drop NPE detail messages ("fast throw"): compare the class only.
        assert (
            title.startswith(expected) if expected == "java.lang.NullPointerException" else title == expected
        )
    else:
        assert_ok_empty(response)


async def test_credentials_iterations(target: Target) -> None:
    user = target.unique("it")
    assert_ok_empty(await target.request("POST", authn(f"/users/{user}")))
    for iterations, stored in (
        (5, 5),
        ("7", 7),
        (2.9, 2),
        (" 8 ", 8),
        ("", 2000),
        ("null", 2000),
        (None, 2000),
        (-1, 2000),
    ):
        body = {"password": "pw", "iterations": iterations}
        assert_ok_empty(await target.request("POST", authn(f"/users/{user}/credentials"), json=body))
        record = (await target.request("GET", authn(f"/users/{user}"))).json()["credentials"]
        assert record["iterations"] == stored, iterations


async def test_scalar_passwords_and_unknown_properties_are_accepted(target: Target) -> None:
    user = target.unique("sc")
    assert_ok_empty(await target.request("POST", authn(f"/users/{user}")))
    for body in ({"password": 5}, {"password": True}, {"password": "pw", "extra": [1, {"a": None}]}):
        assert_ok_empty(await target.request("POST", authn(f"/users/{user}/credentials"), json=body))


async def test_action_given_as_a_list_is_stored_as_null(target: Target) -> None:
    """Jackson 2.10 (Druid 27) leaves the parser inside the list: the action is null and the rest is
    skipped. Jackson 2.20 (Druid 37) rejects it (400) and stores nothing."""
    role = target.unique("odd")
    await target.make_role(role)
    body = b'[{"resource":{"name":"x","type":"D"},"action":["READ"]},{"resource":{"name":"y","type":"D"}}]'
    response = await target.request(
        "POST", authz(f"/roles/{role}/permissions"), content=body, headers={"Content-Type": JSON}
    )
    if target.major >= 37:
        creator = "[method $AC#fromString(java.lang.String)]"
        assert_error(
            response,
            _expand(
                f"Input mismatch reading Enum `$AC`: properties-based `@JsonCreator` ({creator}) "
                "expects String Value, got Array value (`JsonToken.START_ARRAY`)"
            ),
        )
        assert_json(await target.request("GET", authz(f"/roles/{role}/permissions")), [])
        return
    assert_ok_empty(response)
    assert_json(
        await target.request("GET", authz(f"/roles/{role}?simplifyPermissions")),
        {
            "name": role,
            "users": None,
            "permissions": [{"resource": {"name": "x", "type": "D"}, "action": None}],
        },
    )


# (endpoint, body, 27.0.0's answer, 37.0.0's answer); an answer is (status, text) as in BODIES.
_TRAILING_FAIL = "not allowed as per `DeserializationFeature.FAIL_ON_TRAILING_TOKENS`"
_UNRECOGNIZED = "was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')"
_PARSE = "javax.servlet.ServletException: com.fasterxml.jackson.core.JsonParseException"
# fmt: off
TRAILING = [
    ('credentials', b'{"password":"x"}   \n', (200, ''), (200, '')),
    ('credentials', b'{"password":"x"} {}', (200, ''), (400, f'Trailing token (of type START_OBJECT) found after value (bound as `$CU`): {_TRAILING_FAIL}')),
    ('credentials', b'{"password":"x"} "s"', (200, ''), (400, f'Trailing token (of type VALUE_STRING) found after value (bound as `$CU`): {_TRAILING_FAIL}')),
    ('credentials', b'{"password":"x"}}', (200, ''), (500, f"{_PARSE}: Unexpected close marker '}}': no open Object to close\n at @1:17")),
    ('credentials', b'null x', (500, 'java.lang.NullPointerException'), (500, f"{_PARSE}: Unrecognized token 'x': {_UNRECOGNIZED}\n at @1:7")),
    ('permissions', b'[] []', (200, ''), (400, f'Trailing token (of type START_ARRAY) found after value (bound as `java.util.List`): {_TRAILING_FAIL}')),
    ('permissions', b'[]x', (200, ''), (500, f"{_PARSE}: Unrecognized token 'x': {_UNRECOGNIZED}\n at @1:4")),
    ('groupMapping', b'{"groupPattern":"x"} x', (200, ''), (500, f"{_PARSE}: Unrecognized token 'x': {_UNRECOGNIZED}\n at @1:23")),
    ('groupMapping', b'{"groupPattern":"x","roles":5}', (400, 'Cannot deserialize instance of `java.util.HashSet<java.lang.Object>` out of VALUE_NUMBER_INT token\n at @1:29 (through reference chain: $GM["roles"])'), (400, 'Cannot deserialize value of type `java.util.HashSet<java.lang.String>` from Integer value (token `JsonToken.VALUE_NUMBER_INT`)')),
    ('permissions', b'[{"resource":{"name":"x","type":"D"},"action":{"a":1}}]', (500, 'java.lang.NullPointerException'), (400, 'Cannot deserialize value of type `$AC` from Object value (token `JsonToken.START_OBJECT`)')),
    ('permissions', b'[{"resource":{"name":"x","type":"D"},"action":"READ"},{"resource":"q","action":["READ"]}]', (400, "Cannot construct instance of `$RS` (although at least one Creator exists): no String-argument constructor/factory method to deserialize from String value ('q')\n at @1:67 (through reference chain: java.util.ArrayList[1]->$RA[\"resource\"])"), (400, "Cannot construct instance of `$RS` (although at least one Creator exists): no String-argument constructor/factory method to deserialize from String value ('q')")),
]
# fmt: on


@pytest.mark.parametrize(
    ("endpoint", "body", "answer_27", "answer_37"),
    TRAILING,
    ids=[f"{i:02d}-{row[0]}" for i, row in enumerate(TRAILING)],
)
async def test_trailing_content_and_structured_values(
    target: Target,
    endpoint: str,
    body: bytes,
    answer_27: tuple[int, str],
    answer_37: tuple[int, str],
) -> None:
    """Druid 27 never reads past the first JSON value; 37 fails on a further token (400) or a syntax
    error there (500). Also where 37's Jackson 2.20 words a mapping error differently."""
    await _check_body(target, endpoint, body, *(answer_37 if target.major >= 37 else answer_27))
