"""Backup history, log chains, forks, media sets and server time as pymssql sees them from the engine."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from pathlib import Path

import pymssql
import pytest
import yaml

from sandbox.mssql.engine import Instance
from sandbox.mssql.server import ThreadedTdsServer
from sandbox.stack import DEFAULT_CONFIG, Sandbox
from tests.sandbox.mssql_engine.helpers import FixedClock, utc

PASSWORD = "Pa55 ]'wörd"
DB = "Sales ]'DB"
HISTORY = (
    "SELECT bs.type, bs.is_copy_only, bs.first_lsn, bs.last_lsn, bs.first_recovery_fork_guid, "
    "bs.last_recovery_fork_guid, bs.fork_point_lsn, bs.backup_start_date, bs.user_name, "
    "bmf.physical_device_name, bmf.family_sequence_number, bmf.mirror "
    "FROM msdb.dbo.backupset AS bs JOIN msdb.dbo.backupmediafamily AS bmf ON bmf.media_set_id = bs.media_set_id "
    "WHERE bs.database_name = %s ORDER BY bs.backup_set_id, bmf.mirror, bmf.family_sequence_number"
)
BACKUP = "DECLARE @db sysname = %s; DECLARE @path nvarchar(4000) = %s; BACKUP {kind} @db TO DISK = @path WITH {options}"


def make(tmp_path, name: str, clock=None, **extra) -> Instance:
    (tmp_path / "backups").mkdir(exist_ok=True)
    cfg = {
        "name": name,
        "edition": "Enterprise Edition (64-bit)",
        "logins": {"sa": {"password": PASSWORD, "sysadmin": True}},
        "path_map": {"D:\\Backups": str(tmp_path / "backups")},
        "data_dir": f"data/{name}",
        "databases": {DB: {"tables": [{"name": "orders", "rows": 20}]}},
    }
    cfg.update(extra)
    return Instance.from_config(cfg, tmp_path, clock)


@pytest.fixture
def servers(tmp_path):
    started: list[ThreadedTdsServer] = []

    def serve(instance: Instance) -> ThreadedTdsServer:
        server = ThreadedTdsServer(instance).start()
        started.append(server)
        return server

    yield serve
    for server in started:
        server.stop()


def connect(server: ThreadedTdsServer, tds_version: str = "7.4"):
    return pymssql.connect(
        server="127.0.0.1",
        port=server.port,
        user="sa",
        password=PASSWORD,
        database="master",
        tds_version=tds_version,
        autocommit=True,
        login_timeout=10,
    )


def run(cursor, sql: str, params: tuple = ()) -> list[tuple]:
    """Execute and drain every result set (BACKUP/RESTORE progress comes as messages)."""
    cursor.execute(sql, params) if params else cursor.execute(sql)
    rows = []
    while True:
        if cursor.description:
            rows.extend(cursor.fetchall())
        if not cursor.nextset():
            return rows


def backup(cursor, kind: str, path: str, options: str = "INIT, CHECKSUM") -> None:
    run(cursor, BACKUP.format(kind=kind, options=options), (DB, "D:\\Backups\\" + path))


def history(cursor) -> list[tuple]:
    return run(cursor, HISTORY, (DB,))


@pytest.mark.parametrize("tds_version", ["7.4", "7.1"])
def test_server_local_time_through_pymssql(tmp_path, servers, tds_version):
    clock = FixedClock(utc(2024, 10, 27, 0, 30, 0))  # Berlin leaves summer time at 01:00 UTC that day
    server = servers(make(tmp_path, "SRC", clock, timezone="Europe/Berlin"))
    with connect(server, tds_version) as conn:
        cursor = conn.cursor()
        local, utc_now, offset_minutes = run(
            cursor, "SELECT GETDATE(), GETUTCDATE(), DATEDIFF(minute, GETUTCDATE(), GETDATE())"
        )[0]
        assert (local, utc_now, offset_minutes) == (
            dt.datetime(2024, 10, 27, 2, 30),
            dt.datetime(2024, 10, 27, 0, 30),
            120,
        )
        (dto,) = run(cursor, "SELECT SYSDATETIMEOFFSET()")[0]
        if tds_version == "7.4":
            assert dto == dt.datetime(2024, 10, 27, 2, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
        else:  # before TDS 7.3 SQL Server sends datetimeoffset as text
            assert dto == "2024-10-27 02:30:00.0000000 +02:00"
        backup(cursor, "DATABASE", "summer.bak")
        clock.set(utc(2024, 10, 27, 1, 30, 0))  # 02:30 local again, now at +01:00
        backup(cursor, "LOG", "winter.trn")
        rows = history(cursor)
        assert [row[7] for row in rows] == [dt.datetime(2024, 10, 27, 2, 30)] * 2
        assert run(cursor, "SELECT time_zone FROM msdb.dbo.backupset ORDER BY backup_set_id") == [(8,), (4,)]
        assert run(cursor, "SELECT DATEDIFF(minute, GETUTCDATE(), GETDATE())") == [(60,)]


def test_empty_log_backups_and_copy_only_through_pymssql(tmp_path, servers):
    server = servers(make(tmp_path, "SRC"))
    with connect(server) as conn:
        cursor = conn.cursor()
        backup(cursor, "DATABASE", "f.bak")
        backup(cursor, "LOG", "l1.trn")
        backup(cursor, "LOG", "l2.trn")
        run(cursor, f"INSERT INTO [{DB.replace(']', ']]')}].dbo.orders (id, customer) VALUES (500, N'x')")
        backup(cursor, "LOG", "copy.trn", "INIT, COPY_ONLY")
        backup(cursor, "LOG", "l3.trn")
        rows = history(cursor)
        full, l1, l2, copy, l3 = rows
        assert isinstance(l2[2], Decimal) and l2[2] == l2[3] == l1[3]  # empty: first_lsn == last_lsn
        assert copy[1] is True and copy[2] == l2[3] < copy[3]
        assert l3[2] == l2[3] and l3[3] == copy[3]  # the copy-only backup did not move the chain
        header = run(cursor, "RESTORE HEADERONLY FROM DISK = %s", ("D:\\Backups\\l2.trn",))
        columns = [c[0] for c in cursor.description]
        first, last = header[0][columns.index("FirstLSN")], header[0][columns.index("LastLSN")]
        assert first == last == l2[2]


def test_forks_restore_history_and_errors_through_pymssql(tmp_path, servers):
    source = servers(make(tmp_path, "SRC"))
    target = servers(make(tmp_path, "RDS", databases={}, timezone="Asia/Shanghai"))
    quoted = "[" + DB.replace("]", "]]") + "]"
    with connect(source) as conn:
        cursor = conn.cursor()
        backup(cursor, "DATABASE", "f.bak")
        backup(cursor, "LOG", "l1.trn")
        backup(cursor, "LOG", "tail.trn", "INIT, NORECOVERY")
        run(cursor, "DECLARE @db sysname = %s; RESTORE DATABASE @db WITH RECOVERY", (DB,))
        status = run(
            cursor,
            "SELECT rs.recovery_fork_guid, rs.first_recovery_fork_guid, rs.fork_point_lsn "
            "FROM sys.databases AS d JOIN sys.database_recovery_status AS rs ON rs.database_id = d.database_id "
            "WHERE d.name = %s",
            (DB,),
        )[0]
        run(cursor, f"INSERT INTO {quoted}.dbo.orders (id, customer) VALUES (600, N'after the rollback')")
        backup(cursor, "LOG", "l2.trn")
        tail, spanning = history(cursor)[-2:]
        assert status[1] != status[0] and status[2] == tail[3]
        assert (spanning[4], spanning[5], spanning[6]) == (status[1], status[0], tail[3])
        with pytest.raises(pymssql.OperationalError) as info:
            run(cursor, "DECLARE @db sysname = %s; RESTORE DATABASE @db WITH RECOVERY", (DB,))
        assert info.value.args[0] == 3153
    with connect(target) as conn:
        cursor = conn.cursor()
        restore = "DECLARE @db sysname = %s; RESTORE {kind} @db FROM DISK = %s WITH NORECOVERY"
        run(cursor, restore.format(kind="DATABASE"), (DB, "D:\\Backups\\f.bak"))
        with pytest.raises(pymssql.OperationalError) as info:
            run(cursor, restore.format(kind="LOG"), (DB, "D:\\Backups\\l2.trn"))
        assert info.value.args[0] == 4305  # the tail is missing: a gap, not a fork problem
        for path in ("l1.trn", "tail.trn", "l2.trn"):
            run(cursor, restore.format(kind="LOG"), (DB, "D:\\Backups\\" + path))
        run(cursor, "DECLARE @db sysname = %s; RESTORE DATABASE @db WITH RECOVERY", (DB,))
        restored = run(
            cursor,
            "SELECT rh.restore_type, rh.recovery, rh.destination_database_name, bs.last_lsn, bs.server_name "
            "FROM msdb.dbo.restorehistory AS rh JOIN msdb.dbo.backupset AS bs "
            "ON bs.backup_set_id = rh.backup_set_id ORDER BY rh.restore_history_id",
        )
        assert [(row[0], row[1]) for row in restored] == [
            ("D", False),
            ("L", False),
            ("L", False),
            ("L", False),
        ]
        assert restored[-1][3] == spanning[3] and {row[2] for row in restored} == {DB}
        assert {row[4] for row in restored} == {"SRC"}
        assert run(cursor, f"SELECT customer FROM {quoted}.dbo.orders WHERE id = 600") == [
            ("after the rollback",)
        ]


def test_striped_and_mirrored_media_through_pymssql(tmp_path, servers):
    source = servers(make(tmp_path, "SRC"))
    standard = servers(make(tmp_path, "STD", edition="Standard Edition (64-bit)"))
    target = servers(make(tmp_path, "RDS", databases={}))
    striped = (
        "DECLARE @db sysname = %s; DECLARE @a nvarchar(4000) = %s; DECLARE @b nvarchar(4000) = %s; "
        "BACKUP DATABASE @db TO DISK = @a, DISK = @b WITH INIT, FORMAT"
    )
    mirrored = (
        "DECLARE @db sysname = %s; DECLARE @a nvarchar(4000) = %s; DECLARE @b nvarchar(4000) = %s; "
        "BACKUP DATABASE @db TO DISK = @a MIRROR TO DISK = @b WITH INIT, FORMAT"
    )
    with connect(source) as conn:
        cursor = conn.cursor()
        run(cursor, striped, (DB, "D:\\Backups\\s1.bak", "D:\\Backups\\s2.bak"))
        run(cursor, mirrored, (DB, "D:\\Backups\\m0.bak", "D:\\Backups\\m1.bak"))
        rows = history(cursor)
        assert [(row[9], row[10], row[11]) for row in rows] == [
            ("D:\\Backups\\s1.bak", 1, 0),
            ("D:\\Backups\\s2.bak", 2, 0),
            ("D:\\Backups\\m0.bak", 1, 0),
            ("D:\\Backups\\m1.bak", 1, 1),
        ]
    with connect(standard) as conn:
        with pytest.raises(pymssql.OperationalError) as info:
            run(conn.cursor(), mirrored, (DB, "D:\\Backups\\x0.bak", "D:\\Backups\\x1.bak"))
        assert info.value.args[0] == 3218
    with connect(target) as conn:
        cursor = conn.cursor()
        one = "DECLARE @db sysname = %s; RESTORE DATABASE @db FROM DISK = %s WITH REPLACE"
        with pytest.raises(pymssql.OperationalError) as info:
            run(cursor, one, (DB, "D:\\Backups\\s1.bak"))
        assert info.value.args[0] == 3132
        run(cursor, one, (DB, "D:\\Backups\\m1.bak"))  # a mirror alone is a complete media set
        both = "DECLARE @db sysname = %s; RESTORE DATABASE @db FROM DISK = %s, DISK = %s WITH REPLACE"
        run(cursor, both, (DB, "D:\\Backups\\s2.bak", "D:\\Backups\\s1.bak"))
        assert run(cursor, "SELECT COUNT(*) FROM msdb.dbo.restorehistory") == [(2,)]


def test_seeded_history_through_pymssql(tmp_path, servers):
    history_spec = {"folder": "D:\\Backups\\Nightly", "login": "NT SERVICE\\SQLAgent$PROD", "span_hours": 6}
    clock = FixedClock(utc(2024, 7, 1, 12, 0, 0))
    server = servers(
        make(
            tmp_path,
            "SRC",
            clock,
            timezone="Europe/Berlin",
            databases={DB: {"tables": [{"name": "t", "rows": 3}], "history": history_spec}},
        )
    )
    with connect(server) as conn:
        cursor = conn.cursor()
        rows = history(cursor)
        assert rows[0][0] == "D" and {row[0] for row in rows[1:]} == {"L"}
        assert {row[8] for row in rows} == {"NT SERVICE\\SQLAgent$PROD"}
        assert rows[0][7] == dt.datetime(2024, 7, 1, 8, 0) + dt.timedelta(seconds=rows[0][7].second)  # local
        assert dt.datetime(2024, 7, 1, 13, 30) <= rows[-1][7] < dt.datetime(2024, 7, 1, 13, 41)
        for path in [row[9] for row in rows]:
            assert path.startswith("D:\\Backups\\Nightly\\SRC\\Sales ]'DB\\")
        assert run(
            cursor,
            "SELECT COUNT(*) FROM msdb.dbo.backupset WHERE backup_start_date < DATEADD(hour, -5, GETDATE())",
        ) == [(4,)]  # 08:00 full, 08:15, 08:30, 08:45 logs (local time; now is 14:00)


def test_one_sandbox_clock_for_source_and_target(tmp_path):
    """The stack builds one clock, hands it to both SQL Servers and exposes it as Sandbox.clock."""
    config = yaml.safe_load(Path(DEFAULT_CONFIG).read_text())
    for section in ("source", "target", "oss", "rds"):
        config[section]["port"] = 0
    config["workload"]["enabled"] = False

    async def scenario() -> tuple:
        sandbox = Sandbox(config, tmp_path / "state")
        await sandbox.start()
        try:
            assert sandbox.source.clock is sandbox.clock and sandbox.target.clock is sandbox.clock
            before = sandbox.source.now(), sandbox.target.now()
            sandbox.clock.advance(dt.timedelta(days=8))
            after = sandbox.source.now(), sandbox.target.now()
            zones = str(sandbox.source.timezone), str(sandbox.target.timezone)
            return before, after, zones
        finally:
            await sandbox.stop()

    before, after, zones = asyncio.run(scenario())
    assert zones == ("Europe/Berlin", "Asia/Shanghai")
    for old, new in zip(before, after, strict=True):
        assert dt.timedelta(days=8) <= new - old < dt.timedelta(days=8, minutes=1)
