"""KILL and injected BACKUP faults as pymssql sees them: the session killed, the connection dropped.

The client's view is the same in every case (its connection is gone); what differs is what the server
did with the backup: nothing recorded (``kill``, ``drop``) or recorded in msdb with the file complete on
disk (``drop_after_commit``). A caller that retries must look in msdb before it backs up again.
"""

from __future__ import annotations

import threading
import time

import pymssql
import pytest

from sandbox.mssql.engine import ConfigError, Instance
from sandbox.mssql.engine.faults import BackupFaults
from sandbox.mssql.server import ThreadedTdsServer

PASSWORD = "Pa55 ]'wörd"
DB = "Sales ]'DB"
BACKUP = (
    "DECLARE @db sysname = %s; DECLARE @path nvarchar(4000) = %s; "
    "BACKUP {kind} @db TO DISK = @path WITH INIT, FORMAT, CHECKSUM, STATS = 5"
)
RECORDED = (
    "SELECT COUNT(*) FROM msdb.dbo.backupset AS bs JOIN msdb.dbo.backupmediafamily AS bmf "
    "ON bmf.media_set_id = bs.media_set_id WHERE bmf.physical_device_name = %s"
)


def make(tmp_path, **extra) -> Instance:
    (tmp_path / "backups").mkdir(exist_ok=True)
    cfg = {
        "name": "SRC",
        "edition": "Enterprise Edition (64-bit)",
        "logins": {
            "sa": {"password": PASSWORD, "sysadmin": True},
            "ops": {"password": PASSWORD, "server_roles": ["processadmin"]},
            "app": {"password": PASSWORD},
        },
        "path_map": {"D:\\Backups": str(tmp_path / "backups")},
        "data_dir": "data",
        "databases": {DB: {"tables": [{"name": "orders", "rows": 20}]}},
    }
    cfg.update(extra)
    return Instance.from_config(cfg, tmp_path)


@pytest.fixture
def server(tmp_path):
    instance = make(tmp_path)
    with ThreadedTdsServer(instance) as running:
        yield running, instance


def connect(server: ThreadedTdsServer, user: str = "sa", autocommit: bool = True):
    return pymssql.connect(
        server="127.0.0.1",
        port=server.port,
        user=user,
        password=PASSWORD,
        database="master",
        tds_version="7.4",
        autocommit=autocommit,
        login_timeout=5,
        timeout=30,
    )


def spid_of(conn) -> int:
    cursor = conn.cursor()
    cursor.execute("SELECT @@SPID")
    return int(cursor.fetchone()[0])


def recorded(server, device: str) -> int:
    with connect(server) as conn:
        cursor = conn.cursor()
        cursor.execute(RECORDED, (device,))
        return int(cursor.fetchone()[0])


def test_kill_ends_another_session_and_rolls_back_its_transaction(server):
    running, _instance = server
    victim = connect(running, autocommit=False)
    victim.cursor().execute(
        f"INSERT INTO [{DB.replace(']', ']]')}].dbo.orders (id, customer) VALUES (9001, N'x')"
    )
    with connect(running) as admin:
        admin.cursor().execute(f"KILL {spid_of(victim)}")
    with pytest.raises(pymssql.Error):
        victim.cursor().execute("SELECT 1")
    with connect(running) as conn:
        cursor = conn.cursor()
        cursor.execute(f"SELECT COUNT(*) FROM [{DB.replace(']', ']]')}].dbo.orders WHERE id = 9001")
        assert cursor.fetchone()[0] == 0, "the killed session's open transaction was rolled back"


def test_kill_refusals_have_sql_servers_numbers(server):
    running, _instance = server
    with connect(running) as admin:
        cursor = admin.cursor()
        with pytest.raises(pymssql.Error) as own:
            cursor.execute(f"KILL {spid_of(admin)}")
        assert own.value.args[0] == 6104 and b"kill your own process" in own.value.args[1]
        with pytest.raises(pymssql.Error) as absent:
            cursor.execute("KILL 4242")
        assert (
            absent.value.args[0] == 6106
            and b"Process ID 4242 is not an active process ID" in absent.value.args[1]
        )
    other = connect(running)
    with connect(running, user="app") as app:
        with pytest.raises(pymssql.Error) as refused:
            app.cursor().execute(f"KILL {spid_of(other)}")
        assert refused.value.args[0] == 6102
    with connect(running, user="ops") as ops:  # processadmin holds ALTER ANY CONNECTION
        ops.cursor().execute(f"KILL {spid_of(other)}")
    other.close()


def test_kill_of_a_running_backup_stops_it_and_records_nothing(server, tmp_path):
    running, instance = server
    instance.set_backup_padding(DB, full_bytes=300 * 1024 * 1024)  # long enough to be caught running
    device = "D:\\Backups\\killed.bak"
    outcome: dict = {}
    backup_conn = connect(running)
    spid = spid_of(backup_conn)

    def run_backup() -> None:
        try:
            backup_conn.cursor().execute(BACKUP.format(kind="DATABASE"), (DB, device))
            outcome["done"] = True
        except pymssql.Error as error:
            outcome["error"] = error

    thread = threading.Thread(target=run_backup)
    thread.start()
    with connect(running) as admin:
        cursor = admin.cursor()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            cursor.execute("SELECT COUNT(*) FROM sys.dm_exec_requests WHERE session_id = %d", (spid,))
            if cursor.fetchone()[0]:
                break
            time.sleep(0.02)
        cursor.execute(f"KILL {spid}")
    thread.join(30)
    assert "error" in outcome, "the killed backup's client sees its connection fail"
    assert recorded(running, device) == 0
    assert not (tmp_path / "backups" / "killed.bak").exists()
    assert not list((tmp_path / "backups").glob("*.partial")), "an aborted backup leaves no partial file"


@pytest.mark.parametrize("kind", ["kill", "drop"])
def test_a_backup_cut_midway_is_not_recorded_and_a_retry_succeeds(server, tmp_path, kind):
    running, instance = server
    device = f"D:\\Backups\\{kind}.trn"
    with connect(running) as conn:
        conn.cursor().execute(BACKUP.format(kind="DATABASE"), (DB, "D:\\Backups\\full.bak"))
    instance.faults.next_backup(kind, database=DB, statement="LOG")
    with connect(running) as conn:
        conn.cursor().execute(BACKUP.format(kind="DATABASE"), (DB, "D:\\Backups\\other_full.bak"))
        assert instance.faults.armed, "a fault armed for LOG waits for a log backup"
    conn = connect(running)
    with pytest.raises(pymssql.Error):
        conn.cursor().execute(BACKUP.format(kind="LOG"), (DB, device))
    assert recorded(running, device) == 0 and not (tmp_path / "backups" / f"{kind}.trn").exists()
    assert instance.faults.injected == [{"kind": kind, "database": DB, "statement": "LOG", "device": device}]
    with connect(running) as retry:  # the fault was one shot: the same backup goes through now
        retry.cursor().execute(BACKUP.format(kind="LOG"), (DB, device))
    assert recorded(running, device) == 1


def test_drop_after_commit_leaves_a_recorded_backup_the_client_never_heard_of(server, tmp_path):
    running, instance = server
    device = "D:\\Backups\\committed.bak"
    instance.faults.next_backup("drop_after_commit")
    conn = connect(running)
    with pytest.raises(pymssql.Error):
        conn.cursor().execute(BACKUP.format(kind="DATABASE"), (DB, device))
    assert recorded(running, device) == 1
    assert (tmp_path / "backups" / "committed.bak").stat().st_size > 0


def test_fault_config_rate_and_errors_name_the_field(tmp_path):
    instance = make(tmp_path, faults={"backup_fault_rate": 1.0, "backup_fault_kinds": ["drop"], "seed": 3})
    assert instance.faults.take(DB, "LOG", "x") == "drop"
    with pytest.raises(ConfigError, match="faults.backup_fault_rate"):
        make(tmp_path, faults={"backup_fault_rate": 2})
    with pytest.raises(ConfigError, match="faults.backup_fault_kinds"):
        make(tmp_path, faults={"backup_fault_kinds": ["explode"]})
    with pytest.raises(ConfigError, match="unknown field"):
        make(tmp_path, faults={"rate": 0.1})
    with pytest.raises(ValueError, match="statement"):
        BackupFaults().next_backup("kill", statement="DIFF")


def test_an_armed_fault_waits_for_the_backup_whose_device_matches(server, tmp_path):
    running, instance = server
    with connect(running) as conn:
        conn.cursor().execute(BACKUP.format(kind="DATABASE"), (DB, "D:\\Backups\\full.bak"))
    instance.faults.next_backup("kill", statement="LOG", device="*_0.trn")
    with connect(running) as conn:
        conn.cursor().execute(BACKUP.format(kind="LOG"), (DB, "D:\\Backups\\Sales_LOG_1.trn"))
    assert instance.faults.injected == [] and len(instance.faults.armed) == 1
    with pytest.raises(pymssql.Error):
        connect(running).cursor().execute(BACKUP.format(kind="LOG"), (DB, "D:\\Backups\\Sales_LOG_0.trn"))
    assert [f["device"] for f in instance.faults.injected] == ["D:\\Backups\\Sales_LOG_0.trn"]
