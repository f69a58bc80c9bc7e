"""One database: its SQLite file (data + catalog), state flags, log and backup-chain position."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.mssql.engine.functions import register_common, write_context
from sandbox.mssql.engine.parser import SqlType
from sandbox.mssql.engine.security import USERS_DDL
from sandbox.mssql.engine.txlog import OwnerLock, TransactionLog, make_lsn

CATALOG_DDL = [
    'CREATE TABLE IF NOT EXISTS "__schemas" (schema_id INTEGER PRIMARY KEY, name TEXT NOT NULL COLLATE NOCASE '
    "UNIQUE)",
    'CREATE TABLE IF NOT EXISTS "__tables" (object_id INTEGER PRIMARY KEY, schema_id INTEGER NOT NULL, '
    "name TEXT NOT NULL COLLATE NOCASE, create_date TEXT NOT NULL, UNIQUE (schema_id, name))",
    'CREATE TABLE IF NOT EXISTS "__columns" (object_id INTEGER NOT NULL, column_id INTEGER NOT NULL, '
    "name TEXT NOT NULL, type_name TEXT NOT NULL, length INTEGER, precision INTEGER, scale INTEGER, "
    "nullable INTEGER NOT NULL, is_identity INTEGER NOT NULL, PRIMARY KEY (object_id, column_id))",
    *USERS_DDL,  # database users and role members: inside the file, so they travel with backups
]
FIXED_SCHEMAS = [(1, "dbo"), (2, "guest"), (3, "INFORMATION_SCHEMA"), (4, "sys")]
STATES = {"ONLINE": 0, "RESTORING": 1, "RECOVERING": 2, "RECOVERY_PENDING": 3, "SUSPECT": 4, "OFFLINE": 6}
USER_ACCESS = {"MULTI_USER": 0, "SINGLE_USER": 1, "RESTRICTED_USER": 2}
RECOVERY_MODELS = {"FULL": 1, "BULK_LOGGED": 2, "SIMPLE": 3}


@dataclass
class TableInfo:
    object_id: int
    schema_id: int
    schema: str
    name: str
    create_date: str
    columns: list[tuple[str, SqlType, bool, bool]] = field(
        default_factory=list
    )  # name, type, nullable, identity

    @property
    def sqlite_name(self) -> str:
        return f"t{self.object_id}"


@dataclass
class RestoreState:
    """Where a RESTORING database stands in its restore sequence."""

    point: int  # the next LSN to roll forward from (the last applied backup's last_lsn)
    database_guid: str
    base_checkpoint_lsn: int | None  # differential base: the checkpoint LSN of the restored full
    base_guid: str | None  # differential base: backup_set_uuid of the restored full
    logs_applied: bool = False
    header: dict = field(default_factory=dict)  # header of the last applied backup
    fork_guid: str | None = None  # the recovery fork the restored data is on at ``point``


def open_sqlite(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    register_common(conn)
    return conn


def initial_lsn(name: str) -> int:
    """A realistic starting LSN: VLF sequence around 10**8, different per database name."""
    return make_lsn(100_000_000 + zlib.crc32(name.encode()) % 90_000, 16, 1)


class Database:
    """State of one database. The instance lock guards state changes; ``write_lock`` serializes writers."""

    def __init__(self, name: str, database_id: int, path: Path, *, system: bool = False):
        self.name = name
        self.database_id = database_id
        self.path = path
        self.system = system
        self.create_date = dt.datetime(2000, 1, 1)  # set from the instance's clock by Instance._add_database
        self.state = "ONLINE"
        self.user_access = "MULTI_USER"
        self.read_only = False
        self.recovery_model = "SIMPLE" if name in ("master", "tempdb", "msdb") else "FULL"
        self.compatibility_level = 160
        self.tde = False
        self.sku_features: list[str] = []
        self.corrupt = False
        self.padding = {"full": 0, "log": 0}
        self.owner = "sa"  # login named by sys.databases.owner_sid (instance metadata, not in the file)
        self.files: dict[
            str, int
        ] = {}  # configured minimum file sizes in MB: data, log, filestream, fulltext
        self.database_guid = str(uuid.uuid4()).upper()
        self.family_guid = self.database_guid
        # Recovery forks: RESTORE ... WITH RECOVERY starts a new fork at the LSN where it recovers.
        self.recovery_fork_guid = str(uuid.uuid4()).upper()
        self.first_recovery_fork_guid = self.recovery_fork_guid
        self.fork_point_lsn: int | None = None  # where the current fork began (None: never forked)
        self.log_backup_fork_guid = self.recovery_fork_guid  # the fork at last_log_backup_lsn
        self.log = TransactionLog(initial_lsn(name))
        self.write_lock = OwnerLock()
        # Backup chain: the last non-copy-only full (differential base) and the log chain position.
        self.last_full: dict | None = None
        self.last_log_backup_lsn: int | None = None  # None: no log backup possible (SIMPLE/pseudo-simple)
        self.restore: RestoreState | None = None
        self.running: dict | None = None  # the BACKUP/RESTORE running on this database
        self.last_checkpoint_lsn: int | None = None
        self.log_chain_new = False  # the next log backup begins a new log chain
        self.conn = open_sqlite(path)
        self.ensure_catalog()

    # -- storage -------------------------------------------------------------------------------
    def ensure_catalog(self) -> None:
        for ddl in CATALOG_DDL:
            self.conn.execute(ddl)
        self.conn.executemany('INSERT OR IGNORE INTO "__schemas" VALUES (?, ?)', FIXED_SCHEMAS)

    def close(self) -> None:
        self.conn.close()

    def snapshot_to(self, target: Path) -> None:
        """A consistent copy of the data file (caller holds ``write_lock``)."""
        dest = sqlite3.connect(str(target))
        try:
            self.conn.backup(dest)
        finally:
            dest.close()

    def replace_file(self, new_file: Path) -> None:
        """Swap in a restored data file."""
        self.conn.close()
        for suffix in ("-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)
        os.replace(new_file, self.path)
        self.conn = open_sqlite(self.path)
        self.ensure_catalog()

    def data_size(self) -> int:
        size = self.path.stat().st_size if self.path.exists() else 0
        wal = Path(str(self.path) + "-wal")
        return size + (wal.stat().st_size if wal.exists() else 0)

    # -- catalog -------------------------------------------------------------------------------
    def schema_id(self, name: str) -> int | None:
        row = self.conn.execute('SELECT schema_id FROM "__schemas" WHERE name = ?', (name,)).fetchone()
        return row[0] if row else None

    def schemas(self) -> list[tuple[int, str]]:
        return self.conn.execute('SELECT schema_id, name FROM "__schemas" ORDER BY schema_id').fetchall()

    def find_table(self, schema: str, name: str) -> TableInfo | None:
        row = self.conn.execute(
            'SELECT t.object_id, t.schema_id, s.name, t.name, t.create_date FROM "__tables" t '
            'JOIN "__schemas" s ON s.schema_id = t.schema_id WHERE s.name = ? AND t.name = ?',
            (schema, name),
        ).fetchone()
        return self._table(row) if row else None

    def find_object(self, object_id: int) -> TableInfo | None:
        row = self.conn.execute(
            'SELECT t.object_id, t.schema_id, s.name, t.name, t.create_date FROM "__tables" t '
            'JOIN "__schemas" s ON s.schema_id = t.schema_id WHERE t.object_id = ?',
            (object_id,),
        ).fetchone()
        return self._table(row) if row else None

    def tables(self) -> list[TableInfo]:
        rows = self.conn.execute(
            'SELECT t.object_id, t.schema_id, s.name, t.name, t.create_date FROM "__tables" t '
            'JOIN "__schemas" s ON s.schema_id = t.schema_id ORDER BY t.object_id'
        ).fetchall()
        return [self._table(row) for row in rows]

    def _table(self, row) -> TableInfo:
        info = TableInfo(*row)
        for name, type_name, length, precision, scale, nullable, identity in self.conn.execute(
            'SELECT name, type_name, length, precision, scale, nullable, is_identity FROM "__columns" '
            "WHERE object_id = ? ORDER BY column_id",
            (info.object_id,),
        ):
            info.columns.append(
                (name, SqlType(type_name, length, precision, scale), bool(nullable), bool(identity))
            )
        return info

    def next_object_id(self) -> int:
        row = self.conn.execute('SELECT MAX(object_id) FROM "__tables"').fetchone()
        return (row[0] or 885578193) + 16_000_057

    # -- log replay ----------------------------------------------------------------------------
    def apply_ops(self, ops: list) -> int:
        """Run redo ops on the data file (caller is inside a SQLite transaction); returns the rowcount."""
        rowcount = 0
        for sql, params in ops:
            rowcount = self.conn.execute(sql, params).rowcount
        return rowcount

    def replay(self, records: list) -> None:
        """Roll forward logged writes (RESTORE), each with its original clock and GUID seed."""
        self.conn.execute("BEGIN")
        try:
            for record in records:
                if record.kind != "write":
                    continue
                with write_context(dt.datetime.fromisoformat(record.time), record.seed):
                    self.apply_ops(record.ops)
            self.conn.execute("COMMIT")
        except Exception:
            self.conn.execute("ROLLBACK")
            raise
