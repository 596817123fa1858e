"""CPU time from /proc, shared by the benchmarks (Linux only)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

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


class Proc(NamedTuple):
    name: str
    parent: int
    kernel: bool  # a kernel thread
    own: float  # its CPU seconds so far
    reaped: float  # those of its children that exited and were reaped


Reading = dict[int, Proc]
_PF_KTHREAD = 0x00200000


def processes() -> Reading:
    """Every process: its name, parent, own CPU seconds so far and those of its children that
    exited and were reaped (a child that ran and exited in between shows there)."""
    found: Reading = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
        found[int(entry.name)] = Proc(
            name,
            int(fields[1]),
            bool(int(fields[6]) & _PF_KTHREAD),
            (utime + stime) / CLK_TCK,
            (cutime + cstime) / CLK_TCK,
        )
    return found


def cpu_by_name(before: Reading, after: Reading, names: dict[int, str]) -> dict[str, float]:
    """CPU seconds spent between two ``processes()`` readings, summed per name: ``names`` names
    some processes by pid, kernel threads go together, the others by their command name. The
    children a process reaped in between are counted apart ("<name>, exited children"), less
    what those that were already running had spent before. A process that exited without being
    reaped by one still running is not counted."""
    spent: dict[str, float] = {}

    def label(pid: int, proc: Proc) -> str:
        return names.get(pid) or ("kernel threads" if proc.kernel else proc.name)

    def add(key: str, seconds: float) -> None:
        spent[key] = spent.get(key, 0.0) + seconds

    for pid, proc in after.items():
        start = before.get(pid)
        if start is None or start.name != proc.name:
            start = Proc(proc.name, proc.parent, proc.kernel, 0.0, 0.0)
        add(label(pid, proc), proc.own - start.own)
        add(f"{label(pid, proc)}, exited children", proc.reaped - start.reaped)
    for pid, proc in before.items():
        parent = after.get(proc.parent)
        if pid not in after and parent is not None:  # reaped in between: its whole life counted
            add(f"{label(proc.parent, parent)}, exited children", -(proc.own + proc.reaped))
    return {key: seconds for key, seconds in spent.items() if seconds > 0}


def by_process(spent: dict[str, float], top: int = 6) -> str:
    """The largest figures of ``cpu_by_name``, the rest summed."""
    ranked = sorted(spent.items(), key=lambda kv: -kv[1])
    shown = [f"{name} {cpu:.1f}" for name, cpu in ranked[:top]]
    rest = sum(cpu for _, cpu in ranked[top:])
    return ", ".join(shown + ([f"others {rest:.1f}"] if rest >= 0.05 else [])) + " CPU-s"
