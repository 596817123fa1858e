"""``druid-access-testing druid``: a real Coordinator in the foreground, of the release asked for."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from druid_access.testing.druid import NEWEST_VERSION, SUPPORTED_VERSIONS
from druid_access.testing.environment import wait_for

READY = re.compile(r"Druid (\S+) Coordinator ready at (http://127\.0\.0\.1:\d+)")


def druid_command(directory: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "druid_access.testing.cli",
        "druid",
        "--dir",
        str(directory),
        "--admin-password",
        "cli-pw",
        *extra,
    ]


@pytest.mark.parametrize("asked", [None, SUPPORTED_VERSIONS[0]])
def test_runs_the_release_asked_for_until_sigterm(asked: str | None, tmp_path: Path) -> None:
    command = druid_command(tmp_path / "druid", *(["--druid-version", asked] if asked else []))
    output = tmp_path / "output.txt"
    with output.open("wb") as sink:
        # Its own process group: a failed test kills the command's Java children along with it.
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        match = wait_for(
            lambda: READY.search(output.read_text(errors="replace")) or _exited(process),
            timeout=180,
            what="the Coordinator to say it is ready",
        )
        assert isinstance(match, re.Match), output.read_text(errors="replace")[-2000:]
        assert match.group(1) == (asked or NEWEST_VERSION)
        status = httpx.get(f"{match.group(2)}/status", auth=("admin", "cli-pw"), timeout=10).json()
        assert status["version"] == match.group(1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def _exited(process: subprocess.Popen[bytes]) -> bool:
    return process.poll() is not None


def test_an_unsupported_release_is_refused_without_starting_anything(tmp_path: Path) -> None:
    result = subprocess.run(
        druid_command(tmp_path / "druid", "--druid-version", "0.20.0"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--druid-version must be one of 27.0.0, 37.0.0" in result.stderr
    assert not (tmp_path / "druid").exists()
