"""druid_access.javaregex: Java's regex grammar (what Druid can compile) and the conservative match test.

Every expected value here is what OpenJDK 17's ``java.util.regex`` does (``Pattern.compile`` and
``matcher(text).matches()``), checked with the JDK while writing the tests; the contract suite checks
the same module against the JDK and a real Coordinator on many more patterns.
"""

from __future__ import annotations

import random
import re
import time

import pytest

from druid_access import javaregex
from druid_access.javaregex import JavaRegexError, check, java_regex, may_fullmatch

# ------------------------------------------------------------------------------------------- check

JAVA_ONLY = ["\\p{Lu}+", "\\p{javaLowerCase}.*", "\\p{IsAlphabetic}+", "\\Qa.b\\E"]


@pytest.mark.parametrize("pattern", JAVA_ONLY)
def test_check_accepts_java_patterns_python_refuses(pattern: str) -> None:
    check(pattern)
    with pytest.raises(re.error):
        re.compile(pattern)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("(?#c)x", "Unknown inline modifier near index 2"),
        ("(?a)x", "Unknown inline modifier near index 2"),
        ("(?P<n>x)", "Unknown inline modifier near index 2"),
    ],
)
def test_check_refuses_what_python_accepts_but_java_refuses(pattern: str, message: str) -> None:
    re.compile(pattern)
    with pytest.raises(JavaRegexError) as raised:
        check(pattern)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("wiki(", "Unclosed group near index 5"),
        ("*a", "Dangling meta character '*' near index 0"),
        ("a{2,1}", "Illegal repetition range near index 5"),
        ("x{2147483648}", "Illegal repetition range near index 11"),
        ("[z-a]", "Illegal character range near index 3"),
        ("[&&]", "Bad class syntax near index 2"),
        ("\\p{Foo}", "Unknown character property name {Foo} near index 6"),
        ("\\p{IsEmoji}", "Unknown character property name {IsEmoji} near index 10"),  # Java 21, not 17
        ("\\p{InFoo}", "Unknown character property name {InFoo} near index 8"),
        ("\\p{block=Foo}", "Unknown Unicode property {name=<block>, value=<Foo>} near index 12"),
        ("\\k<n>", "named capturing group <n> does not exist near index 4"),
        ("(?<n>x)(?<n>y)", "Named capturing group <n> is already defined near index 11"),
        ("\\x{110000}", "Hexadecimal codepoint is too big near index 8"),
        ("\\N{LINE FEED}", "Unknown character name [LINE FEED] near index 12"),
        ("(?$)", "Unknown group type near index 2"),
        ("(?<=(?:ab)*)c", "Look-behind group does not have an obvious maximum length near index 10"),
        ("(?x)\\c  ", "Unexpected internal error near index 8"),
    ],
)
def test_check_says_what_java_says(pattern: str, message: str) -> None:
    with pytest.raises(JavaRegexError) as raised:
        check(pattern)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    "pattern",
    [
        "",
        "x{2147483647}",
        "(?c)a",  # canonical equivalence, a flag Python does not have
        "(?x)a{1 ,2}",  # comments mode: white space after the first digit
        "(?x)( ?i)a",  # ... and inside the group syntax
        "\\b{g}",
        "(?<=a*)b",  # Java 17 takes unbounded greedy quantifiers of one character in look-behinds
        "(?<=(a{3})*)b",  # ... and sizes that overflow but wrap to a positive int
        "[a&&&b]",
        "[x[y]&&&b]",
        "\\p{IsMiao}",
        "\\p{IsaLpHa}",  # after "Is", binary properties take any case; without it, case matters
        "\\p{InCyrillic_Supplementary}",
        "\\p{sc=Plrd}",
        "(?U)\\p{alpha}",
        "\\N{latin small letter s}",
        "\\uD83D\\uDE00+",
    ],
)
def test_check_accepts_what_java_accepts(pattern: str) -> None:
    check(pattern)


@pytest.mark.parametrize(
    "pattern", ["\\p{alpha}", "\\p{Alphabetic}", "(?<=a{2147483647}b{1})c", "\\N{CJK UNIFIED IDEOGRAPH-4E00}"]
)
def test_check_refuses_what_java_refuses(pattern: str) -> None:
    with pytest.raises(JavaRegexError):
        check(pattern)


def test_check_message_is_one_line() -> None:
    with pytest.raises(JavaRegexError) as raised:
        check("\\p{L\nu}")
    assert str(raised.value) == "Unknown character property name {L\\u000au} near index 6"


def test_nesting_is_limited_deterministically() -> None:
    """A deliberate difference: Java compiles deeper nesting, up to what its thread stack holds."""
    check("(" * 100 + "s" + ")" * 100 + "ecurity")
    check("[" * 100 + "s" + "]" * 100)
    with pytest.raises(JavaRegexError, match="nested more than 100 deep"):
        check("(" * 101 + "s" + ")" * 101)


def test_check_raises_nothing_but_java_regex_error() -> None:
    rng = random.Random(20261126)
    alphabet = "()[]{}\\^$.|?*+-&#:=!<>,0123456789abcpPQEkxuNsSwWdRXbB \t\n\u00e9\U0001f600"
    bugs = []
    for _ in range(3000):
        pattern = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        for prefix in ("", "(?x)"):
            try:
                check(prefix + pattern)
            except JavaRegexError as error:  # anything else fails the test; so does a parser bug
                if "could not be checked" in str(error):
                    bugs.append(prefix + pattern)
    assert bugs == []


# ----------------------------------------------------------------------------------- may_fullmatch

# (pattern, does Java's Pattern.compile(pattern).matcher("security").matches())
SECURITY = [
    ("security", True),
    (".*", True),
    ("sec.*", True),
    ("s.*y", True),
    ("(?i)SECURITY", True),
    ("[s]ecurity", True),
    ("securit[a-z]", True),
    ("\\Qsecurity\\E", True),
    ("(security|other)", True),
    ("\\p{L}+", True),
    ("\\w+", True),
    ("s\\p{Lower}*", True),
    (".{8}", True),
    ("(?i:S)ecurity", True),
    ("secu(?=r)rity", True),
    ("[^x]+", True),
    ("security|", True),
    ("[a-z&&[^x]]{8}", True),
    ("^security$", True),
    ("\\bsecurity\\b", True),
    ("(?x) s e c u r i t y  # the security API", True),
    ("(?=.*y)sec.*", True),
    ("secu\\Qr\\Eity", True),
    ("sec\\u0075rity", True),
    ("(?i)s\\p{Upper}CURITY", True),
    ("(?iu)\u017fecurity", True),  # long s: case-insensitive with Unicode case
    ("\\Ssecurity?", False),  # \S takes the s, "ecurity" is not "securit"
    ("secret", False),
    ("securityx", False),
    ("xsecurity", False),
    ("datasource.*", False),
    ("sec", False),
    ("security.+", False),
    ("[0-9]+", False),
    ("(?!security).*", False),
    ("SECURITY", False),
    ("s(?!e).*", False),
    ("\\W+", False),
    (".{9}", False),
    ("[[:alpha:]]+", False),  # no POSIX brackets in Java: a class of ':', 'a', 'l', 'p', 'h'
    ("(?i)\u017fecurity", False),  # without "u" Java folds the case of ASCII letters only
    ("(?i)secur\u0131ty", False),  # nor the dotless i
]


@pytest.mark.parametrize(("pattern", "java"), SECURITY)
def test_may_fullmatch_security_as_java_matches(pattern: str, java: bool) -> None:
    assert may_fullmatch(pattern, "security") is True or not java
    if pattern != "(?iu)\u017fecurity":  # exact everywhere else
        assert may_fullmatch(pattern, "security") is java


@pytest.mark.parametrize(
    "pattern",
    [
        "\\p{Lu}+",  # Unicode properties are approximated
        "(?iu)\u017fECURITY\u017f",  # Unicode case folding is approximated
        "sec.*+y",  # possessive quantifiers
        "(?<=x)security",  # look-behinds
        "(s)ecurity\\1",  # back references
        "\\Gsecurity.",
        "\\X{9}",
        "(?U)\\W+",
        "(?c)SECURITY",
        "[[x]a&&]ecurity",  # a class Java builds to throw NullPointerException when matching
        "(.?){1000}x",  # too much backtracking to run
        "(?:){2147483647}x",
    ],
)
def test_may_fullmatch_is_true_where_unsure(pattern: str) -> None:
    """Each of these does not match in Java, but the answer is not certain here: True."""
    check(pattern)
    assert may_fullmatch(pattern, "security") is True


def test_may_fullmatch_refused_pattern_is_true() -> None:
    assert may_fullmatch("wiki(", "security") is True
    assert may_fullmatch("(?P<n>security)", "security") is True


def test_may_fullmatch_text_outside_printable_ascii_is_true() -> None:
    assert may_fullmatch("[a-z]+", "s\u00e9curit\u00e9") is True
    assert may_fullmatch("[a-z]+", "security\n") is True
    assert may_fullmatch("[a-z]+", "other") is True
    assert may_fullmatch("[0-9]+", "other") is False


def test_may_fullmatch_is_quick_on_catastrophic_patterns() -> None:
    started = time.monotonic()
    for pattern in ["(?:.*){30}x", ".*" * 60 + "x", "(?:.?){20}(?:.?){20}x", "(?:\\b){100000000}x"]:
        assert may_fullmatch(pattern, "security") is True
    assert may_fullmatch("x{2147483647}", "security") is False  # consumes a character per repetition
    assert time.monotonic() - started < 1


# ---------------------------------------------------------------------------------- the translation


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("\\Qab\\E*", ["ab", "abbb"], ["abab"]),  # a quantifier after \E takes the last quoted character
        ("a\\Q\\E*", ["", "aaa"], ["b"]),
        ("[a-z&&[def]x]", ["d", "x"], ["a"]),  # Java unions the right operand's parts
        ("[x[y]&&&b]", ["x", "y", "&", "b"], ["a"]),
        ("(?x)[a& b]", ["a", "b"], ["&"]),  # comments mode loses a '&' followed by white space
        ("(?m)^", [], [""]),  # a multiline ^ never matches at the end
        ("\\B", [""], []),
        ("a$\\n", ["a\n"], ["a\n\n", "a\r\n"]),  # $ before a final line end...
        ("a\\r$\\n", [], ["a\r\n"]),  # ... but not between \r and \n
        ("(?d)a$\\r", [], ["a\r"]),  # only \n ends a line with UNIX_LINES
        ("\\R{2}", ["\n\n"], ["\r\n"]),  # a repeated \R does not split \r\n
        ("\\uD83D\\uDE00+", ["\U0001f600\U0001f600"], ["\ud83d"]),
    ],
)
def test_java_regex_matches_like_java(pattern: str, matches: list[str], misses: list[str]) -> None:
    compiled = java_regex(pattern)
    assert [m for m in matches if compiled.fullmatch(m) is None] == []
    assert [m for m in misses if compiled.fullmatch(m) is not None] == []


def test_api() -> None:
    assert javaregex.__all__ == ["JavaRegexError", "check", "java_regex", "may_fullmatch"]
    assert issubclass(JavaRegexError, ValueError)
