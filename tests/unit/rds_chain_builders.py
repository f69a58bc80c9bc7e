"""Builders and hypothesis strategies for restore chains with realistic LSNs (> 2**64)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from hypothesis import strategies as st

from rds_migration.chain import BackupRecord, BackupType

DB_GUID = "6f9619ff-8b86-d011-b42d-00c04fc964ff"
FORK_GUID = "0b0e2a4c-1c53-4d0a-9d7a-5d0e9e0d1a11"
#: A realistic LSN: VLF 123456 * 10**15 (beyond 2**64 ~ 1.8e19).
BASE_LSN = 123_456 * 10**15


def guid(n: int) -> str:
    """Deterministic distinct GUIDs for tests."""
    return str(uuid.UUID(int=(0xABCDEF << 96) + n))


def full(first: int, last: int, *, checkpoint: int | None = None, n: int = 1, **kw) -> BackupRecord:
    values = dict(
        file_name=f"Sales_FULL_{n:04d}.bak",
        backup_type=BackupType.FULL,
        first_lsn=first,
        last_lsn=last,
        checkpoint_lsn=checkpoint if checkpoint is not None else first,
        database_backup_lsn=BASE_LSN,
        backup_set_uuid=guid(1000 + n),
        database_guid=DB_GUID,
        recovery_fork_guid=FORK_GUID,
        size_bytes=10 * 2**30,
    )
    values.update(kw)
    return BackupRecord(**values)


def diff(base: BackupRecord, first: int, last: int, *, n: int = 1, **kw) -> BackupRecord:
    values = dict(
        file_name=f"Sales_DIFF_{n:04d}.diff",
        backup_type=BackupType.DIFF,
        first_lsn=first,
        last_lsn=last,
        checkpoint_lsn=first,
        database_backup_lsn=base.checkpoint_lsn,
        differential_base_lsn=base.checkpoint_lsn,
        differential_base_guid=base.backup_set_uuid,
        backup_set_uuid=guid(2000 + n),
        database_guid=base.database_guid,
        recovery_fork_guid=base.recovery_fork_guid,
        size_bytes=2**30,
    )
    values.update(kw)
    return BackupRecord(**values)


def log(first: int, last: int, *, n: int = 1, **kw) -> BackupRecord:
    values = dict(
        file_name=f"Sales_LOG_{n:05d}.trn",
        backup_type=BackupType.LOG,
        first_lsn=first,
        last_lsn=last,
        checkpoint_lsn=first,
        database_backup_lsn=BASE_LSN,
        backup_set_uuid=guid(10_000 + n),
        database_guid=DB_GUID,
        recovery_fork_guid=FORK_GUID,
        size_bytes=2**20,
    )
    values.update(kw)
    return BackupRecord(**values)


def log_chain(start: int, lengths: list[int], *, first_n: int = 1) -> list[BackupRecord]:
    """Contiguous logs: each starts where the previous ended."""
    logs, lsn = [], start
    for i, length in enumerate(lengths):
        logs.append(log(lsn, lsn + length, n=first_n + i))
        lsn += length
    return logs


@dataclass
class Chain:
    """A generated valid chain and the plan expected from it."""

    full: BackupRecord
    diffs: list[BackupRecord]
    logs: list[BackupRecord]

    @property
    def records(self) -> list[BackupRecord]:
        return [self.full, *self.diffs, *self.logs]

    @property
    def chosen_diff(self) -> BackupRecord | None:
        return max(self.diffs, key=lambda d: d.last_lsn) if self.diffs else None

    @property
    def expected_logs(self) -> list[BackupRecord]:
        anchor = self.chosen_diff or self.full
        return [lg for lg in self.logs if lg.last_lsn > anchor.last_lsn]

    @property
    def expected_steps(self) -> list[BackupRecord]:
        diff_step = [self.chosen_diff] if self.chosen_diff else []
        return [self.full, *diff_step, *self.expected_logs]


@st.composite
def chains(draw, max_logs: int = 12, max_diffs: int = 3) -> Chain:
    """Any valid chain: a full, optional diffs, logs (some before or concurrent with the full)."""
    start = draw(st.integers(10**20, 10**24))
    lengths = draw(st.lists(st.integers(1, 10**12), min_size=0, max_size=max_logs))
    logs = log_chain(start, lengths)
    if logs and draw(st.booleans()):
        logs[0] = replace(logs[0], begins_log_chain=True)  # the chain may begin at or before the full
    end = logs[-1].last_lsn if logs else start + 10**9
    # The full ends anywhere in the logged range: a log may be concurrent with it, earlier logs skipped.
    full_last = draw(st.integers(start, max(start, end - 1)))
    full_first = full_last - draw(st.integers(0, 10**10))
    checkpoint = draw(st.integers(full_first, full_last))
    the_full = full(full_first, full_last, checkpoint=checkpoint, database_backup_lsn=start - 1)
    diff_ends = draw(st.lists(st.integers(full_last + 1, end + 10**6), max_size=max_diffs, unique=True))
    diffs = [
        diff(the_full, d_last - draw(st.integers(0, 10**9)), d_last, n=i + 1)
        for i, d_last in enumerate(diff_ends)
    ]
    diffs = [replace(d, first_lsn=max(d.first_lsn, 0), checkpoint_lsn=max(d.first_lsn, 0)) for d in diffs]
    return Chain(the_full, diffs, logs)
