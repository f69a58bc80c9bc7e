"""SQL Server engines for the RDS tests: a 2019 Standard target, and a source whose backups are taken
over TDS with pymssql exactly as the DAG does (BACKUP ... TO DISK on a Windows path mapped locally)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pymssql

from sandbox.mssql.engine import Instance
from sandbox.mssql.server import ThreadedTdsServer

PASSWORD = "Sandbox!Passw0rd"
ROWS_SQL = "SELECT id, customer, amount FROM dbo.orders ORDER BY id"


def _logins() -> dict:
    return {"sa": {"password": PASSWORD, "sysadmin": True}}


def target_instance(base_dir: Path) -> Instance:
    """The RDS instance's engine: SQL Server 2019 Standard, no user databases."""
    config = {
        "name": "RDS-TARGET",
        "product_version": "15.0.4236.7",
        "edition": "Standard Edition (64-bit)",
        "logins": _logins(),
    }
    return Instance.from_config(config, base_dir)


def _connect(server: ThreadedTdsServer, database: str = "master"):
    conn = pymssql.connect(
        server="127.0.0.1",
        port=server.port,
        user="sa",
        password=PASSWORD,
        database=database,
        tds_version="7.4",
    )
    conn.autocommit(True)  # BACKUP/RESTORE cannot run inside a transaction
    return conn


def _run(cursor, sql: str, params=None) -> None:
    cursor.execute(sql, params)
    while cursor.nextset():
        pass


@dataclasses.dataclass
class BackupChain:
    """Backup files by name (full, log1, log2, log3) and the source rows when each was taken."""

    files: dict[str, Path]
    rows_after: dict[str, list[tuple]]


def _source(base_dir: Path, product_version: str = "15.0.4236.7", **database) -> Instance:
    """An Enterprise source with SalesDB (FULL recovery, 20 seeded rows; extra database options)."""
    spec = {"recovery_model": "FULL", "tables": [{"name": "orders", "rows": 20}], **database}
    config = {
        "name": "SRC-SQL01",
        "product_version": product_version,
        "edition": "Enterprise Edition (64-bit)",
        "path_map": {"D:\\Backups": "backups"},
        "logins": _logins(),
        "databases": {"SalesDB": spec},
    }
    (base_dir / "backups").mkdir(parents=True, exist_ok=True)
    return Instance.from_config(config, base_dir)


def make_full_backup(base_dir: Path, product_version: str = "15.0.4236.7", **database) -> Path:
    """One full backup of a SalesDB variant (e.g. ``corrupt=True``, ``sku_features=[...]``)."""
    path = base_dir / "backups" / "SalesDB_FULL_20261124090000.bak"
    with (
        ThreadedTdsServer(_source(base_dir, product_version, **database)) as server,
        _connect(server) as conn,
    ):
        _run(
            conn.cursor(),
            "BACKUP DATABASE [SalesDB] TO DISK = %s WITH INIT, CHECKSUM",
            (f"D:\\Backups\\{path.name}",),
        )
    return path


def make_backup_chain(base_dir: Path) -> BackupChain:
    """SalesDB (FULL recovery, 20 seeded rows): a full backup, then three log backups with inserts between."""
    source = _source(base_dir)
    files, rows_after = {}, {}
    with ThreadedTdsServer(source) as server, _connect(server, "SalesDB") as conn:
        cursor = conn.cursor()
        steps = [("full", "DATABASE", "SalesDB_FULL_20261124101500.bak")]
        steps += [(f"log{i}", "LOG", f"SalesDB_LOG_2026112410{i}000.trn") for i in (1, 2, 3)]
        next_id = 1000
        for name, kind, file_name in steps:
            if kind == "LOG":
                for _ in range(5):
                    next_id += 1
                    _run(
                        cursor,
                        "INSERT INTO dbo.orders (id, customer, amount) VALUES (%d, %s, %s)",
                        (next_id, f"after {name}", "1.50"),
                    )
            _run(
                cursor,
                f"BACKUP {kind} [SalesDB] TO DISK = %s WITH INIT, FORMAT, CHECKSUM, COMPRESSION",
                (f"D:\\Backups\\{file_name}",),
            )
            files[name] = base_dir / "backups" / file_name
            cursor.execute(ROWS_SQL)
            rows_after[name] = cursor.fetchall()
    return BackupChain(files, rows_after)


def _query_target(target: Instance, sql: str, params=None, database: str = "master") -> list[tuple]:
    with ThreadedTdsServer(target) as server, _connect(server, database) as conn:
        cursor = conn.cursor()
        cursor.execute(sql, params)
        return cursor.fetchall()


def state_over_tds(target: Instance, database: str) -> str | None:
    rows = _query_target(target, "SELECT state_desc FROM sys.databases WHERE name = %s", (database,))
    return rows[0][0] if rows else None


def rows_over_tds(target: Instance, database: str) -> list[tuple]:
    return _query_target(target, ROWS_SQL, database=database)
