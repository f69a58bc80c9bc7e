"""The migration's steps for one configured database, composed from the three hooks.

Operators stay short because the work lives here, once: take a backup, upload it, import it, and
reconstruct where the chain stands from ground truth (the source's msdb history and the RDS file
list) so that any task can be retried and look before it acts.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from hooks.rds import FILE_FAILURE_STATES, FILE_SUCCESS_STATES, RdsMigrationHook
from rds_migration.chain import BackupRecord, BackupType, RestorePoint, apply, check_next
from rds_migration.config import MigrationSpec
from rds_migration.estimate import Rates
from rds_migration.ledger import LedgerEntry, LedgerEvent
from rds_migration.naming import (
    backup_file_name,
    backup_stem,
    object_key,
    oss_object_position,
    parse_backup_file_name,
    server_backup_path,
    validate_key_prefix,
    worker_backup_path,
)

if TYPE_CHECKING:  # pymssql and oss2 are imported when a hook is first used, not at DAG parse time
    from hooks.mssql import MigrationMsSqlHook
    from hooks.oss import OssMigrationHook

log = logging.getLogger(__name__)

# Sequence number reserved for the tail-log backup of a run, so a retried tail task finds its file.
TAIL_SEQ = 0
# Smaller files measure fixed costs (task latency), not throughput.
RATE_SAMPLE_MIN_BYTES = 1024 * 1024
# How far back msdb history is read when nothing else bounds it (RDS keeps tasks for a week).
HISTORY_WINDOW = timedelta(days=8)


@dataclass
class ChainState:
    """Where the migration stands, rebuilt from msdb and the RDS file list.

    :param migrate_task_id: the RDS migration task, or None before the full is imported.
    :param restored: the restore point of the files RDS reports restored.
    :param in_flight: files imported and still being processed by RDS, in chain order.
    :param pending: our backups in msdb that RDS has not been asked to import, in LSN order.
    :param failed: files RDS failed on, with its description.
    """

    migrate_task_id: str | None
    restored: RestorePoint | None
    in_flight: list[BackupRecord] = field(default_factory=list)
    pending: list[BackupRecord] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def chain_head(self) -> RestorePoint | None:
        """The restore point once every in-flight file is restored: the base for the next import."""
        point = self.restored
        for record in self.in_flight:
            point = apply(point, record)
        return point


def _listed_order(download: Any) -> tuple[bool, datetime]:
    """RDS file entries in the order they were created (entries without a time first)."""
    created = download.create_time
    return (created is not None, created or datetime.min.replace(tzinfo=UTC))


class MigrationSteps:
    """The procedure's steps for one database; hooks are built lazily on first use.

    :param spec: the validated configuration of this migration.
    """

    def __init__(self, spec: MigrationSpec) -> None:
        self.spec = spec

    # ----------------------------------------------------------------------------------------------
    # Hooks and names
    # ----------------------------------------------------------------------------------------------

    @cached_property
    def source(self) -> MigrationMsSqlHook:
        from hooks.mssql import MigrationMsSqlHook

        return MigrationMsSqlHook(mssql_conn_id=self.spec.source.mssql_conn_id)

    @cached_property
    def target_sql(self) -> MigrationMsSqlHook | None:
        from hooks.mssql import MigrationMsSqlHook

        conn_id = self.spec.target.mssql_conn_id
        return MigrationMsSqlHook(mssql_conn_id=conn_id) if conn_id else None

    @cached_property
    def oss(self) -> OssMigrationHook:
        from hooks.oss import OssMigrationHook

        return OssMigrationHook(oss_conn_id=self.spec.oss.oss_conn_id)

    @cached_property
    def rds(self) -> RdsMigrationHook:
        return RdsMigrationHook(rds_conn_id=self.spec.target.rds_conn_id)

    @property
    def database(self) -> str:
        return self.spec.source.database

    @property
    def target_database(self) -> str:
        return self.spec.target.database or self.spec.source.database

    @property
    def instance_id(self) -> str:
        return self.spec.target.instance_id

    @property
    def bucket(self) -> str:
        return self.spec.oss.bucket

    @property
    def oss_endpoint(self) -> str:
        return self.spec.oss.endpoint or f"oss-{self.spec.target.region}.aliyuncs.com"

    @property
    def key_prefix(self) -> str:
        return validate_key_prefix(self.spec.oss.prefix or "")

    @property
    def ledger_key(self) -> str:
        """The audit ledger: JSON lines, one object per database, next to its backups."""
        return f"{self.key_prefix}{backup_stem(self.database)}_ledger.jsonl"

    def report_key(self, file_name: str) -> str:
        return f"{self.key_prefix}reports/{file_name}"

    def object_key(self, file_name: str) -> str:
        return object_key(self.spec.oss.prefix or "", file_name)

    def oss_position(self, file_name: str) -> str:
        return oss_object_position(self.oss_endpoint, self.bucket, self.object_key(file_name))

    def server_path(self, file_name: str) -> str:
        return server_backup_path(self.spec.backup_folder.server_path, file_name)

    def worker_path(self, file_name: str) -> str:
        return worker_backup_path(self.spec.backup_folder.worker_path, file_name)

    def is_ours(self, physical_device_name: str) -> bool:
        """True for a backup file this package wrote for this database (folder and stem match)."""
        parsed = parse_backup_file_name(physical_device_name)
        if parsed is None or parsed.stem != backup_stem(self.database):
            return False
        file_name = re.split(r"[\\/]", physical_device_name)[-1]

        def normal(path: str) -> str:  # Windows paths: case-insensitive, either separator
            return path.replace("\\", "/").lower()

        return normal(physical_device_name) == normal(self.server_path(file_name))

    def record_ledger(
        self, event: str, record: BackupRecord | None = None, file_name: str | None = None, **details: Any
    ) -> None:
        """Append one audit line to the ledger object next to the backups."""
        if record is not None:
            entry = LedgerEntry.for_backup(event, record, self.database, details=details)
        else:
            entry = LedgerEntry(event=event, database=self.database, file_name=file_name, details=details)
        self.oss.append_ledger(self.bucket, self.ledger_key, [entry])

    def read_ledger(self) -> list[LedgerEntry]:
        return self.oss.read_ledger(self.bucket, self.ledger_key)

    def measured_rates(self, entries: list[LedgerEntry] | None = None) -> Rates:
        """Backup, upload and restore rates measured so far in this migration (from the ledger).

        Files under :data:`RATE_SAMPLE_MIN_BYTES` measure fixed costs, not throughput: their restore
        times count as RDS task latency and they are left out of the MB/s figures.
        """
        entries = self.read_ledger() if entries is None else entries
        backup, upload, restore, latency = [], [], [], []
        requested: dict[str, LedgerEntry] = {}
        sizes: dict[str, int] = {}
        for entry in entries:
            if entry.file_name and entry.size_bytes:
                sizes[entry.file_name] = entry.size_bytes
            if entry.event == LedgerEvent.BACKUP_TAKEN and entry.backup and entry.backup.started_at:
                seconds = (entry.backup.finished_at - entry.backup.started_at).total_seconds()
                backup.append((entry.backup.size_bytes, seconds))
            elif entry.event == LedgerEvent.UPLOADED and entry.details.get("seconds"):
                upload.append((entry.size_bytes or 0, float(entry.details["seconds"])))
            elif entry.event == LedgerEvent.IMPORT_REQUESTED and entry.file_name:
                requested[entry.file_name] = entry
            elif entry.event == LedgerEvent.RESTORED and entry.file_name in requested:
                seconds = (entry.at - requested[entry.file_name].at).total_seconds()
                size = sizes.get(entry.file_name, 0)
                (restore if size >= RATE_SAMPLE_MIN_BYTES else latency).append((size, seconds))

        def throughput(samples: list[tuple[int, float]]) -> list[tuple[int, float]]:
            return [(size, seconds) for size, seconds in samples if size >= RATE_SAMPLE_MIN_BYTES]

        return Rates.from_samples(
            backup=throughput(backup),
            upload=throughput(upload),
            restore=restore,
            rds_task_latency=[seconds for _, seconds in latency],
        )

    # ----------------------------------------------------------------------------------------------
    # Compression decision
    # ----------------------------------------------------------------------------------------------

    def use_compression(self) -> bool:
        """``auto`` compresses where the source edition can (Web/Express cannot)."""
        if self.spec.compression == "on":
            return True
        if self.spec.compression == "off":
            return False
        return self.source.server_facts().can_compress_backups

    # ----------------------------------------------------------------------------------------------
    # Backups
    # ----------------------------------------------------------------------------------------------

    def take_backup(
        self,
        kind: str,
        file_name: str,
        on_progress: Callable[[float, float], None] | None = None,
    ) -> BackupRecord:
        """Back up to ``file_name`` unless msdb already confirms that file (a retried task).

        :param kind: FULL, DIFF, LOG or TAIL (a log backup WITH NORECOVERY).
        """
        server_path = self.server_path(file_name)
        existing = self.source.find_backup(self.database, server_path)
        if existing is not None and os.path.exists(self.worker_path(file_name)):
            log.info("Backup %s already in msdb and on disk: not taken again.", file_name)
            return existing
        record = self.source.backup(
            self.database,
            kind,
            server_path,
            backup_name=f"{kind} backup for ApsaraDB RDS migration",
            compression=self.use_compression(),
            on_progress=on_progress,
        )
        self.record_ledger("backup_taken", record, kind=kind, server_path=server_path)
        return record

    def full_backup_name(self, run_after: datetime) -> str:
        return backup_file_name(self.database, BackupType.FULL, run_after)

    def tail_backup_name(self, run_after: datetime) -> str:
        return backup_file_name(self.database, BackupType.LOG, run_after, seq=TAIL_SEQ)

    def next_log_name(self, cycle: int) -> str:
        """A name no backup in msdb has yet: two runs whose cycle 1 starts in the same second must not
        share a file (``take_backup`` would return the older backup instead of taking a new one)."""
        seq = cycle
        while True:
            name = backup_file_name(self.database, BackupType.LOG, datetime.now(UTC), seq=seq)
            if self.source.find_backup(self.database, self.server_path(name)) is None:
                return name
            seq += 1

    # ----------------------------------------------------------------------------------------------
    # Upload and import
    # ----------------------------------------------------------------------------------------------

    def upload(self, record: BackupRecord, checkpoint_dir: str | None = None) -> dict[str, Any]:
        """Upload one backup file (skipped when OSS already holds it with the same size and CRC64)."""
        local = self.worker_path(record.file_name)
        if not os.path.exists(local):
            raise FileNotFoundError(
                f"backup file {record.file_name!r} is not visible to this worker at {local!r}: check "
                "backup_folder.worker_path, or route this task to a worker that sees the folder (queue)."
            )
        result = self.oss.upload_file(
            self.bucket,
            local,
            self.object_key(record.file_name),
            checkpoint_dir=checkpoint_dir
            or os.path.join(self.spec.backup_folder.worker_path, ".oss-checkpoints"),
        )
        if not result.skipped:
            self.record_ledger(
                "uploaded", record, key=result.key, crc64=str(result.crc64), seconds=result.seconds
            )
        return {
            "file_name": record.file_name,
            "key": result.key,
            "size": result.size,
            "seconds": result.seconds,
            "skipped": result.skipped,
        }

    def find_migration_task_id(self) -> str | None:
        task = self.rds.find_migration_task(self.instance_id, self.target_database)
        return task.migrate_task_id if task else None

    def import_backup(self, migrate_task_id: str | None, record: BackupRecord) -> str:
        """Ask RDS to restore ``record``: the full creates the migration task, others join it.

        Returns the migration task id. Does nothing when RDS already lists the file for the task.
        """
        position = self.oss_position(record.file_name)
        if migrate_task_id is None:
            if record.backup_type is not BackupType.FULL:
                raise ValueError(f"{record.label}: a migration task starts from a full backup")
            migrate_task_id = self.rds.create_migration_task(self.instance_id, self.target_database, position)
            self.record_ledger("import_requested", record, migrate_task_id=migrate_task_id)
            return migrate_task_id
        known = {f.file_name: f for f in self.rds.get_file_states(self.instance_id, migrate_task_id)}
        previous = known.get(record.file_name)
        if previous is not None and previous.status not in FILE_FAILURE_STATES:
            log.info("RDS already has %s (%s): not imported again.", record.file_name, previous.status)
            return migrate_task_id
        self.rds.import_incremental(self.instance_id, self.target_database, migrate_task_id, position)
        self.record_ledger("import_requested", record, migrate_task_id=migrate_task_id)
        return migrate_task_id

    # ----------------------------------------------------------------------------------------------
    # Where the chain stands
    # ----------------------------------------------------------------------------------------------

    def our_history(self, since: datetime | None = None) -> list[BackupRecord]:
        """Our backups of this database in msdb, oldest first."""
        since = since or datetime.now(UTC) - HISTORY_WINDOW
        rows = self.source.backup_history(self.database, since)
        return [BackupRecord.from_msdb_row(r) for r in rows if self.is_ours(str(r["physical_device_name"]))]

    def chain_state(self, migrate_task_id: str | None) -> ChainState:
        """Rebuild the chain state from msdb (what we took) and RDS (what it has and restored)."""
        history = self.our_history()
        if migrate_task_id is None:
            return ChainState(None, None, pending=history)
        # A file imported again after a failure is listed twice: its latest entry counts.
        listed = self.rds.get_file_states(self.instance_id, migrate_task_id)
        files = list({f.file_name: f for f in sorted(listed, key=_listed_order)}.values())
        by_name = {r.file_name: r for r in history}
        state = ChainState(migrate_task_id, None)
        known: set[str] = set()
        for f in sorted(files, key=lambda f: by_name[f.file_name].first_lsn if f.file_name in by_name else 0):
            record = by_name.get(f.file_name)
            if f.status in FILE_FAILURE_STATES:
                state.failed.append((f.file_name, f.description))
                continue
            if record is None:
                raise LookupError(
                    f"RDS lists {f.file_name!r} for migration task {migrate_task_id} but the source's msdb "
                    "has no such backup of this database in the last week: was msdb history purged?"
                )
            known.add(f.file_name)
            if f.status in FILE_SUCCESS_STATES and not state.in_flight:
                state.restored = apply(state.restored, record)
            else:
                state.in_flight.append(record)
        full = next((r for r in history if r.file_name in known and r.backup_type is BackupType.FULL), None)
        state.pending = [
            r
            for r in history
            if r.file_name not in known
            and r.file_name not in {name for name, _ in state.failed}
            and full is not None
            and r.first_lsn >= full.first_lsn
            and r.backup_type is not BackupType.FULL
        ]
        state.pending.sort(key=lambda r: (r.first_lsn, r.last_lsn))
        return state

    def foreign_backups_in_gap(self, error: Exception) -> str:
        """Name the log backups of other jobs that hold the LSNs a gap error says are missing."""
        gap = (getattr(error, "from_lsn", None), getattr(error, "to_lsn", None))
        if None in gap:
            return ""
        rows = self.source.backup_history(self.database, datetime.now(UTC) - HISTORY_WINDOW)
        culprits = [
            f"{r['physical_device_name']} (by {r.get('user_name') or '?'}, {r.get('backup_start_date')})"
            for r in rows
            if str(r["type"]).upper() == "L"
            and not self.is_ours(str(r["physical_device_name"]))
            and int(r["first_lsn"]) < gap[1]
            and int(r["last_lsn"]) > gap[0]
        ]
        if not culprits:
            return ""
        return " Log backups by another job hold these LSNs: " + "; ".join(culprits) + "."

    def check_pending(self, state: ChainState) -> None:
        """Refuse to upload anything that would not continue the chain (raises a ChainError)."""
        point = state.chain_head
        for record in state.pending:
            check_next(point, record)
            point = apply(point, record)

    # ----------------------------------------------------------------------------------------------
    # Cutover helpers
    # ----------------------------------------------------------------------------------------------

    def freeze_source(self) -> str:
        facts = self.source.database_facts(self.database)
        if facts is None:
            raise LookupError(f"source database {self.database!r} not found")
        if facts.user_access_desc == "RESTRICTED_USER" or facts.state_desc == "RESTORING":
            return "already frozen"
        self.source.set_user_access(self.database, "RESTRICTED_USER")
        self.record_ledger("source_frozen")
        return "frozen"

    def roll_back_source(self) -> list[str]:
        """Bring the source back to normal service after a failed cutover; report what was done."""
        done: list[str] = []
        facts = self.source.database_facts(self.database)
        if facts is None:
            raise LookupError(f"source database {self.database!r} not found")
        if facts.state_desc == "RESTORING":
            self.source.recover_database(self.database)
            done.append("RESTORE DATABASE ... WITH RECOVERY (source back online)")
            facts = self.source.database_facts(self.database)
        if facts is not None and facts.user_access_desc != "MULTI_USER":
            self.source.set_user_access(self.database, "MULTI_USER")
            done.append("SET MULTI_USER (writes allowed again)")
        self.record_ledger("rolled_back", actions=done)
        return done
