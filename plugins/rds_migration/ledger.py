"""The append-only migration ledger: one JSON line per event, stored next to the backups in OSS.

Ground truth stays in msdb and the RDS API; the ledger is the audit trail and lets a retried task
see what was already done. LSNs and CRC64 values are strings in JSON so no reader loses precision.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rds_migration.chain import (
    BackupRecord,
    ChainError,
    DuplicateBackupError,
    RestorePoint,
    advance,
    to_lsn,
)
from rds_migration.errors import MigrationError


class LedgerError(MigrationError):
    """A ledger line cannot be read, or the events it records do not form a valid chain."""


class LedgerEvent(enum.StrEnum):
    """What happened. ``restored`` events carry the backup record and rebuild the restore point."""

    PREFLIGHT_PASSED = "preflight_passed"
    BACKUP_TAKEN = "backup_taken"
    UPLOADED = "uploaded"
    IMPORT_REQUESTED = "import_requested"
    RESTORED = "restored"
    CUTOVER_APPROVED = "cutover_approved"
    CUTOVER_REJECTED = "cutover_rejected"
    SOURCE_FROZEN = "source_frozen"
    #: How long each step of the cutover task took (freeze, tail backup, shipping), for the downtime split.
    CUTOVER_TIMINGS = "cutover_timings"
    #: Written before CreateOnlineDatabaseTask is sent: from then on the rollback asks RDS first.
    OPEN_REQUESTED = "open_requested"
    OPENED = "opened"
    VALIDATED = "validated"
    #: The target let applications in (the freeze state that travelled with the log undone).
    TARGET_RELEASED = "target_released"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    #: A backup that is never imported (an empty log backup of an idle database).
    SKIPPED = "skipped"
    #: A migration task found through DescribeMigrateTasks that the ledger did not record yet.
    TASK_DISCOVERED = "task_discovered"
    #: "Start over": the migration task was terminated; a new full starts a new one.
    MIGRATION_ABANDONED = "migration_abandoned"


@dataclass(frozen=True)
class LedgerEntry:
    """One ledger event. ``backup`` holds the full msdb record for backup-related events."""

    event: LedgerEvent
    database: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    file_name: str | None = None
    backup_type: str | None = None
    first_lsn: int | None = None
    last_lsn: int | None = None
    size_bytes: int | None = None
    crc64: str | None = None
    object_key: str | None = None
    migrate_task_id: str | None = None
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    try_number: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    backup: BackupRecord | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "event", LedgerEvent(self.event))
        for name in ("first_lsn", "last_lsn"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, to_lsn(value, what=f"ledger {name}"))
        if self.crc64 is not None:
            object.__setattr__(self, "crc64", str(self.crc64))  # 64-bit unsigned: keep as decimal text

    @classmethod
    def for_backup(
        cls, event: LedgerEvent | str, record: BackupRecord, database: str, **extra: Any
    ) -> LedgerEntry:
        """An entry about ``record``, with file name, type, LSNs and size copied from it."""
        return cls(
            event=LedgerEvent(event),
            database=database,
            file_name=record.file_name,
            backup_type=record.backup_type.name,
            first_lsn=record.first_lsn,
            last_lsn=record.last_lsn,
            size_bytes=record.size_bytes,
            backup=record,
            **extra,
        )

    def to_json_line(self) -> str:
        """One JSON object on one line (no trailing newline); LSNs as strings."""
        data: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value is None or (name == "details" and not value):
                continue
            if name in ("first_lsn", "last_lsn"):
                value = str(value)
            elif name == "at":
                value = value.isoformat()
            elif name == "backup":
                value = value.to_dict()
            elif name == "event":
                value = value.value
            data[name] = value
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)

    @classmethod
    def from_json_line(cls, line: str) -> LedgerEntry:
        """Inverse of :meth:`to_json_line`; raises :class:`LedgerError` on bad input."""
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise ValueError("a ledger line must be a JSON object")
            unknown = set(data) - set(cls.__dataclass_fields__)
            if unknown:
                raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
            if "at" in data:
                data["at"] = datetime.fromisoformat(data["at"])
            if data.get("backup") is not None:
                data["backup"] = BackupRecord.from_dict(data["backup"])
            return cls(**data)
        except (ValueError, TypeError, KeyError) as exc:
            raise LedgerError(f"bad ledger line {line[:120]!r}: {exc}") from exc


def format_ledger(entries: list[LedgerEntry]) -> str:
    """Entries as JSON lines, each ending with a newline (ready to append)."""
    return "".join(entry.to_json_line() + "\n" for entry in entries)


def parse_ledger(text: str, *, source: str = "ledger") -> list[LedgerEntry]:
    """Parse JSON lines. A truncated last line (an interrupted append) is ignored; other bad lines raise."""
    lines = text.split("\n")
    entries: list[LedgerEntry] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entries.append(LedgerEntry.from_json_line(line))
        except LedgerError as exc:
            is_unterminated_last = number == len(lines) and not text.endswith("\n")
            if is_unterminated_last:
                break  # the writer was interrupted mid-line: the event did not complete
            raise LedgerError(f"{source}: line {number}: {exc}") from exc
    return entries


def restore_point_from_ledger(entries: list[LedgerEntry], *, source: str = "ledger") -> RestorePoint | None:
    """Replay ``restored`` events (in ledger order) into a :class:`RestorePoint`; ``None`` if none.

    A repeated ``restored`` event for the same backup (a retried task) is ignored.
    """
    point: RestorePoint | None = None
    seen: set[str] = set()
    for entry in entries:
        if entry.event is not LedgerEvent.RESTORED:
            continue
        if entry.backup is None:
            raise LedgerError(f"{source}: 'restored' event for {entry.file_name!r} carries no backup record")
        if entry.backup.backup_set_uuid in seen:
            continue
        seen.add(entry.backup.backup_set_uuid)
        try:
            point = advance(point, entry.backup)
        except DuplicateBackupError:
            continue
        except ChainError as exc:
            raise LedgerError(f"{source}: recorded restores do not form a valid chain: {exc}") from exc
    return point


def current_migration_task_id(entries: list[LedgerEntry]) -> str | None:
    """The migration task of the current attempt, as recorded: ground truth of our own.

    ``DescribeMigrateTasks`` lists one week only, so a migration that lasts longer must not depend on
    it: the id RDS answered for the full's import (or a task discovered later) is kept here, and a
    task abandoned by "start over" is never current again.
    """
    abandoned = {e.migrate_task_id for e in entries if e.event is LedgerEvent.MIGRATION_ABANDONED}
    current: str | None = None
    for entry in entries:
        starts_task = entry.event is LedgerEvent.TASK_DISCOVERED or (
            entry.event is LedgerEvent.IMPORT_REQUESTED and entry.backup_type == "FULL"
        )
        task_id = entry.migrate_task_id or entry.details.get("migrate_task_id")  # older ledgers: in details
        if starts_task and task_id and task_id not in abandoned:
            current = task_id
    return current


def task_ids_of(entries: list[LedgerEntry], parent_task_id: str) -> list[str]:
    """Every id RDS answered for imports into ``parent_task_id`` (itself first).

    Whether an incremental import answers the parent's id or a new child id is not documented; both
    are recorded, and the files of every one of them are followed.
    """
    ids = [parent_task_id]
    for entry in entries:
        answered = entry.migrate_task_id
        if (
            entry.event is LedgerEvent.IMPORT_REQUESTED
            and entry.details.get("parent_task_id") == parent_task_id
            and answered
            and answered not in ids
        ):
            ids.append(answered)
    return ids
