"""The product's Java regex checker against the JDK's own ``java.util.regex``, on thousands of patterns.

Druid compiles a permission's resource name with ``java.util.regex`` and matches it against the whole
resource name. Two things in the operator depend on getting Java's semantics right:

- ``javaregex.check`` decides what is sent (a pattern Java refuses gets a 400 and leaves the role
  without permissions), so it must agree with Java on what compiles;
- ``javaregex.may_fullmatch(p, "security")`` decides whether a tenant's ``CONFIG`` permission would
  administer Druid's security API, so it must never answer False where Java matches (it may answer
  True where unsure: that only refuses a harmless role in a tenant namespace).

RegexCheck.java (next to this file) runs once over the whole corpus: the patterns the contract suite
checks against a real Coordinator, patterns around ``security``, and a seeded batch of mutations of
them with the tokens where Java's grammar is subtle (comments mode, quoting, classes, flags).
"""

from __future__ import annotations

import random

import pytest
from contract_support import java_compiles
from jdk import run_oracle
from test_contract_authorization import REGEXES_ACCEPTED, REGEXES_REFUSED

from druid_access import javaregex

pytestmark = pytest.mark.contract

SUBJECT = "security"
GENERATED = 12_000
SEEDS = [
    "security", ".*", "sec.*", "s.*y", "(?i)SECURITY", "[s]ecurity", "securit[a-z]", "\\Qsecurity\\E",
    "(security|other)", "\\p{L}+", "\\w+", "s\\p{Lower}*", ".{8}", "(?i:S)ecurity", "secu(?=r)rity",
    "[^x]+", "secret", "securityx", "xsecurity", "datasource.*", "[0-9]+", "(?!security).*",
    "(?x) s e c u r i t y", "(?x)secu[q - s]ity", "(?x)[ r - t ] e c u r i t y", "(?x)s e c # c\nurity",
    "[a-z&&[^x]]+", "[\\w&&[^0-9]]{8}", "\\Qsec\\Eurity", "(?u)SECURITY", "(?iu)SeCuRiTy", "s(?-i)ecurity",
    "sec[u]rity", "[[:alpha:]]+", "\\p{Alpha}{8}", "\\p{IsLatin}+", "\\p{javaLowerCase}+", "(?<n>s)ecurity",
    "s(?>ec)urity", "se*cu?r+i{1}t{1,}y", "^security$", "\\bsecurity\\b", "\\Asecurity\\z", "sec\\x75rity",
    "sec\\u0075rity", "sec\\0165rity", "(?x)sec\\ urity", "[\\s\\S]*", "(?s).*", "(?d)security", "s|security",
]  # fmt: skip
TOKENS = [
    "(?x)", "(?-x)", "(?i)", "(?-i)", "(?u)", "(?x:", "(?i:", ")", "(", "[", "]", "[^", "-", " - ", " ", "\n",
    "#", "\\", "\\Q", "\\E", "\\s", "\\p{L}", "\\p{Lower}", "&&", ".", "*", "+", "?", "{1,8}", "|", "^", "$",
    "s", "e", "c", "u", "r", "i", "t", "y", "S", "q-s", "a-z", "\\x73", "\\u0073", "\\b", "(?=", "(?<=",
]  # fmt: skip


def _generated(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < count:
        pattern = rng.choice(SEEDS)
        for _ in range(rng.randint(1, 3)):
            at = rng.randint(0, len(pattern))
            if rng.random() < 0.75:
                pattern = pattern[:at] + rng.choice(TOKENS) + pattern[at:]
            else:
                pattern = pattern[:at] + pattern[at + 1 :]
        out.append(pattern)
    return out


LISTED = list(dict.fromkeys([*REGEXES_ACCEPTED, *REGEXES_REFUSED, *SEEDS]))
CORPUS = list(dict.fromkeys([*LISTED, *_generated(GENERATED, seed=20261126)]))


@pytest.fixture(scope="module")
def java() -> dict[str, str]:
    return dict(zip(CORPUS, run_oracle("RegexCheck.java", CORPUS, args=[SUBJECT], timeout=300), strict=True))


def test_listed_patterns_compile_exactly_where_javajava_compiles(java: dict[str, str]) -> None:
    wrong = [p for p in LISTED if java_compiles(p) != (java[p] != "REFUSED")]
    assert wrong == [], [(p, java[p]) for p in wrong]
    assert len(LISTED) >= 40


def test_generated_patterns_compile_exactly_where_javajava_compiles(java: dict[str, str]) -> None:
    wrong = [p for p in CORPUS if java_compiles(p) != (java[p] != "REFUSED")]
    assert wrong == [], f"{len(wrong)} of {len(CORPUS)} disagree, e.g. {[(p, java[p]) for p in wrong[:10]]}"


def test_may_fullmatch_never_misses_a_java_match(java: dict[str, str]) -> None:
    matching = [p for p in CORPUS if java[p] == "COMPILES MATCHES"]
    missed = [p for p in matching if not javaregex.may_fullmatch(p, SUBJECT)]
    assert missed == []
    assert len(matching) >= 500, "the corpus must hold many patterns that match"


def test_may_fullmatch_is_exact_on_most_patterns_that_do_not_match(java: dict[str, str]) -> None:
    """Conservative, not blind: most patterns Java does not match are recognised as such."""
    not_matching = [p for p in CORPUS if java[p] == "COMPILES NO"]
    cleared = [p for p in not_matching if not javaregex.may_fullmatch(p, SUBJECT)]
    assert len(not_matching) >= 500
    assert len(cleared) >= 0.8 * len(not_matching), f"{len(cleared)} of {len(not_matching)}"
