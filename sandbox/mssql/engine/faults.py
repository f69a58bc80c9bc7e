"""Faults injected into BACKUP statements: the backup's session killed, or its connection dropped.

What happens to a running BACKUP when something goes wrong around it:

- ``kill``: a DBA (or a monitoring job) runs ``KILL <spid>`` on the backup's session. SQL Server stops
  the backup, deletes nothing from msdb because nothing was recorded, and closes the connection: the
  client sees its connection drop (Microsoft, "KILL (Transact-SQL)").
- ``drop``: the network between the client and the server fails while the backup runs. The server
  notices when it next writes to the client (a ``STATS`` progress message) and aborts the backup.
- ``drop_after_commit``: the connection fails after the backup was written and recorded in msdb, before
  the client read the answer. Which of the two a real dropped connection gives depends on when it
  drops relative to the last progress message: both happen, and the client cannot tell them apart.

Faults are armed one at a time (:meth:`BackupFaults.next_backup`, for tests and the chaos controller)
or drawn at ``backup_fault_rate`` from a seeded generator (instance config ``faults:``). Every fault
that fired is listed in :attr:`BackupFaults.injected`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import random
import threading
from collections.abc import Mapping
from typing import Any

#: What a backup fault does (see the module docstring).
BACKUP_FAULTS = ("kill", "drop", "drop_after_commit")
#: Which BACKUP statement a fault applies to.
BACKUP_STATEMENTS = ("DATABASE", "LOG")
FAULT_KEYS = {"backup_fault_rate", "backup_fault_kinds", "seed"}


@dataclasses.dataclass(frozen=True)
class ArmedFault:
    """A one-shot fault waiting for the next matching BACKUP.

    :param kind: one of :data:`BACKUP_FAULTS`.
    :param database: only a backup of this database (case-insensitive); None = any.
    :param statement: ``DATABASE`` (full or differential) or ``LOG``; None = either.
    :param device: only a backup to a device (file path) matching this pattern (fnmatch, case-insensitive,
        e.g. ``*_0.trn``); None = any.
    """

    kind: str
    database: str | None = None
    statement: str | None = None
    device: str | None = None

    def matches(self, database: str, statement: str, device: str) -> bool:
        return (
            (self.database is None or self.database.lower() == database.lower())
            and (self.statement is None or self.statement == statement)
            and (self.device is None or fnmatch.fnmatch(device.lower(), self.device.lower()))
        )


class BackupFaults:
    """The fault state of one instance (thread-safe).

    :param rate: probability that a BACKUP gets a fault drawn from ``kinds``.
    :param kinds: the faults the rate draws from.
    :param seed: seed of the generator drawing them.
    """

    def __init__(self, rate: float = 0.0, kinds: list[str] | None = None, seed: int | None = None) -> None:
        self.rate = rate
        self.kinds = list(kinds or BACKUP_FAULTS)
        self._random = random.Random(seed)
        self._armed: list[ArmedFault] = []
        self._lock = threading.Lock()
        self.injected: list[dict[str, Any]] = []

    @classmethod
    def from_config(cls, data: Mapping[str, Any] | None) -> BackupFaults:
        """``faults: {backup_fault_rate: 0.1, backup_fault_kinds: [kill, drop], seed: 7}``; ValueError names
        the field."""
        data = dict(data or {})
        unknown = sorted(set(data) - FAULT_KEYS)
        if unknown:
            raise ValueError(f"faults: unknown field(s) {unknown}; known: {sorted(FAULT_KEYS)}")
        rate = data.get("backup_fault_rate", 0.0)
        if not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
            raise ValueError(f"faults.backup_fault_rate: {rate!r} is not a probability between 0 and 1")
        kinds = data.get("backup_fault_kinds") or list(BACKUP_FAULTS)
        if not isinstance(kinds, list) or not kinds:
            raise ValueError("faults.backup_fault_kinds: expected a non-empty list")
        for kind in kinds:
            _check_kind(kind, "faults.backup_fault_kinds")
        seed = data.get("seed")
        if seed is not None and not isinstance(seed, int):
            raise ValueError(f"faults.seed: expected an integer, got {seed!r}")
        return cls(float(rate), list(kinds), seed)

    def next_backup(
        self,
        kind: str,
        *,
        database: str | None = None,
        statement: str | None = None,
        device: str | None = None,
    ) -> None:
        """Make the next BACKUP matching ``database``/``statement``/``device`` fail with ``kind`` (one shot)."""
        _check_kind(kind, "kind")
        if statement is not None and statement not in BACKUP_STATEMENTS:
            raise ValueError(f"statement: {statement!r} is not one of {list(BACKUP_STATEMENTS)}")
        with self._lock:
            self._armed.append(ArmedFault(kind, database, statement, device))

    @property
    def armed(self) -> list[ArmedFault]:
        with self._lock:
            return list(self._armed)

    def take(self, database: str, statement: str, device: str) -> str | None:
        """The fault for a BACKUP that is starting (an armed one first, else drawn at the rate), or None."""
        with self._lock:
            kind = None
            for fault in self._armed:
                if fault.matches(database, statement, device):
                    self._armed.remove(fault)
                    kind = fault.kind
                    break
            if kind is None and self.rate and self._random.random() < self.rate:
                kind = self._random.choice(self.kinds)
            if kind is not None:
                self.injected.append(
                    {"kind": kind, "database": database, "statement": statement, "device": device}
                )
            return kind


def _check_kind(kind: Any, field: str) -> None:
    if kind not in BACKUP_FAULTS:
        raise ValueError(f"{field}: {kind!r} is not one of {list(BACKUP_FAULTS)}")
