"""A streaming emulation of Jackson 2.10.5, as Druid 27's Jersey reads request entities.

Bodies are read by ``_Lexer`` (Jackson's ``UTF8StreamJsonParser``) and the ``_read_*`` functions (the
deserializers Druid's mapper picks): mapping errors - including syntax errors met *inside* a list element
or a bean property - are 400 ``{"error": <Jackson text with line/column and reference chain>}``; syntax
errors met at the top of an entity escape Jersey as a 500 Jetty page ("javax.servlet.ServletException:
...JsonParseException"). Content after the first JSON value is never read; an empty body (or ``null``)
is a null entity (``read_entity``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

ACTIONS = ("READ", "WRITE")
_CREDENTIAL_UPDATE = (
    "org.apache.druid.security.basic.authentication.entity.BasicAuthenticatorCredentialUpdate"
)
_GROUP_MAPPING = "org.apache.druid.security.basic.authorization.entity.BasicAuthorizerGroupMapping"
_RESOURCE_ACTION = "org.apache.druid.server.security.ResourceAction"
_RESOURCE = "org.apache.druid.server.security.Resource"
_ACTION = "org.apache.druid.server.security.Action"

_SOURCE = "[Source: (org.eclipse.jetty.server.HttpInputOverHTTP); line: {0}, column: {1}]"
START_OBJECT, END_OBJECT, START_ARRAY, END_ARRAY = "START_OBJECT", "END_OBJECT", "START_ARRAY", "END_ARRAY"
FIELD_NAME, VALUE_STRING, VALUE_NULL = "FIELD_NAME", "VALUE_STRING", "VALUE_NULL"
VALUE_NUMBER_INT, VALUE_NUMBER_FLOAT = "VALUE_NUMBER_INT", "VALUE_NUMBER_FLOAT"
VALUE_TRUE, VALUE_FALSE = "VALUE_TRUE", "VALUE_FALSE"
_SCALARS = frozenset(
    {VALUE_STRING, VALUE_NUMBER_INT, VALUE_NUMBER_FLOAT, VALUE_TRUE, VALUE_FALSE, VALUE_NULL}
)
_VALID_TOKENS = "(JSON String, Number, Array, Object or token 'null', 'true' or 'false')"
_INT_RANGE = "(-2147483648 - 2147483647)"


class JacksonError(Exception):
    """A Jackson exception: ``kind`` is ``mapping`` (JsonMappingException, answered 400 by Druid's
    mapper), ``parse`` (JsonParseException) or ``eof`` (JsonEOFException); the last two escape as 500."""

    def __init__(
        self, message: str, location: tuple[int, int] | None, kind: str = "mapping", chain: Iterable[str] = ()
    ) -> None:
        super().__init__(message)
        self.base, self.location, self.kind, self.chain = message, location, kind, list(chain)

    def text(self) -> str:
        """``getMessage()``: message, location, then the reference chain."""
        out = self.base
        if self.location is not None:
            out += "\n at " + _SOURCE.format(*self.location)
        if self.chain:
            out += " (through reference chain: " + "->".join(self.chain) + ")"
        return out

    def java_class(self) -> str:
        return {
            "parse": "com.fasterxml.jackson.core.JsonParseException",
            "eof": "com.fasterxml.jackson.core.io.JsonEOFException",
        }.get(self.kind, "com.fasterxml.jackson.databind.JsonMappingException")


def _wrap(exc: JacksonError, reference: str) -> JacksonError:
    """``JsonMappingException.wrapWithPath``: prepend to the chain, turning parse errors into mapping ones."""
    if exc.kind == "mapping":
        exc.chain.insert(0, reference)
        return exc
    return JacksonError(exc.text(), None, "mapping", [reference])


def _char_desc(code: int) -> str:
    """``ParserMinimalBase._getCharDesc``."""
    char = chr(code)
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return f"(CTRL-CHAR, code {code})"
    if code > 255:
        return f"'{char}' (code {code} / 0x{code:x})"
    return f"'{char}' (code {code})"


def _is_identifier_part(char: str) -> bool:
    """``Character.isJavaIdentifierPart`` (approximately)."""
    code = ord(char)
    if char.isalnum() or char in "_$" or 0 <= code <= 8 or 0x0E <= code <= 0x1B or 0x7F <= code <= 0x9F:
        return True
    return unicodedata.category(char) in {"Sc", "Pc", "Mn", "Mc", "Nl", "Cf"}


def _is_identifier_start(char: str) -> bool:
    """``Character.isJavaIdentifierStart`` (approximately)."""
    return char.isalpha() or char in "_$" or unicodedata.category(char) in {"Sc", "Pc", "Nl"}


@dataclass(slots=True)
class _Context:
    kind: str  # "root" | "Array" | "Object" (as in Jackson's messages)
    line: int
    column: int
    index: int = -1

    def expect_comma(self) -> bool:
        self.index += 1
        return self.kind != "root" and self.index > 0


class _Lexer:
    """Jackson 2.10's ``UTF8StreamJsonParser`` over a whole body: the same token stream, lazily
    finished strings, byte-based columns and error texts, so errors surface at the same call."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.line, self.row_start = data, 0, 1, 0
        self.contexts = [_Context("root", 1, 0)]
        if data.startswith(b"\xef\xbb\xbf"):  # the bootstrapper drops a UTF-8 BOM
            self.pos = self.row_start = 3
        self.token: str | None = None
        self.token_location = (1, 1)
        self.name_location = (1, 1)
        self.name: str | None = None
        self._pending: str | None = None  # the value token found while reading a field name
        self._incomplete = False  # a VALUE_STRING whose content is not read yet
        self._string = ""
        self._number = ""

    # locations and errors

    def current_location(self) -> tuple[int, int]:
        return self.line, self.pos - self.row_start + 1

    def location(self) -> tuple[int, int]:
        """``getTokenLocation()``."""
        return self.name_location if self.token == FIELD_NAME else self.token_location

    def error(self, message: str, kind: str = "parse") -> JacksonError:
        return JacksonError(message, self.current_location(), kind)

    def mapping_error(self, message: str) -> JacksonError:
        return JacksonError(message, self.location(), "mapping")

    def _eof(self, message: str) -> JacksonError:
        return self.error("Unexpected end-of-input" + message, "eof")

    def _unexpected(self, code: int, comment: str) -> JacksonError:
        if code < 0:
            return self._eof(f" in {self.token}")
        return self.error(f"Unexpected character ({_char_desc(code)}): {comment}")

    # bytes

    def _read(self) -> int:
        """The next byte, or -1 at the end."""
        if self.pos >= len(self.data):
            return -1
        self.pos += 1
        return self.data[self.pos - 1]

    def _peek(self) -> int:
        return self.data[self.pos] if self.pos < len(self.data) else -1

    def _decode_for_error(self, first: int) -> int:
        """``_decodeCharForError``: the code point a (multi-byte) UTF-8 sequence starts."""
        if first < 0x80:
            return first
        if first & 0xE0 == 0xC0:
            extra, code = 1, first & 0x1F
        elif first & 0xF0 == 0xE0:
            extra, code = 2, first & 0x0F
        elif first & 0xF8 == 0xF0:
            extra, code = 3, first & 0x07
        else:
            raise self.error(f"Invalid UTF-8 start byte 0x{first:x}")
        for _ in range(extra):
            nxt = self._read()
            if nxt < 0 or nxt & 0xC0 != 0x80:
                raise self.error(f"Invalid UTF-8 middle byte 0x{max(nxt, 0):x}")
            code = (code << 6) | (nxt & 0x3F)
        return code

    def _newline(self, code: int) -> None:
        if code == 0x0D and self._peek() == 0x0A:
            self.pos += 1
        self.line += 1
        self.row_start = self.pos

    def _skip_ws(self, eof_ok: bool, eof_kind: str = "parse") -> int:
        """Skip white space; at the end: -1, or the "within/between" error (a JsonEOFException only
        when reading around a colon, a plain JsonParseException after a comma)."""
        while True:
            code = self._read()
            if code < 0:
                if eof_ok:
                    return -1
                message = f"Unexpected end-of-input within/between {self.contexts[-1].kind} entries"
                raise self.error(message, eof_kind)
            if code in (0x0A, 0x0D):
                self._newline(code)
            elif code in (0x20, 0x09):
                continue
            elif code == 0x2F:
                raise self.error(
                    "Unexpected character ('/' (code 47)): maybe a (non-standard) comment? (not recognized "
                    "as one since Feature 'ALLOW_COMMENTS' not enabled for parser)"
                )
            elif code < 0x20:
                raise self.error(
                    f"Illegal character ({_char_desc(code)}): only regular white space "
                    "(\\r, \\n, \\t) is allowed between tokens"
                )
            else:
                return code

    # tokens

    def next_token(self) -> str | None:
        if self.token == FIELD_NAME:
            token, self._pending = self._pending, None
            assert token is not None
            self._open(token)
            self.token = token
            return token
        if self._incomplete:
            self._finish_string(keep=False)
        code = self._skip_ws(eof_ok=True)
        context = self.contexts[-1]
        if code < 0:
            if context.kind != "root":
                where = _SOURCE.format(context.line, context.column)
                raise self._eof(f": expected close marker for {context.kind} (start marker at {where})")
            self.token = None
            return None
        if code in (0x5D, 0x7D):
            return self._close(code)
        if context.expect_comma():
            if code != 0x2C:
                raise self._unexpected(code, f"was expecting comma to separate {context.kind} entries")
            code = self._skip_ws(eof_ok=False)
        if context.kind != "Object":
            self.token_location = (self.line, self.pos - self.row_start)
            token = self._value_token(code)
            self._open(token)
            self.token = token
            return token
        self.name_location = (self.line, self.pos - self.row_start)
        self.name = self._field_name(code)
        self.token = FIELD_NAME
        code = self._skip_colon()
        self.token_location = (self.line, self.pos - self.row_start)
        self._pending = self._value_token(code)
        return FIELD_NAME

    def _open(self, token: str) -> None:
        if token in (START_ARRAY, START_OBJECT):
            kind = "Array" if token == START_ARRAY else "Object"
            self.contexts.append(_Context(kind, *self.token_location))

    def _close(self, code: int) -> str:
        self.token_location = (self.line, self.pos - self.row_start)
        context = self.contexts[-1]
        wanted, expected = ("Array", "}") if code == 0x5D else ("Object", "]")
        if context.kind != wanted:
            where = _SOURCE.format(context.line, context.column)
            raise self.error(
                f"Unexpected close marker '{chr(code)}': expected '{expected}' "
                f"(for {context.kind} starting at {where})"
            )
        self.contexts.pop()
        self.token = END_ARRAY if code == 0x5D else END_OBJECT
        return self.token

    def _skip_colon(self) -> int:
        code = self._skip_ws(eof_ok=False, eof_kind="eof")
        if code != 0x3A:
            raise self._unexpected(code, "was expecting a colon to separate field name and value")
        return self._skip_ws(eof_ok=False, eof_kind="eof")

    def _value_token(self, code: int) -> str:
        if code == 0x22:
            self._incomplete = True
            return VALUE_STRING
        if code == 0x5B:
            return START_ARRAY
        if code == 0x7B:
            return START_OBJECT
        for literal, token in (("true", VALUE_TRUE), ("false", VALUE_FALSE), ("null", VALUE_NULL)):
            if code == ord(literal[0]):
                self._match(literal)
                return token
        if code == 0x2D or 0x30 <= code <= 0x39:
            return self._parse_number(code)
        return self._unexpected_value(code)

    def _match(self, literal: str) -> None:
        for i in range(1, len(literal)):
            if self._peek() != ord(literal[i]):
                raise self._invalid_token(literal[:i])
            self.pos += 1
        nxt = self._peek()
        if (
            nxt >= 0x30
            and nxt not in (0x5D, 0x7D)
            and _is_identifier_part(chr(self._decode_peek_for_error(nxt)))
        ):
            raise self._invalid_token(literal)

    def _decode_peek_for_error(self, first: int) -> int:
        saved = self.pos
        self.pos += 1
        try:
            return self._decode_for_error(first)
        finally:
            self.pos = saved

    def _invalid_token(self, matched: str) -> JacksonError:
        out = matched
        while self.pos < len(self.data):
            char = chr(self._decode_for_error(self._read()))
            if not _is_identifier_part(char):
                break
            out += char
            if len(out) >= 256:
                out += "..."
                break
        return self.error(f"Unrecognized token '{out}': was expecting {_VALID_TOKENS}")

    def _unexpected_value(self, code: int) -> str:
        in_array = self.contexts[-1].kind == "Array"
        if code in (0x2C, 0x7D) or (code == 0x5D and in_array):
            raise self._unexpected(code, "expected a value")
        if code in (0x4E, 0x49):  # NaN, Infinity
            literal = "NaN" if code == 0x4E else "Infinity"
            self._match(literal)
            raise self.error(
                f"Non-standard token '{literal}': enable JsonParser.Feature.ALLOW_NON_NUMERIC_NUMBERS to allow"
            )
        if code == 0x2B:
            nxt = self._read()
            if nxt < 0:
                raise self._eof(" in a Number value")
            raise self._invalid_number_start(nxt, "+")
        if _is_identifier_start(chr(code)):
            raise self._invalid_token(chr(code))
        raise self._unexpected(code, f"expected a valid value {_VALID_TOKENS}")

    def _invalid_number_start(self, code: int, sign: str) -> JacksonError:
        """``_handleInvalidNumberStart``: ``-Infinity``/``-INF`` are named, anything else is a bad digit."""
        if code == 0x49:
            nxt = self._read()
            if nxt < 0:
                return self._eof(" in a Number value")
            if nxt in (0x4E, 0x6E):
                literal = f"{sign}INF" if nxt == 0x4E else f"{sign}Infinity"
                for char in literal[3:]:
                    if self._peek() != ord(char):
                        return self._invalid_token(literal[: literal.index(char)])
                    self.pos += 1
                return self.error(
                    f"Non-standard token '{literal}': enable JsonParser.Feature.ALLOW_NON_NUMERIC_NUMBERS to allow"
                )
            code = nxt
        return self._number_char_error(
            code, "expected digit (0-9) to follow minus sign, for valid numeric value"
        )

    def _number_char_error(self, code: int, comment: str) -> JacksonError:
        if code < 0:
            return self._eof(f" in {self.token}")
        return self.error(f"Unexpected character ({_char_desc(code)}) in numeric value: {comment}")

    def _parse_number(self, first: int) -> str:
        text = ""
        code = first
        if code == 0x2D:
            text = "-"
            code = self._read()
            if not 0x30 <= code <= 0x39:
                if code < 0:
                    raise self._number_char_error(code, "")
                raise self._invalid_number_start(code, "-")
        if code == 0x30 and 0x30 <= self._peek() <= 0x39:
            raise self.error("Invalid numeric value: Leading zeroes not allowed")
        text += chr(code)
        code = self._read()
        while 0x30 <= code <= 0x39:
            text += chr(code)
            code = self._read()
        is_float = False
        if code == 0x2E:
            is_float, text = True, text + "."
            code, digits = self._read(), 0
            while 0x30 <= code <= 0x39:
                text, digits, code = text + chr(code), digits + 1, self._read()
            if digits == 0:
                raise self._number_char_error(code, "Decimal point not followed by a digit")
        if code in (0x65, 0x45):
            is_float, text = True, text + chr(code)
            code = self._read()
            if code in (0x2B, 0x2D):
                text, code = text + chr(code), self._read()
            digits = 0
            while 0x30 <= code <= 0x39:
                text, digits, code = text + chr(code), digits + 1, self._read()
            if digits == 0:
                raise self._number_char_error(code, "Exponent indicator not followed by a digit")
        if code >= 0:
            self.pos -= 1  # push back the terminator
            if self.contexts[-1].kind == "root":
                self._verify_root_space(self._read())
        self._number = text
        return VALUE_NUMBER_FLOAT if is_float else VALUE_NUMBER_INT

    def _verify_root_space(self, code: int) -> None:
        if code in (0x20, 0x09):
            return
        if code in (0x0A, 0x0D):
            self._newline(code)
            return
        raise self._unexpected(code, "Expected space separating root-level values")

    # strings and names

    def _escape(self) -> str:
        code = self._read()
        if code < 0:
            raise self._eof(" in character escape sequence")
        simple = {
            0x62: "\b",
            0x74: "\t",
            0x6E: "\n",
            0x66: "\f",
            0x72: "\r",
            0x22: '"',
            0x2F: "/",
            0x5C: "\\",
        }
        if code in simple:
            return simple[code]
        if code != 0x75:
            char = self._decode_for_error(code)
            raise self.error(f"Unrecognized character escape {_char_desc(char)}")
        value = 0
        for _ in range(4):
            digit = self._read()
            if digit < 0:
                raise self._eof(" in character escape sequence")
            if chr(digit) not in "0123456789abcdefABCDEF":
                raise self._unexpected(digit, "expected a hex-digit for character escape sequence")
            value = (value << 4) | int(chr(digit), 16)
        return chr(value)

    def _scan_string(self, what: str, eof_message: str) -> str:
        out: list[str] = []
        while True:
            code = self._read()
            if code < 0:
                raise self._eof(eof_message)
            if code == 0x22:
                return _join_surrogates(out)
            if code == 0x5C:
                out.append(self._escape())
            elif code < 0x20:
                raise self.error(
                    f"Illegal unquoted character ({_char_desc(code)}): "
                    f"has to be escaped using backslash to be included in {what}"
                )
            elif code < 0x80:
                out.append(chr(code))
            else:
                out.append(chr(self._decode_for_error(code)))

    def _field_name(self, code: int) -> str:
        if code != 0x22:
            char = self._decode_for_error(code)
            raise self._unexpected(char, "was expecting double-quote to start field name")
        return self._scan_string("name", " in field name")

    def _finish_string(self, keep: bool) -> str:
        self._incomplete = False
        self._string = self._scan_string("string value", f" in {self.token or VALUE_STRING}")
        return self._string

    # values

    def text(self) -> str:
        """``getText()``: finishes a lazy string."""
        if self.token == VALUE_STRING:
            return self._finish_string(keep=True) if self._incomplete else self._string
        if self.token == FIELD_NAME:
            return self.name or ""
        if self.token in (VALUE_NUMBER_INT, VALUE_NUMBER_FLOAT):
            return self._number
        return {
            VALUE_TRUE: "true",
            VALUE_FALSE: "false",
            VALUE_NULL: "null",
            START_ARRAY: "[",
            END_ARRAY: "]",
            START_OBJECT: "{",
            END_OBJECT: "}",
        }.get(self.token or "", "")

    def value_as_string(self) -> str | None:
        """``getValueAsString()``: text of scalars, None for null and structure tokens."""
        if self.token == FIELD_NAME:
            return self.name
        if self.token is None or self.token == VALUE_NULL or self.token not in _SCALARS:
            return None
        return self.text()

    def int_value(self) -> int:
        return int(self._number)

    def next_text_value(self) -> str | None:
        return self.text() if self.next_token() == VALUE_STRING else None

    def next_field_name(self) -> str | None:
        return self.name if self.next_token() == FIELD_NAME else None

    def skip_children(self) -> None:
        if self.token not in (START_ARRAY, START_OBJECT):
            return
        depth = 1
        while True:
            token = self.next_token()
            if token in (START_ARRAY, START_OBJECT):
                depth += 1
            elif token in (END_ARRAY, END_OBJECT):
                depth -= 1
                if depth == 0:
                    return


def _join_surrogates(parts: list[str]) -> str:
    """``\\uD83D\\uDE00`` escapes pair up into one code point, as in a Java string."""
    text = "".join(parts)
    if not any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def java_double(value: float) -> str:
    """``Double.toString``."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if str(value).startswith("-") else "0.0"
    sign, digit_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + exponent
    if 1e-3 <= abs(value) < 1e7:
        if point <= 0:
            text = "0." + "0" * -point + digits
        elif point >= len(digits):
            text = digits + "0" * (point - len(digits)) + ".0"
        else:
            text = digits[:point] + "." + digits[point:]
    else:
        text = f"{digits[0]}.{digits[1:] or '0'}E{point - 1}"
    return ("-" if sign else "") + text


# Deserializers: each mirrors the Jackson 2.10 deserializer Druid's mapper picks for the type, including
# which calls are inside a try/wrap (so where a syntax error becomes a 400 rather than a 500).


def _unexpected_token(p: _Lexer, java_type: str) -> JacksonError:
    return p.mapping_error(f"Cannot deserialize instance of `{java_type}` out of {p.token} token")


def _read_string(p: _Lexer) -> str:
    """``StringDeserializer`` (the caller handled VALUE_NULL)."""
    if p.token == VALUE_STRING:
        return p.text()
    if p.token == START_ARRAY:
        raise _unexpected_token(p, "java.lang.String")
    text = p.value_as_string()
    if text is None:
        raise _unexpected_token(p, "java.lang.String")
    return text


def _java_int(text: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(text)
    return int(text)


def _read_integer(p: _Lexer) -> int | None:
    """``NumberDeserializers.IntegerDeserializer`` (``java.lang.Integer``)."""
    if p.token == VALUE_NUMBER_INT:
        value = p.int_value()
        if not -(2**31) <= value < 2**31:
            raise p.error(f"Numeric value ({p.text()}) out of range of int {_INT_RANGE}")
        return value
    if p.token == VALUE_NUMBER_FLOAT:
        number = float(p.text())
        if not -(2**31) <= number <= 2**31 - 1:
            raise p.error(f"Numeric value ({p.text()}) out of range of int {_INT_RANGE}")
        return int(number)
    if p.token == VALUE_STRING:
        text = p.text().strip(" \t\n\r\x0b\f\x00")
        if text in ("", "null"):
            return None
        prefix = f'Cannot deserialize value of type `java.lang.Integer` from String "{text}": '
        try:
            value = _java_int(text)
        except ValueError:
            raise p.mapping_error(prefix + "not a valid Integer value") from None
        if not -(2**31) <= value < 2**31:
            problem = f"Overflow: numeric value ({text}) out of range of Integer {_INT_RANGE}"
            raise p.mapping_error(prefix + problem)
        return value
    raise _unexpected_token(p, "java.lang.Integer")


def _read_action(p: _Lexer) -> str | None:
    """``FactoryBasedEnumDeserializer`` over ``Action.fromString`` (which upper-cases; null stays null).

    For ``[``/``{`` the value is null and the parser is *not* moved past the structure, as in 2.10.
    """
    value = p.text() if p.token in (VALUE_STRING, FIELD_NAME) else p.value_as_string()
    if value is None:
        return None
    upper = value.upper()
    if upper not in ACTIONS:
        problem = f"No enum constant {_ACTION}.{upper}"
        raise p.mapping_error(f"Cannot construct instance of `{_ACTION}`, problem: {problem}")
    return upper


class _CreatorProblem(Exception):
    """An exception thrown by a ``@JsonCreator`` constructor (Preconditions)."""


@dataclass(frozen=True, slots=True)
class _Bean:
    """A class deserialized through a property-based ``@JsonCreator``."""

    java: str
    params: tuple[str, ...]
    readers: dict[str, Callable[[_Lexer], object]]
    build: Callable[[dict[str, object]], object]


def _read_bean(p: _Lexer, bean: _Bean) -> object:
    """``BeanDeserializer.deserialize``."""
    token = p.token
    if token == START_OBJECT:
        p.next_token()
        return _bean_from_properties(p, bean)
    if token in (FIELD_NAME, END_OBJECT):
        return _bean_from_properties(p, bean)
    prefix = f"Cannot construct instance of `{bean.java}` (although at least one Creator exists): "
    if token == VALUE_STRING:
        text = p.text()
        detail = f"no String-argument constructor/factory method to deserialize from String value ('{text}')"
    elif token == VALUE_NUMBER_INT:
        value = p.int_value()
        kind = "int/Int" if -(2**31) <= value < 2**31 else "long/Long" if -(2**63) <= value < 2**63 else ""
        detail = (
            f"no {kind}-argument constructor/factory method to deserialize from Number value ({value})"
            if kind
            else f"no suitable creator method found to deserialize from Number value ({value})"
        )
    elif token == VALUE_NUMBER_FLOAT:
        number = java_double(float(p.text()))
        detail = f"no double/Double-argument constructor/factory method to deserialize from Number value ({number})"
    elif token in (VALUE_TRUE, VALUE_FALSE):
        detail = (
            "no boolean/Boolean-argument constructor/factory method to deserialize from boolean value "
            f"({p.text()})"
        )
    else:
        raise _unexpected_token(p, bean.java)
    raise p.mapping_error(prefix + detail)


def _bean_from_properties(p: _Lexer, bean: _Bean) -> object:
    """``_deserializeUsingPropertyBased``: once every creator parameter is seen the object is built
    right away (at the next token) and the rest of the object is read as plain properties."""
    values: dict[str, object] = {}
    token = p.token
    while token == FIELD_NAME:
        name = p.name or ""
        p.next_token()
        if name in bean.params:
            try:
                value = None if p.token == VALUE_NULL else bean.readers[name](p)
            except JacksonError as exc:
                raise _wrap(exc, f'{bean.java}["{name}"]') from None
            complete = name not in values and len(values) + 1 == len(bean.params)
            values[name] = value
            if complete:
                p.next_token()
                built = _build(p, bean, values)
                _bean_rest(p, bean)
                return built
        else:
            p.skip_children()  # unknown properties are ignored (FAIL_ON_UNKNOWN_PROPERTIES is off)
        token = p.next_token()
    return _build(p, bean, values)


def _build(p: _Lexer, bean: _Bean, values: dict[str, object]) -> object:
    try:
        return bean.build(values)
    except _CreatorProblem as exc:
        raise p.mapping_error(f"Cannot construct instance of `{bean.java}`, problem: {exc}") from None


def _bean_rest(p: _Lexer, bean: _Bean) -> None:
    """``BeanDeserializer.deserialize(p, ctxt, bean)`` after an early build."""
    if p.token == START_OBJECT:
        name = p.next_field_name()
    elif p.token == FIELD_NAME:
        name = p.name
    else:
        return
    while name is not None:
        p.next_token()
        if name in bean.params:  # a creator property has no setter to fall back on
            raise JacksonError(
                f"No fallback setter/field defined for creator property '{name}'",
                None,
                "mapping",
                [f'{bean.java}["{name}"]'],
            )
        p.skip_children()
        name = p.next_field_name()


def _read_string_set(p: _Lexer) -> list[str | None]:
    """``StringCollectionDeserializer`` (``Set<String>``): the whole loop is wrapped, so even syntax
    errors inside the array are mapping errors (400)."""
    if p.token != START_ARRAY:
        raise _unexpected_token(p, "java.util.HashSet<java.lang.Object>")
    result: list[str | None] = []
    try:
        while True:
            value = p.next_text_value()
            if value is None:
                if p.token == END_ARRAY:
                    return result
                value = None if p.token == VALUE_NULL else _read_string(p)
            if value not in result:
                result.append(value)
    except JacksonError as exc:
        raise _wrap(exc, f"java.util.HashSet[{len(result)}]") from None


@dataclass(frozen=True, slots=True)
class ResourceActionBody:
    """A ``ResourceAction`` as Jackson builds it: any part may be null (an NPE later)."""

    name: str | None
    type: str | None
    action: str | None
    has_resource: bool = True


def _build_resource(values: dict[str, object]) -> object:
    return (values.get("name"), values.get("type"))


_RESOURCE_BEAN = _Bean(
    _RESOURCE, ("name", "type"), {"name": _read_string, "type": _read_string}, _build_resource
)


def _build_resource_action(values: dict[str, object]) -> object:
    resource = values.get("resource")
    action = values.get("action")
    assert action is None or isinstance(action, str)
    if resource is None:
        return ResourceActionBody(None, None, action, has_resource=False)
    assert isinstance(resource, tuple)
    return ResourceActionBody(resource[0], resource[1], action)


_RESOURCE_ACTION_BEAN = _Bean(
    _RESOURCE_ACTION,
    ("resource", "action"),
    {"resource": lambda p: _read_bean(p, _RESOURCE_BEAN), "action": _read_action},
    _build_resource_action,
)


def _read_permission_list(p: _Lexer) -> list[ResourceActionBody | None]:
    """``CollectionDeserializer`` (``List<ResourceAction>``): only element reads are wrapped."""
    if p.token == VALUE_STRING and p.text() == "":
        raise p.mapping_error(
            "Cannot construct instance of `java.util.ArrayList` (although at least one Creator exists): "
            "no String-argument constructor/factory method to deserialize from String value ('')"
        )
    if p.token != START_ARRAY:
        raise _unexpected_token(p, f"java.util.ArrayList<{_RESOURCE_ACTION}>")
    result: list[ResourceActionBody | None] = []
    while (token := p.next_token()) != END_ARRAY:
        try:
            value = None if token == VALUE_NULL else _read_bean(p, _RESOURCE_ACTION_BEAN)
        except JacksonError as exc:
            raise _wrap(exc, f"java.util.ArrayList[{len(result)}]") from None
        assert value is None or isinstance(value, ResourceActionBody)
        result.append(value)
    return result


@dataclass(frozen=True, slots=True)
class CredentialUpdateBody:
    password: str
    iterations: int  # -1: the authenticator's credentialIterations


def _build_credential_update(values: dict[str, object]) -> object:
    password, iterations = values.get("password"), values.get("iterations")
    if password is None:
        raise _CreatorProblem("Cannot assign null password.")
    assert isinstance(password, str)
    if password == "":
        raise _CreatorProblem("Cannot assign empty password.")
    assert iterations is None or isinstance(iterations, int)
    return CredentialUpdateBody(password, -1 if iterations is None else iterations)


_CREDENTIAL_UPDATE_BEAN = _Bean(
    _CREDENTIAL_UPDATE,
    ("password", "iterations"),
    {"password": _read_string, "iterations": _read_integer},
    _build_credential_update,
)


@dataclass(frozen=True, slots=True)
class GroupMappingBody:
    group_pattern: str | None
    roles: list[str | None]


def _build_group_mapping(values: dict[str, object]) -> object:
    pattern, roles = values.get("groupPattern"), values.get("roles")
    assert pattern is None or isinstance(pattern, str)
    assert roles is None or isinstance(roles, list)
    return GroupMappingBody(pattern, list(roles or []))


_GROUP_MAPPING_BEAN = _Bean(
    _GROUP_MAPPING,
    ("name", "groupPattern", "roles"),
    {"name": _read_string, "groupPattern": _read_string, "roles": _read_string_set},
    _build_group_mapping,
)


def read_entity(data: bytes, reader: Callable[[_Lexer], object]) -> object:
    """What Jersey's ``JacksonJsonProvider`` hands the resource method: None for an empty body or
    ``null``; raises ``JacksonError``. Content after the first value is never read."""
    p = _Lexer(data)
    token = p.next_token()
    if token is None or token == VALUE_NULL:
        return None
    return reader(p)
