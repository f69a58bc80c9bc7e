"""DDL, ALTER DATABASE, user access / kills, DBCC CHECKDB and msdb setup."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from sandbox.mssql.engine import errors, security
from sandbox.mssql.engine.parser import unsupported
from sandbox.mssql.engine.query import sql_ident
from sandbox.mssql.engine.types import affinity, check_type
from sandbox.mssql.results import Message, SqlError

if TYPE_CHECKING:
    from sandbox.mssql.engine.database import Database
    from sandbox.mssql.engine.executor import Executor
    from sandbox.mssql.engine.instance import Instance, Session

MSDB_DDL = """
CREATE TABLE dbo.backupmediaset (media_set_id int IDENTITY(1,1) PRIMARY KEY, media_uuid uniqueidentifier,
    media_family_count tinyint, name nvarchar(128), description nvarchar(255), software_name nvarchar(128),
    software_vendor_id int, MTF_major_version tinyint, mirror_count tinyint, is_password_protected bit,
    is_compressed bit, is_encrypted bit);
CREATE TABLE dbo.backupmediafamily (media_set_id int NOT NULL, family_sequence_number tinyint,
    media_family_id uniqueidentifier, media_count int, logical_device_name nvarchar(128),
    physical_device_name nvarchar(260), device_type tinyint, physical_block_size int, mirror tinyint);
CREATE TABLE dbo.backupset (backup_set_id int IDENTITY(1,1) PRIMARY KEY, backup_set_uuid uniqueidentifier NOT NULL,
    media_set_id int NOT NULL, first_family_number tinyint, first_media_number smallint,
    last_family_number tinyint, last_media_number smallint, catalog_family_number tinyint,
    catalog_media_number smallint, position int, expiration_date datetime, software_vendor_id int,
    name nvarchar(128), description nvarchar(255), user_name nvarchar(128), software_major_version tinyint,
    software_minor_version tinyint, software_build_version smallint, time_zone smallint, mtf_minor_version tinyint,
    first_lsn numeric(25,0), last_lsn numeric(25,0), checkpoint_lsn numeric(25,0),
    database_backup_lsn numeric(25,0), database_creation_date datetime, backup_start_date datetime,
    backup_finish_date datetime, type char(1), sort_order smallint, code_page smallint,
    compatibility_level tinyint, database_version int, backup_size numeric(20,0), database_name nvarchar(128),
    server_name nvarchar(128), machine_name nvarchar(128), flags int, unicode_locale int,
    unicode_compare_style int, collation_name nvarchar(128), is_password_protected bit, recovery_model nvarchar(60),
    has_bulk_logged_data bit, is_snapshot bit, is_readonly bit, is_single_user bit, has_backup_checksums bit,
    is_damaged bit, begins_log_chain bit, has_incomplete_metadata bit, is_force_offline bit, is_copy_only bit,
    first_recovery_fork_guid uniqueidentifier, last_recovery_fork_guid uniqueidentifier,
    fork_point_lsn numeric(25,0), database_guid uniqueidentifier, family_guid uniqueidentifier,
    differential_base_lsn numeric(25,0), differential_base_guid uniqueidentifier,
    compressed_backup_size numeric(20,0), key_algorithm nvarchar(32), encryptor_thumbprint varbinary(20),
    encryptor_type nvarchar(32), last_valid_restore_time datetime, compression_algorithm nvarchar(32));
CREATE TABLE dbo.restorehistory (restore_history_id int IDENTITY(1,1) PRIMARY KEY, restore_date datetime,
    destination_database_name nvarchar(128), user_name nvarchar(128), backup_set_id int NOT NULL,
    restore_type char(1), replace bit, recovery bit, restart bit, stop_at datetime, device_count tinyint,
    stop_at_mark_name nvarchar(128), stop_before bit);
"""


def internal_session(inst: Instance, database: str) -> Session:
    """A sysadmin session that is not listed in sys.dm_exec_sessions (engine housekeeping)."""
    from sandbox.mssql.engine.instance import Session

    return Session(0, "sa", database, True)


def run_admin_sql(inst: Instance, database: str, sql: str) -> None:
    from sandbox.mssql.engine.executor import Executor

    Executor(inst, internal_session(inst, database), lambda item: None, threading.Event()).run_batch(sql)


def create_msdb_tables(inst: Instance) -> None:
    run_admin_sql(inst, "msdb", MSDB_DDL)


def insert_row(inst: Instance, database: str, schema: str, table: str, values: dict) -> int:
    """Insert one row (engine bookkeeping such as msdb history); returns the new rowid."""
    from sandbox.mssql.engine.types import storage_value

    db = inst.database(database)
    info = db.find_table(schema, table)
    names = [c[0] for c in info.columns if c[0] in values]
    sql = (
        f'INSERT INTO "{info.sqlite_name}" ({", ".join(sql_ident(n) for n in names)}) '
        f"VALUES ({', '.join('?' * len(names))})"
    )
    params = [storage_value(values[n]) for n in names]
    owner = object()
    db.write_lock.acquire(owner)
    try:
        return db.conn.execute(sql, params).lastrowid
    finally:
        db.write_lock.release(owner)


# -- DDL ---------------------------------------------------------------------------------------
def _target(ex: Executor, parts: list[str]) -> tuple[Database, str, str]:
    if len(parts) > 3:
        raise unsupported("four-part name " + ".".join(parts))
    db = ex.open_database(parts[-3] if len(parts) == 3 and parts[-3] else ex.session.database)
    schema = parts[-2] if len(parts) >= 2 and parts[-2] else "dbo"
    return db, schema, parts[-1]


def create_table(ex: Executor, args: dict) -> None:
    db, schema, name = _target(ex, args["name"])
    security.check_database_permission(ex.inst, ex.session, db, "CREATE TABLE")
    columns = args["columns"]
    for col in columns:
        check_type(col["type"])
    primary = list(args["primary_key"]) or [c["name"] for c in columns if c["pk"]]

    def build() -> list:
        schema_id = db.schema_id(schema)
        if schema_id is None:
            raise SqlError(
                2760,
                16,
                1,
                f'The specified schema name "{schema}" either does not exist or you do not '
                "have permission to use it.",
            )
        if db.find_table(schema, name) is not None:
            raise SqlError(2714, 16, 6, f"There is already an object named '{name}' in the database.")
        object_id = db.next_object_id()
        now = ex.inst.local_now().strftime("%Y-%m-%d %H:%M:%S.%f")[:23]
        ops = [('INSERT INTO "__tables" VALUES (?, ?, ?, ?)', [object_id, schema_id, name, now])]
        defs = []
        for index, col in enumerate(columns, start=1):
            t = col["type"]
            ops.append(
                (
                    'INSERT INTO "__columns" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
                    [
                        object_id,
                        index,
                        col["name"],
                        t.name,
                        t.length,
                        t.precision,
                        t.scale,
                        int(col["nullable"]),
                        int(col["identity"]),
                    ],
                )
            )
            defs.append(_column_sql(col, primary))
        if primary and not _identity_key(columns, primary):
            defs.append("PRIMARY KEY (" + ", ".join(sql_ident(c) for c in primary) + ")")
        ops.append((f'CREATE TABLE "t{object_id}" ({", ".join(defs)})', []))
        return ops

    ex.inst.write(ex.session, db, build, ex.cancel)


def _identity_key(columns: list[dict], primary: list[str]) -> bool:
    if len(primary) != 1:
        return False
    col = next((c for c in columns if c["name"].lower() == primary[0].lower()), None)
    return bool(col and col["identity"] and affinity(col["type"]) == "INTEGER")


def _column_sql(col: dict, primary: list[str]) -> str:
    kind = affinity(col["type"])
    if _identity_key([col], primary):
        return f"{sql_ident(col['name'])} INTEGER PRIMARY KEY AUTOINCREMENT"
    text = f"{sql_ident(col['name'])} {kind}"
    if kind == "TEXT" and col["type"].name not in (
        "uniqueidentifier",
        "datetime",
        "datetime2",
        "date",
        "decimal",
        "numeric",
    ):
        text += " COLLATE NOCASE"
    if not col["nullable"]:
        text += " NOT NULL"
    default = col.get("default")
    if default is not None:
        if default[0] == "lit":
            value = default[1]
            text += " DEFAULT " + ("NULL" if value is None else "'" + str(value).replace("'", "''") + "'")
        elif default[0] == "func" and not default[2]:
            text += f" DEFAULT ({default[1]}())"
    return text


def create_index(ex: Executor, args: dict) -> None:
    db, schema, name = _target(ex, args["table"])
    if "ALTER ANY SCHEMA" not in security.database_permissions(ex.inst, ex.session, db) and not db.system:
        raise SqlError(
            1088,
            16,
            12,
            f'Cannot find the object "{name}" because it does not exist or you do not have permissions.',
        )

    def build() -> list:
        table = db.find_table(schema, name)
        if table is None:
            raise errors.invalid_object(f"{schema}.{name}")
        index = f"ix_{table.object_id}_{abs(hash(args['index'])) % 10**9}"
        cols = ", ".join(sql_ident(c) for c in args["columns"])
        unique = "UNIQUE " if args["unique"] else ""
        return [(f'CREATE {unique}INDEX "{index}" ON "{table.sqlite_name}" ({cols})', [])]

    ex.inst.write(ex.session, db, build, ex.cancel)


def create_schema(ex: Executor, name: str) -> None:
    db = ex.open_database(ex.session.database)
    security.check_database_permission(ex.inst, ex.session, db, "CREATE SCHEMA")

    def build() -> list:
        if db.schema_id(name) is not None:
            raise SqlError(2714, 16, 6, f"There is already an object named '{name}' in the database.")
        next_id = max(i for i, _ in db.schemas()) + 1
        return [('INSERT INTO "__schemas" VALUES (?, ?)', [max(next_id, 5), name])]

    ex.inst.write(ex.session, db, build, ex.cancel)


def drop_tables(ex: Executor, names: list[list[str]], if_exists: bool) -> None:
    for parts in names:
        db, schema, name = _target(ex, parts)

        allowed = db.system or "ALTER ANY SCHEMA" in security.database_permissions(ex.inst, ex.session, db)

        def build(db=db, schema=schema, name=name, parts=parts, allowed=allowed) -> list:
            table = db.find_table(schema, name) if allowed else None  # no permission: as if missing
            if table is None:
                if if_exists:
                    return []
                raise SqlError(
                    3701,
                    11,
                    5,
                    f"Cannot drop the table '{'.'.join(parts)}', because it does not "
                    "exist or you do not have permission.",
                )
            return [
                ('DELETE FROM "__columns" WHERE object_id = ?', [table.object_id]),
                ('DELETE FROM "__tables" WHERE object_id = ?', [table.object_id]),
                (f'DROP TABLE "{table.sqlite_name}"', []),
            ]

        ex.inst.write(ex.session, db, build, ex.cancel)


# -- ALTER DATABASE ----------------------------------------------------------------------------
def alter_database(ex: Executor, args: dict) -> None:
    """ALTER DATABASE ... SET: a refusal is the reason (5011, 5070...) as a message, then 5069."""
    inst, session = ex.inst, ex.session
    if session.in_transaction:
        raise SqlError(226, 16, 6, "ALTER DATABASE statement not allowed within multi-statement transaction.")
    name = args["name"] or session.database
    try:
        db = inst.find_database(name)
        if db is None:
            raise security.alter_denied(name, state=5)
        security.check_alter_database(inst, session, db)
        killed = _set_option(ex, db, args["words"], args["termination"])
    except SqlError as e:
        if e.number not in (5011, 5070):
            raise
        ex.emit(Message(e.number, e.severity, e.state, e.message, server=inst.name))
        raise SqlError(5069, 16, 1, "ALTER DATABASE statement failed.") from e
    if killed:
        ex.emit(
            Message(
                5060,
                10,
                1,
                "Nonqualified transactions are being rolled back. Estimated rollback completion: 100%.",
                server=inst.name,
            )
        )


def _set_option(ex: Executor, db: Database, words: list[str], termination: str | None) -> int:
    """Apply one SET option; returns the number of sessions rolled back and disconnected."""
    inst, session = ex.inst, ex.session
    first = words[0] if words else ""
    if first == "RECOVERY" and len(words) == 2 and words[1] in ("FULL", "SIMPLE", "BULK_LOGGED"):
        set_recovery_model(inst, db, words[1])
        return 0
    if first in ("SINGLE_USER", "RESTRICTED_USER", "MULTI_USER"):
        return set_user_access(inst, session, db, first, termination, ex.cancel)
    if first in ("READ_ONLY", "READ_WRITE"):
        return set_updateability(inst, session, db, first == "READ_ONLY", termination, ex.cancel)
    if first in ("OFFLINE", "ONLINE"):
        killed = 0
        if first == "OFFLINE":
            killed = _require_exclusive(inst, session, db, termination, ex.cancel, lambda s: True)
            if db.state == "ONLINE":
                db.state = "OFFLINE"
        elif db.state == "OFFLINE":
            db.state = "ONLINE"
        return killed
    raise unsupported(f"ALTER DATABASE ... SET {' '.join(words)}")


def set_updateability(
    inst: Instance,
    session: Session | None,
    db: Database,
    read_only: bool,
    termination: str | None,
    cancel: threading.Event | None = None,
) -> int:
    """READ_ONLY / READ_WRITE: every other session in the database, privileged ones included, is rolled
    back and disconnected (ROLLBACK IMMEDIATE); afterwards any write fails with 3906."""
    killed = _require_exclusive(inst, session, db, termination, cancel, lambda s: True)
    db.read_only = read_only
    return killed


def set_recovery_model(inst: Instance, db: Database, model: str) -> None:
    """Switching to SIMPLE breaks the log chain; back to FULL it restarts only with a full/diff backup."""
    if db.state != "ONLINE":
        raise errors.db_restoring(db.name) if db.state == "RESTORING" else errors.db_offline(db.name)
    old = db.recovery_model
    db.recovery_model = model
    if model == "SIMPLE":
        db.last_log_backup_lsn = None
        inst.truncate_log(db)
    elif old == "SIMPLE":
        db.last_log_backup_lsn = None  # pseudo-simple until the next full or differential backup


def set_user_access(
    inst: Instance,
    session: Session | None,
    db: Database,
    mode: str,
    termination: str | None,
    cancel: threading.Event | None = None,
) -> int:
    """Set SINGLE_USER/RESTRICTED_USER/MULTI_USER; returns the number of sessions killed."""
    if mode not in ("SINGLE_USER", "RESTRICTED_USER", "MULTI_USER"):
        raise SqlError(102, 15, 1, f"Incorrect syntax near '{mode}'.")
    if mode == "MULTI_USER":
        db.user_access = mode
        return 0
    # Both disconnect every other session in the database (Microsoft, ALTER DATABASE SET options:
    # RESTRICTED_USER "Disconnect all connections to the database using the timeframe specified by the
    # ... termination clause"); under RESTRICTED_USER db_owner, dbcreator and sysadmin may reconnect at once.
    killed = _require_exclusive(inst, session, db, termination, cancel, lambda s: True)
    db.user_access = mode
    return killed


def _require_exclusive(
    inst: Instance,
    session: Session | None,
    db: Database,
    termination: str | None,
    cancel: threading.Event | None,
    affected,
) -> int:
    def victims() -> list:
        return [
            s
            for s in inst.all_sessions()
            if s is not session and not s.killed and s.database.lower() == db.name.lower() and affected(s)
        ]

    current = victims()
    if not current:
        return 0
    if termination == "ROLLBACK IMMEDIATE":
        for victim in current:
            inst.kill_session(victim)
        return len(current)
    if termination == "NO_WAIT":
        raise SqlError(
            5070,
            16,
            2,
            f"Database state cannot be changed while other users are using the database '{db.name}'",
        )
    while victims():  # no termination clause: wait for the other users to leave, as SQL Server does
        if cancel is not None and cancel.is_set():
            raise errors.cancelled()
        time.sleep(0.05)
    return 0


# -- DBCC CHECKDB ------------------------------------------------------------------------------
def checkdb_errors(inst: Instance, db: Database) -> list[str]:
    """Consistency errors of ``db`` ([] when clean): the injected corruption flag or SQLite integrity."""
    if db.state != "ONLINE":
        raise errors.db_restoring(db.name) if db.state == "RESTORING" else errors.db_offline(db.name)
    found = []
    if db.corrupt:
        found = [
            "Table error: Object ID 0, index ID -1, partition ID 0, alloc unit ID 72057594041401344 (type In-row "
            "data), page (1:157). Test (IS_OFF (BUF_IOERR, pBUF->bstat)) failed. Values are 133129 and -4.",
            "Object ID 565577053, index ID 1, partition ID 72057594039238656, alloc unit ID 72057594041401344 "
            "(type In-row data): Page (1:157) could not be processed.  See other errors for details.",
        ]
    result = db.conn.execute("PRAGMA quick_check").fetchone()[0]
    if result != "ok":
        found.append(f"Table error: SQLite integrity check failed: {result}")
    return found


def run_checkdb(ex: Executor, name: str, options: list[str]) -> None:
    inst = ex.inst
    db = inst.check_access(ex.session, name)
    security.check_checkdb(inst, ex.session, db)
    if ex.session.request is not None:
        ex.session.request["database_id"] = db.database_id
    tables = db.tables()
    for index, table in enumerate(tables, start=1):
        if ex.cancel.is_set():
            raise errors.cancelled()
        db.conn.execute(f'SELECT COUNT(*) FROM "{table.sqlite_name}"').fetchone()
        if ex.session.request is not None:
            ex.session.request["percent_complete"] = 100.0 * index / len(tables)
    problems = checkdb_errors(inst, db)
    if problems:
        numbers = [8939, 8928] + [8951] * (len(problems) - 2)
        for number, text in zip(numbers, problems, strict=False):
            ex.emit(Message(number, 16, 98 if number == 8939 else 1, text, server=inst.name))
        ex.emit(
            Message(
                8989,
                16,
                1,
                f"CHECKDB found 0 allocation errors and {len(problems)} consistency errors "
                f"in database '{db.name}'.",
                server=inst.name,
            )
        )
        raise SqlError(
            8958,
            16,
            1,
            f"repair_allow_data_loss is the minimum repair level for the errors found by "
            f"DBCC CHECKDB ({db.name}).",
        )
    if "NO_INFOMSGS" not in options:
        ex.emit(
            Message(
                8989,
                0,
                1,
                f"CHECKDB found 0 allocation errors and 0 consistency errors in database '{db.name}'.",
                server=inst.name,
            )
        )
        ex.emit(
            Message(
                2528,
                0,
                1,
                "DBCC execution completed. If DBCC printed error messages, contact your "
                "system administrator.",
                server=inst.name,
            )
        )
