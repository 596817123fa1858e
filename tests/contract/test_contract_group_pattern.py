"""check_group_pattern against the real JDK parser Druid uses for a groupPattern.

LdapNameCheck.java (next to this file) does what Druid's LDAPRoleProvider.getRoles does with a
pattern: cut a leading "*," or else a trailing ",*", then ``new javax.naming.ldap.LdapName(...)`` and a
comparison with a group DN. It runs once, as a single-file Java program, over every case: the unit
cases, the edge cases below and a seeded batch of generated DN-like strings.

The contract: every pattern the JDK refuses, check_group_pattern refuses (a refused pattern breaks every
LDAP user's requests). Every pattern the JDK accepts, check_group_pattern accepts too, except where the
operator is intentionally stricter; those listed cases (STRICTER) and rules (STRICTER_REASONS) say why.
"""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from types import ModuleType

import pytest
from jdk import run_oracle

from druid_access.group_pattern import (
    ASTERISK,
    ATTRIBUTE_TYPE,
    CONTROL_CHARACTER,
    EMPTY_DN,
    EMPTY_RDN,
    EMPTY_VALUE,
    HEX_DIGITS,
    STRICTER_RULES,
    SURROUNDING_SPACE,
    SYNTAX,
    InvalidGroupPattern,
    check_group_pattern,
)

pytestmark = pytest.mark.contract

HERE = Path(__file__).resolve().parent
JAVA_TIMEOUT = 180  # seconds for the one JVM run: compiling the source and parsing every case

# Why each stricter rule refuses patterns that LdapName (and so Druid) would take.
STRICTER_REASONS: dict[str, str] = {
    EMPTY_DN: '"" is the empty DN, which matches no group; "*," and ",*" leave the empty DN, which '
    "matches every group, granting the roles to every LDAP user in any group",
    SURROUNDING_SPACE: "LdapName skips spaces around the DN, so the pattern means the same without them; "
    "a value's trailing space is spelled \\20",
    CONTROL_CHARACTER: "LdapName keeps raw control characters in a value; the \\XX hex escape spells the "
    "same value (and a lone surrogate cannot come through the Kubernetes API)",
    ATTRIBUTE_TYPE: "LdapName takes any run of Unicode letters, digits, '.', '-' and inner spaces as a type; "
    "a directory only names RDNs with RFC 4514 descriptors or numeric OIDs",
    EMPTY_RDN: "LdapName reads a final ',' or ';' as an empty RDN (no group DN has one) and ignores a final "
    "'+' (the pattern means the same without it)",
    EMPTY_VALUE: "LdapName takes empty values ('cn=', 'cn=#', 'cn=\" \"'); naming attributes cannot be empty",
    HEX_DIGITS: "LdapName takes any Unicode decimal digit and full-width a-f as hex digits; ASCII spells the same",
    ASTERISK: "LdapName takes '*' in a value literally, so 'cn=admin*' silently matches no group; a literal "
    "'*' is still written \\2A",
}

# Cases below that the JDK accepts and check_group_pattern refuses on purpose: pattern -> rule. The test
# fails if this list and the JDK's verdicts drift apart in either direction.
STRICTER: dict[str, str] = {
    "": EMPTY_DN,
    "*,": EMPTY_DN,
    ",*": EMPTY_DN,
    " cn=x": SURROUNDING_SPACE,
    "cn=x ": SURROUNDING_SPACE,
    "cn=x\\ ": SURROUNDING_SPACE,
    "cn=#04 ": SURROUNDING_SPACE,
    "*,cn=x ": SURROUNDING_SPACE,
    'cn="a" ': SURROUNDING_SPACE,
    "cn=a\nb": CONTROL_CHARACTER,
    "cn=a\tb": CONTROL_CHARACTER,
    "cn=a\x85": CONTROL_CHARACTER,
    "cn=a\rb": CONTROL_CHARACTER,
    "cn=a\x00": CONTROL_CHARACTER,
    "cn=\ud800": CONTROL_CHARACTER,
    "common name=x": ATTRIBUTE_TYPE,
    "OID.2.5.4.3=x": ATTRIBUTE_TYPE,
    "1=x": ATTRIBUTE_TYPE,
    "é=x": ATTRIBUTE_TYPE,
    "-=x": ATTRIBUTE_TYPE,
    "1cn=x": ATTRIBUTE_TYPE,
    "c.n=x": ATTRIBUTE_TYPE,
    "2.5.4.=x": ATTRIBUTE_TYPE,
    ".2.5=x": ATTRIBUTE_TYPE,
    "cn=x,": EMPTY_RDN,
    "cn=x;": EMPTY_RDN,
    "cn=x+": EMPTY_RDN,
    "cn=x+,*": EMPTY_RDN,
    "*,cn=x,": EMPTY_RDN,
    "cn=": EMPTY_VALUE,
    "cn=,dc=x": EMPTY_VALUE,
    'cn=" "': EMPTY_VALUE,
    "cn=#": EMPTY_VALUE,
    "cn=#\uff21\uff21": HEX_DIGITS,
    "cn=#\u0664\u0661": HEX_DIGITS,
    "cn=\\\u0664\u0661": HEX_DIGITS,
    "cn=*": ASTERISK,
    "cn=admin*,ou=groups": ASTERISK,
    "cn=admins,ou=groups,dc=example,dc=org*": ASTERISK,
    "cn=.*": ASTERISK,
    'cn="a*"': ASTERISK,
}

# More edge cases, beyond the unit cases, on which both parsers must agree.
EDGE_CASES: list[str] = [
    "cn=x, ",
    "cn=x,,",
    "*,*,cn=x",
    "*;cn=x",
    "cn=x;*",
    "cn=x,* ",
    " *,cn=x",
    "**,cn=x",
    "cn=\\",
    "cn=\\\\",
    "cn=\\41",
    "cn=\\ff",
    "cn=\\4 1",
    "cn=\\4,",
    "cn=\\g1",
    "cn=\\41\\,",
    "cn=\\c3\\a9",
    "cn=\\C3\\A9",
    'cn=""',
    'cn="',
    'cn="\\41"',
    'cn="\\4"',
    'cn="a" ,dc=x',
    'cn= "a" +sn=b',
    "cn=#04024869,dc=x",
    "cn=#0402486",
    "cn=#04-05",
    "cn=#04 x",
    "cn=a\u00a0",
    "\u00a0cn=x",
    "cn=\ufeff",
    "cn=\U0001d400",
    "cn=\\\U0001d400",
    "\U0001d400=x",
    "cn=a++sn=b",
    "cn=a+ sn=b",
    "cn=a +sn=b ,dc=x",
    "cn=a;;dc=b",
    "cn=<a>",
    "cn=a#b",
    "cn=a\\#b",
    "c-n=x",
    "2.5.4.3=x",
    "cn =x",
    "cn= x",
    "cn  =  x  ,  dc  =  y",
]


def _load_unit_cases() -> ModuleType:
    path = HERE.parent / "unit" / "test_group_pattern.py"
    spec = importlib.util.spec_from_file_location("group_pattern_unit_cases", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _generated(count: int, seed: int) -> list[str]:
    """DN-like strings built from RDNs with the pieces both parsers treat specially."""
    rng = random.Random(seed)
    types = ["cn", "CN", "dc", "ou", "uid", "2.5.4.3", "a-b", "x y", "é", "1", "1.2.", "٤", ""]
    pieces = [
        *"abZ09 .=#\"*<>é,+;\\",
        "\\,", "\\+", "\\;", "\\\\", '\\"', "\\ ", "\\2C", "\\41", "\\c3\\a9", "\\4", "\\g1", "\\é",
        "\\\u0664\u0661", "\\\uff211", "\u00a0", "\U0001d400", "\\\U0001d400", "\r", "\x00",
    ]  # fmt: skip

    def value() -> str:
        kind = rng.random()
        if kind < 0.12:
            return "#" + "".join(
                rng.choice("0123456789abcdefABCDEFgz\u0664\uff21") for _ in range(rng.randint(0, 6))
            )
        if kind < 0.25:
            body = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 4)))
            return '"' + body + rng.choice(['"', '"', '"', "", '\\"'])
        return "".join(rng.choice(pieces) for _ in range(rng.randint(1, 4)))

    def space() -> str:
        return rng.choice(["", "", "", "", " "])

    def rdn() -> str:
        avas = [
            space() + rng.choice(types) + space() + "=" + space() + value()
            for _ in range(rng.choice([1, 1, 2]))
        ]
        return "+".join(avas)

    out = []
    for _ in range(count):
        dn = rng.choice([",", ",", ";", ", "]).join(rdn() for _ in range(rng.randint(1, 3)))
        shape = rng.random()
        if shape < 0.2:
            dn = "*," + dn
        elif shape < 0.4:
            dn += ",*"
        elif shape < 0.45:
            dn += rng.choice([",", "+", ";", " ", "*"])
        out.append(dn)
    return out


def _druid_accepts(patterns: list[str]) -> list[str]:
    """Run LdapNameCheck.java once over ``patterns``: one "ACCEPT" or "REFUSE ..." line each."""
    lines = run_oracle("LdapNameCheck.java", patterns, timeout=JAVA_TIMEOUT)
    assert all(line == "ACCEPT" or line.startswith("REFUSE ") for line in lines)
    return lines


def _operator_rule(pattern: str) -> str | None:
    """None when check_group_pattern accepts ``pattern``, else the rule it refuses it by."""
    try:
        check_group_pattern(pattern)
    except InvalidGroupPattern as error:
        return error.rule
    return None


UNIT = _load_unit_cases()
UNIT_ACCEPTED: list[str] = list(UNIT.ACCEPTED)
UNIT_REFUSED: list[str] = [pattern for pattern, _, _ in UNIT.REFUSED]
LISTED: list[str] = list(dict.fromkeys([*UNIT_ACCEPTED, *UNIT_REFUSED, *STRICTER, *EDGE_CASES]))
GENERATED: list[str] = [p for p in _generated(4000, seed=20240527) if p not in set(LISTED)]


@pytest.fixture(scope="module")
def verdicts() -> dict[str, str]:
    patterns = LISTED + GENERATED
    return dict(zip(patterns, _druid_accepts(patterns), strict=True))


def test_corpus_size() -> None:
    assert len(LISTED) >= 40
    assert len(GENERATED) >= 3000


def test_reasons_cover_the_stricter_rules() -> None:
    assert set(STRICTER_REASONS) == STRICTER_RULES
    assert set(STRICTER.values()) == STRICTER_RULES


def test_listed_cases_agree_with_druid(verdicts: dict[str, str]) -> None:
    problems = []
    for pattern in LISTED:
        druid = verdicts[pattern]
        rule = _operator_rule(pattern)
        if pattern in STRICTER:
            if druid != "ACCEPT" or rule != STRICTER[pattern]:
                problems.append(
                    f"{pattern!r}: listed as stricter ({STRICTER[pattern]}) but Druid: {druid}, rule {rule}"
                )
        elif druid == "ACCEPT" and rule is not None:
            problems.append(f"{pattern!r}: Druid accepts, check_group_pattern refuses ({rule}), not listed")
        elif druid != "ACCEPT" and rule is None:
            problems.append(f"{pattern!r}: Druid refuses ({druid}), check_group_pattern accepts")
        elif druid != "ACCEPT" and rule != SYNTAX and rule not in STRICTER_RULES:
            problems.append(f"{pattern!r}: unknown rule {rule}")
    assert not problems, "\n".join(problems)


def test_unit_expectations_match_druid(verdicts: dict[str, str]) -> None:
    """The unit cases Druid refuses are those the unit test expects refused as SYNTAX (and maybe more)."""
    assert all(verdicts[p] == "ACCEPT" for p in UNIT_ACCEPTED)
    for pattern, rule, _ in UNIT.REFUSED:
        if rule == SYNTAX:
            assert verdicts[pattern] != "ACCEPT", pattern


def test_generated_patterns_never_pass_what_druid_refuses(verdicts: dict[str, str]) -> None:
    problems = []
    accepted_by_both = 0
    for pattern in GENERATED:
        druid = verdicts[pattern]
        rule = _operator_rule(pattern)
        if druid != "ACCEPT" and rule is None:
            problems.append(f"{pattern!r}: Druid refuses ({druid}), check_group_pattern accepts")
        elif druid == "ACCEPT" and rule is not None and rule not in STRICTER_RULES:
            problems.append(f"{pattern!r}: Druid accepts, check_group_pattern refuses as {rule}")
        accepted_by_both += druid == "ACCEPT" and rule is None
    assert not problems, "\n".join(problems[:50])
    assert accepted_by_both >= 100  # the generator reaches valid DNs, not only broken ones
