"""The fake Pivot connections API over real HTTP, against the reference document."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from druid_access.testing import FakePivot

TOKEN = "s3cr3t-token"
API = "/api/v1/connections"
CLI = Path(sys.executable).parent / "druid-access-testing"  # the druid-access-testing distribution
DRUID1 = {
    "name": "druid1",
    "type": "druid",
    "queryHosts": ["localhost"],
    "title": "Druid 1",
    "timeout": 40000,
}
WITH_SECRETS = {
    "name": "secure",
    "type": "druidsql",
    "queryHosts": ["https://broker:8282"],
    "protocol": "tls",
    "ca": "-----BEGIN CERTIFICATE-----",
    "cert": "client-cert",
    "key": "private-key",
    "passphrase": "key-pass",
    "defaultDbAuthToken": {"type": "basic-auth", "username": "admin", "password": "admin_password"},
    "decorator": "decorator.js",
    "decoratorOptions": {"x": 1},
    "sockHost": "proxy:1080",
    "sockUsername": "proxy-user",
    "sockPassword": "proxy-pass",
}


@pytest.fixture
async def pivot() -> AsyncIterator[FakePivot]:
    async with FakePivot(token=TOKEN) as server:
        yield server


@pytest.fixture
async def client(pivot: FakePivot) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=pivot.url, headers={"x-imply-api-token": TOKEN}, timeout=10
    ) as http:
        yield http


def one(name: str) -> str:
    return f"{API}/{quote(name, safe='')}"


def assert_error(resp: httpx.Response, status: int, message: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json() == {"error": message}


async def test_token_is_required(pivot: FakePivot) -> None:
    async with httpx.AsyncClient(base_url=pivot.url, timeout=10) as anon:
        assert_error(await anon.get(API), 401, "Unauthorized: missing x-imply-api-token header")
        resp = await anon.post(API, json=DRUID1, headers={"x-imply-api-token": "wrong"})
        assert_error(resp, 401, "Unauthorized: invalid API token")
        resp = await anon.delete(one("x"), headers={"x-imply-api-token": ""})
        assert_error(resp, 401, "Unauthorized: invalid API token")
    assert pivot.connections == {}
    assert [r.user for r in pivot.requests] == [None, None, None]


async def test_empty_list(client: httpx.AsyncClient) -> None:
    resp = await client.get(API)
    assert (resp.status_code, resp.json()) == (200, {"connections": []})


async def test_create_get_list(pivot: FakePivot, client: httpx.AsyncClient) -> None:
    resp = await client.post(API, json=DRUID1)
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "message": "Created successfully", "connection": DRUID1}
    assert (await client.get(one("druid1"))).json() == DRUID1
    druid2 = {"name": "druid2", "type": "druidsql", "queryHosts": ["https://www.example.com:8888"]}
    assert (await client.post(API, json=druid2)).status_code == 200
    assert (await client.get(API)).json() == {"connections": [DRUID1, druid2]}
    assert list(pivot.connections) == ["druid1", "druid2"]
    assert_error(await client.post(API, json=DRUID1), 400, "this name has been used.")


async def test_get_missing(client: httpx.AsyncClient) -> None:
    assert_error(await client.get(one("nope")), 404, "This connection does not exist.")


async def test_update_is_full_replacement(pivot: FakePivot, client: httpx.AsyncClient) -> None:
    await client.post(API, json=DRUID1)
    update = {
        "name": "druid1",
        "type": "druid",
        "queryHosts": ["example.amazonaws.com:9088"],
        "timeout": 30000,
    }
    resp = await client.post(one("druid1"), json=update)
    assert resp.json() == {"status": "ok", "message": "Updated successfully", "connection": update}
    stored = (await client.get(one("druid1"))).json()
    assert stored == update
    assert "title" not in stored  # not sent, so dropped
    assert pivot.connections["druid1"] == update


async def test_update_errors(client: httpx.AsyncClient) -> None:
    await client.post(API, json=DRUID1)
    other = {**DRUID1, "name": "renamed"}
    resp = await client.post(one("druid1"), json=other)
    assert_error(resp, 400, "The name in the request body must match the name in the URL.")
    missing = {**DRUID1, "name": "ghost"}
    assert_error(await client.post(one("ghost"), json=missing), 400, "this connection does not exist")
    invalid = {**DRUID1, "type": "mysql"}
    resp = await client.post(one("druid1"), json=invalid)
    assert_error(resp, 400, "Invalid connection: 'type' must be one of druid, druidsql.")
    assert (await client.get(one("druid1"))).json() == DRUID1


async def test_delete(pivot: FakePivot, client: httpx.AsyncClient) -> None:
    await client.post(API, json=DRUID1)
    resp = await client.delete(one("druid1"))
    assert resp.json() == {"status": "ok", "message": "Deleted successfully"}
    assert pivot.connections == {}
    resp = await client.delete(one("druid1"))
    assert_error(resp, 404, "This connection does not exist. Please check the name again.")


async def test_secrets_are_stored_and_returned(client: httpx.AsyncClient) -> None:
    assert (await client.post(API, json=WITH_SECRETS)).json()["connection"] == WITH_SECRETS
    assert (await client.get(one("secure"))).json() == WITH_SECRETS
    assert (await client.get(API)).json()["connections"] == [WITH_SECRETS]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([DRUID1], "the request body must be a JSON object."),
        ({"type": "druid", "queryHosts": ["h"]}, "'name' must be a non-empty string."),
        ({"name": "", "type": "druid", "queryHosts": ["h"]}, "'name' must be a non-empty string."),
        ({"name": 5, "type": "druid", "queryHosts": ["h"]}, "'name' must be a non-empty string."),
        ({"name": "n", "queryHosts": ["h"]}, "'type' must be one of druid, druidsql."),
        ({"name": "n", "type": "DRUID", "queryHosts": ["h"]}, "'type' must be one of druid, druidsql."),
        ({"name": "n", "type": "druid"}, "'queryHosts' must be a non-empty array of strings."),
        (
            {"name": "n", "type": "druid", "queryHosts": []},
            "'queryHosts' must be a non-empty array of strings.",
        ),
        (
            {"name": "n", "type": "druid", "queryHosts": "h"},
            "'queryHosts' must be a non-empty array of strings.",
        ),
        (
            {"name": "n", "type": "druid", "queryHosts": [1]},
            "'queryHosts' must be a non-empty array of strings.",
        ),
        ({**DRUID1, "title": 1}, "'title' must be a string."),
        ({**DRUID1, "sockPassword": None}, "'sockPassword' must be a string."),
        ({**DRUID1, "timeout": 0}, "'timeout' must be a positive integer (milliseconds)."),
        ({**DRUID1, "timeout": "40000"}, "'timeout' must be a positive integer (milliseconds)."),
        ({**DRUID1, "timeout": True}, "'timeout' must be a positive integer (milliseconds)."),
        ({**DRUID1, "protocol": "ssl"}, "'protocol' must be one of plain, tls, tls-loose."),
        ({**DRUID1, "defaultDbAuthToken": "admin:pw"}, "'defaultDbAuthToken' must be an object."),
    ],
)
async def test_create_validation(
    pivot: FakePivot, client: httpx.AsyncClient, body: object, message: str
) -> None:
    assert_error(await client.post(API, json=body), 400, f"Invalid connection: {message}")
    assert pivot.connections == {}


@pytest.mark.parametrize("protocol", ["plain", "tls", "tls-loose"])
async def test_protocols_accepted(client: httpx.AsyncClient, protocol: str) -> None:
    assert (await client.post(API, json={**DRUID1, "protocol": protocol})).status_code == 200


async def test_non_json_and_malformed_bodies(client: httpx.AsyncClient) -> None:
    resp = await client.post(API, data={"name": "x"})  # form-encoded: express.json() leaves {}
    assert_error(resp, 400, "Invalid connection: 'name' must be a non-empty string.")
    resp = await client.post(API, content=b"{oops", headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "Invalid JSON in request body.")
    resp = await client.post(API, content=b"", headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "Invalid connection: 'name' must be a non-empty string.")


@pytest.mark.parametrize("name", ["with space", "a@b.c", "dots.in.name", "ünï-日本", "a/b", "a+b"])
async def test_percent_encoded_names(client: httpx.AsyncClient, name: str) -> None:
    body = {**DRUID1, "name": name}
    assert (await client.post(API, json=body)).status_code == 200
    assert (await client.get(one(name))).json() == body
    assert (await client.post(one(name), json=body)).json()["message"] == "Updated successfully"
    assert (await client.delete(one(name))).status_code == 200


async def test_unknown_routes_answer_like_express(client: httpx.AsyncClient) -> None:
    resp = await client.put(one("druid1"), json=DRUID1)
    assert (resp.status_code, resp.text) == (404, "Cannot PUT /api/v1/connections/druid1")
    resp = await client.get("/api/v2/things")
    assert (resp.status_code, resp.text) == (404, "Cannot GET /api/v2/things")


async def test_direct_state_is_served(pivot: FakePivot, client: httpx.AsyncClient) -> None:
    pivot.connections["drifted"] = {"name": "drifted", "type": "druid", "queryHosts": ["elsewhere"]}
    assert (await client.get(one("drifted"))).json()["queryHosts"] == ["elsewhere"]
    await client.post(API, json=DRUID1)
    returned = (await client.get(one("druid1"))).json()
    returned["title"] = "mutated by the client"
    assert pivot.connections["druid1"]["title"] == "Druid 1"  # responses are copies


async def test_standalone_cli_serves_until_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        str(CLI),
        *("fake-pivot", "--port", "0", "--token", TOKEN),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout=30)).decode().strip()
        assert line.startswith("fake-pivot ready on http://127.0.0.1:"), line
        url = line.removeprefix("fake-pivot ready on ")
        async with httpx.AsyncClient(base_url=url, headers={"x-imply-api-token": TOKEN}, timeout=10) as http:
            assert (await http.get(API)).json() == {"connections": []}
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), timeout=15) == 0
        assert await asyncio.wait_for(proc.stdout.read(), timeout=5) == b""
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
