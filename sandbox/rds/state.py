"""The RDS stand-in's state on disk: one JSON document, replaced atomically on every change.

Real RDS keeps its migration tasks while clients come and go; the sandbox must too, across a restart
with the same state dir (a migration lasts weeks).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATE_VERSION = 1


class StateFileError(ValueError):
    """The state file cannot be read; the message names it."""


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` through a temporary file and a rename (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump({"version": STATE_VERSION, **state}, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_state(path: Path) -> dict[str, Any] | None:
    """The saved state, or None when there is none yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        state = json.loads(text)
    except ValueError as exc:
        raise StateFileError(f"{path}: not valid JSON ({exc}); remove it to start afresh") from exc
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise StateFileError(f"{path}: not an RDS stand-in state of version {STATE_VERSION}")
    return state
