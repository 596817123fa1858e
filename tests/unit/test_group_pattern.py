"""groupPattern validation: what Druid's LDAP role provider can parse, and the CRD schema pre-check.

ACCEPTED and REFUSED are also run through the JDK's own parser by
tests/contract/test_contract_group_pattern.py, which loads them from this file.
"""

from __future__ import annotations

import re

import pytest
from pydantic import BaseModel, Field, ValidationError

from druid_access.group_pattern import (
    ASTERISK,
    ATTRIBUTE_TYPE,
    CONTROL_CHARACTER,
    EMPTY_DN,
    EMPTY_RDN,
    EMPTY_VALUE,
    HEX_DIGITS,
    SCHEMA_PATTERN,
    STRICTER_RULES,
    SURROUNDING_SPACE,
    SYNTAX,
    InvalidGroupPattern,
    check_group_pattern,
)

ACCEPTED: list[str] = [
    "cn=analysts,ou=groups,dc=example,dc=org",
    "*,ou=groups,dc=example,dc=org",  # any group under ou=groups
    "cn=admins,ou=groups,dc=example,dc=org,*",  # Druid supports the trailing form too
    "cn=admins,*",
    "*, ou=groups,dc=example,dc=org",  # Druid cuts "*," only; LdapName skips the space
    "cn=admins ,*",
    "CN=Admins,DC=Corp",
    "CN=Domain Users,CN=Users,DC=corp,DC=example,DC=com",
    "dc=org",
    "cn = analysts , ou = groups",  # spaces around '=' and ','
    "cn=analysts;ou=groups",  # ';' separates RDNs too
    "cn=a+uid=b,dc=x",  # multi-valued RDN
    "uid=j.doe + cn=John Doe,ou=people,dc=x",
    "cn=a\\,b,dc=x",
    "cn=a\\2Cb,dc=x",
    "cn=a\\2cb,dc=x",
    "cn=a\\+b\\;c\\\\d\\<e\\>f\\=g",
    'cn=say \\"hi\\"',
    "cn=\\#hash",
    "cn=\\ leading space",
    "cn=trailing\\20",
    "cn=\\c3\\a9quipe,dc=x",  # UTF-8 in hex pairs
    "cn=équipe,dc=x",
    "cn=#04024869",  # BER-encoded value
    'cn="quoted, value",dc=x',
    'cn="a+b;c\\"d"',
    "cn=star\\2A",  # a literal '*', escaped
    "cn=star\\*",
    "2.5.4.3=analysts,dc=x",  # numeric OID as attribute type
    "x-custom-attr=a",
    "cn=a=b",  # '=' needs no escape in a value
    'cn=a"b',  # LdapName takes an inner quote literally
    "cn=(admins|ops)",  # looks like a regex, is a legal (literal) value
    "cn=a\u00a0b",
]

# (pattern, rule, a fragment of the problem). SYNTAX: Druid's LdapName refuses it too; any other rule is
# stricter than LdapName (see druid_access.group_pattern and the contract test's reasons).
REFUSED: list[tuple[str, str, str]] = [
    ("analysts", SYNTAX, "no '='"),
    (".*", SYNTAX, "no '='"),
    ("^cn=admins$", SYNTAX, "expected an attribute type"),
    ("*", SYNTAX, "wildcard only"),
    ("*,*", SYNTAX, "wildcard only"),
    ("*,cn=x,*", SYNTAX, "only once"),
    ("cn=admins,.*", SYNTAX, "expected '=' after attribute type '.'"),
    ("=x", SYNTAX, "expected an attribute type"),
    ("cn", SYNTAX, "no '='"),
    ("cn=a\\", SYNTAX, "lone '\\'"),
    ("cn=a,,dc=x", SYNTAX, "at character 6"),
    (",cn=a", SYNTAX, "expected an attribute type"),
    ("cn=a+,dc=x", SYNTAX, "expected an attribute type"),
    ("cn=x, ", SURROUNDING_SPACE, "space"),
    ('cn=""', SYNTAX, "empty"),
    ("cn=#0", SYNTAX, "hex pairs"),
    ("cn=#zz", SYNTAX, "hex pairs"),
    ("cn=#04x", SYNTAX, "hex pairs"),
    ("cn=\\4", SYNTAX, "two hex digits"),
    ("cn=\\zz", SYNTAX, "two hex digits"),
    ("cn=\\41\\4g", SYNTAX, "character 7"),
    ("cn=\\é", SYNTAX, "two hex digits"),
    ('cn="unterminated', SYNTAX, "no closing quote"),
    ('cn="a\\"', SYNTAX, "no closing quote"),
    ('cn="a"b', SYNTAX, "unexpected 'b'"),
    ("", EMPTY_DN, "empty"),
    ("*,", EMPTY_DN, "no DN"),
    (",*", EMPTY_DN, "no DN"),
    (" cn=x", SURROUNDING_SPACE, "space"),
    ("cn=x ", SURROUNDING_SPACE, "space"),
    ("cn=x\\ ", SURROUNDING_SPACE, "\\20"),
    ("cn=a\nb", CONTROL_CHARACTER, "U+000A"),
    ("cn=a\tb", CONTROL_CHARACTER, "U+0009"),
    ("cn=a\x85", CONTROL_CHARACTER, "U+0085"),
    ("cn=x,", EMPTY_RDN, "ends with ','"),
    ("cn=x;", EMPTY_RDN, "ends with ';'"),
    ("cn=x+", EMPTY_RDN, "ends with '+'"),
    ("cn=", EMPTY_VALUE, "empty"),
    ("cn=,dc=x", EMPTY_VALUE, "empty"),
    ('cn=" "', EMPTY_VALUE, "blank"),
    ("cn=#", EMPTY_VALUE, "empty"),
    ("cn=#\uff21\uff21", HEX_DIGITS, "non-ASCII"),
    ("cn=\\\u0664\u0661", HEX_DIGITS, "non-ASCII"),
    ("cn=*", ASTERISK, "not a wildcard"),
    ("cn=admin*,ou=groups", ASTERISK, "\\2A"),
    ("cn=admins,ou=groups,dc=example,dc=org*", ASTERISK, "not a wildcard"),
    ('cn="a*"', ASTERISK, "not a wildcard"),
    ("common name=x", ATTRIBUTE_TYPE, "not an LDAP attribute type"),
    ("OID.2.5.4.3=x", ATTRIBUTE_TYPE, "not an LDAP attribute type"),
    ("1=x", ATTRIBUTE_TYPE, "not an LDAP attribute type"),
    ("é=x", ATTRIBUTE_TYPE, "not an LDAP attribute type"),
]


@pytest.mark.parametrize("pattern", ACCEPTED)
def test_accepted(pattern: str) -> None:
    check_group_pattern(pattern)


@pytest.mark.parametrize(("pattern", "rule", "fragment"), REFUSED)
def test_refused(pattern: str, rule: str, fragment: str) -> None:
    with pytest.raises(InvalidGroupPattern) as caught:
        check_group_pattern(pattern)
    error = caught.value
    assert error.rule == rule
    assert fragment in error.problem
    assert isinstance(error, ValueError)
    message = str(error)
    # What is wrong, and what a group pattern is.
    assert message.startswith(f"groupPattern {pattern!r} is not a valid LDAP group pattern: {error.problem};")
    assert "a group pattern is an LDAP distinguished name (DN) such as cn=analysts" in message
    assert "'*,' (any group under that DN)" in message


def test_rules_are_named() -> None:
    assert {rule for _, rule, _ in REFUSED} == STRICTER_RULES | {SYNTAX}
    assert SYNTAX not in STRICTER_RULES


def test_message_example() -> None:
    with pytest.raises(
        InvalidGroupPattern, match=r"^groupPattern 'analysts' is not a valid LDAP group pattern"
    ):
        check_group_pattern("analysts")


class _Mapping(BaseModel):
    group_pattern: str = Field(pattern=SCHEMA_PATTERN)


def _schema_allows(pattern: str) -> bool:
    try:
        _Mapping(group_pattern=pattern)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("pattern", ACCEPTED)
def test_schema_pattern_never_refuses_an_accepted_pattern(pattern: str) -> None:
    assert _schema_allows(pattern)  # pydantic's default engine (rust regex)
    assert re.search(SCHEMA_PATTERN, pattern)  # and Python's


@pytest.mark.parametrize(
    "pattern",
    ["", "analysts", ".*", "*", "*,", "=x", " cn=x", "cn=x ", "cn=a\nb", "cn=a\rb", "cn=\x00", "cn=a\x9f"],
)
def test_schema_pattern_refuses_obvious_non_dns(pattern: str) -> None:
    assert not _schema_allows(pattern)
    with pytest.raises(InvalidGroupPattern):
        check_group_pattern(pattern)


def test_schema_pattern_is_only_a_pre_check() -> None:
    assert _schema_allows("cn=a,,dc=x")
    with pytest.raises(InvalidGroupPattern):
        check_group_pattern("cn=a,,dc=x")


def _obvious_non_dn(pattern: str) -> bool:
    """What SCHEMA_PATTERN is meant to refuse: no '=', '=' first, a surrounding space, a control character."""
    return (
        "=" not in pattern
        or pattern.startswith("=")
        or pattern != pattern.strip(" ")
        or re.search(r"[\x00-\x1f\x7f-\x9f]", pattern) is not None
    )


@pytest.mark.parametrize("pattern", ACCEPTED + [pattern for pattern, _, _ in REFUSED])
def test_schema_pattern_refuses_exactly_the_obvious_non_dns(pattern: str) -> None:
    assert _schema_allows(pattern) == (not _obvious_non_dn(pattern))
