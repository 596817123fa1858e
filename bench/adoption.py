"""``druid-access export`` and ``diff`` on a large target (issue 12): time, CPU, requests, bytes.

Usage (from the repository root)::

    .venv/bin/python bench/adoption.py --users 10000 [--roles 1000] [--out bench/results/adoption.md]

The fake Coordinator runs in a thread of this process, with Druid's 10,000 PBKDF2 iterations: N
users, each with its own password and one of M roles, and M roles with one permission each, put
straight into its state (the passwords hashed beforehand on every core). The commands run as
subprocesses, as a user runs them. Phases, each against the target as the one before left it:

1. the baseline: the three bulk reads the commands start with, made by a client in this process
   (response bytes, time);
2. ``export`` of the whole cluster: wall time, the process's CPU, requests and bytes written;
3. ``diff`` of the export as written (users without ``spec.password``): wall time, CPU, requests,
   exit code (0: nothing would change);
4. ``diff`` with a password reference on every user, the Secrets not in the files (as in a Git
   repository that keeps no Secret): the passwords are not checked;
5. ``diff`` with every user's Secret in the files (each password checked by PBKDF2 once);
6. ``diff`` after 1 % of the users lost their role on the Coordinator: exit code 2, and exactly
   those users shown, each with its one role to assign.

Every number of a run comes from the same machine in the same minutes: ratios are against phase 1;
phase 0 is the start-up every command pays (the interpreter and its imports).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from druid_access.clients import AuthenticatorName, AuthorizerName, CoordinatorClient
from druid_access.observation import read_druid
from druid_access.passwords import StoredCredentials, hash_password
from druid_access.testing.environment import FakesInThread
from druid_access.testing.fake_coordinator import Permission

ROOT = Path(__file__).resolve().parents[1]
ADMIN_PW = "adoption-bench-admin"
CLI = [str(ROOT / ".venv" / "bin" / "druid-access")]


def user(i: int) -> str:
    return f"user-{i:05d}@corp.example"


def password(i: int) -> str:
    return f"pw-{i}-adoption"


def role(j: int) -> str:
    return f"role-{j:04d}"


def _hash(i: int) -> StoredCredentials:
    return hash_password(password(i))


def seed(fakes: FakesInThread, users: int, roles: int) -> float:
    """Fill the fake's state; returns the seconds spent hashing the passwords."""
    started = time.monotonic()
    with ProcessPoolExecutor() as pool:
        hashed = list(pool.map(_hash, range(users), chunksize=64))
    hashing = time.monotonic() - started

    def put() -> None:
        coordinator = fakes.coordinator
        for j in range(roles):
            coordinator.add_role(role(j), [Permission("DATASOURCE", f"ds-{j}.*", "READ")])
        for i in range(users):
            coordinator.add_user(user(i), roles=[role(i % roles)])
            coordinator.credentials[user(i)] = hashed[i]

    fakes.call(put)
    return hashing


@dataclass
class Run:
    seconds: float
    cpu: float
    gets: int
    writes: int
    code: int
    stdout: str
    stderr: str


def command(fakes: FakesInThread, *args: str) -> Run:
    """One ``druid-access`` command against the fake, with its wall time, CPU and requests."""
    log = fakes.coordinator.requests
    gets, writes = log.count("GET"), len(log.writes())
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    env = {**os.environ, "BENCH_PASSWORD": ADMIN_PW}
    flags = ["--coordinator-url", fakes.coordinator.url, "--password-env", "BENCH_PASSWORD"]
    done = subprocess.run(
        [*CLI, *args, *flags], env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(
        seconds,
        cpu,
        log.count("GET") - gets,
        len(log.writes()) - writes,
        done.returncode,
        done.stdout,
        done.stderr,
    )


def measured(phase: str, what: str, run: Run, base_seconds: float) -> tuple[str, str, str, str]:
    """A table row for one command: its wall time and CPU, and its time against the baseline."""
    return (
        phase,
        what,
        f"{run.seconds:.2f} s wall, {run.cpu:.2f} s CPU",
        f"{run.seconds / base_seconds:.1f}x the baseline",
    )


async def baseline(url: str) -> tuple[float, int]:
    """The three bulk reads alone, decoded: seconds and the objects they hold."""
    async with CoordinatorClient(url, username="admin", password=SecretStr(ADMIN_PW)) as client:
        started = time.monotonic()
        snapshot = await read_druid(
            client, AuthenticatorName("basic"), AuthorizerName("basic"), passwords=True
        )
        seconds = time.monotonic() - started
    return seconds, len(snapshot.users) + len(snapshot.roles)


def summary(stdout: str) -> str:
    found = re.search(r"^\d+ objects, .*$", stdout, re.M)
    return found.group(0) if found else "(no summary)"


def secrets_file(path: Path, users: int, namespace: str) -> None:
    docs = []
    for i in range(users):
        data = {"password": base64.b64encode(password(i).encode()).decode()}
        meta = {"name": f"pw-{i}", "namespace": namespace, "labels": {"druidaccess.io/allow": "true"}}
        docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "data": data})
    path.write_text(
        yaml.dump_all(docs, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper)), encoding="utf-8"
    )


def with_passwords(exported: Path, out: Path) -> None:
    """The export with each user's Secret reference, as its comment says to add."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    docs: list[dict[str, Any]] = [
        d for d in yaml.load_all(exported.read_text(encoding="utf-8"), Loader=loader) if d
    ]
    for doc in docs:
        if doc["kind"] == "DruidUser":
            i = int(doc["spec"]["name"].split("-")[1].split("@")[0])
            doc["spec"]["password"] = {"secretKeyRef": {"name": f"pw-{i}", "key": "password"}}
    out.write_text(
        yaml.dump_all(docs, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper)), encoding="utf-8"
    )


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--roles", type=int, default=None, help="default: users / 10")
    parser.add_argument("--out", type=Path, default=None, help="append the section to this file")
    args = parser.parse_args(argv)
    users, roles = args.users, args.roles or max(1, args.users // 10)
    started = datetime.datetime.now(datetime.UTC)
    rows: list[tuple[str, str, str, str]] = []
    notes: list[str] = []
    with FakesInThread(admin_password=ADMIN_PW, pivot_token="unused", credential_iterations=10_000) as fakes, \
            tempfile.TemporaryDirectory(prefix="adoption-") as tmp:  # fmt: skip
        hashing = seed(fakes, users, roles)
        notes.append(
            f"seeding: {users:,} passwords hashed (PBKDF2, 10,000 iterations) in {hashing:.1f} s on every core"
        )
        # Start-up: the interpreter and every import of the commands, ended by a file that is not there.
        missing = str(Path(tmp) / "none.yaml")
        subprocess.run(
            [*CLI, "diff", "-f", missing], capture_output=True, check=False, timeout=60
        )  # warm caches
        started_at = time.monotonic()
        subprocess.run([*CLI, "diff", "-f", missing], capture_output=True, check=False, timeout=60)
        startup = f"{time.monotonic() - started_at:.2f} s"
        rows.append(
            (
                "0 start-up",
                "`druid-access diff -f <no such file>`: the interpreter and the imports",
                startup,
                "",
            )
        )
        base_seconds, objects = asyncio.run(baseline(fakes.coordinator.url))
        rows.append(
            (
                "1 baseline",
                "the three bulk reads, decoded, in this process",
                f"{base_seconds:.2f} s",
                f"{objects:,} users and roles",
            )
        )
        exported = Path(tmp) / "export.yaml"
        run = command(fakes, "export", "--namespace", "adopt", "--output", str(exported))
        assert run.code == 0, run.stderr
        size = exported.stat().st_size
        count = sum(1 for line in exported.read_text(encoding="utf-8").splitlines() if line == "---")
        rows.append(measured("2 export", f"{count:,} objects written ({size / 1e6:.1f} MB), {run.gets} GETs, {run.writes} writes", run, base_seconds))  # fmt: skip
        run = command(fakes, "diff", "-f", str(exported))
        rows.append(measured("3 diff (as exported)", f"exit {run.code}, {run.gets} GETs, {run.writes} writes: {summary(run.stdout)}", run, base_seconds))  # fmt: skip
        assert run.code == 0, run.stdout[-2000:] + run.stderr
        given, secrets = Path(tmp) / "with-passwords.yaml", Path(tmp) / "secrets.yaml"
        with_passwords(exported, given)
        secrets_file(secrets, users, "adopt")
        run = command(fakes, "diff", "-f", str(given))
        rows.append(measured("4 diff (password references, no Secret in the files)", f"exit {run.code}, {run.gets} GETs, {run.writes} writes, passwords not checked: {summary(run.stdout)}", run, base_seconds))  # fmt: skip
        assert run.code == 0, run.stdout[-2000:] + run.stderr
        run = command(fakes, "diff", "-f", str(given), "-f", str(secrets))
        rows.append(measured("5 diff (every password given)", f"exit {run.code}, {run.gets} GETs, {run.writes} writes, {users:,} PBKDF2 checks: {summary(run.stdout)}", run, base_seconds))  # fmt: skip
        assert run.code == 0, run.stdout[-2000:] + run.stderr
        drifted = list(range(0, users, 100))

        def drift() -> None:
            for i in drifted:
                fakes.coordinator.users[user(i)] = set()

        fakes.call(drift)
        run = command(fakes, "diff", "-f", str(given), "-f", str(secrets))
        shown = set(re.findall(r"-> user '([^']+)'\n  \+ role ", run.stdout))
        rows.append(measured("6 diff (1 % of users lost their role)", f"exit {run.code}, {run.gets} GETs, {run.writes} writes; {len(shown)} users shown, {len(drifted)} drifted: {summary(run.stdout)}", run, base_seconds))  # fmt: skip
        assert run.code == 2 and shown == {user(i) for i in drifted}, run.stdout[-2000:]
    text = [
        f"## N = {users:,} users, {roles:,} roles (commit {git('rev-parse', '--short', 'HEAD')})",
        "",
        f"- command: `.venv/bin/python bench/adoption.py --users {users}{'' if args.roles is None else f' --roles {roles}'}`",
        f"- date: {started:%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}; fake Coordinator in the benchmark's process",
        *(f"- {note}" for note in notes),
        "",
        "| phase | what | time | against the baseline |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows),
        "",
    ]
    report = "\n".join(text)
    print(report)
    if args.out is not None:
        if not args.out.exists():
            args.out.write_text(
                "# `druid-access export` and `diff` at scale (`bench/adoption.py`)\n\n", encoding="utf-8"
            )
        with args.out.open("a", encoding="utf-8") as out:
            out.write(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
