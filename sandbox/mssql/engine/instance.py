"""A simulated SQL Server instance: configuration, sessions, databases and the public Python API."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from sandbox.clock import SandboxClock
from sandbox.mssql.engine import admin, backup, errors, language, persist, security
from sandbox.mssql.engine.database import RECOVERY_MODELS, USER_ACCESS, Database
from sandbox.mssql.engine.faults import BackupFaults
from sandbox.mssql.engine.functions import write_context
from sandbox.mssql.engine.lexer import quote_ident
from sandbox.mssql.engine.txlog import split_lsn
from sandbox.mssql.results import SqlError

EDITIONS = {  # edition prefix -> (EditionID, EngineEdition, can compress backups)
    "Enterprise Edition: Core-based Licensing": (1872460670, 3, True),
    "Enterprise Edition": (1804890536, 3, True),
    "Developer Edition": (-2117995310, 3, True),
    "Evaluation Edition": (610778273, 3, True),
    "Standard Edition": (-1534726760, 2, True),
    "Web Edition": (1293598313, 2, False),
    "Express Edition with Advanced Services": (-133711905, 4, False),
    "Express Edition": (-1592396055, 4, False),
}
RELEASE_YEARS = {10: "2008", 11: "2012", 12: "2014", 13: "2016", 14: "2017", 15: "2019", 16: "2022"}
DATABASE_VERSIONS = {10: 661, 11: 706, 12: 782, 13: 852, 14: 869, 15: 904, 16: 957}
SYSTEM_DATABASES = ["master", "tempdb", "model", "msdb"]


class ConfigError(ValueError):
    """An invalid instance configuration; the message names the field."""


@dataclass(eq=False)
class Session:
    spid: int
    login: str
    database: str
    sysadmin: bool
    app_name: str = ""
    host_name: str = ""
    tran_count: int = 0
    killed: bool = False
    on_kill: Callable[[], None] | None = None  # the protocol layer drops the connection (KILL)
    on_drop: Callable[[], None] | None = None  # the protocol layer drops the connection (network failure)
    request: dict | None = None
    rowcount: int = 0
    identity: int | None = None
    txn_dbs: dict = field(default_factory=dict)  # Database -> [(ops, time, seed)] pending until COMMIT
    language: str = "us_english"  # @@LANGUAGE; sets dateformat/datefirst (SET LANGUAGE, login default)
    dateformat: str = "mdy"
    datefirst: int = 7

    def set_language(self, lang: language.Language) -> None:
        self.language, self.dateformat, self.datefirst = lang.name, lang.dateformat, lang.datefirst

    @property
    def in_transaction(self) -> bool:
        return self.tran_count > 0


@dataclass(frozen=True)
class BatchRecord:
    """One batch a client sent (kept only while ``Instance.batch_log`` is a list): tests read what a
    product asked of the server, e.g. that a cutover scanned no table data."""

    at: dt.datetime
    login: str
    database: str
    sql: str


class Instance:
    """One SQL Server instance. Thread-safe: each session's batch runs in its own thread."""

    def __init__(
        self,
        name: str,
        product_version: str,
        edition: str,
        data_dir: Path,
        path_map: dict[str, Path],
        logins: dict[str, security.Login],
        *,
        clock: SandboxClock | None = None,
        timezone: dt.tzinfo = dt.UTC,
    ):
        self.clock = clock if clock is not None else SandboxClock()  # "now" comes only from here
        self.timezone = timezone  # the server's own time zone (GETDATE, msdb dates)
        self.empty_log_restore = "accept"  # RESTORE LOG of an empty log at the restore point (config)
        self.faults = BackupFaults()  # injected BACKUP faults (config ``faults:``; engine/faults.py)
        self.backup_compression_algorithm = "MS_XPRESS"  # WITH COMPRESSION without ALGORITHM (config, 16.x)
        self.name = name
        self.product_version = product_version
        self.edition = edition
        prefix = next((p for p in EDITIONS if edition.startswith(p)), None)
        if prefix is None:
            raise ConfigError(f"edition: unknown edition {edition!r}; expected one of {sorted(EDITIONS)}")
        self.edition_id, self.engine_edition, self.can_compress = EDITIONS[prefix]
        self.version_tuple = tuple(int(p) for p in product_version.split("."))
        self.data_dir = data_dir
        self.data_dir_display = "C:\\Program Files\\Microsoft SQL Server\\MSSQL\\DATA"
        self.path_map = path_map
        self.logins = logins
        self.lock = threading.RLock()
        self.databases: dict[str, Database] = {}
        self.sessions: dict[int, Session] = {}
        #: Every batch received, when a test sets it to a list (None: nothing is kept).
        self.batch_log: list[BatchRecord] | None = None
        #: Application locks (sp_getapplock): (database, resource) -> (owning session, mode, count).
        self.applocks: dict[tuple[str, str], tuple[Session, str, int]] = {}
        self._applock_cond = threading.Condition()
        self._spids = itertools.count(51)
        self._file_ids = itertools.count(1)
        data_dir.mkdir(parents=True, exist_ok=True)
        restored = persist.load(data_dir)
        #: True when the databases were saved by an earlier run of this instance (see ``close``).
        self.restarted = restored is not None
        if restored is not None:
            for db in restored:
                self.databases[db.name.lower()] = db
            self._file_ids = itertools.count(max(persist.file_id(db) for db in restored) + 1)
            return
        for stale in data_dir.glob("db_*.sqlite*"):
            stale.unlink()
        for index, db_name in enumerate(SYSTEM_DATABASES, start=1):
            self._add_database(db_name, index, system=True)
        admin.create_msdb_tables(self)

    def close(self) -> None:
        """Stop: save every database's state (a later instance on the same data dir continues from it) and
        close the data files. Call when no batch runs any more (the TDS server is closed)."""
        persist.save(self)
        for db in self.all_databases():
            db.close()

    # -- configuration -------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: dict, base_dir: Path, clock: SandboxClock | None = None) -> Instance:
        """Build an instance from a config dict (see the package docstring); paths relative to ``base_dir``.

        :param clock: the clock to read "now" from (a sandbox shares one between its stand-ins).
        """
        from sandbox.mssql.engine.config import build_instance

        return build_instance(cls, cfg, Path(base_dir), clock)

    # -- server time ---------------------------------------------------------------------------
    def now(self) -> dt.datetime:
        """The current time in the server's time zone (aware), read from ``clock``."""
        return self.clock.now().astimezone(self.timezone)

    def local_now(self) -> dt.datetime:
        """The server's wall-clock time, naive: what GETDATE() and msdb's datetime columns hold."""
        return self.now().replace(tzinfo=None)

    @property
    def major_version(self) -> int:
        return self.version_tuple[0]

    @property
    def database_version(self) -> int:
        return DATABASE_VERSIONS.get(self.major_version, 957)

    def version_string(self) -> str:
        year = RELEASE_YEARS.get(self.major_version, "")
        return (
            f"Microsoft SQL Server {year} (RTM) - {self.product_version} (X64) \n\tCopyright (C) {year} "
            f"Microsoft Corporation\n\t{self.edition} on Linux (sandbox) <X64>"
        )

    # -- databases -----------------------------------------------------------------------------
    def _add_database(self, name: str, database_id: int | None = None, system: bool = False) -> Database:
        with self.lock:
            if database_id is None:
                used = {d.database_id for d in self.databases.values()}
                database_id = next(i for i in itertools.count(5) if i not in used)
            path = self.data_dir / f"db_{database_id}_{next(self._file_ids)}.sqlite"
            db = Database(name, database_id, path, system=system)
            db.create_date = self.local_now().replace(microsecond=0)
            db.compatibility_level = min(self.major_version, 16) * 10
            self.databases[name.lower()] = db
            return db

    def find_database(self, name: str | None) -> Database | None:
        if name is None:
            return None
        with self.lock:
            return self.databases.get(str(name).lower())

    def database(self, name: str) -> Database:
        db = self.find_database(name)
        if db is None:
            raise errors.db_not_exist(name)
        return db

    def database_by_id(self, database_id: int) -> Database | None:
        with self.lock:
            return next((d for d in self.databases.values() if d.database_id == database_id), None)

    def all_databases(self) -> list[Database]:
        with self.lock:
            return sorted(self.databases.values(), key=lambda d: d.database_id)

    def all_sessions(self) -> list[Session]:
        with self.lock:
            return list(self.sessions.values())

    def database_id_of(self, name: str | None) -> int | None:
        db = self.find_database(name)
        return db.database_id if db else None

    def database_names(self) -> list[str]:
        return [d.name for d in self.all_databases()]

    def create_database(self, name: str) -> Database:
        if not name or len(name) > 128:
            raise SqlError(1038, 15, 4, "An object or column name is missing or empty.")
        with self.lock:
            if self.find_database(name) is not None:
                raise SqlError(
                    1801, 16, 3, f"Database '{name}' already exists. Choose a different database name."
                )
            return self._add_database(name)

    def drop_database(self, name: str, session: Session | None = None) -> None:
        """DROP DATABASE: refused while other sessions use it (3702)."""
        with self.lock:
            db = self.database(name)
            if db.system:
                raise SqlError(
                    3708, 16, 1, f"Cannot drop the database '{db.name}' because it is a system database."
                )
            users = [
                s for s in self.sessions.values() if s.database.lower() == db.name.lower() and not s.killed
            ]
            if users:
                raise SqlError(
                    3702, 16, 4, f'Cannot drop database "{db.name}" because it is currently in use.'
                )
            if db.running:
                raise SqlError(
                    3702, 16, 4, f'Cannot drop database "{db.name}" because it is currently in use.'
                )
            del self.databases[db.name.lower()]
        db.close()
        for suffix in ("", "-wal", "-shm"):
            Path(str(db.path) + suffix).unlink(missing_ok=True)

    def database_info(self, name: str) -> dict | None:
        db = self.find_database(name)
        if db is None:
            return None
        data_pages, log_pages = self.file_pages(db)
        return {
            "name": db.name,
            "database_id": db.database_id,
            "state_desc": db.state,
            "user_access_desc": db.user_access,
            "recovery_model_desc": db.recovery_model,
            "is_read_only": db.read_only,
            "is_encrypted": db.tde,
            "sku_features": list(db.sku_features),
            "size_bytes": (data_pages + log_pages) * 8192,
            "data_bytes": data_pages * 8192,
            "log_bytes": log_pages * 8192,
            "database_guid": db.database_guid,
            "last_log_backup_lsn": db.last_log_backup_lsn,
            "compatibility_level": db.compatibility_level,
            "owner": db.owner,
            "corrupt": db.corrupt,
            "restore_point_lsn": db.restore.point if db.restore else None,
        }

    def set_user_access(self, name: str, mode: str) -> None:
        admin.set_user_access(self, None, self.database(name), mode.upper(), "ROLLBACK IMMEDIATE")

    def set_read_only(self, name: str, read_only: bool) -> None:
        """ALTER DATABASE ... SET READ_ONLY|READ_WRITE WITH ROLLBACK IMMEDIATE."""
        admin.set_updateability(self, None, self.database(name), bool(read_only), "ROLLBACK IMMEDIATE")

    def set_corrupt(self, name: str, corrupt: bool) -> None:
        self.database(name).corrupt = bool(corrupt)

    def set_backup_padding(
        self, name: str, *, full_bytes: int | None = None, log_bytes: int | None = None
    ) -> None:
        """Extra payload bytes per backup (simulates data volume): full/differential and log."""
        db = self.database(name)
        if full_bytes is not None:
            db.padding["full"] = int(full_bytes)
        if log_bytes is not None:
            db.padding["log"] = int(log_bytes)

    def file_pages(self, db: Database) -> tuple[int, int]:
        """Allocated pages of the data and log files: at least 8 MB / 8 MB as a new database has, or the
        configured ``files.data_mb``/``log_mb``; they grow with the data and log."""
        data_floor = max(1024, db.files.get("data_mb", 0) * 128)
        log_floor = max(1024, db.files.get("log_mb", 0) * 128)
        data = max(data_floor, -(-(db.data_size() + db.padding["full"]) // 8192))
        log = max(log_floor, -(-(db.log.size_bytes() + db.padding["log"]) // 8192))
        return data, log

    def log_reuse_wait(self, db: Database) -> tuple[int, str]:
        if db.log.pins:
            return 4, "ACTIVE_BACKUP_OR_RESTORE"
        if db.write_lock.owner is not None:
            return 4, "ACTIVE_TRANSACTION"
        if db.recovery_model != "SIMPLE" and db.last_log_backup_lsn is not None and db.log.records:
            return 2, "LOG_BACKUP"
        return 0, "NOTHING"

    def checkpoint(self, db: Database) -> int:
        """A checkpoint record; SIMPLE (and FULL never backed up) truncate the log here."""
        record = db.log.append("checkpoint", time=self.now().isoformat())
        db.last_checkpoint_lsn = record.lsn
        self.truncate_log(db)
        return record.lsn

    def truncate_log(self, db: Database) -> None:
        if db.recovery_model == "SIMPLE" or db.last_log_backup_lsn is None:
            db.log.truncate_before(db.log.next_lsn)
        else:
            db.log.truncate_before(db.last_log_backup_lsn)

    # -- access --------------------------------------------------------------------------------
    def check_access(self, session: Session, name: str) -> Database:
        """The database, if ``session`` may use it now: state, user access mode, then a user in it (916)."""
        db = self.database(name)
        if db.state == "RESTORING":
            raise errors.db_restoring(db.name)
        if db.state == "OFFLINE":
            raise errors.db_offline(db.name)
        if db.state != "ONLINE":
            raise errors.db_recovery_pending(db.name)
        if session.database.lower() == db.name.lower():
            return db
        if db.user_access == "RESTRICTED_USER" and not security.may_use_restricted(self, session, db):
            raise security.restricted_error(db)
        if db.user_access == "SINGLE_USER":
            others = [
                s
                for s in self.all_sessions()
                if s is not session and not s.killed and s.database.lower() == db.name.lower()
            ]
            if others:
                raise errors.db_single_user(db.name)
        security.check_connect(self, session, db)
        return db

    def check_writable(self, session: Session, db: Database) -> None:
        self.check_access(session, db.name)
        if db.read_only:
            raise errors.db_read_only(db.name)

    # -- sessions ------------------------------------------------------------------------------
    def login(
        self,
        user: str,
        password: str,
        database: str | None = None,
        app_name: str = "",
        host_name: str = "",
        language_name: str | None = None,
    ) -> Session:
        """LOGIN7: the requested database, else the login's default database; the requested language,
        else the login's default language.

        A requested database that cannot be opened fails with 4060, an unusable *default* database with
        4064 (Microsoft, MSSQLSERVER_4064: restoring, offline, single-user taken, restricted, no user...).
        """
        account = self.logins.get(user)
        if account is None or account.password != password:
            raise SqlError(18456, 14, 1, f"Login failed for user '{user}'.")
        session = Session(next(self._spids), user, "master", account.sysadmin, app_name, host_name)
        lang = language.find_language(language_name or account.default_language)
        if lang is None:
            raise SqlError(
                4019,
                16,
                1,
                f"Language requested in login '{language_name}' is not an official language name on this "
                "SQL Server. Login fails.",
            )
        session.set_language(lang)
        target = database or account.default_database
        with self.lock:
            try:
                if self.find_database(target) is None:
                    raise errors.db_not_exist(target)
                session.database = self.check_access(session, target).name
            except SqlError as e:
                if database:
                    raise SqlError(
                        4060,
                        11,
                        1,
                        f'Cannot open database "{database}" requested by the login. The login failed.',
                    ) from e
                raise SqlError(4064, 11, 1, "Cannot open user default database. Login failed.") from e
            self.sessions[session.spid] = session
        return session

    def close_session(self, session: Session) -> None:
        if session.in_transaction:
            self.rollback(session)
        with self.lock:
            self.sessions.pop(session.spid, None)
        with self._applock_cond:  # session-owned application locks end with the session
            for key in [k for k, (owner, _, _) in self.applocks.items() if owner is session]:
                del self.applocks[key]
            self._applock_cond.notify_all()

    def get_applock(
        self, session: Session, database: str, resource: str, mode: str, timeout: float | None, cancel
    ) -> int:
        """Take an application lock for ``session`` (sp_getapplock, session owner): 0 at once, 1 after a
        wait, -1 when ``timeout`` (seconds; None: forever) ran out. Shared locks share with each other."""
        key = (database, resource.lower())
        deadline = None if timeout is None else time.monotonic() + timeout
        waited = False
        with self._applock_cond:
            while True:
                held = self.applocks.get(key)
                if held is None or held[0] is session or (held[1] == mode == "shared"):
                    count = held[2] + 1 if held is not None and held[0] is session else 1
                    self.applocks[key] = (
                        session,
                        mode if held is None or held[0] is session else "shared",
                        count,
                    )
                    return 1 if waited else 0
                if deadline is not None and time.monotonic() >= deadline:
                    return -1
                if cancel.is_set() or session.killed:
                    return -2
                waited = True
                self._applock_cond.wait(
                    0.05 if deadline is None else min(0.05, max(deadline - time.monotonic(), 0))
                )

    def release_applock(self, session: Session, database: str, resource: str) -> bool:
        key = (database, resource.lower())
        with self._applock_cond:
            held = self.applocks.get(key)
            if held is None or held[0] is not session:
                return False
            if held[2] > 1:
                self.applocks[key] = (session, held[1], held[2] - 1)
            else:
                del self.applocks[key]
            self._applock_cond.notify_all()
            return True

    def kill_error(self) -> SqlError:
        return SqlError(596, 21, 1, "Cannot continue the execution because the session is in the kill state.")

    def execute(self, session: Session, sql_text: str, emit, cancel: threading.Event) -> None:
        """Run one batch; results go to ``emit``; an error aborts the batch (raised as SqlError)."""
        from sandbox.mssql.engine.executor import Executor

        if session.killed:
            raise self.kill_error()
        if self.batch_log is not None:
            self.batch_log.append(BatchRecord(self.clock.now(), session.login, session.database, sql_text))
        try:
            Executor(self, session, emit, cancel).run_batch(sql_text)
        finally:
            session.request = None
            if session.killed and session.in_transaction:
                self.rollback(session)

    def kill(self, session: Session, spid: int) -> None:
        """``KILL <spid>`` (Microsoft, "KILL (Transact-SQL)"): needs ALTER ANY CONNECTION (sysadmin,
        processadmin); the victim's batch stops, its transaction rolls back, its connection closes."""
        if not security.has_server_permission(self, session, "ALTER ANY CONNECTION"):
            raise SqlError(6102, 14, 1, "User does not have permission to use the KILL statement.")
        if spid == session.spid:
            raise SqlError(6104, 16, 1, "Cannot use KILL to kill your own process.")
        with self.lock:
            victim = self.sessions.get(spid)
        if victim is None or victim.killed:
            raise SqlError(6106, 16, 2, f"Process ID {spid} is not an active process ID.")
        self.kill_session(victim, drop_first=True)

    def drop_connection(self, session: Session) -> None:
        """The session's client connection fails (a network fault): the protocol layer closes it."""
        if session.on_drop is not None:
            session.on_drop()

    def kill_session(self, victim: Session, *, drop_first: bool = False) -> None:
        """Roll back and mark a session killed (ALTER DATABASE ... WITH ROLLBACK IMMEDIATE, KILL).

        :param drop_first: close the victim's connection at once, which also cancels a long statement
            (a BACKUP) that only looks at the kill between its steps (KILL).
        """
        victim.killed = True
        if drop_first and victim.on_kill is not None:
            victim.on_kill()
        deadline = time.monotonic() + 5
        while victim.request is not None and time.monotonic() < deadline:
            time.sleep(0.01)  # let the running batch notice the kill and stop
        if victim.in_transaction:
            self.rollback(victim)
        if victim.on_kill is not None and not drop_first:
            try:
                victim.on_kill()
            except Exception:  # noqa: BLE001 - the protocol layer's callback must not break ALTER DATABASE
                pass

    # -- transactions and writes ---------------------------------------------------------------
    def begin_transaction(self, session: Session) -> None:
        session.tran_count += 1

    def commit(self, session: Session) -> None:
        if session.tran_count == 0:
            return
        session.tran_count -= 1
        if session.tran_count > 0:
            return
        for db, entries in list(session.txn_dbs.items()):
            try:
                for ops, now, seed in entries:
                    self._log_write(db, ops, now, seed)
                db.conn.execute("COMMIT")
            finally:
                db.write_lock.release_all(session)
        session.txn_dbs.clear()

    def rollback(self, session: Session) -> None:
        session.tran_count = 0
        for db in list(session.txn_dbs):
            try:
                db.conn.execute("ROLLBACK")
            except Exception:  # noqa: BLE001 - the database file may have been replaced/dropped meanwhile
                pass
            db.write_lock.release_all(session)
        session.txn_dbs.clear()

    def write(self, session: Session, db: Database, build_ops: Callable[[], list], cancel=None) -> int:
        """Run a write: in the session's transaction, or autocommitted and logged at once."""
        self.check_writable(session, db)
        now, seed = self.now(), random.getrandbits(63)  # aware local: replays to the same GETDATE()
        if session.in_transaction:
            if db not in session.txn_dbs:
                db.write_lock.acquire(session, cancel)
                self.check_writable(session, db)
                db.conn.execute("BEGIN")
                session.txn_dbs[db] = []
            ops = build_ops()
            with write_context(now, seed):
                db.conn.execute("SAVEPOINT stmt")
                try:
                    rowcount = db.apply_ops(ops)
                except Exception:
                    db.conn.execute("ROLLBACK TO stmt")
                    raise
                finally:
                    db.conn.execute("RELEASE stmt")
            session.txn_dbs[db].append((ops, now, seed))
            return rowcount
        db.write_lock.acquire(session, cancel)
        try:
            self.check_writable(session, db)
            db.conn.execute("BEGIN")
            try:
                ops = build_ops()
                with write_context(now, seed):
                    rowcount = db.apply_ops(ops)
                self._log_write(db, ops, now, seed)
                db.conn.execute("COMMIT")
            except Exception:
                db.conn.execute("ROLLBACK")
                raise
            return rowcount
        finally:
            db.write_lock.release(session)

    def _log_write(self, db: Database, ops: list, now: dt.datetime, seed: int) -> None:
        db.log.append("write", ops, now.isoformat(), seed)
        if db.recovery_model == "SIMPLE" or db.last_log_backup_lsn is None:
            self.truncate_log(db)

    # -- built-in functions that need instance state -------------------------------------------
    def builtin(self, name: str):
        found = getattr(self, "_fn_" + name.lower(), None)
        if found is None and name.lower() in security.BUILTINS:
            return functools.partial(security.BUILTINS[name.lower()], self)
        return found

    def _fn_db_id(self, session: Session, name=None):
        return self.database_id_of(session.database if name is None else name)

    def _fn_db_name(self, session: Session, database_id=None):
        if database_id is None:
            return session.database
        db = self.database_by_id(int(database_id))
        return db.name if db else None

    def _fn_serverproperty(self, session: Session, prop):
        major, minor, build = (list(self.version_tuple) + [0, 0, 0])[:3]
        values = {
            "servername": self.name,
            "machinename": self.name.split("\\")[0],
            "instancename": None,
            "productversion": self.product_version,
            "productmajorversion": str(major),
            "productminorversion": str(minor),
            "productbuild": str(build),
            "productlevel": "RTM",
            "productupdatelevel": None,
            "edition": self.edition,
            "editionid": self.edition_id,
            "engineedition": self.engine_edition,
            "collation": "SQL_Latin1_General_CP1_CI_AS",
            "isclustered": 0,
            "ishadrenabled": 0,
            "isfulltextinstalled": 0,
            "isintegratedsecurityonly": 0,
            "issingleuser": 0,
            "processid": 4242,
            "buildclrversion": "v4.0.30319",
        }
        return values.get(str(prop).lower()) if prop is not None else None

    def _fn_object_id(self, session: Session, name, object_type=None):
        if name is None:
            return None
        from sandbox.mssql.engine.parser import Parser

        try:
            parts = Parser(str(name)).name_parts()
        except SqlError:
            return None
        db = self.find_database(parts[-3] if len(parts) >= 3 and parts[-3] else session.database)
        if db is None or db.state != "ONLINE":
            return None
        if object_type is not None and str(object_type).strip().upper() not in ("U", ""):
            return None
        table = db.find_table(parts[-2] if len(parts) >= 2 and parts[-2] else "dbo", parts[-1])
        return table.object_id if table else None

    def _fn_schema_name(self, session: Session, schema_id=1):
        db = self.find_database(session.database)
        return next((n for i, n in db.schemas() if i == int(schema_id)), None) if db else None

    def _fn_host_name(self, session: Session):
        return session.host_name

    def _fn_app_name(self, session: Session):
        return session.app_name

    def _fn_databasepropertyex(self, session: Session, name, prop):
        db = self.find_database(name)
        if db is None or prop is None:
            return None
        return {
            "status": db.state,
            "recovery": db.recovery_model,
            "useraccess": db.user_access,
            "updateability": "READ_ONLY" if db.read_only else "READ_WRITE",
            "collation": "SQL_Latin1_General_CP1_CI_AS",
        }.get(str(prop).lower())

    # -- backup / restore Python API (same code paths as the T-SQL statements) -----------------
    def read_backup_header(self, local_path) -> dict:
        """RESTORE HEADERONLY fields of a backup file (raises SqlError for a corrupt file)."""
        return backup.header_fields(backup.read_header_checked(self, Path(local_path), str(local_path)))

    def restore_file(
        self,
        database: str,
        local_path,
        *,
        recovery: bool,
        progress: Callable[[int], None] | None = None,
        replace: bool = False,
        login: str = "sa",
    ) -> dict:
        """Restore a full, differential or log backup into ``database``; returns its header fields.

        :param local_path: the backup file, or a list of files (every family of a striped backup).
        :param login: the ``user_name`` msdb.dbo.restorehistory records for this restore.
        """
        paths = list(local_path) if isinstance(local_path, list | tuple) else [local_path]
        return backup.restore(
            self,
            database,
            [(str(path), Path(path)) for path in paths],
            recovery=recovery,
            replace=replace,
            progress=progress,
            cancel=threading.Event(),
            login=login,
        )

    def recover_database(self, database: str) -> None:
        backup.recover(self, self.database(database))

    def checkdb(self, database: str) -> list[str]:
        return admin.checkdb_errors(self, self.database(database))

    # -- paths ---------------------------------------------------------------------------------
    def local_path(self, server_path: str) -> Path | None:
        """Map a path as the server sees it to a local file through ``path_map`` (None: unmapped)."""
        windows = "\\" in server_path or (len(server_path) > 1 and server_path[1] == ":")
        for prefix, local in self.path_map.items():
            if windows or "\\" in prefix:
                target = PureWindowsPath(server_path)
                base = PureWindowsPath(prefix)
                try:
                    rest = target.relative_to(base)
                except ValueError:
                    continue
                return Path(local).joinpath(*rest.parts)
            try:
                rest = PurePosixPath(server_path).relative_to(PurePosixPath(prefix))
            except ValueError:
                continue
            return Path(local).joinpath(*rest.parts)
        return None


def new_guid() -> str:
    return str(uuid.uuid4()).upper()


__all__ = ["Instance", "Session", "ConfigError", "quote_ident", "split_lsn", "RECOVERY_MODELS", "USER_ACCESS"]
