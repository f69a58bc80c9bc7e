"""The engine executes every include/sql statement and keeps SQL Server's backup/restore semantics."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from sandbox.mssql.results import EnvChange, ResultSet, SqlError
from tests.sandbox.mssql_engine.conftest import HOSTILE, Runner, make_instance

SQL_DIR = Path(__file__).resolve().parents[3] / "include" / "sql"


def lit(value: str) -> str:
    """Render a value as pymssql does: N'...' with quotes doubled."""
    return "N'" + value.replace("'", "''") + "'"


def sql_file(name: str, compression: str = "COMPRESSION", access: str = "RESTRICTED_USER", **params) -> str:
    text = (SQL_DIR / name).read_text()
    text = text.replace("{{ COMPRESSION }}", compression).replace("{{ OPTION }}", access)
    return text % {k: lit(v) for k, v in params.items()}


def backup(runner: Runner, kind: str, path: str, db: str = HOSTILE, compression: str = "COMPRESSION") -> list:
    if kind == "tail_log":  # the NORECOVERY tail older versions of the product took (and people do by hand)
        return runner.run(tail_log_sql(db, path))
    return runner.run(sql_file(f"backup_{kind}.sql", compression, database=db, path=path, backup_name=kind))


def tail_log_sql(db: str, path: str) -> str:
    return f"BACKUP LOG {quote(db)} TO DISK = {lit(path)} WITH NORECOVERY, INIT, FORMAT, CHECKSUM, STATS = 5"


def fingerprint(runner: Runner, db: str = HOSTILE, table: str = "orders") -> tuple:
    query = f"SELECT COUNT_BIG(*), CHECKSUM_AGG(BINARY_CHECKSUM(*)) FROM {quote(db)}.dbo.{quote(table)}"
    return runner.rows(query)[0]


def insert(runner: Runner, first: int, count: int, db: str = HOSTILE) -> None:
    values = ", ".join(f"({i}, N'c''{i}', {i}.25, SYSDATETIME())" for i in range(first, first + count))
    runner.run(f"INSERT INTO {quote(db)}.dbo.orders (id, customer, amount, created) VALUES {values}")


def quote(name: str) -> str:
    return "[" + name.replace("]", "]]") + "]"


def test_server_and_state_queries(source):
    r = Runner(source)
    row = r.rows(sql_file("server_properties.sql"))[0]
    assert row[0] == "SRC" and row[1].startswith("16.0") and row[5] == 3
    state = r.result(sql_file("database_state.sql", database=HOSTILE))
    assert state.rows[0][0] == HOSTILE and state.rows[0][2] == "ONLINE"
    assert state.rows[0][9] is None  # FULL but never backed up: pseudo-simple
    assert state.columns[9].type == "numeric" and state.columns[9].precision == 25
    sizes = dict(r.rows(sql_file("database_size.sql", database=HOSTILE)))
    assert sizes["ROWS"] >= 8 * 1024 * 1024 and sizes["LOG"] > 0
    assert r.rows(sql_file("tde_state.sql", database=HOSTILE)) == []
    assert r.rows(sql_file("sku_features.sql", database=HOSTILE)) == []
    assert r.rows(sql_file("row_counts.sql", database=HOSTILE)) == [("dbo", "orders", 200)]
    assert r.rows(sql_file("checkdb.sql", database=HOSTILE)) == [] and r.messages() == []


def test_full_diff_logs_tail_restore_into_second_instance(source, target, tmp_path):
    r = Runner(source)
    backup(r, "full", "D:\\Backups\\full.bak")
    record = r.result(sql_file("backup_record.sql", database=HOSTILE, path="D:\\Backups\\full.bak"))
    row = dict(zip([c.name for c in record.columns], record.rows[0], strict=True))
    assert row["type"] == "D" and row["physical_device_name"] == "D:\\Backups\\full.bak"
    assert row["first_lsn"] <= row["checkpoint_lsn"] <= row["last_lsn"] and row["last_lsn"] > 2**64
    assert isinstance(row["first_lsn"], Decimal)
    insert(r, 1000, 20)
    backup(r, "diff", "D:\\Backups\\diff.bak")
    insert(r, 2000, 5)
    backup(r, "log", "D:\\Backups\\log1.trn")
    r.run(f"UPDATE {quote(HOSTILE)}.dbo.orders SET amount = amount + 1 WHERE id < 50")
    backup(r, "log", "D:\\Backups\\log2.trn")
    r.run(f"DELETE FROM {quote(HOSTILE)}.dbo.orders WHERE id BETWEEN 60 AND 70")
    r.run(sql_file("set_database_option.sql", database=HOSTILE))
    backup(r, "tail_log", "D:\\Backups\\tail.trn")
    assert source.database_info(HOSTILE)["state_desc"] == "RESTORING"
    result = r.result(sql_file("backup_history.sql", database=HOSTILE, since_utc="2000-01-01T00:00:00"))
    names = [c.name for c in result.columns]
    history = [dict(zip(names, row, strict=True)) for row in result.rows]
    assert [h["type"] for h in history] == ["D", "I", "L", "L", "L"]
    for previous, current in zip(history[2:], history[3:], strict=False):
        assert current["first_lsn"] == previous["last_lsn"]  # contiguous log chain

    folder = tmp_path / "backups"
    with pytest.raises(SqlError) as info:
        target.restore_file(HOSTILE, folder / "log1.trn", recovery=False)
    assert info.value.number == 911
    target.create_database(HOSTILE)
    with pytest.raises(SqlError) as info:
        target.restore_file(HOSTILE, folder / "log1.trn", recovery=False)
    assert info.value.number == 3117
    with pytest.raises(SqlError) as info:
        target.restore_file(HOSTILE, folder / "full.bak", recovery=False)
    assert info.value.number == 3154
    target.restore_file(HOSTILE, folder / "full.bak", recovery=False, replace=True)
    with pytest.raises(SqlError) as info:
        target.restore_file(HOSTILE, folder / "log2.trn", recovery=False)
    assert info.value.number == 4305
    target.restore_file(HOSTILE, folder / "diff.bak", recovery=False)
    target.restore_file(HOSTILE, folder / "log1.trn", recovery=False)
    with pytest.raises(SqlError) as info:
        target.restore_file(HOSTILE, folder / "log1.trn", recovery=False)
    assert info.value.number == 4326
    target.restore_file(HOSTILE, folder / "log2.trn", recovery=False)
    target.restore_file(HOSTILE, folder / "tail.trn", recovery=False)
    assert target.database_info(HOSTILE)["state_desc"] == "RESTORING"
    target.recover_database(HOSTILE)
    info_after = target.database_info(HOSTILE)
    assert info_after["state_desc"] == "ONLINE" and info_after["user_access_desc"] == "RESTRICTED_USER"
    target.set_user_access(HOSTILE, "MULTI_USER")
    t = Runner(target)
    r2 = Runner(source)
    r2.run(sql_file("restore_with_recovery.sql", database=HOSTILE))  # rollback path on the source
    assert fingerprint(t) == fingerprint(r2)
    assert fingerprint(t)[0] == 200 + 20 + 5 - 11
    # after the rollback the source's chain continues from the tail
    backup(r2, "log", "D:\\Backups\\log3.trn")
    tail = source.read_backup_header(folder / "tail.trn")
    nxt = source.read_backup_header(folder / "log3.trn")
    assert nxt["FirstLSN"] == tail["LastLSN"] and nxt["BackupType"] == 2


def test_headeronly_and_corruption(source, tmp_path):
    r = Runner(source)
    backup(r, "full", "D:\\Backups\\h.bak")
    header = r.result(sql_file("restore_headeronly.sql", path="D:\\Backups\\h.bak"))
    fields = dict(zip([c.name for c in header.columns], header.rows[0], strict=True))
    assert fields["BackupType"] == 1 and fields["DatabaseName"] == HOSTILE and fields["Compressed"] == 1
    assert fields["CompressedBackupSize"] == (tmp_path / "backups" / "h.bak").stat().st_size
    data = bytearray((tmp_path / "backups" / "h.bak").read_bytes())
    data[200] ^= 0xFF
    (tmp_path / "backups" / "bad.bak").write_bytes(bytes(data))
    (tmp_path / "backups" / "short.bak").write_bytes(bytes(data[:300]))
    other = make_instance(tmp_path, "T2")
    with pytest.raises(SqlError) as info:
        other.restore_file("x", tmp_path / "backups" / "bad.bak", recovery=True)
    assert info.value.number == 3183
    t = Runner(other)
    short = lit("D:\\Backups\\short.bak")
    error, messages = t.error(f"RESTORE DATABASE [x] FROM DISK = {short} WITH RECOVERY")
    assert error.number == 3013 and messages[0].number == 3241


def test_backup_errors(source):
    r = Runner(source)
    error, messages = r.error(
        sql_file("backup_log.sql", database=HOSTILE, path="D:\\Backups\\l.trn", backup_name="l")
    )
    assert (messages[0].number, error.number) == (4214, 3013)
    r.run(f"ALTER DATABASE {quote(HOSTILE)} SET RECOVERY SIMPLE")
    error, messages = r.error(
        sql_file("backup_log.sql", database=HOSTILE, path="D:\\Backups\\l.trn", backup_name="l")
    )
    assert messages[0].number == 4208 and error.message == "BACKUP LOG is terminating abnormally."
    error, messages = r.error(
        sql_file("backup_diff.sql", database=HOSTILE, path="D:\\Backups\\d.bak", backup_name="d")
    )
    assert messages[0].number == 3035
    error, messages = r.error(
        sql_file("backup_full.sql", database=HOSTILE, path="D:\\Nope\\f.bak", backup_name="f")
    )
    assert messages[0].number == 3201 and "Operating system error 3" in messages[0].text
    r.run("BEGIN TRAN")
    error, messages = r.error(
        sql_file("backup_full.sql", database=HOSTILE, path="D:\\Backups\\f.bak", backup_name="f")
    )
    assert messages[0].number == 3021
    r.run("ROLLBACK")


def test_compression_refused_on_web_edition(tmp_path):
    web = make_instance(tmp_path, "WEB", edition="Web Edition (64-bit)", databases={"db": {}})
    r = Runner(web)
    error, messages = r.error(
        sql_file("backup_full.sql", database="db", path="D:\\Backups\\w.bak", backup_name="w")
    )
    assert messages[0].number == 1844 and "Web Edition" in messages[0].text
    backup(r, "full", "D:\\Backups\\w.bak", db="db", compression="NO_COMPRESSION")


def test_newer_version_and_edition_features_refused(tmp_path):
    src = make_instance(tmp_path, "NEW", databases={"p": {"sku_features": ["Partitioning"]}})
    backup(Runner(src), "full", "D:\\Backups\\p.bak", db="p")
    old = make_instance(tmp_path, "OLD", product_version="15.0.2000.5", edition="Enterprise Edition (64-bit)")
    with pytest.raises(SqlError) as info:
        old.restore_file("p", tmp_path / "backups" / "p.bak", recovery=True)
    assert info.value.number == 3169 and "16.00.4135" in info.value.message
    std = make_instance(tmp_path, "STD", edition="Standard Edition (64-bit)")
    with pytest.raises(SqlError) as info:
        std.restore_file("p", tmp_path / "backups" / "p.bak", recovery=True)
    assert info.value.number == 905 and "partition function" in info.value.message


def test_exclusive_access_and_kill(source):
    admin = Runner(source)
    backup(admin, "full", "D:\\Backups\\f.bak")
    app = Runner(source, "app", "app", HOSTILE)
    killed = []
    app.session.on_kill = lambda: killed.append(True)
    error, messages = admin.error(tail_log_sql(HOSTILE, "D:\\Backups\\t.trn"))
    assert messages[0].number == 3101
    admin.run(sql_file("set_database_option.sql", database=HOSTILE))
    assert killed and app.session.killed
    error, _ = app.error("SELECT 1")
    assert error.number == 596
    with pytest.raises(SqlError) as info:
        source.login("app", "app", HOSTILE)
    assert info.value.number == 4060 and info.value.__cause__.number == 923  # RESTRICTED_USER


def test_checkdb_corruption_and_info(source):
    r = Runner(source)
    r.run(f"DBCC CHECKDB ({lit(HOSTILE)})")
    assert "0 consistency errors" in r.messages()[0].text
    source.set_corrupt(HOSTILE, True)
    error, messages = r.error(sql_file("checkdb.sql", database=HOSTILE))
    assert error.severity == 16 and any("2 consistency errors" in m.text for m in messages)
    assert len(source.checkdb(HOSTILE)) == 2


def test_t_sql_front_end(source):
    r = Runner(source)
    assert r.rows("SELECT QUOTENAME(N'a]b') AS q, QUOTENAME(REPLICATE(N'x', 129)) AS n") == [("[a]]b]", None)]
    items = r.run(
        f"USE {quote(HOSTILE)}; IF OBJECT_ID(N'dbo.t2', N'U') IS NULL CREATE TABLE dbo.t2 "
        "(id int IDENTITY(1,1) PRIMARY KEY, v nvarchar(max), g uniqueidentifier, b bit, d datetime); "
        "INSERT INTO dbo.t2 (v, g, b, d) VALUES (N'x', NEWID(), 1, GETDATE()), (N'y', NEWID(), 0, NULL);"
        "SELECT TOP (1) * FROM dbo.t2 ORDER BY id DESC"
    )
    assert any(isinstance(i, EnvChange) and i.new == HOSTILE for i in items)
    result = next(i for i in items if isinstance(i, ResultSet))
    assert [c.type for c in result.columns] == ["int", "nvarchar", "uniqueidentifier", "bit", "datetime"]
    assert result.rows[0][0] == 2 and result.rows[0][3] is False
    assert r.rows(
        "DECLARE @a int = 2, @b nvarchar(10) = N'z'; SET @a += 3; SELECT @a * 2 AS x, @b + N'!' AS y "
    ) == [(10, "z!")]
    assert r.rows("EXEC sys.sp_executesql N'SELECT @p + 1 AS v', N'@p int', @p = 41") == [(42,)]
    error, _ = r.error("MERGE dbo.t2 USING dbo.t2 AS s ON 1 = 1 WHEN MATCHED THEN DELETE;")
    assert error.number == 40000 and "MERGE" in error.message
    r.run(f"ALTER DATABASE {quote(HOSTILE)} SET READ_ONLY")
    error, _ = r.error("INSERT INTO dbo.t2 (v) VALUES (N'z')")
    assert error.number == 3906


def test_progress_cancel_and_requests(source, tmp_path):
    source.set_backup_padding(HOSTILE, full_bytes=64 * 1024 * 1024)
    r = Runner(source)
    watcher = Runner(source)
    cancel = threading.Event()
    seen: list = []

    def watch() -> None:
        for _ in range(200):
            rows = watcher.rows(sql_file("running_operations.sql", database=HOSTILE))
            if rows:
                seen.extend(rows)
                cancel.set()
                return
            time.sleep(0.005)

    thread = threading.Thread(target=watch)
    thread.start()
    with pytest.raises(SqlError):
        r.run(
            sql_file(
                "backup_full.sql",
                "NO_COMPRESSION",
                database=HOSTILE,
                path="D:\\Backups\\big.bak",
                backup_name="big",
            ),
            cancel,
        )
    thread.join()
    assert seen and seen[0][1] == "BACKUP DATABASE"
    assert not list((tmp_path / "backups").glob("big.bak*"))


def test_concurrent_writes_during_full_backup(source, target, tmp_path):
    source.set_backup_padding(HOSTILE, full_bytes=16 * 1024 * 1024)
    writer = Runner(source)
    stop = threading.Event()

    def write() -> None:
        i = 10_000
        while not stop.is_set():
            insert(writer, i, 1)
            i += 1

    thread = threading.Thread(target=write)
    thread.start()
    try:
        backup(Runner(source), "full", "D:\\Backups\\c.bak", compression="NO_COMPRESSION")
    finally:
        stop.set()
        thread.join()
    backup(Runner(source), "log", "D:\\Backups\\c.trn")
    target.restore_file(HOSTILE, tmp_path / "backups" / "c.bak", recovery=False)
    target.restore_file(HOSTILE, tmp_path / "backups" / "c.trn", recovery=True)
    assert fingerprint(Runner(target)) == fingerprint(Runner(source))
