"""A stand-in for a Kubernetes Service in front of several local servers (e.g. two Coordinators).

Each new TCP connection goes to the next backend in turn, as kube-proxy spreads connections over
a Service's endpoints; a backend that refuses the connection is skipped, as an endpoint that
failed its readiness probe leaves the Service. Bytes are copied both ways unchanged (TLS too).
It runs its own event loop in a thread, so synchronous tests can use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence

from druid_access.testing.processes import Launched

CONNECT_TIMEOUT = 2.0


class RoundRobinService(Launched):
    def __init__(self, backends: Sequence[tuple[str, int]]) -> None:
        if not backends:
            raise ValueError("a Service needs at least one backend")
        self.backends = list(backends)
        self.port = 0
        self.connections: list[tuple[str, int]] = []  # the backend each accepted connection went to
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="service-proxy", daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """For plain-HTTP backends (bytes pass unchanged, so https://127.0.0.1:port works for TLS ones)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, "127.0.0.1", 0), self._loop
        ).result(timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(len(self.backends)):
                backend = self.backends[self._next % len(self.backends)]
                self._next += 1
                try:
                    async with asyncio.timeout(CONNECT_TIMEOUT):
                        server_reader, server_writer = await asyncio.open_connection(*backend)
                except OSError:
                    continue
                self.connections.append(backend)
                await asyncio.gather(_pipe(client_reader, server_writer), _pipe(server_reader, client_writer))
                return
        finally:
            with contextlib.suppress(OSError):
                client_writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()
