"""Status building (writes only on change), and the queue of passes: wake-ups, workers, resyncs."""

from __future__ import annotations

import asyncio

import pytest

from druid_access import loops as loops_module
from druid_access.finalizer import FINALIZER
from druid_access.loops import BACKOFF_CAP, Loops, Record, backoff, resync_delay
from druid_access.observation import TargetSnapshots
from druid_access.refs import Refs
from druid_access.status import Outcome, Reason, StatusBuilder, status_patch


def test_first_status_and_unchanged_second_pass() -> None:
    synced = Outcome(Reason.SYNCED, "in sync", remote_name="bob", owned=True, changes=("created",))
    first = StatusBuilder({}, 1, timestamp="2026-01-01T00:00:00Z").build(synced)
    assert first["observedGeneration"] == 1
    assert first["conditions"][0]["type"] == "Ready"
    assert first["conditions"][0]["status"] == "True"
    assert first["owned"] is True
    quiet = Outcome(Reason.SYNCED, "in sync", remote_name="bob", owned=True)
    second = StatusBuilder(first, 1, timestamp="2026-01-01T00:05:00Z").build(quiet)
    assert status_patch(first, second) is None, "an unchanged pass must not write"
    assert second["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"


def test_transition_time_moves_only_when_status_changes() -> None:
    first = StatusBuilder({}, 1, timestamp="t1").build(Outcome(Reason.ROLE_NOT_FOUND, "waiting for r"))
    second = StatusBuilder(first, 1, timestamp="t2").build(Outcome(Reason.SECRET_NOT_FOUND, "no secret"))
    assert second["conditions"][0]["lastTransitionTime"] == "t1"  # still False
    patch = status_patch(first, second)
    assert patch is not None and patch["conditions"][0]["reason"] == "SecretNotFound"
    third = StatusBuilder(second, 1, timestamp="t3").build(Outcome(Reason.SYNCED, "in sync"))
    assert third["conditions"][0]["lastTransitionTime"] == "t3"


def test_drift_condition_and_counter() -> None:
    outcome = Outcome(Reason.DRIFTED, "differs", drift=("title",), drift_detected=True)
    status = StatusBuilder({"driftCount": 2}, 3, timestamp="t").build(outcome)
    assert status["driftCount"] == 3
    drifted = [c for c in status["conditions"] if c["type"] == "Drifted"]
    assert drifted[0]["message"] == "remote differs in: title"


def test_backoff_grows_and_is_capped() -> None:
    assert 0.5 <= backoff(0, 100) <= 1
    assert 4 <= backoff(3, 100) <= 8
    assert backoff(30, 60) <= 60


def test_resync_delay_is_jittered_around_the_period() -> None:
    delays = [resync_delay(10) for _ in range(50)]
    assert all(9 <= d <= 11 for d in delays)
    assert len(set(delays)) > 1
    assert BACKOFF_CAP >= 60


def _body(name: str, generation: int = 1) -> dict[str, object]:
    return {
        "apiVersion": "druid.apache.org/v1alpha1",
        "kind": "DruidUser",
        "metadata": {
            "namespace": "ns",
            "name": name,
            "uid": f"uid-{name}",
            "generation": generation,
            "finalizers": [FINALIZER],
            "managedFields": [{"manager": "kubectl"}],
        },
        "spec": {"cluster": "default"},
    }


async def test_watch_events_queue_a_pass_only_for_new_objects_and_new_specs() -> None:
    loops = Loops()
    key = ("DruidUser", "ns", "bob")
    loops.observe(key, _body("bob"))
    assert await loops.queue.get() == key  # first seen: one pass
    loops.queue.done(key)
    record = loops.records[key]
    assert b"managedFields" not in record.body  # kept compact
    applied = _body("bob")
    applied["metadata"]["annotations"] = {  # type: ignore[index]
        "kubectl.kubernetes.io/last-applied-configuration": '{"a whole copy": 1}',
        "team": "a",
    }
    applied["status"] = {"owned": True}
    loops.observe(key, applied)
    assert record.current()["metadata"]["annotations"] == {"team": "a"}
    assert record.current()["status"] == {"owned": True}  # nothing written by us yet: the watch's
    loops.observe(key, _body("bob"))  # a status-only event: nothing to do
    assert len(loops.queue) == 0
    loops.observe(key, _body("bob", generation=2))
    assert len(loops.queue) == 1 and record.live  # a new spec: a live pass
    record.remember({"owned": True, "observedGeneration": 2})
    loops.observe(key, applied)  # an older status from the watch: ours is newer, and kept alone
    assert b"status" not in record.body
    assert record.current()["status"] == {"owned": True, "observedGeneration": 2}
    loops.close(key)
    assert key not in loops.records and len(loops.queue) == 0


async def test_a_deletion_is_queued_once_after_the_pass_in_flight_and_retried_while_blocked() -> None:
    loops = Loops()
    key = ("DruidUser", "ns", "bob")
    loops.observe(key, _body("bob"))
    assert await loops.queue.get() == key  # a worker holds its first pass
    deleting = _body("bob")
    deleting["metadata"]["deletionTimestamp"] = "2026-11-27T08:00:00Z"  # type: ignore[index]
    loops.observe(key, deleting)
    loops.observe(key, deleting)  # the same state again: queued once
    record = loops.records[key]
    assert record.deleting and len(loops.queue) == 0  # not beside the pass in flight
    loops.queue.done(key)
    assert len(loops.queue) == 1  # right after it
    assert await loops.queue.get() == key
    loops.queue.done(key)
    loops.observe(key, deleting)  # nothing new: no second deletion pass
    assert len(loops.queue) == 0
    loops.retry(record, 0.01)  # blocked (its target is down): it waits as a key, then runs
    await asyncio.sleep(0.05)
    assert len(loops.queue) == 1
    assert await loops.queue.get() == key
    loops.queue.done(key)
    loops.set_refs(record, Refs(target="default", target_type="cluster"))
    assert loops.wake_for_target("cluster", "default") == 1  # the target's recovery resumes it
    assert loops.resync(("cluster", "default"), None) == 0  # a resync does not: it is no pass
    loops.close(key)
    loops.retry(record, 0.01)  # gone meanwhile: nothing left to retry
    await asyncio.sleep(0.05)
    assert len(loops.queue) == 0


async def test_an_object_first_seen_while_being_deleted_gets_a_deletion_pass() -> None:
    loops = Loops()
    key = ("DruidUser", "ns", "bob")
    body = _body("bob")
    body["metadata"]["deletionTimestamp"] = "2026-11-27T08:00:00Z"  # type: ignore[index]
    loops.observe(key, body)
    assert loops.records[key].deleting and await loops.queue.get() == key


async def test_an_owned_object_that_lost_its_finalizer_gets_a_pass_to_put_it_back() -> None:
    loops = Loops()
    key = ("DruidUser", "ns", "bob")
    loops.observe(key, _body("bob"))
    assert await loops.queue.get() == key
    loops.queue.done(key)
    record = loops.records[key]
    stripped = _body("bob")
    stripped["metadata"]["finalizers"] = []  # type: ignore[index]
    loops.observe(key, stripped)  # not owned (refused, say): nothing of ours to hold
    assert len(loops.queue) == 0
    record.remember({"owned": True})
    loops.observe(key, stripped)
    assert len(loops.queue) == 1 and not record.live  # put back through the snapshot


async def test_wake_ups_by_secret_role_and_target() -> None:
    loops = Loops()
    key = ("DruidUser", "ns", "bob")
    loops.observe(key, _body("bob"))
    user = loops.records[key]
    loops.set_refs(
        user,
        Refs(
            target="default",
            target_type="cluster",
            secrets=frozenset({"bob-pw"}),
            roles=frozenset({"reader"}),
        ),
    )
    assert loops.wake_for_secret("ns", "bob-pw") == 1
    assert loops.wake_for_secret("other", "bob-pw") == 0
    assert loops.wake_for_role("default", "reader") == 1
    assert loops.wake_for_target("cluster", "default") == 1
    assert len(loops.queue) == 1  # asked for four times, queued once
    loops.close(key)
    assert loops.wake_for_secret("ns", "bob-pw") == 0
    assert loops.wake_for_target("cluster", "default") == 0


async def test_workers_run_each_key_once_at_a_time_and_stop_after_the_pass_in_flight() -> None:
    loops = Loops()
    running: dict[tuple[str, str, str], int] = {}
    overlaps: list[tuple[str, str, str]] = []
    passes: list[tuple[str, str, str]] = []
    release = asyncio.Event()

    async def run_pass(record: Record) -> None:
        running[record.key] = running.get(record.key, 0) + 1
        if running[record.key] > 1:
            overlaps.append(record.key)
        await release.wait()
        passes.append(record.key)
        running[record.key] -= 1

    async def resync(target: tuple[str, str]) -> None:
        return None

    for name in ("a", "b", "c"):
        loops.observe(("DruidUser", "ns", name), _body(name))
    loops.start(run_pass, resync, lambda target: 30.0, workers=2)
    await asyncio.sleep(0.05)
    loops.wake(("DruidUser", "ns", "a"))  # while its first pass runs: once more, after it
    loops.wake(("DruidUser", "ns", "a"))
    release.set()
    for _ in range(100):
        if len(passes) >= 4:
            break
        await asyncio.sleep(0.01)
    assert sorted(passes) == sorted([("DruidUser", "ns", n) for n in ("a", "a", "b", "c")])
    assert overlaps == []
    await loops.stop()


async def test_a_resync_due_waits_while_changes_are_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loops_module, "resync_delay", lambda period: period)
    loops = Loops()
    release = asyncio.Event()
    resyncs: list[float] = []
    applied: list[float] = []

    async def run_pass(record: Record) -> None:
        await release.wait()  # a change being applied (a write waiting for its lane)
        applied.append(asyncio.get_running_loop().time())

    async def resync(target: tuple[str, str]) -> None:
        resyncs.append(asyncio.get_running_loop().time())

    loops.observe(("DruidUser", "ns", "a"), _body("a"))
    loops.set_refs(loops.records[("DruidUser", "ns", "a")], Refs(target="default", target_type="cluster"))
    loops.start(run_pass, resync, lambda target: 0.02, workers=2)
    await asyncio.sleep(0.15)  # several periods
    assert resyncs == []  # due, but held back while the change is applied
    release.set()
    for _ in range(500):
        if resyncs:
            break
        await asyncio.sleep(0.01)
    assert resyncs and applied and resyncs[0] >= applied[0]
    await loops.stop()


async def test_a_paused_operator_resyncs_nothing_even_once_its_changes_wait_too_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Paused (another replica leads), its workers hold their keys without a pass: the resync
    that waited for them up to RESYNC_DEFER_MAX must not then run while paused."""
    monkeypatch.setattr(loops_module, "resync_delay", lambda period: period)
    monkeypatch.setattr(loops_module, "RESYNC_DEFER_MAX", 0.02)
    loops = Loops()
    resyncs: list[tuple[str, str]] = []

    async def run_pass(record: Record) -> None:
        return None

    async def resync(target: tuple[str, str]) -> None:
        resyncs.append(target)

    key = ("DruidUser", "ns", "a")
    loops.observe(key, _body("a"))
    loops.set_refs(loops.records[key], Refs(target="default", target_type="cluster"))
    loops.pause()
    loops.start(run_pass, resync, lambda target: 0.02, workers=2)
    await asyncio.sleep(0.3)  # many periods, and many times the longest wait for changes
    assert resyncs == []
    loops.resume()
    for _ in range(500):
        if resyncs:
            break
        await asyncio.sleep(0.01)
    assert resyncs and resyncs[0] == ("cluster", "default")
    await loops.stop()


async def test_resync_queues_only_what_the_snapshot_does_not_confirm() -> None:
    data = {"bob": 1, "ann": 1}

    class Data:
        def __init__(self, values: dict[str, int]) -> None:
            self.values = dict(values)

        def entries(self) -> dict[tuple[str, str], object]:
            return {("user", k): v for k, v in self.values.items()}

        def families_behind(self, previous: Data) -> tuple[tuple[str, str], ...]:
            return ()

    async def fetch() -> Data:
        return Data(data)

    snapshots: TargetSnapshots[Data] = TargetSnapshots("test", fetch)
    first = await snapshots.get(0.0)
    assert first is not None
    loops = Loops()
    for name in ("bob", "ann", "eve"):
        key = ("DruidUser", "ns", name)
        loops.observe(key, _body(name))
        loops.queue.forget(key)
        loops.set_refs(
            loops.records[key], Refs(target="default", target_type="cluster", entry=("user", name))
        )
    loops.records[("DruidUser", "ns", "bob")].confirmed = first.number
    loops.records[("DruidUser", "ns", "ann")].confirmed = first.number
    data["ann"] = 2  # changed on the remote side; bob did not; eve was never confirmed
    await snapshots.get(0.0)
    assert loops.resync(("cluster", "default"), snapshots) == 2
    queued = {await loops.queue.get(), await loops.queue.get()}
    assert queued == {("DruidUser", "ns", "ann"), ("DruidUser", "ns", "eve")}
    assert loops.records[("DruidUser", "ns", "bob")].confirmed == 2  # carried over
    # No snapshot: a pass for every object (ann and eve again once their passes are done).
    assert loops.resync(("cluster", "default"), None) == 3
    assert len(loops.queue) == 1


async def test_cpu_work_runs_off_the_event_loop_and_trimming_is_harmless() -> None:
    import threading

    from druid_access.offload import in_thread, trim

    loop_thread = threading.get_ident()
    assert await in_thread(threading.get_ident) != loop_thread
    assert await in_thread(lambda a, *, b: a + b, 1, b=2) == 3
    trim()  # returns free pages to the system where glibc is there; never fails


async def test_an_object_replaced_under_the_same_name_unseen_by_the_watch_starts_afresh() -> None:
    """A relist brings another object of the same name (the deletion of the first was never
    reported): it is a new object, with a new first pass and a new first-seen time."""
    loops = Loops()
    key = ("DruidUser", "ns", "bob")
    assert loops.observe(key, _body("bob")) is None
    first = loops.records[key]
    assert await loops.queue.get() == key
    loops.queue.done(key)
    again = _body("bob")
    again["metadata"]["uid"] = "uid-bob-2"  # type: ignore[index]
    assert loops.observe(key, again) == "uid-bob"
    second = loops.records[key]
    assert second is not first and second.uid == "uid-bob-2" and second.seen >= first.seen
    assert len(loops.queue) == 1
    assert loops.observe(key, again) is None  # the same object again: nothing replaced


def test_a_failed_request_shared_by_several_passes_counts_once_for_the_breaker() -> None:
    from typing import Any, cast

    from druid_access.clients import Unavailable
    from druid_access.health import THRESHOLD, TargetHealth
    from druid_access.reconcile import Engine
    from druid_access.resources.user import UserKind

    health = TargetHealth("Druid cluster 'c'", probe=lambda: asyncio.sleep(0), on_change=lambda up: None)

    class Targets:
        def health(self, target_type: str, name: str) -> TargetHealth:
            return health

    engine = Engine(cast(Any, Targets()), cast(Any, None), cast(Any, None), cast(Any, None))
    shared = Unavailable("ReadTimeout: timed out", target="coordinator", method="GET", path="/roles/r")
    for uid in (f"uid-{i}" for i in range(THRESHOLD + 2)):  # every pass that waited on the read
        engine._record_health(UserKind(), "c", uid, shared, shared.message)
    assert health.failures == 1 and not health.down


async def test_a_restarts_listed_objects_wait_behind_changes_and_deletions() -> None:
    loops = Loops()
    listed = [("DruidUser", "ns", f"u{i}") for i in range(3)]
    for key in listed:  # a start: thousands of first passes, re-checks of objects in sync
        loops.observe(key, _body(key[2]), listed=True)
    gone = _body("gone")
    gone["metadata"]["deletionTimestamp"] = "2026-11-27T08:00:00Z"  # type: ignore[index]
    loops.observe(("DruidUser", "ns", "gone"), gone, listed=True)  # listed while being deleted
    deleting = _body("u2")
    deleting["metadata"]["deletionTimestamp"] = "2026-11-27T08:00:00Z"  # type: ignore[index]
    loops.observe(listed[2], deleting)  # a user deletes one of them meanwhile
    loops.observe(("DruidUser", "ns", "new"), _body("new"))  # and creates another
    order = [await loops.queue.get() for _ in range(5)]
    assert [key[2] for key in order] == ["gone", "u2", "new", "u0", "u1"]
    for key in order:
        loops.queue.done(key)
    loops.set_refs(loops.records[listed[0]], Refs(target="default", target_type="cluster"))
    assert loops.resync(("cluster", "default"), None) == 1  # a resync's re-check of u0
    loops.observe(listed[1], _body("u1", generation=2))  # then a spec change: it goes first
    assert [(await loops.queue.get())[2] for _ in range(2)] == ["u1", "u0"]


async def test_a_recovered_target_resumes_its_waiting_deletions_first() -> None:
    loops = Loops()
    names = [f"u{i:02d}" for i in range(20)]
    for name in names:
        loops.observe(("DruidUser", "ns", name), _body(name))
    for _ in names:
        loops.queue.done(await loops.queue.get())
    for name in names:
        loops.set_refs(
            loops.records[("DruidUser", "ns", name)], Refs(target="default", target_type="cluster")
        )
    deleting = {"u03", "u11", "u17"}  # blocked while the target was down
    for name in deleting:
        loops.records[("DruidUser", "ns", name)].deleting = True
    assert loops.wake_for_target("cluster", "default") == 20
    # Whatever the order of the target's index (one in 1,140 puts them first by chance).
    assert {(await loops.queue.get())[2] for _ in deleting} == deleting


def test_the_status_names_the_secret_applications_mount_and_drops_it_when_there_is_none() -> None:
    named = StatusBuilder({}, 1, timestamp="t").build(Outcome(Reason.SYNCED, "in sync", secret="app-pw"))
    assert named["secret"] == "app-pw"
    assert (
        status_patch(
            named,
            StatusBuilder(named, 1, timestamp="t").build(Outcome(Reason.SYNCED, "in sync", secret="app-pw")),
        )
        is None
    )
    dropped = StatusBuilder(named, 2, timestamp="t").build(Outcome(Reason.SYNCED, "in sync"))
    assert "secret" not in dropped
    patch = status_patch(named, dropped)
    assert patch is not None and patch["secret"] is None
