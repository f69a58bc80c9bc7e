"""Log chain fidelity: empty log backups, COPY_ONLY logs, recovery forks, restore history."""

from __future__ import annotations

import pytest

from sandbox.mssql.results import SqlError
from tests.sandbox.mssql_engine.conftest import HOSTILE, Runner, make_instance
from tests.sandbox.mssql_engine.helpers import dicts, history, lit, quote

DB = quote(HOSTILE)


def backup(runner: Runner, kind: str, name: str, options: str = "INIT, CHECKSUM") -> dict:
    """Take a backup to D:\\Backups\\<name>; returns its msdb row."""
    statement = "BACKUP DATABASE" if kind == "full" else "BACKUP LOG"
    device = lit("D:\\Backups\\" + name)
    runner.run(f"{statement} {DB} TO DISK = {device} WITH {options}")
    return history(runner, HOSTILE)[-1]


def insert(runner: Runner, first: int, count: int = 3) -> None:
    values = ", ".join(f"({i}, N'c{i}', {i}.50, SYSDATETIME())" for i in range(first, first + count))
    runner.run(f"INSERT INTO {DB}.dbo.orders (id, customer, amount, created) VALUES {values}")


def rows_of(runner: Runner) -> list[tuple]:
    return runner.rows(f"SELECT id, customer, amount FROM {DB}.dbo.orders ORDER BY id")


def recovery_status(runner: Runner) -> dict:
    result = runner.result(
        "SELECT rs.database_guid, rs.family_guid, rs.last_log_backup_lsn, rs.recovery_fork_guid, "
        "rs.first_recovery_fork_guid, rs.fork_point_lsn FROM sys.database_recovery_status AS rs "
        f"JOIN sys.databases AS d ON d.database_id = rs.database_id WHERE d.name = {lit(HOSTILE)}"
    )
    return dicts(result)[0]


def test_idle_log_backups_are_empty(source, tmp_path):
    r = Runner(source)
    full = backup(r, "full", "f.bak")
    first = backup(r, "log", "l1.trn")
    assert first["first_lsn"] == full["first_lsn"] < first["last_lsn"]  # carries the full's records
    empty = backup(r, "log", "l2.trn")
    assert empty["first_lsn"] == empty["last_lsn"] == first["last_lsn"]
    again = backup(r, "log", "l3.trn")  # a log backup writes no log record of its own
    assert again["first_lsn"] == again["last_lsn"] == empty["last_lsn"]
    header = source.read_backup_header(tmp_path / "backups" / "l2.trn")
    assert header["FirstLSN"] == header["LastLSN"] == int(empty["last_lsn"])
    insert(r, 5000)
    busy = backup(r, "log", "l4.trn")
    assert busy["first_lsn"] == again["last_lsn"] < busy["last_lsn"]


@pytest.mark.parametrize("mode", ["accept", "refuse"])
def test_restoring_an_empty_log_at_the_restore_point(tmp_path, source, mode):
    r = Runner(source)
    backup(r, "full", "f.bak")
    backup(r, "log", "l1.trn")
    backup(r, "log", "empty.trn")
    insert(r, 7000)
    backup(r, "log", "l3.trn")
    target = make_instance(tmp_path, "TGT", empty_log_restore=mode)
    folder = tmp_path / "backups"
    target.restore_file(HOSTILE, folder / "f.bak", recovery=False)
    target.restore_file(HOSTILE, folder / "l1.trn", recovery=False)
    t = Runner(target)
    statement = f"RESTORE LOG {DB} FROM DISK = N'D:\\Backups\\empty.trn' WITH NORECOVERY"
    if mode == "accept":
        t.run(statement)
        assert "0 pages" in t.messages()[-1].text
    else:
        error, messages = t.error(statement)
        assert error.number == 3013 and messages[0].number == 4326
        assert "too early to apply" in messages[0].text
    target.restore_file(HOSTILE, folder / "l3.trn", recovery=True)  # the chain goes on either way
    assert rows_of(Runner(target)) == rows_of(r)


def test_copy_only_log_backup_does_not_move_the_chain(source, target, tmp_path):
    r = Runner(source)
    backup(r, "full", "f.bak")
    first = backup(r, "log", "l1.trn")
    insert(r, 1100)
    copy = backup(r, "log", "copy.trn", "INIT, COPY_ONLY")
    assert copy["is_copy_only"] is True and copy["first_lsn"] == first["last_lsn"] < copy["last_lsn"]
    insert(r, 1200)
    second = backup(r, "log", "l2.trn")
    assert second["is_copy_only"] is False
    assert second["first_lsn"] == first["last_lsn"]  # not the copy-only's last_lsn: it moved nothing
    assert second["last_lsn"] > copy["last_lsn"]
    # The copy-only backup truncated nothing: the normal chain alone restores every row.
    folder = tmp_path / "backups"
    target.restore_file(HOSTILE, folder / "f.bak", recovery=False)
    target.restore_file(HOSTILE, folder / "l1.trn", recovery=False)
    target.restore_file(HOSTILE, folder / "l2.trn", recovery=True)
    assert rows_of(Runner(target)) == rows_of(r)


def test_restore_with_recovery_after_a_norecovery_tail_starts_a_fork(source, target, tmp_path):
    r = Runner(source)
    backup(r, "full", "f.bak")
    insert(r, 1100)
    backup(r, "log", "l1.trn")
    before = recovery_status(r)
    assert before["fork_point_lsn"] is None
    assert before["recovery_fork_guid"] == before["first_recovery_fork_guid"]
    tail = backup(r, "log", "tail.trn", "INIT, NORECOVERY")
    assert source.database_info(HOSTILE)["state_desc"] == "RESTORING"
    r.run(f"RESTORE DATABASE {DB} WITH RECOVERY")  # the rollback: a new fork at the tail's last_lsn
    after = recovery_status(r)
    assert after["recovery_fork_guid"] != before["recovery_fork_guid"]
    assert after["first_recovery_fork_guid"] == before["recovery_fork_guid"]
    assert after["fork_point_lsn"] == tail["last_lsn"]
    assert after["database_guid"] == before["database_guid"]  # the database was recovered, not restored
    assert after["last_log_backup_lsn"] == tail["last_lsn"]
    insert(r, 1300)
    spanning = backup(r, "log", "l2.trn")
    assert spanning["first_lsn"] == tail["last_lsn"]
    assert spanning["first_recovery_fork_guid"] == before["recovery_fork_guid"]
    assert spanning["last_recovery_fork_guid"] == after["recovery_fork_guid"]
    assert spanning["fork_point_lsn"] == tail["last_lsn"]
    assert (
        tail["fork_point_lsn"] is None and tail["first_recovery_fork_guid"] == tail["last_recovery_fork_guid"]
    )
    header = source.read_backup_header(tmp_path / "backups" / "l2.trn")
    assert header["ForkPointLSN"] == int(tail["last_lsn"])
    assert header["FirstRecoveryForkID"] == str(before["recovery_fork_guid"]).upper()
    assert header["RecoveryForkID"] == str(after["recovery_fork_guid"]).upper()
    nxt = backup(r, "log", "l3.trn")  # after the spanning log, the chain is on the new fork only
    assert nxt["fork_point_lsn"] is None and nxt["first_recovery_fork_guid"] == after["recovery_fork_guid"]

    # A database restored through the tail is on the log's first fork: the spanning log applies.
    folder = tmp_path / "backups"
    for name in ("f.bak", "l1.trn", "tail.trn", "l2.trn", "l3.trn"):
        target.restore_file(HOSTILE, folder / name, recovery=False)
    target.recover_database(HOSTILE)
    assert rows_of(Runner(target)) == rows_of(r)


def test_a_log_from_another_recovery_path_is_refused(source, tmp_path):
    """The classic recovery-path case: a fork at an earlier point than the restored database reached."""
    r = Runner(source)
    backup(r, "full", "f.bak")
    insert(r, 1100)
    l1 = backup(r, "log", "l1.trn")
    insert(r, 1200)
    backup(r, "log", "l2.trn")
    # The source itself is restored to the end of l1 and recovered there: a fork at l1's last_lsn.
    r.run(f"RESTORE DATABASE {DB} FROM DISK = N'D:\\Backups\\f.bak' WITH NORECOVERY, REPLACE")
    r.run(f"RESTORE LOG {DB} FROM DISK = N'D:\\Backups\\l1.trn' WITH RECOVERY")
    insert(r, 1300)
    branch = backup(r, "log", "branch.trn")
    assert branch["first_lsn"] == l1["last_lsn"] == branch["fork_point_lsn"]
    folder = tmp_path / "backups"

    on_path = make_instance(tmp_path, "ON")  # restored to l1's end: on the branch's first fork
    on_path.restore_file(HOSTILE, folder / "f.bak", recovery=False)
    on_path.restore_file(HOSTILE, folder / "l1.trn", recovery=False)
    on_path.restore_file(HOSTILE, folder / "branch.trn", recovery=True)
    assert rows_of(Runner(on_path)) == rows_of(r)

    past = make_instance(tmp_path, "PAST")  # rolled forward past the fork point on the old fork
    for name in ("f.bak", "l1.trn", "l2.trn"):
        past.restore_file(HOSTILE, folder / name, recovery=False)
    p = Runner(past)
    error, messages = p.error(f"RESTORE LOG {DB} FROM DISK = N'D:\\Backups\\branch.trn' WITH NORECOVERY")
    assert error.number == 3013 and messages[0].number == 4330
    assert messages[0].text.startswith(
        "This backup set cannot be applied because it is on a recovery path that is inconsistent"
    )


def test_recovering_an_online_database_is_refused(source):
    r = Runner(source)
    error, messages = r.error(f"RESTORE DATABASE {DB} WITH RECOVERY")
    assert messages[0].number == 3153 and messages[0].text == "The database is already fully recovered."


def test_a_restore_creating_a_database_gives_it_a_new_guid(source, target, tmp_path):
    r = Runner(source)
    full = backup(r, "full", "f.bak")
    target.restore_file(HOSTILE, tmp_path / "backups" / "f.bak", recovery=True)
    restored = recovery_status(Runner(target))
    assert restored["database_guid"] != full["database_guid"]  # "RESTORE always generates a new GUID"
    assert restored["family_guid"] == recovery_status(r)["family_guid"]
    assert restored["first_recovery_fork_guid"] == full["last_recovery_fork_guid"]
    assert restored["recovery_fork_guid"] != full["last_recovery_fork_guid"]  # recovered: a new fork
    assert restored["fork_point_lsn"] == full["last_lsn"]


def test_restore_history_on_the_restoring_server(source, tmp_path):
    r = Runner(source)
    backup(r, "full", "f.bak")
    insert(r, 1100)
    backup(r, "log", "l1.trn")
    insert(r, 1200)
    l2 = backup(r, "log", "l2.trn")
    target = make_instance(tmp_path, "TGT", timezone="Asia/Shanghai")
    t = Runner(target)
    t.run(f"RESTORE DATABASE {DB} FROM DISK = N'D:\\Backups\\f.bak' WITH NORECOVERY, REPLACE")
    t.run(f"RESTORE LOG {DB} FROM DISK = N'D:\\Backups\\l1.trn' WITH NORECOVERY")
    t.run(f"RESTORE LOG {DB} FROM DISK = N'D:\\Backups\\l2.trn' WITH RECOVERY")
    result = t.result(
        "SELECT rh.restore_history_id, rh.restore_date, rh.destination_database_name, rh.user_name, "
        "rh.restore_type, rh.replace, rh.recovery, rh.restart, rh.stop_at, rh.device_count, "
        "rh.stop_at_mark_name, rh.stop_before, bs.database_name, bs.server_name, bs.first_lsn, bs.last_lsn, "
        "bs.user_name AS backup_user, bmf.physical_device_name "
        "FROM msdb.dbo.restorehistory AS rh "
        "JOIN msdb.dbo.backupset AS bs ON bs.backup_set_id = rh.backup_set_id "
        "JOIN msdb.dbo.backupmediafamily AS bmf ON bmf.media_set_id = bs.media_set_id "
        "ORDER BY rh.restore_history_id"
    )
    rows = dicts(result)
    assert [row["restore_type"] for row in rows] == ["D", "L", "L"]
    assert [row["recovery"] for row in rows] == [False, False, True]
    assert [row["replace"] for row in rows] == [True, False, False]
    assert {row["destination_database_name"] for row in rows} == {HOSTILE}
    assert {row["server_name"] for row in rows} == {"SRC"} and {row["user_name"] for row in rows} == {"sa"}
    assert rows[0]["physical_device_name"] == "D:\\Backups\\f.bak" and rows[0]["device_count"] == 1
    assert rows[-1]["last_lsn"] == l2["last_lsn"]  # "restored through the tail's last_lsn" is provable
    assert all(row["restart"] is False and row["stop_at"] is None for row in rows)
    assert all(row["stop_before"] is False and row["stop_at_mark_name"] is None for row in rows)
    # restore_date is the restoring server's local time (Asia/Shanghai, UTC+8).
    assert t.rows(
        "SELECT COUNT(*) FROM msdb.dbo.restorehistory WHERE ABS(DATEDIFF(second, restore_date, GETDATE())) < 60"
    ) == [(3,)]
    # The Python API (what the RDS stand-in uses) records the same, with the login it is given.
    other = make_instance(tmp_path, "RDS2")
    other.restore_file(HOSTILE, tmp_path / "backups" / "f.bak", recovery=True, login="rds_restore")
    assert Runner(other).rows("SELECT user_name, restore_type, recovery FROM msdb.dbo.restorehistory") == [
        ("rds_restore", "D", True)
    ]


def test_restore_errors_keep_sql_server_numbers(source, tmp_path):
    r = Runner(source)
    backup(r, "full", "f.bak")
    error, messages = r.error(
        f"BACKUP DATABASE {DB} TO DISK = N'D:\\Backups\\x.bak' WITH MAXTRANSFERSIZE = 1000"
    )
    assert messages[0].number == 3217 and "MAXTRANSFERSIZE" in messages[0].text
    with pytest.raises(SqlError) as info:
        make_instance(tmp_path, "T3").restore_file(HOSTILE, [], recovery=True)
    assert info.value.number == 3207
