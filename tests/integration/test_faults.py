"""Fault injection and the request log, exercised over real HTTP against both fakes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from druid_access.testing import FakeCoordinator, FakePivot
from druid_access.testing.faults import Fault, FaultInjector, RequestLog, RequestRecord

TOKEN = "tok"
CONN = {"name": "c1", "type": "druid", "queryHosts": ["broker:8082"]}
ROLES = "/druid-ext/basic-security/authorization/db/basic/roles"


@pytest.fixture
async def pivot() -> AsyncIterator[FakePivot]:
    async with FakePivot(token=TOKEN) as server:
        yield server


@pytest.fixture
async def client(pivot: FakePivot) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"x-imply-api-token": TOKEN}
    async with httpx.AsyncClient(base_url=pivot.url, headers=headers, timeout=10) as http:
        yield http


async def test_status_fault_fires_the_next_n_matches(pivot: FakePivot, client: httpx.AsyncClient) -> None:
    fault = pivot.faults.add(Fault(method="post", path=r"/connections$", status=503, times=2))
    statuses = [(await client.post("/api/v1/connections", json=CONN)).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert fault.fired == 2
    assert fault.exhausted
    assert list(pivot.connections) == ["c1"]  # the first two never reached the handler
    assert (await client.get("/api/v1/connections")).status_code == 200  # method did not match


async def test_status_fault_bodies(pivot: FakePivot, client: httpx.AsyncClient) -> None:
    pivot.faults.add(Fault(path="/a", status=502, body={"error": "bad gateway"}, times=1))
    pivot.faults.add(
        Fault(path="/b", status=500, body="<html>oops</html>", content_type="text/html", times=1)
    )
    pivot.faults.add(Fault(path="/c", status=429, body=b"\x00\x01", times=1))
    pivot.faults.add(Fault(path="/d", status=504, times=1))
    resp = await client.get("/api/v1/connections/a")
    assert (resp.status_code, resp.json()) == (502, {"error": "bad gateway"})
    resp = await client.get("/api/v1/connections/b")
    assert (resp.status_code, resp.text, resp.headers["content-type"].split(";")[0]) == (
        500,
        "<html>oops</html>",
        "text/html",
    )
    resp = await client.get("/api/v1/connections/c")
    assert (resp.status_code, resp.content) == (429, b"\x00\x01")
    resp = await client.get("/api/v1/connections/d")
    assert (resp.status_code, resp.content) == (504, b"")


async def test_faults_fire_before_authentication(pivot: FakePivot) -> None:
    pivot.faults.add(Fault(status=503, times=1))
    async with httpx.AsyncClient(base_url=pivot.url, timeout=10) as anon:
        assert (await anon.get("/api/v1/connections")).status_code == 503
        assert (await anon.get("/api/v1/connections")).status_code == 401


async def test_latency_delays_then_handles(pivot: FakePivot, client: httpx.AsyncClient) -> None:
    pivot.faults.add(Fault(method="GET", latency=0.3, times=1))
    started = time.monotonic()
    resp = await client.get("/api/v1/connections")
    assert resp.status_code == 200
    assert time.monotonic() - started >= 0.3
    record = pivot.requests.records[-1]
    assert record.duration >= 0.3
    assert record.fault == "latency"


async def test_latency_can_time_out_the_client_and_teardown_stays_fast() -> None:
    server = FakePivot(token=TOKEN)
    async with server:
        server.faults.add(Fault(latency=30, status=200))
        async with httpx.AsyncClient(base_url=server.url, timeout=0.2) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.get("/api/v1/connections")
        started = time.monotonic()
    assert time.monotonic() - started < 5


async def test_latency_with_status(pivot: FakePivot, client: httpx.AsyncClient) -> None:
    pivot.faults.add(Fault(latency=0.1, status=503, times=1))
    started = time.monotonic()
    assert (await client.get("/api/v1/connections")).status_code == 503
    assert time.monotonic() - started >= 0.1
    assert pivot.requests.records[-1].fault == "status 503 +0.1s"


async def test_reset_drops_the_connection(pivot: FakePivot, client: httpx.AsyncClient) -> None:
    pivot.faults.add(Fault(method="POST", reset=True, times=1))
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        await client.post("/api/v1/connections", json=CONN)
    assert pivot.connections == {}
    record = pivot.requests.records[-1]
    assert (record.status, record.fault, record.user) == (None, "reset", None)
    # The client recovers on a fresh connection.
    assert (await client.post("/api/v1/connections", json=CONN)).status_code == 200


async def test_reset_after_handling_applies_the_change(pivot: FakePivot, client: httpx.AsyncClient) -> None:
    pivot.faults.add(Fault(method="POST", reset=True, after_handling=True, times=1))
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        await client.post("/api/v1/connections", json=CONN)
    assert list(pivot.connections) == ["c1"]
    retry = await client.post("/api/v1/connections", json=CONN)
    assert (retry.status_code, retry.json()) == (400, {"error": "this name has been used."})


async def test_status_after_handling_on_the_coordinator() -> None:
    async with FakeCoordinator(admin_password="pw", credential_iterations=1) as fake:
        fake.faults.add(Fault(method="POST", path=r"/roles/", status=503, after_handling=True, times=1))
        async with httpx.AsyncClient(base_url=fake.url, auth=("admin", "pw"), timeout=10) as http:
            assert (await http.post(f"{ROLES}/r1")).status_code == 503
            assert "r1" in fake.roles
            retry = await http.post(f"{ROLES}/r1")
            assert retry.json() == {"error": "Role [r1] already exists."}
        assert fake.requests.count("POST", r"/roles/") == 2
        assert [r.user for r in fake.requests.writes()] == ["admin", "admin"]


async def test_probability_is_seedable(pivot: FakePivot, client: httpx.AsyncClient) -> None:
    async def pattern() -> list[int]:
        pivot.faults.clear()
        pivot.faults.seed(1234)
        pivot.faults.add(Fault(method="GET", status=503, probability=0.5))
        return [(await client.get("/api/v1/connections")).status_code for _ in range(20)]

    first, second = await pattern(), await pattern()
    assert first == second
    assert {200, 503} == set(first)


async def test_probability_bounds_and_times(pivot: FakePivot, client: httpx.AsyncClient) -> None:
    never = pivot.faults.add(Fault(status=500, probability=0.0))
    capped = pivot.faults.add(Fault(status=502, probability=1.0, times=3))
    statuses = [(await client.get("/api/v1/connections")).status_code for _ in range(5)]
    assert statuses == [502, 502, 502, 200, 200]
    assert (never.fired, capped.fired) == (0, 3)


async def test_first_firing_rule_wins_and_rules_can_be_removed(
    pivot: FakePivot, client: httpx.AsyncClient
) -> None:
    zero = pivot.faults.add(Fault(status=500, times=0))
    first = pivot.faults.add(Fault(path="connections", status=503))
    pivot.faults.add(Fault(path="connections", status=502))
    assert (await client.get("/api/v1/connections")).status_code == 503
    assert zero.fired == 0
    pivot.faults.remove(first)
    assert (await client.get("/api/v1/connections")).status_code == 502
    assert len(pivot.faults.rules) == 2
    pivot.faults.clear()
    assert pivot.faults.rules == []
    assert (await client.get("/api/v1/connections")).status_code == 200


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status": 500, "reset": True},
        {},
        {"latency": 1.0, "after_handling": True},
        {"status": 500, "probability": 1.5},
        {"status": 500, "times": -1},
        {"reset": True, "latency": -1.0},
    ],
)
def test_invalid_fault_definitions(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"must|needs|either"):
        Fault(**kwargs)  # type: ignore[arg-type]


def test_fault_regex_is_validated_eagerly() -> None:
    with pytest.raises(Exception, match="missing"):
        Fault(path="(", status=500)


def test_injector_pick_without_a_server() -> None:
    faults = FaultInjector(seed=7)
    rule = faults.add(Fault(method="DELETE", path=r"^/x/\d+$", status=500, times=1))
    assert faults.pick("GET", "/x/1") is None
    assert faults.pick("DELETE", "/x/a") is None
    assert faults.pick("DELETE", "/x/1") is rule
    assert faults.pick("DELETE", "/x/1") is None


# ------------------------------------------------------------------------------- request log


async def test_request_log_contents(pivot: FakePivot, client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/connections", json=CONN)
    await client.get("/api/v1/connections/c1?x=1&y=%20")
    await client.get("/api/v1/connections/with%20space")
    await client.delete("/api/v1/connections/c1")
    records = pivot.requests.records
    assert [(r.method, r.status) for r in records] == [
        ("POST", 200),
        ("GET", 200),
        ("GET", 404),
        ("DELETE", 200),
    ]
    assert records[1].query_string == "x=1&y=%20"
    assert records[2].path == "/api/v1/connections/with space"
    assert records[2].raw_path == "/api/v1/connections/with%20space"
    assert all(r.user == "api-token" for r in records)
    assert all(r.fault is None for r in records)
    assert records[0].timestamp <= records[-1].timestamp <= time.time()
    assert pivot.requests.count() == len(pivot.requests) == 4
    assert pivot.requests.count("get") == 2
    assert pivot.requests.count(path=r"/c1$") == 2
    assert pivot.requests.count("GET", r"space") == 1
    assert [r.method for r in pivot.requests.writes()] == ["POST", "DELETE"]
    assert [r.method for r in pivot.requests] == ["POST", "GET", "GET", "DELETE"]
    pivot.requests.clear()
    assert pivot.requests.count() == 0


async def test_request_log_records_router_errors(pivot: FakePivot, client: httpx.AsyncClient) -> None:
    await client.put("/api/v1/connections/c1")
    await client.get("/nowhere")
    assert [(r.method, r.path, r.status) for r in pivot.requests] == [
        ("PUT", "/api/v1/connections/c1", 404),
        ("GET", "/nowhere", 404),
    ]


def test_request_log_filter_without_a_server() -> None:
    log = RequestLog()
    log.append(RequestRecord("GET", "/a", "/a", "", 200, None, 1.0, 0.0, None))
    log.append(RequestRecord("HEAD", "/a", "/a", "", 200, None, 2.0, 0.0, None))
    log.append(RequestRecord("PATCH", "/b", "/b", "", None, "u", 3.0, 0.0, "reset"))
    assert [r.method for r in log.writes()] == ["PATCH"]
    assert log.filter(path="^/b$")[0].user == "u"
    snapshot = log.records
    snapshot.clear()
    assert len(log) == 3
