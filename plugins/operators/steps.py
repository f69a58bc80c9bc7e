"""The migration's steps for one configured database, composed from the three hooks.

Operators stay short because the work lives here, once: take a backup, upload it, import it, and
reconstruct where the chain stands from ground truth (the source's msdb history and the RDS file
list) so that any task can be retried and look before it acts.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from hooks.rds import (
    FILE_DELETED_STATES,
    FILE_FAILURE_STATES,
    FILE_SUCCESS_STATES,
    TASK_FAILURE_STATES,
    TASK_SUCCESS_STATES,
    RdsApiError,
    RdsMigrationHook,
)
from rds_migration.chain import BackupRecord, BackupType
from rds_migration.config import MigrationSpec
from rds_migration.estimate import Rates
from rds_migration.ledger import LedgerEntry, LedgerEvent, current_migration_task_id, task_ids_of
from rds_migration.naming import (
    adopted_file_name,
    backup_file_name,
    backup_stem,
    object_key,
    oss_object_position,
    parse_backup_file_name,
    path_under,
    server_backup_path,
    validate_key_prefix,
    worker_backup_path,
)
from rds_migration.quota import Budget, QuotaLimits, ShippingDecision, budget_at, plan_next_shipment
from rds_migration.shipping import (
    ADOPTED,
    COPIED,
    FAILED,
    IN_FLIGHT,
    OURS,
    RESTORED,
    ChainState,
    ListedFile,
    Shippable,
    build_chain_state,
)

if TYPE_CHECKING:  # pymssql and oss2 are imported when a hook is first used, not at DAG parse time
    from hooks.mssql import MigrationMsSqlHook, ServerFacts
    from hooks.oss import OssMigrationHook

log = logging.getLogger(__name__)

# Sequence number reserved for the tail-log backup of a run, so a retried tail task finds its file.
TAIL_SEQ = 0
# Smaller files measure fixed costs (task latency), not throughput.
RATE_SAMPLE_MIN_BYTES = 1024 * 1024
# How far back msdb history is read when nothing else bounds it (RDS keeps tasks for a week).
HISTORY_WINDOW = timedelta(days=8)
# RDS lists CreateTime to the second (yyyy-MM-ddTHH:mm:ssZ): an import happened up to this much later.
RDS_TIME_PRECISION = timedelta(seconds=1)


#: Task states a migration never continues from (``Terminated``: after TerminateMigrateTask).
TASK_TERMINAL_FAILURES = TASK_FAILURE_STATES | {"Terminated"}


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def shown(path: str) -> str:
    """A path in a message as the user would type it: quoted, backslashes not doubled (``repr`` doubles
    them); ``repr`` only when the path holds a quote or an unprintable character."""
    return f"'{path}'" if "'" not in path and path.isprintable() else repr(path)


def parent_folder(path: str) -> str:
    """The folder of a file path, Windows (``D:\\Backups\\x.trn``) or POSIX."""
    cut = max(path.rfind("\\"), path.rfind("/"))
    return path[:cut] if cut > 0 else ""


def _file_state(status: str) -> str:
    """RDS file status -> restored / failed / in flight. ``Deleted``: RDS removed its local copy after
    restoring the file (real-world R10), so it counts as restored."""
    if status in FILE_SUCCESS_STATES or status in FILE_DELETED_STATES:
        return RESTORED
    if status in FILE_FAILURE_STATES:
        return FAILED
    return IN_FLIGHT


class MigrationSteps:
    """The procedure's steps for one database; hooks are built lazily on first use.

    :param spec: the validated configuration of this migration.
    """

    def __init__(self, spec: MigrationSpec) -> None:
        self.spec = spec
        #: dag_id, run_id, task_id and try of the task these steps run for: stamped on every ledger line.
        self.identity: dict[str, Any] = {}

    def bind(self, ti: Any) -> MigrationSteps:
        """Stamp ledger lines with this task instance's identity (the audit trail says who did what)."""
        self.identity = {
            "dag_id": getattr(ti, "dag_id", None),
            "run_id": getattr(ti, "run_id", None),
            "task_id": getattr(ti, "task_id", None),
            "try_number": getattr(ti, "try_number", None),
        }
        return self

    # ----------------------------------------------------------------------------------------------
    # Hooks and names
    # ----------------------------------------------------------------------------------------------

    @cached_property
    def source(self) -> MigrationMsSqlHook:
        from hooks.mssql import MigrationMsSqlHook

        return MigrationMsSqlHook(mssql_conn_id=self.spec.source.mssql_conn_id)

    @cached_property
    def source_server(self) -> ServerFacts:
        """Version and edition of the source server (read once per task)."""
        return self.source.server_facts()

    @cached_property
    def target_sql(self) -> MigrationMsSqlHook:
        from hooks.mssql import MigrationMsSqlHook

        return MigrationMsSqlHook(mssql_conn_id=self.spec.target.mssql_conn_id)

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
        self,
        event: str,
        record: BackupRecord | None = None,
        file_name: str | None = None,
        migrate_task_id: str | None = None,
        **details: Any,
    ) -> None:
        """Append one audit line to the ledger object next to the backups.

        :param file_name: the name in OSS/RDS when it differs from the record's (an adopted backup).
        """
        if record is not None:
            entry = LedgerEntry.for_backup(
                event, record, self.database, migrate_task_id=migrate_task_id, details=details
            )
            if file_name:
                entry = replace(entry, file_name=file_name)
        else:
            entry = LedgerEntry(
                event=event,
                database=self.database,
                file_name=file_name,
                migrate_task_id=migrate_task_id,
                details=details,
            )
        self.oss.append_ledger(self.bucket, self.ledger_key, [replace(entry, **self.identity)])

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
        return self.source_server.can_compress_backups

    def compression_algorithm(self) -> str | None:
        """SQL Server 2022 compresses with the server's default algorithm, which may be QAT_DEFLATE (S9):
        pin MS_XPRESS, the one every RDS version restores. Older versions have only that one."""
        return "MS_XPRESS" if self.source_server.major_version >= 16 else None

    # ----------------------------------------------------------------------------------------------
    # Backups
    # ----------------------------------------------------------------------------------------------

    def take_backup(
        self,
        kind: str,
        file_name: str,
        on_progress: Callable[[float, float], None] | None = None,
        *,
        wait_for_slot: bool = True,
    ) -> BackupRecord:
        """Back up to ``file_name`` unless msdb already confirms that file (a retried task).

        :param kind: FULL, DIFF or LOG.
        :param wait_for_slot: take one of the server's backup slots (``source.max_concurrent_backups``)
            first, waiting for one; False for the tail-log backup: its database is frozen, and it is small.
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
            compression_algorithm=self.compression_algorithm(),
            backup_slots=self.spec.source.max_concurrent_backups if wait_for_slot else None,
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
        return self.next_backup_name("LOG", cycle)

    def next_backup_name(self, kind: str, seq: int = 1) -> str:
        """A new file name for a LOG or DIFF backup taken now (see :meth:`next_log_name`)."""
        while True:
            name = backup_file_name(self.database, kind, datetime.now(UTC), seq=seq)
            if self.source.find_backup(self.database, self.server_path(name)) is None:
                return name
            seq += 1

    # ----------------------------------------------------------------------------------------------
    # Upload and import
    # ----------------------------------------------------------------------------------------------

    def ours(self, record: BackupRecord) -> Shippable:
        """A backup this package took, as a shippable file."""
        return Shippable(record, record.file_name, self.worker_path(record.file_name), OURS)

    def upload(self, item: Shippable | BackupRecord, checkpoint_dir: str | None = None) -> dict[str, Any]:
        """Upload one backup file (skipped when OSS already holds it with the same size and CRC64)."""
        item = item if isinstance(item, Shippable) else self.ours(item)
        record, local = item.record, item.worker_path
        if not os.path.exists(local):
            raise FileNotFoundError(
                f"backup file {item.label} is not visible to this worker at {local!r}: check "
                "backup_folder.worker_path (or adopt_from[].worker_path), or route this task to a worker "
                "that sees the folder (queue)."
            )
        if item.origin == COPIED:
            self._check_copied_file(item)
        result = self.oss.upload_file(
            self.bucket,
            local,
            self.object_key(item.import_name),
            checkpoint_dir=checkpoint_dir
            or os.path.join(self.spec.backup_folder.worker_path, ".oss-checkpoints"),
        )
        if not result.skipped:
            self.record_ledger(
                "uploaded",
                record,
                file_name=item.import_name,
                key=result.key,
                crc64=str(result.crc64),
                seconds=result.seconds,
                origin=item.origin,
            )
        return {
            "file_name": item.import_name,
            "key": result.key,
            "size": result.size,
            "seconds": result.seconds,
            "skipped": result.skipped,
        }

    def _check_copied_file(self, item: Shippable) -> None:
        """A file copied into the backup folder is adopted only if it really is that backup set."""
        server_path = self.server_path(os.path.basename(item.worker_path))
        header = self.source.read_backup_header(server_path)
        found = str(header.get("BackupSetGUID") or "").strip("{}").lower()
        if found != item.record.backup_set_uuid:
            raise ValueError(
                f"{server_path!r} is not the backup set msdb recorded for {item.record.physical_device_name!r} "
                f"(BackupSetGUID {found or '?'} instead of {item.record.backup_set_uuid}): copy the right file "
                "into the backup folder, or remove this one."
            )

    def find_migration_task_id(self, entries: list[LedgerEntry] | None = None) -> str | None:
        """The migration task of this migration: the id recorded in the ledger (it never ages out), else
        one DescribeMigrateTasks still lists (a week only) — then recorded, so it is never lost again."""
        entries = self.read_ledger() if entries is None else entries
        recorded = current_migration_task_id(entries)
        if recorded is not None:
            return recorded
        abandoned = {e.migrate_task_id for e in entries if e.event is LedgerEvent.MIGRATION_ABANDONED}
        task = self.rds.find_migration_task(self.instance_id, self.target_database)
        if task is None or task.migrate_task_id in abandoned or task.status in TASK_TERMINAL_FAILURES:
            return None
        self.record_ledger("task_discovered", migrate_task_id=task.migrate_task_id, status=task.status)
        return task.migrate_task_id

    def abandon_migration(self, migrate_task_id: str, *, wait_s: float = 600, poll_s: float = 5) -> list[str]:
        """Start over: terminate the migration task and drop the database it was restoring on RDS.

        Refused while a database this task opened is still there (that would drop a live database); once
        someone dropped it on purpose, the opened task is simply left behind. Safe to repeat:
        terminating a terminated task and dropping an absent database do nothing.
        """
        task = self.rds.get_task_state(self.instance_id, migrate_task_id)
        present = self.target_database in self.rds.database_names(self.instance_id)
        if task.status in TASK_SUCCESS_STATES and present:
            raise ValueError(
                f"Migration task {migrate_task_id} is {task.status}: {self.target_database!r} is already open on "
                "RDS, so starting over would drop a live database. Drop or rename it on RDS yourself first "
                "if that is really what you want."
            )
        done = []
        if task.status not in TASK_TERMINAL_FAILURES | TASK_SUCCESS_STATES:
            try:
                self.rds.terminate_migration_task(self.instance_id, migrate_task_id)
                done.append(f"terminated migration task {migrate_task_id}")
            except RdsApiError as error:
                # RDS may terminate FULL tasks only (R3, UNKNOWN for Access Pending ones): dropping the
                # database being restored ends that task too.
                if error.code != "InvalidTaskType.Invalid":
                    raise
                done.append(f"RDS does not terminate migration task {migrate_task_id} ({error.code})")
        if present and self.target_database in self.rds.database_names(self.instance_id):
            self.rds.delete_database(self.instance_id, self.target_database)
            done.append(f"dropped the database {self.target_database!r} being restored on RDS")
        deadline = time.monotonic() + wait_s
        while self.target_database in self.rds.database_names(self.instance_id):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.target_database!r} is still listed on {self.instance_id} {wait_s:.0f} s after it was "
                    "dropped: retry this task later."
                )
            time.sleep(poll_s)
        self.record_ledger("migration_abandoned", migrate_task_id=migrate_task_id, actions=done)
        return done

    def import_backup(self, migrate_task_id: str | None, item: Shippable | BackupRecord) -> str:
        """Ask RDS to restore ``item``: the full creates the migration task, others join it.

        Returns the migration task id (the parent's). Does nothing when RDS already lists the file.
        """
        item = item if isinstance(item, Shippable) else self.ours(item)
        record = item.record
        position = self.oss_position(item.import_name)
        if migrate_task_id is None:
            if record.backup_type is not BackupType.FULL:
                raise ValueError(f"{record.label}: a migration task starts from a full backup")
            migrate_task_id = self.rds.create_migration_task(self.instance_id, self.target_database, position)
            self.record_ledger(
                "import_requested", record, file_name=item.import_name, migrate_task_id=migrate_task_id
            )
            return migrate_task_id
        listed = {f.name for f in self.listed_files(migrate_task_id) if f.state != FAILED}
        if item.import_name in listed:
            log.info("RDS already has %s: not imported again.", item.import_name)
            return migrate_task_id
        answered = self.rds.import_incremental(
            self.instance_id, self.target_database, migrate_task_id, position
        )
        self.record_ledger(
            "import_requested",
            record,
            file_name=item.import_name,
            migrate_task_id=answered,
            parent_task_id=migrate_task_id,
            origin=item.origin,
        )
        return migrate_task_id

    # ----------------------------------------------------------------------------------------------
    # Where the chain stands
    # ----------------------------------------------------------------------------------------------

    def history(self, since: datetime) -> list[BackupRecord]:
        """Every backup set of this database in msdb since ``since`` (UTC), oldest first."""
        return [BackupRecord.from_msdb_row(r) for r in self.source.backup_history(self.database, since)]

    def history_since(self, entries: list[LedgerEntry]) -> datetime:
        """How far back msdb is read: from the first full of this migration (migrations last weeks, and
        the first log after a full can begin before it), or :data:`HISTORY_WINDOW` when there is none."""
        starts = [
            e.backup.started_at
            for e in entries
            if e.backup is not None and e.backup.backup_type is BackupType.FULL and e.backup.started_at
        ]
        oldest = min((_aware(t) for t in starts), default=None)
        now = datetime.now(UTC)
        return min(oldest - timedelta(days=1), now - HISTORY_WINDOW) if oldest else now - HISTORY_WINDOW

    def our_history(self, since: datetime | None = None) -> list[BackupRecord]:
        """Our backups of this database in msdb, oldest first."""
        since = since or datetime.now(UTC) - HISTORY_WINDOW
        return [
            r for r in self.history(since) if r.physical_device_name and self.is_ours(r.physical_device_name)
        ]

    def shippable(self, history: list[BackupRecord]) -> tuple[list[Shippable], list[BackupRecord]]:
        """Split the history into what may be shipped (ours and adopted) and other jobs' backups.

        Adopted: log and differential backups (never COPY_ONLY ones, which do not continue a chain)
        written to a folder in ``backup_folder.adopt_from``, or copied by the user into the migration's
        own backup folder. A striped backup set cannot be adopted: RDS imports one file per backup.
        """
        folder = self.spec.backup_folder
        ours: list[Shippable] = []
        foreign: list[BackupRecord] = []
        for record in history:
            device = record.physical_device_name or record.file_name
            if self.is_ours(device):
                ours.append(self.ours(record))
                continue
            adoptable = (
                record.backup_type is not BackupType.FULL and not record.is_copy_only and record.stripes == 1
            )
            item = self._adopted(record, device, folder.adopt_from) if adoptable else None
            if item is not None:
                ours.append(item)
            else:
                foreign.append(record)
        return ours, foreign

    def _adopted(self, record: BackupRecord, device: str, adopt_from: list[Any]) -> Shippable | None:
        name = self.import_name_of(record)
        for adopt in adopt_from:
            relative = path_under(device, adopt.server_path)
            if relative is not None:
                return Shippable(record, name, worker_backup_path(adopt.worker_path, relative), ADOPTED)
        copied = self.worker_path(record.file_name)
        if os.path.isfile(copied):
            return Shippable(record, name, copied, COPIED)
        return None

    def import_name_of(self, record: BackupRecord) -> str:
        """The name another job's backup gets in OSS and RDS (its own may hold characters RDS refuses)."""
        set_id = record.backup_set_id
        if set_id is None:  # a record kept from before msdb ids were recorded: derive a stable number
            set_id = int(record.backup_set_uuid.replace("-", "")[:8], 16)
        taken = record.started_at or datetime(1970, 1, 1)
        return adopted_file_name(self.database, record.backup_type, taken, set_id)

    def listed_files(
        self, migrate_task_id: str, entries: list[LedgerEntry] | None = None
    ) -> list[ListedFile]:
        """The files of the migration task (and of every child task id RDS answered), as the chain sees them."""
        entries = self.read_ledger() if entries is None else entries
        listed: list[ListedFile] = []
        for task_id in task_ids_of(entries, migrate_task_id):
            for f in self.rds.get_file_states(self.instance_id, task_id):
                listed.append(
                    ListedFile(
                        name=re.split(r"[\\/]", f.file_name)[-1],
                        state=_file_state(f.status),
                        description=f.description,
                        created=f.create_time,
                        status=f.status,
                    )
                )
        return listed

    def task_id_for_file(self, migrate_task_id: str, file_name: str, entries: list[LedgerEntry]) -> str:
        """The id RDS answered when ``file_name`` was imported (a child id, or the task's own)."""
        answered = [
            e.migrate_task_id
            for e in entries
            if e.event is LedgerEvent.IMPORT_REQUESTED and e.file_name == file_name and e.migrate_task_id
        ]
        return answered[-1] if answered else migrate_task_id

    def chain_state(
        self, migrate_task_id: str | None, entries: list[LedgerEntry] | None = None
    ) -> ChainState:
        """Rebuild the chain state from msdb (what was backed up), RDS (what it has) and the ledger."""
        entries = self.read_ledger() if entries is None else entries
        history = self.history(self.history_since(entries))
        shippable, foreign = self.shippable(history)
        if migrate_task_id is None:
            return build_chain_state(None, [], shippable, {}, foreign)
        known: dict[str, BackupRecord] = {}
        for entry in entries:  # records kept in the ledger, for msdb history purged since
            if entry.backup is not None and entry.file_name:
                known.setdefault(entry.file_name, entry.backup)
        for record in history:
            known[record.file_name] = record  # a file someone imported by hand under its own name
            known[self.import_name_of(record)] = record
        listed = self.listed_files(migrate_task_id, entries)
        return build_chain_state(migrate_task_id, listed, shippable, known, foreign)

    def record_skipped(self, state: ChainState, entries: list[LedgerEntry]) -> None:
        """Record once, in the ledger, each backup that will never be imported (an empty log backup)."""
        done = {e.file_name for e in entries if e.event is LedgerEvent.SKIPPED}
        for item, reason in state.skipped:
            if item.import_name not in done:
                log.info("Not importing %s: %s", item.label, reason)
                self.record_ledger("skipped", item.record, file_name=item.import_name, reason=reason)

    def explain_blocked(self, state: ChainState) -> str:
        """Why the chain cannot continue, and the ways out that work (each named concretely: the files to
        copy, the folders to adopt, the run conf to start over)."""
        lines = [f"The restore chain cannot continue: {state.blocked}"]
        adoptable = [r for r in state.culprits if r.stripes == 1]
        for record in state.culprits:
            striped = (
                f" (striped over {record.stripes} files: RDS imports one file per backup)"
                if record.stripes > 1
                else ""
            )
            lines.append(
                f"- another job took {record.label} to {shown(record.physical_device_name or '')}{striped}"
            )
        folder = self.spec.backup_folder
        if adoptable:
            files = ", ".join(shown(r.physical_device_name or r.file_name) for r in adoptable)
            folders = sorted({parent_folder(r.physical_device_name or "") for r in adoptable} - {""})
            adopt = "; ".join(f"server_path: {shown(f)}" for f in folders)
            again = "clear this task or trigger the DAG again"
            lines.append(
                f"Stop that job, then either copy {files} into the migration's backup folder "
                f"{shown(folder.server_path)} (the worker sees it at {shown(folder.worker_path)}; keep the file "
                f"name) and {again}, or add that job's folder to backup_folder.adopt_from in the migration config "
                f"({adopt}, and worker_path: the same folder as the worker sees it) and {again}: its backups are "
                "adopted into the chain in LSN order."
            )
        lines.append(
            'Or start over: trigger this DAG with the run conf {"start_over": true} — the RDS migration task is '
            "terminated, the database being restored on RDS is dropped, and a new full backup starts a new one."
        )
        return "\n".join(lines)

    # ----------------------------------------------------------------------------------------------
    # Cutover helpers
    # ----------------------------------------------------------------------------------------------

    def frozen_at(self, entries: list[LedgerEntry], run_id: str) -> datetime | None:
        """When this run froze the source (None: not frozen by this run)."""
        times = [e.at for e in entries if e.event is LedgerEvent.SOURCE_FROZEN and e.run_id == run_id]
        return max(times) if times else None

    def freeze_source(self, entries: list[LedgerEntry], run_id: str) -> str:
        """Stop every writer, privileged ones included (S2): RESTRICTED_USER, then READ_ONLY, each
        WITH ROLLBACK IMMEDIATE. RESTRICTED_USER alone lets db_owner, dbcreator and sysadmin sessions
        back in; READ_ONLY refuses their writes too (error 3906), and the log backup that follows is the
        last one: nothing can be written after it. The state before is recorded first, so the rollback
        restores exactly it, and so does the release of the target (both options travel with the log).
        """
        facts = self.source.database_facts(self.database)
        if facts is None:
            raise LookupError(f"source database {self.database!r} not found")
        if self.frozen_at(entries, run_id) is None:
            if facts.is_read_only or facts.user_access_desc != "MULTI_USER" or facts.state_desc != "ONLINE":
                raise ValueError(
                    f"The source database is {facts.state_desc}, {facts.user_access_desc}, "
                    f"{'READ_ONLY' if facts.is_read_only else 'READ_WRITE'} before the freeze: another cutover "
                    "or an administrator changed it. Put it back ONLINE, MULTI_USER, READ_WRITE (or finish the "
                    "other cutover) and approve again."
                )
            self.record_ledger(
                "source_frozen", user_access=facts.user_access_desc, read_only=facts.is_read_only
            )
        if facts.user_access_desc != "RESTRICTED_USER":
            self.source.set_database_option(self.database, "RESTRICTED_USER")
        if not facts.is_read_only:
            self.source.set_database_option(self.database, "READ_ONLY")
        return "frozen: RESTRICTED_USER, READ_ONLY"

    def state_before_freeze(self, entries: list[LedgerEntry]) -> tuple[str, bool]:
        """(user access, read only) the source had when the last cutover froze it."""
        frozen = [e for e in entries if e.event is LedgerEvent.SOURCE_FROZEN]
        if not frozen:
            return "MULTI_USER", False
        details = frozen[-1].details
        return str(details.get("user_access") or "MULTI_USER"), bool(details.get("read_only", False))

    def roll_back_source(self, entries: list[LedgerEntry]) -> list[str]:
        """Give the source back to the applications after a failed cutover; report what was done.

        The freeze is undone by the same ALTER DATABASE rights it needed (no RESTORE, no new recovery
        fork): the log chain simply continues, and a later cutover can follow. A source left RESTORING
        by a NORECOVERY tail (taken by hand, or by an older version of this package) is recovered first.
        """
        done: list[str] = []
        facts = self.source.database_facts(self.database)
        if facts is None:
            raise LookupError(f"source database {self.database!r} not found")
        if facts.state_desc == "RESTORING":
            self.source.recover_database(self.database)
            done.append("RESTORE DATABASE ... WITH RECOVERY (source back online; a new recovery fork starts)")
            facts = self.source.database_facts(self.database)
        access, read_only = self.state_before_freeze(entries)
        if facts is not None and facts.is_read_only and not read_only:
            self.source.set_database_option(self.database, "READ_WRITE")
            done.append("SET READ_WRITE (writes allowed again)")
        if facts is not None and facts.user_access_desc != access:
            self.source.set_database_option(self.database, access)
            done.append(f"SET {access} (applications may connect again)")
        self.record_ledger("rolled_back", actions=done)
        return done

    def release_target(self, entries: list[LedgerEntry]) -> list[str]:
        """Let applications in on the target: undo the freeze state that travelled in with the log."""
        hook = self.target_sql
        facts = hook.database_facts(self.target_database)
        if facts is None:
            raise LookupError(f"target database {self.target_database!r} is not visible on the RDS instance")
        access, read_only = self.state_before_freeze(entries)
        done = []
        if facts.is_read_only and not read_only:
            hook.set_database_option(self.target_database, "READ_WRITE")
            done.append("SET READ_WRITE")
        if facts.user_access_desc != access:
            hook.set_database_option(self.target_database, access)
            done.append(f"SET {access}")
        self.record_ledger("target_released", actions=done)
        return done

    # ----------------------------------------------------------------------------------------------
    # Import quota
    # ----------------------------------------------------------------------------------------------

    @property
    def quota_limits(self) -> QuotaLimits:
        quota = self.spec.import_quota
        return QuotaLimits(
            per_database=quota.per_database,
            per_instance=quota.per_instance,
            window=timedelta(hours=quota.window_hours),
            cutover_reserve=quota.cutover_reserve,
        )

    def plan_shipment(
        self,
        state: ChainState,
        entries: list[LedgerEntry],
        *,
        interval: timedelta,
        budget: Budget | None = None,
    ) -> ShippingDecision:
        """When the next import may happen without touching the cutover's reserve (see rds_migration.quota).

        :param budget: the quota budget when the caller just read it (else it is read now).
        """
        head = state.chain_head
        return plan_next_shipment(
            budget or self.quota_budget(entries, state.migrate_task_id),
            interval=interval,
            last_import_at=None,
            pending_files=len(state.pending),
            logs_applied=head.logs_applied if head else 0,
        )

    def quota_budget(self, entries: list[LedgerEntry], migrate_task_id: str | None) -> Budget:
        """The import budget now, counted from this migration's ledger and from RDS.

        This database: every import RDS lists for our task ids (the parent may be older than the week
        DescribeMigrateTasks covers) and for other tasks of the same database name it still lists, plus
        requests the ledger has and RDS does not list (an ambiguous failure may still count). The rest
        of the instance: the files of every other database's listed task. A time only RDS lists counts as
        the latest moment it can stand for (:data:`RDS_TIME_PRECISION` on), so an import never leaves our
        window before it leaves RDS's.
        """
        now = datetime.now(UTC)

        def latest(listed_at: datetime) -> datetime:
            return _aware(listed_at) + RDS_TIME_PRECISION

        ours: dict[str, list[datetime]] = {}
        our_ids: set[str] = set()
        if migrate_task_id is not None:
            our_ids = set(task_ids_of(entries, migrate_task_id))
            for f in self.listed_files(migrate_task_id, entries):
                if f.created is not None:
                    ours.setdefault(f.name, []).append(latest(f.created))
        others: list[datetime] = []
        for task in self.rds.list_migration_tasks(self.instance_id):
            if task.migrate_task_id in our_ids:
                continue
            files = self.rds.get_file_states(self.instance_id, task.migrate_task_id)
            for f in files:
                if f.create_time is None:
                    continue
                if task.db_name == self.target_database:
                    ours.setdefault(re.split(r"[\\/]", f.file_name)[-1], []).append(latest(f.create_time))
                else:
                    others.append(latest(f.create_time))
        requested: dict[str, list[datetime]] = {}
        for e in entries:
            if e.event is LedgerEvent.IMPORT_REQUESTED and e.file_name:
                requested.setdefault(e.file_name, []).append(_aware(e.at))
        database_times: list[datetime] = []
        for name in set(ours) | set(requested):
            # The ledger's times are on our clock and written once RDS had accepted the import: exact
            # enough, and never early. RDS's own (to the second) count when it lists more imports.
            listed, asked = ours.get(name, []), requested.get(name, [])
            database_times.extend(asked if len(asked) >= len(listed) else listed)
        return budget_at(
            now,
            database_times,
            others,
            limits=self.quota_limits,
            database=self.target_database,
        )
