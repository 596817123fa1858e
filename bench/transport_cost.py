"""What one request costs the operator's own CPU, with httpx's transport and with the clients'.

Usage (from the repository root)::

    .venv/bin/python bench/transport_cost.py [--requests 3000] [--out bench/results/transport-cost.md]

A fake Coordinator runs in a subprocess (``druid-access-testing fake-coordinator``), so only the
client's work is in this process. One ``CoordinatorClient`` per transport sends ``--requests``
of each kind one at a time, after 100 of warm-up: a role created (POST without a body), its
permissions set (POST with JSON), the role read (GET); the process's CPU time
(``time.process_time``) is read around each batch. The transports, alternated twice in one run:
``httpx`` (``httpx.AsyncHTTPTransport``, httpcore over anyio) and ``clients`` (the clients'
default, ``clients/_transport.py``: aiohttp under httpx's interface). The ratio is of the same run.
A third column sends the same requests with aiohttp alone (a ``ClientSession`` with the same Basic
header, the body read and decoded with ``json.loads``, no typed answer): the floor under the
clients, which shows what the clients' own layer (URL, headers, errors, parsing) adds.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import platform
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
from pydantic import SecretStr

from druid_access.clients import AuthorizerName, CoordinatorClient, HttpOptions, Permission

ROOT = Path(__file__).resolve().parent.parent
ADMIN_PW = "transport-cost-admin"
AUTHZ = AuthorizerName("basic")
KINDS = ("POST, no body", "POST, JSON body", "GET")


def start_fake() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "druid_access.testing.cli", "fake-coordinator", "--admin-password", ADMIN_PW],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+", line)
        if found:
            return process, found.group(0)
    process.kill()
    raise RuntimeError("the fake Coordinator did not say where it listens")


Calls = dict[str, Callable[[int], Awaitable[object]]]


async def cpu_per_call(calls: Calls, n: int) -> dict[str, float]:
    """Milliseconds of this process's CPU per call of each kind, after 100 of warm-up."""
    out = {}
    for kind, call in calls.items():
        for i in range(100):
            await call(-1 - i)
        started = time.process_time()
        for i in range(n):
            await call(i)
        out[kind] = (time.process_time() - started) / n * 1e3
    return out


async def measure(url: str, transport: httpx.AsyncBaseTransport | None, n: int, tag: str) -> dict[str, float]:
    options = HttpOptions()
    permission = [Permission(resource_type="DATASOURCE", resource_name="x.*", action="READ")]
    async with CoordinatorClient(
        url, username="admin", password=SecretStr(ADMIN_PW), options=options, transport=transport
    ) as client:
        calls: Calls = {
            "POST, no body": lambda i: client.create_role(AUTHZ, f"{tag}-{i}"),
            "POST, JSON body": lambda i: client.set_permissions(AUTHZ, f"{tag}-{i}", permission),
            "GET": lambda i: client.get_role(AUTHZ, f"{tag}-{i}"),
        }
        return await cpu_per_call(calls, n)


async def measure_aiohttp(url: str, n: int, tag: str) -> dict[str, float]:
    base = f"{url}/druid-ext/basic-security/authorization/db/{AUTHZ}/roles"
    body = json.dumps([{"resource": {"type": "DATASOURCE", "name": "x.*"}, "action": "READ"}])
    headers = {"Authorization": aiohttp.encode_basic_auth("admin", ADMIN_PW), "Accept": "application/json"}

    async def send(method: str, path: str, data: str | None = None) -> object:
        extra = {"Content-Type": "application/json"} if data is not None else {}
        async with session.request(method, base + path, data=data, headers=extra) as response:
            raw = await response.read()
            if response.status != 200:
                raise RuntimeError(f"{method} {path}: HTTP {response.status}")
            return json.loads(raw) if raw else None

    async with aiohttp.ClientSession(headers=headers, skip_auto_headers=("Content-Type",)) as session:
        calls: Calls = {
            "POST, no body": lambda i: send("POST", f"/{tag}-{i}"),
            "POST, JSON body": lambda i: send("POST", f"/{tag}-{i}/permissions", body),
            "GET": lambda i: send("GET", f"/{tag}-{i}?full"),
        }
        return await cpu_per_call(calls, n)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "transport-cost.md")
    args = parser.parse_args()
    process, url = start_fake()
    results: dict[str, list[dict[str, float]]] = {"httpx": [], "clients": [], "aiohttp": []}
    try:
        for round_ in range(2):
            for name in ("httpx", "clients", "aiohttp"):
                tag = f"{name}{round_}"
                if name == "aiohttp":
                    results[name].append(asyncio.run(measure_aiohttp(url, args.requests, tag)))
                else:
                    transport = httpx.AsyncHTTPTransport(retries=0) if name == "httpx" else None
                    results[name].append(asyncio.run(measure(url, transport, args.requests, tag)))
                print(f"{name} round {round_ + 1}: {results[name][-1]}", file=sys.stderr)
    finally:
        process.terminate()
        process.wait(timeout=10)
    rows = []
    for kind in KINDS:
        httpx_ms = min(r[kind] for r in results["httpx"])
        ours_ms = min(r[kind] for r in results["clients"])
        raw_ms = min(r[kind] for r in results["aiohttp"])
        rows.append(
            f"| {kind} | {httpx_ms:.3f} ms | {ours_ms:.3f} ms | {ours_ms / httpx_ms:.2f}x "
            f"| {raw_ms:.3f} ms | {ours_ms / raw_ms:.2f}x |"
        )
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=False
    ).stdout.strip()
    text = (
        "# The operator's CPU per request, by HTTP transport\n\n"
        f"- command: `.venv/bin/python bench/transport_cost.py --requests {args.requests}`\n"
        f"- date: {now}; git {commit} (plus any uncommitted changes in the working tree)\n"
        f"- machine: {platform.platform()}, Python {platform.python_version()}, httpx {httpx.__version__}\n"
        "- client CPU time (`time.process_time`) per request, one request at a time against a fake "
        "Coordinator in another process; the lower of two rounds each\n\n"
        "| request | httpx's transport (httpcore) | the clients' transport (aiohttp) | ratio "
        "| aiohttp alone (floor) | clients / floor |\n"
        "|---|---:|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n"
    )
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
