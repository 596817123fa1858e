"""Process plumbing shared by the local launchers (control plane, real Druid, operator).

Free loopback ports, private files, log tails, and starting/stopping child processes in a
way that never leaves one running.
"""

from __future__ import annotations

import os
import socket
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Self


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now; all sockets are held until the end so the ports are distinct."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]


def write_private(path: Path, text: str) -> None:
    """Write a file holding credentials readable by the owner only (no window with wider permissions)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def spawn(command: Sequence[str], log: IO[bytes], cwd: Path) -> subprocess.Popen[bytes]:
    """Start a child with its output in ``log``. A new session keeps a terminal's Ctrl-C away
    from it, so the launcher can stop its children in order (a server before its storage)."""
    return subprocess.Popen(
        list(command),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        start_new_session=True,
    )


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, wait up to ``timeout``, then SIGKILL; always reaped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    # Reap after SIGKILL too; the bound only matters if the kernel cannot kill it.
    process.wait(timeout=10)


class Launched(ABC):
    """A launcher of local processes: ``start()`` / ``stop()``, or a ``with`` block around them.
    ``stop()`` must be safe to call twice and after a failed ``start()``."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
