"""What one request costs a REAL Druid Coordinator, in its own CPU time.

Usage (from the repository root; needs the ``make druid`` cache)::

    .venv/bin/python bench/request_cost.py [--requests 300] [--version 27.0.0] [--out bench/results/request-cost.md]

The results file holds one section per Druid version; a run replaces its version's section.

Starts a fresh Coordinator (``druid_access.testing.druid.DruidCoordinator``, ZooKeeper and Derby
on 127.0.0.1), sends every kind of read in turn for ``--warmup`` seconds (the JIT compiles the
request paths meanwhile, on CPU counted to the JVM), then ``--requests`` of each kind one at a
time after 20 more, reading the JVM's CPU time (``utime+stime`` of ``/proc/<pid>/stat``) before
and after; then the four writes that make a user, each on ``--requests`` users of their own after
20 others. Basic authentication checks the caller's password with PBKDF2 on every request: this
is why the operator reads a target whole once per resync instead of once per object, and why each
live read of a pass counts. The unauthenticated health check is the baseline of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from druid_access.clients import AuthenticatorName, AuthorizerName, CoordinatorClient
from druid_access.observation import absent_as_none
from druid_access.testing.druid import DruidCoordinator
from proc_stats import process_cpu

ROOT = Path(__file__).resolve().parent.parent
ADMIN_PW = "request-cost-admin"
AUTHN, AUTHZ = AuthenticatorName("basic"), AuthorizerName("basic")


async def measure(url: str, pid: int, requests: int, warmup: float) -> list[tuple[str, float, float]]:
    rows = []
    async with CoordinatorClient(url, username="admin", password=SecretStr(ADMIN_PW)) as client:
        await client.create_authenticator_user(AUTHN, "someone")
        await client.create_role(AUTHZ, "a-role")
        kinds: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("GET /status/health (unauthenticated)", client.health),
            ("GET an authenticator user", lambda: client.get_authenticator_user(AUTHN, "someone")),
            ("GET a role", lambda: client.get_role(AUTHZ, "a-role")),
            ("GET the role list", lambda: client.list_roles(AUTHZ)),
            ("GET the authenticator's whole user map (Smile)", lambda: client.authenticator_users(AUTHN)),
            # What the operator reads of a new user before creating it: both answers are 404.
            (
                "GET a missing authenticator user (404)",
                lambda: absent_as_none(client.get_authenticator_user(AUTHN, "nobody"), "user"),
            ),
            (
                "GET a missing authorizer user (404)",
                lambda: absent_as_none(client.get_authorizer_user(AUTHZ, "nobody"), "user"),
            ),
        ]
        # The JIT compiles the request paths in the JVM's first minute, on CPU counted to the
        # JVM: every kind of request in turn for ``warmup`` seconds first.
        deadline = time.monotonic() + warmup
        while time.monotonic() < deadline:
            for _, call in kinds:
                await call()
        for label, call in kinds:
            rows.append(await timed(label, unnamed(call), pid, requests))
        # The four writes that make a user with a password and a role, each on ``requests``
        # users of their own, in the order a user needs them.
        password = SecretStr("request-cost-user-password")
        writes: list[tuple[str, Callable[[str], Awaitable[Any]]]] = [
            ("POST create an authenticator user", lambda n: client.create_authenticator_user(AUTHN, n)),
            (
                "POST set a password (the Coordinator hashes it)",
                lambda n: client.set_password(AUTHN, n, password),
            ),
            ("POST create an authorizer user", lambda n: client.create_authorizer_user(AUTHZ, n)),
            ("POST assign a role", lambda n: client.assign_role(AUTHZ, user=n, role="a-role")),
        ]
        for label, write in writes:
            rows.append(await timed(label, write, pid, requests))
    return rows


def unnamed(call: Callable[[], Awaitable[Any]]) -> Callable[[str], Awaitable[Any]]:
    """A read for ``timed``, which hands every request a name."""
    return lambda _name: call()


async def timed(
    label: str, send: Callable[[str], Awaitable[Any]], pid: int, requests: int
) -> tuple[str, float, float]:
    """20 requests of warm-up, then ``requests`` measured: the JVM's CPU and the wall time per
    request. ``send`` gets a name of its own per request (writes need one; reads ignore it)."""
    for i in range(20):
        await send(f"warm-{i:02d}")
    cpu, wall = process_cpu(pid), time.monotonic()
    for i in range(requests):
        await send(f"user-{i:04d}")
    return label, (process_cpu(pid) - cpu) / requests, (time.monotonic() - wall) / requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds of every request in turn first")
    parser.add_argument("--version", default="27.0.0")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "request-cost.md")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="request-cost-") as tmp,
        DruidCoordinator(Path(tmp) / "druid", admin_password=ADMIN_PW, version=args.version) as druid,
    ):
        pid = druid.coordinator_pid
        assert pid is not None
        rows = asyncio.run(measure(druid.url, pid, args.requests, args.warmup))
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# What one request costs a Druid {args.version} Coordinator\n",
        f"- command: `.venv/bin/python {' '.join(sys.argv)}`",
        f"- date: {date}; {os.cpu_count()} CPU(s); one request at a time, {args.requests} of each after {args.warmup:g} s of all in turn and 20 of each",
        "",
        "| request | Coordinator CPU per request | wall time per request |",
        "|---|---:|---:|",
        *(f"| {label} | {cpu * 1000:.1f} ms | {wall * 1000:.1f} ms |" for label, cpu, wall in rows),
        "",
    ]
    section = "\n".join(lines)
    # One section per Druid version: a new run replaces the section of its version.
    kept = args.out.read_text().split("\n# ") if args.out.exists() else []
    kept = [k if k.startswith("# ") else "# " + k for k in kept if k.strip()]
    kept = [k for k in kept if not k.startswith(lines[0].rstrip("\n"))]
    args.out.write_text("\n".join(k.rstrip("\n") + "\n" for k in [*kept, section]))
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
