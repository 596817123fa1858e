"""A write lane: one store's serialised chain of writes on a target (``Targets.write``).

The passes hand their writes to the lane, which runs them one batch after another on a task of
its own. A lock would do the serialising too, but each new holder would first wait until
everything else ready on the event loop had run: one more wait per hand-over in the chain that
a thousand new objects' convergence waits for. The lane's task starts the next batch in the same
turn as it finishes one. (Measured, the difference is within the noise of the benchmarks:
``docs/scale.md``, "The lane hands over in the same turn".)
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Lane:
    """Runs the batches handed to it (``run``) one at a time, in the order they came."""

    def __init__(self) -> None:
        self._queue: collections.deque[tuple[Callable[[], Awaitable[Any]], asyncio.Future[Any]]] = (
            collections.deque()
        )
        self._task: asyncio.Task[None] | None = None

    async def run(self, batch: Callable[[], Awaitable[T]]) -> T:
        """Run ``batch`` once every batch handed in before it is done; its result or error.

        A caller cancelled while its batch waits takes it out of the queue; one cancelled while
        its batch runs leaves it to finish (a write half sent is not cut short)."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((batch, future))
        if self._task is None:
            # A context of its own: the writes never run as the breaker's probe, whatever the
            # task that happened to start the lane (``health._PROBING``).
            self._task = asyncio.create_task(self._drain(), context=contextvars.Context())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, future = self._queue.popleft()
                if future.done():  # its caller was cancelled while it waited
                    continue
                try:
                    result = await batch()
                except asyncio.CancelledError:
                    future.cancel()
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():  # the lane is being stopped
                        raise
                    # Cancelled from within the batch only: its caller is told, the lane goes on.
                except Exception as error:
                    if not future.done():
                        future.set_exception(error)
                except BaseException as error:  # the process is ending: told to the caller too
                    if not future.done():
                        future.set_exception(error)
                    raise
                else:
                    if not future.done():
                        future.set_result(result)
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    async def close(self) -> None:
        """Stop: the batch running is cancelled, the waiting ones with it."""
        task, self._task = self._task, None
        for _, future in self._queue:
            future.cancel()
        self._queue.clear()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
