"""SQL Server hook for the migration: preflight facts, backups, msdb history, freeze and validation.

Every statement comes from ``include/sql/`` (see :mod:`hooks.sql_files`); values travel as pymssql
parameters, so any database name or path is safe. Statements run with autocommit on (BACKUP, RESTORE
and ALTER DATABASE refuse a user transaction), every result set is drained, and informational
messages (``STATS`` progress) are captured through pymssql's message handler.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pymssql
from airflow.providers.microsoft.mssql.hooks.mssql import MsSqlHook

from hooks.sql_files import load_sql
from rds_migration.chain import BackupRecord

log = logging.getLogger(__name__)

#: Backup kinds and the statement file each one runs.
BACKUP_SQL = {"FULL": "backup_full", "DIFF": "backup_diff", "LOG": "backup_log"}
#: msdb ``backupset.type`` expected for each kind.
BACKUP_TYPE_CODE = {"FULL": "D", "DIFF": "I", "LOG": "L"}
USER_ACCESS_MODES = ("RESTRICTED_USER", "SINGLE_USER", "MULTI_USER")
#: Options :meth:`MigrationMsSqlHook.set_database_option` may set (a fixed allow-list: it goes into the statement).
DATABASE_OPTIONS = (*USER_ACCESS_MODES, "READ_ONLY", "READ_WRITE")
#: ``SERVERPROPERTY('EditionID')`` of Standard edition (EngineEdition 2 covers Standard and Web).
STANDARD_EDITION_ID = -1534726760
#: DBCC CHECKDB reports consistency problems with numbers in these ranges; they are collected, not raised.
CHECKDB_ERROR_RANGES = ((2500, 2599), (5200, 5299), (7900, 7999), (8900, 8999))
#: Errors that are not about consistency even though they fall in the ranges above (2520: no such
#: database; 7983: "User ... does not have permission to run DBCC checkdb", a right, not corruption).
_NOT_CONSISTENCY = {2520, 7983}
#: Minimum seconds between two progress lines in the log (100 % is always logged).
PROGRESS_LOG_INTERVAL = 10.0

_PERCENT = re.compile(r"(\d{1,3}) percent processed", re.IGNORECASE)
_DBLIB_TAIL = re.compile(r"\s*DB-Lib error message .*", re.DOTALL)

ProgressCallback = Callable[[int, float], None]


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class SqlServerError(Exception):
    """A SQL Server statement failed. ``number`` is the SQL Server (or DB-Lib) error number.

    :param number: error number (0 if unknown).
    :param message: what failed and what to do.
    :param server_message: the server's own text, cleaned of DB-Lib noise.
    """

    def __init__(self, number: int, message: str, server_message: str = "") -> None:
        super().__init__(message)
        self.number = number
        self.message = message
        self.server_message = server_message


class BackupNotRecordedError(SqlServerError):
    """The BACKUP statement returned but msdb has no record of the file: the backup does not count."""


_ADVICE: dict[int, str] = {
    4208: "database {db} is in SIMPLE recovery, so log backups are impossible: "
    "ALTER DATABASE ... SET RECOVERY FULL, then take a full backup",
    4214: "database {db} is in pseudo-simple recovery (FULL model but no full backup since): "
    "set RECOVERY FULL and take a full backup before any log backup",
    3101: "exclusive access to database {db} could not be obtained: freeze it first "
    "(set_user_access RESTRICTED_USER or SINGLE_USER WITH ROLLBACK IMMEDIATE) and retry",
    18456: "login failed: check the login and password of the Airflow connection "
    "and that the login is enabled on the server",
    18452: "login failed (Windows login from an untrusted domain): use a SQL Server login",
    4060: "cannot open the database the connection asked for: fix the schema of the Airflow connection",
    4064: "cannot open the login's default database (RESTORING, offline or restricted?): the hook connects "
    "to master; check the login's default database on the server",
    20009: "cannot reach the SQL Server: check host, port and firewall of the Airflow connection",
    20002: "connection to the SQL Server failed: check host, port and the tds_version extra",
    911: "database {db} does not exist (or is not accessible): check the database name",
    2520: "database {db} does not exist: check the database name",
    3701: "database {db} does not exist: check the database name",
    3201: "the backup file cannot be opened on the SQL Server host: check that the folder exists there "
    "and that the SQL Server service account can write to it",
    3013: "the BACKUP/RESTORE statement terminated abnormally: see the server messages",
    3117: "database {db} cannot be restored over: it is not in RESTORING state",
    4305: "the log backup does not continue the restored chain: apply backups in LSN order",
    4326: "the log backup ends before the restore point: it is already applied",
    5061: "ALTER DATABASE {db} could not get its lock: retry, or find the blocking session",
    5069: "ALTER DATABASE {db} failed: see the server messages",
    229: "permission denied: the login needs sysadmin or db_backupoperator/dbcreator rights",
    262: "permission denied: the login needs sysadmin or db_backupoperator/dbcreator rights",
    916: "the login cannot access database {db}: grant it access or use a sysadmin login",
    1222: "lock request timed out: retry when the database is less busy",
}


def _clean_server_text(raw: Any) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes | bytearray) else str(raw)
    return _DBLIB_TAIL.sub("", text).strip()


def error_number(exc: BaseException) -> int:
    """Return the SQL Server error number carried by a pymssql exception (0 if none)."""
    number = getattr(exc, "number", None)
    if isinstance(number, int) and number:
        return number
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    if args and isinstance(args[0], tuple | list) and args[0] and isinstance(args[0][0], int):
        return args[0][0]
    return 0


def _server_text(exc: BaseException) -> str:
    args = getattr(exc, "args", ())
    if len(args) >= 2:
        return _clean_server_text(args[1])
    if args and isinstance(args[0], tuple | list) and len(args[0]) >= 2:
        return _clean_server_text(args[0][1])
    return _clean_server_text(getattr(exc, "message", "") or (args[0] if args else ""))


# "Nonqualified transactions are being rolled back..." (severity 10) from WITH ROLLBACK IMMEDIATE.
ROLLED_BACK_SESSIONS_MESSAGE = 5060


def map_error(exc: BaseException, action: str, database: str | None = None) -> SqlServerError:
    """Turn a pymssql exception into a :class:`SqlServerError` naming the action, the number and the fix.

    :param exc: the exception raised by pymssql.
    :param action: what the hook was doing, e.g. ``"FULL backup of 'Sales'"``.
    :param database: the database concerned, used in the advice.
    """
    number = error_number(exc)
    server_text = _server_text(exc)
    advice = _ADVICE.get(number, "").format(db=repr(database) if database is not None else "(unknown)")
    parts = [f"{action} failed: SQL Server error {number}" if number else f"{action} failed"]
    if advice:
        parts.append(advice)
    if server_text:
        parts.append(f"server said: {server_text}")
    cls = BackupNotRecordedError if isinstance(exc, BackupNotRecordedError) else SqlServerError
    return cls(number, " — ".join(parts), server_text)


# --------------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerFacts:
    """What preflight needs to know about a SQL Server instance."""

    server_name: str
    product_version: str
    major_version: int
    edition: str
    edition_id: int | None
    engine_edition: int | None

    @property
    def can_compress_backups(self) -> bool:
        """Enterprise, Developer, Evaluation (EngineEdition 3) and Standard compress; Web, Express don't."""
        if self.engine_edition == 3:
            return True
        if self.engine_edition == 2:
            return self.edition_id == STANDARD_EDITION_ID or self.edition.lower().startswith("standard")
        return False


@dataclass(frozen=True)
class DatabaseFacts:
    """State of one database as preflight and cutover see it."""

    name: str
    database_id: int
    state_desc: str
    user_access_desc: str
    is_read_only: bool
    recovery_model_desc: str
    compatibility_level: int
    is_encrypted: bool
    log_reuse_wait_desc: str
    last_log_backup_lsn: int | None
    size_bytes: dict[str, int] = field(default_factory=dict)
    #: ``sys.database_recovery_status``: a restored copy gets a new database_guid, keeps the family_guid.
    database_guid: str | None = None
    family_guid: str | None = None
    tde_encryption_state: int | None = None
    sku_features: tuple[str, ...] | None = None

    @property
    def data_bytes(self) -> int:
        """Allocated bytes of the data files (ROWS)."""
        return self.size_bytes.get("ROWS", 0)

    @property
    def restore_bytes(self) -> int:
        """Bytes RESTORE creates on the target: every file at its size (data, log, FILESTREAM, full-text)."""
        return sum(self.size_bytes.values())

    @property
    def has_tde(self) -> bool:
        """True if the database has an encryption key (RDS cannot restore it without the certificate)."""
        return self.tde_encryption_state is not None or self.is_encrypted

    def has_option(self, option: str) -> bool:
        """True if the database has ``option`` (a user-access mode, READ_ONLY or READ_WRITE) set."""
        if option == "READ_ONLY":
            return self.is_read_only
        if option == "READ_WRITE":
            return not self.is_read_only
        return self.user_access_desc == option


@dataclass(frozen=True)
class LoginRights:
    """What the connection's login may do on one database (S6: BACKUP needs db_backupoperator or more,
    ALTER DATABASE needs ALTER, DBCC CHECKDB needs sysadmin or db_owner, RESTORE needs sysadmin, dbcreator
    or the database *owner*, RESTORE HEADERONLY needs CREATE DATABASE)."""

    login_name: str
    is_sysadmin: bool
    is_dbcreator: bool
    is_db_owner: bool
    is_owner: bool
    can_backup_database: bool
    can_backup_log: bool
    can_alter: bool
    can_create_database: bool
    #: The login's user in the database (``dbo`` for sysadmin and the owner): what a GRANT names.
    user_name: str = ""

    @property
    def can_checkdb(self) -> bool:
        return self.is_sysadmin or self.is_db_owner

    @property
    def can_read_headers(self) -> bool:
        return self.is_sysadmin or self.is_dbcreator or self.can_create_database


@dataclass
class _Capture:
    """Messages of one statement, and progress reporting."""

    on_progress: ProgressCallback | None = None
    label: str = ""
    messages: list[tuple[int, int, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    last_logged: float = 0.0
    last_percent: int = -1

    def handler(self, state: int, severity: int, server: str, proc: str, line: int, text: Any) -> None:
        message = _clean_server_text(text)
        self.messages.append((severity, state, message))
        match = _PERCENT.search(message)
        if match is None:
            return
        percent = int(match.group(1))
        if percent <= self.last_percent:
            return
        self.last_percent = percent
        elapsed = time.monotonic() - self.started
        if self.on_progress is not None:
            self.on_progress(percent, elapsed)
        now = time.monotonic()
        if percent >= 100 or now - self.last_logged >= PROGRESS_LOG_INTERVAL:
            self.last_logged = now
            log.info("%s: %d%% after %.0f s", self.label, percent, elapsed)

    @property
    def errors(self) -> list[str]:
        return [text for severity, _, text in self.messages if severity > 10]


def _plain(value: Any) -> Any:
    """Integral Decimals (LSNs, numeric(25,0)) become ints; everything else is kept."""
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return value


def _row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _plain(value) for key, value in row.items()}


#: Backup compression algorithms the hook may name (a fixed allow-list: it goes into the statement).
COMPRESSION_ALGORITHMS = ("MS_XPRESS",)


def _compression_option(compression: bool, algorithm: str | None) -> str:
    if not compression:
        return "NO_COMPRESSION"
    if algorithm is None:
        return "COMPRESSION"
    if algorithm not in COMPRESSION_ALGORITHMS:
        raise ValueError(
            f"compression algorithm {algorithm!r} is not one of {', '.join(COMPRESSION_ALGORITHMS)}"
        )
    return f"COMPRESSION (ALGORITHM = {algorithm})"


def _guid_text(value: Any) -> str | None:
    text = str(value or "").strip().strip("{}").lower()
    return text or None


def _iso_utc(value: datetime) -> str:
    """ISO 8601 text in UTC, for ``CONVERT(datetime2, ..., 126)`` (never a language-dependent literal)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}"


def _utc_times(row: dict[str, Any]) -> dict[str, Any]:
    """Replace msdb's local backup times by the UTC ones the query computed (aware datetimes)."""
    for local, utc in (
        ("backup_start_date", "backup_start_utc"),
        ("backup_finish_date", "backup_finish_utc"),
    ):
        value = row.pop(utc, None)
        if isinstance(value, datetime):
            row[local] = value.replace(tzinfo=UTC)
    return row


# --------------------------------------------------------------------------------------------------
# Hook
# --------------------------------------------------------------------------------------------------


class MigrationMsSqlHook(MsSqlHook):
    """SQL Server hook with the migration's statements (source and target alike).

    Nothing connects in ``__init__``; every method opens one connection with autocommit on and closes it.

    :param mssql_conn_id: Airflow connection id (conn_type ``mssql``; extras go to ``pymssql.connect``,
        e.g. ``{"tds_version": "7.4"}``).
    """

    hook_name = "SQL Server (RDS migration)"

    # ---- connection and execution ------------------------------------------------------------

    def get_conn(self) -> pymssql.Connection:
        """Return a new pymssql connection with autocommit on (no implicit ``BEGIN TRAN``)."""
        conn = self.connection
        extra = {k: v for k, v in conn.extra_dejson.items() if k not in ("sqlalchemy_scheme", "autocommit")}
        try:
            return pymssql.connect(
                server=conn.host or "",
                user=conn.login,
                password=conn.password,
                # Always master: a login whose default database is the one being migrated could not
                # connect once it is RESTORING, nor take the tail-log backup (S10).
                database="master",
                port=str(conn.port or 1433),
                autocommit=True,
                **extra,
            )
        except pymssql.Error as e:
            # pymssql keeps login-time messages in process-wide state, so the number it reports for
            # a failed connect can belong to an earlier failure: name every likely cause instead.
            raise SqlServerError(
                error_number(e),
                f"connecting to SQL Server {conn.host}:{conn.port} as {conn.login!r} (database master) failed: "
                "the login was refused or the server is unreachable. Check host, port, login, password and "
                f"the tds_version extra of the Airflow connection — pymssql said: {_server_text(e)}",
                _server_text(e),
            ) from e

    @contextlib.contextmanager
    def _session(
        self, capture: _Capture | None = None, *, no_timeout: bool = False
    ) -> Generator[Any, None, None]:
        conn = self.get_conn()
        try:
            conn.autocommit(True)
            if capture is not None:
                conn._conn.set_msghandler(capture.handler)
            if no_timeout:
                conn._conn.query_timeout = 0
            yield conn
        finally:
            with contextlib.suppress(pymssql.Error):
                conn.close()

    def _execute(
        self,
        sql_name: str,
        params: Mapping[str, Any] | None,
        *,
        action: str,
        database: str | None = None,
        slots: Mapping[str, str] | None = None,
        capture: _Capture | None = None,
        long_running: bool = False,
        conn: Any = None,
    ) -> list[list[dict[str, Any]]]:
        """Run one statement file, drain every result set, and return them (each a list of dict rows).

        :param conn: run in this open session (e.g. one holding an application lock); default a new one.
        """
        sql = load_sql(sql_name, **dict(slots or {}))
        capture = capture or _Capture(label=action)
        try:
            with (
                contextlib.nullcontext(conn)
                if conn is not None
                else self._session(capture, no_timeout=long_running) as session
            ):
                cursor = session.cursor(as_dict=True)
                cursor.execute(sql, dict(params or {}))
                results = [self._fetch(cursor)]
                while cursor.nextset():
                    results.append(self._fetch(cursor))
                return [r for r in results if r is not None]
        except SqlServerError:
            raise
        except pymssql.Error as e:
            error = map_error(e, action, database)
            extra = [m for m in capture.errors if m and m not in error.server_message]
            if extra:
                error = type(error)(
                    error.number, f"{error.message} (also: {' | '.join(extra)})", error.server_message
                )
            raise error from e

    def _take_backup_slot(self, conn: Any, slots: int, action: str, wait: float) -> int:
        """Hold one of the server's ``slots`` backup slots in ``conn`` (an application lock in master);
        wait for one when all are taken by other backups of this package, logging who waits."""
        deadline = time.monotonic() + wait
        logged = 0.0
        while True:
            for slot in range(1, slots + 1):
                rows = self._execute(
                    "backup_slot", {"slot": slot}, action=f"taking backup slot {slot} for {action}", conn=conn
                )
                if rows and rows[0] and int(rows[0][0]["result"]) >= 0:
                    return slot
            now = time.monotonic()
            if now > deadline:
                raise SqlServerError(
                    0,
                    f"{action}: all {slots} backup slot(s) of the server stayed taken by other backups of this "
                    f"package for {wait:.0f} s: raise source.max_concurrent_backups, or look for a stuck backup "
                    "(sys.dm_exec_requests, command BACKUP)",
                )
            if now - logged >= 60:
                log.info("%s: waiting for one of the server's %d backup slot(s)", action, slots)
                logged = now
            time.sleep(1.0)

    @staticmethod
    def _fetch(cursor: Any) -> list[dict[str, Any]] | None:
        if cursor.description is None:
            return None
        return [_row(r) for r in cursor.fetchall()]

    def _rows(self, sql_name: str, params: Mapping[str, Any] | None, **kwargs: Any) -> list[dict[str, Any]]:
        results = self._execute(sql_name, params, **kwargs)
        return results[0] if results else []

    # ---- preflight ----------------------------------------------------------------------------

    def server_facts(self) -> ServerFacts:
        """Return version and edition of the server (``SERVERPROPERTY``)."""
        rows = self._rows("server_properties", None, action="reading server properties")
        if not rows:
            raise SqlServerError(0, "reading server properties returned no row: is this a SQL Server?")
        row = rows[0]
        version = str(row.get("product_version") or "")
        major = row.get("product_major_version") or version.split(".", 1)[0]
        try:
            major_version = int(str(major))
        except ValueError as e:
            raise SqlServerError(0, f"cannot read the major version from product version {version!r}") from e
        return ServerFacts(
            server_name=str(row.get("server_name") or ""),
            product_version=version,
            major_version=major_version,
            edition=str(row.get("edition") or ""),
            edition_id=row.get("edition_id"),
            engine_edition=row.get("engine_edition"),
        )

    def can_compress_backups(self) -> bool:
        """Return True if this server's edition can write compressed backups (see :class:`ServerFacts`)."""
        return self.server_facts().can_compress_backups

    def database_facts(self, database: str) -> DatabaseFacts | None:
        """Return the state, recovery model, sizes, TDE and edition features of a database; None if absent.

        Edition features are read inside the database, so only when it is ONLINE (else ``None``).

        :param database: database name (any characters).
        """
        state = self._rows(
            "database_state",
            {"database": database},
            action=f"reading state of {database!r}",
            database=database,
        )
        if not state:
            return None
        row = state[0]
        sizes = self._rows(
            "database_size", {"database": database}, action=f"reading size of {database!r}", database=database
        )
        tde = self._rows(
            "tde_state", {"database": database}, action=f"reading TDE of {database!r}", database=database
        )
        features: tuple[str, ...] | None = None
        if row["state_desc"] == "ONLINE":
            feature_rows = self._rows(
                "sku_features",
                {"database": database},
                action=f"reading edition features of {database!r}",
                database=database,
            )
            features = tuple(str(r["feature_name"]) for r in feature_rows)
        return DatabaseFacts(
            name=str(row["name"]),
            database_id=int(row["database_id"]),
            state_desc=str(row["state_desc"]),
            user_access_desc=str(row["user_access_desc"]),
            is_read_only=bool(row["is_read_only"]),
            recovery_model_desc=str(row["recovery_model_desc"]),
            compatibility_level=int(row["compatibility_level"]),
            is_encrypted=bool(row["is_encrypted"]),
            log_reuse_wait_desc=str(row["log_reuse_wait_desc"]),
            last_log_backup_lsn=_plain(row["last_log_backup_lsn"]),
            database_guid=_guid_text(row.get("database_guid")),
            family_guid=_guid_text(row.get("family_guid")),
            size_bytes={str(r["type_desc"]): int(r["size_bytes"]) for r in sizes},
            tde_encryption_state=int(tde[0]["encryption_state"]) if tde else None,
            sku_features=features,
        )

    def login_rights(self, database: str) -> LoginRights:
        """Return what the connection's login may do on ``database`` (see :class:`LoginRights`).

        :param database: database name.
        """
        rows = self._rows(
            "login_rights",
            {"database": database},
            action=f"reading the login's rights on {database!r}",
            database=database,
        )
        if not rows:
            raise SqlServerError(0, f"reading the login's rights on {database!r} returned no row")
        row = rows[0]
        names = ("login_name", "user_name")
        flags = {name: bool(row.get(name)) for name in LoginRights.__dataclass_fields__ if name not in names}
        return LoginRights(
            login_name=str(row.get("login_name") or ""), user_name=str(row.get("user_name") or ""), **flags
        )

    def check_database(self, database: str) -> list[str]:
        """Run ``DBCC CHECKDB`` and return the consistency errors found (empty list: clean).

        Errors about the check itself (unknown database, login, permissions) are raised.

        :param database: database name.
        """
        capture = _Capture(label=f"DBCC CHECKDB {database!r}")
        try:
            self._execute(
                "checkdb",
                {"database": database},
                action=f"DBCC CHECKDB of {database!r}",
                database=database,
                capture=capture,
                long_running=True,
            )
        except SqlServerError as e:
            if (
                not any(lo <= e.number <= hi for lo, hi in CHECKDB_ERROR_RANGES)
                or e.number in _NOT_CONSISTENCY
            ):
                raise
            errors = capture.errors or [e.server_message]
            log.warning("DBCC CHECKDB of %r found %d error message(s)", database, len(errors))
            return errors
        return capture.errors

    # ---- msdb history -------------------------------------------------------------------------

    def backup_history(self, database: str, since: datetime) -> list[dict[str, Any]]:
        """Return msdb backup history of a database since a time, oldest first (LSNs as ints).

        One row per backup set (a striped set is listed once, with ``family_count`` files). The bound is
        sent as ISO 8601 text, so no login language or DATEFORMAT can misread it, and compared in the
        server's local time; ``backup_start_date`` / ``backup_finish_date`` come back in UTC (aware).

        :param database: database name.
        :param since: earliest backup start (aware; a naive value is taken as UTC).
        """
        rows = self._rows(
            "backup_history",
            {"database": database, "since_utc": _iso_utc(since)},
            action=f"reading backup history of {database!r}",
            database=database,
        )
        return [_utc_times(row) for row in rows]

    def find_backup(self, database: str, server_path: str) -> BackupRecord | None:
        """Return the msdb record of the backup written to ``server_path`` (None if there is none).

        :param database: database name.
        :param server_path: backup file path as the SQL Server host sees it.
        """
        rows = self._rows(
            "backup_record",
            {"database": database, "path": server_path},
            action=f"reading the msdb record of {server_path!r}",
            database=database,
        )
        return BackupRecord.from_msdb_row(_utc_times(rows[0])) if rows else None

    # ---- backups --------------------------------------------------------------------------------

    def backup(
        self,
        database: str,
        kind: str,
        server_path: str,
        *,
        backup_name: str,
        compression: bool,
        compression_algorithm: str | None = None,
        on_progress: ProgressCallback | None = None,
        backup_slots: int | None = 1,
        slot_wait: float = 24 * 3600,
    ) -> BackupRecord:
        """Back up a database to one file and return its msdb record.

        The backup counts only once msdb confirms it; no row raises :class:`BackupNotRecordedError`.
        Callers that may retry should call :meth:`find_backup` first.

        :param database: database name.
        :param kind: ``FULL``, ``DIFF`` or ``LOG``.
        :param server_path: target file as the SQL Server host sees it (overwritten: WITH INIT, FORMAT).
        :param backup_name: backup set name (``NAME =``), at most 128 characters.
        :param compression: write a compressed backup (see :attr:`ServerFacts.can_compress_backups`).
        :param compression_algorithm: ``MS_XPRESS`` pins the classic algorithm (SQL Server 2022 may
            default to QAT_DEFLATE, which RDS is not documented to restore); None for older servers.
        :param on_progress: called with ``(percent, elapsed_seconds)`` for each STATS message.
        :param backup_slots: backups this package may run at once on the server (all databases): the
            backup waits for a free slot, held by its session (see ``backup_slot.sql``). None: take no
            slot (a cutover's tail-log backup, which must not wait while its database is frozen).
        :param slot_wait: seconds to wait for a slot before failing.
        """
        kind = str(kind).upper()
        if kind not in BACKUP_SQL:
            raise ValueError(f"backup kind {kind!r} is not one of {', '.join(BACKUP_SQL)}")
        if len(backup_name) > 128:
            raise ValueError(f"backup name {backup_name[:40]!r}... is longer than 128 characters: shorten it")
        action = f"{kind} backup of {database!r} to {server_path!r}"
        capture = _Capture(on_progress=on_progress, label=action)
        started = time.monotonic()
        if backup_slots is not None and backup_slots < 1:
            raise ValueError("backup_slots must be at least 1")
        with self._session(capture, no_timeout=True) as conn:  # the slot is held by this session
            if backup_slots is None:
                log.info(
                    "Starting %s (compression %s, no backup slot)", action, "on" if compression else "off"
                )
            else:
                slot = self._take_backup_slot(conn, backup_slots, action, slot_wait)
                log.info(
                    "Starting %s (compression %s, backup slot %d of %d)",
                    action,
                    "on" if compression else "off",
                    slot,
                    backup_slots,
                )
            self._execute(
                BACKUP_SQL[kind],
                {"database": database, "path": server_path, "backup_name": backup_name},
                action=action,
                database=database,
                slots={"COMPRESSION": _compression_option(compression, compression_algorithm)},
                capture=capture,
                conn=conn,
            )
        record = self.find_backup(database, server_path)
        if record is None:
            raise BackupNotRecordedError(
                0,
                f"{action} returned but msdb has no record of the file: the backup does not count; "
                "check the SQL Server error log and msdb history, then take it again",
            )
        if record.backup_type.value != BACKUP_TYPE_CODE[kind]:
            raise BackupNotRecordedError(
                0,
                f"{action}: msdb records a {record.backup_type.name} backup for this file, not {kind}: "
                "another job may write to the same path; use a dedicated folder",
            )
        log.info(
            "%s done in %.1f s: %s, %d bytes",
            action,
            time.monotonic() - started,
            record.label,
            record.size_bytes,
        )
        return record

    def read_backup_header(self, server_path: str) -> dict[str, Any]:
        """Return the backup-set header of a file (``RESTORE HEADERONLY``; first backup set).

        :param server_path: backup file path as the SQL Server host sees it.
        """
        rows = self._rows(
            "restore_headeronly",
            {"path": server_path},
            action=f"RESTORE HEADERONLY of {server_path!r}",
            long_running=True,
        )
        if not rows:
            raise SqlServerError(
                0, f"RESTORE HEADERONLY of {server_path!r} returned no backup set: not a backup"
            )
        return rows[0]

    # ---- cutover --------------------------------------------------------------------------------

    def set_database_option(self, database: str, option: str) -> None:
        """Set a user-access or updateability option WITH ROLLBACK IMMEDIATE, and confirm it took effect.

        :param database: database name.
        :param option: one of :data:`DATABASE_OPTIONS` (RESTRICTED_USER, SINGLE_USER, MULTI_USER,
            READ_ONLY, READ_WRITE).
        """
        option = str(option).upper()
        if option not in DATABASE_OPTIONS:
            raise ValueError(f"database option {option!r} is not one of {', '.join(DATABASE_OPTIONS)}")
        log.info("Setting %r to %s", database, option)
        action = f"setting {database!r} to {option}"
        try:
            self._execute(
                "set_database_option",
                {"database": database},
                action=action,
                database=database,
                slots={"OPTION": option},
                long_running=True,
            )
        except SqlServerError as error:
            # ROLLBACK IMMEDIATE reports the killed sessions with message 5060 at severity 10 (a
            # warning); pymssql raises on it. The change is made: confirm it instead of failing.
            if error.number != ROLLED_BACK_SESSIONS_MESSAGE:
                raise
            log.info("%s: other sessions were rolled back (%s)", action, error.server_message)
        facts = self.database_facts(database)
        if facts is None or not facts.has_option(option):
            found = (
                f"{facts.user_access_desc}, {'READ_ONLY' if facts.is_read_only else 'READ_WRITE'}"
                if facts
                else "missing"
            )
            raise SqlServerError(0, f"{action} did not take effect: the database is {found}", "")

    def set_user_access(self, database: str, mode: str) -> None:
        """Set ``RESTRICTED_USER``, ``SINGLE_USER`` or ``MULTI_USER`` WITH ROLLBACK IMMEDIATE.

        :param database: database name.
        :param mode: one of :data:`USER_ACCESS_MODES`.
        """
        mode = str(mode).upper()
        if mode not in USER_ACCESS_MODES:
            raise ValueError(f"user access mode {mode!r} is not one of {', '.join(USER_ACCESS_MODES)}")
        self.set_database_option(database, mode)

    def recover_database(self, database: str) -> None:
        """Bring a database left RESTORING (by a tail-log backup) back online: ``RESTORE ... WITH RECOVERY``.

        :param database: database name.
        """
        log.info("Recovering %r (RESTORE DATABASE WITH RECOVERY)", database)
        self._execute(
            "restore_with_recovery",
            {"database": database},
            action=f"RESTORE DATABASE {database!r} WITH RECOVERY",
            database=database,
            long_running=True,
        )

    # ---- validation -----------------------------------------------------------------------------

    def row_counts(self, database: str) -> dict[tuple[str, str], int]:
        """Return ``{(schema, table): rows}`` for every user table, from metadata (no data is read).

        :param database: database name (source or target).
        """
        rows = self._rows(
            "row_counts", {"database": database}, action=f"counting rows of {database!r}", database=database
        )
        return {(str(r["schema_name"]), str(r["table_name"])): int(r["row_count"] or 0) for r in rows}

    def restore_proof(self, database: str) -> dict[str, Any]:
        """What this server restored into ``database`` (msdb restorehistory): the last LSN reached, the
        number of restores of the current sequence, the backups' ``database_guid`` and the database's
        ``family_guid``.

        :param database: database name on this server.
        """
        rows = self._rows(
            "restore_proof",
            {"database": database},
            action=f"reading restore history of {database!r}",
            database=database,
        )
        row = rows[0] if rows else {}
        return {
            "restored_through_lsn": row.get("restored_through_lsn"),
            "restores": int(row.get("restores") or 0),
            "backup_database_guid": _guid_text(row.get("backup_database_guid")),
            "family_guid": _guid_text(row.get("family_guid")),
        }

    def log_since_last_backup(self, database: str) -> int | None:
        """Bytes of log written since the last log backup (``sys.dm_db_log_stats``, SQL Server 2016 SP2+);
        None where the server cannot tell.

        :param database: database name.
        """
        try:
            rows = self._rows(
                "log_since_backup",
                {"database": database},
                action=f"reading log stats of {database!r}",
                database=database,
            )
        except SqlServerError as error:
            if error.number in (195, 208, 4121):  # not a recognised function (before 2016 SP2)
                return None
            raise
        return int(rows[0]["log_bytes"]) if rows and rows[0].get("log_bytes") is not None else None

    def table_digest(
        self, database: str, schema: str, table: str, *, batch: int = 5000, max_seconds: float | None = None
    ) -> tuple[int, str]:
        """Return ``(rows, digest)`` over every row's content, in any order (deep validation).

        Each row is hashed (SHA-256 of its values with their types, text/ntext/image/xml included) and the
        hashes are summed modulo 2**256: the result does not depend on row order, and unlike
        CHECKSUM_AGG two identical rows do not cancel each other out. Rows stream in batches.

        :param database: database name (source or target).
        :param schema: schema name.
        :param table: table name.
        :param max_seconds: stop after this long (a sample, to measure the scan rate); the digest then
            covers only the rows read.
        """
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        action = f"reading every row of {database!r}.{schema!r}.{table!r}"
        sql = load_sql("table_rows")
        total, count = 0, 0
        try:
            with self._session(no_timeout=True) as conn:
                cursor = conn.cursor()
                cursor.execute(sql, {"database": database, "schema": schema, "table": table})
                while True:
                    chunk = cursor.fetchmany(batch)
                    if not chunk:
                        break
                    for row in chunk:
                        total = (total + _row_hash(row)) % (1 << 256)
                        count += 1
                    if deadline is not None and time.monotonic() > deadline:
                        break
        except pymssql.Error as e:
            raise map_error(e, action, database) from e
        return count, f"{total:064x}"


def _row_hash(row: tuple[Any, ...]) -> int:
    """SHA-256 of one row: each value with its type, so 1 and '1' or NULL and '' differ."""
    digest = hashlib.sha256()
    for value in row:
        if isinstance(value, bytes | bytearray):
            data = b"b" + bytes(value)
        elif value is None:
            data = b"n"
        elif isinstance(value, datetime):
            data = b"t" + value.isoformat().encode()
        elif isinstance(value, Decimal):
            data = b"d" + str(value.normalize()).encode()
        else:
            data = type(value).__name__[:1].encode() + str(value).encode("utf-8")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return int.from_bytes(digest.digest(), "big")
