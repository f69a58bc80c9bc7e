"""BACKUP and RESTORE: LSN ranges, the log chain, msdb history, progress, and chain errors."""

from __future__ import annotations

import datetime as dt
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.mssql.engine import backupfile, errors, media, msdb, servertime
from sandbox.mssql.engine.database import Database, RestoreState
from sandbox.mssql.engine.parser import unsupported
from sandbox.mssql.engine.txlog import LogRecord, TransactionLog
from sandbox.mssql.results import Column, Message, ResultSet, SqlError

if TYPE_CHECKING:
    from sandbox.mssql.engine.executor import Executor
    from sandbox.mssql.engine.instance import Instance

BACKUP_OPTIONS = {
    "DIFFERENTIAL",
    "COPY_ONLY",
    "COMPRESSION",
    "NO_COMPRESSION",
    "INIT",
    "NOINIT",
    "FORMAT",
    "NOFORMAT",
    "CHECKSUM",
    "NO_CHECKSUM",
    "STATS",
    "MAXTRANSFERSIZE",
    "BUFFERCOUNT",
    "BLOCKSIZE",
    "NAME",
    "DESCRIPTION",
    "NORECOVERY",
    "NO_TRUNCATE",
    "SKIP",
    "NOSKIP",
    "NOUNLOAD",
    "UNLOAD",
    "REWIND",
    "NOREWIND",
    "MEDIANAME",
    "MEDIADESCRIPTION",
    "CONTINUE_AFTER_ERROR",
    "STOP_ON_ERROR",
    "RETAINDAYS",
    "EXPIREDATE",
}
RESTORE_OPTIONS = {
    "RECOVERY",
    "NORECOVERY",
    "REPLACE",
    "STATS",
    "MOVE",
    "CHECKSUM",
    "NO_CHECKSUM",
    "FILE",
    "NOUNLOAD",
    "UNLOAD",
    "REWIND",
    "NOREWIND",
    "BUFFERCOUNT",
    "MAXTRANSFERSIZE",
    "BLOCKSIZE",
    "CONTINUE_AFTER_ERROR",
    "STOP_ON_ERROR",
    "KEEP_REPLICATION",
    "KEEP_CDC",
    "RESTRICTED_USER",
}
# Features only Enterprise/Developer/Evaluation (EngineEdition 3) can start, with SQL Server's wording.
ENTERPRISE_FEATURES = {
    "Partitioning": (
        905,
        "it contains a partition function 'pf'. Only Enterprise edition of SQL Server supports partitioning.",
    ),
    "Compression": (
        909,
        "part or all of object 'dbo.orders' is enabled with data compression or vardecimal "
        "storage format. Data compression and vardecimal storage format are only supported on SQL "
        "Server Enterprise Edition.",
    ),
    "TransparentDataEncryption": (
        33117,
        "it has Transparent Data Encryption enabled. Only Enterprise edition of "
        "SQL Server supports Transparent Data Encryption.",
    ),
    "ChangeCapture": (
        932,
        "change data capture is enabled. Only Enterprise edition of SQL Server supports change data capture.",
    ),
    "InMemoryOLTP": (
        41836,
        "it contains MEMORY_OPTIMIZED_DATA. Only Enterprise edition of SQL Server supports "
        "memory-optimized tables.",
    ),
}
TYPE_CODES = {"D": 1, "I": 5, "L": 2}
#: Backup compression algorithms of SQL Server 2022 (16.x).
COMPRESSION_ALGORITHMS = ("MS_XPRESS", "QAT_DEFLATE")
TYPE_NAMES = {1: "Database", 5: "Database Differential", 2: "Transaction Log"}


# -- helpers -------------------------------------------------------------------------------------
class Progress:
    """STATS = n messages and sys.dm_exec_requests.percent_complete while bytes are processed."""

    def __init__(self, total: int, stats: int | None, emit, request: dict | None, callback=None):
        self.total = max(total, 1)
        self.stats = stats
        self.emit = emit
        self.request = request
        self.callback = callback
        self.done = 0
        self.reported = 0
        self.started = time.monotonic()

    def __call__(self, nbytes: int) -> None:
        self.done += nbytes
        percent = min(100, self.done * 100 // self.total)
        if self.request is not None:
            self.request["percent_complete"] = float(percent)
            elapsed = time.monotonic() - self.started
            if percent:
                self.request["estimated_completion_time"] = int(elapsed * 1000 * (100 - percent) / percent)
        if self.callback is not None:
            self.callback(percent)
        while self.stats and self.reported + self.stats <= percent:
            self.reported += self.stats
            if self.emit is not None:
                self.emit(Message(3211, 0, 1, f"{self.reported} percent processed."))

    def finish(self) -> None:
        if self.done < self.total:
            self(self.total - self.done)


def _pages(nbytes: int) -> int:
    return max(1, -(-nbytes // 8192))


def _rate(pages: int, seconds: float) -> str:
    seconds = max(seconds, 0.001)
    return f"{pages} pages in {seconds:.3f} seconds ({pages * 8192 / 1048576 / seconds:.3f} MB/sec)."


def _options(options: list, allowed: set[str], statement: str) -> dict:
    found: dict = {}
    for name, value in options:
        if name not in allowed:
            raise SqlError(155, 15, 1, f"'{name}' is not a recognized {statement} option.")
        found[name] = value
    return found


def _int_option(ex: Executor, options: dict, name: str) -> int | None:
    if name not in options:
        return None
    value = ex.eval(options[name]) if options[name] is not None else None
    return None if value is None else int(value)


def _local_file(inst: Instance, device: str, must_exist: bool) -> Path:
    """The local file behind a server path; 3201 as SQL Server reports an unreachable folder/file."""
    local = inst.local_path(device)
    if local is None or not local.parent.is_dir():
        raise errors.cannot_open_device(device, 3, "The system cannot find the path specified.")
    if must_exist and not local.is_file():
        raise errors.cannot_open_device(device, 2, "The system cannot find the file specified.")
    return local


def _lsn(value) -> int | None:
    return None if value is None else int(value)


# -- BACKUP ------------------------------------------------------------------------------------
def run_backup_statement(ex: Executor, name: str, args: dict) -> None:
    statement = "BACKUP " + args["kind"]
    try:
        _backup(ex, name, args, statement)
    except SqlError as e:
        if e.number in (3617, 102) or ex.cancel.is_set():  # 102: a syntax error never starts the backup
            raise
        ex.emit(Message(e.number, e.severity, e.state, e.message, server=ex.inst.name))
        raise errors.terminating(statement) from e


def _backup(ex: Executor, name: str, args: dict, statement: str) -> None:
    inst, session = ex.inst, ex.session
    options = _options(args["options"], BACKUP_OPTIONS, "BACKUP")
    if session.in_transaction:
        raise errors.in_transaction()
    db = inst.database(name)
    if session.request is not None:
        session.request["database_id"] = db.database_id
    if db.name.lower() == "tempdb":
        raise SqlError(3147, 16, 1, "Backup and restore operations are not allowed on database tempdb.")
    if db.state != "ONLINE":
        raise errors.db_restoring(db.name) if db.state == "RESTORING" else errors.db_offline(db.name)
    device_sets = [
        [_device_name(ex, d) for d in devices] for devices in [args["devices"], *args.get("mirrors", [])]
    ]
    media.check_backup_devices(device_sets, inst.engine_edition, options)
    compress = "COMPRESSION" in options
    if compress and not inst.can_compress:
        raise SqlError(1844, 16, 1, f"{statement} WITH COMPRESSION is not supported on {inst.edition}.")
    algorithm = _compression_algorithm(inst, options.get("COMPRESSION")) if compress else None
    files = [[_local_file(inst, device, must_exist=False) for device in devices] for devices in device_sets]
    for devices, locals_ in zip(device_sets, files, strict=True):
        for device, local in zip(devices, locals_, strict=True):
            if local.exists() and "INIT" not in options and "FORMAT" not in options:
                raise unsupported(f"appending a second backup set to '{device}' (NOINIT); use WITH INIT")
    if "ENCRYPTION" in options:
        raise unsupported("BACKUP ... WITH ENCRYPTION")
    settings = {
        "compress": compress,
        "compression_algorithm": algorithm,
        "checksum": "CHECKSUM" in options,
        "copy_only": "COPY_ONLY" in options,
        "stats": _int_option(ex, options, "STATS"),
        "name": ex.eval(options["NAME"]) if options.get("NAME") is not None else None,
        "description": ex.eval(options["DESCRIPTION"]) if options.get("DESCRIPTION") is not None else None,
        "login": session.login,
    }
    transfer = _int_option(ex, options, "MAXTRANSFERSIZE")
    if transfer is not None and (transfer < 65536 or transfer > 4194304 or transfer % 65536):
        raise SqlError(3217, 16, 1, "Invalid value specified for MAXTRANSFERSIZE parameter.")
    target = media.BackupMedia(device_sets, files)
    settings["fault"] = inst.faults.take(db.name, args["kind"], device_sets[0][0])
    if args["kind"] == "DATABASE":
        kind = "I" if "DIFFERENTIAL" in options else "D"
        backup_database(inst, ex, db, target, kind, settings)
    else:
        if "DIFFERENTIAL" in options:
            raise SqlError(
                3032,
                16,
                1,
                "One or more of the options (differential) are not supported for this "
                "statement. Review the documentation for supported options.",
            )
        backup_log(inst, ex, db, target, settings, norecovery="NORECOVERY" in options)


def _compression_algorithm(inst: Instance, value) -> str:
    """The algorithm a compressed backup uses: the one named (SQL Server 2022+), else the server's
    ``backup compression algorithm`` setting (MS_XPRESS unless set to QAT_DEFLATE; Microsoft, BACKUP and
    "Backup compression default"). Before 2022 the ALGORITHM clause does not parse."""
    if value is None:
        return inst.backup_compression_algorithm
    _, name, paren = value
    if inst.major_version < 16:
        raise SqlError(102, 15, 1, f"Incorrect syntax near '{paren.value}'.")
    if name not in COMPRESSION_ALGORITHMS:
        raise unsupported(
            f"BACKUP ... WITH COMPRESSION (ALGORITHM = {name}); known: {', '.join(COMPRESSION_ALGORITHMS)}"
        )
    return name


def _device_name(ex: Executor, node) -> str:
    device = ex.eval(node)
    if device is None or str(device) == "":
        raise SqlError(
            3044,
            16,
            1,
            "Invalid zero-length device name. Reissue the BACKUP statement with a valid device name.",
        )
    return str(device)


def _begin_running(db: Database, kind: str) -> None:
    running = db.running or {}
    if kind in ("D", "I") and running.get("D"):
        raise SqlError(
            3023,
            16,
            2,
            "Backup, file manipulation operations (such as ALTER DATABASE ADD FILE) and "
            "encryption changes on a database must be serialized. Reissue the statement after the "
            "current backup or file manipulation operation is completed.",
        )
    if kind == "L" and running.get("L"):
        raise SqlError(
            3023,
            16,
            2,
            "Backup, file manipulation operations (such as ALTER DATABASE ADD FILE) and "
            "encryption changes on a database must be serialized. Reissue the statement after the "
            "current backup or file manipulation operation is completed.",
        )
    running["D" if kind in ("D", "I") else "L"] = True
    db.running = running


def _fault_midway(ex: Executor, fault: str | None) -> None:
    """An injected fault half-way through the backup (engine/faults.py): nothing reaches msdb."""
    if fault == "kill":  # as KILL <spid> from another session: the batch stops, the connection closes
        ex.session.killed = True
        if ex.session.on_kill is not None:
            ex.session.on_kill()
        raise ex.inst.kill_error()
    if fault == "drop":  # the network fails; the server notices at its next write and aborts
        ex.inst.drop_connection(ex.session)
        raise errors.backup_aborted()


def _fault_after_commit(ex: Executor, fault: str | None) -> None:
    """The connection fails after the backup was recorded in msdb, before the client has the answer."""
    if fault == "drop_after_commit":
        ex.inst.drop_connection(ex.session)


def _end_running(db: Database, kind: str) -> None:
    if db.running:
        db.running.pop("D" if kind in ("D", "I") else "L", None)
        if not db.running:
            db.running = None


def backup_database(
    inst: Instance, ex: Executor, db: Database, target: media.BackupMedia, kind: str, settings: dict
) -> None:
    """Full (D) or differential (I): snapshot at start + the log written while it runs."""
    if kind == "I" and db.last_full is None:
        raise SqlError(
            3035,
            16,
            1,
            f'Cannot perform a differential backup for database "{db.name}", because a '
            "current database backup does not exist. Perform a full database backup by reissuing "
            "BACKUP DATABASE, omitting the WITH DIFFERENTIAL option.",
        )
    with inst.lock:
        _begin_running(db, kind)
    start, started = inst.now(), time.monotonic()
    snapshot = Path(tempfile.mkstemp(prefix="sbx-snap-", dir=target.files[0][0].parent)[1])
    writer = None
    db.write_lock.acquire(ex.session, ex.cancel)
    try:
        first_lsn = db.log.append("backup", time=start.isoformat()).lsn
        checkpoint_lsn = inst.checkpoint(db)
        db.log.pin(first_lsn)
        db.snapshot_to(snapshot)
    except BaseException:
        snapshot.unlink(missing_ok=True)
        with inst.lock:
            _end_running(db, kind)
        raise
    finally:
        db.write_lock.release(ex.session)
    try:
        pad = db.padding["full"]
        progress = Progress(
            snapshot.stat().st_size + pad + 4096, settings["stats"], ex.emit, ex.session.request
        )
        writer = _open_writer(target, settings, progress)
        writer.copy_file(backupfile.FRAME_SNAPSHOT, snapshot, ex.cancel)
        _fault_midway(ex, settings["fault"])
        writer.padding(pad, ex.cancel)
        with db.log.lock:  # the backup ends here: it is consistent at last_lsn
            last_lsn = db.log.next_lsn
            records = db.log.between(checkpoint_lsn, last_lsn)
        _write_log_frames(writer, records)
        progress.finish()
        header = _make_header(inst, db, kind, settings, start, first_lsn, last_lsn, checkpoint_lsn, writer)
        header["FirstRecoveryForkID"] = header["RecoveryForkID"]  # data backups: first fork == last fork
        writer.finish(header, target.identity())
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        snapshot.unlink(missing_ok=True)
        db.log.unpin(first_lsn)
        with inst.lock:
            _end_running(db, kind)
    _after_database_backup(inst, db, kind, header, settings)
    msdb.record_backup(inst, header, target.devices, target.family_ids)
    _fault_after_commit(ex, settings["fault"])
    seconds = time.monotonic() - started
    data_pages = _pages(int(header["BackupSize"]) - header["Sandbox"]["log_bytes"])
    log_pages = _pages(header["Sandbox"]["log_bytes"])
    ex.emit(
        Message(
            4035, 0, 1, f"Processed {data_pages} pages for database '{db.name}', file '{db.name}' on file 1."
        )
    )
    ex.emit(
        Message(
            4035,
            0,
            1,
            f"Processed {log_pages} pages for database '{db.name}', file '{db.name}_log' on file 1.",
        )
    )
    label = "BACKUP DATABASE WITH DIFFERENTIAL" if kind == "I" else "BACKUP DATABASE"
    ex.emit(Message(3014, 0, 1, f"{label} successfully processed {_rate(data_pages + log_pages, seconds)}"))


def _open_writer(target: media.BackupMedia, settings: dict, progress: Progress) -> backupfile.BackupWriter:
    try:
        return backupfile.BackupWriter(target.family_paths(), settings["compress"], progress)
    except OSError as e:
        raise errors.cannot_open_device(target.devices[0][0], 5, "Access is denied.") from e


def _write_log_frames(writer: backupfile.BackupWriter, records: list[LogRecord]) -> None:
    import json

    batch: list[bytes] = []
    size = total = 0
    for record in records:
        line = json.dumps(record.to_json(), default=_json_default).encode() + b"\n"
        batch.append(line)
        size += len(line)
        total += len(line)
        if size >= backupfile.CHUNK:
            writer.frame(backupfile.FRAME_LOG, b"".join(batch))
            batch, size = [], 0
    if batch:
        writer.frame(backupfile.FRAME_LOG, b"".join(batch))
    writer.log_bytes = total


def _json_default(value):
    if isinstance(value, bytes):
        return {"$hex": value.hex()}
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


def _after_database_backup(inst: Instance, db: Database, kind: str, header: dict, settings: dict) -> None:
    if settings["copy_only"]:
        return
    if kind == "D":
        # A full ends by logging its new differential base after LastLSN (the "Backup:CommitDifferentialBase"
        # transaction fn_dblog shows; from practice, not a documented fact), so the first log backup after
        # a full ends past the full's LastLSN, as in dbatools issue #2374's real LSNs.
        db.log.append("backup", time=inst.now().isoformat())
        db.last_full = {
            "checkpoint_lsn": int(header["CheckpointLSN"]),
            "backup_set_uuid": header["BackupSetGUID"],
            "first_lsn": int(header["FirstLSN"]),
            "last_lsn": int(header["LastLSN"]),
        }
    if db.recovery_model != "SIMPLE" and db.last_log_backup_lsn is None:
        db.last_log_backup_lsn = int(header["FirstLSN"])  # the log chain starts with this backup
        db.log_backup_fork_guid = db.recovery_fork_guid
        db.log_chain_new = True
        inst.truncate_log(db)


def backup_log(
    inst: Instance, ex: Executor, db: Database, target: media.BackupMedia, settings: dict, norecovery: bool
) -> None:
    """Log backup: [first_lsn, last_lsn) from the previous log backup; NORECOVERY leaves the db RESTORING.

    A log backup writes no log record itself, so on an idle database the next one is *empty*:
    ``first_lsn == last_lsn`` (dbatools Select-DbaBackupInformation skips such backups). A COPY_ONLY log
    backup neither truncates the log nor moves the chain: the next normal one starts where the
    previous normal one ended (Microsoft, "Copy-only backups").
    """
    if db.recovery_model == "SIMPLE":
        raise SqlError(
            4208,
            16,
            1,
            "The statement BACKUP LOG is not allowed while the recovery model is SIMPLE. "
            "Use BACKUP DATABASE or change the recovery model using ALTER DATABASE.",
        )
    if db.last_log_backup_lsn is None:
        raise SqlError(
            4214, 16, 1, "BACKUP LOG cannot be performed because there is no current database backup."
        )
    if norecovery:
        users = [s for s in inst.all_sessions() if not s.killed and s.database.lower() == db.name.lower()]
        if users:
            raise errors.exclusive_access()
    with inst.lock:
        _begin_running(db, "L")
    start, started = inst.now(), time.monotonic()
    writer = None
    db.write_lock.acquire(ex.session, ex.cancel)
    locked = True
    try:
        first_lsn = db.last_log_backup_lsn
        with db.log.lock:
            last_lsn = db.log.next_lsn
            records = db.log.between(first_lsn, last_lsn)
        if not norecovery:
            db.write_lock.release(ex.session)  # writes may go on; they land after last_lsn
            locked = False
        pad = db.padding["log"]
        progress = Progress(
            sum(r.size for r in records) + pad + 1, settings["stats"], ex.emit, ex.session.request
        )
        writer = _open_writer(target, settings, progress)
        _write_log_frames(writer, records)
        _fault_midway(ex, settings["fault"])
        writer.padding(pad, ex.cancel)
        progress.finish()
        header = _make_header(
            inst, db, "L", settings, start, first_lsn, last_lsn, db.last_checkpoint_lsn or first_lsn, writer
        )
        header["FirstRecoveryForkID"] = db.log_backup_fork_guid  # the fork at first_lsn
        if db.log_backup_fork_guid != db.recovery_fork_guid:  # the log spans a recovery fork
            header["ForkPointLSN"] = None if db.fork_point_lsn is None else str(db.fork_point_lsn)
        header["BeginsLogChain"] = db.log_chain_new and not settings["copy_only"]
        header["IsForceOffline"] = norecovery
        writer.finish(header, target.identity())
        if not settings["copy_only"]:
            db.last_log_backup_lsn = last_lsn
            db.log_backup_fork_guid = db.recovery_fork_guid
            db.log_chain_new = False
            inst.truncate_log(db)
        if norecovery:
            db.state = "RESTORING"
            db.restore = RestoreState(
                last_lsn,
                db.database_guid,
                db.last_full["checkpoint_lsn"] if db.last_full else None,
                db.last_full["backup_set_uuid"] if db.last_full else None,
                logs_applied=True,
                header={},  # empty header: the source itself
                fork_guid=db.recovery_fork_guid,
            )
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        if locked:
            db.write_lock.release(ex.session)
        with inst.lock:
            _end_running(db, "L")
    msdb.record_backup(inst, header, target.devices, target.family_ids)
    _fault_after_commit(ex, settings["fault"])
    seconds = time.monotonic() - started
    pages = _pages(int(header["BackupSize"])) if records else 0
    ex.emit(
        Message(
            4035, 0, 1, f"Processed {pages} pages for database '{db.name}', file '{db.name}_log' on file 1."
        )
    )
    ex.emit(Message(3014, 0, 1, f"BACKUP LOG successfully processed {_rate(pages, seconds)}"))


def _make_header(
    inst: Instance,
    db: Database,
    kind: str,
    settings: dict,
    start: dt.datetime,
    first_lsn: int,
    last_lsn: int,
    checkpoint_lsn: int,
    writer: backupfile.BackupWriter,
) -> dict:
    """The backup-set header; dates are server local time (``start`` is aware, in the server's zone)."""
    finish = inst.now()
    major, minor, build = (list(inst.version_tuple) + [0, 0, 0])[:3]
    base = db.last_full
    database_backup_lsn = base["checkpoint_lsn"] if base else 0
    diff_base_lsn = base["checkpoint_lsn"] if kind == "I" else None
    diff_base_guid = base["backup_set_uuid"] if kind == "I" else None
    log_bytes = getattr(writer, "log_bytes", 0)
    return {
        "BackupName": settings["name"],
        "BackupDescription": settings["description"],
        "BackupType": TYPE_CODES[kind],
        "ExpirationDate": None,
        "Compressed": settings["compress"],
        "Position": 1,
        "DeviceType": 2,
        "UserName": settings.get("login", "sa"),
        "ServerName": inst.name,
        "DatabaseName": db.name,
        "DatabaseVersion": inst.database_version,
        "DatabaseCreationDate": db.create_date.isoformat(),
        "BackupSize": str(writer.raw_bytes),
        "FirstLSN": str(first_lsn),
        "LastLSN": str(last_lsn),
        "CheckpointLSN": str(checkpoint_lsn),
        "DatabaseBackupLSN": str(database_backup_lsn),
        "BackupStartDate": start.replace(microsecond=0, tzinfo=None).isoformat(),
        "BackupFinishDate": finish.replace(microsecond=0, tzinfo=None).isoformat(),
        "SortOrder": 52,
        "CodePage": 0,
        "UnicodeLocaleId": 1033,
        "UnicodeComparisonStyle": 196609,
        "CompatibilityLevel": db.compatibility_level,
        "SoftwareVendorId": 4608,
        "SoftwareVersionMajor": major,
        "SoftwareVersionMinor": minor,
        "SoftwareVersionBuild": build,
        "MachineName": inst.name.split("\\")[0],
        "Flags": 512,
        "BindingID": db.database_guid,
        "RecoveryForkID": db.recovery_fork_guid,
        "Collation": "SQL_Latin1_General_CP1_CI_AS",
        "FamilyGUID": db.family_guid,
        "HasBulkLoggedData": False,
        "IsSnapshot": False,
        "IsReadOnly": db.read_only,
        "IsSingleUser": db.user_access == "SINGLE_USER",
        "HasBackupChecksums": settings["checksum"],
        "IsDamaged": False,
        "BeginsLogChain": False,
        "HasIncompleteMetaData": False,
        "IsForceOffline": False,
        "IsCopyOnly": settings["copy_only"],
        "FirstRecoveryForkID": db.recovery_fork_guid,
        "ForkPointLSN": None,
        "RecoveryModel": db.recovery_model,
        "DifferentialBaseLSN": None if diff_base_lsn is None else str(diff_base_lsn),
        "DifferentialBaseGUID": diff_base_guid,
        "BackupTypeDescription": TYPE_NAMES[TYPE_CODES[kind]],
        "BackupSetGUID": str(uuid.uuid4()).upper(),
        "CompressedBackupSize": "0",
        "Containment": 0,
        "KeyAlgorithm": None,
        "EncryptorThumbprint": None,
        "EncryptorType": None,
        "LastValidRestoreTime": None,
        "TimeZone": servertime.format_offset(start.utcoffset() or dt.timedelta(0)),
        "CompressionAlgorithm": settings.get("compression_algorithm")
        or ("MS_XPRESS" if settings["compress"] else None),
        "Sandbox": {
            "format_version": backupfile.VERSION,
            "product_version": inst.product_version,
            "edition": inst.edition,
            "engine_edition": inst.engine_edition,
            "sku_features": db.sku_features,
            "tde": db.tde,
            "corrupt": db.corrupt,
            "user_access": db.user_access,
            "log_bytes": log_bytes,
            "padding_bytes": db.padding["full" if kind != "L" else "log"],
            "time_zone": servertime.zone_name(inst.timezone),
            "time_zone_quarters": servertime.quarter_hours(start),
        },
    }


# -- RESTORE -----------------------------------------------------------------------------------
HEADERONLY_COLUMNS = [
    ("BackupName", "nvarchar", 128),
    ("BackupDescription", "nvarchar", 255),
    ("BackupType", "smallint", 0),
    ("ExpirationDate", "datetime", 0),
    ("Compressed", "tinyint", 0),
    ("Position", "smallint", 0),
    ("DeviceType", "tinyint", 0),
    ("UserName", "nvarchar", 128),
    ("ServerName", "nvarchar", 128),
    ("DatabaseName", "nvarchar", 128),
    ("DatabaseVersion", "int", 0),
    ("DatabaseCreationDate", "datetime", 0),
    ("BackupSize", "numeric20", 0),
    ("FirstLSN", "lsn", 0),
    ("LastLSN", "lsn", 0),
    ("CheckpointLSN", "lsn", 0),
    ("DatabaseBackupLSN", "lsn", 0),
    ("BackupStartDate", "datetime", 0),
    ("BackupFinishDate", "datetime", 0),
    ("SortOrder", "smallint", 0),
    ("CodePage", "smallint", 0),
    ("UnicodeLocaleId", "int", 0),
    ("UnicodeComparisonStyle", "int", 0),
    ("CompatibilityLevel", "tinyint", 0),
    ("SoftwareVendorId", "int", 0),
    ("SoftwareVersionMajor", "int", 0),
    ("SoftwareVersionMinor", "int", 0),
    ("SoftwareVersionBuild", "int", 0),
    ("MachineName", "nvarchar", 128),
    ("Flags", "int", 0),
    ("BindingID", "uniqueidentifier", 0),
    ("RecoveryForkID", "uniqueidentifier", 0),
    ("Collation", "nvarchar", 128),
    ("FamilyGUID", "uniqueidentifier", 0),
    ("HasBulkLoggedData", "bit", 0),
    ("IsSnapshot", "bit", 0),
    ("IsReadOnly", "bit", 0),
    ("IsSingleUser", "bit", 0),
    ("HasBackupChecksums", "bit", 0),
    ("IsDamaged", "bit", 0),
    ("BeginsLogChain", "bit", 0),
    ("HasIncompleteMetaData", "bit", 0),
    ("IsForceOffline", "bit", 0),
    ("IsCopyOnly", "bit", 0),
    ("FirstRecoveryForkID", "uniqueidentifier", 0),
    ("ForkPointLSN", "lsn", 0),
    ("RecoveryModel", "nvarchar", 60),
    ("DifferentialBaseLSN", "lsn", 0),
    ("DifferentialBaseGUID", "uniqueidentifier", 0),
    ("BackupTypeDescription", "nvarchar", 60),
    ("BackupSetGUID", "uniqueidentifier", 0),
    ("CompressedBackupSize", "bigint", 0),
    ("Containment", "tinyint", 0),
    ("KeyAlgorithm", "nvarchar", 32),
    ("EncryptorThumbprint", "varbinary", 20),
    ("EncryptorType", "nvarchar", 32),
    ("LastValidRestoreTime", "datetime", 0),
    ("TimeZone", "nvarchar", 32),
    ("CompressionAlgorithm", "nvarchar", 32),
]


def _header_column(name: str, kind: str, size: int) -> Column:
    if kind == "lsn":
        return Column(name, "numeric", precision=25, scale=0)
    if kind == "numeric20":
        return Column(name, "numeric", precision=20, scale=0)
    if kind in ("nvarchar", "varbinary"):
        return Column(name, kind, size=size)
    return Column(name, kind)


def header_fields(header: dict) -> dict:
    """HEADERONLY fields as Python values: LSNs int, GUIDs str (upper case), dates datetime."""
    out: dict = {}
    for name, kind, _ in HEADERONLY_COLUMNS:
        value = header.get(name)
        if value is not None and kind in ("lsn", "numeric20", "bigint"):
            value = int(value)
        elif value is not None and kind == "datetime":
            value = dt.datetime.fromisoformat(value)
        elif kind == "bit" and value is not None:
            value = bool(value)
        elif kind == "tinyint" and isinstance(value, bool):
            value = int(value)
        out[name] = value
    out["Sandbox"] = dict(header.get("Sandbox", {}))
    return out


def headeronly_result(header: dict) -> ResultSet:
    fields = header_fields(header)
    columns = [_header_column(n, k, s) for n, k, s in HEADERONLY_COLUMNS]
    row = []
    for name, kind, _ in HEADERONLY_COLUMNS:
        value = fields[name]
        if value is not None and kind in ("lsn", "numeric20"):
            value = Decimal(value)
        elif value is not None and kind == "uniqueidentifier":
            value = uuid.UUID(value)
        row.append(value)
    return ResultSet(columns, [tuple(row)])


def read_header_checked(inst: Instance, local: Path, device: str) -> dict:
    """The header, with the version check every restore path makes (3169)."""
    header = backupfile.read_header(local, device)
    required = ("BackupType", "FirstLSN", "LastLSN", "BindingID", "SoftwareVersionMajor", "DatabaseName")
    if any(key not in header for key in required):
        raise errors.media_incorrectly_formed(device)
    return header


def _check_version(inst: Instance, header: dict) -> None:
    theirs = (header["SoftwareVersionMajor"], header["SoftwareVersionMinor"], header["SoftwareVersionBuild"])
    ours = tuple((list(inst.version_tuple) + [0, 0, 0])[:3])
    if theirs[0] > ours[0] or header.get("DatabaseVersion", 0) > inst.database_version:
        fmt = "{}.{:02d}.{:04d}"
        raise SqlError(
            3169,
            16,
            1,
            f"The database was backed up on a server running version {fmt.format(*theirs)}. "
            f"That version is incompatible with this server, which is running version "
            f"{fmt.format(*ours)}. Either restore the database on a server that supports the backup, "
            "or use a backup that is compatible with this server.",
        )


def run_restore_statement(ex: Executor, args: dict) -> None:
    what = args["what"]
    statement = "RESTORE " + (
        "DATABASE" if what in ("DATABASE", "HEADERONLY", "FILELISTONLY", "LABELONLY") else what
    )
    try:
        _restore_statement(ex, args)
    except SqlError as e:
        if e.number == 3617 or ex.cancel.is_set():
            raise
        ex.emit(Message(e.number, e.severity, e.state, e.message, server=ex.inst.name))
        raise errors.terminating(statement) from e


def _restore_statement(ex: Executor, args: dict) -> None:
    inst, session = ex.inst, ex.session
    what = args["what"]
    options = _options(args["options"], RESTORE_OPTIONS, "RESTORE")
    if session.in_transaction and what in ("DATABASE", "LOG"):
        raise errors.in_transaction()
    if "FILE" in options and _int_option(ex, options, "FILE") not in (None, 1):
        raise SqlError(
            3106,
            16,
            1,
            "The backup set on file 2 is not available: the sandbox stores one backup set per file.",
        )
    if what in ("HEADERONLY", "FILELISTONLY", "VERIFYONLY", "LABELONLY"):
        _restore_inspect(ex, what, args)
        return
    name = ex.db_name_of(args["target"])
    if not args["devices"]:
        if "NORECOVERY" in options:
            return
        started = time.monotonic()
        recover(inst, inst.database(name))
        ex.emit(
            Message(
                3014, 0, 1, f"RESTORE DATABASE successfully processed {_rate(0, time.monotonic() - started)}"
            )
        )
        return
    devices = [str(ex.eval(d)) for d in args["devices"]]
    sources = [(device, _local_file(inst, device, must_exist=True)) for device in devices]
    db = inst.find_database(name)
    if session.request is not None:
        session.request["command"] = "RESTORE " + args["what"]
        session.request["database_id"] = db.database_id if db else None
    started = time.monotonic()
    header = restore(
        inst,
        name,
        sources,
        recovery="NORECOVERY" not in options,
        replace="REPLACE" in options,
        progress=None,
        cancel=ex.cancel,
        expected=args["what"],
        stats=_int_option(ex, options, "STATS"),
        emit=ex.emit,
        request=session.request,
        session=session,
        login=session.login,
    )
    seconds = time.monotonic() - started
    size = int(header["BackupSize"])
    label = "RESTORE LOG" if header["BackupType"] == 2 else "RESTORE DATABASE"
    target = inst.database(name)
    if header["BackupType"] != 2:
        ex.emit(
            Message(
                4035,
                0,
                1,
                f"Processed {_pages(size)} pages for database '{target.name}', file '{target.name}' on file 1.",
            )
        )
    empty = header["FirstLSN"] == header["LastLSN"]
    log_pages = 0 if empty else _pages(header["Sandbox"].get("log_bytes", 0))
    ex.emit(
        Message(
            4035,
            0,
            1,
            f"Processed {log_pages} pages for database '{target.name}', file '{target.name}_log' on file 1.",
        )
    )
    pages = 0 if empty else _pages(size)
    ex.emit(Message(3014, 0, 1, f"{label} successfully processed {_rate(pages, seconds)}"))


def _restore_inspect(ex: Executor, what: str, args: dict) -> None:
    if not args["devices"]:
        raise SqlError(102, 15, 1, f"Incorrect syntax near '{what}'.")
    devices = [str(ex.eval(d)) for d in args["devices"]]
    local = _local_file(ex.inst, devices[0], must_exist=True)
    header = read_header_checked(ex.inst, local, devices[0])
    if what == "HEADERONLY":
        ex.emit(headeronly_result(header))
    elif what == "FILELISTONLY":
        name = header["DatabaseName"]
        columns = [
            Column("LogicalName", "nvarchar", size=128),
            Column("PhysicalName", "nvarchar", size=260),
            Column("Type", "nvarchar", size=1),
            Column("FileGroupName", "nvarchar", size=128),
            Column("Size", "numeric", precision=20, scale=0),
            Column("MaxSize", "numeric", precision=20, scale=0),
            Column("FileId", "bigint"),
        ]
        rows = [
            (
                name,
                f"{ex.inst.data_dir_display}\\{name}.mdf",
                "D",
                "PRIMARY",
                Decimal(header["BackupSize"]),
                Decimal(35184372080640),
                1,
            ),
            (
                name + "_log",
                f"{ex.inst.data_dir_display}\\{name}_log.ldf",
                "L",
                None,
                Decimal(8388608),
                Decimal(2199023255552),
                2,
            ),
        ]
        ex.emit(ResultSet(columns, rows))
    elif what == "LABELONLY":
        info = backupfile.media_of(header)
        columns = [
            Column("MediaName", "nvarchar", size=128),
            Column("MediaSetId", "uniqueidentifier"),
            Column("FamilyCount", "int"),
            Column("FamilySequenceNumber", "int"),
            Column("MediaFamilyId", "uniqueidentifier"),
            Column("MediaSequenceNumber", "int"),
            Column("MirrorCount", "int"),
        ]
        row = (
            None,
            uuid.UUID(info["media_set_guid"]),
            info["family_count"],
            info["family_sequence_number"],
            uuid.UUID(info["media_family_id"]),
            1,
            info["mirror_count"],
        )
        ex.emit(ResultSet(columns, [row]))
    else:
        sources = [(device, _local_file(ex.inst, device, must_exist=True)) for device in devices]
        headers, families = open_media(ex.inst, sources)
        backupfile.read_payload(families, headers[0]["DatabaseName"], None, lambda n: None, ex.cancel)
        ex.emit(Message(3262, 0, 1, "The backup set on file 1 is valid."))


def open_media(inst: Instance, sources: list[tuple[str, Path]]) -> tuple[list[dict], list[tuple[Path, str]]]:
    """The backup set on ``(device, local file)`` sources: each family's header and file, in family order.

    Every media family must be given once (either mirror will do): 3132, 3227, 3231, 3232 otherwise.
    """
    if not sources:
        raise SqlError(
            3207,
            16,
            1,
            "Backup or restore requires at least one backup device. Rerun your statement specifying a backup device.",
        )
    headers = [read_header_checked(inst, local, device) for device, local in sources]
    order = media.order_families([device for device, _ in sources], headers)
    return [headers[i] for i in order], [(sources[i][1], sources[i][0]) for i in order]


def restore(
    inst: Instance,
    name: str,
    sources: list[tuple[str, Path]],
    *,
    recovery: bool,
    replace: bool,
    progress: Callable[[int], None] | None,
    cancel: threading.Event,
    expected: str | None = None,
    stats: int | None = None,
    emit=None,
    request: dict | None = None,
    session=None,
    login: str = "sa",
) -> dict:
    """Restore one backup set (full, differential or log, decided by its header) into ``name``.

    ``sources`` are ``(device, local file)``: one per media family of a striped backup. Like SQL
    Server, the restore is recorded in this server's msdb (backupset rows and ``restorehistory``).
    """
    headers, families = open_media(inst, sources)
    header = headers[0]
    _check_version(inst, header)
    backup_type = header["BackupType"]
    if expected == "LOG" and backup_type != 2:
        raise SqlError(
            3135,
            16,
            2,
            f"The backup set in file '{sources[0][0]}' was created by BACKUP DATABASE and cannot "
            "be used for this restore operation.",
        )
    if expected == "DATABASE" and backup_type == 2:
        raise SqlError(
            3135,
            16,
            2,
            f"The backup set in file '{sources[0][0]}' was created by BACKUP LOG and cannot be "
            "used for this restore operation.",
        )
    ticker = Progress(sum(local.stat().st_size for local, _ in families), stats, emit, request, progress)
    if backup_type == 1:
        _restore_full(inst, name, families, header, replace, ticker, cancel)
    elif backup_type == 5:
        _restore_diff(inst, name, families, header, ticker, cancel)
    else:
        _restore_log(inst, name, families, header, ticker, cancel)
    ticker.finish()
    if recovery:
        recover(inst, inst.database(name))
    msdb.record_restore(
        inst,
        headers,
        [device for _, device in families],
        inst.database(name).name,
        login,
        replace=replace,
        recovery=recovery,
    )
    return header_fields(header)


def _users_of(inst: Instance, db: Database, session) -> list:
    return [
        s
        for s in inst.all_sessions()
        if s is not session and not s.killed and s.database.lower() == db.name.lower()
    ]


def _restore_full(
    inst: Instance,
    name: str,
    families: list[tuple[Path, str]],
    header: dict,
    replace: bool,
    ticker: Progress,
    cancel,
) -> None:
    with inst.lock:
        db = inst.find_database(name)
        created = db is None
        if db is not None:
            if db.system:
                raise SqlError(
                    3108,
                    16,
                    2,
                    "To restore the master database, the server must be running in single-user mode.",
                )
            if _users_of(inst, db, None) or db.running:
                raise errors.exclusive_access()
            if db.state != "RESTORING" and not replace:
                if db.database_guid != header["BindingID"]:
                    raise SqlError(
                        3154,
                        16,
                        4,
                        f"The backup set holds a backup of a database other than the "
                        f"existing '{db.name}' database.",
                    )
                if db.recovery_model != "SIMPLE" and db.last_log_backup_lsn is not None:
                    raise SqlError(
                        3159,
                        16,
                        1,
                        f'The tail of the log for the database "{db.name}" has not been '
                        "backed up. Use BACKUP LOG WITH NORECOVERY to backup the log if it contains work "
                        "you do not want to lose. Use the WITH REPLACE or WITH STOPAT clause of the "
                        "RESTORE statement to just overwrite the contents of the log.",
                    )
        else:
            db = inst.create_database(name)
        db.state = "RESTORING"
        db.restore = RestoreState(0, header["BindingID"], None, None)
        db.running = {"R": True}
    try:
        records = _read_payload_into(db, families, header, ticker, cancel)
        checkpoint, last = int(header["CheckpointLSN"]), int(header["LastLSN"])
        db.replay([r for r in records if checkpoint <= r.lsn < last])
        _adopt_header(db, header)
        # sys.database_recovery_status: "RESTORE always generates a new GUID when you restore a
        # database that does not yet exist"; over an existing database the backup's GUID is kept.
        db.database_guid = str(uuid.uuid4()).upper() if created else header["BindingID"]
        db.first_recovery_fork_guid = header["RecoveryForkID"]
        db.fork_point_lsn = None
        db.log = TransactionLog(last)
        db.last_full = None
        db.last_log_backup_lsn = None
        db.restore = RestoreState(
            last,
            header["BindingID"],
            checkpoint,
            header["BackupSetGUID"],
            header=header,
            fork_guid=header["RecoveryForkID"],
        )
    except BaseException:
        db.restore = RestoreState(
            0, header["BindingID"], None, None
        )  # incomplete: needs a full restore again
        raise
    finally:
        db.running = None


def _read_payload_into(
    db: Database, families: list[tuple[Path, str]], header: dict, ticker: Progress, cancel
) -> list[LogRecord]:
    snapshot = Path(tempfile.mkstemp(prefix="sbx-restore-", dir=db.path.parent)[1])
    try:
        raw = backupfile.read_payload(families, header["DatabaseName"], snapshot, ticker, cancel)
        db.replace_file(snapshot)
    finally:
        snapshot.unlink(missing_ok=True)
    return [_record(r) for r in raw]


def _record(data: dict) -> LogRecord:
    record = LogRecord.from_json(data)
    record.ops = [
        (sql, [bytes.fromhex(p["$hex"]) if isinstance(p, dict) else p for p in params])
        for sql, params in record.ops
    ]
    return record


def _adopt_header(db: Database, header: dict) -> None:
    extra = header.get("Sandbox", {})
    db.family_guid = header["FamilyGUID"]
    db.recovery_fork_guid = header["RecoveryForkID"]
    db.compatibility_level = header["CompatibilityLevel"]
    db.recovery_model = header["RecoveryModel"]
    db.sku_features = list(extra.get("sku_features", []))
    db.tde = bool(extra.get("tde", False))
    db.corrupt = bool(extra.get("corrupt", False))
    db.read_only = bool(header.get("IsReadOnly", False))


def _restoring(inst: Instance, name: str) -> Database:
    db = inst.find_database(name)
    if db is None:
        raise errors.db_not_exist(name)
    if db.state != "RESTORING" or db.restore is None or db.restore.point == 0:
        raise SqlError(
            3117,
            16,
            1,
            "The log or differential backup cannot be restored because no files are ready to rollforward.",
        )
    return db


def _restore_diff(
    inst: Instance, name: str, families: list[tuple[Path, str]], header: dict, ticker: Progress, cancel
) -> None:
    db = _restoring(inst, name)
    state = db.restore
    if (
        state.logs_applied
        or header["DifferentialBaseGUID"] != state.base_guid
        or header["BindingID"] != state.database_guid
    ):
        raise SqlError(
            3136,
            16,
            1,
            "This differential backup cannot be restored because the database has not been "
            "restored to the correct earlier state.",
        )
    records = _read_payload_into(db, families, header, ticker, cancel)
    checkpoint, last = int(header["CheckpointLSN"]), int(header["LastLSN"])
    db.replay([r for r in records if checkpoint <= r.lsn < last])
    _adopt_header(db, header)
    db.log = TransactionLog(last)
    state.point, state.header, state.fork_guid = last, header, header["RecoveryForkID"]


RECOVERY_PATH_ERROR = (
    "This backup set cannot be applied because it is on a recovery path that is inconsistent with the "
    "database. The recovery path is the sequence of data and log backups that have brought the database "
    "to a particular recovery point. Find a compatible backup to restore, or restore the rest of the "
    "database to match a recovery point within this backup set, which will restore the database to a "
    "different point in time. For more information about recovery paths, see SQL Server Books Online."
)


def _on_recovery_path(state: RestoreState, header: dict) -> bool:
    """Whether a log backup continues the restored data's recovery fork (Microsoft, "Recovery paths").

    A log that spans a fork applies when its *first* fork is the database's fork and the database has
    not rolled forward past the fork point on that fork; or when the database is already on its last
    fork beyond the fork point.
    """
    if state.fork_guid is None:
        return True
    first_fork = header.get("FirstRecoveryForkID") or header["RecoveryForkID"]
    last_fork = header["RecoveryForkID"]
    fork_point = _lsn(header.get("ForkPointLSN"))
    if first_fork == last_fork or fork_point is None:
        return first_fork == state.fork_guid
    if first_fork == state.fork_guid:
        return state.point <= fork_point
    return last_fork == state.fork_guid and fork_point <= state.point


def _restore_log(
    inst: Instance, name: str, families: list[tuple[Path, str]], header: dict, ticker: Progress, cancel
) -> None:
    db = _restoring(inst, name)
    state = db.restore
    if header["BindingID"] != state.database_guid:
        raise SqlError(
            3154,
            16,
            4,
            f"The backup set holds a backup of a database other than the existing '{db.name}' database.",
        )
    if not _on_recovery_path(state, header):
        raise SqlError(4330, 16, 1, RECOVERY_PATH_ERROR)
    first, last = int(header["FirstLSN"]), int(header["LastLSN"])
    if first > state.point:
        raise SqlError(
            4305,
            16,
            1,
            f"The log in this backup set begins at LSN {first}, which is too recent to apply "
            f"to the database. An earlier log backup that includes LSN {state.point} can be restored.",
        )
    if first == last == state.point and inst.empty_log_restore == "accept":
        # An empty log backup exactly at the restore point holds nothing to roll forward: accepted
        # as a no-op (the behaviour is not documented; config empty_log_restore: refuse gives 4326).
        backupfile.read_payload(families, header["DatabaseName"], None, ticker, cancel)
        state.logs_applied, state.header = True, header
        return
    if last <= state.point:
        raise SqlError(
            4326,
            16,
            1,
            f"The log in this backup set terminates at LSN {last}, which is too early to "
            f"apply to the database. A more recent log backup that includes LSN {state.point} can be "
            "restored.",
        )
    raw = backupfile.read_payload(families, header["DatabaseName"], None, ticker, cancel)
    records = [_record(r) for r in raw]
    db.replay([r for r in records if state.point <= r.lsn < last])
    db.log = TransactionLog(last)
    state.point, state.logs_applied, state.header = last, True, header
    state.fork_guid = header["RecoveryForkID"]
    db.recovery_fork_guid = header["RecoveryForkID"]
    extra = header.get("Sandbox", {})
    db.recovery_model = header["RecoveryModel"]
    db.sku_features = list(extra.get("sku_features", db.sku_features))


def recover(inst: Instance, db: Database) -> None:
    """RESTORE ... WITH RECOVERY: bring a RESTORING database online, on a new recovery fork.

    Recovery starts a new fork at the LSN it recovers at (Microsoft, "Recovery paths"; backupset's
    fork columns): the next log backup spans the fork (first fork = the old one, ``fork_point_lsn``).
    """
    if db.state == "ONLINE":
        raise SqlError(3153, 16, 1, "The database is already fully recovered.")
    if db.state != "RESTORING" or db.restore is None or db.restore.point == 0:
        raise SqlError(
            3117,
            16,
            1,
            "The log or differential backup cannot be restored because no files are ready to rollforward.",
        )
    if inst.engine_edition != 3:
        for feature in db.sku_features:
            if feature in ENTERPRISE_FEATURES:
                number, reason = ENTERPRISE_FEATURES[feature]
                db.state = "RECOVERY_PENDING"
                raise SqlError(
                    number,
                    16 if number > 1000 else 21,
                    1,
                    f"Database '{db.name}' cannot be started in this edition of SQL Server because {reason}",
                )
    state = db.restore
    header = state.header
    was_restored = bool(header)  # else: the source left RESTORING by its own tail-log backup (rollback)
    if was_restored:
        # Options of the last applied backup (full or log) travel: READ_ONLY and the user access mode.
        db.user_access = header.get("Sandbox", {}).get("user_access", db.user_access)
        db.read_only = bool(header.get("IsReadOnly", db.read_only))
        db.last_full = (
            {
                "checkpoint_lsn": state.base_checkpoint_lsn,
                "backup_set_uuid": state.base_guid,
                "first_lsn": state.point,
                "last_lsn": state.point,
            }
            if state.base_guid
            else None
        )
        if db.recovery_model != "SIMPLE":
            db.last_log_backup_lsn = state.point
            db.log_backup_fork_guid = db.recovery_fork_guid
            db.log_chain_new = False
    db.log.next_lsn = max(db.log.next_lsn, state.point)
    db.recovery_fork_guid = str(uuid.uuid4()).upper()
    db.fork_point_lsn = state.point
    db.log.append("recovery", time=inst.now().isoformat())
    db.state = "ONLINE"
    db.restore = None
