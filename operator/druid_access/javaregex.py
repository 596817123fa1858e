"""Java's ``java.util.regex`` grammar, checked and translated to Python ``re``.

Resource-name regexes are validated with Java's grammar (``java_regex``), then translated to Python
``re`` for matching. The translation approximates Unicode properties, ``\\X``, ``\\G`` and bounded
variable-length look-behinds (a permission Python cannot compile never matches); ``\\p{In<block>}`` is
accepted without checking the block name.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache


class JavaRegexError(ValueError):
    """``java.util.regex.Pattern.compile`` would throw ``PatternSyntaxException``."""


_NEVER = "(?!)"
_POSIX = {
    "Lower": "a-z",
    "Upper": "A-Z",
    "ASCII": "\\x00-\\x7f",
    "Alpha": "a-zA-Z",
    "Digit": "0-9",
    "Alnum": "a-zA-Z0-9",
    "Punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    "Graph": "\\x21-\\x7e",
    "Print": "\\x20-\\x7e",
    "Blank": " \\t",
    "Cntrl": "\\x00-\\x1f\\x7f",
    "XDigit": "0-9a-fA-F",
    "Space": " \\t\\n\\x0b\\f\\r",
}
_CATEGORIES_NAMES = """L Lu Ll Lt Lm Lo LC LD L1 M Mn Mc Me N Nd Nl No Z Zs Zl Zp C Cc Cf Co Cs Cn P Pd Ps Pe Pc Po Pi
    Pf S Sm Sc Sk So all"""
_CATEGORIES = frozenset(_CATEGORIES_NAMES.split())
_BINARY_NAMES = """ALPHABETIC LETTER IDEOGRAPHIC LOWERCASE UPPERCASE TITLECASE WHITE_SPACE WHITESPACE CONTROL
    PUNCTUATION HEX_DIGIT HEXDIGIT ASSIGNED NONCHARACTER_CODE_POINT DIGIT ALNUM BLANK GRAPH PRINT
    WORD JOIN_CONTROL EMOJI EMOJI_PRESENTATION EMOJI_MODIFIER EMOJI_MODIFIER_BASE EMOJI_COMPONENT
    EXTENDED_PICTOGRAPHIC"""
_BINARY = frozenset(_BINARY_NAMES.split())
_JAVA_PROPS_NAMES = """javaLowerCase javaUpperCase javaWhitespace javaMirrored javaAlphabetic javaIdeographic
    javaTitleCase javaDigit javaDefined javaLetter javaLetterOrDigit javaJavaIdentifierStart
    javaJavaIdentifierPart javaUnicodeIdentifierStart javaUnicodeIdentifierPart
    javaIdentifierIgnorable javaSpaceChar javaISOControl"""
_JAVA_PROPS = frozenset(_JAVA_PROPS_NAMES.split())
_LETTER = "[^\\W\\d_]"
#: Character.UnicodeScript (Java 17); ``forName`` also takes the 4-letter ISO 15924 aliases.
_SCRIPT_NAMES = """COMMON LATIN GREEK CYRILLIC ARMENIAN HEBREW ARABIC SYRIAC THAANA DEVANAGARI BENGALI GURMUKHI
    GUJARATI ORIYA TAMIL TELUGU KANNADA MALAYALAM SINHALA THAI LAO TIBETAN MYANMAR GEORGIAN HANGUL
    ETHIOPIC CHEROKEE CANADIAN_ABORIGINAL OGHAM RUNIC KHMER MONGOLIAN HIRAGANA KATAKANA BOPOMOFO HAN YI
    OLD_ITALIC GOTHIC DESERET INHERITED TAGALOG HANUNOO BUHID TAGBANWA LIMBU TAI_LE LINEAR_B UGARITIC
    SHAVIAN OSMANYA CYPRIOT BRAILLE BUGINESE COPTIC NEW_TAI_LUE GLAGOLITIC TIFINAGH SYLOTI_NAGRI
    OLD_PERSIAN KHAROSHTHI BALINESE CUNEIFORM PHOENICIAN PHAGS_PA NKO SUNDANESE BATAK LEPCHA OL_CHIKI VAI
    SAURASHTRA KAYAH_LI REJANG LYCIAN CARIAN LYDIAN CHAM TAI_THAM TAI_VIET AVESTAN EGYPTIAN_HIEROGLYPHS
    SAMARITAN MANDAIC LISU BAMUM JAVANESE MEETEI_MAYEK IMPERIAL_ARAMAIC OLD_SOUTH_ARABIAN
    INSCRIPTIONAL_PARTHIAN INSCRIPTIONAL_PAHLAVI OLD_TURKIC BRAHMI KAITHI MEROITIC_HIEROGLYPHS
    MEROITIC_CURSIVE SORA_SOMPENG CHAKMA SHARADA TAKRI CAUCASIAN_ALBANIAN BASSA_VAH DUPLOYAN ELBASAN
    GRANTHA PAHAWH_HMONG KHOJKI LINEAR_A MAHAJANI MANICHAEAN MENDE_KIKAKUI MODI MRO OLD_NORTH_ARABIAN
    NABATAEAN PALMYRENE PAU_CIN_HAU OLD_PERMIC PSALTER_PAHLAVI SIDDHAM KHUDAWADI TIRHUTA WARANG_CITI AHOM
    ANATOLIAN_HIEROGLYPHS HATRAN MULTANI OLD_HUNGARIAN SIGNWRITING ADLAM BHAIKSUKI MARCHEN NEWA OSAGE
    TANGUT MASARAM_GONDI NUSHU SOYOMBO ZANABAZAR_SQUARE HANIFI_ROHINGYA OLD_SOGDIAN SOGDIAN DOGRA
    GUNJALA_GONDI MAKASAR MEDEFAIDRIN ELYMAIC NANDINAGARI NYIAKENG_PUACHUE_HMONG WANCHO YEZIDI CHORASMIAN
    DIVES_AKURU KHITAN_SMALL_SCRIPT UNKNOWN"""
_SCRIPTS = frozenset(_SCRIPT_NAMES.split())


def _is_script(name: str) -> bool:
    upper = name.upper()
    return upper in _SCRIPTS or re.fullmatch(r"[A-Z]{4}", upper) is not None


def _property(name: str) -> tuple[str | None, str]:
    """``\\p{name}``: (bracket-embeddable ranges or None, a one-character Python fragment).

    Unicode-aware properties are approximated with Python's Unicode ``\\w``/``\\d``/``\\s``.
    """
    if name in _POSIX:
        return _POSIX[name], f"[{_POSIX[name]}]"
    key = name[2:] if name.startswith("Is") else name
    if "=" in name:
        prop, _, value = name.partition("=")
        if prop.lower() not in {"sc", "script", "blk", "block", "gc", "general_category"} or not value:
            raise JavaRegexError(f"Unknown Unicode property {{name=<{prop}>, value=<{value}>}}")
        key = value if prop.lower() in {"gc", "general_category"} else "script"
    elif name not in _JAVA_PROPS and key not in _CATEGORIES and key.upper() not in _BINARY:
        is_block = name.startswith("In") and len(name) > 2
        is_script = name.startswith("Is") and _is_script(key)
        if not (is_block or is_script):
            raise JavaRegexError(f"Unknown character property name {{{name}}}")
        key = "script"
    upper = key.upper()
    if upper in {"L", "LC", "ALPHABETIC", "LETTER", "JAVALETTER", "JAVAALPHABETIC"}:
        return None, _LETTER
    if upper in {"LU", "UPPERCASE", "JAVAUPPERCASE"}:
        return "A-Z\u00c0-\u00d6\u00d8-\u00de", "[A-Z\u00c0-\u00d6\u00d8-\u00de]"
    if upper in {"LL", "LOWERCASE", "JAVALOWERCASE"}:
        return "a-z\u00df-\u00f6\u00f8-\u00ff", "[a-z\u00df-\u00f6\u00f8-\u00ff]"
    if upper in {"N", "ND", "DIGIT", "JAVADIGIT"}:
        return "\\d", "\\d"
    if upper in {"LD", "ALNUM", "JAVALETTERORDIGIT"}:
        return None, "[^\\W_]"
    if upper in {"Z", "ZS", "WHITE_SPACE", "WHITESPACE", "JAVAWHITESPACE", "JAVASPACECHAR", "BLANK"}:
        return "\\s", "\\s"
    if upper in {"C", "CC", "CONTROL", "JAVAISOCONTROL"}:
        return "\\x00-\\x1f\\x7f-\\x9f", "[\\x00-\\x1f\\x7f-\\x9f]"
    if upper.startswith("P") or upper == "PUNCTUATION":
        return _POSIX["Punct"], f"[{_POSIX['Punct']}]"
    if upper == "ALL":
        return None, "(?s:.)"
    if upper in {"WORD"}:
        return "\\w", "\\w"
    return None, "[^\\x00-\\x7f]"  # scripts, blocks, symbols, marks: "some non-ASCII character"


_CLASS_ESCAPES = {
    "d": ("0-9", "[0-9]"),
    "D": (None, "[^0-9]"),
    "w": ("a-zA-Z_0-9", "[a-zA-Z_0-9]"),
    "W": (None, "[^a-zA-Z_0-9]"),
    "s": (" \\t\\n\\x0b\\f\\r", "[ \\t\\n\\x0b\\f\\r]"),
    "S": (None, "[^ \\t\\n\\x0b\\f\\r]"),
    "h": (" \\t\\xa0\\u1680\\u180e\\u2000-\\u200a\\u202f\\u205f\\u3000", None),
    "H": (None, "[^ \\t\\xa0\\u1680\\u180e\\u2000-\\u200a\\u202f\\u205f\\u3000]"),
    "v": ("\\n\\x0b\\f\\r\\x85\\u2028\\u2029", None),
    "V": (None, "[^\\n\\x0b\\f\\r\\x85\\u2028\\u2029]"),
}
_CHAR_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f", "a": "\x07", "e": "\x1b"}


@dataclass(slots=True)
class _ClassSet:
    """A character class being built: bracket ranges plus one-character fragments (union)."""

    ranges: str = ""
    fragments: list[str] = field(default_factory=list)

    def fragment(self, negated: bool = False) -> str:
        parts = ([f"[{self.ranges}]"] if self.ranges else []) + self.fragments
        if not parts:
            union = _NEVER
        elif len(parts) == 1:
            union = parts[0]
        else:
            union = "(?:" + "|".join(parts) + ")"
        if not negated:
            return union
        if not self.fragments and self.ranges:
            return f"[^{self.ranges}]"
        return f"(?:(?!{union})(?s:.))"


class _JavaRegex:
    """Recursive descent over ``java.util.regex`` syntax (Java 17): raises where Java does and writes
    an equivalent (or approximate) Python pattern."""

    def __init__(self, pattern: str) -> None:
        self.src, self.i = pattern, 0
        self.groups = 0
        self.names: set[str] = set()
        self.comments = [False]  # (?x) state per group level

    def fail(self, message: str) -> JavaRegexError:
        return JavaRegexError(f"{message} near index {self.i}")

    def peek(self, offset: int = 0) -> str:
        j = self.i + offset
        return self.src[j] if j < len(self.src) else ""

    def eat(self) -> str:
        char = self.peek()
        self.i += 1
        return char

    def translate(self) -> str:
        out, _ = self.alternation(("", ""))
        if self.i < len(self.src):
            raise self.fail("Unmatched closing ')'")
        return out

    def skip_comments(self) -> None:
        if not self.comments[-1]:
            return
        while self.i < len(self.src):
            char = self.peek()
            if char in " \t\n\x0b\f\r":
                self.i += 1
            elif char == "#":
                while self.i < len(self.src) and self.peek() not in "\n\r\x85\u2028\u2029":
                    self.i += 1
            else:
                return

    def alternation(self, flags: tuple[str, str]) -> tuple[str, tuple[str, str]]:
        parts = []
        while True:
            text, flags = self.sequence(flags)
            parts.append(text)
            if self.peek() != "|":
                return "|".join(parts), flags
            self.i += 1

    @staticmethod
    def scoped(text: str, flags: tuple[str, str]) -> str:
        on, off = flags
        return f"(?{on}{'-' + off if off else ''}:{text})" if (on or off) and text else text

    def sequence(self, flags: tuple[str, str]) -> tuple[str, tuple[str, str]]:
        chunks: list[str] = []
        items: list[str] = []
        while True:
            self.skip_comments()
            char = self.peek()
            if char in ("", "|", ")"):
                break
            if char in "*+?":
                self.i += 1
                raise self.fail(f"Dangling meta character '{char}'")
            new_flags = self.inline_flags()
            if new_flags is not None:
                chunks.append(self.scoped("".join(items), flags))
                items, flags = [], self.merge(flags, new_flags)
                continue
            atom, kind = ("", "empty") if char == "{" else self.atom()
            items.append(self.quantified(atom, kind))
        chunks.append(self.scoped("".join(items), flags))
        return "".join(chunks), flags

    @staticmethod
    def merge(flags: tuple[str, str], change: tuple[str, str]) -> tuple[str, str]:
        on = "".join(sorted((set(flags[0]) - set(change[1])) | set(change[0])))
        off = "".join(sorted((set(flags[1]) - set(change[0])) | set(change[1])))
        return on, off

    def inline_flags(self) -> tuple[str, str] | None:
        """``(?idmsuxU-idmsuxU)`` (a flag group without ``:``); None when the next thing is not one."""
        match = re.match(r"\(\?([a-zA-Z]*)(?:-([a-zA-Z]*))?\)", self.src[self.i :])
        if match is None:
            return None
        on, off = self.check_flags(match.group(1)), self.check_flags(match.group(2) or "")
        self.i += match.end()
        if "x" in on:
            self.comments[-1] = True
        if "x" in off:
            self.comments[-1] = False
        return on.replace("x", ""), off.replace("x", "")

    def check_flags(self, letters: str) -> str:
        for letter in letters:
            if letter not in "idmsuxU":
                raise self.fail("Unknown inline modifier")
        return "".join(letter for letter in letters if letter in "imsx")

    def quantified(self, atom: str, kind: str) -> str:
        self.skip_comments()
        char = self.peek()
        if char in ("*", "+", "?"):
            self.i += 1
            quantifier = char
        elif char == "{":
            quantifier = self.counted()
        else:
            return atom
        if self.peek() in ("?", "+"):
            quantifier += self.eat()
        if kind == "empty":
            return ""  # Java repeats an empty node: matches the empty string
        if kind == "zero":
            return f"(?:{atom}){quantifier}"
        return atom + quantifier

    def counted(self) -> str:
        """``{n}``, ``{n,}``, ``{n,m}`` (white space skipped in comments mode); ints must not overflow."""
        end = self.src.find("}", self.i)
        text = self.src[self.i : end + 1] if end >= 0 else self.src[self.i :]
        if self.comments[-1]:
            text = re.sub(r"[ \t\n\x0b\f\r]", "", text)
        match = re.match(r"\{([0-9]+)(,([0-9]*))?\}", text)
        if match is None:
            if re.match(r"\{[0-9]", text):
                raise self.fail("Unclosed counted closure")
            raise self.fail("Illegal repetition")
        low, high = int(match.group(1)), match.group(3)
        if low >= 2**31 or (high and int(high) >= 2**31):
            raise self.fail("Illegal repetition range")
        if high and int(high) < low:
            raise self.fail("Illegal repetition range")
        self.i = end + 1
        return match.group(0)

    def atom(self) -> tuple[str, str]:
        char = self.eat()
        if char == "(":
            return self.group()
        if char == "[":
            return self.char_class().fragment(self.class_negated), "atom"
        if char == "\\":
            return self.escape()
        if char == ".":
            return ".", "atom"
        if char in "^$":
            return char, "zero"
        return re.escape(char), "atom"

    def group(self) -> tuple[str, str]:
        prefix, kind = "(", "atom"
        if self.peek() == "?":
            self.i += 1
            char = self.eat()
            if char in ":=!>":
                prefix = f"(?{char}"
                kind = "zero" if char in "=!" else "atom"
            elif char == "<" and self.peek() in ("=", "!"):
                prefix, kind = f"(?<{self.eat()}", "zero"
            elif char == "<":
                name = self.group_name()
                self.groups += 1
                prefix = f"(?P<{name}>"
            else:
                self.i -= 1
                match = re.match(r"([a-zA-Z]*)(?:-([a-zA-Z]*))?:", self.src[self.i :])
                if match is None:
                    raise self.fail("Unknown inline modifier")
                on, off = self.check_flags(match.group(1)), self.check_flags(match.group(2) or "")
                self.i += match.end()
                self.comments.append(self.comments[-1] or "x" in match.group(1))
                body, _ = self.alternation(("", ""))
                self.comments.pop()
                self.close_group()
                on, off = on.replace("x", ""), off.replace("x", "")
                return (self.scoped(body, (on, off)) if (on or off) else f"(?:{body})"), "atom"
        else:
            self.groups += 1
        self.comments.append(self.comments[-1])
        body, _ = self.alternation(("", ""))
        self.comments.pop()
        self.close_group()
        return f"{prefix}{body})", kind

    def close_group(self) -> None:
        if self.peek() != ")":
            raise self.fail("Unclosed group")
        self.i += 1

    def group_name(self) -> str:
        match = re.match(r"([A-Za-z][A-Za-z0-9]*)>", self.src[self.i :])
        if match is None:
            if not (self.peek().isascii() and self.peek().isalpha()):
                raise self.fail("capturing group name does not start with a Latin letter")
            raise self.fail("named capturing group is missing trailing '>'")
        name = match.group(1)
        if name in self.names:
            raise self.fail(f"Named capturing group <{name}> is already defined")
        self.names.add(name)
        self.i += match.end()
        return name

    def escape(self) -> tuple[str, str]:
        char = self.eat()
        if char == "":
            raise self.fail("Unexpected internal error")
        if char == "Q":
            end = self.src.find("\\E", self.i)
            literal = self.src[self.i :] if end < 0 else self.src[self.i : end]
            self.i = len(self.src) if end < 0 else end + 2
            if not literal:
                return "", "empty"
            return "".join(re.escape(c) for c in literal), "atom"
        if char in "123456789":
            number = int(char)
            while (
                self.peek().isascii()
                and self.peek().isdigit()
                and number * 10 + int(self.peek()) <= self.groups
            ):
                number = number * 10 + int(self.eat())
            return (f"(?:\\{number})" if number <= self.groups else _NEVER), "atom"
        if char == "k":
            match = re.match(r"<([A-Za-z][A-Za-z0-9]*)>", self.src[self.i :])
            if match is None:
                raise self.fail("\\k is not followed by '<' for named capturing group")
            if match.group(1) not in self.names:
                raise self.fail(f"named capturing group <{match.group(1)}> does not exist")
            self.i += match.end()
            return f"(?P={match.group(1)})", "atom"
        simple = {"b": "\\b", "B": "\\B", "A": "\\A", "z": "\\Z", "G": "(?:)"}
        if char in simple:
            if char == "b" and self.src.startswith("{g}", self.i):
                self.i += 3
                return "(?:)", "zero"
            return simple[char], "zero"
        if char == "Z":
            return "(?=(?:\\r\\n|[\\n\\r\\x85\\u2028\\u2029])?\\Z)", "zero"
        if char == "R":
            return "(?:\\r\\n|[\\n\\x0b\\f\\r\\x85\\u2028\\u2029])", "atom"
        if char == "X":
            return "(?s:.)", "atom"
        if char in _CLASS_ESCAPES:
            ranges, fragment = _CLASS_ESCAPES[char]
            return (fragment or f"[{ranges}]"), "atom"
        if char in "pP":
            ranges, fragment = _property(self.property_name())
            if char == "P":
                fragment = f"[^{ranges}]" if ranges else f"(?:(?!{fragment})(?s:.))"
            return fragment, "atom"
        return re.escape(self.char_escape(char)), "atom"

    def property_name(self) -> str:
        if self.peek() == "{":
            end = self.src.find("}", self.i)
            if end < 0:
                raise self.fail("Unclosed character family")
            name = self.src[self.i + 1 : end]
            self.i = end + 1
            if not name:
                raise self.fail("Empty character family")
            return name
        name = self.eat()
        if name not in "LMNZCPS" or not name:
            raise self.fail("Illegal character family")  # \pX other than a one-letter category
        return name

    def char_escape(self, char: str) -> str:
        """Escapes that stand for one character (outside and inside classes)."""
        if char in _CHAR_ESCAPES:
            return _CHAR_ESCAPES[char]
        if char == "0":
            digits = ""
            while len(digits) < 3 and self.peek() in "01234567" and self.peek():
                if len(digits) == 2 and digits[0] > "3":
                    break
                digits += self.eat()
            if not digits:
                raise self.fail("Illegal octal escape sequence")
            return chr(int(digits, 8))
        if char == "x":
            if self.peek() == "{":
                match = re.match(r"\{([0-9a-fA-F]+)\}", self.src[self.i :])
                if match is None or int(match.group(1), 16) > 0x10FFFF:
                    raise self.fail("Illegal hexadecimal escape sequence")
                self.i += match.end()
                return chr(int(match.group(1), 16))
            match = re.match(r"[0-9a-fA-F]{2}", self.src[self.i :])
            if match is None:
                raise self.fail("Illegal hexadecimal escape sequence")
            self.i += 2
            return chr(int(match.group(0), 16))
        if char == "u":
            match = re.match(r"[0-9a-fA-F]{4}", self.src[self.i :])
            if match is None:
                raise self.fail("Illegal Unicode escape sequence")
            self.i += 4
            return chr(int(match.group(0), 16))
        if char == "c":
            if self.i >= len(self.src):
                raise self.fail("Illegal control escape sequence")
            return chr(ord(self.eat()) ^ 64)
        if char == "N":
            match = re.match(r"\{([^}]*)\}", self.src[self.i :])
            if match is None:
                raise self.fail("Illegal character name escape sequence")
            try:
                value = unicodedata.lookup(match.group(1))
            except KeyError:
                raise self.fail(f"Unknown character name [{match.group(1)}]") from None
            self.i += match.end()
            return value
        if char.isascii() and char.isalnum():
            raise self.fail("Illegal/unsupported escape sequence")
        return char

    class_negated = False

    def char_class(self) -> _ClassSet:
        """After ``[``: unions (nested classes), ranges and ``&&`` intersections."""
        negated = self.peek() == "^"
        if negated:
            self.i += 1
        current = _ClassSet()
        operands: list[str] = []
        first = True
        while True:
            if self.comments[-1]:
                while self.peek() and self.peek() in " \t\n\x0b\f\r":
                    self.i += 1
            char = self.peek()
            if char == "":
                raise self.fail("Unclosed character class")
            if char == "]" and not first:
                self.i += 1
                break
            first = False
            if char == "[":
                self.i += 1
                nested = self.char_class()
                current.fragments.append(nested.fragment(self.class_negated))
                continue
            if char == "&" and self.peek(1) == "&":
                self.i += 2
                operands.append(current.fragment())
                current = _ClassSet()
                continue
            self.i += 1
            if char == "\\":
                item = self.class_escape()
                if isinstance(item, tuple):
                    ranges, fragment = item
                    if ranges is not None:
                        current.ranges += ranges
                    else:
                        current.fragments.append(fragment)
                    continue
                low = item
            else:
                low = char
            if self.peek() == "-" and self.peek(1) not in ("]", "["):
                self.i += 1
                end = self.eat()
                if end == "":
                    raise self.fail("Unclosed character class")
                if end == "\\":
                    item = self.class_escape()
                    if isinstance(item, tuple):
                        raise self.fail("Illegal character range")
                    end = item
                if ord(end) < ord(low):
                    raise self.fail("Illegal character range")
                current.ranges += f"{re.escape(low)}-{re.escape(end)}"
            else:
                current.ranges += re.escape(low)
        self.class_negated = negated
        if operands:
            operands.append(current.fragment())
            result = operands[-1]
            for operand in reversed(operands[:-1]):
                result = f"(?:(?={operand}){result})"
            return _ClassSet("", [result])
        return current

    def class_escape(self) -> str | tuple[str | None, str]:
        char = self.eat()
        if char == "":
            raise self.fail("Unexpected internal error")
        if char in _CLASS_ESCAPES:
            ranges, fragment = _CLASS_ESCAPES[char]
            return ranges, fragment or f"[{ranges}]"
        if char in "pP":
            ranges, fragment = _property(self.property_name())
            if char == "P":
                return None, (f"[^{ranges}]" if ranges else f"(?:(?!{fragment})(?s:.))")
            return ranges, fragment
        if char == "Q":
            end = self.src.find("\\E", self.i)
            literal = self.src[self.i :] if end < 0 else self.src[self.i : end]
            self.i = len(self.src) if end < 0 else end + 2
            return "".join(re.escape(c) for c in literal), ""
        if char in "bBAzZGRXk123456789":
            raise self.fail("Illegal/unsupported escape sequence")
        return self.char_escape(char)


@lru_cache(maxsize=4096)
def java_regex(pattern: str) -> re.Pattern[str]:
    """Compile a resource-name regex as Druid does (``Pattern.compile``), for ``Matcher.matches()``.

    Raises ``JavaRegexError`` where Java rejects the pattern. A pattern Java accepts but the Python
    translation cannot express (e.g. a variable-length look-behind) never matches.
    """
    translated = _JavaRegex(pattern).translate()
    try:
        return re.compile(translated)
    except (re.error, OverflowError, RecursionError):
        return re.compile(_NEVER)
