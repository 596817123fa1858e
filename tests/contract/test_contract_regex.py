"""The product's Java regex checker against the Coordinator, on the corners of Java's grammar.

test_contract_regex_coordinator.py sends the authorization suite's REGEXES_ACCEPTED / REGEXES_REFUSED;
this module sends patterns where Java's grammar is least like Python's and where ``javaregex`` follows
Java 17 closely: property names, look-behind lengths, ``&&`` in classes, comments mode, ``\\Q...\\E``,
``\\N{...}`` and flags. The expected answers are the real 27.0.0 Coordinator's; ``javaregex.check`` must
give the same on both targets. ``may_fullmatch`` is also held against the authorizer where it decides
on an approximate translation (it must then answer True) and where Python's ``re`` would mislead.
"""

from __future__ import annotations

import pytest
from contract_support import Target, authz, java_compiles, ra, seg

from druid_access import javaregex

pytestmark = pytest.mark.contract

# fmt: off
ACCEPTED = [
    "\\p{IsMiao}", "\\p{IsPlrd}", "\\p{IsaLpHa}", "\\p{IsWhite_Space}", "\\p{IsjavaLowerCase}", "\\p{sc=latin}",
    "\\p{blk=Basic Latin}", "\\p{InCyrillic_Supplementary}", "\\p{gc=Alpha}", "(?U)\\p{alpha}", "\\pL",
    "(?<=a*)b", "(?<=(?:a)*)b", "(?<=(a{3})*)b", "(?<=\\X*)b", "(?<=a{2147483647}b)c", "(?<=(?:b|c)a{2147483647})z",
    "[a&&&b]", "[x[y]&&&b]", "[a-c&&]", "[&&a]", "[a-z&&[def]x]", "[^a&&[^b]]", "[]-a]", "[--a]",
    "(?x)( ?i)a", "(?x)(? i)a", "(?x)a{1 ,2}", "(?x)\\p {L}", "(?x)[a #c\n]", "(?x)\\b{g }",
    "\\Qab\\E*", "a\\Q\\E*", "[\\Q\\E]a]", "\\c\\Q1\\E", "(?c)a", "(?c)(?<=[b]a{2147483647})", "(?)a", "(?-)a",
    "\\N{latin small letter a}", "\\N{ LATIN SMALL LETTER A }", "\\N{NULL}", "\\x{0000000041}", "\\uD83D\\uDE00+",
]
REFUSED = [
    "\\p{IsEmoji}", "\\p{alpha}", "\\p{Alphabetic}", "\\p{IsDash}", "\\p{InFoo}", "\\p{IsAbcd}", "\\p{gc=lu}",
    "(?<=(?:ab)*)b", "(?<=a*b{1})c", "(?<=(?:a|)*)b", "(?<=\\R*)b", "(?<=(a)\\1)b", "(?<=a{1073741824}a{1073741824})b",
    "[&&]", "[&&&&a]", "[a-&&b]", "[a-\\d]", "[a-\\p{L}]", "[a-",
    "(?x)a{ 1}", "(?x)y-[a& ]", "(?x)xt\\c\n", "\\Q\\E*", "\\E", "(?--i)a", "(?$)a",
    "\\N{BYTE ORDER MARK}", "\\N{CJK UNIFIED IDEOGRAPH-4E00}", "\\N{LINE FEED}", "\\x{110000}", "\\x{41", "\\b{gx}",
]
# fmt: on

# (pattern, does the Coordinator let a user whose role has CONFIG READ on it read the security API)
APPROXIMATED = [  # may_fullmatch must be True here, even where Druid does not match
    ("\\p{Lu}+", False),  # Unicode properties
    ("\\p{IsAlphabetic}+", True),
    ("(?iu)\u017fecurity", True),  # with "u", the long s matches s
    ("sec.*+", True),
    ("sec.*+y", False),  # possessive: .*+ takes the y
    ("s(?>ec)urity", True),
]
EXACT = [
    ("(?i)\u017fecurity", False),  # without "u", Java folds the case of ASCII letters only
    ("\\Ssecurity?", False),
    ("[[:alpha:]]+", False),
    ("(?x)s e c # security\nurity", True),
    ("(?x)[ r - t ] e c u r i t y", True),
    ("[a-z&&[^x]]{8}", True),
    ("\\Qsec\\E[u]rity", True),
]


async def test_checker_agrees_with_the_coordinator_on_grammar_corners(target: Target) -> None:
    role = target.unique("rxg")
    await target.make_role(role)
    wrong = []
    for pattern, accepted in [(p, True) for p in ACCEPTED] + [(p, False) for p in REFUSED]:
        response = await target.request(
            "POST", authz(f"/roles/{role}/permissions"), json=[ra(pattern, "DATASOURCE", "READ")]
        )
        answer = response.status_code == 200
        if not answer and response.json() != {
            "error": f"Invalid permission, resource name regex[{pattern}] does not compile."
        }:
            wrong.append((pattern, "unexpected answer", response.status_code, response.text[:200]))
        elif answer != accepted or java_compiles(pattern) != accepted:
            wrong.append(
                (pattern, "coordinator", answer, "check", java_compiles(pattern), "expected", accepted)
            )
    assert len(ACCEPTED) + len(REFUSED) >= 40
    assert wrong == []


@pytest.mark.parametrize(("pattern", "matches"), APPROXIMATED + EXACT)
async def test_may_fullmatch_against_the_authorizer(target: Target, pattern: str, matches: bool) -> None:
    user, role = target.unique("rxm"), target.unique("rxm-role")
    await target.make_role(role, [ra(pattern, "CONFIG", "READ")])
    await target.make_user(user, password="rxm-pw-1", roles=[role])
    response = await target.request("GET", authz("/roles"), auth=(user, "rxm-pw-1"))
    assert response.status_code == (200 if matches else 403), (pattern, response.status_code, response.text)
    expected = matches or (pattern, matches) in APPROXIMATED  # approximated: never a certain False
    assert javaregex.may_fullmatch(pattern, "security") is expected, pattern
    assert (await target.request("DELETE", authz(f"/users/{seg(user)}"))).status_code == 200
