"""``lanes.Lane``: a target's serialised write chain, run on a task of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from druid_access import health
from druid_access.lanes import Lane


async def test_batches_run_one_at_a_time_in_order_each_caller_gets_its_own_result_or_error() -> None:
    lane = Lane()
    running: list[int] = []
    order: list[str] = []

    async def batch(i: int) -> int:
        running.append(i)
        assert len(running) == 1, running  # never two at once
        order.append(f"{i} in")
        await asyncio.sleep(0.01)
        order.append(f"{i} out")
        running.remove(i)
        if i == 1:
            raise ValueError("refused")
        return i * 10

    results = await asyncio.gather(
        *(lane.run(lambda i=i: batch(i)) for i in range(4)), return_exceptions=True
    )
    assert results[0] == 0 and isinstance(results[1], ValueError) and results[2:] == [20, 30]
    assert order == [f"{i} {step}" for i in range(4) for step in ("in", "out")]
    await lane.close()


async def test_the_next_batch_starts_in_the_turn_the_one_before_ends() -> None:
    """What the lane is for: with a lock, the next holder would run only after every callback
    queued on the event loop meanwhile (a busy operator's watch events and other passes)."""
    lane = Lane()
    answered = asyncio.get_running_loop().create_future()
    order: list[str] = []

    async def first() -> None:
        await answered
        order.append("first done")

    async def second() -> None:
        order.append("second starts")

    runs = [asyncio.ensure_future(lane.run(first)), asyncio.ensure_future(lane.run(second))]
    await asyncio.sleep(0)
    answered.set_result(None)  # the answer to the first batch's write arrives...
    loop = asyncio.get_running_loop()
    for i in range(5):  # ...with other work ready to run on the loop
        loop.call_soon(order.append, f"other {i}")
    await asyncio.gather(*runs)
    assert order[:2] == ["first done", "second starts"], order

    # The same with a lock, for contrast: the second holder runs after the other work.
    lock, order[:] = asyncio.Lock(), []
    answered = loop.create_future()

    async def holding(batch: Callable[[], Awaitable[None]]) -> None:
        async with lock:
            await batch()

    runs = [asyncio.ensure_future(holding(first)), asyncio.ensure_future(holding(second))]
    await asyncio.sleep(0)
    answered.set_result(None)
    for i in range(5):
        loop.call_soon(order.append, f"other {i}")
    await asyncio.gather(*runs)
    assert order.index("second starts") > order.index("other 4"), order
    await lane.close()


async def test_a_caller_cancelled_while_waiting_takes_its_batch_out_one_running_finishes() -> None:
    lane = Lane()
    gate = asyncio.Event()
    ran: list[str] = []

    async def batch(name: str) -> None:
        ran.append(f"{name} in")
        await gate.wait()
        ran.append(f"{name} out")

    running = asyncio.ensure_future(lane.run(lambda: batch("running")))
    waiting = asyncio.ensure_future(lane.run(lambda: batch("waiting")))
    after = asyncio.ensure_future(lane.run(lambda: batch("after")))
    await asyncio.sleep(0.01)
    running.cancel()
    waiting.cancel()
    gate.set()
    await after
    assert ran == ["running in", "running out", "after in", "after out"]
    assert running.cancelled() and waiting.cancelled()
    await lane.close()


async def test_a_batch_cancelled_from_within_cancels_its_caller_only() -> None:
    lane = Lane()
    inner = asyncio.get_running_loop().create_future()
    inner.cancel()

    async def cancelled() -> None:
        await inner  # raises CancelledError, though nobody cancelled the lane

    first = asyncio.ensure_future(lane.run(cancelled))
    second = asyncio.ensure_future(lane.run(lambda: asyncio.sleep(0, result="next")))
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == "next"
    await lane.close()


async def test_batches_never_run_as_the_breakers_probe() -> None:
    """The lane's task is started by whichever caller comes first; it keeps none of its
    context (a probe may send to a dead target, a pass's write may not)."""
    lane = Lane()
    seen: list[bool] = []

    async def batch() -> None:
        seen.append(health._PROBING.get())

    async def as_probe() -> None:
        health._PROBING.set(True)
        await lane.run(batch)

    await asyncio.create_task(as_probe())
    await lane.run(batch)
    assert seen == [False, False]
    await lane.close()


async def test_close_cancels_the_running_batch_and_the_waiting_ones() -> None:
    lane = Lane()
    never = asyncio.Event()
    running = asyncio.ensure_future(lane.run(never.wait))
    waiting = asyncio.ensure_future(lane.run(never.wait))
    await asyncio.sleep(0.01)
    await lane.close()
    for future in (running, waiting):
        with pytest.raises(asyncio.CancelledError):
            await future
    assert await lane.run(lambda: asyncio.sleep(0, result="again")) == "again"  # usable after
    await lane.close()
