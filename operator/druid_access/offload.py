"""CPU work kept off the event loop, and memory handed back to the system after it.

Hashing a password (PBKDF2) and decoding a whole target's snapshot take tens to hundreds of
milliseconds; on the event loop they would stall every watch and every pass. They run on a
small pool of threads of their own: two, not asyncio's default of up to 32, because glibc gives
each thread that allocates its own malloc arena, and arenas hold on to memory.

After a snapshot is replaced, the old one's memory is free but still mapped: ``trim()`` asks
glibc to return free pages to the system (``malloc_trim``), so the resident size follows what
is live. Elsewhere (musl, macOS) it does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="druid-access-cpu")


async def in_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    return await asyncio.get_running_loop().run_in_executor(_POOL, functools.partial(fn, *args, **kwargs))


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_TRIM = _malloc_trim()


def trim() -> None:
    """Return free heap pages to the system (glibc); a no-op where that is not available."""
    if _TRIM is not None:
        _TRIM(0)
