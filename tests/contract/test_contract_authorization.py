"""Contract: the authorization store (users, roles, permissions, group mappings) and its shapes."""

from __future__ import annotations

from typing import Any

import pytest
from contract_support import (
    KNOWN_TYPES,
    Target,
    assert_error,
    assert_json,
    assert_ok_empty,
    authz,
    full,
    ra,
    seg,
    sorted_names,
)

from druid_access.testing.fake_coordinator import smile_decode

pytestmark = pytest.mark.contract


async def get_json(target: Target, path: str) -> Any:
    response = await target.request("GET", path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


# ------------------------------------------------------------------------------------------ bootstrap


async def test_bootstrapped_superuser_roles(target: Target) -> None:
    assert {"admin", "druid_system"} <= set(await get_json(target, authz("/users")))
    assert {"admin", "druid_system"} <= set(await get_json(target, authz("/roles")))
    for name in ("admin", "druid_system"):
        assert_json(await target.request("GET", authz(f"/users/{name}")), {"name": name, "roles": [name]})
        expected = [full(".*", t, a) for t in KNOWN_TYPES for a in ("READ", "WRITE")]
        assert_json(await target.request("GET", authz(f"/roles/{name}/permissions")), expected)


# ----------------------------------------------------------------------------------------------- users


async def test_authorizer_user_lifecycle(target: Target) -> None:
    user = target.unique("u")
    assert_ok_empty(await target.request("POST", authz(f"/users/{user}")))
    assert_error(await target.request("POST", authz(f"/users/{user}")), f"User [{user}] already exists.")
    assert_json(await target.request("GET", authz(f"/users/{user}")), {"name": user, "roles": []})
    assert user in await get_json(target, authz("/users"))
    assert_ok_empty(await target.request("DELETE", authz(f"/users/{user}")))
    assert user not in await get_json(target, authz("/users"))
    for method, query in (
        ("DELETE", ""),
        ("GET", ""),
        ("GET", "?full"),
        ("GET", "?full&simplifyPermissions"),
    ):
        response = await target.request(method, authz(f"/users/{user}{query}"))
        assert_error(response, f"User [{user}] does not exist.")


async def test_role_assignment_check_order_and_non_idempotence(target: Target) -> None:
    role, user = target.unique("r"), target.unique("u")
    ghost_role, ghost_user = target.unique("nope"), target.unique("ghost")
    assert_ok_empty(await target.request("POST", authz(f"/roles/{role}")))
    assert_ok_empty(await target.request("POST", authz(f"/users/{user}")))
    for method in ("POST", "DELETE"):
        # The role is checked before the user: with both missing, the role is named.
        response = await target.request(method, authz(f"/users/{ghost_user}/roles/{ghost_role}"))
        assert_error(response, f"Role [{ghost_role}] does not exist.")
        response = await target.request(method, authz(f"/users/{ghost_user}/roles/{role}"))
        assert_error(response, f"User [{ghost_user}] does not exist.")
        response = await target.request(method, authz(f"/users/{user}/roles/{ghost_role}"))
        assert_error(response, f"Role [{ghost_role}] does not exist.")
    assert_ok_empty(await target.request("POST", authz(f"/users/{user}/roles/{role}")))
    response = await target.request("POST", authz(f"/users/{user}/roles/{role}"))
    assert_error(response, f"User [{user}] already has role [{role}].")
    assert_json(await target.request("GET", authz(f"/users/{user}")), {"name": user, "roles": [role]})
    assert_ok_empty(await target.request("DELETE", authz(f"/users/{user}/roles/{role}")))
    response = await target.request("DELETE", authz(f"/users/{user}/roles/{role}"))
    assert_error(response, f"User [{user}] does not have role [{role}].")
    assert_json(await target.request("GET", authz(f"/users/{user}")), {"name": user, "roles": []})


async def test_user_get_flag_shapes(target: Target) -> None:
    r1, r2, user = target.unique("r1"), target.unique("r2"), target.unique("u")
    await target.make_role(r1, [ra("wiki", "DATASOURCE", "read"), ra("security", "CONFIG", "Write")])
    await target.make_role(r2, [])
    await target.make_user(user, None, [r1, r2])
    plain = await get_json(target, authz(f"/users/{user}"))
    assert plain["name"] == user
    assert sorted(plain["roles"]) == sorted([r1, r2])
    # simplifyPermissions alone is ignored: the plain shape.
    simplified_alone = await get_json(target, authz(f"/users/{user}?simplifyPermissions"))
    assert sorted(simplified_alone["roles"]) == sorted([r1, r2])
    full_roles = {
        r1: {
            "name": r1,
            "permissions": [full("wiki", "DATASOURCE", "READ"), full("security", "CONFIG", "WRITE")],
        },
        r2: {"name": r2, "permissions": []},
    }
    # Flags are presence-based: full=false and full= mean full too.
    for query in ("full", "full=true", "full=false", "full="):
        body = await get_json(target, authz(f"/users/{user}?{query}"))
        assert set(body) == {"name", "roles"}
        assert {r["name"]: r for r in body["roles"]} == full_roles, query
    simple_roles = {
        r1: {
            "name": r1,
            "users": None,
            "permissions": [ra("wiki", "DATASOURCE", "READ"), ra("security", "CONFIG", "WRITE")],
        },
        r2: {"name": r2, "users": None, "permissions": []},
    }
    for query in ("full&simplifyPermissions", "simplifyPermissions=false&full=false"):
        body = await get_json(target, authz(f"/users/{user}?{query}"))
        assert {r["name"]: r for r in body["roles"]} == simple_roles, query


# ----------------------------------------------------------------------------------------------- roles


async def test_role_lifecycle(target: Target) -> None:
    role = target.unique("r")
    assert_ok_empty(await target.request("POST", authz(f"/roles/{role}")))
    assert_error(await target.request("POST", authz(f"/roles/{role}")), f"Role [{role}] already exists.")
    assert role in await get_json(target, authz("/roles"))
    assert_json(await target.request("GET", authz(f"/roles/{role}")), {"name": role, "permissions": []})
    assert_json(await target.request("GET", authz(f"/roles/{role}/permissions")), [])
    assert_ok_empty(await target.request("DELETE", authz(f"/roles/{role}")))
    assert role not in await get_json(target, authz("/roles"))
    assert_error(await target.request("DELETE", authz(f"/roles/{role}")), f"Role [{role}] does not exist.")
    for query in ("", "?full", "?simplifyPermissions", "?full&simplifyPermissions"):
        assert_error(
            await target.request("GET", authz(f"/roles/{role}{query}")), f"Role [{role}] does not exist."
        )
    for method, body in (("GET", None), ("POST", [ra("(", "X", "READ")])):  # checked before the regex
        response = await target.request(method, authz(f"/roles/{role}/permissions"), json=body)
        assert_error(response, f"Role [{role}] does not exist.")


async def test_role_get_flag_shapes(target: Target) -> None:
    role, u1, u2, g1 = target.unique("r"), target.unique("u1"), target.unique("u2"), target.unique("g")
    await target.make_role(role, [ra("wiki.*", "DATASOURCE", "READ"), ra("security", "CONFIG", "write")])
    await target.make_user(u1, None, [role])
    await target.make_user(u2, None, [role])
    response = await target.request(
        "POST", authz(f"/groupMappings/{g1}"), json={"groupPattern": "cn=x", "roles": [role]}
    )
    assert_ok_empty(response)
    full_perms = [full("wiki.*", "DATASOURCE", "READ"), full("security", "CONFIG", "WRITE")]
    simple_perms = [ra("wiki.*", "DATASOURCE", "READ"), ra("security", "CONFIG", "WRITE")]
    assert_json(
        await target.request("GET", authz(f"/roles/{role}")), {"name": role, "permissions": full_perms}
    )
    for query in ("full", "full=false"):
        body = await get_json(target, authz(f"/roles/{role}?{query}"))
        assert list(body) == ["name", "users", "groups", "permissions"]
        assert sorted(body["users"]) == sorted([u1, u2])
        assert body["groups"] == [g1]
        assert body["permissions"] == full_perms
    assert_json(
        await target.request("GET", authz(f"/roles/{role}?simplifyPermissions")),
        {"name": role, "users": None, "permissions": simple_perms},
    )
    both = await get_json(target, authz(f"/roles/{role}?full&simplifyPermissions"))
    assert list(both) == ["name", "users", "permissions"]  # no "groups" in this variant
    assert sorted(both["users"]) == sorted([u1, u2])
    assert both["permissions"] == simple_perms


async def test_role_deletion_strips_users_and_group_mappings(target: Target) -> None:
    doomed, kept, user, mapping = (
        target.unique("doomed"),
        target.unique("kept"),
        target.unique("u"),
        target.unique("g"),
    )
    await target.make_role(doomed)
    await target.make_role(kept)
    await target.make_user(user, None, [doomed, kept])
    body = {"groupPattern": "x", "roles": [doomed, kept]}
    assert_ok_empty(await target.request("POST", authz(f"/groupMappings/{mapping}"), json=body))
    assert_ok_empty(await target.request("DELETE", authz(f"/roles/{doomed}")))  # not refused while assigned
    assert_json(await target.request("GET", authz(f"/users/{user}")), {"name": user, "roles": [kept]})
    assert (await get_json(target, authz(f"/groupMappings/{mapping}")))["roles"] == [kept]
    # Re-created, the role is not assigned again.
    assert_ok_empty(await target.request("POST", authz(f"/roles/{doomed}")))
    assert (await get_json(target, authz(f"/roles/{doomed}?full")))["users"] == []
    assert (await get_json(target, authz(f"/roles/{doomed}?full")))["groups"] == []


# ----------------------------------------------------------------------------------------- permissions


async def test_permissions_replace_the_whole_list(target: Target) -> None:
    role = target.unique("r")
    await target.make_role(role, [ra("a", "DATASOURCE", "READ"), ra("b", "DATASOURCE", "READ")])
    new = [
        ra("c", "datasource", "wRiTe"),
        ra("d.*", "MY_CUSTOM_TYPE", "read"),
        ra("c", "datasource", "WRITE"),
    ]
    assert_ok_empty(await target.request("POST", authz(f"/roles/{role}/permissions"), json=new))
    # Actions are parsed case-insensitively and stored upper-case; types are free strings; duplicates kept.
    assert_json(
        await target.request("GET", authz(f"/roles/{role}/permissions")),
        [
            full("c", "datasource", "WRITE"),
            full("d.*", "MY_CUSTOM_TYPE", "READ"),
            full("c", "datasource", "WRITE"),
        ],
    )


async def test_empty_list_empty_body_and_null_clear(target: Target) -> None:
    role = target.unique("r")
    for body in (b"[]", b"", b"null", b"  "):
        await target.make_role(
            f"{role}-{len(body)}{body[:1].decode() or 'e'}", [ra("a", "DATASOURCE", "READ")]
        )
    for body in (b"[]", b"", b"null", b"  "):
        name = f"{role}-{len(body)}{body[:1].decode() or 'e'}"
        response = await target.request(
            "POST",
            authz(f"/roles/{seg(name)}/permissions"),
            content=body,
            headers={"Content-Type": "application/json"},
        )
        assert_ok_empty(response)
        assert_json(await target.request("GET", authz(f"/roles/{seg(name)}/permissions")), [])


async def test_invalid_regex_is_refused_and_changes_nothing(target: Target) -> None:
    role = target.unique("r")
    await target.make_role(role, [ra("a", "DATASOURCE", "READ")])
    bad = [ra("ok", "DATASOURCE", "READ"), ra("wiki(", "DATASOURCE", "READ")]
    response = await target.request("POST", authz(f"/roles/{role}/permissions"), json=bad)
    assert_error(response, "Invalid permission, resource name regex[wiki(] does not compile.")
    assert_json(
        await target.request("GET", authz(f"/roles/{role}/permissions")), [full("a", "DATASOURCE", "READ")]
    )
    # Elements are checked in order: a bad regex before a null element wins.
    response = await target.request(
        "POST", authz(f"/roles/{role}/permissions"), json=[ra("[", "D", "READ"), None]
    )
    assert_error(response, "Invalid permission, resource name regex[[] does not compile.")


# Java regex syntax (java.util.regex, Java 17) decides what compiles, not Python's re.
# fmt: off
REGEXES_ACCEPTED = [
    '', 'security', 'wiki.*', 'x{1,2}', ']', 'a]', '(?i)x', 'x(?i)y', '[a-]', '[[a]]', '[a&&b]',
    '[a-z&&[^aeiou]]', '\\h', '\\R', '\\z', '\\Z', '\\Qa(b\\E', '\\Q', '\\p{L}+', '\\pL', '\\p{Lu}',
    '\\p{IsAlphabetic}', '\\p{IsLatin}', '\\p{InGreek}', '\\p{javaLowerCase}', '\\p{Alpha}', '\\P{Digit}',
    '(?<n>x)\\k<n>', '\\x{41}', '\\0101', '\\u0041', '(?x) a # c', '(?x)a{1, 2}', 'a{2}{3}', '{2}abc', '^*',
    '\\e', '\\cA', '\\G', '\\X', '[]a]', 'a||b', '(?>a)', '\\8', '(a)\\2', '\\A', '\\b{g}', 'x{2}+', 'x?+',
    '(?<=a{1,3})b', '(?<!x)y', '(?U)a', '(?idmsux-idmsux)a', '\\N{LATIN SMALL LETTER A}', '[\\Q]\\E]',
    'x{2147483647}', 'a{0}', '[a-zA-Z0-9._-]+',
]
# fmt: on
# fmt: off
REGEXES_REFUSED = [
    '(?#comment)', 'wiki(', 'a{', '{x}', 'x{,2}', '\\', '*a', 'x**', 'a+++', '\\N', '[^]', '(?', '(?P<n>x)',
    '\\k<n>', 'a{2,1}', 'a{1', 'x{2147483648}', '(', ')', '[z-a]', '\\p{Foo}', '\\pX', '\\p{Greek}',
    '\\p{IsFoo}', '\\q', '\\y', '\\x4', '\\u12', '\\c', '\\0', '(?z)a', '(?<1a>x)', '(?<n>x)(?<n>y)', '[', '[]',
    '[\\b]', '\\N{NOPE}',
]
# fmt: on


async def test_java_regex_syntax_decides(target: Target) -> None:
    role = target.unique("rx")
    await target.make_role(role)
    wrong: list[str] = []
    for pattern, accepted in [(p, True) for p in REGEXES_ACCEPTED] + [(p, False) for p in REGEXES_REFUSED]:
        response = await target.request(
            "POST", authz(f"/roles/{role}/permissions"), json=[ra(pattern, "D", "READ")]
        )
        if accepted and response.status_code != 200:
            wrong.append(f"{pattern!r} refused: {response.text}")
        elif not accepted and response.json() != {
            "error": f"Invalid permission, resource name regex[{pattern}] does not compile."
        }:
            wrong.append(f"{pattern!r} accepted or other error: {response.status_code} {response.text}")
    assert wrong == []


async def test_null_action_and_type_and_numeric_name_are_stored(target: Target) -> None:
    role = target.unique("r")
    await target.make_role(role)
    body = [
        {"resource": {"name": 5, "type": None}},
        {"resource": {"name": "x", "type": "D", "extra": 1}, "action": "READ", "more": 2},
    ]
    assert_ok_empty(await target.request("POST", authz(f"/roles/{role}/permissions"), json=body))
    assert_json(
        await target.request("GET", authz(f"/roles/{role}?simplifyPermissions")),
        {
            "name": role,
            "users": None,
            "permissions": [{"resource": {"name": "5", "type": None}, "action": None}, ra("x", "D", "READ")],
        },
    )


# ------------------------------------------------------------------------------------------ group mappings


async def test_group_mapping_lifecycle_and_recreate(target: Target) -> None:
    role, mapping, missing = target.unique("r"), target.unique("g"), target.unique("missing")
    await target.make_role(role, [ra("a", "DATASOURCE", "READ")])
    body = {"name": "ignored", "groupPattern": "CN=admins,.*", "roles": [role, missing]}
    assert_ok_empty(await target.request("POST", authz(f"/groupMappings/{mapping}"), json=body))
    assert mapping in await get_json(target, authz("/groupMappings"))
    plain = await get_json(target, authz(f"/groupMappings/{mapping}"))
    assert list(plain) == ["name", "groupPattern", "roles"]
    assert plain["name"] == mapping  # the body's name is ignored
    assert plain["groupPattern"] == "CN=admins,.*"
    assert sorted(plain["roles"]) == sorted([role, missing])  # stored without an existence check
    for query in ("full", "full=false"):
        # The full variant has no groupPattern, and skips roles that do not exist.
        assert_json(
            await target.request("GET", authz(f"/groupMappings/{mapping}?{query}")),
            {"name": mapping, "roles": [{"name": role, "permissions": [full("a", "DATASOURCE", "READ")]}]},
        )
    # No update: a re-POST is refused and changes nothing.
    response = await target.request(
        "POST", authz(f"/groupMappings/{mapping}"), json={"groupPattern": "other", "roles": []}
    )
    assert_error(response, f"Group mapping [{mapping}] already exists.")
    assert (await get_json(target, authz(f"/groupMappings/{mapping}")))["groupPattern"] == "CN=admins,.*"
    assert_ok_empty(await target.request("DELETE", authz(f"/groupMappings/{mapping}")))
    assert mapping not in await get_json(target, authz("/groupMappings"))
    for method, query in (("DELETE", ""), ("GET", ""), ("GET", "?full")):
        response = await target.request(method, authz(f"/groupMappings/{mapping}{query}"))
        assert_error(response, f"Group mapping [{mapping}] does not exist.")
    # Re-create = DELETE + POST: the new pattern sticks.
    body = {"groupPattern": "CN=ops,.*", "roles": [role]}
    assert_ok_empty(await target.request("POST", authz(f"/groupMappings/{mapping}"), json=body))
    assert_json(
        await target.request("GET", authz(f"/groupMappings/{mapping}")),
        {"name": mapping, "groupPattern": "CN=ops,.*", "roles": [role]},
    )


async def test_group_mapping_body_variants(target: Target) -> None:
    empty, scalars = target.unique("empty"), target.unique("scalars")
    assert_ok_empty(await target.request("POST", authz(f"/groupMappings/{empty}"), json={}))
    assert_json(
        await target.request("GET", authz(f"/groupMappings/{empty}")),
        {"name": empty, "groupPattern": None, "roles": []},
    )
    body = {"groupPattern": 5, "roles": [1, None, "a", "a", True], "zz": {"ignored": []}}
    assert_ok_empty(await target.request("POST", authz(f"/groupMappings/{scalars}"), json=body))
    stored = await get_json(target, authz(f"/groupMappings/{scalars}"))
    assert stored["groupPattern"] == "5"
    assert sorted_names(stored["roles"]) == [None, "1", "a", "true"]  # a set; null kept


async def test_group_mapping_role_assignment(target: Target) -> None:
    role, mapping = target.unique("r"), target.unique("g")
    ghost_role, ghost_mapping = target.unique("nope"), target.unique("ghost")
    assert_ok_empty(await target.request("POST", authz(f"/roles/{role}")))
    assert_ok_empty(
        await target.request("POST", authz(f"/groupMappings/{mapping}"), json={"groupPattern": "x"})
    )
    for method in ("POST", "DELETE"):
        response = await target.request(method, authz(f"/groupMappings/{ghost_mapping}/roles/{ghost_role}"))
        assert_error(response, f"Role [{ghost_role}] does not exist.")
        response = await target.request(method, authz(f"/groupMappings/{ghost_mapping}/roles/{role}"))
        assert_error(response, f"Group mapping [{ghost_mapping}] does not exist.")
    assert_ok_empty(await target.request("POST", authz(f"/groupMappings/{mapping}/roles/{role}")))
    response = await target.request("POST", authz(f"/groupMappings/{mapping}/roles/{role}"))
    assert_error(response, f"Group mapping [{mapping}] already has role [{role}].")
    assert (await get_json(target, authz(f"/groupMappings/{mapping}")))["roles"] == [role]
    assert_ok_empty(await target.request("DELETE", authz(f"/groupMappings/{mapping}/roles/{role}")))
    response = await target.request("DELETE", authz(f"/groupMappings/{mapping}/roles/{role}"))
    assert_error(response, f"Group mapping [{mapping}] does not have role [{role}].")


# ------------------------------------------------------------------------------------- cache-sync maps


async def test_cached_serialized_maps_are_smile(target: Target) -> None:
    role, user, mapping = target.unique("r"), target.unique("u"), target.unique("g")
    await target.make_role(role, [ra("wiki", "DATASOURCE", "READ")])
    await target.make_user(user, None, [role])
    body = {"groupPattern": "p", "roles": [role]}
    assert_ok_empty(await target.request("POST", authz(f"/groupMappings/{mapping}"), json=body))
    users = await target.request("GET", authz("/cachedSerializedUserMap"))
    groups = await target.request("GET", authz("/cachedSerializedGroupMappingMap"))
    for response in (users, groups):
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-jackson-smile"
        assert response.content[:4] == b":)\n\x05"  # shared property names, raw binary
    user_map = smile_decode(users.content)
    group_map = smile_decode(groups.content)
    assert isinstance(user_map, dict)
    assert isinstance(group_map, dict)
    assert set(user_map) == {"userMap", "roleMap"}
    assert set(group_map) == {"groupMappingMap", "roleMap"}
    assert user_map["userMap"][user] == {"name": user, "roles": [role]}
    assert user_map["roleMap"][role] == {"name": role, "permissions": [full("wiki", "DATASOURCE", "READ")]}
    assert group_map["groupMappingMap"][mapping] == {"name": mapping, "groupPattern": "p", "roles": [role]}
    assert group_map["roleMap"][role] == user_map["roleMap"][role]
    refused = await target.request(
        "GET", authz("/cachedSerializedUserMap"), headers={"Accept": "application/json"}
    )
    assert refused.status_code == 406
    # Unchanged stores are served as the same bytes (the client reuses its parse of them).
    assert (await target.request("GET", authz("/cachedSerializedUserMap"))).content == users.content
    assert (await target.request("GET", authz("/cachedSerializedGroupMappingMap"))).content == groups.content
