"""Request log, fault injection and server lifecycle shared by the fake Coordinator and fake Pivot.

Both fakes put :func:`make_middleware` outermost, so every request (including ones rejected by
authentication or the router) is logged, and faults fire before the fake looks at the request, the
way a flaky network or proxy would. A fault can also fire *after* handling (the state change
happened but the client never learns it), which is the case idempotent reconcilers must survive.

Example::

    async with FakeCoordinator(admin_password="pw") as fake:
        fake.faults.add(Fault(method="POST", path=r"/roles/", status=503, times=2))
        ...
        assert fake.requests.count("POST", r"/roles/") == 3
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import signal
import socket
import struct
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from aiohttp import web
from aiohttp.typedefs import Middleware

#: Set by a fake's auth step; the log middleware records it.
AUTH_USER_KEY = web.RequestKey("druid_access_auth_user", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the server saw it. Bodies and headers are never kept (they carry secrets)."""

    method: str
    path: str  # percent-decoded, as the router matched it
    raw_path: str  # as sent on the request line (without the query)
    query_string: str  # raw, undecoded
    status: int | None  # None when the connection was reset instead of answered
    user: str | None  # authenticated principal, if authentication succeeded
    timestamp: float  # wall clock (time.time()) at arrival
    duration: float  # seconds from arrival to response (including injected latency)
    fault: str | None  # description of the fault that fired, if any


class RequestLog:
    """Every request a fake received, in arrival-completion order."""

    def __init__(self) -> None:
        self._records: list[RequestRecord] = []

    def append(self, record: RequestRecord) -> None:
        self._records.append(record)

    @property
    def records(self) -> list[RequestRecord]:
        return list(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(list(self._records))

    def filter(self, method: str | None = None, path: str | None = None) -> list[RequestRecord]:
        """Records whose method equals ``method`` and whose decoded path contains a match of ``path``."""
        pattern = re.compile(path) if path is not None else None
        return [
            r
            for r in self._records
            if (method is None or r.method == method.upper())
            and (pattern is None or pattern.search(r.path) is not None)
        ]

    def count(self, method: str | None = None, path: str | None = None) -> int:
        return len(self.filter(method, path))

    def writes(self) -> list[RequestRecord]:
        """Requests that may change state (anything but GET/HEAD/OPTIONS)."""
        return [r for r in self._records if r.method not in {"GET", "HEAD", "OPTIONS"}]

    def clear(self) -> None:
        self._records.clear()


@dataclass(eq=False)
class Fault:
    """A fault rule.

    Matching: ``method`` (None = any) and ``path``, a regex *searched* in the decoded path.
    Firing: at most ``times`` times (None = unlimited); with ``probability`` set, each match fires
    with that chance (drawn from the injector's seedable RNG) and only firings count against
    ``times``. Action: ``latency`` seconds of delay, then either a response with ``status``/``body``,
    a connection ``reset`` (RST, no response), or - with neither - normal handling. With
    ``after_handling`` the request is handled first (state changes!) and the response replaced.
    """

    method: str | None = None
    path: str = ""
    status: int | None = None
    body: str | bytes | dict[str, object] | list[object] | None = None
    content_type: str | None = None
    latency: float = 0.0
    reset: bool = False
    times: int | None = None
    probability: float | None = None
    after_handling: bool = False
    fired: int = field(default=0, init=False)
    _pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.status is not None and self.reset:
            raise ValueError("a fault either answers with a status or resets the connection")
        if self.status is None and not self.reset and self.latency <= 0:
            raise ValueError("a fault needs a status, reset=True or a positive latency")
        if self.after_handling and self.status is None and not self.reset:
            raise ValueError("after_handling needs a status or reset to replace the response")
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        if self.times is not None and self.times < 0:
            raise ValueError("times must be >= 0")
        if self.latency < 0:
            raise ValueError("latency must be >= 0")
        self.method = self.method.upper() if self.method else None
        self._pattern = re.compile(self.path)

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def matches(self, method: str, path: str) -> bool:
        return (
            not self.exhausted
            and (self.method is None or self.method == method)
            and self._pattern.search(path) is not None
        )

    def describe(self) -> str:
        action = "reset" if self.reset else f"status {self.status}" if self.status else "latency"
        when = " after handling" if self.after_handling else ""
        delay = f" +{self.latency}s" if self.latency and (self.reset or self.status) else ""
        return f"{action}{delay}{when}"

    def response(self) -> web.Response:
        assert self.status is not None
        if isinstance(self.body, dict | list):
            return web.json_response(self.body, status=self.status)
        if isinstance(self.body, bytes):
            return web.Response(
                status=self.status, body=self.body, content_type=self.content_type or "text/plain"
            )
        return web.Response(
            status=self.status, text=self.body or "", content_type=self.content_type or "text/plain"
        )


class FaultInjector:
    """Ordered fault rules; the first rule that matches *and* decides to fire wins (one per request)."""

    def __init__(self, seed: int | None = None) -> None:
        self._rules: list[Fault] = []
        self._random = random.Random(seed)

    def add(self, fault: Fault) -> Fault:
        """Append a rule and return it (its ``fired`` counter updates as it fires)."""
        self._rules.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        self._rules.remove(fault)

    def clear(self) -> None:
        self._rules.clear()

    def seed(self, value: int) -> None:
        """Reseed the RNG used by probabilistic rules, for reproducible tests."""
        self._random.seed(value)

    @property
    def rules(self) -> list[Fault]:
        return list(self._rules)

    def pick(self, method: str, path: str) -> Fault | None:
        for rule in self._rules:
            if not rule.matches(method, path):
                continue
            if rule.probability is not None and self._random.random() >= rule.probability:
                continue
            rule.fired += 1
            return rule
        return None


def reset_connection(request: web.Request) -> web.Response:
    """Abort the TCP connection with an RST and no response.

    SO_LINGER(0) turns the close into a reset. The returned response is never delivered: aiohttp
    fails to write it to the aborted transport and drops the connection quietly.
    """
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    return web.Response(status=599)


def make_middleware(log: RequestLog, faults: FaultInjector) -> Middleware:
    """The outermost middleware: applies faults, then records the request and its outcome."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        arrival, started = time.time(), time.monotonic()
        fault = faults.pick(request.method, request.path)
        status: int | None = None
        try:
            response = await _apply(request, handler, fault)
            status = None if fault is not None and fault.reset else response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except Exception:
            status = 500  # aiohttp turns an unhandled handler error into a 500
            raise
        finally:
            log.append(
                RequestRecord(
                    method=request.method,
                    path=request.path,
                    raw_path=request.raw_path.split("?", 1)[0],
                    query_string=request.rel_url.raw_query_string,
                    status=status,
                    user=request.get(AUTH_USER_KEY),
                    timestamp=arrival,
                    duration=time.monotonic() - started,
                    fault=fault.describe() if fault is not None else None,
                )
            )

    return middleware


async def _apply(request: web.Request, handler: Handler, fault: Fault | None) -> web.StreamResponse:
    if fault is None:
        return await handler(request)
    if fault.latency:
        await asyncio.sleep(fault.latency)
    if fault.after_handling:
        # The client never sees the real outcome, whatever it was.
        with contextlib.suppress(web.HTTPException):
            await handler(request)
    if fault.reset:
        return reset_connection(request)
    if fault.status is not None:
        return fault.response()
    return await handler(request)


def json_body(data: object, status: int = 200) -> web.Response:
    """Compact JSON like Jackson's default output."""
    return web.Response(
        status=status, text=json.dumps(data, separators=(",", ":")), content_type="application/json"
    )


class FakeServer(ABC):
    """Lifecycle shared by the fakes: bind to 127.0.0.1, serve, stop; async context manager."""

    #: Used in the ready line of :func:`run_foreground`.
    name = "fake"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self.requests = RequestLog()
        self.faults = FaultInjector()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @abstractmethod
    def _routes(self, app: web.Application) -> None:
        """Add the fake's endpoints to ``app``."""

    def _middlewares(self) -> list[Middleware]:
        """Inner middlewares (after logging/faults), e.g. authentication."""
        return []

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[make_middleware(self.requests, self.faults), *self._middlewares()])
        self._routes(app)
        return app

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        # Short shutdown timeout: a handler sleeping on injected latency must not hold up teardown.
        runner = web.AppRunner(self.build_app(), access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._requested_port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._port = int(runner.addresses[0][1])
        self._runner = runner

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        self._port = None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def run_foreground(server: FakeServer) -> int:
    """Serve until SIGINT/SIGTERM; print exactly one ready line (flushed) once listening."""

    async def serve() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            async with server:
                print(f"{server.name} ready on {server.url}", flush=True)
                await stop.wait()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
        return 0

    return asyncio.run(serve())
