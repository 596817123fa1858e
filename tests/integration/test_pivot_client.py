"""PivotClient against the real fake Pivot over loopback HTTP.

All five calls, every error class, a lossless round trip of every connection property
(secrets and unknown properties included), encoded names, and canary checks that neither
the API token nor a connection secret reaches an error.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from druid_access.clients import (
    AlreadyExists,
    ApiError,
    DbAuthToken,
    HttpOptions,
    Invalid,
    NotFound,
    PivotClient,
    PivotConnection,
    ServerError,
    Unauthorized,
    Unavailable,
)
from druid_access.testing.fake_pivot import FakePivot
from druid_access.testing.faults import Fault

TOKEN = "canary-Tok3n-5d1e"
DB_PASSWORD = "canary-DbPass-a9"
KEY = "canary-PrivKey-PEM"
PASSPHRASE = "canary-Phrase-77"
SOCK_PASSWORD = "canary-Sock-pw-3"
FAST = HttpOptions(connect_timeout=2.0, read_timeout=5.0, write_timeout=5.0, pool_timeout=2.0)


@pytest.fixture
async def fake_pivot() -> AsyncIterator[FakePivot]:
    async with FakePivot(token=TOKEN) as fake:
        yield fake


@pytest.fixture
async def pivot_client(fake_pivot: FakePivot) -> AsyncIterator[PivotClient]:
    async with PivotClient(fake_pivot.url, token=SecretStr(TOKEN), options=FAST) as client:
        yield client


def _minimal(name: str = "druid1", **changes: object) -> PivotConnection:
    base = PivotConnection(
        name=name, type="druid", query_hosts=("localhost",), title="Druid 1", timeout=40000
    )
    return base.model_copy(update=changes)


def _everything() -> PivotConnection:
    return PivotConnection.model_validate(
        {
            "name": "full",
            "type": "druidsql",
            "queryHosts": ["https://broker-1:8282", "https://broker-2:8282"],
            "title": "Every property",
            "timeout": 30000,
            "defaultDbAuthToken": {"type": "basic-auth", "username": "pivot", "password": DB_PASSWORD},
            "protocol": "tls",
            "ca": "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----",
            "cert": "-----BEGIN CERTIFICATE-----\nCLIENT\n-----END CERTIFICATE-----",
            "key": KEY,
            "passphrase": PASSPHRASE,
            "decorator": "decorators/auth.js",
            "decoratorOptions": {"header": "x-team", "values": [1, 2, {"nested": True}]},
            "sockHost": "socks.internal:1080",
            "sockUsername": "proxy",
            "sockPassword": SOCK_PASSWORD,
            "futureProperty": {"keep": "me"},
        }
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_lifecycle(pivot_client: PivotClient, fake_pivot: FakePivot) -> None:
    p = pivot_client
    assert await p.list_connections() == ()
    created = await p.create_connection(_minimal())
    assert created == _minimal()
    assert await p.get_connection("druid1") == _minimal()
    await p.create_connection(
        _minimal("druid2", type="druidsql", query_hosts=("https://www.example.com:8888",))
    )
    assert [c.name for c in await p.list_connections()] == ["druid1", "druid2"]

    changed = _minimal(query_hosts=("example.amazonaws.com:9088",), title="Druid AWS", timeout=None)
    updated = await p.update_connection(changed)
    assert updated == changed
    stored = await p.get_connection("druid1")
    assert stored.query_hosts == ("example.amazonaws.com:9088",)
    assert stored.timeout is None  # full replacement: what is not sent is gone
    assert "timeout" not in fake_pivot.connections["druid1"]

    await p.delete_connection("druid1")
    assert [c.name for c in await p.list_connections()] == ["druid2"]


async def test_not_found_and_already_exists(pivot_client: PivotClient) -> None:
    with pytest.raises(NotFound) as get_missing:
        await pivot_client.get_connection("ghost")
    assert (get_missing.value.status, get_missing.value.entity) == (404, "connection")
    with pytest.raises(NotFound) as delete_missing:
        await pivot_client.delete_connection("ghost")
    assert delete_missing.value.status == 404
    with pytest.raises(NotFound) as update_missing:
        await pivot_client.update_connection(_minimal("ghost"))
    assert update_missing.value.status == 400  # Pivot says "does not exist" with a 400 here

    await pivot_client.create_connection(_minimal())
    with pytest.raises(AlreadyExists) as taken:
        await pivot_client.create_connection(_minimal(title="again"))
    assert "has been used" in taken.value.message


async def test_every_property_round_trips(pivot_client: PivotClient, fake_pivot: FakePivot) -> None:
    sent = _everything()
    await pivot_client.create_connection(sent)
    # On the wire: camelCase, real secret values, unknown property kept, no nulls.
    stored = fake_pivot.connections["full"]
    assert stored["defaultDbAuthToken"] == {
        "type": "basic-auth",
        "username": "pivot",
        "password": DB_PASSWORD,
    }
    assert (stored["key"], stored["passphrase"], stored["sockPassword"]) == (KEY, PASSPHRASE, SOCK_PASSWORD)
    assert stored["futureProperty"] == {"keep": "me"}
    assert stored["queryHosts"] == ["https://broker-1:8282", "https://broker-2:8282"]
    assert None not in stored.values()

    read = await pivot_client.get_connection("full")
    assert read == sent
    assert read.default_db_auth_token is not None
    assert read.default_db_auth_token.password == SecretStr(DB_PASSWORD)
    assert read.to_wire() == stored
    # Printing the model never shows a secret.
    for rendering in (repr(read), str(read), str(read.model_dump()), read.model_dump_json()):
        for secret in (DB_PASSWORD, KEY, PASSPHRASE, SOCK_PASSWORD):
            assert secret not in rendering

    # Read-modify-write keeps everything else.
    await pivot_client.update_connection(read.model_copy(update={"title": "renamed title"}))
    assert fake_pivot.connections["full"] == {**stored, "title": "renamed title"}


async def test_unset_properties_are_omitted(pivot_client: PivotClient, fake_pivot: FakePivot) -> None:
    await pivot_client.create_connection(
        PivotConnection(
            name="lean",
            type="druid",
            query_hosts=("h",),
            default_db_auth_token=DbAuthToken(username="u", password=SecretStr("p")),
        )
    )
    assert fake_pivot.connections["lean"] == {
        "name": "lean",
        "type": "druid",
        "queryHosts": ["h"],
        "defaultDbAuthToken": {"type": "basic-auth", "username": "u", "password": "p"},
    }


async def test_invalid_connection(pivot_client: PivotClient) -> None:
    with pytest.raises(Invalid) as no_hosts:
        await pivot_client.create_connection(_minimal(query_hosts=()))
    assert no_hosts.value.status == 400
    with pytest.raises(Invalid):
        await pivot_client.create_connection(_minimal(timeout=0))


NAMES = ["with space", "ops@corp.example", "dots.in.name", "ünïcödé-接続", "team/ingest"]


@pytest.mark.parametrize("name", NAMES)
async def test_names_round_trip(name: str, pivot_client: PivotClient, fake_pivot: FakePivot) -> None:
    await pivot_client.create_connection(_minimal(name))
    assert (await pivot_client.get_connection(name)).name == name
    await pivot_client.update_connection(_minimal(name, title="t2"))
    assert fake_pivot.connections[name]["title"] == "t2"
    await pivot_client.delete_connection(name)
    assert name not in fake_pivot.connections
    raw = fake_pivot.requests.filter("DELETE")[-1].raw_path
    segment = raw.rsplit("/", 1)[1]
    assert " " not in segment
    assert "@" not in segment
    assert "/" not in segment


@pytest.mark.parametrize("name", ["", ".", ".."])
async def test_dot_names_refused_client_side(name: str, pivot_client: PivotClient) -> None:
    with pytest.raises(ValueError, match="cannot be used"):
        await pivot_client.get_connection(name)


async def test_wrong_token_is_unauthorized(fake_pivot: FakePivot) -> None:
    wrong = "canary-Wrong-tok-0e"
    async with PivotClient(fake_pivot.url, token=wrong, options=FAST) as p:
        assert wrong not in repr(p)
        with pytest.raises(Unauthorized) as info:
            await p.list_connections()
    assert info.value.status == 401
    assert wrong not in str(info.value) + repr(info.value)


async def test_wrong_base_url_is_not_a_missing_connection(fake_pivot: FakePivot) -> None:
    async with PivotClient(fake_pivot.url + "/pivot", token=TOKEN, options=FAST) as p:
        with pytest.raises(ApiError) as info:
            await p.get_connection("druid1")
    assert type(info.value) is ApiError
    assert info.value.status == 404


async def test_injected_500_is_server_error(pivot_client: PivotClient, fake_pivot: FakePivot) -> None:
    fake_pivot.faults.add(
        Fault(method="GET", path=r"/connections$", status=500, body={"error": "boom"}, times=1)
    )
    with pytest.raises(ServerError):
        await pivot_client.list_connections()
    assert await pivot_client.list_connections() == ()


async def test_connection_refused_is_unavailable() -> None:
    async with PivotClient(f"http://127.0.0.1:{_closed_port()}", token=TOKEN, options=FAST) as p:
        with pytest.raises(Unavailable) as info:
            await p.list_connections()
    assert info.value.target == "pivot"
    assert info.value.message.startswith("ConnectError")


async def test_reset_is_unavailable(pivot_client: PivotClient, fake_pivot: FakePivot) -> None:
    fake_pivot.faults.add(Fault(method="POST", path=r"/connections$", reset=True, times=1))
    with pytest.raises(Unavailable):
        await pivot_client.create_connection(_minimal())


async def test_read_timeout_is_unavailable(fake_pivot: FakePivot) -> None:
    fake_pivot.faults.add(Fault(method="GET", path=r"/connections", latency=3.0, times=1))
    options = HttpOptions(connect_timeout=1.0, read_timeout=0.2, write_timeout=1.0, pool_timeout=1.0)
    async with PivotClient(fake_pivot.url, token=TOKEN, options=options) as p:
        with pytest.raises(Unavailable) as info:
            await p.list_connections()
    assert info.value.message.startswith("ReadTimeout")


async def test_no_error_carries_a_secret(pivot_client: PivotClient, fake_pivot: FakePivot) -> None:
    echo = f"rejected {DB_PASSWORD} {KEY} {PASSPHRASE} {SOCK_PASSWORD} with token {TOKEN}"
    fake_pivot.faults.add(
        Fault(method="POST", path=r"/connections$", status=400, body={"error": echo}, times=1)
    )
    fake_pivot.faults.add(Fault(method="POST", path=r"/connections/full$", status=500, body=echo, times=1))
    with pytest.raises(Invalid) as create:
        await pivot_client.create_connection(_everything())
    await pivot_client.create_connection(_everything())
    with pytest.raises(ServerError) as update:
        await pivot_client.update_connection(_everything())
    for err in (create.value, update.value):
        rendered = f"{err} {err!r} {err.args}"
        assert "***" in rendered
        for secret in (TOKEN, DB_PASSWORD, KEY, PASSPHRASE, SOCK_PASSWORD):
            assert secret not in rendered


def test_a_token_that_cannot_be_sent_as_a_header_is_refused_when_the_client_is_built() -> None:
    # Refused once, where the target's client is made, and the message names no token.
    with pytest.raises(UnicodeEncodeError) as info:
        PivotClient("http://127.0.0.1:1", token="t\u00f6ken-canary")
    assert "canary" not in str(info.value)
