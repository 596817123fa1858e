"""Shared HTTP plumbing of the Coordinator and Pivot clients (private).

One place decides timeouts, connection-pool limits, TLS verification, URL building and the
mapping of transport failures to the error tree, so the two clients cannot drift apart.
Nothing here retries: retry policy belongs to the caller (the reconcile loop), which knows
whether an operation is safe to repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar
from urllib.parse import quote

import httpx
from httpx._client import UseClientDefault as _UseClientDefault
from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError

from druid_access import __version__
from druid_access.clients._transport import Transport
from druid_access.clients.error_types import NotSent
from druid_access.clients.errors import (
    UNANSWERED_STATUSES,
    ApiError,
    CertificateNotTrusted,
    RedirectRefused,
    Target,
    Unavailable,
    UnexpectedResponse,
    transport_error,
)
from druid_access.clients.redirects import RedirectPolicy, origin

__all__ = ["HttpOptions", "JsonTransport", "build_path", "reveal", "segment"]

# Entered around every request: the target's health makes requests wait there while it is in
# doubt, and yields False when one must not be sent at all (the target's breaker is open).
Gate = Callable[[], contextlib.AbstractAsyncContextManager[bool]]

log = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

USER_AGENT = f"druid-access-operator/{__version__}"

# A non-leader Coordinator redirects once; a second hop happens only while leadership moves.
MAX_REDIRECTS = 2
LEADER_MEMORY_SECONDS = 60.0
_REDIRECTS = (307, 308)  # the only ones that keep the method and body


@dataclass(frozen=True, kw_only=True)
class HttpOptions:
    """Transport settings shared by both clients; every wait is bounded.

    ``ca_file`` adds a CA bundle (PEM) to trust instead of the system store; ``verify=False``
    disables certificate checks entirely and exists only for throw-away test setups.
    ``redirect_hosts`` are the places besides the base URL's origin that a 307/308 may lead
    to (see ``redirects.RedirectPolicy``).
    """

    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    write_timeout: float = 30.0
    pool_timeout: float = 5.0
    max_connections: int = 10
    max_keepalive_connections: int = 5
    keepalive_expiry: float = 30.0
    verify: bool = True
    ca_file: Path | str | None = None
    redirect_hosts: tuple[str, ...] = ()

    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(
            connect=self.connect_timeout,
            read=self.read_timeout,
            write=self.write_timeout,
            pool=self.pool_timeout,
        )

    def limits(self) -> httpx.Limits:
        return httpx.Limits(
            max_connections=self.max_connections,
            max_keepalive_connections=self.max_keepalive_connections,
            keepalive_expiry=self.keepalive_expiry,
        )

    def ssl_context(self) -> ssl.SSLContext:
        """A verifying context (system CAs, or only ``ca_file`` when given) unless ``verify`` is off."""
        if not self.verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        cafile = str(self.ca_file) if self.ca_file is not None else None
        return ssl.create_default_context(cafile=cafile)


def reveal(value: SecretStr | str) -> str:
    """The plain value of a secret given either way."""
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def segment(name: str) -> str:
    """Percent-encode ``name`` as exactly one URL path segment.

    ``safe=""`` also encodes ``/`` (as %2F) and ``@``; spaces become %20, never ``+``.
    Empty, ``.`` and ``..`` are refused because URL normalisation (httpx's included) removes
    or collapses such segments, which would silently address a different endpoint.
    """
    if name in ("", ".", ".."):
        raise ValueError(f"{name!r} cannot be used as a name in a URL path")
    return quote(name, safe="")


def build_path(*parts: str, flags: Sequence[str] = ()) -> str:
    """Join already-encoded ``parts`` and append presence-only query flags (``?full&x``).

    The query is written by hand: httpx ``params`` would render ``full=``, and Druid tests
    only whether a flag is present, so ``full=false`` would still mean *full*.
    """
    path = "/" + "/".join(p.strip("/") for p in parts)
    return f"{path}?{'&'.join(flags)}" if flags else path


class CheckResponse(Protocol):
    """``errors.check_coordinator_response`` / ``check_pivot_response``."""

    def __call__(self, response: httpx.Response, *, secrets: Iterable[str] = ()) -> None: ...


class JsonTransport:
    """Requests to one target built as httpx builds them, sent through one transport, with the
    target's error mapping. No cookies are kept, no proxy or netrc settings read.

    ``secrets`` are the values this transport must never let into an error message.
    """

    def __init__(
        self,
        *,
        base_url: str,
        target: Target,
        check: CheckResponse,
        options: HttpOptions,
        auth: httpx.BasicAuth | None = None,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
        transport: httpx.AsyncBaseTransport | None = None,
        on_answer: Callable[[], object] | None = None,
        gate: Gate | None = None,
    ) -> None:
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https"):
            raise ValueError(f"{target} URL must be http(s)://, got scheme {url.scheme!r}")
        if url.userinfo:
            raise ValueError(f"{target} URL must not embed credentials; pass them separately")
        self.target: Target = target
        self._check = check
        self._on_answer = on_answer  # told of every response but a 502/503/504
        self._gate = gate  # entered around every request (the target's health paces them)
        self._secrets = tuple(s for s in secrets if s)
        try:
            context = options.ssl_context()
        except OSError as error:  # a CA bundle missing or not PEM: no request could be trusted
            why = error.strerror or str(error)
            raise CertificateNotTrusted(
                f"the CA bundle {options.ca_file} cannot be used: {why}", target=target, method="-", path="-"
            ) from None
        # The base URL as httpx's client would keep it (ending in "/"), and what a path joins onto;
        # a fragment or query of the configured URL is never sent (nor was it by httpx's client).
        url = url.copy_with(query=None, fragment=None)
        self._base = url if url.raw_path.endswith(b"/") else url.copy_with(raw_path=url.raw_path + b"/")
        self._prefix = str(self._base).rstrip("/")
        self._auth = auth
        # httpx's client's default headers, with ours over them.
        self._headers: dict[str, str] = {
            "Accept-Encoding": "gzip, deflate",
            "Connection": "keep-alive",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            **(headers or {}),
        }
        httpx.Headers(self._headers)  # a value that cannot be sent fails here, not on every request
        self._timeouts = options.timeout().as_dict()
        self._transport = transport or Transport(ssl_context=context, limits=options.limits())
        # Requests wait for a connection here, with the pool timeout, never inside the transport's
        # pool: with at most max_connections requests in flight, a request always finds a free
        # slot there at once. (httpcore's pool, under httpx's own transport, leaks a slot for good
        # when a request stops waiting just as a connection opens for it: encode/httpcore#1093.)
        self._slots = asyncio.Semaphore(options.max_connections)
        self._queue_timeout = options.pool_timeout
        self._redirects = RedirectPolicy(
            url, options.redirect_hosts, setting="leaderHosts" if target == "coordinator" else None
        )
        # Where the last redirect led (the Coordinator leader): later requests go there directly
        # instead of through a non-leader; forgotten when it fails, answers 401 or 5xx, or after
        # LEADER_MEMORY_SECONDS.
        self._leader: httpx.URL | None = None
        self._leader_since = 0.0

    @property
    def leader(self) -> str | None:
        """The origin that redirects led to last, when it is not the base URL's."""
        return origin(self._leader) if self._leader is not None else None

    @property
    def base_url(self) -> httpx.URL:
        return self._base

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        auth: httpx.BasicAuth | _UseClientDefault | None = httpx.USE_CLIENT_DEFAULT,
        secrets: Iterable[str] = (),
        check: bool = True,
        accept: str | None = None,
    ) -> httpx.Response:
        """Send one request; raise ``ApiError`` subclasses on transport failure or, when
        ``check`` is true, on an error status. ``secrets`` adds per-call values to scrub
        (e.g. a password in the body). ``auth=None`` sends the request unauthenticated;
        ``accept`` replaces the JSON Accept header."""
        all_secrets = (*self._secrets, *(s for s in secrets if s))
        try:
            async with asyncio.timeout(self._queue_timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise Unavailable(
                f"PoolTimeout: no free connection within {self._queue_timeout:g} s",
                target=self.target,
                method=method,
                path=path.split("?", 1)[0],
            ) from None
        try:
            # Entered with a connection slot in hand: the gate sees the request as it goes out.
            async with self._gate() if self._gate is not None else contextlib.nullcontext(True) as go:
                if not go:
                    raise NotSent(
                        "not sent: the target stopped answering",
                        target=self.target,
                        method=method,
                        path=path.split("?", 1)[0],
                    )
                headers = {"Accept": accept} if accept else None
                response = await self._send(
                    method, path, json=json, auth=auth, secrets=all_secrets, headers=headers
                )
                if self._on_answer is not None and response.status_code not in UNANSWERED_STATUSES:
                    self._on_answer()
        finally:
            self._slots.release()
        log.debug("%s %s %s -> %d", self.target, method, path, response.status_code)
        if check:
            self._check(response, secrets=all_secrets)
        return response

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any,
        auth: httpx.BasicAuth | _UseClientDefault | None,
        secrets: Sequence[str],
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One request, following 307/308 where ``RedirectPolicy`` allows (credentials go along)."""
        clean_path = path.split("?", 1)[0]
        leader = self._current_leader()
        url: httpx.URL | str = leader.join(path) if leader is not None else path
        for hop in range(MAX_REDIRECTS + 1):
            try:
                response = await self._exchange(method, url, json=json, auth=auth, headers=headers)
            except httpx.RequestError as exc:
                self._forget(leader)  # the leader went away: ask the configured URL next time
                raise transport_error(
                    exc, target=self.target, method=method, path=clean_path, secrets=secrets
                ) from None  # the cause would carry the request object into tracebacks
            location = response.headers.get("location")
            if response.status_code not in _REDIRECTS or not location:
                if hop > 0:
                    final = response.url
                    self._remember(None if origin(final) == origin(self._redirects.base) else final)
                elif leader is not None and (response.status_code == 401 or response.status_code >= 500):
                    self._forget(leader)  # perhaps no longer the leader, or no longer a Coordinator
                return response
            try:
                target_url = response.url.join(location)
            except httpx.InvalidURL:
                self._forget(leader)
                raise self._refused(method, clean_path, None, "its Location is not a valid URL") from None
            refusal = self._redirects.refusal(target_url, current=response.url)
            if refusal is not None or hop == MAX_REDIRECTS:
                self._forget(leader)
                raise self._refused(
                    method, clean_path, target_url, refusal or f"more than {MAX_REDIRECTS} redirects"
                )
            log.debug("%s %s %s redirected to %s", self.target, method, clean_path, origin(target_url))
            url = target_url
        raise AssertionError("unreachable: the loop returns or raises")

    async def _exchange(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        json: Any,
        auth: httpx.BasicAuth | _UseClientDefault | None,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        """One request and its whole body, as ``httpx.AsyncClient.request`` with this transport's
        settings would send it, without the client's machinery around it (URL merging, cookie
        extraction, event hooks), which cost a fifth of the clients' CPU per request
        (``bench/transport_cost.py``)."""
        full = url if isinstance(url, httpx.URL) else httpx.URL(f"{self._prefix}/{url.lstrip('/')}")
        merged = {**self._headers, **headers} if headers else self._headers
        # json=None sends no body at all, which is what Druid's body-less POSTs expect.
        request = httpx.Request(
            method, full, headers=merged, json=json, extensions={"timeout": self._timeouts}
        )
        flow_auth = self._auth if isinstance(auth, _UseClientDefault) else auth
        if flow_auth is not None:
            # Basic auth's flow has one step, which sets the header (Pivot's token is a plain header).
            next(flow_auth.sync_auth_flow(request))
        response = await self._transport.handle_async_request(request)
        response.request = request  # the error tree and redirects read it, whatever the transport
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    def _current_leader(self) -> httpx.URL | None:
        if self._leader is not None and time.monotonic() - self._leader_since > LEADER_MEMORY_SECONDS:
            self._leader = None  # leadership moves: ask the configured URL again now and then
        return self._leader

    def _remember(self, leader: httpx.URL | None) -> None:
        self._leader = leader
        self._leader_since = time.monotonic()

    def _forget(self, leader: httpx.URL | None) -> None:
        # Only the leader this request used: a concurrent request may have learnt a newer one.
        if leader is not None and self._leader is leader:
            self._leader = None

    def _refused(self, method: str, path: str, target_url: httpx.URL | None, why: str) -> RedirectRefused:
        where = f"redirected to {origin(target_url)}" if target_url is not None else "redirected"
        if self.target == "coordinator":
            where += " (the Coordinator leader?)"
        return RedirectRefused(
            f"{where}, not followed: {why}; the request was not sent there",
            target=self.target,
            method=method,
            path=path,
            status=307,
        )

    def json_body(self, response: httpx.Response) -> Any:
        """The decoded JSON of a success response, or ``UnexpectedResponse``."""
        try:
            return response.json()
        except ValueError:
            raise self.unexpected(response, "body is not JSON") from None

    def parse(self, response: httpx.Response, model: type[M]) -> M:
        """Validate a success response's JSON as ``model`` or raise ``UnexpectedResponse``."""
        data = self.json_body(response)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise self.unexpected(response, summarize(model.__name__, exc)) from None

    def parse_as(self, response: httpx.Response, adapter: TypeAdapter[T], what: str) -> T:
        """Like ``parse`` for non-model shapes (lists of names, status maps)."""
        data = self.json_body(response)
        try:
            return adapter.validate_python(data)
        except ValidationError as exc:
            raise self.unexpected(response, summarize(what, exc)) from None

    def unexpected(self, response: httpx.Response, detail: str) -> ApiError:
        """Build ``UnexpectedResponse`` without quoting the body (it may hold secrets)."""
        return UnexpectedResponse(
            f"{detail} (content-type {response.headers.get('content-type', 'none')!r})",
            target=self.target,
            method=response.request.method,
            path=response.request.url.raw_path.split(b"?", 1)[0].decode("ascii"),
            status=response.status_code,
        )


def summarize(what: str, exc: ValidationError) -> str:
    """Where a body failed validation and why, without quoting any input value."""
    # Locations and reasons only: pydantic's default rendering quotes the input values.
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
        for err in exc.errors(include_url=False, include_input=False, include_context=False)[:3]
    )
    return f"body does not match {what}: {problems}"


class JsonClient:
    """What the Coordinator and Pivot clients share: their transport, base URL and closing."""

    _http: JsonTransport

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
