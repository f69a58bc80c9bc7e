"""A seeded backup-job history: real files, real LSNs, local dates in the past, the chain consequences."""

from __future__ import annotations

import datetime as dt

import pytest

from sandbox.mssql.engine import Instance
from sandbox.mssql.engine.instance import ConfigError
from tests.sandbox.mssql_engine.conftest import Runner
from tests.sandbox.mssql_engine.helpers import FixedClock, dicts, history, lit, quote, utc

DB = "Sales ]'DB"
NOW = utc(2024, 3, 31, 12, 0, 0)  # the history spans Europe/Berlin's switch to summer time
JOB = {
    "folder": "D:\\Backups\\Nightly",
    "login": "NT SERVICE\\SQLAgent$PROD",
    "fulls_every_hours": 24,
    "logs_every_minutes": 15,
    "span_hours": 48,
    "stopped_minutes_ago": 20,
    "copy_only_full_by": "VeeamAgent",
    "striped_full": True,
}
FILES = (
    "SELECT bs.backup_set_id, bs.type, bmf.physical_device_name, bmf.family_sequence_number, bmf.device_type "
    "FROM msdb.dbo.backupset AS bs JOIN msdb.dbo.backupmediafamily AS bmf ON bmf.media_set_id = bs.media_set_id "
    "ORDER BY bs.backup_set_id, bmf.family_sequence_number"
)


def build(tmp_path, history_spec, *, recovery_model: str = "FULL", name: str = "SRC-SQL01", clock=None):
    (tmp_path / "backups").mkdir(exist_ok=True)
    database = {"recovery_model": recovery_model, "tables": [{"name": "customers", "rows": 50}]}
    if history_spec is not None:
        database["history"] = history_spec
    cfg = {
        "name": name,
        "timezone": "Europe/Berlin",
        "edition": "Enterprise Edition (64-bit)",
        "logins": {"sa": {"password": "Pa55!", "sysadmin": True}},
        "path_map": {"D:\\Backups": str(tmp_path / "backups")},
        "data_dir": f"data/{name}",
        "databases": {DB: database},
    }
    return Instance.from_config(cfg, tmp_path, clock or FixedClock(NOW))


@pytest.fixture
def seeded(tmp_path) -> Instance:
    return build(tmp_path, JOB)


def test_the_job_history_is_real(seeded, tmp_path):
    r = Runner(seeded)
    rows = history(r, DB)
    jobs = [row for row in rows if not row["is_copy_only"]]
    fulls = [row for row in jobs if row["type"] == "D"]
    logs = [row for row in jobs if row["type"] == "L"]
    assert len(fulls) == 2 and len(logs) == 48 * 4 - 2 - 1  # every 15 minutes, minus the fulls' slots
    assert {row["user_name"] for row in jobs} == {"NT SERVICE\\SQLAgent$PROD"}
    # Dates: server local time, from 48 hours ago to 20 minutes ago (Berlin: +01:00, then +02:00).
    starts = [row["backup_start_date"] for row in rows]
    assert starts == sorted(starts)
    assert starts[0] == dt.datetime(2024, 3, 29, 13, 0) + dt.timedelta(seconds=starts[0].second)
    assert dt.datetime(2024, 3, 31, 13, 30) <= starts[-1] <= dt.datetime(2024, 3, 31, 13, 40)
    assert {row["time_zone"] for row in rows} == {4, 8}
    # One contiguous chain: each log starts where the previous one ended, none of them empty.
    for previous, current in zip(logs, logs[1:], strict=False):
        assert current["first_lsn"] == previous["last_lsn"] < current["last_lsn"]
    assert logs[0]["first_lsn"] == fulls[0]["first_lsn"] and logs[0]["begins_log_chain"] is True
    assert fulls[1]["first_lsn"] > fulls[0]["last_lsn"]
    # Files: on disk where msdb says, Ola Hallengren's layout; the latest full striped over two files.
    files = dicts(r.result(FILES))
    disk_files = [f for f in files if f["device_type"] == 2]
    for f in disk_files:
        local = seeded.local_path(f["physical_device_name"])
        assert local.is_file(), f["physical_device_name"]
    assert disk_files[0]["physical_device_name"].startswith(
        "D:\\Backups\\Nightly\\SRC-SQL01\\Sales ]'DB\\FULL\\SRC-SQL01_Sales ]'DB_FULL_20240329_1300"
    )
    latest = [f for f in files if f["backup_set_id"] == fulls[-1]["backup_set_id"]]
    assert [f["family_sequence_number"] for f in latest] == [1, 2]
    assert latest[0]["physical_device_name"].endswith("_1.bak") and latest[1][
        "physical_device_name"
    ].endswith("_2.bak")
    assert logs[-1]["backup_start_date"] > fulls[-1]["backup_start_date"]
    backups_on_disk = sorted(p for p in (tmp_path / "backups").rglob("*") if p.is_file())
    assert len(backups_on_disk) == len(disk_files)
    # The third-party snapshot: COPY_ONLY, a virtual device, no file; it did not move the chain.
    (snapshot,) = [row for row in rows if row["is_copy_only"]]
    assert (
        snapshot["type"] == "D" and snapshot["user_name"] == "VeeamAgent" and snapshot["is_snapshot"] is True
    )
    (device,) = [f for f in files if f["backup_set_id"] == snapshot["backup_set_id"]]
    assert device["device_type"] == 7 and device["physical_device_name"].startswith("{")
    assert fulls[0]["backup_start_date"] < snapshot["backup_start_date"] < fulls[1]["backup_start_date"]
    # The database is in the job's chain, and the application kept writing after the job stopped.
    state = seeded.database_info(DB)
    assert state["last_log_backup_lsn"] == int(logs[-1]["last_lsn"])
    assert r.rows(f"SELECT COUNT(*) FROM {quote(DB)}.dbo.orders") == [(2 * (len(jobs) + 1),)]


def test_the_first_log_after_a_new_full_begins_before_it(seeded, tmp_path):
    r = Runner(seeded)
    job_last = history(r, DB)[-1]
    r.run(f"BACKUP DATABASE {quote(DB)} TO DISK = N'D:\\Backups\\ours_full.bak' WITH INIT, CHECKSUM")
    r.run(f"BACKUP LOG {quote(DB)} TO DISK = N'D:\\Backups\\ours_log.trn' WITH INIT, CHECKSUM")
    ours_full, ours_log = history(r, DB)[-2:]
    assert ours_log["first_lsn"] == job_last["last_lsn"] < ours_full["first_lsn"]
    assert ours_log["last_lsn"] > ours_full["last_lsn"]
    # ... and that log still restores on top of our full (it covers the full's last_lsn).
    target = Instance.from_config(
        {"name": "RDS", "logins": {"sa": {"password": "Pa55!"}}, "data_dir": "data/rds"},
        tmp_path,
        FixedClock(NOW),
    )
    target.restore_file(DB, tmp_path / "backups" / "ours_full.bak", recovery=False)
    target.restore_file(DB, tmp_path / "backups" / "ours_log.trn", recovery=True)
    count = f"SELECT COUNT(*) FROM {quote(DB)}.dbo.orders"
    assert Runner(target).rows(count) == r.rows(count)


def test_the_job_files_restore_on_another_server(seeded, tmp_path):
    """The job's latest (striped) full and its later logs rebuild the database as of the job's last log."""
    r = Runner(seeded)
    rows = history(r, DB)
    files = dicts(r.result(FILES))
    latest_full = [row for row in rows if row["type"] == "D" and not row["is_copy_only"]][-1]
    later_logs = [
        row for row in rows if row["type"] == "L" and row["backup_set_id"] > latest_full["backup_set_id"]
    ]

    def paths(backup_set_id: int) -> list:
        return [
            seeded.local_path(f["physical_device_name"]) for f in files if f["backup_set_id"] == backup_set_id
        ]

    target = Instance.from_config(
        {"name": "RDS", "logins": {"sa": {"password": "Pa55!"}}, "data_dir": "data/rds"},
        tmp_path,
        FixedClock(NOW),
    )
    target.restore_file(DB, paths(latest_full["backup_set_id"]), recovery=False)
    for log in later_logs:
        target.restore_file(DB, paths(log["backup_set_id"]), recovery=False)
    target.recover_database(DB)
    # Everything but the application's writes after the job stopped (one batch of two rows).
    expected = r.rows(f"SELECT COUNT(*) FROM {quote(DB)}.dbo.orders")[0][0] - 2
    assert Runner(target).rows(f"SELECT COUNT(*) FROM {quote(DB)}.dbo.orders") == [(expected,)]


def test_history_switched_off_or_simple(tmp_path):
    off = build(tmp_path, dict(JOB, enabled=False), name="OFF")
    assert history(Runner(off), DB) == []
    simple = build(
        tmp_path, dict(JOB, copy_only_full_by=None, striped_full=False), recovery_model="SIMPLE", name="S"
    )
    assert {row["type"] for row in history(Runner(simple), DB)} == {"D"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"folder": None}, "databases.Sales ]'DB.history.folder: the job's backup folder"),
        ({"folder": "E:\\Elsewhere"}, "history.folder: 'E:\\\\Elsewhere' is not mapped"),
        ({"every_day": True}, r"history: unknown field\(s\) \['every_day'\]"),
        ({"logs_every_minutes": "often"}, "history.logs_every_minutes: expected a non-negative number"),
        ({"span_hours": 0.1}, "history.span_hours: the history must start before the job was stopped"),
        ({"striped_full": "yes"}, "history.striped_full: expected true or false"),
        ({"login": ""}, "history.login: expected a non-empty string"),
    ],
)
def test_history_config_errors_name_the_field(tmp_path, change, message):
    spec = {k: v for k, v in dict(JOB, **change).items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        build(tmp_path, spec)


def test_history_dates_compare_with_getdate(seeded):
    r = Runner(seeded)
    recent = r.rows(
        "SELECT COUNT(*) FROM msdb.dbo.backupset WHERE backup_start_date >= DATEADD(hour, -1, GETDATE()) "
        f"AND database_name = {lit(DB)}"
    )
    assert recent == [(3,)]  # the job ran at :00/:15/:30/:45 until 20 minutes ago


def test_history_on_a_read_only_database(tmp_path):
    (tmp_path / "backups").mkdir()
    cfg = {
        "name": "RO",
        "logins": {"sa": {"password": "Pa55!", "sysadmin": True}},
        "path_map": {"D:\\Backups": str(tmp_path / "backups")},
        "databases": {DB: {"read_only": True, "history": dict(JOB, span_hours=2, copy_only_full_by=None)}},
    }
    r = Runner(Instance.from_config(cfg, tmp_path, FixedClock(NOW)))
    rows = history(r, DB)
    logs = [row for row in rows if row["type"] == "L"]
    assert logs and all(row["first_lsn"] == row["last_lsn"] for row in logs[1:])  # nothing written: empty
