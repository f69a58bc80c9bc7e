"""Where a migration stands and what to ship next, from ground truth: msdb history and RDS's file list.

Pure functions over plain values (no hook, no Airflow), so every rule is unit-tested here:

- which backups may be shipped: ours, plus other jobs' backups *adopted* into the chain (from folders the
  config names, or copied by the user into the migration's backup folder);
- what RDS has restored, what is still in flight, what failed, and which file RDS lists that nobody knows;
- what is pending, in LSN order — computed from LSNs (restore-chain rules 3 and 6), never from start
  LSNs, times or file names — and, when the chain cannot continue, why (a gap, a fork...) and which
  backups of other jobs hold the missing log, *before* anything is uploaded.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rds_migration.chain import (
    BackupRecord,
    BackupType,
    ChainError,
    LsnGapError,
    RestorePoint,
    apply,
    plan_restore,
)

#: Where a shippable backup comes from.
OURS = "ours"
ADOPTED = "adopted"
COPIED = "copied"


@dataclass(frozen=True)
class Shippable:
    """A backup the migration can import.

    :param record: its msdb record.
    :param import_name: the file name it has in OSS and in RDS's file list.
    :param worker_path: where an Airflow worker reads the file.
    :param origin: ``ours``, ``adopted`` (another job's folder named in the config) or ``copied`` (another
        job's backup the user copied into the migration's backup folder).
    """

    record: BackupRecord
    import_name: str
    worker_path: str
    origin: str = OURS

    @property
    def label(self) -> str:
        who = "" if self.origin == OURS else f", {self.origin} from {self.record.physical_device_name!r}"
        return f"{self.record.label}{who}"


#: How RDS reports a file, reduced to what the chain needs.
RESTORED = "restored"
IN_FLIGHT = "in_flight"
FAILED = "failed"


@dataclass(frozen=True)
class ListedFile:
    """One file of the migration task as RDS lists it (``DescribeOssDownloads``), normalised.

    :param name: the file name (last part of the key: RDS may list the bare name or the whole key).
    :param state: :data:`RESTORED`, :data:`IN_FLIGHT` or :data:`FAILED`.
    :param description: RDS's description (the reason of a failure).
    :param created: when RDS registered the import (a file imported again is listed again).
    :param status: RDS's own status (``DownloadFailed``, ``Restored``...), which tells a failure that
        another import of the same file can mend from one that it cannot.
    """

    name: str
    state: str
    description: str = ""
    created: datetime | None = None
    status: str = ""


#: How often one log or differential backup is imported at most: the first import and two more after
#: failures that another import can mend (:func:`is_transient_failure`). Each one spends an import of
#: the day's quota.
MAX_IMPORTS_PER_FILE = 3
# SQL Server's messages for a read of the backup that failed in the operating system (3203 "Read on
# "<file>" failed: <OS error>", 3201 "Cannot open backup device ... Operating system error ..."): the
# downloaded copy or the disk under it, not the backup itself.
_IO_FAILURE = re.compile(r'Read on ".*" failed|Operating system error', re.IGNORECASE)


def is_transient_failure(status: str, description: str) -> bool:
    """Whether importing the same file again can succeed after RDS failed on it.

    ``DownloadFailed``: the transfer from OSS broke off, or the object was missing (the shipping step
    uploads it again first). ``RestoreFailed`` with an operating-system read error: RDS's local copy or
    disk. Never a chain error (LSN too recent/too early), a failed verification (a damaged or foreign
    file) or a failed check (a full where a log belongs): those fail the same way every time.
    """
    if status == "DownloadFailed":
        return True
    return status == "RestoreFailed" and bool(_IO_FAILURE.search(description or ""))


@dataclass
class ChainState:
    """Where the migration stands.

    :param migrate_task_id: the RDS migration task, or None before the full is imported.
    :param restored: the restore point of the files RDS reports restored.
    :param in_flight: files imported and still being processed by RDS, in chain order.
    :param pending: backups RDS has not been asked to import yet, in the order to import them.
    :param skipped: backups that will never be imported, with the reason (empty log backups).
    :param failed: files RDS failed on for good, with its description.
    :param reimport: files RDS failed on in a way another import can mend (:func:`is_transient_failure`),
        with its description: they are pending again, at their place in the chain.
    :param unknown: files RDS lists that neither msdb nor the ledger knows.
    :param blocked: why the chain cannot continue past ``pending`` (None when it can).
    :param culprits: other jobs' backups that hold the log a gap misses.
    """

    migrate_task_id: str | None
    restored: RestorePoint | None
    in_flight: list[Shippable] = field(default_factory=list)
    pending: list[Shippable] = field(default_factory=list)
    skipped: list[tuple[Shippable, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    reimport: list[tuple[str, str]] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    blocked: ChainError | None = None
    culprits: list[BackupRecord] = field(default_factory=list)

    @property
    def chain_head(self) -> RestorePoint | None:
        """The restore point once every in-flight file is restored: the base for the next import."""
        point = self.restored
        for item in self.in_flight:
            point = apply(point, item.record)
        return point


def _by_time(listed: ListedFile) -> tuple[bool, datetime]:
    return (listed.created is not None, listed.created or datetime.min.replace(tzinfo=UTC))


def latest_per_name(listed: Iterable[ListedFile]) -> list[ListedFile]:
    """A file imported again after a failure is listed twice: its latest entry counts."""
    return list({f.name: f for f in sorted(listed, key=_by_time)}.values())


def build_chain_state(
    migrate_task_id: str | None,
    listed: Iterable[ListedFile],
    shippable: Iterable[Shippable],
    known: Mapping[str, BackupRecord],
    foreign: Iterable[BackupRecord] = (),
) -> ChainState:
    """Rebuild the chain state.

    :param migrate_task_id: the migration task (None: nothing imported yet, nothing pending).
    :param listed: the task's files as RDS lists them.
    :param shippable: every backup that may be imported (ours and adopted), any order.
    :param known: every file name RDS could list -> its record (shippable names, other jobs' original file
        names for files someone imported by hand, records kept in the ledger when msdb was purged).
    :param foreign: other jobs' backups that are not shippable, to name them when a gap appears.
    """
    state = ChainState(migrate_task_id, None)
    if migrate_task_id is None:
        return state
    by_name = {s.import_name: s for s in shippable}
    listed = list(listed)
    imports = Counter(f.name for f in listed)
    files = latest_per_name(listed)
    imported: set[str] = set()
    chain: list[tuple[ListedFile, Shippable]] = []
    for f in files:
        record = by_name[f.name].record if f.name in by_name else known.get(f.name)
        if f.state == FAILED:
            mendable = (
                f.name in by_name
                and by_name[f.name].record.backup_type is not BackupType.FULL
                and is_transient_failure(f.status, f.description)
                and imports[f.name] < MAX_IMPORTS_PER_FILE
            )
            if mendable:
                state.reimport.append((f.name, f.description))
            else:
                state.failed.append((f.name, f.description))
            continue
        if record is None:
            state.unknown.append(f.name)
            continue
        imported.add(record.backup_set_uuid)
        item = by_name.get(f.name) or Shippable(record, f.name, "", origin="imported by hand")
        chain.append((f, item))
    chain.sort(key=lambda pair: (pair[1].record.backup_type is not BackupType.FULL, pair[1].record.first_lsn))
    for f, item in chain:
        if f.state == RESTORED and not state.in_flight:
            state.restored = apply(state.restored, item.record)
        else:
            state.in_flight.append(item)
    head = state.chain_head
    if head is None:
        return state  # the full is not listed yet: nothing can follow it
    failed_names = {name for name, _ in state.failed}
    candidates = {
        s.record.backup_set_uuid: s
        for s in shippable
        if s.record.backup_type is not BackupType.FULL
        and s.record.backup_set_uuid not in imported
        and s.import_name not in failed_names
    }
    try:
        plan = plan_restore(head, [s.record for s in candidates.values()])
    except ChainError as error:
        state.blocked = error
        state.culprits = gap_culprits(error, foreign)
        return state
    state.pending = [candidates[r.backup_set_uuid] for r in plan.steps]
    state.skipped = [
        (candidates[s.record.backup_set_uuid], s.reason) for s in plan.skipped if s.record.is_empty
    ]
    return state


def gap_culprits(error: ChainError, foreign: Iterable[BackupRecord]) -> list[BackupRecord]:
    """Other jobs' log backups that hold log records of the range a gap error says is missing.

    COPY_ONLY log backups never truncate the log, so they never cause a gap (and never mend one).
    """
    if not isinstance(error, LsnGapError):
        return []
    return sorted(
        (
            r
            for r in foreign
            if r.backup_type is BackupType.LOG
            and not r.is_copy_only
            and r.first_lsn < error.to_lsn
            and r.last_lsn > error.from_lsn
        ),
        key=lambda r: r.first_lsn,
    )
