"""POST manifests to the kube-apiserver, N at a time, from a process of its own.

``scale.py`` runs its bulk creates through this: in the benchmark's own process they would
share one interpreter lock with the fake Coordinator (served from a thread there) and slow it
while the operator converges, a load the raw-API floor, measured without creates, never has.
A real Coordinator is a process of its own on other machines.

Input on stdin, one JSON array per line: ``[collection path, manifest]``. The apiserver's URL,
CA file and bearer token come from ``KUBE_URL``, ``KUBE_CA`` and ``KUBE_TOKEN``. Once every
line is read and the client is ready, it prints the wall-clock time of its first request
(``started <time.time()>``); at the end, ``created <count>``. A refused create ends it with exit
code 1 and the refusal on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
import time
from typing import Any


async def post_all(items: list[tuple[str, Any]], concurrency: int) -> int:
    import httpx

    context = ssl.create_default_context(cafile=os.environ["KUBE_CA"])
    headers = {"Authorization": f"Bearer {os.environ['KUBE_TOKEN']}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    pending = iter(items)
    created = 0
    async with httpx.AsyncClient(
        base_url=os.environ["KUBE_URL"], verify=context, headers=headers, timeout=120, limits=limits
    ) as client:

        async def worker() -> None:
            nonlocal created
            for path, doc in pending:  # one shared iterator
                response = await client.post(path, content=json.dumps(doc))
                if response.status_code != 201:
                    raise RuntimeError(
                        f"creating {doc['metadata']['name']}: HTTP {response.status_code} {response.text[:300]}"
                    )
                created += 1

        print(f"started {time.time()!r}", flush=True)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return created


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    items = [(str(path), doc) for path, doc in (json.loads(line) for line in sys.stdin if line.strip())]
    try:
        created = asyncio.run(post_all(items, args.concurrency))
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"created {created}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
