"""An instance closed and built again on the same data dir continues where it stopped (like a service
restart): databases, msdb history, the log not backed up yet, the log chain and a RESTORING database."""

from __future__ import annotations

from sandbox.mssql.engine import persist
from tests.sandbox.mssql_engine.conftest import HOSTILE, Runner, make_instance
from tests.sandbox.mssql_engine.helpers import history
from tests.sandbox.mssql_engine.test_log_chain import DB, backup, insert, rows_of

SOURCE_DATABASES = {
    HOSTILE: {
        "recovery_model": "FULL",
        "tables": [{"name": "orders", "rows": 200}],
        "users": {"app": ["db_datareader", "db_datawriter"]},
    }
}


def source_instance(tmp_path):
    return make_instance(tmp_path, "SRC", edition="Enterprise Edition (64-bit)", databases=SOURCE_DATABASES)


def test_a_restart_keeps_databases_history_log_chain_and_restore_state(tmp_path):
    source, target = source_instance(tmp_path), make_instance(tmp_path, "TGT")
    assert not source.restarted
    s = Runner(source)
    full = backup(s, "full", "f.bak")
    insert(s, 5000)
    first_log = backup(s, "log", "l1.trn")
    insert(s, 6000)  # in the log only: not backed up yet when the service stops
    s.run(f"ALTER DATABASE {DB} SET RESTRICTED_USER WITH ROLLBACK IMMEDIATE")
    folder = tmp_path / "backups"
    target.restore_file(HOSTILE, folder / "f.bak", recovery=False)
    target.restore_file(HOSTILE, folder / "l1.trn", recovery=False)
    rows, before = rows_of(s), source.database_info(HOSTILE)

    source.close()
    target.close()
    source, target = source_instance(tmp_path), make_instance(tmp_path, "TGT")

    assert source.restarted and target.restarted
    s = Runner(source)
    assert rows_of(s) == rows, "data and the seeded rows as they were: the config is not seeded again"
    after = source.database_info(HOSTILE)
    for key in ("database_guid", "last_log_backup_lsn", "user_access_desc", "recovery_model_desc"):
        assert after[key] == before[key], key
    assert [(h["first_lsn"], h["last_lsn"]) for h in history(s, HOSTILE)] == [
        (full["first_lsn"], full["last_lsn"]),
        (first_log["first_lsn"], first_log["last_lsn"]),
    ]
    assert after["user_access_desc"] == "RESTRICTED_USER"
    s.run(f"ALTER DATABASE {DB} SET MULTI_USER")
    assert Runner(source, "app", "app", HOSTILE).rows("SELECT COUNT(*) FROM dbo.orders") == [(len(rows),)]
    second_log = backup(s, "log", "l2.trn")
    assert second_log["first_lsn"] == first_log["last_lsn"], "the log chain goes on across the restart"
    assert target.database_info(HOSTILE)["state_desc"] == "RESTORING"
    target.restore_file(HOSTILE, folder / "l2.trn", recovery=True)
    assert rows_of(Runner(target)) == rows, "the write logged before the restart reached the target"


def test_after_a_crash_the_instance_starts_fresh(tmp_path):
    source = source_instance(tmp_path)
    Runner(source).run(f"DELETE FROM {DB}.dbo.orders")
    # no close(): nothing saved, as when the process is killed
    again = source_instance(tmp_path)
    assert not again.restarted
    assert len(rows_of(Runner(again))) == 200, "seeded from the config again"
    again.close()
    assert persist.state_path(again.data_dir).is_file()
    third = source_instance(tmp_path)
    assert third.restarted and not persist.state_path(third.data_dir).exists(), "read once, then removed"
