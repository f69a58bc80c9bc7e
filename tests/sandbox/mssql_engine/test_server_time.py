"""Server local time: GETDATE & co., msdb dates in the server's zone (with DST), an injectable clock."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from sandbox.clock import SandboxClock
from sandbox.mssql.engine import Instance
from sandbox.mssql.engine.instance import ConfigError
from tests.sandbox.mssql_engine.conftest import Runner
from tests.sandbox.mssql_engine.helpers import FixedClock, history, lit, quote, utc

DB = "Zeit ]'db"
LOGINS = {"sa": {"password": "Pa55!", "sysadmin": True}}


def build(tmp_path, timezone: str | None, clock=None, name: str = "SRC", **extra) -> Instance:
    (tmp_path / "backups").mkdir(exist_ok=True)
    cfg = {
        "name": name,
        "logins": LOGINS,
        "edition": "Enterprise Edition (64-bit)",
        "path_map": {"D:\\Backups": str(tmp_path / "backups")},
        "data_dir": f"data/{name}",
        "databases": {DB: {"tables": [{"name": "orders", "rows": 5}]}},
    }
    cfg.update(extra)
    if timezone is not None:
        cfg["timezone"] = timezone
    return Instance.from_config(cfg, tmp_path, clock)


def now_row(runner: Runner) -> dict:
    result = runner.result(
        "SELECT GETDATE() AS local_dt, SYSDATETIME() AS local_dt2, CURRENT_TIMESTAMP AS ts, "
        "GETUTCDATE() AS utc_dt, SYSUTCDATETIME() AS utc_dt2, SYSDATETIMEOFFSET() AS dto, "
        "DATEDIFF(minute, GETUTCDATE(), GETDATE()) AS offset_minutes"
    )
    return dict(zip([c.name for c in result.columns], result.rows[0], strict=True))


def test_timezone_config_is_validated(tmp_path):
    with pytest.raises(ConfigError, match="timezone: unknown time zone 'Mars/Olympus'"):
        build(tmp_path, "Mars/Olympus")
    with pytest.raises(ConfigError, match="timezone: offset"):
        build(tmp_path, "+15:00")
    with pytest.raises(ConfigError, match="empty_log_restore"):
        build(tmp_path, None, empty_log_restore="maybe")
    fixed = build(tmp_path, "-03:30", FixedClock(utc(2024, 1, 1, 12, 0)), name="FIX")
    assert now_row(Runner(fixed))["local_dt"] == dt.datetime(2024, 1, 1, 8, 30)


def test_default_timezone_is_utc(tmp_path):
    inst = build(tmp_path, None, FixedClock(utc(2024, 7, 1, 10, 0, 0)))
    row = now_row(Runner(inst))
    assert row["local_dt"] == row["utc_dt"] == dt.datetime(2024, 7, 1, 10, 0)
    assert row["offset_minutes"] == 0


def test_local_time_columns_across_a_dst_change(tmp_path):
    # Europe/Berlin switches to summer time on 2024-03-31 at 01:00 UTC (02:00 -> 03:00 local).
    clock = FixedClock(utc(2024, 3, 31, 0, 30, 0))
    inst = build(tmp_path, "Europe/Berlin", clock)
    r = Runner(inst)
    winter = now_row(r)
    assert winter["local_dt"] == dt.datetime(2024, 3, 31, 1, 30)
    assert winter["ts"] == winter["local_dt2"] == dt.datetime(2024, 3, 31, 1, 30)
    assert winter["utc_dt"] == winter["utc_dt2"] == dt.datetime(2024, 3, 31, 0, 30)
    assert winter["offset_minutes"] == 60
    assert winter["dto"].utcoffset() == dt.timedelta(hours=1) and winter["dto"].hour == 1
    r.run(f"BACKUP DATABASE {quote(DB)} TO DISK = N'D:\\Backups\\winter.bak' WITH INIT")

    clock.set(utc(2024, 3, 31, 2, 0, 0))
    summer = now_row(r)
    assert summer["local_dt"] == dt.datetime(2024, 3, 31, 4, 0)
    assert summer["offset_minutes"] == 120 and summer["dto"].utcoffset() == dt.timedelta(hours=2)
    r.run(f"BACKUP LOG {quote(DB)} TO DISK = N'D:\\Backups\\summer.trn' WITH INIT")

    rows = history(r, DB)
    assert [row["backup_start_date"] for row in rows] == [
        dt.datetime(2024, 3, 31, 1, 30),
        dt.datetime(2024, 3, 31, 4, 0),
    ]
    assert [row["time_zone"] for row in rows] == [4, 8]  # 15-minute intervals east of UTC
    header = inst.read_backup_header(tmp_path / "backups" / "summer.trn")
    assert header["BackupStartDate"] == dt.datetime(2024, 3, 31, 4, 0) and header["TimeZone"] == "+02:00"
    # Comparisons and date arithmetic on the local columns work as on SQL Server.
    recent = r.rows(
        "SELECT type FROM msdb.dbo.backupset WHERE backup_start_date >= DATEADD(minute, -30, GETDATE()) "
        f"AND database_name = {lit(DB)}"
    )
    assert recent == [("L",)]
    assert r.rows(
        "SELECT DATEDIFF(minute, MIN(backup_start_date), MAX(backup_start_date)) FROM msdb.dbo.backupset "
        f"WHERE database_name = {lit(DB)}"
    ) == [(150,)]  # wall-clock minutes: the hour skipped by DST counts, as GETDATE() values would


def test_clock_advance_moves_server_time_and_history(tmp_path):
    clock = SandboxClock()
    inst = build(tmp_path, "Asia/Shanghai", clock)
    assert inst.clock is clock
    r = Runner(inst)
    before = now_row(r)
    assert before["offset_minutes"] == 480
    r.run(f"BACKUP DATABASE {quote(DB)} TO DISK = N'D:\\Backups\\a.bak' WITH INIT")
    clock.advance(dt.timedelta(days=8))
    after = now_row(r)
    assert dt.timedelta(days=8) <= after["local_dt"] - before["local_dt"] < dt.timedelta(days=8, minutes=1)
    r.run(f"BACKUP DATABASE {quote(DB)} TO DISK = N'D:\\Backups\\b.bak' WITH INIT")
    first, second = history(r, DB)
    assert second["backup_start_date"] - first["backup_start_date"] >= dt.timedelta(days=8)
    assert r.rows(
        f"SELECT COUNT(*) FROM msdb.dbo.backupset WHERE database_name = {lit(DB)} "
        "AND backup_start_date < DATEADD(day, -7, GETDATE())"
    ) == [(1,)]


def test_logged_writes_replay_with_their_original_times(tmp_path):
    """A restore replays GETDATE()/GETUTCDATE() values as written on the source, not the target's time."""
    source = build(tmp_path, "Europe/Berlin", FixedClock(utc(2024, 1, 15, 9, 0, 0)))
    target = build(tmp_path, "Asia/Shanghai", FixedClock(utc(2024, 2, 1, 0, 0, 0)), name="TGT", databases={})
    s = Runner(source)
    s.run(f"BACKUP DATABASE {quote(DB)} TO DISK = N'D:\\Backups\\f.bak' WITH INIT")
    s.run(
        f"USE {quote(DB)}; CREATE TABLE dbo.stamps (id int PRIMARY KEY, at_local datetime, at_utc datetime2); "
        "INSERT INTO dbo.stamps (id, at_local, at_utc) VALUES (1, GETDATE(), SYSUTCDATETIME())"
    )
    s.run(f"BACKUP LOG {quote(DB)} TO DISK = N'D:\\Backups\\l.trn' WITH INIT")
    target.restore_file(DB, tmp_path / "backups" / "f.bak", recovery=False)
    target.restore_file(DB, tmp_path / "backups" / "l.trn", recovery=True)
    rows = Runner(target).rows(f"SELECT at_local, at_utc FROM {quote(DB)}.dbo.stamps")
    assert rows == [(dt.datetime(2024, 1, 15, 10, 0), dt.datetime(2024, 1, 15, 9, 0))]


def test_date_functions(tmp_path):
    r = Runner(build(tmp_path, None, FixedClock(utc(2024, 1, 31, 23, 59, 59))))
    assert r.rows(
        "SELECT DATEDIFF(year, '2024-12-31 23:59:59', '2025-01-01 00:00:00') AS y, "
        "DATEDIFF(day, '2024-01-01 23:00', '2024-01-02 01:00') AS d, "
        "DATEDIFF(hh, '2024-01-01 10:59', '2024-01-01 11:00') AS h, "
        "DATEDIFF(week, '2024-01-06', '2024-01-07') AS w, "
        "DATEDIFF(minute, '2024-01-01 10:00', '2024-01-01 09:00') AS back"
    ) == [(1, 1, 1, 1, -60)]
    assert r.rows(
        "SELECT DATEADD(month, 1, GETDATE()) AS m, DATEADD(mi, -90, '2024-01-01 00:30:00') AS n"
    ) == [(dt.datetime(2024, 2, 29, 23, 59, 59), dt.datetime(2023, 12, 31, 23, 0))]
    assert r.rows("SELECT DATEPART(weekday, '2024-01-07') AS dw, DATEPART(quarter, GETDATE()) AS q") == [
        (1, 1)
    ]
    # Inside a query with FROM the same functions run in SQLite.
    assert r.rows(
        "SELECT DATEDIFF(second, create_date, DATEADD(second, 5, create_date)) AS s FROM sys.databases "
        "WHERE name = N'master'"
    ) == [(5,)]
    error, _ = r.error("SELECT DATEADD(fortnight, 1, GETDATE())")
    assert error.number == 155 and "fortnight" in error.message
    error, _ = r.error("SELECT DATEDIFF(ms, '1900-01-01', '2024-01-01')")
    assert error.number == 535


def test_lsn_columns_stay_exact(tmp_path):
    r = Runner(build(tmp_path, "Europe/Berlin"))
    r.run(f"BACKUP DATABASE {quote(DB)} TO DISK = N'D:\\Backups\\x.bak' WITH INIT")
    (row,) = history(r, DB)
    assert isinstance(row["first_lsn"], Decimal) and row["first_lsn"] > 2**64
