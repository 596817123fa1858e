"""The keyed work queue: deduplicated, one holder per key, re-queued when added while held."""

from __future__ import annotations

import asyncio

import pytest

from druid_access.workqueue import WorkQueue


async def test_a_key_is_queued_once_and_in_order() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in ("a", "b", "a", "c", "b"):
        queue.add(key)
    assert len(queue) == 3
    assert [await queue.get() for _ in range(3)] == ["a", "b", "c"]


async def test_a_key_added_while_held_comes_back_after_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    assert await queue.get() == "a"
    queue.add("a")
    queue.add("a")
    assert len(queue) == 0  # not handed to a second worker while held
    queue.done("a")
    assert len(queue) == 1
    assert await queue.get() == "a"
    queue.done("a")
    assert len(queue) == 0


async def test_delayed_adds_keep_the_earliest_and_an_add_now_replaces_them() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("a", 60)
    queue.add_after("a", 0.05)  # sooner: replaces
    queue.add_after("a", 30)  # later: ignored
    assert await asyncio.wait_for(queue.get(), timeout=2) == "a"
    queue.done("a")
    queue.add_after("b", 60)
    queue.add("b")
    assert await asyncio.wait_for(queue.get(), timeout=1) == "b"
    queue.done("b")
    await asyncio.sleep(0.1)
    assert len(queue) == 0
    queue.close()


async def test_forget_drops_what_is_pending_and_released_waits_for_the_holder() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.add("b")
    queue.add_after("c", 0.05)
    queue.forget("a")
    queue.forget("c")
    assert await queue.get() == "b"
    await asyncio.sleep(0.1)
    assert len(queue) == 0  # neither a nor c came back
    waiting = asyncio.ensure_future(queue.released("b"))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    queue.done("b")
    await asyncio.wait_for(waiting, timeout=1)
    await asyncio.wait_for(queue.released("zzz"), timeout=1)  # a key nobody holds


async def test_a_forgotten_key_added_again_is_handed_out_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.add("b")
    queue.forget("a")
    queue.add("a")  # back in line: it may take its old place, but is handed out once
    assert len(queue) == 2
    assert sorted([await queue.get(), await queue.get()]) == ["a", "b"]
    assert len(queue) == 0
    queue.add("c")
    assert await queue.get() == "c"  # the leftover place of a was skipped


async def test_keys_queued_later_wait_behind_the_others_and_move_up_when_asked_for() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in ("r1", "r2", "r3"):  # a restart's listed objects
        queue.add(key, later=True)
    queue.add("deleted")  # a deletion that started meanwhile
    queue.add("r3")  # its spec changed: no longer background work
    queue.add("r1", later=True)  # asked for again as background: keeps its place
    assert len(queue) == 4
    assert [await queue.get() for _ in range(4)] == ["deleted", "r3", "r1", "r2"]
    for key in ("deleted", "r3", "r1", "r2"):
        queue.done(key)
    assert len(queue) == 0
    queue.add("x", later=True)
    queue.forget("x")
    queue.add("y", later=True)
    assert await queue.get() == "y"  # x's leftover place is skipped
    queue.done("y")
    queue.add("z", later=True)
    queue.add("z")  # moves up
    assert await queue.get() == "z"
    queue.done("z")
    assert len(queue) == 0
    with pytest.raises(TimeoutError):  # its leftover place behind is not handed out again
        await asyncio.wait_for(queue.get(), timeout=0.05)


async def test_a_retry_due_moves_a_background_key_up_and_is_not_lost() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("failed", 0.05)  # a retry of a failed pass
    queue.add("failed", later=True)  # then a resync's re-check: the retry still moves it up
    for key in ("a", "b"):
        queue.add(key, later=True)
    await asyncio.sleep(0.1)
    assert await queue.get() == "failed"
    queue.done("failed")
    queue.add("c", later=True)
    queue.add_after("c", 0.05)  # a retry asked for while it waits as background work
    await asyncio.sleep(0.1)
    assert await queue.get() == "c"
    queue.done("c")
    queue.add_after("a", 0.05)
    assert await queue.get() == "a"  # handed out from its place: its retry is superseded
    queue.done("a")
    await asyncio.sleep(0.1)
    assert await queue.get() == "b"
    queue.done("b")
    assert len(queue) == 0


async def test_changes_pending_counts_changes_queued_or_held_not_background_work() -> None:
    queue: WorkQueue[str] = WorkQueue()
    assert not queue.changes_pending()
    queue.add("resync", later=True)
    assert not queue.changes_pending()  # background work only
    queue.add("changed")
    assert queue.changes_pending()
    assert await queue.get() == "changed"
    assert queue.changes_pending()  # held: still being applied
    assert await queue.get() == "resync"
    queue.done("changed")
    assert not queue.changes_pending()  # the background pass alone is held
    queue.done("resync")
    queue.add("moved", later=True)
    queue.add("moved")  # asked for as a change: no longer background
    assert queue.changes_pending()
    assert await queue.get() == "moved"
    waiting = asyncio.ensure_future(queue.settled())
    await asyncio.sleep(0.01)
    assert not waiting.done()  # the change is held
    queue.done("moved")
    assert not queue.changes_pending()
    await asyncio.wait_for(waiting, 1)


async def test_a_change_asked_for_while_a_background_pass_holds_its_key_is_pending() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("k", later=True)
    assert await queue.get() == "k"
    assert not queue.changes_pending()  # a background pass
    queue.add("k")  # its spec changed meanwhile: one more pass, a change, once this one is done
    assert queue.changes_pending()
    queue.done("k")
    assert queue.changes_pending()  # queued again, as a change
    assert await queue.get() == "k"
    queue.done("k")
    assert not queue.changes_pending()
