"""Catalog views (sys.*) materialised from engine state for one query."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING

from sandbox.mssql.engine import language, security
from sandbox.mssql.engine.database import RECOVERY_MODELS, STATES, USER_ACCESS
from sandbox.mssql.engine.types import LOB_TYPES, SINGLE_BYTE_TYPES, STRING_TYPES
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


def _sid(n: str) -> Column:
    return Column(n, "varbinary", size=85)


def _bigint(n: str) -> Column:
    return Column(n, "bigint")


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
                security.owner_sid(inst, d),
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
    _sid("owner_sid"),
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
        for key, file_id, kind, desc, suffix in _EXTRA_FILES:
            if d.files.get(key):
                rows.append(
                    (
                        d.database_id,
                        file_id,
                        kind,
                        desc,
                        f"{base}_{suffix}",
                        f"{inst.data_dir_display}\\{base}_{suffix}",
                        "ONLINE",
                        d.files[key] * 128,
                        -1,
                        0,
                    )
                )
    return rows


# Files RESTORE recreates besides data and log (Microsoft: sys.master_files type 2 FILESTREAM, 4 FULLTEXT).
_EXTRA_FILES = [
    ("filestream_mb", 65537, 2, "FILESTREAM", "fs"),
    ("fulltext_mb", 65538, 4, "FULLTEXT", "ftrow"),
]


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
            s.login,
            s.language,
            s.dateformat,
            s.datefirst,
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
    _name("original_login_name"),
    _name("language"),
    Column("date_format", "nvarchar", size=3),
    Column("date_first", "smallint"),
]


def _schemas(inst: Instance, session: Session, db: Database) -> list[tuple]:
    return [(name, sid, 1) for sid, name in db.schemas()]


SCHEMAS_COLUMNS = [_name("name"), _int("schema_id"), _int("principal_id")]


def _tables(inst: Instance, session: Session, db: Database) -> list[tuple]:
    return [
        (t.name, t.object_id, t.schema_id, "U", "USER_TABLE", t.create_date, t.create_date, False, None, 0)
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
    _int("principal_id"),
    _int("parent_object_id"),
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


# -- security catalog ------------------------------------------------------------------------------
def _server_principals(inst: Instance, session: Session, db: Database) -> list[tuple]:
    rows = [
        (
            login.name,
            login.principal_id,
            login.sid,
            "S",
            "SQL_LOGIN",
            False,
            login.create_date,
            login.create_date,
            login.default_database,
            login.default_language,
            False,
        )
        for login in inst.logins.values()
    ]
    created = dt.datetime(2003, 4, 8, 9, 10, 42)  # fixed server roles date from the install
    rows += [
        (role, pid, bytes([pid]), "R", "SERVER_ROLE", False, created, created, None, None, True)
        for role, pid in security.FIXED_SERVER_ROLES.items()
    ]
    return rows


SERVER_PRINCIPALS_COLUMNS = [
    _name("name"),
    _int("principal_id"),
    _sid("sid"),
    Column("type", "nvarchar", size=1),
    _desc("type_desc"),
    _bit("is_disabled"),
    _dt("create_date"),
    _dt("modify_date"),
    _name("default_database_name"),
    _name("default_language_name"),
    _bit("is_fixed_role"),
]


def _server_role_members(inst: Instance, session: Session, db: Database) -> list[tuple]:
    return [
        (security.FIXED_SERVER_ROLES[role], login.principal_id)
        for login in inst.logins.values()
        for role in sorted(login.server_roles)
        if role != "public"
    ]


ROLE_MEMBERS_COLUMNS = [_int("role_principal_id"), _int("member_principal_id")]


def _database_principals(inst: Instance, session: Session, db: Database) -> list[tuple]:
    created = db.create_date
    owner = security.owner_sid(inst, db)
    rows = [
        ("public", 0, "R", "DATABASE_ROLE", None, created, None, False, 1),
        ("dbo", 1, "S", "SQL_USER", "dbo", created, owner, False, None),
        ("guest", 2, "S", "SQL_USER", "guest", created, security.GUEST_SID, False, None),
        ("INFORMATION_SCHEMA", 3, "S", "SQL_USER", None, created, None, False, None),
        ("sys", 4, "S", "SQL_USER", None, created, None, False, None),
    ]
    rows += [
        (name, pid, "S", "SQL_USER", "dbo", dt.datetime.fromisoformat(date), sid, False, None)
        for pid, name, sid, date in security.database_users(db)
    ]
    rows += [
        (role, pid, "R", "DATABASE_ROLE", None, created, None, True, 1)
        for role, pid in security.FIXED_DATABASE_ROLES.items()
    ]
    return rows


DATABASE_PRINCIPALS_COLUMNS = [
    _name("name"),
    _int("principal_id"),
    Column("type", "nvarchar", size=1),
    _desc("type_desc"),
    _name("default_schema_name"),
    _dt("create_date"),
    _sid("sid"),
    _bit("is_fixed_role"),
    _int("owning_principal_id"),
]


def _database_role_members(inst: Instance, session: Session, db: Database) -> list[tuple]:
    rows = [(security.FIXED_DATABASE_ROLES["db_owner"], 1)]
    rows += [
        (security.FIXED_DATABASE_ROLES[role.lower()], member)
        for role, member in security.role_members(db)
        if role.lower() in security.FIXED_DATABASE_ROLES
    ]
    return rows


def _syslanguages(inst: Instance, session: Session, db: Database) -> list[tuple]:
    return [
        (lang.langid, lang.dateformat, lang.datefirst, lang.name, lang.alias) for lang in language.LANGUAGES
    ]


SYSLANGUAGES_COLUMNS = [
    Column("langid", "smallint"),
    Column("dateformat", "nvarchar", size=3),
    Column("datefirst", "tinyint"),
    _name("name"),
    _name("alias"),
]


# -- storage metadata: row counts and pages per table/index (S8: O(tables), no scan for the reader) ---
def table_storage(db: Database) -> list[dict]:
    """Per table: rows, in-row/LOB data pages, and its indexes (0 heap / 1 clustered, then nonclustered).

    Pages are estimated from the declared column sizes and the stored values: a row costs its fixed
    columns, its variable columns, and ~11 bytes of overhead; 8060 bytes fit on a page; text/ntext/image
    and values over 8000 bytes go to LOB pages. Counts are read from the data, so they always agree
    with it (after writes, deletes and restores).
    """
    found = []
    for table in db.tables():
        in_row, lob = [], []
        fixed = 11
        for name, sqltype, _, _ in table.columns:
            size = _fixed_size(sqltype)
            if size is not None:
                fixed += size
                continue
            one_byte = sqltype.name in SINGLE_BYTE_TYPES or sqltype.name in ("varbinary", "binary", "image")
            width = "length" if one_byte else "2 * length"  # SQLite length(): bytes of a blob, chars of text
            expr = f"COALESCE({width}({sql_ident(name)}), 0)"
            if sqltype.name in LOB_TYPES and sqltype.name != "xml":
                lob.append(expr)
                fixed += 16  # text pointer
            else:
                in_row.append(f"CASE WHEN {expr} > 8000 THEN 24 ELSE {expr} + 2 END")
                lob.append(f"CASE WHEN {expr} > 8000 THEN {expr} ELSE 0 END")
        sums = [f"SUM({' + '.join(in_row) or '0'})", f"SUM({' + '.join(lob) or '0'})"]
        count, var_bytes, lob_bytes = db.conn.execute(
            f'SELECT COUNT(*), {", ".join(sums)} FROM "{table.sqlite_name}"'
        ).fetchone()
        in_row_pages = -(-(count * fixed + (var_bytes or 0)) // 8060) if count else 0
        lob_pages = -(-(lob_bytes or 0) // 8060)
        clustered = any(row[5] for row in db.conn.execute(f'PRAGMA table_info("{table.sqlite_name}")'))
        indexes = [(1, f"PK__{table.name[:8]}__{table.object_id:08X}", "CLUSTERED")] if clustered else []
        if not clustered:
            indexes = [(0, None, "HEAP")]
        names = db.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND name LIKE 'ix\\_%' "
            "ESCAPE '\\' ORDER BY name",
            (table.sqlite_name,),
        ).fetchall()
        indexes += [(2 + i, name, "NONCLUSTERED") for i, (name,) in enumerate(names)]
        found.append(
            {"table": table, "rows": count, "in_row": in_row_pages, "lob": lob_pages, "indexes": indexes}
        )
    return found


def _fixed_size(sqltype) -> int | None:
    t = sqltype.name
    sizes = {
        "bit": 1,
        "tinyint": 1,
        "smallint": 2,
        "int": 4,
        "bigint": 8,
        "real": 4,
        "float": 8,
        "smallmoney": 4,
        "money": 8,
        "date": 3,
        "time": 5,
        "smalldatetime": 4,
        "datetime": 8,
        "datetime2": 8,
        "datetimeoffset": 10,
        "uniqueidentifier": 16,
    }
    if t in sizes:
        return sizes[t]
    if t in ("decimal", "numeric"):
        precision = sqltype.precision or 18
        return 5 if precision <= 9 else 9 if precision <= 19 else 13 if precision <= 28 else 17
    if t in ("char", "nchar", "binary") and sqltype.length and sqltype.length > 0:
        return sqltype.length * (2 if t == "nchar" else 1)
    if t in STRING_TYPES or t in ("varbinary", "binary", "image", "sql_variant", "rowversion", "timestamp"):
        return None
    return 8


def _partition_rows(db: Database) -> list[tuple]:
    """(partition_id, object_id, index_id, rows, in_row pages, lob pages, used, reserved) per index."""
    rows = []
    for entry in table_storage(db):
        table, count = entry["table"], entry["rows"]
        for index_id, _name, kind in entry["indexes"]:
            if kind == "NONCLUSTERED":
                in_row = -(-count * 24 // 8060) if count else 0
                lob = 0
            else:
                in_row, lob = entry["in_row"], entry["lob"]
            data = in_row + lob
            used = data + 1 if data else 0  # plus the IAM page
            reserved = -(-data // 8) * 8 + 1 if data else 0  # uniform extents (MIXED_PAGE_ALLOCATION OFF)
            partition_id = 72057594037927936 + table.object_id * 256 + index_id
            rows.append((partition_id, table.object_id, index_id, count, in_row, lob, used, reserved))
    return rows


def _partition_stats(inst: Instance, session: Session, db: Database) -> list[tuple]:
    return [
        (pid, oid, iid, 1, count, in_row, lob, used, reserved)
        for pid, oid, iid, count, in_row, lob, used, reserved in _partition_rows(db)
    ]


PARTITION_STATS_COLUMNS = [
    _bigint("partition_id"),
    _int("object_id"),
    _int("index_id"),
    _int("partition_number"),
    _bigint("row_count"),
    _bigint("in_row_data_page_count"),
    _bigint("lob_used_page_count"),
    _bigint("used_page_count"),
    _bigint("reserved_page_count"),
]


def _partitions(inst: Instance, session: Session, db: Database) -> list[tuple]:
    return [(pid, oid, iid, 1, pid, count, 0, "NONE") for pid, oid, iid, count, *_ in _partition_rows(db)]


PARTITIONS_COLUMNS = [
    _bigint("partition_id"),
    _int("object_id"),
    _int("index_id"),
    _int("partition_number"),
    _bigint("hobt_id"),
    _bigint("rows"),
    Column("data_compression", "tinyint"),
    _desc("data_compression_desc"),
]


def _indexes(inst: Instance, session: Session, db: Database) -> list[tuple]:
    kinds = {"HEAP": 0, "CLUSTERED": 1, "NONCLUSTERED": 2}
    return [
        (entry["table"].object_id, name, index_id, kinds[kind], kind, index_id == 1, index_id == 1)
        for entry in table_storage(db)
        for index_id, name, kind in entry["indexes"]
    ]


INDEXES_COLUMNS = [
    _int("object_id"),
    _name("name"),
    _int("index_id"),
    Column("type", "tinyint"),
    _desc("type_desc"),
    _bit("is_unique"),
    _bit("is_primary_key"),
]


def log_stats_rows(inst: Instance, database_id) -> list[tuple]:
    """``sys.dm_db_log_stats(database_id)``: one row for an online database (none for NULL or unknown)."""
    db = inst.database_by_id(int(database_id)) if database_id is not None else None
    if db is None or db.state != "ONLINE":
        return []
    mb = 1024 * 1024
    with db.log.lock:
        records = list(db.log.records)
    since = db.last_log_backup_lsn
    pending = sum(r.size for r in records if since is not None and r.lsn >= since)
    if since is not None and pending:
        pending += db.padding["log"]  # what the next log backup will weigh (see backup_padding_bytes)
    active = sum(r.size for r in records)
    return [
        (
            db.database_id,
            db.recovery_model,
            active / mb,
            active / mb,
            "LOG_BACKUP" if since is not None and pending else "NOTHING",
            db.last_log_backup_lsn,
            pending / mb,
        )
    ]


LOG_STATS_COLUMNS = [
    _int("database_id"),
    _desc("recovery_model"),
    Column("total_log_size_mb", "float"),
    Column("active_log_size_mb", "float"),
    _desc("log_truncation_holdup_reason"),
    _lsn("log_backup_lsn"),
    Column("log_since_last_log_backup_mb", "float"),
]


def sql_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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
    "server_principals": (SERVER_PRINCIPALS_COLUMNS, _server_principals),
    "server_role_members": (ROLE_MEMBERS_COLUMNS, _server_role_members),
    "database_principals": (DATABASE_PRINCIPALS_COLUMNS, _database_principals),
    "database_role_members": (ROLE_MEMBERS_COLUMNS, _database_role_members),
    "syslanguages": (SYSLANGUAGES_COLUMNS, _syslanguages),
    "dm_db_partition_stats": (PARTITION_STATS_COLUMNS, _partition_stats),
    "partitions": (PARTITIONS_COLUMNS, _partitions),
    "indexes": (INDEXES_COLUMNS, _indexes),
}
