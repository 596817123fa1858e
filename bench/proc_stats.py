"""CPU time from /proc, shared by the benchmarks (Linux only)."""

from __future__ import annotations

import os
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """CPU seconds the whole machine (all cores) spent outside idle and iowait so far."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / CLK_TCK


def process_cpu(pid: int | None) -> float:
    """utime + stime of a process so far, in seconds (0 when it is not known or gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def busy_share(busy: float, seconds: float) -> str:
    """``busy`` CPU seconds against what every core could have given in ``seconds``, and the
    same share put as a time: ``busy`` spread evenly over the cores. Busy time includes the
    hypervisor's steal time on a shared machine."""
    cores = os.cpu_count() or 1
    if not seconds:
        return "n/a"
    return (
        f"{busy:.1f} of {seconds * cores:.1f} CPU-s ({busy / (seconds * cores):.0%}; "
        f"at least {busy / cores:.1f} s on {cores} cores)"
    )
