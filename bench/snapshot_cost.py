"""What reading a whole Druid cluster costs the operator's CPU, per resync, at N users.

Usage (from the repository root)::

    .venv/bin/python bench/snapshot_cost.py [--users 10000] [--roles 1000] [--label TEXT]
        [--out bench/results/snapshot-cost.md]

A resync reads the authenticator's and the authorizer's ``cachedSerialized*`` maps (Smile) and
turns them into a ``DruidSnapshot``; in sync, that is most of the operator's CPU per resync
(issue 11's goal: <= 1 s at 10,000 users). This builds the two maps as the fake Coordinator
serves them for ``bench/scale.py``'s users and roles (one role each, a salt and a hash of
Druid's sizes), encodes them with the test servers' Smile encoder, and measures the process's
CPU time (``time.process_time``, the mean of ``--repeat`` runs after one of warm-up) of each
step of the operator's own code: decoding the Smile, validating the decoded maps into the wire
models, and comparing two snapshots (``observation.changed_entries``); and what the client does
instead when a store did not change (its body has the digest of the last one: the parse is
reused). The baseline of the same
run is ``json.loads`` of the same maps as JSON: what the standard library's C parser takes for
the same data. ``--label`` says what was measured; the section is appended to ``--out``.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import json
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from druid_access.clients import druid_wire as wire
from druid_access.clients.coordinator import _base64_credentials
from druid_access.clients.smile import smile_decode
from druid_access.observation import DruidSnapshot, changed_entries
from druid_access.testing.druidwire.smile import smile_encode

ROOT = Path(__file__).resolve().parent.parent


def maps(users: int, roles: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The authenticator's user map and the authorizer's user and role maps (names of bench/scale.py)."""

    def credentials(i: int) -> dict[str, Any]:
        return {"salt": i.to_bytes(32, "big"), "hash": (i * 7).to_bytes(64, "big"), "iterations": 10_000}

    role_map = {
        f"role-{j:04d}": {
            "name": f"role-{j:04d}",
            "permissions": [
                {
                    "resourceAction": {
                        "resource": {"name": f"ds-{j}.*", "type": "DATASOURCE"},
                        "action": "READ",
                    },
                    "resourceNamePattern": f"ds-{j}.*",
                }
            ],
        }
        for j in range(roles)
    }
    names = [f"user-{i:05d}" for i in range(users)]
    authn = {name: {"name": name, "credentials": credentials(i)} for i, name in enumerate(names)}
    authz = {
        "userMap": {name: {"name": name, "roles": [f"role-{i % roles:04d}"]} for i, name in enumerate(names)},
        "roleMap": role_map,
    }
    return authn, authz


def as_json(value: Any) -> Any:
    """The same maps with bytes as base64 text, as the JSON endpoints give them."""
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def cpu(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    total = 0.0
    for _ in range(repeat):
        start = time.process_time()
        fn()
        total += time.process_time() - start
    return total / repeat


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--roles", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--label", default="")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "snapshot-cost.md")
    args = parser.parse_args()

    authn, authz = maps(args.users, args.roles)
    authn_bytes, authz_bytes = smile_encode(authn), smile_encode(authz)
    authn_json, authz_json = json.dumps(as_json(authn)), json.dumps(as_json(authz))

    def decode() -> tuple[Any, Any]:
        return _base64_credentials(smile_decode(authn_bytes)), smile_decode(authz_bytes)

    decoded = decode()
    if decoded != (json.loads(authn_json), json.loads(authz_json)):
        raise SystemExit("the Smile and JSON maps differ: the comparison would be meaningless")

    def validate() -> DruidSnapshot:
        users = wire._AUTHENTICATOR_MAP.validate_python(decoded[0])
        authz_maps = wire._CACHED_USERS.validate_python(decoded[1])
        return DruidSnapshot(
            authn=users, users=authz_maps.user_map, roles=authz_maps.role_map, group_mappings={}
        )

    previous, current = validate(), validate()
    steps = [
        ("Smile decode of both maps (`smile_decode`, salt and hash to base64)", cpu(decode, args.repeat)),
        (
            "validation into the wire models (`_AUTHENTICATOR_MAP`, `_CACHED_USERS`)",
            cpu(validate, args.repeat),
        ),
        (
            "comparison with the previous snapshot (`changed_entries`)",
            cpu(lambda: changed_entries(previous, current), args.repeat),
        ),
    ]

    def digests() -> list[bytes]:
        # What ``CoordinatorClient._read_smile`` computes of every body, to tell an unchanged one.
        return [hashlib.blake2b(body, digest_size=16).digest() for body in (authn_bytes, authz_bytes)]

    steps.append(("digests of both bodies (`_read_smile`, every read)", cpu(digests, args.repeat)))

    def unchanged() -> object:
        # What a resync of an unchanged store costs instead: the digests, maps of the caller's
        # own over the parse kept (as `_read_smile` and its callers make them; this repeats
        # those few lines rather than serving HTTP), and the comparison, which finds the very
        # same entries.
        same = DruidSnapshot(
            authn=dict(current.authn or {}),
            users=dict(current.users),
            roles=dict(current.roles),
            group_mappings={},
        )
        return digests(), changed_entries(current, same)

    baseline = cpu(lambda: (json.loads(authn_json), json.loads(authz_json)), args.repeat)
    rows = [
        *steps,
        ("a changed store: the four above", sum(seconds for _, seconds in steps)),
        (
            "an unchanged store instead: the digests, copies of the kept maps, comparison",
            cpu(unchanged, args.repeat),
        ),
        ("baseline: `json.loads` of the same maps as JSON (C)", baseline),
    ]
    # The operator code measured is the one imported (``PYTHONPATH`` may name another worktree).
    code = Path(wire.__file__).resolve().parent
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=code
    ).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "."], capture_output=True, text=True, cwd=code)
    commit += " (uncommitted changes)" if dirty.stdout.strip() else ""
    lines = [
        f"## {args.users:,} users, {args.roles:,} roles: {args.label or commit}",
        "",
        f"- command: `.venv/bin/python bench/snapshot_cost.py --users {args.users} --roles {args.roles}"
        f"{' --label ...' if args.label else ''}`",
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; operator code {commit} ({code}); {platform.platform()}, "
        f"Python {platform.python_version()}",
        f"- Smile: {len(authn_bytes):,} + {len(authz_bytes):,} bytes; CPU time per resync, mean of {args.repeat} runs",
        "",
        "| step | CPU per resync | against `json.loads` of the same maps |",
        "|---|---:|---:|",
        *(f"| {name} | {seconds * 1000:.0f} ms | {seconds / baseline:.2f}x |" for name, seconds in rows),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.out.exists():
        args.out.write_text(
            "# What reading a whole cluster costs the operator (`bench/snapshot_cost.py`)\n\n"
        )
    with args.out.open("a") as out:
        out.write(text + "\n")


if __name__ == "__main__":
    main()
