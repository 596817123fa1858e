"""Java regular expressions (``java.util.regex``, Java 17) for Druid resource names.

Druid compiles the resource name of every role permission with Java's ``Pattern.compile`` and grants the
permission on a resource when ``matcher(name).matches()``, i.e. when the regex matches the WHOLE name. If
one name of a permission list does not compile, Druid answers 400 for the whole list, which leaves the role
without permissions. Python's ``re`` cannot stand in for Java: it refuses valid Java patterns
(``\\p{Lu}``, ``\\p{javaLowerCase}``, ``\\Qa.b\\E``) and accepts patterns Java refuses (``(?#c)x``,
``(?a)x``, ``(?P<n>x)``). Hence this module, which follows Java's grammar:

- ``check(pattern)`` raises ``JavaRegexError`` where ``Pattern.compile`` would throw.
- ``may_fullmatch(pattern, text)``: could Java's ``matches()`` be true? For security decisions, so it
  answers True whenever it is not certain.
- ``java_regex(pattern)``: a Python translation for matching (the fake Coordinator's permission checks).

The translation matches like Java on printable ASCII text except for constructs it only approximates:
Unicode properties, scripts and blocks, ``\\X``, ``\\G``, ``\\b{g}``, back references, look-behinds,
atomic groups, possessive quantifiers, the ``U`` and ``c`` flags, and Unicode case folding (``iu``) of
non-ASCII characters; ``may_fullmatch`` answers True wherever one of them is involved. A Java pattern
that the translation cannot express in Python (a variable-length look-behind) never matches in
``java_regex``.

Known differences from Java 17 in what compiles: groups or classes nested more than 100 deep are refused
(Java's own limit depends on its thread stack: "Stack overflow during pattern compilation"), and
``\\N{name}`` takes the character names of Python's Unicode database, not Java's (see ``named_character``).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["JavaRegexError", "check", "java_regex", "may_fullmatch"]


class JavaRegexError(ValueError):
    """``java.util.regex.Pattern.compile`` would throw ``PatternSyntaxException``."""


_NEVER = "(?!)"
_MAX_REPS = 0x7FFFFFFF  # Java's bound for *, + and {n,}; also the largest count {n} may hold
_MAX_NESTING = 100
#: Above this bound on backtracking paths ``may_fullmatch`` does not run Python's matcher (ReDoS guard).
_MAX_PATHS = 20_000
_JAVA_FLAGS = frozenset("cdimsuxU")
_GROUP_TYPES = frozenset(":=!><$@")  # after "(?"; anything else starts flags
_CASE_FLAGS = {"": "-i", "ai": "ai", "i": "ui"}  # Python's inline flags for each case mode
_SPACE = " \t\n\x0b\f\r"
_LINE_ENDS = "\n\r\x85\u2028\u2029"
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")

# ------------------------------------------------------------------------------------ property names


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: ``\p{name}`` without prefix: categories, POSIX classes and ``java.lang.Character`` predicates (case matters).
_CATEGORIES = _words(
    """Cn Lu Ll Lt Lm Lo Mn Me Mc Nd Nl No Zs Zl Zp Cc Cf Co Cs Pd Ps Pe Pc Po Sm Sc Sk So Pi Pf L M N Z C P S
    LC LD L1 all"""
)
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
_JAVA_PROPERTIES = _words(
    """javaLowerCase javaUpperCase javaWhitespace javaMirrored javaAlphabetic javaIdeographic javaTitleCase
    javaDigit javaDefined javaLetter javaLetterOrDigit javaJavaIdentifierStart javaJavaIdentifierPart
    javaUnicodeIdentifierStart javaUnicodeIdentifierPart javaIdentifierIgnorable javaSpaceChar
    javaISOControl"""
)
_FOR_PROPERTY = _CATEGORIES | set(_POSIX) | _JAVA_PROPERTIES
#: POSIX names as the ``U`` flag (UNICODE_CHARACTER_CLASS) takes them without prefix (any case).
_POSIX_UNICODE = _words("ALPHA LOWER UPPER SPACE PUNCT XDIGIT ALNUM CNTRL DIGIT BLANK GRAPH PRINT")
#: ``\p{IsName}`` binary properties (any case).
_BINARY = _POSIX_UNICODE | _words(
    """ALPHABETIC ASSIGNED CONTROL HEXDIGIT HEX_DIGIT IDEOGRAPHIC JOINCONTROL JOIN_CONTROL LETTER LOWERCASE
    NONCHARACTERCODEPOINT NONCHARACTER_CODE_POINT TITLECASE PUNCTUATION UPPERCASE WHITESPACE WHITE_SPACE
    WORD"""
)
#: Character.UnicodeScript constants and the ISO 15924 aliases ``forName`` takes (any case).
_SCRIPTS = _words(
    """COMMON LATIN GREEK CYRILLIC ARMENIAN HEBREW ARABIC SYRIAC THAANA DEVANAGARI BENGALI GURMUKHI GUJARATI
    ORIYA TAMIL TELUGU KANNADA MALAYALAM SINHALA THAI LAO TIBETAN MYANMAR GEORGIAN HANGUL ETHIOPIC
    CHEROKEE CANADIAN_ABORIGINAL OGHAM RUNIC KHMER MONGOLIAN HIRAGANA KATAKANA BOPOMOFO HAN YI OLD_ITALIC
    GOTHIC DESERET INHERITED TAGALOG HANUNOO BUHID TAGBANWA LIMBU TAI_LE LINEAR_B UGARITIC SHAVIAN OSMANYA
    CYPRIOT BRAILLE BUGINESE COPTIC NEW_TAI_LUE GLAGOLITIC TIFINAGH SYLOTI_NAGRI OLD_PERSIAN KHAROSHTHI
    BALINESE CUNEIFORM PHOENICIAN PHAGS_PA NKO SUNDANESE BATAK LEPCHA OL_CHIKI VAI SAURASHTRA KAYAH_LI
    REJANG LYCIAN CARIAN LYDIAN CHAM TAI_THAM TAI_VIET AVESTAN EGYPTIAN_HIEROGLYPHS SAMARITAN MANDAIC LISU
    BAMUM JAVANESE MEETEI_MAYEK IMPERIAL_ARAMAIC OLD_SOUTH_ARABIAN INSCRIPTIONAL_PARTHIAN
    INSCRIPTIONAL_PAHLAVI OLD_TURKIC BRAHMI KAITHI MEROITIC_HIEROGLYPHS MEROITIC_CURSIVE SORA_SOMPENG
    CHAKMA SHARADA TAKRI MIAO CAUCASIAN_ALBANIAN BASSA_VAH DUPLOYAN ELBASAN GRANTHA PAHAWH_HMONG KHOJKI
    LINEAR_A MAHAJANI MANICHAEAN MENDE_KIKAKUI MODI MRO OLD_NORTH_ARABIAN NABATAEAN PALMYRENE PAU_CIN_HAU
    OLD_PERMIC PSALTER_PAHLAVI SIDDHAM KHUDAWADI TIRHUTA WARANG_CITI AHOM ANATOLIAN_HIEROGLYPHS HATRAN
    MULTANI OLD_HUNGARIAN SIGNWRITING ADLAM BHAIKSUKI MARCHEN NEWA OSAGE TANGUT MASARAM_GONDI NUSHU
    SOYOMBO ZANABAZAR_SQUARE HANIFI_ROHINGYA OLD_SOGDIAN SOGDIAN DOGRA GUNJALA_GONDI MAKASAR MEDEFAIDRIN
    ELYMAIC NANDINAGARI NYIAKENG_PUACHUE_HMONG WANCHO YEZIDI CHORASMIAN DIVES_AKURU KHITAN_SMALL_SCRIPT
    UNKNOWN"""
) | _words(
    """ADLM AGHB AHOM ARAB ARMI ARMN AVST BALI BAMU BASS BATK BENG BHKS BOPO BRAH BRAI BUGI BUHD CAKM CANS CARI
    CHAM CHER CHRS COPT CPRT CYRL DEVA DIAK DOGR DSRT DUPL EGYP ELBA ELYM ETHI GEOR GLAG GONG GONM GOTH
    GRAN GREK GUJR GURU HANG HANI HANO HATR HEBR HIRA HLUW HMNG HMNP HUNG ITAL JAVA KALI KANA KHAR KHMR
    KHOJ KITS KNDA KTHI LANA LAOO LATN LEPC LIMB LINA LINB LISU LYCI LYDI MAHJ MAKA MAND MANI MARC MEDF
    MEND MERC MERO MLYM MODI MONG MROO MTEI MULT MYMR NAND NARB NBAT NEWA NKOO NSHU OGAM OLCK ORKH ORYA
    OSGE OSMA PALM PAUC PERM PHAG PHLI PHLP PHNX PLRD PRTI RJNG ROHG RUNR SAMR SARB SAUR SGNW SHAW SHRD
    SIDD SIND SINH SOGD SOGO SORA SOYO SUND SYLO SYRC TAGB TAKR TALE TALU TAML TANG TAVT TELU TFNG TGLG
    THAA THAI TIBT TIRH UGAR VAII WARA WCHO XPEO XSUX YEZI YIII ZANB ZINH ZYYY ZZZZ"""
)
#: Character.UnicodeBlock names; ``forName`` also takes them without spaces, or with ``_`` for spaces and
#: ``-`` (any case).
_BLOCK_NAMES = """ADLAM; AEGEAN NUMBERS; AHOM; ALCHEMICAL SYMBOLS; ALPHABETIC PRESENTATION FORMS; ANATOLIAN HIEROGLYPHS;
    ANCIENT GREEK MUSICAL NOTATION; ANCIENT GREEK NUMBERS; ANCIENT SYMBOLS; ARABIC; ARABIC EXTENDED-A;
    ARABIC MATHEMATICAL ALPHABETIC SYMBOLS; ARABIC PRESENTATION FORMS-A; ARABIC PRESENTATION FORMS-B;
    ARABIC SUPPLEMENT; ARMENIAN; ARROWS; AVESTAN; BALINESE; BAMUM; BAMUM SUPPLEMENT; BASIC LATIN; BASSA
    VAH; BATAK; BENGALI; BHAIKSUKI; BLOCK ELEMENTS; BOPOMOFO; BOPOMOFO EXTENDED; BOX DRAWING; BRAHMI;
    BRAILLE PATTERNS; BUGINESE; BUHID; BYZANTINE MUSICAL SYMBOLS; CARIAN; CAUCASIAN ALBANIAN; CHAKMA;
    CHAM; CHEROKEE; CHEROKEE SUPPLEMENT; CHESS SYMBOLS; CHORASMIAN; CJK COMPATIBILITY; CJK COMPATIBILITY
    FORMS; CJK COMPATIBILITY IDEOGRAPHS; CJK COMPATIBILITY IDEOGRAPHS SUPPLEMENT; CJK RADICALS SUPPLEMENT;
    CJK STROKES; CJK SYMBOLS AND PUNCTUATION; CJK UNIFIED IDEOGRAPHS; CJK UNIFIED IDEOGRAPHS EXTENSION A;
    CJK UNIFIED IDEOGRAPHS EXTENSION B; CJK UNIFIED IDEOGRAPHS EXTENSION C; CJK UNIFIED IDEOGRAPHS
    EXTENSION D; CJK UNIFIED IDEOGRAPHS EXTENSION E; CJK UNIFIED IDEOGRAPHS EXTENSION F; CJK UNIFIED
    IDEOGRAPHS EXTENSION G; COMBINING DIACRITICAL MARKS; COMBINING DIACRITICAL MARKS EXTENDED; COMBINING
    DIACRITICAL MARKS SUPPLEMENT; COMBINING HALF MARKS; COMMON INDIC NUMBER FORMS; CONTROL PICTURES;
    COPTIC; COPTIC EPACT NUMBERS; COUNTING ROD NUMERALS; CUNEIFORM; CUNEIFORM NUMBERS AND PUNCTUATION;
    CURRENCY SYMBOLS; CYPRIOT SYLLABARY; CYRILLIC; CYRILLIC EXTENDED-A; CYRILLIC EXTENDED-B; CYRILLIC
    EXTENDED-C; DESERET; DEVANAGARI; DEVANAGARI EXTENDED; DINGBATS; DIVES AKURU; DOGRA; DOMINO TILES;
    DUPLOYAN; EARLY DYNASTIC CUNEIFORM; EGYPTIAN HIEROGLYPHS; EGYPTIAN HIEROGLYPH FORMAT CONTROLS;
    ELBASAN; ELYMAIC; EMOTICONS; ENCLOSED ALPHANUMERICS; ENCLOSED ALPHANUMERIC SUPPLEMENT; ENCLOSED CJK
    LETTERS AND MONTHS; ENCLOSED IDEOGRAPHIC SUPPLEMENT; ETHIOPIC; ETHIOPIC EXTENDED; ETHIOPIC EXTENDED-A;
    ETHIOPIC SUPPLEMENT; GENERAL PUNCTUATION; GEOMETRIC SHAPES; GEOMETRIC SHAPES EXTENDED; GEORGIAN;
    GEORGIAN EXTENDED; GEORGIAN SUPPLEMENT; GLAGOLITIC; GLAGOLITIC SUPPLEMENT; GOTHIC; GRANTHA; GREEK
    EXTENDED; GUJARATI; GUNJALA GONDI; GURMUKHI; HALFWIDTH AND FULLWIDTH FORMS; HANGUL COMPATIBILITY JAMO;
    HANGUL JAMO; HANGUL JAMO EXTENDED-A; HANGUL JAMO EXTENDED-B; HANGUL SYLLABLES; HANIFI ROHINGYA;
    HANUNOO; HATRAN; HEBREW; HIGH PRIVATE USE SURROGATES; HIGH SURROGATES; HIRAGANA; IDEOGRAPHIC
    DESCRIPTION CHARACTERS; IDEOGRAPHIC SYMBOLS AND PUNCTUATION; IMPERIAL ARAMAIC; INDIC SIYAQ NUMBERS;
    INSCRIPTIONAL PAHLAVI; INSCRIPTIONAL PARTHIAN; IPA EXTENSIONS; JAVANESE; KAITHI; KANA EXTENDED-A; KANA
    SUPPLEMENT; KANBUN; KANGXI RADICALS; KANNADA; KATAKANA; KATAKANA PHONETIC EXTENSIONS; KAYAH LI;
    KHAROSHTHI; KHITAN SMALL SCRIPT; KHMER; KHMER SYMBOLS; KHOJKI; KHUDAWADI; LAO; LATIN-1 SUPPLEMENT;
    LATIN EXTENDED-A; LATIN EXTENDED ADDITIONAL; LATIN EXTENDED-B; LATIN EXTENDED-C; LATIN EXTENDED-D;
    LATIN EXTENDED-E; LEPCHA; LETTERLIKE SYMBOLS; LIMBU; LINEAR A; LINEAR B IDEOGRAMS; LINEAR B SYLLABARY;
    LISU; LISU SUPPLEMENT; LOW SURROGATES; LYCIAN; LYDIAN; MAHAJANI; MAHJONG TILES; MAKASAR; MALAYALAM;
    MANDAIC; MANICHAEAN; MARCHEN; MASARAM GONDI; MATHEMATICAL ALPHANUMERIC SYMBOLS; MATHEMATICAL
    OPERATORS; MAYAN NUMERALS; MEDEFAIDRIN; MEETEI MAYEK; MEETEI MAYEK EXTENSIONS; MENDE KIKAKUI; MEROITIC
    CURSIVE; MEROITIC HIEROGLYPHS; MIAO; MISCELLANEOUS MATHEMATICAL SYMBOLS-A; MISCELLANEOUS MATHEMATICAL
    SYMBOLS-B; MISCELLANEOUS SYMBOLS; MISCELLANEOUS SYMBOLS AND ARROWS; MISCELLANEOUS SYMBOLS AND
    PICTOGRAPHS; MISCELLANEOUS TECHNICAL; MODI; MODIFIER TONE LETTERS; MONGOLIAN; MONGOLIAN SUPPLEMENT;
    MRO; MULTANI; MUSICAL SYMBOLS; MYANMAR; MYANMAR EXTENDED-A; MYANMAR EXTENDED-B; NABATAEAN;
    NANDINAGARI; NEWA; NEW TAI LUE; NKO; NUMBER FORMS; NUSHU; NYIAKENG PUACHUE HMONG; OGHAM; OLD
    HUNGARIAN; OLD ITALIC; OLD NORTH ARABIAN; OLD PERMIC; OLD PERSIAN; OLD SOGDIAN; OLD SOUTH ARABIAN; OLD
    TURKIC; OL CHIKI; OPTICAL CHARACTER RECOGNITION; ORIYA; ORNAMENTAL DINGBATS; OSAGE; OSMANYA; OTTOMAN
    SIYAQ NUMBERS; PAHAWH HMONG; PALMYRENE; PAU CIN HAU; PHAGS-PA; PHAISTOS DISC; PHOENICIAN; PHONETIC
    EXTENSIONS; PHONETIC EXTENSIONS SUPPLEMENT; PLAYING CARDS; PRIVATE USE AREA; PSALTER PAHLAVI; REJANG;
    RUMI NUMERAL SYMBOLS; RUNIC; SAMARITAN; SAURASHTRA; SHARADA; SHAVIAN; SHORTHAND FORMAT CONTROLS;
    SIDDHAM; SINHALA; SINHALA ARCHAIC NUMBERS; SMALL FORM VARIANTS; SMALL KANA EXTENSION; SOGDIAN; SORA
    SOMPENG; SOYOMBO; SPACING MODIFIER LETTERS; SPECIALS; SUNDANESE; SUNDANESE SUPPLEMENT; SUPERSCRIPTS
    AND SUBSCRIPTS; SUPPLEMENTAL ARROWS-A; SUPPLEMENTAL ARROWS-B; SUPPLEMENTAL ARROWS-C; SUPPLEMENTAL
    MATHEMATICAL OPERATORS; SUPPLEMENTAL PUNCTUATION; SUPPLEMENTAL SYMBOLS AND PICTOGRAPHS; SUPPLEMENTARY
    PRIVATE USE AREA-A; SUPPLEMENTARY PRIVATE USE AREA-B; SURROGATES_AREA; SUTTON SIGNWRITING; SYLOTI
    NAGRI; SYMBOLS AND PICTOGRAPHS EXTENDED-A; SYMBOLS FOR LEGACY COMPUTING; SYRIAC; SYRIAC SUPPLEMENT;
    TAGALOG; TAGBANWA; TAGS; TAI LE; TAI THAM; TAI VIET; TAI XUAN JING SYMBOLS; TAKRI; TAMIL; TAMIL
    SUPPLEMENT; TANGUT; TANGUT COMPONENTS; TANGUT SUPPLEMENT; TELUGU; THAANA; THAI; TIBETAN; TIFINAGH;
    TIRHUTA; TRANSPORT AND MAP SYMBOLS; UGARITIC; UNIFIED CANADIAN ABORIGINAL SYLLABICS; UNIFIED CANADIAN
    ABORIGINAL SYLLABICS EXTENDED; VAI; VARIATION SELECTORS; VARIATION SELECTORS SUPPLEMENT; VEDIC
    EXTENSIONS; VERTICAL FORMS; WANCHO; WARANG CITI; YEZIDI; YIJING HEXAGRAM SYMBOLS; YI RADICALS; YI
    SYLLABLES; ZANABAZAR SQUARE"""
#: Historical names Java keeps as well.
_BLOCK_ALIASES = """GREEK; GREEK AND COPTIC; GREEKANDCOPTIC; CYRILLIC SUPPLEMENT; CYRILLICSUPPLEMENT;
    CYRILLIC SUPPLEMENTARY; CYRILLICSUPPLEMENTARY; CYRILLIC_SUPPLEMENTARY; COMBINING DIACRITICAL MARKS FOR
    SYMBOLS; COMBININGDIACRITICALMARKSFORSYMBOLS; COMBINING MARKS FOR SYMBOLS; COMBININGMARKSFORSYMBOLS;
    COMBINING_MARKS_FOR_SYMBOLS"""


def _names(text: str) -> list[str]:
    return [" ".join(name.split()) for name in text.split(";")]


_BLOCKS = frozenset(
    form
    for name in _names(_BLOCK_NAMES)
    for form in (name, name.replace(" ", ""), name.replace(" ", "_").replace("-", "_"))
) | frozenset(_names(_BLOCK_ALIASES))

_LETTER = "(?u:[^\\W\\d_])"  # (?u:...): Unicode classes even where Java's i flag makes Python's ASCII
_GENERATED_NAMES = ("CJK UNIFIED IDEOGRAPH-", "HANGUL SYLLABLE ")  # Java names these by block and code
_NON_ASCII = "[^\\x00-\\x7f]"
#: Java's names of the control characters U+0000-U+001F and U+007F-U+009F, in order.
_CONTROL_NAMES = """NULL; START OF HEADING; START OF TEXT; END OF TEXT; END OF TRANSMISSION; ENQUIRY; ACKNOWLEDGE; BEL;
    BACKSPACE; CHARACTER TABULATION; LINE FEED (LF); LINE TABULATION; FORM FEED (FF); CARRIAGE RETURN
    (CR); SHIFT OUT; SHIFT IN; DATA LINK ESCAPE; DEVICE CONTROL ONE; DEVICE CONTROL TWO; DEVICE CONTROL
    THREE; DEVICE CONTROL FOUR; NEGATIVE ACKNOWLEDGE; SYNCHRONOUS IDLE; END OF TRANSMISSION BLOCK; CANCEL;
    END OF MEDIUM; SUBSTITUTE; ESCAPE; INFORMATION SEPARATOR FOUR; INFORMATION SEPARATOR THREE;
    INFORMATION SEPARATOR TWO; INFORMATION SEPARATOR ONE; DELETE; PADDING CHARACTER; HIGH OCTET PRESET;
    BREAK PERMITTED HERE; NO BREAK HERE; LATIN 1 SUPPLEMENT 84; NEXT LINE (NEL); START OF SELECTED AREA;
    END OF SELECTED AREA; CHARACTER TABULATION SET; CHARACTER TABULATION WITH JUSTIFICATION; LINE
    TABULATION SET; PARTIAL LINE FORWARD; PARTIAL LINE BACKWARD; REVERSE LINE FEED; SINGLE SHIFT TWO;
    SINGLE SHIFT THREE; DEVICE CONTROL STRING; PRIVATE USE ONE; PRIVATE USE TWO; SET TRANSMIT STATE;
    CANCEL CHARACTER; MESSAGE WAITING; START OF GUARDED AREA; END OF GUARDED AREA; START OF STRING; SINGLE
    GRAPHIC CHARACTER INTRODUCER; SINGLE CHARACTER INTRODUCER; CONTROL SEQUENCE INTRODUCER; STRING
    TERMINATOR; OPERATING SYSTEM COMMAND; PRIVACY MESSAGE; APPLICATION PROGRAM COMMAND"""
_CONTROLS = dict(zip(_names(_CONTROL_NAMES), map(chr, [*range(0x20), *range(0x7F, 0xA0)]), strict=True))


def _approximation(key: str) -> tuple[str | None, str]:
    """(bracket-embeddable ranges or None, a one-character fragment) for a Unicode property: Python's
    Unicode ``\\w``/``\\d``/``\\s`` stand in for Java's tables."""
    upper = key.upper()
    if upper in {"L", "LC", "ALPHABETIC", "LETTER", "ALPHA", "JAVALETTER", "JAVAALPHABETIC"}:
        return None, _LETTER
    if upper in {"LU", "UPPERCASE", "UPPER", "JAVAUPPERCASE"}:
        return "A-Z\u00c0-\u00d6\u00d8-\u00de", "[A-Z\u00c0-\u00d6\u00d8-\u00de]"
    if upper in {"LL", "LOWERCASE", "LOWER", "JAVALOWERCASE"}:
        return "a-z\u00df-\u00f6\u00f8-\u00ff", "[a-z\u00df-\u00f6\u00f8-\u00ff]"
    if upper in {"N", "ND", "DIGIT", "JAVADIGIT"}:
        return None, "(?u:\\d)"
    if upper in {"LD", "ALNUM", "JAVALETTERORDIGIT"}:
        return None, "(?u:[^\\W_])"
    if upper in {"Z", "ZS", "WHITE_SPACE", "WHITESPACE", "SPACE", "JAVAWHITESPACE", "JAVASPACECHAR", "BLANK"}:
        return None, "(?u:\\s)"
    if upper in {"C", "CC", "CONTROL", "CNTRL", "JAVAISOCONTROL"}:
        return "\\x00-\\x1f\\x7f-\\x9f", "[\\x00-\\x1f\\x7f-\\x9f]"
    if (upper.startswith("P") and len(upper) <= 2) or upper in {"PUNCTUATION", "PUNCT"}:
        return _POSIX["Punct"], f"[{_POSIX['Punct']}]"
    if upper == "ALL":
        return None, "(?s:.)"
    if upper == "WORD":
        return None, "(?u:\\w)"
    if upper == "ASCII":
        return _POSIX["ASCII"], f"[{_POSIX['ASCII']}]"
    return None, _NON_ASCII  # scripts, blocks, symbols, marks...: "some non-ASCII character"


def _property(name: str, unicode_classes: bool) -> tuple[str | None, str, bool] | None:
    """``\\p{name}`` as Java 17 resolves it: (ranges, fragment, exact), or None when Java does not know
    the name. Only POSIX classes without the ``U`` flag translate exactly."""
    if "=" in name:
        prop, _, value = name.partition("=")
        prop = prop.lower()
        if prop in {"sc", "script"}:
            known = value.upper() in _SCRIPTS
        elif prop in {"blk", "block"}:
            known = value.upper() in _BLOCKS
        elif prop in {"gc", "general_category"}:
            known = value in _FOR_PROPERTY
        else:
            known = False
        if not known:
            return None
        return (*_approximation(value if prop in {"gc", "general_category"} else "script"), False)
    if name.startswith("In"):
        return (None, _NON_ASCII, False) if name[2:].upper() in _BLOCKS else None
    if name.startswith("Is"):
        short = name[2:]
        if short.upper() in _BINARY or short in _FOR_PROPERTY:
            return (*_approximation(short), False)
        return (None, _NON_ASCII, False) if short.upper() in _SCRIPTS else None
    if unicode_classes and name.upper() in _POSIX_UNICODE:
        return (*_approximation(name), False)
    if name not in _FOR_PROPERTY:
        return None
    if name in _POSIX and not unicode_classes:
        return _POSIX[name], f"[{_POSIX[name]}]", True
    return (*_approximation(name), False)


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


def _unquote(pattern: str) -> str:
    """Rewrite ``\\Q...\\E`` quotes as literal characters, before parsing, as Java does: a quantifier after
    ``\\E`` applies to the last quoted character only, and an empty quote disappears."""
    if "\\Q" not in pattern:
        return pattern
    out: list[str] = []
    i, end = 0, len(pattern)
    while i < end:
        if pattern[i] != "\\":
            out.append(pattern[i])
            i += 1
        elif not pattern.startswith("\\Q", i):
            out.append(pattern[i : i + 2])
            i += 2
        else:
            i += 2
            first = True
            while i < end and not pattern.startswith("\\E", i):
                char = pattern[i]
                if not char.isascii() or char.isalpha():
                    out.append(char)
                elif char.isdigit():
                    out.append(f"\\x3{char}" if first else char)  # no digit may extend an escape before
                else:
                    out.append("\\" + char)
                first = False
                i += 1
            i += 2
    return "".join(out)


# ------------------------------------------------------------------------------------ the parse tree


@dataclass(frozen=True, slots=True)
class _Node:
    """What the parser keeps of a piece of the pattern: enough to check look-behinds as Java does and to
    bound the matcher's work.

    kind: ``char`` (one character), ``canonical`` (a class under the ``c`` flag), ``line`` (``\\R``),
    ``grapheme`` (``\\X``), ``backref``, ``zero``
    (anchors, boundaries), ``empty``, ``look`` (look-around), ``atomic``, ``group``, ``alt``, ``seq``, ``quant``.
    """

    kind: str
    parts: tuple[_Node, ...] = ()
    low: int = 0
    high: int = 0  # _MAX_REPS for *, + and {n,}
    mode: str = ""  # quantifier: "" greedy, "?" lazy, "+" possessive
    ques: bool = False  # ``?`` or ``{0,1}``
    unbounded: bool = False  # ``*``, ``+`` or ``{n,}``


_EMPTY = _Node("empty")


def _int(value: int) -> int:
    """Java ``int`` arithmetic (wraps around)."""
    value &= 0xFFFFFFFF
    return value - 0x100000000 if value & 0x80000000 else value


@dataclass(slots=True)
class _Study:
    """Java's ``TreeInfo`` as far as look-behinds need it: the maximum length (an ``int`` that wraps, as
    in Java), whether it is valid, and whether the piece is deterministic."""

    max_length: int = 0
    max_valid: bool = True
    deterministic: bool = True


def _flat(node: _Node) -> list[_Node]:
    """Java's node chain: plain groups are inlined; ``?`` on a group is an alternation with an empty branch."""
    if node.kind == "seq":
        return [item for part in node.parts for item in _flat(part)]
    if node.kind == "group":
        return _flat(node.parts[0])
    if node.kind == "alt" and len(node.parts) == 1:
        return _flat(node.parts[0])
    if node.kind == "quant" and node.parts[0].kind == "group" and node.ques and node.mode != "+":
        return [_Node("alt", (node.parts[0], _Node("seq")))]
    return [node]


def _study(chain: Sequence[_Node], info: _Study) -> _Study:
    """Java's ``study``: walk the chain; an alternation studies its branches and the rest of the chain
    each from scratch and adds them up without overflow checks."""
    for index, node in enumerate(chain):
        if node.kind == "alt":
            longest, valid = -1, True
            for branch in node.parts:
                branch_info = _study(_flat(branch), _Study())
                longest, valid = max(longest, branch_info.max_length), valid and branch_info.max_valid
            rest = _study(chain[index + 1 :], _Study())
            return _Study(
                _int(rest.max_length + _int(info.max_length + longest)),
                rest.max_valid and info.max_valid and valid,
                False,
            )
        info = _study_node(node, info)
    return info


def _study_node(node: _Node, info: _Study) -> _Study:
    kind = node.kind
    if kind == "char":
        return _Study(_int(info.max_length + 1), info.max_valid, info.deterministic)
    if kind == "line":
        return _Study(_int(info.max_length + 2), info.max_valid, info.deterministic)
    if kind in {"grapheme", "canonical"}:
        return _Study(info.max_length, info.max_valid, False)
    if kind == "backref":
        return _Study(info.max_length, False, info.deterministic)
    if kind == "atomic":
        return _study(_flat(node.parts[0]), info)
    if kind != "quant":
        return info  # zero-width, empty
    atom = node.parts[0]
    if node.ques:  # Ques: studies its atom in place
        inner = _study(_flat(atom), _Study(info.max_length, info.max_valid, info.deterministic))
        return _Study(inner.max_length, inner.max_valid, False)
    if atom.kind == "char" and node.unbounded and node.mode == "":  # CharPropertyGreedy
        return _Study(_int(info.max_length + _MAX_REPS), info.max_valid, False)
    atom_info = _study(_flat(atom), _Study())
    if atom.kind == "group" and node.mode != "+" and not atom_info.deterministic:  # Loop
        return _Study(info.max_length, False, False)
    # Curly and GroupCurly: the product must not overflow the sum
    max_length = _int(info.max_length + _int(atom_info.max_length * node.high))
    return _Study(
        max_length,
        info.max_valid and atom_info.max_valid and max_length >= info.max_length,
        info.deterministic and atom_info.deterministic and node.low == node.high,
    )


def _min_length(node: _Node) -> int:
    """The fewest characters the piece can match."""
    kind = node.kind
    if kind in {"char", "canonical", "line", "grapheme"}:
        return 1
    if kind in {"seq", "group", "atomic"}:
        return sum(_min_length(part) for part in node.parts)
    if kind == "alt":
        return min(_min_length(part) for part in node.parts)
    if kind == "quant":
        return node.low * _min_length(node.parts[0])
    return 0  # zero-width, empty, back references (may be empty)


def _paths(node: _Node, length: int) -> int:
    """An upper bound on the backtracking paths over a text of ``length`` characters (saturating)."""
    kind = node.kind
    if kind in {"seq", "look", "atomic", "group"}:
        total = 1
        for part in node.parts:
            total = min(total * _paths(part, length), _MAX_PATHS + 1)
        return total
    if kind == "alt":
        return min(sum(_paths(part, length) for part in node.parts), _MAX_PATHS + 1)
    if kind != "quant":
        return 1
    # An atom that consumes characters repeats at most ``length`` times; one that may match empty
    # repeats its minimum count, then stops at an empty match.
    most = min(node.high, length if _min_length(node.parts[0]) else node.low + length)
    atom = _paths(node.parts[0], length)
    if atom > 1 and most * math.log2(atom) > math.log2(_MAX_PATHS + 1):
        return _MAX_PATHS + 1
    return min((most + 1) * int(atom**most), _MAX_PATHS + 1)


# ----------------------------------------------------------------------------------------- the parser


@dataclass(frozen=True, slots=True)
class _Set:
    """A character-class predicate as Java builds it: ``frag`` (a one-character Python pattern), ``bits``
    (the class's own table of characters below 256, which Java reads when matching, so characters added
    after an intersection still count), or ``or``/``and``/``not`` of ``args``."""

    op: str
    frag: str = ""
    args: tuple[_Set, ...] = ()

    def render(self, bits: str) -> str:
        if self.op == "frag":
            return self.frag
        if self.op == "bits":
            return f"[{bits}]" if bits else _NEVER
        parts = [arg.render(bits) for arg in self.args]
        if self.op == "or":
            return "(?:" + "|".join(parts) + ")"
        if self.op == "and":
            return f"(?:(?={parts[0]}){parts[1]})"
        return f"[^{bits}]" if self.args[0].op == "bits" and bits else f"(?:(?!{parts[0]})(?s:.))"


_BITS = _Set("bits")


def _union(left: _Set | None, right: _Set) -> _Set:
    return right if left is None else _Set("or", args=(left, right))


class _Parser:
    """Recursive descent over ``java.util.regex`` syntax (Java 17): raises where Java does (with its
    message and, mostly, its index) and writes an equivalent or approximate Python pattern."""

    def __init__(self, pattern: str) -> None:
        self.src, self.i = _unquote(pattern), 0
        self.groups = 0
        self.names: set[str] = set()
        self.flags: set[str] = set()  # Java's flags in effect (restored at the end of each group)
        self.depth = 0
        self.exact = True
        self.unicode_case = False  # case-insensitive with Unicode case folding somewhere
        self.non_ascii = not self.src.isascii()

    def fail(self, message: str, index: int | None = None) -> JavaRegexError:
        return JavaRegexError(f"{message} near index {self.i if index is None else index}")

    def peek(self, offset: int = 0) -> str:
        """The next character; in comments mode (``x``) after white space and comments, as Java's ``peek``
        and ``read`` skip them. Characters at an ``offset`` beyond it are raw."""
        if "x" in self.flags:
            self.skip_comments()
        j = self.i + offset
        return self.src[j] if j < len(self.src) else ""

    def eat(self) -> str:
        char = self.peek()
        self.i += 1
        return char

    def raw(self) -> str:
        """The next character as is (the character after a backslash, for one)."""
        char = self.src[self.i] if self.i < len(self.src) else ""
        self.i += 1
        return char

    def parse(self) -> tuple[str, _Node]:
        text, node = self.alternation("")
        if self.i < len(self.src):
            raise self.fail("Unmatched closing ')'", self.i - 1)
        if self.i > len(self.src):  # an escape read past the end (comments mode)
            raise self.fail("Unexpected internal error", len(self.src))
        return text, node

    def skip_comments(self) -> None:
        """In comments mode (``x``), white space and ``#`` comments between tokens do not count."""
        if "x" not in self.flags:
            return
        src = self.src
        while self.i < len(src):
            if src[self.i] in _SPACE:
                self.i += 1
            elif src[self.i] == "#":
                while self.i < len(src) and src[self.i] not in _LINE_ENDS:
                    self.i += 1
            else:
                return

    def nest(self) -> None:
        self.depth += 1
        if self.depth > _MAX_NESTING:
            raise self.fail(f"Groups or classes nested more than {_MAX_NESTING} deep are not supported")

    def alternation(self, context: str) -> tuple[str, _Node]:
        """Alternatives; ``context`` is the Python case mode the text lands in (see ``case_mode``)."""
        texts: list[str] = []
        nodes: list[_Node] = []
        while True:
            text, node = self.sequence(context)
            texts.append(text)
            nodes.append(node)
            if self.peek() != "|":
                return "|".join(texts), _Node("alt", tuple(nodes))
            self.i += 1

    def case_mode(self) -> str:
        """Python's case matching for Java's flags: "" (exact), "ai" (Java's ``i``: ASCII letters only)
        or "i" (``i`` with ``u`` or ``U``: Unicode case folding)."""
        if "i" not in self.flags:
            return ""
        if {"u", "U"} & self.flags:
            self.unicode_case = True
            return "i"
        return "ai"

    @staticmethod
    def in_mode(text: str, mode: str, context: str) -> str:
        if mode == context or not text:
            return text
        return f"(?{_CASE_FLAGS[mode]}:{text})"

    def sequence(self, context: str) -> tuple[str, _Node]:
        """Items up to ``|`` or ``)``; an inline ``(?flags)`` changes Java's flags for the rest of the group."""
        chunks: list[str] = []
        items: list[str] = []
        nodes: list[_Node] = []
        mode = self.case_mode()
        while True:
            self.skip_comments()
            char = self.peek()
            if char in ("", "|", ")"):
                break
            if char in "*+?":
                self.i += 1
                self.skip_comments()
                raise self.fail(f"Dangling meta character '{char}'", self.i - 1)
            if char == "(":
                self.i += 1
                if self.peek() == "?" and self.src[self.i + 1 : self.i + 2] not in _GROUP_TYPES:
                    self.i += 1
                    before = set(self.flags)
                    colon = self.flag_group()
                    if not colon:  # (?idmsux-idmsux)
                        chunks.append(self.in_mode("".join(items), mode, context))
                        items, mode = [], self.case_mode()
                        continue
                    text, node = self.flagged_group(before, mode)
                else:
                    text, node = self.group(mode)
            elif char == "{":
                text, node = "", _EMPTY  # Java repeats an empty node: it matches the empty string
            else:
                text, node = self.atom()
            text, node = self.quantified(text, node)
            items.append(text)
            nodes.append(node)
        chunks.append(self.in_mode("".join(items), mode, context))
        return "".join(chunks), _Node("seq", tuple(nodes))

    def flag_group(self) -> bool:
        """After ``(?``: sets and clears flags; whether a ``:`` (a group) follows."""
        on = ""
        for clearing in (False, True):
            while True:
                self.skip_comments()
                char = self.peek()
                if not char or char not in _JAVA_FLAGS:
                    break
                self.i += 1
                if clearing:
                    self.flags.discard(char)
                else:
                    on += char
                    self.flags.add(char)
            if clearing or self.peek() != "-":
                break
            self.i += 1
        self.note_flags(on)
        char = self.peek()
        if char in (")", ":") and char:
            self.i += 1
            return char == ":"
        raise self.fail("Unknown inline modifier", self.i if char else len(self.src))

    def note_flags(self, on: str) -> None:
        if "U" in on or "c" in on:
            self.exact = False  # Unicode classes and canonical equivalence are not translated

    def quantified(self, atom: str, node: _Node) -> tuple[str, _Node]:
        self.skip_comments()
        char = self.peek()
        if char in ("*", "+", "?") and char:
            self.i += 1
            quantifier = char
            low, high = {"*": (0, _MAX_REPS), "+": (1, _MAX_REPS), "?": (0, 1)}[char]
            unbounded = char != "?"
        elif char == "{":
            quantifier, low, high, unbounded = self.counted()
        else:
            return atom, node
        self.skip_comments()
        mode = ""
        if self.peek() in ("?", "+") and self.peek():
            mode = self.eat()
            quantifier += mode
            if mode == "+":
                self.exact = False  # possessive: left to Java
        quant = _Node("quant", (node,), low, high, mode, low == 0 and high == 1, unbounded)
        if node.kind == "empty":
            return "", quant
        if node.kind in {"zero", "look"} or atom == _NEVER:
            return f"(?:{atom}){quantifier}", quant
        if node.kind == "line":  # a repeated \R does not backtrack into \r\n
            return f"(?>{atom[3:-1]}){quantifier}", quant
        return atom + quantifier, quant

    def counted(self) -> tuple[str, int, int, bool]:
        """``{n}``, ``{n,}``, ``{n,m}``: counts are Java ``int``s; in comments mode white space may
        follow the first digit."""
        brace = self.i
        if not (self.peek(1).isascii() and self.peek(1).isdigit()):
            raise self.fail("Illegal repetition", brace + 1)
        self.i += 1
        low = self.number()
        high, unbounded = low, False
        self.skip_comments()
        if self.peek() == ",":
            self.i += 1
            self.skip_comments()
            if self.peek() == "}":
                high, unbounded = _MAX_REPS, True
            else:
                high = self.number() if self.peek().isascii() and self.peek().isdigit() else 0
                self.skip_comments()
        if self.peek() != "}":
            raise self.fail("Unclosed counted closure")
        if high < low:
            raise self.fail("Illegal repetition range")
        self.i += 1
        return (f"{{{low},}}" if unbounded else f"{{{low},{high}}}"), low, high, unbounded

    def number(self) -> int:
        value = 0
        while self.peek().isascii() and self.peek().isdigit():
            value = value * 10 + int(self.eat())
            if value > _MAX_REPS:
                raise self.fail("Illegal repetition range", self.i - 1)
            self.skip_comments()
        return value

    def atom(self) -> tuple[str, _Node]:
        char = self.eat()
        if char == "[":
            self.nest()
            text = self.char_class(True)
            self.depth -= 1
            return text, self.class_node()
        if char == "\\":
            return self.escape()
        if char == ".":
            if "s" in self.flags:
                return "(?s:.)", _Node("char")
            return ("[^\\n]" if "d" in self.flags else f"[^{_LINE_ENDS}]"), _Node("char")
        if char in "^$":
            return self.anchor(char, "m" in self.flags), _Node("zero")
        return re.escape(char), _Node("char")

    def anchor(self, char: str, multiline: bool) -> str:
        """``^`` and ``$`` as Java matches them (``\\Z`` is ``$`` without ``m``): multiline ``^`` never
        matches at the end, ``$`` not between ``\\r`` and ``\\n``; ``d`` leaves ``\\n`` the only line end."""
        unix = "d" in self.flags
        if char == "^":
            if not multiline:
                return "\\A"
            after_line = "(?<=\\n)" if unix else "(?<=[\\n\\x85\\u2028\\u2029])|(?<=\\r)(?!\\n)"
            return f"(?:(?:\\A|{after_line})(?!\\Z))"
        if unix:
            return "(?:\\Z|(?=\\n))" if multiline else "(?:\\Z|(?=\\n\\Z))"
        if multiline:
            return "(?:\\Z|(?=[\\r\\x85\\u2028\\u2029])|(?<!\\r)(?=\\n))"
        return "(?:\\Z|(?=[\\r\\x85\\u2028\\u2029]\\Z)|(?<!\\r)(?=\\n\\Z)|(?=\\r\\n\\Z))"

    def class_node(self) -> _Node:
        """Under canonical equivalence (``c``) Java gives classes and properties no length."""
        return _Node("canonical" if "c" in self.flags else "char")

    def group(self, context: str) -> tuple[str, _Node]:
        """After ``(``: a group other than ``(?flags)`` and ``(?flags:`` (Java restores the flags at its
        end)."""
        self.nest()
        saved_flags = set(self.flags)
        prefix, kind = "(", "group"
        lookbehind = False
        if self.peek() == "?":
            self.i += 1
            char = self.raw()
            if char in ("$", "@"):
                raise self.fail("Unknown group type", self.i - 1)
            if char in (":", "=", "!", ">"):
                prefix = f"(?{char}"
                kind = {":": "group", "=": "look", "!": "look", ">": "atomic"}[char]
                if char == ">":
                    self.exact = False  # atomic groups: left to Java
            elif char == "<" and self.peek() in ("=", "!") and self.peek():
                prefix, kind, lookbehind = f"(?<{self.eat()}", "look", True
                self.exact = False  # Java also takes bounded variable-length look-behinds
            elif char == "<":
                name = self.group_name()
                if name in self.names:
                    raise self.fail(f"Named capturing group <{name}> is already defined", self.i - 1)
                self.names.add(name)
                self.groups += 1
                prefix = f"(?P<{name}>"
            else:  # (?flags) never gets here: sequence() takes it
                raise self.fail("Unknown inline modifier", self.i - 1)
        else:
            self.groups += 1
        body, node = self.alternation(context)
        if lookbehind and not _study(_flat(node), _Study()).max_valid:
            raise self.fail("Look-behind group does not have an obvious maximum length", self.i - 1)
        self.close_group()
        self.flags = saved_flags
        self.depth -= 1
        return f"{prefix}{body})", _Node(kind, (node,))

    def flagged_group(self, before: set[str], context: str) -> tuple[str, _Node]:
        """``(?flags:X)``, after the ``:`` (the flags are in effect already; ``before`` come back after)."""
        self.nest()
        body, node = self.alternation(context)
        self.close_group()
        self.flags = before
        self.depth -= 1
        return f"(?:{body})", _Node("group", (node,))

    def close_group(self) -> None:
        if self.peek() != ")":
            raise self.fail("Unclosed group", self.i)  # at the end, or past it after a trailing backslash
        self.i += 1

    def group_name(self) -> str:
        """A group name and its ``>`` (for ``(?<name>`` and ``\\k<name>``)."""
        if not (self.peek().isascii() and self.peek().isalpha()):
            raise self.fail("capturing group name does not start with a Latin letter")
        letters: list[str] = []
        while self.peek().isascii() and self.peek().isalnum():
            letters.append(self.eat())
        if self.peek() != ">":
            raise self.fail("named capturing group is missing trailing '>'")
        self.i += 1
        return "".join(letters)

    def escape(self) -> tuple[str, _Node]:
        char = self.raw()
        if char == "":  # Java reads past the end: an unclosed group or "Unexpected internal error" follows
            return "", _EMPTY
        if char in "123456789":
            self.exact = False  # back references: left to Java
            number = int(char)
            while (
                self.peek().isascii()
                and self.peek().isdigit()
                and number * 10 + int(self.peek()) <= self.groups
            ):
                number = number * 10 + int(self.eat())
            return (f"(?:\\{number})" if number <= self.groups else _NEVER), _Node("backref")
        if char == "k":
            self.exact = False
            if self.eat() != "<":
                raise self.fail("\\k is not followed by '<' for named capturing group", self.i - 1)
            name = self.group_name()
            if name not in self.names:
                raise self.fail(f"named capturing group <{name}> does not exist", self.i - 1)
            return f"(?P={name})", _Node("backref")
        if char == "b" and self.peek() == "{" and self.peek(1) == "g":  # \b{g}, a grapheme boundary
            self.i += 2
            if self.eat() != "}":
                raise self.fail("Illegal/unsupported escape sequence", self.i - 1)
            self.exact = False
            return "(?:)", _Node("zero")
        # Python's \B never matches an empty text; Java's does
        simple = {
            "b": "(?u:\\b)",
            "B": "(?u:(?<=\\w)(?=\\w)|(?<!\\w)(?!\\w))",
            "A": "\\A",
            "z": "\\Z",
            "G": "(?:)",
        }
        if char in simple:
            if char == "G":
                self.exact = False
            return simple[char], _Node("zero")
        if char == "Z":
            return self.anchor("$", False), _Node("zero")
        if char == "R":
            return "(?:\\r\\n|[\\n\\x0b\\f\\r\\x85\\u2028\\u2029])", _Node("line")
        if char == "X":
            self.exact = False
            return "(?s:.)", _Node("grapheme")
        if char in _CLASS_ESCAPES:
            ranges, fragment = _CLASS_ESCAPES[char]
            self.non_ascii = self.non_ascii or char in "hHvV"
            return (fragment or f"[{ranges}]"), _Node("char")
        if char in "pP":
            ranges, fragment = self.property()
            if char == "P":
                fragment = f"[^{ranges}]" if ranges else f"(?:(?!{fragment})(?s:.))"
            return fragment, self.class_node()
        return re.escape(self.char_escape(char)), _Node("char")

    def property(self) -> tuple[str | None, str]:
        """After ``\\p`` or ``\\P``: ``{name}`` or a one-letter name."""
        if self.peek() == "{":
            self.i += 1
            self.skip_comments()
            start = self.i
            while (letter := self.eat()) != "}":  # in comments mode, a "}" in a comment does not count
                if not letter:
                    raise self.fail("Unclosed character family", len(self.src))
            name = self.src[start : self.i - 1]
            if not name:
                raise self.fail("Empty character family", self.i - 1)
        else:
            name = self.eat()
        found = _property(name, "U" in self.flags)
        if found is None:
            if "=" in name:
                prop, _, value = name.partition("=")
                raise self.fail(
                    f"Unknown Unicode property {{name=<{prop.lower()}>, value=<{value}>}}", self.i - 1
                )
            raise self.fail(f"Unknown character property name {{{name}}}", self.i - 1)
        ranges, fragment, exact = found
        self.exact = self.exact and exact
        return ranges, fragment

    def char_escape(self, char: str) -> str:
        """Escapes that stand for one character (outside and inside classes)."""
        value = self.plain_escape(char)
        if not value.isascii():
            self.non_ascii = True
        return value

    def plain_escape(self, char: str) -> str:
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
            return self.hex_escape()
        if char == "u":
            value = self.hex_digits(4, "Illegal Unicode escape sequence")
            if 0xD800 <= value < 0xDC00 and self.src.startswith("\\u", self.i):  # a surrogate pair
                back = self.i
                self.i += 2
                low = self.hex_digits(4, "Illegal Unicode escape sequence")
                if 0xDC00 <= low < 0xE000:
                    return chr(0x10000 + ((value - 0xD800) << 10) + low - 0xDC00)
                self.i = back
            return chr(value)
        if char == "c":
            if self.i >= len(self.src):
                raise self.fail("Illegal control escape sequence", self.i - 1)
            letter = self.eat()  # in comments mode white space up to the end leaves nothing: NUL
            return chr((ord(letter) if letter else 0) ^ 64)
        if char == "N":
            return self.named_character()
        if char.isascii() and char.isalnum():
            raise self.fail("Illegal/unsupported escape sequence", self.i - 1)
        return char

    def hex_digits(self, count: int, message: str) -> int:
        value = 0
        for _ in range(count):
            digit = self.eat()
            if not (digit and digit in "0123456789abcdefABCDEF"):
                raise self.fail(message, self.i - 1)
            value = value * 16 + int(digit, 16)
        return value

    def hex_escape(self) -> str:
        """After ``\\x``: two digits, or ``{digits}`` up to U+10FFFF."""
        brace = self.i
        if self.eat() != "{" or not (self.peek() and self.peek() in "0123456789abcdefABCDEF"):
            self.i = brace
            return chr(self.hex_digits(2, "Illegal hexadecimal escape sequence"))
        value = 0
        while (digit := self.eat()) and digit in "0123456789abcdefABCDEF":
            value = value * 16 + int(digit, 16)
            if value > 0x10FFFF:
                raise self.fail("Hexadecimal codepoint is too big", self.i - 1)
        if digit != "}":
            raise self.fail("Unclosed hexadecimal escape sequence", self.i - 1)
        return chr(value)

    def named_character(self) -> str:
        """After ``\\N``: ``{name}``, a character name (any case). Java 17 knows the names of Unicode 13
        and its own names of control characters; this takes those from Python's Unicode database (so
        also names added since Unicode 13), but no aliases and not the generated names of CJK unified
        ideographs and Hangul syllables (Java spells those by block and code point, which is refused)."""
        if self.eat() != "{":
            raise self.fail("Illegal character name escape sequence", self.i - 1)
        start = self.i
        while self.eat() != "}":
            if self.i >= len(self.src):
                raise self.fail("Unclosed character name escape sequence", len(self.src) - 1)
        raw_name = self.src[start : self.i - 1]
        name = raw_name.strip().upper()
        if name in _CONTROLS:
            return _CONTROLS[name]
        try:
            value = unicodedata.lookup(name)
        except KeyError:
            value = ""
        if len(value) != 1 or unicodedata.name(value, "") != name or name.startswith(_GENERATED_NAMES):
            raise self.fail(f"Unknown character name [{raw_name}]", self.i - 1)
        return value

    def char_class(self, consume: bool) -> str:
        """A class, as Java's ``clazz`` parses it: after ``[`` (``consume``) or, as the right operand of
        ``&&``, at its first character. Unions, ranges, nested classes and ``&&`` intersections, with Java's
        operands and precedence, quirks included."""
        self.skip_comments()
        negated = consume and self.peek() == "^" and self.src[self.i - 1] == "["
        if negated:
            self.i += 1
        prev: _Set | None = None
        curr: _Set | None = None
        bits: list[str] = []
        has_bits = False
        while True:
            self.skip_comments()
            char = self.peek()
            if char == "[":
                self.i += 1
                curr = _Set("frag", self.nested_class())
                prev = _union(prev, curr)
                continue
            if char == "&":
                self.i += 1
                self.skip_comments()
                if self.peek() == "&":
                    self.i += 1
                    if has_bits:  # the characters so far join the left operand
                        if prev is None:
                            prev = curr = _BITS
                        else:
                            prev = _union(prev, _BITS)
                        has_bits = False
                    prev, curr = self.intersection(prev, curr)
                    continue
                # a literal '&', read as the character it stands on: in comments mode Java steps back
                # onto the white space after the '&', so the '&' is lost and the next character, even a
                # ']', is taken literally
                self.i -= 1
            if char == "" and self.i >= len(self.src):
                raise self.fail("Unclosed character class", max(len(self.src), self.i) - 1)
            if char == "]" and (prev is not None or has_bits):
                if consume:
                    self.i += 1
                result = _BITS if prev is None else _union(prev, _BITS) if has_bits else prev
                return (_Set("not", args=(result,)) if negated else result).render("".join(bits))
            curr = self.class_range(bits)
            if curr is None:
                has_bits = True
            else:
                prev = _union(prev, curr)

    def nested_class(self) -> str:
        self.nest()
        text = self.char_class(True)
        self.depth -= 1
        return text

    def intersection(self, prev: _Set | None, curr: _Set | None) -> tuple[_Set, _Set | None]:
        """After ``&&``: reads the right operand (up to ``]`` or ``&``) and intersects."""
        right: _Set | None = None
        self.skip_comments()
        while self.peek() not in ("]", "&") or not self.peek():
            operand = self.nested_class() if self.eat_if("[") else self.char_class(False)
            right = _union(right, _Set("frag", operand))
            self.skip_comments()
        if right is not None:
            curr = right
        if prev is None:
            if right is None:
                raise self.fail("Bad class syntax", self.i - 1)
            return right, curr
        if curr is None:  # Java builds a class that throws NullPointerException when matching
            self.exact = False
            return _Set("and", args=(prev, _Set("frag", _NEVER))), curr
        return _Set("and", args=(prev, curr)), curr

    def eat_if(self, char: str) -> bool:
        if self.peek() == char and char:
            self.i += 1
            return True
        return False

    def class_range(self, bits: list[str]) -> _Set | None:
        """One class member: a property or class escape, a range, or a character (None when the character
        went to ``bits``)."""
        if not self.peek():
            raise self.fail("Unclosed character class", max(len(self.src), self.i) - 1)
        if self.peek() == "\\":
            self.i += 1
            char = self.raw()
            if char == "":
                raise self.fail("Unclosed character class", len(self.src))
            if char in "pP":
                ranges, fragment = self.property()
                if char == "P":
                    return _Set("frag", f"[^{ranges}]" if ranges else f"(?:(?!{fragment})(?s:.))")
                return _Set("frag", fragment)
            if char in _CLASS_ESCAPES:
                escape_ranges, escape_fragment = _CLASS_ESCAPES[char]
                self.non_ascii = self.non_ascii or char in "hHvV"
                return _Set("frag", escape_fragment or f"[{escape_ranges}]")
            if char in "bBAzZGRXkE123456789":
                raise self.fail("Illegal/unsupported escape sequence", self.i - 1)
            low = self.char_escape(char)
        else:
            low = self.eat()
        self.skip_comments()
        if self.peek() == "-" and self.peek(1) not in ("[", "]"):
            self.i += 1
            self.skip_comments()
            if self.peek() == "\\":
                self.i += 1
                char = self.raw()
                if char in "pPbBAzZGRXkE123456789" and char:
                    raise self.fail("Illegal/unsupported escape sequence", self.i - 1)
                if char in _CLASS_ESCAPES:
                    raise self.fail("Illegal character range", self.i - 1)
                high = self.char_escape(char) if char else ""
            else:
                high = self.eat()
            if not high or ord(high) < ord(low):
                self.skip_comments()
                raise self.fail("Illegal character range", self.i - 1)
            if not high.isascii():
                self.non_ascii = True
            return _Set("frag", f"[{re.escape(low)}-{re.escape(high)}]")
        special = {"\xff", "\xb5", "I", "i", "S", "s", "K", "k", "\xc5", "\xe5"}
        if ord(low) < 256 and not ({"i", "u"} <= self.flags and low in special):
            bits.append(re.escape(low))
            return None
        return _Set("frag", re.escape(low))


# -------------------------------------------------------------------------------------------- the API


@dataclass(frozen=True, slots=True)
class _Translation:
    python: str  # the Python ``re`` pattern
    exact: bool  # matches like Java on printable ASCII text
    tree: _Node


@lru_cache(maxsize=4096)
def _translate(pattern: str) -> _Translation:
    parser = _Parser(pattern)
    try:
        python, tree = parser.parse()
    except JavaRegexError:
        raise
    except RecursionError:
        raise JavaRegexError("Pattern too deeply nested to check") from None
    except (IndexError, TypeError, ValueError) as error:  # a parser bug must not look like a valid pattern
        raise JavaRegexError(f"Pattern could not be checked ({type(error).__name__}: {error})") from None
    # Java folds the case of non-ASCII characters with its own tables (with "u"): not translated exactly
    exact = parser.exact and not (parser.unicode_case and parser.non_ascii)
    return _Translation(python, exact, tree)


def _one_line(message: str) -> str:
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in message)


def check(pattern: str) -> None:
    """Raise ``JavaRegexError`` (one line, Java's description and roughly its index) when Java 17's
    ``Pattern.compile(pattern)`` would throw ``PatternSyntaxException``; return None otherwise."""
    try:
        _translate(pattern)
    except JavaRegexError as error:
        raise JavaRegexError(_one_line(str(error))) from None


def may_fullmatch(pattern: str, text: str) -> bool:
    """Could ``Pattern.compile(pattern).matcher(text).matches()`` be true in Java? Conservative, for
    security decisions: False only when certain, True whenever in doubt.

    Certainty needs a printable ASCII ``text`` (Java and the translation disagree on line terminators,
    case folding and Unicode classes beyond it), a pattern Java compiles, an exact translation (see the
    module docstring) that Python compiles, and a pattern whose backtracking on ``text`` is small enough
    to run. A pattern Java refuses gives True too: ``check`` says why it is wrong.
    """
    if _PRINTABLE_ASCII.fullmatch(text) is None:
        return True
    try:
        translation = _translate(pattern)
    except JavaRegexError:
        return True
    if not translation.exact or _paths(translation.tree, len(text)) > _MAX_PATHS:
        return True
    try:
        compiled = re.compile(translation.python)
    except (re.error, OverflowError, RecursionError):
        return True
    return compiled.fullmatch(text) is not None


@lru_cache(maxsize=4096)
def java_regex(pattern: str) -> re.Pattern[str]:
    """Compile a resource-name regex as Druid does (``Pattern.compile``), for ``Matcher.matches()``
    (``fullmatch``).

    Raises ``JavaRegexError`` where Java refuses the pattern. A pattern Java accepts but the Python
    translation cannot express (e.g. a variable-length look-behind) never matches.
    """
    translated = _translate(pattern).python
    try:
        return re.compile(translated)
    except (re.error, OverflowError, RecursionError):
        return re.compile(_NEVER)
