"""A fake Druid 27.0.0 Coordinator serving the druid-basic-security REST API.

Real HTTP on 127.0.0.1 (aiohttp), one ``basic`` authenticator and one ``basic`` authorizer, state in
memory. It mirrors **Apache Druid 27.0.0** (Jetty 9.4.51, Jersey 1.19.4, Jackson 2.10.5) as verified by
the contract suite (``tests/contract``), which runs the same cases against this fake and a real 27.0.0
Coordinator: status codes, exact error messages and check order, presence-based query flags, response
shapes, content types, Basic auth (401) and CONFIG/``security`` authorization (403). Where 27.0.0 differs
from /work/shared/druid-api-facts.md, the fake follows 27.0.0:

- ``%2F`` in a name is decoded into the name (``a%2Fb`` addresses ``a/b``), ``%2E%2E`` is the name ``..``
  (Jetty 9.4; only Jetty 12 / Druid 35+ rejects them: opt in with ``reject_ambiguous_uris=True``).
  A literal ``;`` starts a matrix parameter that Jersey drops (``x;y=z`` addresses ``x``).
- Bodies are read by a streaming emulation of Jackson 2.10 (``_Lexer`` and the ``_read_*`` functions):
  mapping errors - including syntax errors met *inside* a list element or a bean property - are 400
  ``{"error": <Jackson text with line/column and reference chain>}``; syntax errors met at the top of
  an entity escape Jersey as a 500 Jetty page ("javax.servlet.ServletException: ...JsonParseException").
  Content after the first JSON value is never read. An empty body is a null entity: an NPE 500 for
  credentials/group mappings (the group mapping's NPE even precedes the authorizer-name check), "clear"
  for permissions.
- An entity endpoint called without ``Content-Type`` answers 415 (after the 403 check); a wrong
  ``Content-Type`` 415 and an unacceptable ``Accept`` 406 (before it), all with an empty body, as do
  unknown paths (404) and methods (405). ``q=0`` in ``Accept`` is ignored, as by Jersey 1. Successful
  mutations are 200 with an empty body typed ``application/json``.
- Jetty's HTML error pages (401, unmapped exceptions) are ``text/html;charset=iso-8859-1`` with the
  exception in the title. A wrong password's page says "User authentication failed." (no user name), an
  unknown user's "Unauthorized"; no (or a non-``Basic ``, case-sensitive) ``Authorization`` header gives
  JSON ``{"error":"Unauthorized request","errorMessage":null,"errorClass":null,"host":<host name>}``.
- A bad authenticator/authorizer *name* (``IdUtils``: leading ``.``, ``/``, control whitespace) is an
  unmapped ``DruidException``: 500 HTML, not 400 JSON. Handler errors of the Smile endpoints
  (``cachedSerialized*``) are Smile ``{"error": ...}``.
- ``GET .../groupMappings/{g}?full`` has no ``groupPattern``; group-mapping ``roles`` keep ``null`` items.
- Credentials: ``"iterations": -1`` means the authenticator default; 0 or other negatives are 500. The
  bootstrapped ``admin``/``druid_system`` passwords are hashed with 10,000 iterations regardless.
- ``/listen`` endpoints consume JSON (Smile ``Content-Type`` is 415) and answer an empty 404.
- Resource-name regexes are validated with Java's ``java.util.regex`` grammar (``java_regex``), then
  translated to Python ``re`` for matching. The translation approximates Unicode properties, ``\\X``,
  ``\\G`` and bounded variable-length look-behinds (a permission Python cannot compile never matches);
  ``\\p{In<block>}`` is accepted without checking the block name.
- ``cachedSerialized*`` answer Smile with shared property names and raw binary, as Druid writes them.

Not reproduced: list endpoints return names sorted (Druid: Java hash order); Java stack traces in 500
pages (and a hot JVM may drop NPE detail messages the fake always sends); ``HEAD``/``OPTIONS``.

Fake-only: every mutation runs atomically on the event loop (no await between its check and write),
i.e. the real read-modify-CAS always wins first time. Set ``contention_failures = N`` to make the next
N mutations that pass validation fail like five lost CAS races: 500 with a Jetty page naming
``Could not <op> due to concurrent update contention.`` (an ``ISE``); nothing changes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import re
import secrets
import socket
import struct
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from urllib.parse import unquote

from aiohttp import web
from aiohttp.typedefs import Middleware

from druid_access.passwords import DEFAULT_ITERATIONS, StoredCredentials, hash_password, verify_password
from druid_access.testing.faults import AUTH_USER_KEY, FakeServer, Handler
from druid_access.testing.faults import run_foreground as _run_foreground

AUTHN = "/druid-ext/basic-security/authentication"
AUTHZ = "/druid-ext/basic-security/authorization"
JSON_TYPE = "application/json"
SMILE_TYPE = "application/x-jackson-smile"
HTML_TYPE = "text/html;charset=iso-8859-1"
DRUID_VERSION = "27.0.0"
ACTIONS = ("READ", "WRITE")
#: ResourceType's known types in Druid 27, in the order the superuser roles list them.
KNOWN_RESOURCE_TYPES = ("CONFIG", "QUERY_CONTEXT", "SYSTEM_TABLE", "EXTERNAL", "DATASOURCE", "STATE", "VIEW")
UNSECURED_PATHS = frozenset({"/status/health"})
#: What ``GET /status`` lists on the contract suite's 27.0.0 Coordinator.
STATUS_MODULES = (
    ("org.apache.druid.common.aws.AWSModule", "druid-aws-common"),
    ("org.apache.druid.security.basic.BasicSecurityDruidModule", "druid-basic-security"),
    ("org.apache.druid.common.gcp.GcpModule", "druid-gcp-common"),
)
_NPE = "java.lang.NullPointerException: Cannot invoke "
_CREDENTIAL_UPDATE = (
    "org.apache.druid.security.basic.authentication.entity.BasicAuthenticatorCredentialUpdate"
)
_GROUP_MAPPING = "org.apache.druid.security.basic.authorization.entity.BasicAuthorizerGroupMapping"
_RESOURCE_ACTION = "org.apache.druid.server.security.ResourceAction"
_RESOURCE = "org.apache.druid.server.security.Resource"
_ACTION = "org.apache.druid.server.security.Action"


# ----------------------------------------------------------------------------------------- responses


class DruidError(Exception):
    """Carries the exact response the real server would send (``payload``: the entity of a handler
    error, which a Smile endpoint sends as Smile rather than JSON)."""

    def __init__(self, response: web.Response, payload: dict[str, object] | None = None) -> None:
        super().__init__(response.status)
        self.response = response
        self.payload = payload


def json_response(data: object, status: int = 200, content_type: str = JSON_TYPE) -> web.Response:
    """Jackson's compact output: UTF-8, non-ASCII unescaped, ``Content-Type`` without a charset."""
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return web.Response(status=status, body=body, headers={"Content-Type": content_type})


def ok_empty() -> web.Response:
    """``Response.ok().build()`` under ``@Produces(application/json)``: 200, empty, typed JSON."""
    return web.Response(status=200, headers={"Content-Type": JSON_TYPE})


def empty(status: int, headers: dict[str, str] | None = None) -> web.Response:
    """Jersey's own rejections (404, 405, 406, 415): no body and no ``Content-Type``."""
    return web.Response(status=status, headers=headers)


def bad_request(message: str) -> DruidError:
    """The one error shape of every basic-security handler: 400 {"error": message}."""
    return DruidError(json_response({"error": message}, status=400), {"error": message})


def _jetty_escape(text: str) -> str:
    """Jetty's ``StringUtil.sanitizeXmlString``: XML entities, other control characters become ``?``."""
    entities = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}
    return "".join(entities.get(c, "?" if ord(c) < 0x20 and c not in "\t\n\r" else c) for c in text)


def jetty_page(status: int, message: str, uri: str, causes: Iterable[str] = ()) -> web.Response:
    """Jetty 9.4's HTML error page (``ErrorHandler``), ISO-8859-1 encoded (other characters become ``?``)."""
    msg, causes = _jetty_escape(message), [_jetty_escape(c) for c in causes]
    rows = "".join(f"<tr><th>CAUSED BY:</th><td>{c}</td></tr>\n" for c in causes)
    stack = ""
    if causes:
        trace = f"{causes[0]}\n\tat (the fake Coordinator does not reproduce Java stack traces)\n"
        trace += "".join(f"Caused by: {c}\n\t... 1 more\n" for c in causes[1:])
        stack = f"<h3>Caused by:</h3><pre>{trace}</pre>\n"
    text = (
        "<html>\n<head>\n"
        '<meta http-equiv="Content-Type" content="text/html;charset=ISO-8859-1"/>\n'
        f"<title>Error {status} {msg}</title>\n</head>\n"
        f"<body><h2>HTTP ERROR {status} {msg}</h2>\n<table>\n"
        f"<tr><th>URI:</th><td>{_jetty_escape(uri)}</td></tr>\n"
        f"<tr><th>STATUS:</th><td>{status}</td></tr>\n"
        f"<tr><th>MESSAGE:</th><td>{msg}</td></tr>\n"
        "<tr><th>SERVLET:</th><td>default</td></tr>\n"
        f"{rows}</table>\n{stack}\n</body>\n</html>\n"
    )
    body = text.encode("iso-8859-1", errors="replace")
    return web.Response(status=status, body=body, headers={"Content-Type": HTML_TYPE})


def _uri(request: web.Request) -> str:
    return request.raw_path.split("?", 1)[0]


def server_error(request: web.Request, exception: str, *, checked: bool = False) -> DruidError:
    """An exception that escaped Jersey (``"<class>: <message>"``), as Jetty renders it: 500 HTML.

    Jersey wraps checked exceptions (Jackson's parse errors) in a ``ServletException``.
    """
    if checked:
        wrapper = f"javax.servlet.ServletException: {exception}"
        return DruidError(jetty_page(500, wrapper, _uri(request), (wrapper, exception)))
    return DruidError(jetty_page(500, exception, _uri(request), (exception,)))


def _npe(request: web.Request, detail: str) -> DruidError:
    return server_error(request, _NPE + detail)


# ----------------------------------------------------------------------------- Jackson 2.10 emulation

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


# ------------------------------------------------------------------------------------ Java regexes


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


# --------------------------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class Permission:
    """One stored permission; ``type``/``action`` may be None when a client sent null."""

    type: str | None
    name: str
    action: str | None

    def resource_action(self) -> dict[str, object]:
        return {"resource": {"name": self.name, "type": self.type}, "action": self.action}

    def full(self) -> dict[str, object]:
        # resourceNamePattern is the compiled Pattern serialised as its source.
        return {"resourceAction": self.resource_action(), "resourceNamePattern": self.name}

    def grants(self, resource_type: str, resource_name: str, action: str) -> bool:
        # Java's Matcher.matches(): implicitly anchored at both ends.
        if self.action != action or self.type != resource_type:
            return False
        try:
            return java_regex(self.name).fullmatch(resource_name) is not None
        except JavaRegexError:
            return False  # stored behind the API's back; Druid could not have compiled it


def superuser_permissions() -> list[Permission]:
    """AuthorizationUtils.makeSuperUserPermissions: READ and WRITE on ``.*`` for every known type."""
    return [Permission(t, ".*", a) for t in KNOWN_RESOURCE_TYPES for a in ACTIONS]


@dataclass(slots=True)
class GroupMapping:
    """``roles`` are stored as sent: they need not exist and may even contain None (JSON null)."""

    group_pattern: str | None
    roles: set[str | None] = field(default_factory=set)


# --------------------------------------------------------------------------------------- validation


def validate_id(field_name: str, value: str) -> str | None:
    """``IdUtils.validateId`` on authenticator/authorizer names: the problem, or None if valid."""
    prefix = f"Invalid value for field [{field_name}]: Value [{value}]"
    if value.startswith("."):
        return f"{prefix} cannot start with '.'."
    if "/" in value:
        return f"{prefix} cannot contain '/'."
    # Java's \s is [ \t\n\x0B\f\r]; only the space is allowed.
    if any(c in "\t\n\x0b\f\r" for c in value):
        return f"{prefix} contains illegal whitespace characters.  Only space is allowed."
    units = value.encode("utf-16-le")
    for i in range(0, len(units), 2):
        c = int.from_bytes(units[i : i + 2], "little")  # Java iterates UTF-16 code units
        if 0 < c < 31 or 127 < c < 159 or 0xD800 < c < 0xF8FF or 0xFFF0 < c < 0xFFFF:
            return f"{prefix} contains illegal UTF8 character [#{c}] at position [{i // 2}]"
    return None


def _accepts(accept_header: str | None, media_type: str) -> bool:
    """Whether an Accept header admits ``media_type``; like Jersey 1, q-values are not consulted."""
    if not accept_header:
        return True
    major = media_type.split("/", 1)[0]
    for item in accept_header.split(","):
        if item.split(";", 1)[0].strip().lower() in {"*/*", f"{major}/*", media_type}:
            return True
    return False


def _java_split_colon(text: str) -> list[str]:
    """Java's String.split(":"): trailing empty strings are dropped (so "u:p:" is ["u", "p"])."""
    if ":" not in text:
        return [text]
    parts = text.split(":")
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def _decode_basic(encoded: str) -> str | None:
    """java.util.Base64's basic decoder (padding optional, strict alphabet), then UTF-8."""
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.decode("utf-8", errors="replace")


@lru_cache(maxsize=1)
def _host_name() -> str:
    """``InetAddress.getLocalHost().getCanonicalHostName()``, which Druid puts in its 401 JSON."""
    return socket.getfqdn()


# ------------------------------------------------------------------------------------------- smile

_SMILE_MAX_SHARED = 1024


def smile_encode(value: object) -> bytes:
    """Jackson Smile as Druid's smile mapper writes it: header ``:)\\n\\x05`` (shared property names,
    raw binary), repeated short names as back-references, ``bytes`` as raw binary (0xFD)."""
    out = bytearray(b":)\n\x05")
    _smile_value(out, value, {})
    return bytes(out)


def _smile_vint(value: int) -> bytes:
    # Big-endian 7-bit groups; the last byte holds 6 bits and has the high bit set.
    tail = 0x80 | (value & 0x3F)
    value >>= 6
    head: list[int] = []
    while value:
        head.append(value & 0x7F)
        value >>= 7
    return bytes([*reversed(head), tail])


def _smile_value(out: bytearray, value: object, names: dict[str, int]) -> None:
    if value is None or isinstance(value, bool):
        out.append({None: 0x21, False: 0x22, True: 0x23}[value])
    elif isinstance(value, int):
        _smile_int(out, value)
    elif isinstance(value, str):
        _smile_string(out, value)
    elif isinstance(value, bytes):
        out.append(0xFD)
        out += _smile_vint(len(value)) + value
    elif isinstance(value, list | tuple):
        out.append(0xF8)
        for item in value:
            _smile_value(out, item, names)
        out.append(0xF9)
    elif isinstance(value, dict):
        out.append(0xFA)
        for key, item in value.items():
            _smile_key(out, str(key), names)
            _smile_value(out, item, names)
        out.append(0xFB)
    else:
        raise TypeError(f"cannot Smile-encode {type(value).__name__}")


def _smile_int(out: bytearray, value: int) -> None:
    if -16 <= value <= 15:
        out.append(0xC0 + ((value << 1) ^ (value >> 31)))
    elif -(2**31) <= value < 2**31:
        out.append(0x24)
        out += _smile_vint((value << 1) ^ (value >> 31))
    else:
        out.append(0x25)
        out += _smile_vint((value << 1) ^ (value >> 63))


def _smile_string(out: bytearray, value: str) -> None:
    data = value.encode("utf-8")
    size, ascii_only = len(data), len(data) == len(value)
    if size == 0:
        out.append(0x20)
    elif ascii_only and size <= 64:
        out.append((0x40 + size - 1) if size <= 32 else (0x60 + size - 33))
        out += data
    elif not ascii_only and size <= 65:
        out.append((0x80 + size - 2) if size <= 33 else (0xA0 + size - 34))
        out += data
    else:
        out.append(0xE0 if ascii_only else 0xE4)
        out += data + b"\xfc"


def _smile_key(out: bytearray, key: str, names: dict[str, int]) -> None:
    if key == "":
        out.append(0x20)
        return
    index = names.get(key)
    if index is not None:
        out += bytes([0x40 + index]) if index < 64 else bytes([0x30 + (index >> 8), index & 0xFF])
        return
    data = key.encode("utf-8")
    size, ascii_only = len(data), len(data) == len(key)
    if ascii_only and size <= 64:
        out.append(0x80 + size - 1)
        out += data
    elif not ascii_only and size <= 57:
        out.append(0xC0 + size - 2)
        out += data
    else:
        out.append(0x34)
        out += data + b"\xfc"
        return  # long names are not shared
    if len(names) >= _SMILE_MAX_SHARED:
        names.clear()
    names[key] = len(names)


def smile_decode(data: bytes) -> object:
    """Decode a Smile document (shared names and values, raw and 7-bit binary, all number types)."""
    if data[:3] != b":)\n":
        raise ValueError("not a Smile document (no header)")
    decoder = _SmileDecoder(data, data[3])
    value = decoder.value()
    if decoder.pos < len(data) and data[decoder.pos] != 0xFF:
        raise ValueError(f"trailing bytes after the Smile value at {decoder.pos}")
    return value


class _SmileDecoder:
    def __init__(self, data: bytes, flags: int) -> None:
        self.data, self.pos = data, 4
        self.names: list[str] | None = [] if flags & 0x01 else None
        self.values: list[str] | None = [] if flags & 0x02 else None

    def byte(self) -> int:
        self.pos += 1
        return self.data[self.pos - 1]

    def vint(self) -> int:
        value = 0
        while True:
            b = self.byte()
            if b & 0x80:
                return (value << 6) | (b & 0x3F)
            value = (value << 7) | b

    def text(self, size: int) -> str:
        self.pos += size
        return self.data[self.pos - size : self.pos].decode("utf-8")

    def until_end_marker(self) -> str:
        end = self.data.index(0xFC, self.pos)
        text = self.data[self.pos : end].decode("utf-8")
        self.pos = end + 1
        return text

    def seven_bit(self, size: int) -> bytes:
        out = bytearray()
        while size > 0:
            k = min(7, size)
            groups = self.data[self.pos : self.pos + k + 1]
            bits = 0
            for group in groups[:k]:
                bits = (bits << 7) | group
            bits = (bits << k) | groups[k]
            out += bits.to_bytes(k, "big")
            self.pos, size = self.pos + k + 1, size - k
        return bytes(out)

    def remember(self, table: list[str] | None, text: str) -> str:
        if table is not None and len(text.encode("utf-8")) <= 64:
            if len(table) >= _SMILE_MAX_SHARED:
                table.clear()
            table.append(text)
        return text

    def value(self) -> object:
        token = self.byte()
        if 0x01 <= token <= 0x1F:
            assert self.values is not None
            return self.values[token - 1]
        simple: dict[int, object] = {0x20: "", 0x21: None, 0x22: False, 0x23: True}
        if token in simple:
            return simple[token]
        if token in (0x24, 0x25):
            raw = self.vint()
            return (raw >> 1) ^ -(raw & 1)
        if token == 0x26:
            return int.from_bytes(self.seven_bit(self.vint()), "big", signed=True)
        if token in (0x28, 0x29):
            count, fmt = (5, ">f") if token == 0x28 else (10, ">d")
            bits = 0
            for b in self.data[self.pos : self.pos + count]:
                bits = (bits << 7) | b
            self.pos += count
            return struct.unpack(fmt, bits.to_bytes(4 if token == 0x28 else 8, "big"))[0]
        if token == 0x2A:
            raw = self.vint()
            scale = (raw >> 1) ^ -(raw & 1)
            unscaled = int.from_bytes(self.seven_bit(self.vint()), "big", signed=True)
            return Decimal(unscaled).scaleb(-scale)
        for low, high, offset in ((0x40, 0x5F, 1), (0x60, 0x7F, 33), (0x80, 0x9F, 2), (0xA0, 0xBF, 34)):
            if low <= token <= high:
                return self.remember(self.values, self.text(token - low + offset))
        if 0xC0 <= token <= 0xDF:
            raw = token - 0xC0
            return (raw >> 1) ^ -(raw & 1)
        if token in (0xE0, 0xE4):
            return self.until_end_marker()
        if token == 0xE8:
            return self.seven_bit(self.vint())
        if 0xEC <= token <= 0xEF:
            assert self.values is not None
            return self.values[((token & 0x03) << 8) | self.byte()]
        if token == 0xFD:
            size = self.vint()
            self.pos += size
            return self.data[self.pos - size : self.pos]
        if token == 0xF8:
            items: list[object] = []
            while self.data[self.pos] != 0xF9:
                items.append(self.value())
            self.pos += 1
            return items
        if token == 0xFA:
            obj: dict[str, object] = {}
            while self.data[self.pos] != 0xFB:
                key = self.key()
                obj[key] = self.value()
            self.pos += 1
            return obj
        raise ValueError(f"unexpected Smile value token 0x{token:02x} at {self.pos - 1}")

    def key(self) -> str:
        token = self.byte()
        if token == 0x20:
            return ""
        if 0x30 <= token <= 0x33:
            assert self.names is not None
            return self.names[((token & 0x03) << 8) | self.byte()]
        if token == 0x34:
            return self.until_end_marker()
        if 0x40 <= token <= 0x7F:
            assert self.names is not None
            return self.names[token - 0x40]
        if 0x80 <= token <= 0xBF:
            return self.remember(self.names, self.text(token - 0x80 + 1))
        if 0xC0 <= token <= 0xF7:
            return self.remember(self.names, self.text(token - 0xC0 + 2))
        raise ValueError(f"unexpected Smile key token 0x{token:02x} at {self.pos - 1}")


# ------------------------------------------------------------------------------------------ server

Endpoint = Callable[[web.Request], Awaitable[web.Response]]
_JERSEY_PREFIXES = ("/druid-ext/", "/status", "/druid/")


def _path_params(request: web.Request) -> dict[str, str]:
    """The route's ``{name}`` segments as Jersey's ``@PathParam`` sees them: matrix parameters
    (``;...``) dropped, then percent-decoded as UTF-8 (``%2F`` stays inside the name)."""
    route = request.match_info.route
    canonical = route.resource.canonical if route.resource is not None else ""
    raw_segments = request.raw_path.split("?", 1)[0].split("/")
    params: dict[str, str] = {}
    for index, part in enumerate(canonical.split("/")):
        if part.startswith("{") and part.endswith("}") and index < len(raw_segments):
            raw = raw_segments[index].split(";", 1)[0]
            params[part[1:-1]] = unquote(raw, errors="replace")
    return params


@dataclass(frozen=True, slots=True)
class _Guard:
    """Resource a route is filtered on (None: unsecured), its Jersey media types and entity."""

    resource_type: str | None = "CONFIG"
    resource_name: str = "security"
    produces: str = JSON_TYPE
    consumes: str = JSON_TYPE
    json_forbidden: bool = False  # ForbiddenException mapper (JSON) vs the security filter's text body
    entity: bool = False  # reads a JSON entity: no Content-Type at all is a 415


SECURITY = _Guard()
ENTITY = _Guard(entity=True)
STATE = _Guard(resource_type="STATE", resource_name="STATE", json_forbidden=True)
UNSECURED = _Guard(resource_type=None)


class FakeCoordinator(FakeServer):
    """Stateful fake of a Druid 27.0.0 Coordinator's basic-security API. See the module docstring.

    Direct state (mutate freely from tests to simulate drift "behind the operator's back"):

    - ``credentials``: the authenticator's users, name -> :class:`StoredCredentials` or None
    - ``users``: the authorizer's users, name -> set of role names (may name missing roles)
    - ``roles``: name -> list of :class:`Permission`
    - ``group_mappings``: name -> :class:`GroupMapping`
    - ``contention_failures``: the next N mutations fail with a 500 contention error

    ``reject_ambiguous_uris=True`` answers ``%2F`` and ``.``/``..`` segments with Jetty 12's 400
    "Ambiguous URI" page (Druid 35+) instead of decoding them into names as 27.0.0 does.
    """

    name = "fake-coordinator"
    druid_version = DRUID_VERSION

    def __init__(
        self,
        *,
        admin_password: str,
        authenticator: str = "basic",
        authorizer: str = "basic",
        internal_password: str | None = None,
        credential_iterations: int = DEFAULT_ITERATIONS,
        port: int = 0,
        host: str = "127.0.0.1",
        reject_ambiguous_uris: bool = False,
    ) -> None:
        super().__init__(host=host, port=port)
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.credential_iterations = credential_iterations
        self.admin_password = admin_password
        self.internal_password = internal_password or secrets.token_urlsafe(24)
        self.reject_ambiguous_uris = reject_ambiguous_uris
        self.credentials: dict[str, StoredCredentials | None] = {}
        self.users: dict[str, set[str]] = {}
        self.roles: dict[str, list[Permission]] = {}
        self.group_mappings: dict[str, GroupMapping] = {}
        self.contention_failures = 0
        # Successful logins, keyed by stored record + a salted SHA-256 of the password (as recent Druid).
        self._verified: set[tuple[str, str, str, int, bytes]] = set()
        self._cache_salt = secrets.token_bytes(16)
        self._bootstrap()

    # -- direct state helpers (no HTTP) -----------------------------------------------------------

    def _bootstrap(self) -> None:
        """What the authenticator and authorizer do at Coordinator start. The initial passwords are
        hashed with Druid's default 10,000 iterations, whatever ``credentialIterations`` says."""
        for user, password in (("admin", self.admin_password), ("druid_system", self.internal_password)):
            self.set_password(user, password, iterations=DEFAULT_ITERATIONS)
            self.roles.setdefault(user, superuser_permissions())
            self.users.setdefault(user, set()).add(user)

    def set_password(self, user: str, password: str, *, iterations: int | None = None) -> None:
        """Set a password in the authenticator (creating the user there if needed)."""
        self.credentials[user] = hash_password(password, iterations=iterations or self.credential_iterations)

    def add_user(self, name: str, *, password: str | None = None, roles: Iterable[str] = ()) -> None:
        """Create a user in both stores; ``roles`` are stored as given (they need not exist)."""
        self.credentials.setdefault(name, None)
        if password is not None:
            self.set_password(name, password)
        self.users.setdefault(name, set()).update(roles)

    def add_role(self, name: str, permissions: Iterable[Permission] = ()) -> None:
        self.roles[name] = list(permissions)

    # -- app wiring ------------------------------------------------------------------------------

    def _middlewares(self) -> list[Middleware]:
        return [self._jetty_middleware(), self._authentication_middleware()]

    def _routes(self, app: web.Application) -> None:
        add = self._add_route(app)
        add("GET", "/status/health", self._health, UNSECURED)
        add("GET", "/status", self._status, STATE)
        self._authn_routes(add)
        self._authz_routes(add)

    def _add_route(self, app: web.Application) -> Callable[[str, str, Endpoint, _Guard], None]:
        def add(method: str, path: str, endpoint: Endpoint, guard: _Guard = SECURITY) -> None:
            app.router.add_route(method, path, self._guarded(endpoint, guard))

        return add

    def _authn_routes(self, add: Callable[..., None]) -> None:
        db = f"{AUTHN}/db/{{a}}"
        add("GET", f"{AUTHN}/loadStatus", self._authn_load_status)
        add("GET", f"{AUTHN}/refreshAll", self._empty_ok)
        add("GET", f"{db}/users", self._authn_list_users)
        add("GET", f"{db}/users/{{u}}", self._authn_get_user)
        add("POST", f"{db}/users/{{u}}", self._authn_create_user)
        add("DELETE", f"{db}/users/{{u}}", self._authn_delete_user)
        add("POST", f"{db}/users/{{u}}/credentials", self._authn_set_credentials, ENTITY)
        add("GET", f"{db}/cachedSerializedUserMap", self._authn_cached_user_map, _Guard(produces=SMILE_TYPE))
        add("POST", f"{AUTHN}/listen/{{a}}", self._listen)

    def _authz_routes(self, add: Callable[..., None]) -> None:
        db = f"{AUTHZ}/db/{{z}}"
        add("GET", f"{AUTHZ}/loadStatus", self._authz_load_status)
        add("GET", f"{AUTHZ}/refreshAll", self._empty_ok)
        add("GET", f"{db}/users", self._authz_list_users)
        add("GET", f"{db}/users/{{u}}", self._authz_get_user)
        add("POST", f"{db}/users/{{u}}", self._authz_create_user)
        add("DELETE", f"{db}/users/{{u}}", self._authz_delete_user)
        add("POST", f"{db}/users/{{u}}/roles/{{r}}", self._assign_user_role)
        add("DELETE", f"{db}/users/{{u}}/roles/{{r}}", self._unassign_user_role)
        add("GET", f"{db}/groupMappings", self._list_group_mappings)
        add("GET", f"{db}/groupMappings/{{g}}", self._get_group_mapping)
        add("POST", f"{db}/groupMappings/{{g}}", self._create_group_mapping, ENTITY)
        add("DELETE", f"{db}/groupMappings/{{g}}", self._delete_group_mapping)
        add("POST", f"{db}/groupMappings/{{g}}/roles/{{r}}", self._assign_group_role)
        add("DELETE", f"{db}/groupMappings/{{g}}/roles/{{r}}", self._unassign_group_role)
        add("GET", f"{db}/roles", self._list_roles)
        add("GET", f"{db}/roles/{{r}}", self._get_role)
        add("POST", f"{db}/roles/{{r}}", self._create_role)
        add("DELETE", f"{db}/roles/{{r}}", self._delete_role)
        add("POST", f"{db}/roles/{{r}}/permissions", self._set_permissions, ENTITY)
        add("GET", f"{db}/roles/{{r}}/permissions", self._get_permissions)
        smile = _Guard(produces=SMILE_TYPE)
        add("GET", f"{db}/cachedSerializedUserMap", self._authz_cached_user_map, smile)
        add("GET", f"{db}/cachedSerializedGroupMappingMap", self._authz_cached_group_map, smile)
        for listen in ("listen/{z}", "listen/users/{z}", "listen/groupMappings/{z}"):
            add("POST", f"{AUTHZ}/{listen}", self._listen)

    # -- middlewares -----------------------------------------------------------------------------

    def _jetty_middleware(self) -> Middleware:
        """Jetty/Jersey answers for what aiohttp's router rejects (empty 404/405), and Jetty 12's
        ambiguous-URI rejection when enabled."""

        @web.middleware
        async def jetty(request: web.Request, handler: Handler) -> web.StreamResponse:
            if self.reject_ambiguous_uris:
                raw = _uri(request)
                if "%2f" in raw.lower():
                    return jetty_page(400, "Ambiguous URI path separator", raw)
                if any(seg.lower() in {"%2e", "%2e%2e", ".%2e", "%2e."} for seg in raw.split("/")):
                    return jetty_page(400, "Ambiguous URI path segment", raw)
            try:
                return await handler(request)
            except web.HTTPNotFound:
                if request.path.startswith(_JERSEY_PREFIXES):
                    return empty(404)
                return jetty_page(404, "Not Found", _uri(request))
            except web.HTTPMethodNotAllowed as exc:
                allowed = ",".join(sorted(exc.allowed_methods | {"OPTIONS"}))
                return empty(405, {"Allow": allowed})

        return jetty

    def _authentication_middleware(self) -> Middleware:
        @web.middleware
        async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path in UNSECURED_PATHS:
                return await handler(request)
            user, failure = await self._login(request)
            if failure is not None:
                return failure
            assert user is not None
            request[AUTH_USER_KEY] = user
            return await handler(request)

        return authenticate

    async def _login(self, request: web.Request) -> tuple[str | None, web.Response | None]:
        header = request.headers.get("Authorization")
        # BasicAuthUtils: at least 7 characters and exactly "Basic " (case-sensitive; a lower-case
        # scheme only seems to work on 27.0.0 when Jetty's per-connection header cache hands back an
        # earlier "Basic" field with the same value on a kept-alive connection).
        if header is None or len(header) < 7 or not header.startswith("Basic "):
            # No authenticator claimed the request: PreResponseAuthorizationCheckFilter's 401.
            return None, self._unauthorized_json()
        decoded = _decode_basic(header[6:])
        parts = _java_split_colon(decoded) if decoded is not None else []
        if len(parts) != 2:
            return None, jetty_page(401, "Unauthorized", _uri(request))
        user, password = parts
        stored = self.credentials.get(user)
        if stored is None:  # unknown user, or no password set yet
            return None, jetty_page(401, "Unauthorized", _uri(request))
        if not await self._verify(user, password, stored):
            return None, jetty_page(401, "User authentication failed.", _uri(request))
        return user, None

    async def _verify(self, user: str, password: str, stored: StoredCredentials) -> bool:
        digest = hashlib.sha256(self._cache_salt + password.encode("utf-8")).digest()
        key = (user, stored.salt, stored.hash, stored.iterations, digest)
        if key in self._verified:
            return True
        ok = await asyncio.to_thread(verify_password, password, stored)
        if ok:
            if len(self._verified) > 4096:
                self._verified.clear()
            self._verified.add(key)
        return ok

    @staticmethod
    def _unauthorized_json() -> web.Response:
        body = {
            "error": "Unauthorized request",
            "errorMessage": None,
            "errorClass": None,
            "host": _host_name(),
        }
        response = json_response(body, status=401, content_type="application/json;charset=utf-8")
        response.headers["WWW-Authenticate"] = "Basic"
        return response

    def _guarded(self, endpoint: Endpoint, guard: _Guard) -> Handler:
        """Jersey matching (415/406), the resource filter (403), entity media type (415), then the method."""

        async def handler(request: web.Request) -> web.StreamResponse:
            content_type = request.headers.get("Content-Type")
            if content_type and content_type.split(";", 1)[0].strip().lower() != guard.consumes:
                return empty(415)
            if not _accepts(request.headers.get("Accept"), guard.produces):
                return empty(406)
            if guard.resource_type is not None and not self._allowed(request, guard):
                return self._forbidden(guard)
            if guard.entity and not content_type:
                return empty(415)  # no MessageBodyReader for application/octet-stream
            try:
                return await endpoint(request)
            except DruidError as exc:
                if exc.payload is not None and guard.produces == SMILE_TYPE:
                    body = smile_encode(exc.payload)
                    return web.Response(
                        status=exc.response.status, body=body, headers={"Content-Type": SMILE_TYPE}
                    )
                return exc.response

        return handler

    def _allowed(self, request: web.Request, guard: _Guard) -> bool:
        assert guard.resource_type is not None
        # BasicSecurityResourceFilter: READ for GET, WRITE for every other method.
        action = "READ" if request.method == "GET" else "WRITE"
        user = request.get(AUTH_USER_KEY)
        for role in sorted(self.users.get(user, set()) if user is not None else set()):
            for permission in self.roles.get(role, []):  # missing roles are skipped
                if permission.grants(guard.resource_type, guard.resource_name, action):
                    return True
        return False

    @staticmethod
    def _forbidden(guard: _Guard) -> web.Response:
        message = "Allowed:false, Message:"
        if guard.json_forbidden:
            return json_response({"Access-Check-Result": message}, status=403)
        body = f"Access-Check-Result: {message}".encode()
        return web.Response(status=403, body=body, headers={"Content-Type": "text/plain"})

    # -- shared checks ---------------------------------------------------------------------------

    @staticmethod
    def _validate(request: web.Request, field_name: str, value: str) -> None:
        """AuthValidator: an invalid name is an unmapped DruidException (500 HTML in 27.0.0)."""
        problem = validate_id(field_name, value)
        if problem is not None:
            raise server_error(request, f"org.apache.druid.error.DruidException: {problem}")

    def _authn_name(self, request: web.Request, *, validated: bool = False) -> None:
        name = _path_params(request)["a"]
        if not validated:
            self._validate(request, "authenticatorName", name)
        if name != self.authenticator:
            raise bad_request(f"Basic authenticator with name [{name}] does not exist.")

    def _authz_name(self, request: web.Request, *, validated: bool = False) -> None:
        name = _path_params(request)["z"]
        if not validated:
            self._validate(request, "authorizerName", name)
        if name != self.authorizer:
            raise bad_request(f"Basic authorizer with name [{name}] does not exist.")

    def _contend(self, request: web.Request, operation: str) -> None:
        """Simulate five lost CAS races on the metadata store (an unmapped ISE: 500)."""
        if self.contention_failures > 0:
            self.contention_failures -= 1
            message = f"Could not {operation} due to concurrent update contention."
            raise server_error(request, f"org.apache.druid.java.util.common.ISE: {message}")

    def _need_role(self, role: str) -> list[Permission]:
        if role not in self.roles:
            raise bad_request(f"Role [{role}] does not exist.")
        return self.roles[role]

    def _need_authz_user(self, user: str) -> set[str]:
        if user not in self.users:
            raise bad_request(f"User [{user}] does not exist.")
        return self.users[user]

    def _need_group_mapping(self, name: str) -> GroupMapping:
        if name not in self.group_mappings:
            raise bad_request(f"Group mapping [{name}] does not exist.")
        return self.group_mappings[name]

    @staticmethod
    async def _entity(request: web.Request, reader: Callable[[_Lexer], object]) -> object:
        """Read the JSON entity the way Jersey + Jackson 2.10 do (before the resource method runs)."""
        try:
            return read_entity(await request.read(), reader)
        except JacksonError as exc:
            if exc.kind == "mapping":
                raise bad_request(exc.text()) from None
            raise server_error(request, f"{exc.java_class()}: {exc.text()}", checked=True) from None

    # -- generic endpoints -----------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return json_response(True)

    async def _status(self, request: web.Request) -> web.Response:
        modules = [{"name": n, "artifact": a, "version": self.druid_version} for n, a in STATUS_MODULES]
        memory = {"maxMemory": 536870912, "totalMemory": 268435456, "freeMemory": 134217728}
        memory |= {"usedMemory": 134217728, "directMemory": 536870912}
        return json_response({"version": self.druid_version, "modules": modules, "memory": memory})

    async def _empty_ok(self, request: web.Request) -> web.Response:
        return ok_empty()

    async def _listen(self, request: web.Request) -> web.Response:
        # The Coordinator's handler answers the /listen endpoints with a bare 404 (typed JSON).
        return web.Response(status=404, headers={"Content-Type": JSON_TYPE})

    # -- authentication API ----------------------------------------------------------------------

    async def _authn_load_status(self, request: web.Request) -> web.Response:
        return json_response({self.authenticator: True})

    async def _authn_list_users(self, request: web.Request) -> web.Response:
        self._authn_name(request)
        return json_response(sorted(self.credentials))

    async def _authn_get_user(self, request: web.Request) -> web.Response:
        self._authn_name(request)
        user = _path_params(request)["u"]
        if user not in self.credentials:
            raise bad_request(f"User [{user}] does not exist.")
        stored = self.credentials[user]
        return json_response({"name": user, "credentials": stored.to_json() if stored else None})

    async def _authn_create_user(self, request: web.Request) -> web.Response:
        self._authn_name(request)
        user = _path_params(request)["u"]
        if user in self.credentials:
            raise bad_request(f"User [{user}] already exists.")
        self._contend(request, f"create user[{user}]")
        self.credentials[user] = None
        return ok_empty()

    async def _authn_delete_user(self, request: web.Request) -> web.Response:
        self._authn_name(request)
        user = _path_params(request)["u"]
        if user not in self.credentials:
            raise bad_request(f"User [{user}] does not exist.")
        self._contend(request, f"delete user[{user}]")
        del self.credentials[user]
        return ok_empty()

    async def _authn_set_credentials(self, request: web.Request) -> web.Response:
        update = await self._entity(request, lambda p: _read_bean(p, _CREDENTIAL_UPDATE_BEAN))
        self._authn_name(request)  # the handler checks the name before the updater touches the body
        if update is None:
            raise _npe(request, f'"{_CREDENTIAL_UPDATE}.getIterations()" because "update" is null')
        assert isinstance(update, CredentialUpdateBody)
        iterations = self.credential_iterations if update.iterations == -1 else update.iterations
        if iterations <= 0:
            raise server_error(request, "java.lang.IllegalArgumentException: invalid iterationCount value")
        # Druid hashes before the updater looks the user up; hashing runs off the loop.
        stored = await asyncio.to_thread(hash_password, update.password, iterations=iterations)
        user = _path_params(request)["u"]
        if user not in self.credentials:
            raise bad_request(f"User [{user}] does not exist.")
        self._contend(request, f"update credentials for user[{user}]")
        self.credentials[user] = stored
        return ok_empty()

    async def _authn_cached_user_map(self, request: web.Request) -> web.Response:
        self._authn_name(request)
        users = {
            name: {"name": name, "credentials": _smile_credentials(stored)}
            for name, stored in sorted(self.credentials.items())
        }
        return web.Response(body=smile_encode(users), headers={"Content-Type": SMILE_TYPE})

    # -- authorization API: users ----------------------------------------------------------------

    async def _authz_load_status(self, request: web.Request) -> web.Response:
        return json_response({self.authorizer: True})

    async def _authz_list_users(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        return json_response(sorted(self.users))

    async def _authz_get_user(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        user = _path_params(request)["u"]
        roles = self._need_authz_user(user)
        # Presence-based flags: ?full=false still means full; simplifyPermissions only with full.
        if "full" not in request.query:
            return json_response({"name": user, "roles": sorted(roles)})
        simplify = "simplifyPermissions" in request.query
        existing = [r for r in sorted(roles) if r in self.roles]  # missing roles are skipped
        shapes = [self._role_simplified(r) if simplify else self._role_plain(r) for r in existing]
        return json_response({"name": user, "roles": shapes})

    async def _authz_create_user(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        user = _path_params(request)["u"]
        if user in self.users:
            raise bad_request(f"User [{user}] already exists.")
        self._contend(request, f"create user[{user}]")
        self.users[user] = set()
        return ok_empty()

    async def _authz_delete_user(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        user = _path_params(request)["u"]
        self._need_authz_user(user)
        self._contend(request, f"delete user[{user}]")
        del self.users[user]
        return ok_empty()

    async def _assign_user_role(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        params = _path_params(request)
        user, role = params["u"], params["r"]
        self._need_role(role)  # checked before the user
        roles = self._need_authz_user(user)
        if role in roles:
            raise bad_request(f"User [{user}] already has role [{role}].")
        self._contend(request, f"assign role[{role}] to user[{user}]")
        roles.add(role)
        return ok_empty()

    async def _unassign_user_role(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        params = _path_params(request)
        user, role = params["u"], params["r"]
        self._need_role(role)
        roles = self._need_authz_user(user)
        if role not in roles:
            raise bad_request(f"User [{user}] does not have role [{role}].")
        self._contend(request, f"unassign role[{role}] from user[{user}]")
        roles.discard(role)
        return ok_empty()

    # -- authorization API: group mappings -------------------------------------------------------

    async def _list_group_mappings(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        return json_response(sorted(self.group_mappings))

    async def _get_group_mapping(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        name = _path_params(request)["g"]
        mapping = self._need_group_mapping(name)
        if "full" in request.query:  # BasicAuthorizerGroupMappingFull: no groupPattern field
            existing = sorted(r for r in mapping.roles if r is not None and r in self.roles)
            return json_response({"name": name, "roles": [self._role_plain(r) for r in existing]})
        return json_response({"name": name, "groupPattern": mapping.group_pattern, "roles": _roles(mapping)})

    async def _create_group_mapping(self, request: web.Request) -> web.Response:
        body = await self._entity(request, lambda p: _read_bean(p, _GROUP_MAPPING_BEAN))
        self._validate(request, "authorizerName", _path_params(request)["z"])
        if body is None:  # the resource calls groupMapping.getGroupPattern() before the handler
            raise _npe(request, f'"{_GROUP_MAPPING}.getGroupPattern()" because "groupMapping" is null')
        assert isinstance(body, GroupMappingBody)
        self._authz_name(request, validated=True)
        name = _path_params(request)["g"]
        if name in self.group_mappings:
            raise bad_request(f"Group mapping [{name}] already exists.")
        self._contend(request, f"create groupMapping[{name}]")
        # The path name wins over the body's; roles are stored as given, without an existence check.
        self.group_mappings[name] = GroupMapping(body.group_pattern, set(body.roles))
        return ok_empty()

    async def _delete_group_mapping(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        name = _path_params(request)["g"]
        self._need_group_mapping(name)
        self._contend(request, f"delete groupMapping[{name}]")
        del self.group_mappings[name]
        return ok_empty()

    async def _assign_group_role(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        params = _path_params(request)
        name, role = params["g"], params["r"]
        self._need_role(role)
        mapping = self._need_group_mapping(name)
        if role in mapping.roles:
            raise bad_request(f"Group mapping [{name}] already has role [{role}].")
        self._contend(request, f"assign role[{role}] to groupMapping[{name}]")
        mapping.roles.add(role)
        return ok_empty()

    async def _unassign_group_role(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        params = _path_params(request)
        name, role = params["g"], params["r"]
        self._need_role(role)
        mapping = self._need_group_mapping(name)
        if role not in mapping.roles:
            raise bad_request(f"Group mapping [{name}] does not have role [{role}].")
        self._contend(request, f"unassign role[{role}] from groupMapping[{name}]")
        mapping.roles.discard(role)
        return ok_empty()

    # -- authorization API: roles and permissions ------------------------------------------------

    def _role_plain(self, role: str) -> dict[str, object]:
        return {"name": role, "permissions": [p.full() for p in self.roles[role]]}

    def _role_simplified(self, role: str) -> dict[str, object]:
        return {"name": role, "users": None, "permissions": [p.resource_action() for p in self.roles[role]]}

    def _holders(self, role: str) -> tuple[list[str], list[str]]:
        users = sorted(u for u, roles in self.users.items() if role in roles)
        groups = sorted(g for g, m in self.group_mappings.items() if role in m.roles)
        return users, groups

    async def _list_roles(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        return json_response(sorted(self.roles))

    async def _get_role(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        role = _path_params(request)["r"]
        permissions = self._need_role(role)
        full, simplify = "full" in request.query, "simplifyPermissions" in request.query
        users, groups = self._holders(role)
        if full and simplify:  # BasicAuthorizerRoleSimplifiedPermissions: no "groups" field
            return json_response(
                {"name": role, "users": users, "permissions": [p.resource_action() for p in permissions]}
            )
        if simplify:
            return json_response(self._role_simplified(role))
        if full:
            perms = [p.full() for p in permissions]
            return json_response({"name": role, "users": users, "groups": groups, "permissions": perms})
        return json_response(self._role_plain(role))

    async def _create_role(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        role = _path_params(request)["r"]
        if role in self.roles:
            raise bad_request(f"Role [{role}] already exists.")
        self._contend(request, f"create role[{role}]")
        self.roles[role] = []
        return ok_empty()

    async def _delete_role(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        role = _path_params(request)["r"]
        self._need_role(role)
        self._contend(request, f"delete role[{role}]")
        # Not rejected while assigned: stripped from every user and group mapping first.
        for roles in self.users.values():
            roles.discard(role)
        for mapping in self.group_mappings.values():
            mapping.roles.discard(role)
        del self.roles[role]
        return ok_empty()

    async def _set_permissions(self, request: web.Request) -> web.Response:
        raw = await self._entity(request, _read_permission_list)
        self._authz_name(request)
        role = _path_params(request)["r"]
        self._need_role(role)  # checked before the permissions
        assert raw is None or isinstance(raw, list)
        permissions = [self._to_permission(request, item) for item in raw or []]  # null clears
        self._contend(request, f"set permissions for role[{role}]")
        self.roles[role] = permissions  # replaces the whole list
        return ok_empty()

    @staticmethod
    def _to_permission(request: web.Request, item: ResourceActionBody | None) -> Permission:
        """BasicAuthorizerPermission.makePermissionList: NPEs on null parts, then Pattern.compile."""
        if item is None:
            raise _npe(request, f'"{_RESOURCE_ACTION}.getResource()" because "resourceAction" is null')
        if not item.has_resource:
            raise _npe(
                request,
                f'"{_RESOURCE}.getName()" because the return value of "{_RESOURCE_ACTION}.getResource()" is null',
            )
        if item.name is None:
            raise _npe(request, '"String.isEmpty()" because "this.pattern" is null')
        try:
            java_regex(item.name)
        except JavaRegexError:
            raise bad_request(
                f"Invalid permission, resource name regex[{item.name}] does not compile."
            ) from None
        return Permission(item.type, item.name, item.action)

    async def _get_permissions(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        permissions = self._need_role(_path_params(request)["r"])
        return json_response([p.full() for p in permissions])

    async def _authz_cached_user_map(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        user_map = {u: {"name": u, "roles": sorted(r)} for u, r in sorted(self.users.items())}
        payload = {"userMap": user_map, "roleMap": self._role_map()}
        return web.Response(body=smile_encode(payload), headers={"Content-Type": SMILE_TYPE})

    async def _authz_cached_group_map(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        group_map = {
            g: {"name": g, "groupPattern": m.group_pattern, "roles": _roles(m)}
            for g, m in sorted(self.group_mappings.items())
        }
        payload = {"groupMappingMap": group_map, "roleMap": self._role_map()}
        return web.Response(body=smile_encode(payload), headers={"Content-Type": SMILE_TYPE})

    def _role_map(self) -> dict[str, object]:
        return {r: self._role_plain(r) for r in sorted(self.roles)}


def _roles(mapping: GroupMapping) -> list[str | None]:
    """A mapping's roles, ``null`` first (Java's HashSet puts null in bucket 0)."""
    return sorted(mapping.roles, key=lambda r: (r is not None, r or ""))


def _smile_credentials(stored: StoredCredentials | None) -> dict[str, object] | None:
    if stored is None:
        return None
    # byte[] fields are native Smile binary, not base64 text.
    return {"salt": stored.salt_bytes(), "hash": stored.hash_bytes(), "iterations": stored.iterations}


def run_foreground(
    *, port: int, admin_password: str, authenticator: str, authorizer: str, host: str = "127.0.0.1"
) -> int:
    """Serve on ``host:port`` until SIGINT/SIGTERM (``druid-access fake-coordinator``)."""
    fake = FakeCoordinator(
        admin_password=admin_password,
        authenticator=authenticator,
        authorizer=authorizer,
        port=port,
        host=host,
    )
    return _run_foreground(fake)
