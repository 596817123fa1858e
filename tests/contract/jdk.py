"""Run a single-file Java program of this directory once over many strings (the JDK as an oracle).

The strings travel as the hex of their UTF-16 code units, one per line, so that any character
(line breaks and lone surrogates included) survives; the program answers one line per input.
A missing ``java`` fails the test rather than skipping it: the contract would not be checked.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def run_oracle(
    program: str, inputs: Sequence[str], *, args: Sequence[str] = (), timeout: float = 180
) -> list[str]:
    java = shutil.which("java")
    if java is None:
        pytest.fail(f"java is not on PATH: this contract needs a JDK (11+) to run {program}")
    stdin = "".join(text.encode("utf-16-be", "surrogatepass").hex() + "\n" for text in inputs)
    result = subprocess.run(
        [java, str(HERE / program), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{program} failed ({result.returncode}):\n{result.stderr[-3000:]}"
    lines = result.stdout.split("\n")[:-1]
    assert len(lines) == len(inputs), result.stdout[-2000:]
    return lines
