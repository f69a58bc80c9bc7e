"""A realistic backup history for a database, seeded at instance build time (config key ``history``).

Most production databases in FULL recovery had a backup job (an Agent job, a maintenance plan, Ola
Hallengren's DatabaseBackup) that is stopped before a migration. Its backups are taken here through
the engine itself, in the past: real files in the job's folder, real LSNs, log truncation and msdb rows
whose ``backup_start_date`` is server local time. So the chain consequences are real: the job's last
log backup ended where the next log backup anyone takes begins, even when a new full is taken after
it (a full never moves the log chain).

File names follow Ola Hallengren's DatabaseBackup defaults
(``<server>\\<db>\\FULL\\<server>_<db>_FULL_<yyyymmdd>_<hhmmss>.bak``, ``LOG`` / ``.trn``; a striped
backup numbers its files ``_1``, ``_2``). A third-party COPY_ONLY full (a VSS snapshot tool such as
Veeam) is recorded as SQL Server records VDI snapshot backups: ``is_snapshot = 1``,
``device_type = 7`` (virtual device) and a GUID as ``physical_device_name`` — no file a restore
could use.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.mssql.engine.instance import Instance

KEYS = {
    "enabled",
    "folder",
    "login",
    "fulls_every_hours",
    "logs_every_minutes",
    "span_hours",
    "stopped_minutes_ago",
    "copy_only_full_by",
    "striped_full",
    "writes_per_interval",
}
_ILLEGAL_IN_FILE_NAMES = re.compile(r'[\\/:*?"<>|]')
TABLE = "dbo.orders"  # the application table the sandbox workload writes (sandbox/mssql/workload.py)
CREATE_TABLE = (
    "CREATE TABLE dbo.orders (id int NOT NULL PRIMARY KEY, customer nvarchar(100) NULL, "
    "amount decimal(12,2) NULL, note nvarchar(max) NULL, updated_at datetime2 NULL)"
)


@dataclass(frozen=True)
class HistoryPlan:
    """The backup job that ran on a database until it was stopped."""

    folder: str
    login: str = "NT SERVICE\\SQLSERVERAGENT"
    fulls_every_hours: float = 24
    logs_every_minutes: float = 15
    span_hours: float = 48
    stopped_minutes_ago: float = 20
    copy_only_full_by: str | None = None
    striped_full: bool = False
    writes_per_interval: int = 2


def _fail(message: str):
    from sandbox.mssql.engine.instance import ConfigError

    raise ConfigError(message)


def parse(spec: object, where: str) -> HistoryPlan | None:
    """The ``history`` mapping of a database (None when ``enabled: false``); errors name the field."""
    if not isinstance(spec, dict):
        _fail(f"{where}: expected a mapping")
    unknown = set(spec) - KEYS
    if unknown:
        _fail(f"{where}: unknown field(s) {sorted(unknown)}")
    if not spec.get("enabled", True):
        return None
    folder = spec.get("folder")
    if not isinstance(folder, str) or not folder:
        _fail(f"{where}.folder: the job's backup folder (a server path, mapped by path_map) is required")
    values: dict = {"folder": folder}
    for key in ("fulls_every_hours", "logs_every_minutes", "span_hours", "stopped_minutes_ago"):
        if key in spec:
            value = spec[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                _fail(f"{where}.{key}: expected a non-negative number, got {value!r}")
            values[key] = float(value)
    for key in ("login", "copy_only_full_by"):
        if spec.get(key) is not None:
            if not isinstance(spec[key], str) or not spec[key]:
                _fail(f"{where}.{key}: expected a non-empty string")
            values[key] = spec[key]
    if "striped_full" in spec:
        if not isinstance(spec["striped_full"], bool):
            _fail(f"{where}.striped_full: expected true or false")
        values["striped_full"] = spec["striped_full"]
    if "writes_per_interval" in spec:
        writes = spec["writes_per_interval"]
        if isinstance(writes, bool) or not isinstance(writes, int) or writes < 0:
            _fail(f"{where}.writes_per_interval: expected a non-negative integer")
        values["writes_per_interval"] = writes
    plan = HistoryPlan(**values)
    if plan.fulls_every_hours <= 0:
        _fail(f"{where}.fulls_every_hours: must be greater than 0")
    if plan.span_hours <= plan.stopped_minutes_ago / 60:
        _fail(f"{where}.span_hours: the history must start before the job was stopped (stopped_minutes_ago)")
    return plan


class _JobClock:
    """The instance's clock while the history is replayed: set to each job run, ticking on each read."""

    def __init__(self, start: dt.datetime):
        self.at = start
        self.lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self.lock:
            self.at += dt.timedelta(milliseconds=150)  # each step of a backup takes a little time
            return self.at

    def timestamp(self) -> float:
        return self.now().timestamp()

    def jump(self, moment: dt.datetime) -> None:
        with self.lock:
            self.at = max(self.at, moment)


def seed(inst: Instance, database: str, plan: HistoryPlan) -> None:
    """Run the backup job's history on ``database`` (FULL/BULK_LOGGED: fulls and logs; SIMPLE: fulls)."""
    from sandbox.mssql.engine.admin import internal_session
    from sandbox.mssql.engine.executor import Executor

    db = inst.database(database)
    if inst.local_path(plan.folder + "\\x") is None:
        _fail(
            f"databases.{database}.history.folder: '{plan.folder}' is not mapped to a local directory by "
            "path_map"
        )
    real_clock = inst.clock
    end = real_clock.now() - dt.timedelta(minutes=plan.stopped_minutes_ago)
    start = real_clock.now() - dt.timedelta(hours=plan.span_hours)
    job_clock = _JobClock(start)
    session = internal_session(inst, "master")
    session.login = plan.login
    writes = plan.writes_per_interval if not db.read_only else 0  # a read-only database takes no writes
    writer = _Writes(inst, db.name, session) if writes else None
    executor = Executor(inst, session, lambda item: None, threading.Event())
    inst.clock = job_clock
    try:
        runs = _schedule(plan, start, end, logs=db.recovery_model != "SIMPLE")
        fulls = [at for at, kind in runs if kind == "FULL"]
        striped_at = fulls[-1] if plan.striped_full and fulls else None
        for at, kind in runs:
            job_clock.jump(at)
            if writer is not None and (kind != "FULL" or at != runs[0][0]):
                writer.write(writes)
            if kind == "COPY_ONLY":
                _snapshot_full(inst, executor, plan.folder, db.name, plan.copy_only_full_by or "")
                continue
            devices = _devices(inst, plan.folder, db.name, kind, job_clock.at, 2 if at == striped_at else 1)
            for device in devices:
                local = inst.local_path(device)
                local.parent.mkdir(parents=True, exist_ok=True)
            options = [("INIT", None), ("CHECKSUM", None)] + (
                [("COMPRESSION", None)] if inst.can_compress else []
            )
            _run_backup(executor, db.name, "DATABASE" if kind == "FULL" else "LOG", devices, options)
        job_clock.jump(end)
        if writer is not None:
            writer.write(writes)  # the application went on writing after the job stopped
    finally:
        inst.clock = real_clock


def _run_backup(executor, database: str, kind: str, devices: list[str], options: list) -> None:
    """BACKUP DATABASE|LOG <database> TO DISK = ... WITH ... (the statement, already parsed)."""
    from sandbox.mssql.engine.backup import run_backup_statement

    executor.session.request = {"command": f"BACKUP {kind}", "start_time": None, "percent_complete": 0.0}
    args = {"kind": kind, "devices": [("lit", d) for d in devices], "mirrors": [], "options": options}
    try:
        run_backup_statement(executor, database, args)
    finally:
        executor.session.request = None


def _schedule(plan: HistoryPlan, start: dt.datetime, end: dt.datetime, logs: bool) -> list[tuple]:
    """``(moment, kind)`` of every job run, oldest first: fulls, logs, and the optional snapshot."""
    runs = []
    full_every = dt.timedelta(hours=plan.fulls_every_hours)
    at = start
    while at <= end:
        runs.append((at, "FULL"))
        at += full_every
    if logs and plan.logs_every_minutes > 0:
        log_every = dt.timedelta(minutes=plan.logs_every_minutes)
        at = start + log_every
        while at <= end:
            if all(at != moment for moment, _ in runs):
                runs.append((at, "LOG"))
            at += log_every
    if plan.copy_only_full_by:
        fulls = [moment for moment, kind in runs if kind == "FULL"]
        after, before = (fulls[-2], fulls[-1]) if len(fulls) > 1 else (fulls[-1], end)
        runs.append((after + (before - after) / 2 + dt.timedelta(minutes=7), "COPY_ONLY"))
    return sorted(runs, key=lambda run: run[0])


def _devices(
    inst: Instance, folder: str, database: str, kind: str, at: dt.datetime, stripes: int
) -> list[str]:
    server = _file_part(inst.name.replace("\\", "$"))
    db_part = _file_part(database)
    local = at.astimezone(inst.timezone)
    stamp = local.strftime("%Y%m%d_%H%M%S")
    extension = "bak" if kind == "FULL" else "trn"
    base = f"{folder}\\{server}\\{db_part}\\{kind}\\{server}_{db_part}_{kind}_{stamp}"
    if stripes == 1:
        return [f"{base}.{extension}"]
    return [f"{base}_{n}.{extension}" for n in range(1, stripes + 1)]


def _file_part(name: str) -> str:
    return _ILLEGAL_IN_FILE_NAMES.sub("_", name)


def _literal(text: str) -> str:
    return "N'" + text.replace("'", "''") + "'"


def _snapshot_full(inst: Instance, executor, folder: str, database: str, tool: str) -> None:
    """A third-party VSS snapshot full: COPY_ONLY, recorded in msdb as a virtual-device backup.

    The backup is taken through the engine (real LSNs; COPY_ONLY leaves the chain alone), then its
    file is removed and its msdb rows are made to say what a VDI snapshot backup's rows say.
    """
    device = f"{folder}\\{_file_part(tool)}_{uuid.uuid4().hex}.tmp"
    saved_login = executor.session.login
    executor.session.login = tool
    try:
        _run_backup(executor, database, "DATABASE", [device], [("COPY_ONLY", None), ("INIT", None)])
    finally:
        executor.session.login = saved_login
        inst.local_path(device).unlink(missing_ok=True)
    msdb = inst.database("msdb")
    family = msdb.find_table("dbo", "backupmediafamily").sqlite_name
    backupset = msdb.find_table("dbo", "backupset").sqlite_name
    owner = object()
    msdb.write_lock.acquire(owner)
    try:
        (media_set_id,) = msdb.conn.execute(f'SELECT MAX(media_set_id) FROM "{backupset}"').fetchone()
        virtual_device = "{" + str(uuid.uuid4()).upper() + "}1"
        msdb.conn.execute(
            f'UPDATE "{family}" SET device_type = 7, physical_device_name = ? WHERE media_set_id = ?',
            (virtual_device, media_set_id),
        )
        msdb.conn.execute(f'UPDATE "{backupset}" SET is_snapshot = 1 WHERE media_set_id = ?', (media_set_id,))
    finally:
        msdb.write_lock.release(owner)


class _Writes:
    """Application writes between job runs, so log backups carry work (rows of ``dbo.orders``)."""

    def __init__(self, inst: Instance, database: str, session) -> None:
        from sandbox.mssql.engine.admin import run_admin_sql

        self.inst, self.database, self.session = inst, database, session
        db = inst.database(database)
        table = db.find_table("dbo", "orders")
        if table is None:
            run_admin_sql(inst, database, CREATE_TABLE)
            table = db.find_table("dbo", "orders")
        names = {name.lower() for name, *_ in table.columns}
        if not {"id", "customer", "amount"} <= names:
            _fail(
                f"databases.{database}.history: dbo.orders exists without the columns id, customer, amount "
                "the job history writes"
            )
        row = db.conn.execute(f'SELECT MAX(id) FROM "{table.sqlite_name}"').fetchone()
        self.next_id = (row[0] or 0) + 1

    def write(self, count: int) -> None:
        from sandbox.mssql.engine.admin import run_admin_sql

        if count <= 0:
            return
        ids = range(self.next_id, self.next_id + count)
        values = ", ".join(f"({i}, N'history {i}', {i % 1000}.50)" for i in ids)
        run_admin_sql(self.inst, self.database, f"INSERT INTO {TABLE} (id, customer, amount) VALUES {values}")
        self.next_id += count
