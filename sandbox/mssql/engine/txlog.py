"""A database's transaction log: records with SQL Server-shaped LSNs, truncation and pins.

An LSN is ``vlf_sequence * 10**15 + block_offset * 10**5 + slot`` as SQL Server prints it in decimal
(numeric(25,0); the values exceed 2**64). A record is a logical redo entry: the SQLite statements a
committed write executed, plus the clock and random seed it ran with, so replay is deterministic.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

VLF_FACTOR = 10**15
BLOCK_FACTOR = 10**5
BLOCKS_PER_VLF = 40_000  # a VLF holds this many 512-byte blocks (~20 MB) before the sequence moves on


def make_lsn(vlf: int, block: int, slot: int) -> int:
    return vlf * VLF_FACTOR + block * BLOCK_FACTOR + slot


def split_lsn(lsn: int) -> tuple[int, int, int]:
    return lsn // VLF_FACTOR, (lsn // BLOCK_FACTOR) % (VLF_FACTOR // BLOCK_FACTOR), lsn % BLOCK_FACTOR


@dataclass
class LogRecord:
    lsn: int
    kind: str  # "write" (redo ops), "checkpoint", "backup", "recovery"
    ops: list = field(default_factory=list)  # [(sqlite_sql, params), ...]
    time: str = ""
    seed: int = 0
    size: int = 0

    def to_json(self) -> dict:
        return {
            "lsn": str(self.lsn),
            "kind": self.kind,
            "ops": self.ops,
            "time": self.time,
            "seed": self.seed,
        }

    @classmethod
    def from_json(cls, data: dict) -> LogRecord:
        ops = [(sql, list(params)) for sql, params in data["ops"]]
        return cls(int(data["lsn"]), data["kind"], ops, data["time"], data["seed"])


class TransactionLog:
    """Append-only record list; ``next_lsn`` is the LSN the next record receives."""

    def __init__(self, next_lsn: int):
        self.records: list[LogRecord] = []
        self.next_lsn = next_lsn
        self.pins: Counter[int] = Counter()
        self.lock = threading.RLock()
        self.bytes_written = 0

    def append(self, kind: str, ops: list | None = None, time: str = "", seed: int = 0) -> LogRecord:
        with self.lock:
            size = 64 + sum(len(sql) + len(repr(params)) for sql, params in ops or [])
            record = LogRecord(self.next_lsn, kind, ops or [], time, seed, size)
            self.records.append(record)
            self.bytes_written += size
            self.next_lsn = self._advance(self.next_lsn, size)
            return record

    @staticmethod
    def _advance(lsn: int, size: int) -> int:
        """Next LSN after a record of ``size`` bytes: the slot moves, and the block once it fills."""
        vlf, block, slot = split_lsn(lsn)
        slot += 1
        if slot > 60 or size > 4096:
            block, slot = block + 1 + size // 512, 1
        if block >= BLOCKS_PER_VLF:
            vlf, block = vlf + 1, 16
        return make_lsn(vlf, block, slot)

    def between(self, first: int, last: int) -> list[LogRecord]:
        """Records with ``first <= lsn < last``."""
        with self.lock:
            return [r for r in self.records if first <= r.lsn < last]

    def truncate_before(self, lsn: int) -> None:
        """Drop records older than ``lsn`` unless a running backup pinned them."""
        with self.lock:
            if self.pins:
                lsn = min(lsn, min(self.pins))
            keep = next((i for i, r in enumerate(self.records) if r.lsn >= lsn), len(self.records))
            del self.records[:keep]

    def pin(self, lsn: int) -> None:
        with self.lock:
            self.pins[lsn] += 1

    def unpin(self, lsn: int) -> None:
        with self.lock:
            self.pins[lsn] -= 1
            if self.pins[lsn] <= 0:
                del self.pins[lsn]

    def size_bytes(self) -> int:
        with self.lock:
            return sum(r.size for r in self.records)


class OwnerLock:
    """A re-entrant lock owned by a session (not a thread): a transaction spans batches/threads."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.owner: object | None = None
        self.depth = 0

    def acquire(self, owner: object, cancel: threading.Event | None = None) -> None:
        with self.cond:
            while self.owner is not None and self.owner is not owner:
                if cancel is not None and cancel.is_set():
                    from sandbox.mssql.engine.errors import cancelled

                    raise cancelled()
                self.cond.wait(0.05)
            self.owner = owner
            self.depth += 1

    def release(self, owner: object) -> None:
        with self.cond:
            if self.owner is not owner:
                return
            self.depth -= 1
            if self.depth <= 0:
                self.owner, self.depth = None, 0
                self.cond.notify_all()

    def release_all(self, owner: object) -> None:
        with self.cond:
            if self.owner is owner:
                self.owner, self.depth = None, 0
                self.cond.notify_all()
