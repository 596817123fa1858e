"""Responses as Druid 27's Jersey 1.19.4 and Jetty 9.4.51 send them, and ``DruidError``, which carries one.

- Entities are Jackson's compact JSON (UTF-8, non-ASCII unescaped, ``Content-Type`` without a charset);
  Jersey's own rejections (404, 405, 406, 415) have no body and no ``Content-Type``.
- Jetty's HTML error pages (401, unmapped exceptions) are ``text/html;charset=iso-8859-1`` with the
  exception in the title.

Not reproduced: Java stack traces in 500 pages (and a hot JVM may drop NPE detail messages the fake
always sends).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from aiohttp import web

JSON_TYPE = "application/json"
HTML_TYPE = "text/html;charset=iso-8859-1"
_NPE = "java.lang.NullPointerException: Cannot invoke "


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
