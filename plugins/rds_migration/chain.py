"""The restore-chain model: which backups can be imported next, in which order, and why not.

Implements the restore-chain rules of SQL Server (see ``/work/shared/reference/sqlserver.md``):

1. ``last_lsn`` is exclusive: a log backup holds records up to, not including, its ``last_lsn``.
2. A differential applies to the full whose ``checkpoint_lsn`` is its ``differential_base_lsn`` and
   whose ``backup_set_uuid`` is its ``differential_base_guid``.
3. The first log after the anchor (full or differential) must satisfy
   ``first_lsn <= anchor.last_lsn < last_lsn``; ``first_lsn > anchor.last_lsn`` is a gap.
4. Each next log starts where the previous one ended (``first_lsn == previous.last_lsn``), with the
   same ``database_guid``, and begins on the recovery fork the target is on. A log that spans a fork
   (the source was brought back ``WITH RECOVERY`` in between) can follow when its *first* fork is the
   target's and its fork point is not before the target's restore point. A log ending at or before the
   restore point is too early.
5. ``begins_log_chain`` after the anchor means the chain was restarted.
6. A log taken concurrently with the full is valid if it covers ``full.last_lsn``.
7. No differential after a log has been applied.

An *empty* log backup (``first_lsn == last_lsn``, taken while the database was idle) applies nothing:
it is skipped, never imported — unless it lies beyond the restore point, which reveals a gap.

Also: a COPY_ONLY full cannot be a differential base nor start a log chain on a pseudo-simple
database, and damaged (or, on request, checksum-less) backups are refused.

LSNs are ``numeric(25,0)`` in msdb and exceed 2**64: they are Python ints here, never floats, and
strings in JSON. :func:`plan_restore` sorts once and walks once: O(n log n) for n candidates.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from rds_migration.errors import MigrationError

LSN_MAX_DIGITS = 25
_DIGITS = re.compile(r"\d{1,25}")


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class ChainError(MigrationError):
    """A backup cannot be restored at this point of the chain. The message says what to do."""


class LsnGapError(ChainError):
    """Log records in ``[from_lsn, to_lsn)`` are missing between the restore point and the next log."""

    def __init__(self, message: str, *, from_lsn: int, to_lsn: int) -> None:
        super().__init__(message)
        self.from_lsn = from_lsn
        self.to_lsn = to_lsn


class DuplicateBackupError(ChainError):
    """The same backup set (or file name) was offered twice, or was already applied."""


class WrongDatabaseError(ChainError):
    """The backup belongs to a different database (``database_guid`` differs)."""


class RestartedChainError(ChainError):
    """The log chain was restarted after the anchor (``begins_log_chain``); a new full or diff is needed."""


class RecoveryForkError(ChainError):
    """The backup is on a different recovery fork than what is restored."""


class DiffAfterLogError(ChainError):
    """A differential was offered after a log backup has been applied."""


class OutOfOrderError(ChainError):
    """The backup is too early (already covered by the restore point) or overlaps the last log applied."""


class EmptyLogBackupError(ChainError):
    """The log backup is empty (``first_lsn == last_lsn``, an idle database): skip it, never import it."""


class NotIncrementalError(ChainError):
    """A FULL backup was offered where only log or differential backups are accepted."""


class DamagedBackupError(ChainError):
    """The backup is marked damaged, or has no checksum while checksums are required."""


class MissingFullBackupError(ChainError):
    """Nothing is restored yet and no full backup was offered."""


class DiffBaseMismatchError(ChainError):
    """The differential was taken against another full than the one restored."""


class CopyOnlyBaseError(ChainError):
    """A COPY_ONLY full used as a differential base, or to start a log chain on a pseudo-simple DB."""


# --------------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------------


def to_lsn(value: Any, *, what: str = "LSN") -> int:
    """Normalise an LSN given as int, integral Decimal or a string of digits to a Python int.

    Floats are refused: they silently lose precision beyond 2**53 and LSNs go beyond 2**64.
    """
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError(f"{what} {value!r} must be an int, Decimal or digit string (never a float)")
    if isinstance(value, int):
        lsn = value
    elif isinstance(value, Decimal):
        if value != value.to_integral_value():
            raise ValueError(f"{what} {value} is not a whole number")
        lsn = int(value)
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        lsn = int(value.strip())
    else:
        raise ValueError(f"{what} {value!r} is not an LSN (up to {LSN_MAX_DIGITS} decimal digits)")
    if lsn < 0 or len(str(lsn)) > LSN_MAX_DIGITS:
        raise ValueError(f"{what} {lsn} is out of range (0 .. 25 digits)")
    return lsn


def _optional_lsn(value: Any, what: str) -> int | None:
    return None if value is None or value == "" else to_lsn(value, what=what)


def to_guid(value: Any, *, what: str = "GUID") -> str:
    """Normalise a GUID (uuid.UUID, str with or without braces, 16 bytes) to lowercase canonical text."""
    try:
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, bytes | bytearray) and len(value) == 16:
            return str(uuid.UUID(bytes_le=bytes(value)))  # SQL Server stores uniqueidentifier little-endian
        return str(uuid.UUID(str(value).strip().strip("{}")))
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{what} {value!r} is not a GUID") from exc


def _optional_guid(value: Any, what: str) -> str | None:
    return None if value is None or value == "" else to_guid(value, what=what)


class BackupType(enum.Enum):
    """Backup kind, valued with the msdb ``backupset.type`` code."""

    FULL = "D"
    DIFF = "I"
    LOG = "L"

    @classmethod
    def from_code(cls, code: Any) -> BackupType:
        """Accept an msdb code (D/I/L), a HEADERONLY BackupType (1/5/2), a name or an RDS BackupMode."""
        if isinstance(code, BackupType):
            return code
        text = str(code).strip().upper()
        aliases = {
            "D": cls.FULL, "FULL": cls.FULL, "1": cls.FULL, "DATABASE": cls.FULL,
            "I": cls.DIFF, "DIFF": cls.DIFF, "5": cls.DIFF, "DIFFERENTIAL_DATABASE": cls.DIFF,
            "L": cls.LOG, "LOG": cls.LOG, "2": cls.LOG, "TRANSACTION_LOG": cls.LOG,
        }  # fmt: skip
        if text not in aliases:
            raise ValueError(f"backup type {code!r} is not one of D/I/L, FULL/DIFF/LOG, 1/5/2")
        return aliases[text]


@dataclass(frozen=True)
class BackupRecord:
    """One backup set as recorded in ``msdb.dbo.backupset`` (one backup set per file).

    LSNs are ints (normalised from int, Decimal or digit strings); GUIDs are lowercase strings.
    """

    file_name: str
    backup_type: BackupType
    first_lsn: int
    last_lsn: int
    checkpoint_lsn: int
    database_backup_lsn: int | None
    backup_set_uuid: str
    database_guid: str
    recovery_fork_guid: str
    differential_base_lsn: int | None = None
    differential_base_guid: str | None = None
    begins_log_chain: bool = False
    is_copy_only: bool = False
    size_bytes: int = 0
    has_checksum: bool = True
    is_damaged: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: Fork the backup begins on, when it differs from ``recovery_fork_guid`` (the last): it spans a fork.
    first_recovery_fork_guid: str | None = None
    #: LSN where the fork it spans began (the source was recovered there); None if it spans none.
    fork_point_lsn: int | None = None
    #: The full path msdb recorded (decides who wrote it), and msdb's id of the backup set.
    physical_device_name: str | None = None
    backup_set_id: int | None = None
    #: Files the backup set is striped over; RDS imports one file per backup, so only 1 is importable.
    stripes: int = 1

    def __post_init__(self) -> None:
        # Normalise in place (frozen dataclass): callers may pass Decimals, strings, UUIDs.
        where = f"backup {self.file_name!r}"
        set_ = object.__setattr__
        set_(self, "backup_type", BackupType.from_code(self.backup_type))
        for name in ("first_lsn", "last_lsn", "checkpoint_lsn"):
            set_(self, name, to_lsn(getattr(self, name), what=f"{where}: {name}"))
        for name in ("database_backup_lsn", "differential_base_lsn", "fork_point_lsn"):
            set_(self, name, _optional_lsn(getattr(self, name), f"{where}: {name}"))
        for name in ("backup_set_uuid", "database_guid", "recovery_fork_guid"):
            set_(self, name, to_guid(getattr(self, name), what=f"{where}: {name}"))
        first_fork = _optional_guid(self.first_recovery_fork_guid, f"{where}: first_recovery_fork_guid")
        # Stored only when it differs, so ``replace(record, recovery_fork_guid=...)`` moves the whole backup.
        set_(self, "first_recovery_fork_guid", None if first_fork == self.recovery_fork_guid else first_fork)
        set_(self, "stripes", int(self.stripes or 1))
        if self.backup_set_id is not None:
            set_(self, "backup_set_id", int(self.backup_set_id))
        set_(
            self, "differential_base_guid", _optional_guid(self.differential_base_guid, f"{where}: base guid")
        )
        for name in ("begins_log_chain", "is_copy_only", "has_checksum", "is_damaged"):
            set_(self, name, bool(getattr(self, name)))
        set_(self, "size_bytes", int(self.size_bytes or 0))
        if self.last_lsn < self.first_lsn:
            raise ValueError(f"{where}: last_lsn {self.last_lsn} is before first_lsn {self.first_lsn}")

    @property
    def label(self) -> str:
        """Short human label used in messages: ``LOG 'x.trn' [first, last)``."""
        return f"{self.backup_type.name} {self.file_name!r} [{self.first_lsn}, {self.last_lsn})"

    @property
    def is_empty(self) -> bool:
        """A log backup of an idle database: ``first_lsn == last_lsn``, it applies nothing."""
        return self.backup_type is BackupType.LOG and self.first_lsn == self.last_lsn

    @property
    def first_fork_guid(self) -> str:
        """The recovery fork the backup begins on (``recovery_fork_guid`` is the one it ends on)."""
        return self.first_recovery_fork_guid or self.recovery_fork_guid

    @property
    def spans_fork(self) -> bool:
        return self.first_fork_guid != self.recovery_fork_guid

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (LSNs as strings, datetimes as ISO text) for XCom and the ledger."""
        data: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name.endswith("_lsn") and value is not None:
                value = str(value)
            elif isinstance(value, BackupType):
                value = value.name
            elif isinstance(value, datetime):
                value = value.isoformat()
            data[name] = value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BackupRecord:
        """Inverse of :meth:`to_dict` (unknown keys are refused, naming them)."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown BackupRecord field(s): {', '.join(sorted(unknown))}")
        values = dict(data)
        for name in ("started_at", "finished_at"):
            if isinstance(values.get(name), str):
                values[name] = datetime.fromisoformat(values[name])
        return cls(**values)  # fields added later default, so older ledgers still read

    @classmethod
    def from_msdb_row(cls, row: Mapping[str, Any]) -> BackupRecord:
        """Build from a ``backupset`` ⨝ ``backupmediafamily`` row (msdb column names)."""
        device = str(row["physical_device_name"])
        return cls(
            file_name=re.split(r"[\\/]", device)[-1],
            backup_type=row["type"],
            first_lsn=row["first_lsn"],
            last_lsn=row["last_lsn"],
            checkpoint_lsn=row["checkpoint_lsn"],
            database_backup_lsn=row.get("database_backup_lsn"),
            differential_base_lsn=row.get("differential_base_lsn"),
            differential_base_guid=row.get("differential_base_guid"),
            backup_set_uuid=row["backup_set_uuid"],
            database_guid=row["database_guid"],
            recovery_fork_guid=row["last_recovery_fork_guid"],
            first_recovery_fork_guid=row.get("first_recovery_fork_guid"),
            fork_point_lsn=row.get("fork_point_lsn"),
            physical_device_name=device,
            backup_set_id=row.get("backup_set_id"),
            stripes=row.get("family_count") or 1,
            begins_log_chain=row.get("begins_log_chain") or False,
            is_copy_only=row.get("is_copy_only") or False,
            size_bytes=row.get("compressed_backup_size") or row.get("backup_size") or 0,
            has_checksum=row.get("has_backup_checksums", True),
            is_damaged=row.get("is_damaged") or False,
            started_at=row.get("backup_start_date"),
            finished_at=row.get("backup_finish_date"),
        )


@dataclass(frozen=True)
class RestorePoint:
    """What is restored on the target: the anchor full, an optional diff, and the last log applied."""

    full: BackupRecord
    diff: BackupRecord | None = None
    last_log: BackupRecord | None = None
    logs_applied: int = 0
    #: Recovery forks of backups applied before ``last_log`` (see :attr:`lineage`); derived history, so
    #: two points at the same place compare equal whatever they remember.
    forks: frozenset[str] = field(default=frozenset(), compare=False)

    @property
    def lineage(self) -> frozenset[str]:
        """Every recovery fork the restored data went through: the full's, then each applied backup's."""
        found = set(self.forks)
        for record in (self.full, self.diff, self.last_log):
            if record is not None:
                found |= {record.first_fork_guid, record.recovery_fork_guid}
        return frozenset(found)

    @property
    def last_applied(self) -> BackupRecord:
        """The most recent backup applied (log, else diff, else full)."""
        return self.last_log or self.diff or self.full

    @property
    def redo_lsn(self) -> int:
        """The LSN the next log must cover: the ``last_lsn`` of the last backup applied."""
        return self.last_applied.last_lsn

    @property
    def database_guid(self) -> str:
        return self.full.database_guid

    @property
    def fork_guid(self) -> str:
        return self.last_applied.recovery_fork_guid

    def applied_uuids(self) -> set[str]:
        """Backup-set UUIDs this point knows were applied (full, diff, last log)."""
        return {r.backup_set_uuid for r in (self.full, self.diff, self.last_log) if r is not None}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for XCom."""
        return {
            "full": self.full.to_dict(),
            "diff": self.diff.to_dict() if self.diff else None,
            "last_log": self.last_log.to_dict() if self.last_log else None,
            "logs_applied": self.logs_applied,
            "redo_lsn": str(self.redo_lsn),  # informative; recomputed on load
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RestorePoint:
        """Inverse of :meth:`to_dict`."""
        return cls(
            full=BackupRecord.from_dict(data["full"]),
            diff=BackupRecord.from_dict(data["diff"]) if data.get("diff") else None,
            last_log=BackupRecord.from_dict(data["last_log"]) if data.get("last_log") else None,
            logs_applied=int(data.get("logs_applied", 0)),
        )


@dataclass(frozen=True)
class SkippedBackup:
    """A candidate left out of the plan, with the reason."""

    record: BackupRecord
    reason: str


@dataclass
class RestorePlan:
    """The backups to import, in order, plus what was left out and why."""

    start: RestorePoint | None
    steps: list[BackupRecord] = field(default_factory=list)
    skipped: list[SkippedBackup] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    final: RestorePoint | None = None

    @property
    def is_empty(self) -> bool:
        return not self.steps


# --------------------------------------------------------------------------------------------------
# Single-step checks
# --------------------------------------------------------------------------------------------------


def _what_to_do_about_gap(point: RestorePoint) -> str:
    return (
        "The backups that hold these log records must be imported first (another backup job may have taken "
        "them), or the migration must start over from a new full backup."
    )


def _check_integrity(record: BackupRecord, require_checksum: bool, warnings: list[str] | None) -> None:
    if record.is_damaged:
        raise DamagedBackupError(
            f"{record.label} is marked damaged in msdb (is_damaged=1): take a new backup "
            f"and do not import this file."
        )
    if not record.has_checksum:
        message = (
            f"{record.label} was taken without CHECKSUM: corruption cannot be detected on restore; "
            "take backups WITH CHECKSUM."
        )
        if require_checksum:
            raise DamagedBackupError(message)
        if warnings is not None:
            warnings.append(message)


def _check_same_database(point: RestorePoint, record: BackupRecord) -> None:
    if record.database_guid != point.database_guid:
        raise WrongDatabaseError(
            f"{record.label} belongs to database_guid {record.database_guid}, but the restored full "
            f"{point.full.file_name!r} has database_guid {point.database_guid}: the source database was "
            "recreated or the file comes from another database. Check the file, or restart the migration "
            "from a new full backup."
        )


def _check_same_fork(point: RestorePoint, record: BackupRecord) -> None:
    if record.first_fork_guid != point.fork_guid:
        raise RecoveryForkError(
            f"{record.label} begins on recovery fork {record.first_fork_guid}, but the target is on "
            f"fork {point.fork_guid} ({point.last_applied.label}): the source database was restored from "
            "another backup in between, so its log no longer continues what the target holds. Start the "
            "migration over from a new full backup."
        )
    if record.spans_fork and record.fork_point_lsn is not None and record.fork_point_lsn < point.redo_lsn:
        raise RecoveryForkError(
            f"{record.label} crosses to recovery fork {record.recovery_fork_guid} at LSN "
            f"{record.fork_point_lsn}: the source was brought back WITH RECOVERY at that point, before the "
            f"target's restore point LSN {point.redo_lsn}, so the target holds log records the source "
            "discarded. Start the migration over from a new full backup."
        )


def _on_another_history(point: RestorePoint, record: BackupRecord) -> bool:
    """Taken after the restored full, on a recovery fork the restored data never went through: the source
    was restored (and recovered) since. Backups older than the full may sit on old forks: they are only
    skipped."""
    return record.recovery_fork_guid not in point.lineage and _taken_after(record, point.full)


def _taken_after(record: BackupRecord, full: BackupRecord) -> bool:
    """msdb's backup_set_id orders backups of one server; the start time when an id is unknown."""
    if record.backup_set_id is not None and full.backup_set_id is not None:
        return record.backup_set_id > full.backup_set_id
    if record.started_at is None or full.started_at is None:
        return False
    if (record.started_at.tzinfo is None) != (full.started_at.tzinfo is None):
        return False
    return record.started_at > full.started_at


def _check_full_as_increment(point: RestorePoint, record: BackupRecord) -> None:
    raise NotIncrementalError(
        f"Backup set ({record.file_name}) is a Database FULL backup, we only accept transaction log or "
        f"differential backup. {point.full.label} is already restored: import log or differential "
        "backups, or start a new migration task for a new full backup."
    )


def _check_diff(point: RestorePoint, record: BackupRecord) -> None:
    full = point.full
    if record.backup_set_uuid in point.applied_uuids():
        raise DuplicateBackupError(f"{record.label} is already applied: nothing to do.")
    if (
        record.differential_base_guid != full.backup_set_uuid
        or record.differential_base_lsn != full.checkpoint_lsn
    ):
        raise DiffBaseMismatchError(
            f"{record.label} is based on the full with backup_set_uuid {record.differential_base_guid} "
            f"(checkpoint LSN {record.differential_base_lsn}), not on the restored {full.label} "
            f"(uuid {full.backup_set_uuid}, checkpoint LSN {full.checkpoint_lsn}): another full backup "
            "was taken since. Use log backups, or restart from that newer full."
        )
    if full.is_copy_only:
        raise CopyOnlyBaseError(
            f"{record.label} names the COPY_ONLY full {full.file_name!r} as its base: a COPY_ONLY full "
            "cannot be a differential base. Use log backups, or restart from a normal full backup."
        )
    if point.last_log is not None:
        raise DiffAfterLogError(
            f"{record.label} cannot be applied: log {point.last_log.label} is already applied and a "
            "differential cannot go on top of a log. Import the log backups instead."
        )
    if record.last_lsn <= point.redo_lsn:
        raise OutOfOrderError(
            f"{record.label} ends at or before the restore point LSN {point.redo_lsn} "
            f"({point.last_applied.file_name!r}): it is too early; skip it."
        )


def _check_log(point: RestorePoint, record: BackupRecord) -> None:
    redo = point.redo_lsn
    first_after_anchor = point.last_log is None
    if record.backup_set_uuid in point.applied_uuids():
        raise DuplicateBackupError(f"{record.label} is already applied: nothing to do.")
    if point.full.is_copy_only and not point.full.database_backup_lsn and point.diff is None:
        raise CopyOnlyBaseError(
            f"{record.label} follows the COPY_ONLY full {point.full.file_name!r} of a database without a "
            "log chain (pseudo-simple): a COPY_ONLY full cannot start a log chain. Take a normal full backup."
        )
    if record.is_empty and record.first_lsn <= redo:
        raise EmptyLogBackupError(
            f"{record.label} is empty (the database was idle): it applies nothing; skip it, never import it."
        )
    if record.last_lsn <= redo:
        raise OutOfOrderError(
            f"The log in {record.label} terminates at LSN {record.last_lsn}, which is too early to apply: "
            f"the restore point is LSN {redo} ({point.last_applied.file_name!r}). It is already covered; "
            "skip it and import the next log."
        )
    if record.begins_log_chain and not (first_after_anchor and record.first_lsn <= redo):
        raise RestartedChainError(
            f"{record.label} begins a new log chain (begins_log_chain=1) after "
            f"{point.last_applied.label}: the recovery model was switched or the chain broken on the "
            "source. Take a differential backup (if the full is still its base) or restart from a new full."
        )
    if record.first_lsn > redo:
        raise LsnGapError(
            f"The log in this backup set begins at LSN {record.first_lsn}, which is too recent to apply to "
            f"the database: {record.label} does not follow {point.last_applied.label}; log records "
            f"[{redo}, {record.first_lsn}) are missing. {_what_to_do_about_gap(point)}",
            from_lsn=redo,
            to_lsn=record.first_lsn,
        )
    if not first_after_anchor and record.first_lsn != redo:
        raise OutOfOrderError(
            f"{record.label} overlaps the last log applied {point.last_log.label}: the next log must "
            f"start exactly at LSN {redo}. Check for log backups taken by another job."
        )


def check_next(
    restored: RestorePoint | None,
    record: BackupRecord,
    *,
    require_checksum: bool = False,
    warnings: list[str] | None = None,
) -> None:
    """Check that ``record`` can be imported right now; raise a :class:`ChainError` subclass if not.

    Call it before uploading a backup. Warnings (e.g. no checksum) are appended to ``warnings``.
    """
    _check_integrity(record, require_checksum, warnings)
    if restored is None:
        if record.backup_type is not BackupType.FULL:
            raise MissingFullBackupError(
                f"{record.label} cannot be imported first: nothing is restored yet. Import a full backup "
                "with a new migration task (BackupMode=UPDF) first."
            )
        return
    _check_same_database(restored, record)
    if record.backup_type is BackupType.FULL:
        if record.backup_set_uuid == restored.full.backup_set_uuid:
            raise DuplicateBackupError(f"{record.label} is already restored: nothing to do.")
        _check_full_as_increment(restored, record)
    _check_same_fork(restored, record)
    if record.backup_type is BackupType.DIFF:
        _check_diff(restored, record)
    else:
        _check_log(restored, record)


def apply(restored: RestorePoint | None, record: BackupRecord) -> RestorePoint:
    """Return the restore point after ``record`` is applied, without checking (see :func:`advance`)."""
    if record.backup_type is BackupType.FULL:
        return RestorePoint(full=record)
    if restored is None:
        raise MissingFullBackupError(f"{record.label} cannot be applied before a full backup is restored.")
    if record.backup_type is BackupType.DIFF:
        return replace(restored, diff=record, forks=restored.lineage)
    return replace(restored, last_log=record, logs_applied=restored.logs_applied + 1, forks=restored.lineage)


def advance(
    restored: RestorePoint | None, record: BackupRecord, *, require_checksum: bool = False
) -> RestorePoint:
    """Check ``record`` with :func:`check_next` and return the restore point after applying it."""
    check_next(restored, record, require_checksum=require_checksum)
    return apply(restored, record)


# --------------------------------------------------------------------------------------------------
# Planning over a set of candidates
# --------------------------------------------------------------------------------------------------


def _reject_duplicates(records: list[BackupRecord]) -> None:
    by_uuid: dict[str, BackupRecord] = {}
    by_name: dict[str, BackupRecord] = {}
    for record in records:
        for index, key in ((by_uuid, record.backup_set_uuid), (by_name, record.file_name)):
            other = index.get(key)
            if other is not None:
                raise DuplicateBackupError(
                    f"{record.label} and {other.label} are offered twice (same "
                    f"{'backup_set_uuid ' + key if index is by_uuid else 'file name'}): "
                    "remove the duplicate (one backup set per file)."
                )
            index[key] = record


def _choose_full(fulls: list[BackupRecord], plan: RestorePlan) -> BackupRecord:
    if not fulls:
        raise MissingFullBackupError(
            "nothing is restored yet and no full backup is among the candidates: take a full backup first."
        )
    fulls = sorted(fulls, key=lambda r: (r.last_lsn, r.checkpoint_lsn))
    chosen = fulls[-1]
    for older in fulls[:-1]:
        plan.skipped.append(SkippedBackup(older, f"superseded by the newer full {chosen.file_name!r}"))
    return chosen


def _plan_fulls(point: RestorePoint, fulls: list[BackupRecord], plan: RestorePlan) -> None:
    for full in fulls:
        _check_same_database(point, full)
        if full.backup_set_uuid == point.full.backup_set_uuid:
            plan.skipped.append(SkippedBackup(full, "already restored"))
        elif full.last_lsn <= point.full.last_lsn:
            plan.skipped.append(SkippedBackup(full, f"older than the restored full {point.full.file_name!r}"))
        else:
            _check_full_as_increment(point, full)


def _plan_diff(
    point: RestorePoint, diffs: list[BackupRecord], plan: RestorePlan, require_checksum: bool
) -> RestorePoint:
    """Apply the latest usable differential (only while no log is applied); skip the rest."""
    usable: list[BackupRecord] = []
    for diff in diffs:
        if diff.backup_set_uuid in point.applied_uuids():
            plan.skipped.append(SkippedBackup(diff, "already applied"))
        elif diff.last_lsn <= point.redo_lsn:
            plan.skipped.append(SkippedBackup(diff, f"ends before the restore point LSN {point.redo_lsn}"))
        elif diff.differential_base_guid != point.full.backup_set_uuid:
            plan.skipped.append(
                SkippedBackup(diff, f"based on another full (uuid {diff.differential_base_guid})")
            )
        else:
            usable.append(diff)
    if not usable:
        return point
    usable.sort(key=lambda r: r.last_lsn)
    chosen = usable[-1]
    # Raises DiffBaseMismatch (base LSN), CopyOnlyBase, DamagedBackup, RecoveryFork...
    check_next(point, chosen, require_checksum=require_checksum, warnings=plan.warnings)
    for older in usable[:-1]:
        plan.skipped.append(
            SkippedBackup(older, f"superseded by the newer differential {chosen.file_name!r}")
        )
    plan.steps.append(chosen)
    return apply(point, chosen)


def _plan_logs(
    point: RestorePoint, logs: list[BackupRecord], plan: RestorePlan, require_checksum: bool
) -> RestorePoint:
    logs.sort(key=lambda r: (r.first_lsn, r.last_lsn))
    for log in logs:
        if log.backup_set_uuid in point.applied_uuids():
            plan.skipped.append(SkippedBackup(log, "already applied"))
            continue
        if _on_another_history(point, log):
            # LSNs restart at the point a source is restored to: such a log may *look* covered or empty.
            _check_same_fork(point, log)
        if log.is_empty and log.first_lsn <= point.redo_lsn:
            plan.skipped.append(SkippedBackup(log, "empty (the database was idle): nothing to apply"))
        elif log.last_lsn <= point.redo_lsn:
            plan.skipped.append(
                SkippedBackup(
                    log, f"ends at or before the restore point LSN {point.redo_lsn} (already covered)"
                )
            )
        else:
            check_next(point, log, require_checksum=require_checksum, warnings=plan.warnings)
            plan.steps.append(log)
            point = apply(point, log)
    return point


def plan_restore(
    restored: RestorePoint | None,
    candidates: Iterable[BackupRecord],
    *,
    require_checksum: bool = False,
) -> RestorePlan:
    """Plan the next imports from ``restored`` using ``candidates`` (in any order).

    The plan lists, in order: the full if nothing is restored, then the latest usable differential
    if no log is applied yet, then the logs. Candidates already covered are listed in ``skipped``
    with the reason. Raises a :class:`ChainError` subclass when the candidates cannot continue the
    chain (gap, duplicate, other database or fork, restarted chain, diff after log, FULL offered as
    an incremental, damaged file).
    """
    records = list(candidates)
    _reject_duplicates(records)
    plan = RestorePlan(start=restored)
    fulls = [r for r in records if r.backup_type is BackupType.FULL]
    diffs = [r for r in records if r.backup_type is BackupType.DIFF]
    logs = [r for r in records if r.backup_type is BackupType.LOG]

    point = restored
    if point is None:
        full = _choose_full(fulls, plan)
        check_next(None, full, require_checksum=require_checksum, warnings=plan.warnings)
        plan.steps.append(full)
        point = apply(None, full)
    else:
        _plan_fulls(point, fulls, plan)
    for record in diffs + logs:
        _check_same_database(point, record)

    if point.last_log is None:
        point = _plan_diff(point, diffs, plan, require_checksum)
    else:
        _skip_or_reject_diffs_after_log(point, diffs, plan)
    plan.final = _plan_logs(point, logs, plan, require_checksum)
    return plan


def _skip_or_reject_diffs_after_log(
    point: RestorePoint, diffs: list[BackupRecord], plan: RestorePlan
) -> None:
    for diff in diffs:
        if diff.last_lsn <= point.redo_lsn or diff.differential_base_guid != point.full.backup_set_uuid:
            reason = (
                "already covered by the logs applied"
                if diff.last_lsn <= point.redo_lsn
                else (f"based on another full (uuid {diff.differential_base_guid})")
            )
            plan.skipped.append(SkippedBackup(diff, reason))
        else:
            check_next(point, diff)  # raises DiffAfterLogError with the details
