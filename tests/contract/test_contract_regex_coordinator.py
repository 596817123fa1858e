"""The product's Java regex checker against the Coordinator itself (fake and real Druid 27.0.0).

- What compiles: every pattern the contract suite knows is sent as a role's permission; the
  Coordinator answers 200 or 400 "does not compile", and ``javaregex.check`` must say the same
  (REGEXES_ACCEPTED / REGEXES_REFUSED hold what the real Coordinator answers).
- What administers security: a user whose only role holds ``CONFIG`` READ on a pattern reads
  the security API (200) exactly when Druid matches the pattern against ``security``; where it
  does, ``may_fullmatch(pattern, "security")`` must say so (it may only err towards True).
"""

from __future__ import annotations

import pytest
from contract_support import Target, authz, java_compiles, ra, seg
from test_contract_authorization import REGEXES_ACCEPTED, REGEXES_REFUSED

from druid_access import javaregex

pytestmark = pytest.mark.contract

SECURITY_PROBES = [
    ("security", True),
    (".*", True),
    ("sec.*", True),
    ("(?i)SECURITY", True),
    ("[a-z]+", True),
    ("\\Qsecurity\\E", True),
    ("(?x) s e c u r i t y", True),
    ("(?x)secu[q - s]ity", True),
    ("\\p{javaLowerCase}{8}", True),
    ("s\\p{Alpha}*", True),
    ("secret", False),
    ("securityx", False),
    ("CONFIG", False),
    ("(?!security).*", False),
    ("[0-9]+", False),
]


async def test_checker_agrees_with_the_coordinator_on_whatjava_compiles(target: Target) -> None:
    role = target.unique("rxc")
    await target.make_role(role)
    patterns = [*REGEXES_ACCEPTED, *REGEXES_REFUSED]
    assert len(patterns) >= 40
    wrong = []
    for pattern in patterns:
        response = await target.request(
            "POST", authz(f"/roles/{role}/permissions"), json=[ra(pattern, "CONFIG", "READ")]
        )
        assert response.status_code in (200, 400), (pattern, response.status_code, response.text)
        if java_compiles(pattern) != (response.status_code == 200):
            wrong.append((pattern, response.status_code, response.text[:200]))
    assert wrong == []


@pytest.mark.parametrize(("pattern", "matches"), SECURITY_PROBES)
async def test_may_fullmatch_agrees_with_the_coordinators_authorizer(
    target: Target, pattern: str, matches: bool
) -> None:
    user, role = target.unique("probe"), target.unique("probe-role")
    await target.make_role(role, [ra(pattern, "CONFIG", "READ")])
    await target.make_user(user, password="probe-pw-1", roles=[role])
    response = await target.request("GET", authz("/users"), auth=(user, "probe-pw-1"))
    assert response.status_code == (200 if matches else 403), (pattern, response.status_code, response.text)
    if matches:
        assert javaregex.may_fullmatch(pattern, "security"), pattern
    else:
        assert not javaregex.may_fullmatch(pattern, "security"), pattern
    assert (await target.request("DELETE", authz(f"/users/{seg(user)}"))).status_code == 200
