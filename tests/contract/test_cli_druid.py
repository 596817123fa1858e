"""``druid-access druid``: a real Coordinator in the foreground, of the release asked for."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from druid_access.testing.druid import NEWEST_VERSION, SUPPORTED_VERSIONS

READY = re.compile(r"Druid (\S+) Coordinator ready at (http://127\.0\.0\.1:\d+)")


def druid_command(directory: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "druid_access.cli",
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
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        try:
            assert process.stdout is not None
            deadline = time.monotonic() + 180
            match = None
            while match is None and time.monotonic() < deadline:
                line = process.stdout.readline()
                if not line:
                    break
                match = READY.search(line)
            assert match is not None, "the Coordinator never said it was ready"
            assert match.group(1) == (asked or NEWEST_VERSION)
            status = httpx.get(f"{match.group(2)}/status", auth=("admin", "cli-pw"), timeout=10).json()
            assert status["version"] == match.group(1)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)


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
