"""Validation of a DruidGroupMapping's ``groupPattern``, the way Druid's LDAP role provider reads it.

A group pattern is not a regular expression but an LDAP DN, optionally with a leading ``*,`` (any group
at or under that DN) or a trailing ``,*`` (any group whose DN begins with those RDNs). The Coordinator
stores any string, but Druid parses the pattern with Java's ``LdapName`` only when an LDAP user who is
in a group makes a request; one that does not parse fails every such request ("Configuration problem -
Invalid groupMapping") until the mapping is removed, so the operator must never send it.

``check_group_pattern`` follows ``LDAPRoleProvider.getRoles`` (the ``*,`` cut first, then ``,*``, nothing
trimmed) and ``LdapName``'s grammar, and refuses everything that refuses. Where it is stricter, the
check says so ("stricter than LdapName") and its rule is in ``STRICTER_RULES``.
tests/contract/test_contract_group_pattern.py checks it against the JDK's own parser.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

# Pre-check for the CRD schema: an OpenAPI ``pattern`` (the API server runs it with Go's RE2) that is
# also pydantic's ``Field(pattern=...)`` (rust regex). Both engines read it alike: explicit anchors, no
# look-around, code-point escapes only. It refuses a value with no '=', a first character ' ' or '=',
# a last character ' ', or a control character (U+0000-U+001F, U+007F-U+009F) anywhere. It never
# refuses a pattern check_group_pattern accepts (tests/unit asserts it): those begin with an attribute
# type and refuse surrounding spaces and control characters too. Only a first filter: "cn=a,,dc=b"
# passes it and check_group_pattern still refuses it.
SCHEMA_PATTERN: Final = (
    r"^[^ =\x00-\x1f\x7f-\x9f]"  # first: not a space, not '=', not a control character
    r"[^=\x00-\x1f\x7f-\x9f]*="  # up to and including the first '='
    r"(?:[^\x00-\x1f\x7f-\x9f]*[^ \x00-\x1f\x7f-\x9f])?$"  # the rest, not ending with a space
)

EXAMPLE: Final = "cn=analysts,ou=groups,dc=example,dc=org"
WHAT_IT_IS: Final = (
    f"a group pattern is an LDAP distinguished name (DN) such as {EXAMPLE}, optionally with a leading "
    "'*,' (any group under that DN) or a trailing ',*' (any group whose DN begins with it); "
    "it is not a regular expression"
)

# Rule names carried by InvalidGroupPattern.rule. SYNTAX: LdapName (so Druid) refuses the pattern too.
SYNTAX: Final = "syntax"
# The others are checks stricter than LdapName, each explained where it is made. They run first, so a
# pattern LdapName refuses may still be reported under one of them.
EMPTY_DN: Final = "empty-dn"
SURROUNDING_SPACE: Final = "surrounding-space"
CONTROL_CHARACTER: Final = "control-character"
ATTRIBUTE_TYPE: Final = "attribute-type"
EMPTY_RDN: Final = "empty-rdn"
EMPTY_VALUE: Final = "empty-value"
HEX_DIGITS: Final = "hex-digits"
ASTERISK: Final = "asterisk"
STRICTER_RULES: Final = frozenset(
    {
        EMPTY_DN,
        SURROUNDING_SPACE,
        CONTROL_CHARACTER,
        ATTRIBUTE_TYPE,
        EMPTY_RDN,
        EMPTY_VALUE,
        HEX_DIGITS,
        ASTERISK,
    }
)

# RFC 4514 attributeType: a descriptor (letter, then letters, digits, hyphens) or a dotted numeric OID.
# Stricter than LdapName, which takes any run of Unicode letters, digits, '.', '-' and inner spaces
# ("common name", "-", "1", "OID.2.5.4.3"): a directory never names a group's RDN with such a type.
_ATTRIBUTE_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+")
_HEX = frozenset("0123456789abcdefABCDEF")
# Character.isLetterOrDigit: the general categories Java treats as letters or decimal digits.
_JAVA_LETTER_OR_DIGIT = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Nd"})
_FULL_WIDTH_HEX = frozenset(chr(c) for c in (*range(0xFF21, 0xFF27), *range(0xFF41, 0xFF47)))


class InvalidGroupPattern(ValueError):
    """A groupPattern Druid cannot use; ``rule`` is SYNTAX or one of STRICTER_RULES."""

    def __init__(self, pattern: str, problem: str, rule: str) -> None:
        super().__init__(
            f"groupPattern {pattern!r} is not a valid LDAP group pattern: {problem}; {WHAT_IT_IS}"
        )
        self.pattern = pattern
        self.problem = problem
        self.rule = rule


class _Problem(Exception):
    def __init__(self, problem: str, rule: str = SYNTAX) -> None:
        super().__init__(problem)
        self.problem = problem
        self.rule = rule


def check_group_pattern(pattern: str) -> None:
    """Raise InvalidGroupPattern unless Druid can parse ``pattern`` and it can match a real group.

    Druid accepts any string when the mapping is created but parses the pattern as a DN on every LDAP
    user's request; one that does not parse fails all those requests until the mapping is removed.
    """
    try:
        _check(pattern)
    except _Problem as problem:
        raise InvalidGroupPattern(pattern, problem.problem, problem.rule) from None


def _check(pattern: str) -> None:
    for char in pattern:
        # Stricter than LdapName, which keeps raw control characters in values: a hex escape such as
        # "\0A" spells the same value. (Lone surrogates cannot even come through the Kubernetes API.)
        if unicodedata.category(char) in ("Cc", "Cs"):
            raise _Problem(f"it contains the control character U+{ord(char):04X}", CONTROL_CHARACTER)
    if pattern == "":
        # LdapName parses "" as the empty DN, which as an exact pattern matches no group.
        raise _Problem("it is empty", EMPTY_DN)
    if pattern != pattern.strip(" "):
        # Stricter than LdapName, which skips spaces around a DN: the pattern means the same without
        # them (a space that ends a value is written "\20").
        raise _Problem(
            "it starts or ends with a space (write a space that ends a value as '\\20')", SURROUNDING_SPACE
        )
    # Exactly LDAPRoleProvider.getRoles: "*," is tested first, then ",*"; the two characters are cut off
    # and nothing is trimmed.
    if pattern.startswith("*,"):
        dn, offset = pattern[2:], 2
    elif pattern.endswith(",*"):
        dn, offset = pattern[:-2], 0
    else:
        dn, offset = pattern, 0
    if dn == "":
        # Stricter than LdapName: "*," and ",*" leave the empty DN, which matches every group there is;
        # granting roles to anyone in any group is never what such a short pattern means.
        raise _Problem("the wildcard has no DN with it", EMPTY_DN)
    if "=" not in dn:
        if dn.strip(" ") == "*":
            raise _Problem("'*' is a wildcard only as the whole leading '*,' or trailing ',*' of a DN")
        raise _Problem("it contains no '=' (a DN is a list of attribute=value RDNs, such as cn=analysts)")
    _Parser(dn, offset).parse()


class _Parser:
    """LdapName's RFC 2253 parser (Rfc2253Parser + Rdn.unescapeValue) over ``dn``, refusing what it refuses.

    ``offset`` is where ``dn`` starts in the pattern, for the character positions in messages.
    """

    def __init__(self, dn: str, offset: int) -> None:
        self.dn = dn
        self.offset = offset
        self.pos = 0

    def at(self, index: int | None = None) -> str:
        index = self.pos if index is None else index
        return self.dn[index] if index < len(self.dn) else ""

    def where(self, index: int | None = None) -> str:
        index = self.pos if index is None else index
        return f"character {index + self.offset + 1}"

    def skip_spaces(self) -> None:
        # LdapName also skips '\r'; control characters are refused before parsing.
        while self.at() == " ":
            self.pos += 1

    def parse(self) -> None:
        while True:
            self.parse_rdn()
            if self.pos == len(self.dn):
                return
            separator = self.at()
            if separator not in (",", ";"):
                raise _Problem(f"unexpected {separator!r} at {self.where()} (expected ',' between RDNs)")
            self.pos += 1
            if self.pos == len(self.dn):
                # Stricter than LdapName, which reads a final separator as one more RDN, empty, and
                # so a DN no directory has.
                raise _Problem(f"it ends with {separator!r} (an RDN is missing after it)", EMPTY_RDN)

    def parse_rdn(self) -> None:
        while True:
            self.parse_attribute()
            if self.at() != "+":
                return
            self.pos += 1
            if self.pos == len(self.dn):
                # Stricter than LdapName, which ignores a final '+': without it the pattern means the same.
                raise _Problem("it ends with '+' (an attribute=value is missing after it)", EMPTY_RDN)

    def parse_attribute(self) -> None:
        self.skip_spaces()
        start = self.pos
        # LdapName's attribute type: letters, digits, '.', '-' and spaces, trailing spaces backed out.
        while (char := self.at()) and (_java_letter_or_digit(char) or char in ".- "):
            self.pos += 1
        while self.pos > start and self.dn[self.pos - 1] == " ":
            self.pos -= 1
        attribute_type = self.dn[start : self.pos]
        if not attribute_type:
            char = self.at()
            if char == "*":
                raise _Problem(
                    f"'*' at {self.where()} is not an RDN; it is a wildcard only as the whole leading "
                    "'*,' or trailing ',*' of a pattern, and only once"
                )
            found = "the end" if not char else repr(char)
            raise _Problem(
                f"expected an attribute type (such as cn, ou or dc) at {self.where()}, found {found}"
            )
        self.skip_spaces()
        if self.at() != "=":
            found = "the end" if self.pos == len(self.dn) else repr(self.at())
            raise _Problem(
                f"expected '=' after attribute type {attribute_type!r}, found {found} at {self.where()}"
            )
        if not _ATTRIBUTE_TYPE.fullmatch(attribute_type):
            raise _Problem(
                f"{attribute_type!r} is not an LDAP attribute type (a name such as cn, ou or dc, "
                "or a numeric OID such as 2.5.4.3)",
                ATTRIBUTE_TYPE,
            )
        self.pos += 1
        self.skip_spaces()
        value_start = self.pos
        first = self.at()
        if first == "#":
            self.parse_binary_value(attribute_type)
        elif first == '"':
            self.parse_quoted_value(attribute_type)
        else:
            self.parse_string_value(attribute_type)
        self.skip_spaces()
        if self.pos < len(self.dn) and self.at() not in ",;+":
            raise _Problem(
                f"unexpected {self.at()!r} at {self.where()} after the value of {attribute_type!r} "
                f"starting at {self.where(value_start)}"
            )

    def parse_binary_value(self, attribute_type: str) -> None:
        start = self.pos
        self.pos += 1  # '#'
        while (char := self.at()) and _java_letter_or_digit(char):
            self.pos += 1
        digits = self.dn[start + 1 : self.pos]
        if len(digits) % 2 or not all(_java_hex_digit(c) for c in digits):
            raise _Problem(f"the value of {attribute_type!r} at {self.where(start)} is '#' and not hex pairs")
        if not digits:
            # Stricter than LdapName, which reads a lone '#' as an empty byte string (see EMPTY_VALUE).
            raise _Problem(f"the value of {attribute_type!r} at {self.where(start)} is empty", EMPTY_VALUE)
        if not set(digits) <= _HEX:
            # Stricter than LdapName, which takes any Unicode digit (and full-width a-f) as a hex digit.
            raise _Problem(
                f"the value of {attribute_type!r} at {self.where(start)} uses non-ASCII hex digits",
                HEX_DIGITS,
            )

    def parse_quoted_value(self, attribute_type: str) -> None:
        start = self.pos
        self.pos += 1  # opening quote
        while (char := self.at()) and char != '"':
            self.pos += 2 if char == "\\" else 1
        if self.pos >= len(self.dn):
            raise _Problem(
                f"the quoted value of {attribute_type!r} at {self.where(start)} has no closing quote"
            )
        content = self.dn[start + 1 : self.pos]
        self.pos += 1  # closing quote
        if content.strip(" ") == "":
            # LdapName fails on '""' (an index error escapes Rdn.unescapeValue) and reads '" "' as "";
            # stricter than LdapName for the latter, which no group's RDN can have (see EMPTY_VALUE).
            raise _Problem(
                f"the value of {attribute_type!r} at {self.where(start)} is empty or blank",
                SYNTAX if content == "" else EMPTY_VALUE,
            )
        self.check_escapes(content, start + 1, attribute_type)

    def parse_string_value(self, attribute_type: str) -> None:
        start = self.pos
        escaped = -1  # index of the last character taken literally after a backslash
        while (char := self.at()) and char not in ",;+":
            if char == "\\":
                if self.pos + 1 == len(self.dn):
                    raise _Problem(f"it ends with a lone '\\' at {self.where()}")
                self.pos += 1
                escaped = self.pos
            self.pos += 1
        end = self.pos
        while end > start and self.dn[end - 1] == " " and escaped != end - 1:
            end -= 1
        if end == start:
            # Stricter than LdapName, which accepts an empty value: a directory's naming attributes
            # (cn, ou, dc, uid...) cannot be empty, so no group DN has such an RDN.
            raise _Problem(f"the value of {attribute_type!r} at {self.where(start)} is empty", EMPTY_VALUE)
        self.check_escapes(self.dn[start:end], start, attribute_type)

    def check_escapes(self, value: str, start: int, attribute_type: str) -> None:
        """What Rdn.unescapeValue refuses, plus a stricter rule for '*'; ``start`` is ``value``'s index."""
        i = 0
        while i < len(value):
            char = value[i]
            if char == "\\" and i + 1 < len(value):
                escaped = value[i + 1]
                if _java_letter_or_digit(escaped):
                    # LdapName reads "\" + letter or digit as a hex pair (a UTF-8 byte); anything else
                    # fails. Stricter than LdapName only in that the pair must be ASCII hex digits.
                    pair = value[i + 1 : i + 3]
                    if len(pair) < 2 or not all(_java_hex_digit(c) for c in pair):
                        raise _Problem(
                            f"'\\' at {self.where(start + i)} in the value of {attribute_type!r} is followed "
                            "by neither two hex digits nor a special character (write ',' as '\\,' or '\\2C')"
                        )
                    if not set(pair) <= _HEX:
                        raise _Problem(
                            f"the escape at {self.where(start + i)} uses non-ASCII hex digits", HEX_DIGITS
                        )
                    i += 3
                else:
                    i += 2
                continue
            if char == "*":
                # Stricter than LdapName, which takes '*' literally: '*' is a wildcard only as the whole
                # leading '*,' or trailing ',*', so "cn=admin*" is a mistake far more often than the name of
                # a group; such a group is still reachable as "\2A".
                raise _Problem(
                    f"'*' at {self.where(start + i)} in the value of {attribute_type!r} is not a wildcard "
                    "(only a whole leading '*,' or trailing ',*' is; write a literal '*' as '\\2A')",
                    ASTERISK,
                )
            i += 1


def _java_letter_or_digit(char: str) -> bool:
    """Java's Character.isLetterOrDigit(char) on one UTF-16 unit: never true beyond the BMP."""
    return ord(char) <= 0xFFFF and unicodedata.category(char) in _JAVA_LETTER_OR_DIGIT


def _java_hex_digit(char: str) -> bool:
    """Java's Character.digit(char, 16) >= 0: ASCII hex, any BMP decimal digit, full-width a-f / A-F."""
    if char in _HEX or char in _FULL_WIDTH_HEX:
        return True
    return ord(char) <= 0xFFFF and unicodedata.decimal(char, -1) >= 0
