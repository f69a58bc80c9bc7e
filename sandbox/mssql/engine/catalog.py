"""Catalog views (sys.*) materialised from engine state for one query."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sandbox.mssql.engine.database import RECOVERY_MODELS, STATES, USER_ACCESS
from sandbox.mssql.results import Column

if TYPE_CHECKING:
    from sandbox.mssql.engine.database import Database
    from sandbox.mssql.engine.instance import Instance, Session


def _name(n: str) -> Column:
    return Column(n, "nvarchar", size=128)


def _desc(n: str) -> Column:
    return Column(n, "nvarchar", size=60)


def _lsn(n: str) -> Column:
    return Column(n, "numeric", precision=25, scale=0)


def _int(n: str) -> Column:
    return Column(n, "int")


def _bit(n: str) -> Column:
    return Column(n, "bit")


def _guid(n: str) -> Column:
    return Column(n, "uniqueidentifier")


def _dt(n: str) -> Column:
    return Column(n, "datetime")


def _databases(inst: Instance, session: Session, db: Database) -> list[tuple]:
    rows = []
    for d in inst.all_databases():
        log_wait = inst.log_reuse_wait(d)
        rows.append(
            (
                d.name,
                d.database_id,
                d.create_date,
                d.compatibility_level,
                "SQL_Latin1_General_CP1_CI_AS",
                USER_ACCESS[d.user_access],
                d.user_access,
                d.read_only,
                STATES[d.state],
                d.state,
                RECOVERY_MODELS[d.recovery_model],
                d.recovery_model,
                d.tde,
                log_wait[0],
                log_wait[1],
                2,
                "CHECKSUM",
                False,
            )
        )
    return rows


DATABASES_COLUMNS = [
    _name("name"),
    _int("database_id"),
    _dt("create_date"),
    Column("compatibility_level", "tinyint"),
    _name("collation_name"),
    Column("user_access", "tinyint"),
    _desc("user_access_desc"),
    _bit("is_read_only"),
    Column("state", "tinyint"),
    _desc("state_desc"),
    Column("recovery_model", "tinyint"),
    _desc("recovery_model_desc"),
    _bit("is_encrypted"),
    Column("log_reuse_wait", "tinyint"),
    _desc("log_reuse_wait_desc"),
    Column("page_verify_option", "tinyint"),
    _desc("page_verify_option_desc"),
    _bit("is_in_standby"),
]


def _recovery_status(inst: Instance, session: Session, db: Database) -> list[tuple]:
    rows = []
    for d in inst.all_databases():
        if d.state != "ONLINE":
            continue  # SQL Server shows NULLs for databases that are not online; the LEFT JOIN yields them
        rows.append(
            (
                d.database_id,
                d.database_guid,
                d.family_guid,
                d.last_log_backup_lsn,
                d.recovery_fork_guid,
                d.first_recovery_fork_guid,
                d.fork_point_lsn if d.first_recovery_fork_guid != d.recovery_fork_guid else None,
            )
        )
    return rows


RECOVERY_STATUS_COLUMNS = [
    _int("database_id"),
    _guid("database_guid"),
    _guid("family_guid"),
    _lsn("last_log_backup_lsn"),
    _guid("recovery_fork_guid"),
    _guid("first_recovery_fork_guid"),
    _lsn("fork_point_lsn"),
]


def _master_files(inst: Instance, session: Session, db: Database) -> list[tuple]:
    rows = []
    for d in inst.all_databases():
        data_pages, log_pages = inst.file_pages(d)
        base = d.name
        rows.append(
            (
                d.database_id,
                1,
                0,
                "ROWS",
                base,
                f"{inst.data_dir_display}\\{base}.mdf",
                "ONLINE",
                data_pages,
                -1,
                8192,
            )
        )
        rows.append(
            (
                d.database_id,
                2,
                1,
                "LOG",
                base + "_log",
                f"{inst.data_dir_display}\\{base}_log.ldf",
                "ONLINE",
                log_pages,
                268435456,
                8192,
            )
        )
    return rows


MASTER_FILES_COLUMNS = [
    _int("database_id"),
    _int("file_id"),
    Column("type", "tinyint"),
    _desc("type_desc"),
    _name("name"),
    Column("physical_name", "nvarchar", size=260),
    _desc("state_desc"),
    _int("size"),
    _int("max_size"),
    _int("growth"),
]


def _encryption_keys(inst: Instance, session: Session, db: Database) -> list[tuple]:
    encrypted = [d for d in inst.all_databases() if d.tde]
    rows = [(d.database_id, 3, "AES", 256, 0) for d in encrypted]
    if encrypted:
        rows.insert(0, (2, 3, "AES", 256, 0))  # tempdb is encrypted whenever any database uses TDE
    return rows


ENCRYPTION_COLUMNS = [
    _int("database_id"),
    _int("encryption_state"),
    _name("key_algorithm"),
    _int("key_length"),
    _int("percent_complete"),
]


def _sku_features(inst: Instance, session: Session, db: Database) -> list[tuple]:
    return [(feature, 100 + i) for i, feature in enumerate(db.sku_features)]


SKU_COLUMNS = [Column("feature_name", "nvarchar", size=4000), _int("feature_id")]


def _requests(inst: Instance, session: Session, db: Database) -> list[tuple]:
    rows = []
    for s in inst.all_sessions():
        req = s.request
        if req is None:
            continue
        rows.append(
            (
                s.spid,
                0,
                req["start_time"],
                "running" if s is not session else "running",
                req["command"],
                req["database_id"],
                None,
                0,
                None,
                round(req.get("percent_complete", 0.0), 6),
                int(req.get("estimated_completion_time", 0)),
                0,
            )
        )
    return rows


REQUESTS_COLUMNS = [
    Column("session_id", "smallint"),
    _int("request_id"),
    _dt("start_time"),
    _desc("status"),
    Column("command", "nvarchar", size=32),
    Column("database_id", "smallint"),
    _desc("wait_type"),
    _int("wait_time"),
    _desc("last_wait_type"),
    Column("percent_complete", "float"),
    Column("estimated_completion_time", "bigint"),
    Column("blocking_session_id", "smallint"),
]


def _sessions(inst: Instance, session: Session, db: Database) -> list[tuple]:
    return [
        (
            s.spid,
            s.login,
            s.host_name,
            s.app_name,
            "running" if s.request else "sleeping",
            inst.database_id_of(s.database),
            s.in_transaction and 1 or 0,
        )
        for s in inst.all_sessions()
    ]


SESSIONS_COLUMNS = [
    Column("session_id", "smallint"),
    _name("login_name"),
    _name("host_name"),
    _name("program_name"),
    _desc("status"),
    Column("database_id", "smallint"),
    _int("open_transaction_count"),
]


def _schemas(inst: Instance, session: Session, db: Database) -> list[tuple]:
    return [(name, sid, 1) for sid, name in db.schemas()]


SCHEMAS_COLUMNS = [_name("name"), _int("schema_id"), _int("principal_id")]


def _tables(inst: Instance, session: Session, db: Database) -> list[tuple]:
    return [
        (t.name, t.object_id, t.schema_id, "U", "USER_TABLE", t.create_date, t.create_date, False)
        for t in db.tables()
    ]


TABLES_COLUMNS = [
    _name("name"),
    _int("object_id"),
    _int("schema_id"),
    Column("type", "nvarchar", size=2),
    _desc("type_desc"),
    _dt("create_date"),
    _dt("modify_date"),
    _bit("is_ms_shipped"),
]


def _columns(inst: Instance, session: Session, db: Database) -> list[tuple]:
    rows = []
    for t in db.tables():
        for i, (name, sqltype, nullable, identity) in enumerate(t.columns, start=1):
            rows.append(
                (
                    t.object_id,
                    name,
                    i,
                    str(sqltype),
                    sqltype.length or 0,
                    sqltype.precision or 0,
                    sqltype.scale or 0,
                    nullable,
                    identity,
                )
            )
    return rows


COLUMNS_COLUMNS = [
    _int("object_id"),
    _name("name"),
    _int("column_id"),
    _name("type_name"),
    Column("max_length", "smallint"),
    Column("precision", "tinyint"),
    Column("scale", "tinyint"),
    _bit("is_nullable"),
    _bit("is_identity"),
]

ViewFn = Callable[["Instance", "Session", "Database"], list[tuple]]
VIEWS: dict[str, tuple[list[Column], ViewFn]] = {
    "databases": (DATABASES_COLUMNS, _databases),
    "database_recovery_status": (RECOVERY_STATUS_COLUMNS, _recovery_status),
    "master_files": (MASTER_FILES_COLUMNS, _master_files),
    "dm_database_encryption_keys": (ENCRYPTION_COLUMNS, _encryption_keys),
    "dm_db_persisted_sku_features": (SKU_COLUMNS, _sku_features),
    "dm_exec_requests": (REQUESTS_COLUMNS, _requests),
    "dm_exec_sessions": (SESSIONS_COLUMNS, _sessions),
    "schemas": (SCHEMAS_COLUMNS, _schemas),
    "tables": (TABLES_COLUMNS, _tables),
    "objects": (TABLES_COLUMNS, _tables),
    "columns": (COLUMNS_COLUMNS, _columns),
}
