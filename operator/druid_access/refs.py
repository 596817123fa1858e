"""What an object depends on (``Refs``): a pass finds it out, and ``Loops`` wakes the object
when one of those changes (a Secret, a role, its target's health or snapshot entry)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Refs:
    """What a resource depends on, so a change there wakes it up."""

    target: str | None = None
    target_type: str = ""
    secrets: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    entry: tuple[str, str] | None = None  # (family, remote name) on the target
