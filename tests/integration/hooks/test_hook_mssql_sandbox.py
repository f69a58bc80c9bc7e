"""MigrationMsSqlHook against the SQL Server stand-in, through pymssql (FreeTDS) over TDS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hooks.mssql import MigrationMsSqlHook, SqlServerError
from rds_migration.chain import BackupType
from tests.integration.hooks.conftest import HOSTILE_DB, SERVER_BACKUP_DIR, mssql_connection, set_connection

SINCE = datetime(2000, 1, 1)


def path(name: str) -> str:
    return f"{SERVER_BACKUP_DIR}/{name}"


def test_server_facts(mssql_hook):
    facts = mssql_hook.server_facts()
    assert facts.major_version == 15
    assert facts.product_version.startswith("15.")
    assert "Enterprise" in facts.edition
    assert facts.engine_edition == 3
    assert facts.can_compress_backups and mssql_hook.can_compress_backups()


def test_database_facts(mssql_hook):
    facts = mssql_hook.database_facts(HOSTILE_DB)
    assert facts.name == HOSTILE_DB
    assert facts.state_desc == "ONLINE"
    assert facts.recovery_model_desc == "FULL"
    assert facts.last_log_backup_lsn is None  # pseudo-simple until the first full
    assert facts.data_bytes > 0
    assert facts.tde_encryption_state is None
    assert facts.sku_features == ()
    assert mssql_hook.database_facts("no such db") is None


def test_tde_and_edition_features(mssql_hook):
    facts = mssql_hook.database_facts("Secret")
    assert facts.has_tde
    assert set(facts.sku_features) == {"Partitioning", "DataCompression"}


def test_check_database(mssql_hook):
    assert mssql_hook.check_database(HOSTILE_DB) == []
    errors = mssql_hook.check_database("Broken")
    assert errors and all(isinstance(e, str) and e for e in errors)


def test_backup_chain_and_history(mssql_hook):
    progress: list[int] = []
    full = mssql_hook.backup(
        HOSTILE_DB,
        "FULL",
        path("w_FULL.bak"),
        backup_name="full",
        compression=True,
        on_progress=lambda p, e: progress.append(p),
    )
    assert full.backup_type is BackupType.FULL
    assert full.file_name == "w_FULL.bak"
    assert progress and progress[-1] == 100
    assert isinstance(full.last_lsn, int)
    assert mssql_hook.find_backup(HOSTILE_DB, path("w_FULL.bak")) == full
    assert mssql_hook.find_backup(HOSTILE_DB, path("nope.bak")) is None

    log = mssql_hook.backup(HOSTILE_DB, "LOG", path("w_LOG.trn"), backup_name="log", compression=True)
    assert log.backup_type is BackupType.LOG
    assert log.first_lsn <= full.last_lsn <= log.last_lsn

    diff = mssql_hook.backup(HOSTILE_DB, "DIFF", path("w_DIFF.diff"), backup_name="diff", compression=False)
    assert diff.backup_type is BackupType.DIFF
    assert diff.differential_base_lsn == full.checkpoint_lsn

    history = mssql_hook.backup_history(HOSTILE_DB, SINCE)
    assert [row["type"] for row in history] == ["D", "L", "I"]
    assert all(isinstance(row["first_lsn"], int) for row in history)
    assert all(row["backup_start_date"].tzinfo is UTC and row["family_count"] == 1 for row in history)

    header = mssql_hook.read_backup_header(path("w_LOG.trn"))
    assert int(header["BackupType"]) == 2
    assert int(header["FirstLSN"]) == log.first_lsn


def test_log_backup_in_simple_recovery_is_explained(mssql_hook):
    with pytest.raises(SqlServerError) as info:
        mssql_hook.backup("Simple", "LOG", path("s.trn"), backup_name="x", compression=False)
    assert info.value.number in (4208, 4214)
    assert "take a full backup" in str(info.value)


def test_pseudo_simple_log_backup_is_explained(mssql_hook):
    with pytest.raises(SqlServerError) as info:
        mssql_hook.backup(HOSTILE_DB, "LOG", path("early.trn"), backup_name="x", compression=False)
    assert info.value.number == 4214


def test_cutover_freeze_tail_and_rollback(mssql_hook):
    mssql_hook.backup(HOSTILE_DB, "FULL", path("c_FULL.bak"), backup_name="full", compression=True)
    mssql_hook.set_user_access(HOSTILE_DB, "RESTRICTED_USER")
    tail = mssql_hook.backup(HOSTILE_DB, "TAIL", path("c_TAIL.trn"), backup_name="tail", compression=True)
    assert tail.backup_type is BackupType.LOG
    with pytest.raises(SqlServerError):  # RESTORING after the tail: no more backups
        mssql_hook.backup(HOSTILE_DB, "LOG", path("c_LOG.trn"), backup_name="log", compression=True)
    mssql_hook.recover_database(HOSTILE_DB)
    mssql_hook.set_user_access(HOSTILE_DB, "MULTI_USER")
    after = mssql_hook.backup(HOSTILE_DB, "LOG", path("c_LOG2.trn"), backup_name="log", compression=True)
    assert after.first_lsn == tail.last_lsn  # online again, chain intact


def test_database_facts_through_cutover(mssql_hook):
    mssql_hook.backup(HOSTILE_DB, "FULL", path("f_FULL.bak"), backup_name="full", compression=True)
    assert mssql_hook.database_facts(HOSTILE_DB).last_log_backup_lsn is not None
    mssql_hook.set_user_access(HOSTILE_DB, "RESTRICTED_USER")
    assert mssql_hook.database_facts(HOSTILE_DB).user_access_desc == "RESTRICTED_USER"
    mssql_hook.backup(HOSTILE_DB, "TAIL", path("f_TAIL.trn"), backup_name="tail", compression=True)
    assert mssql_hook.database_facts(HOSTILE_DB).state_desc == "RESTORING"
    mssql_hook.recover_database(HOSTILE_DB)
    mssql_hook.set_user_access(HOSTILE_DB, "MULTI_USER")
    facts = mssql_hook.database_facts(HOSTILE_DB)
    assert (facts.state_desc, facts.user_access_desc) == ("ONLINE", "MULTI_USER")


def test_user_access_mode_allow_list(mssql_hook):
    with pytest.raises(ValueError):
        mssql_hook.set_user_access(HOSTILE_DB, "MULTI_USER; DROP DATABASE x")


def test_table_fingerprints(mssql_hook):
    prints = mssql_hook.table_fingerprints(HOSTILE_DB)
    assert prints[("dbo", "orders")][0] == 40
    assert prints[("s]x", "t 'q'")][0] == 3
    assert prints == mssql_hook.table_fingerprints(HOSTILE_DB)


def test_login_failure_has_no_password(mssql_server, monkeypatch, assert_no_secrets):
    wrong = "Wrong-Sql-P@ss"
    set_connection(monkeypatch, "mssql_bad", mssql_connection(mssql_server.port, password=wrong))
    with pytest.raises(SqlServerError) as info:
        MigrationMsSqlHook(mssql_conn_id="mssql_bad").server_facts()
    assert "login was refused" in str(info.value)
    assert wrong not in str(info.value)
    assert_no_secrets(info.value)


def test_secrets_absent_from_logs(mssql_hook, assert_no_secrets):
    mssql_hook.backup(HOSTILE_DB, "FULL", path("x_FULL.bak"), backup_name="full", compression=False)
    assert_no_secrets(mssql_hook)


def test_backup_history_since_filters(mssql_hook):
    mssql_hook.backup(HOSTILE_DB, "FULL", path("h_FULL.bak"), backup_name="full", compression=False)
    assert mssql_hook.backup_history(HOSTILE_DB, datetime.now() + timedelta(days=2)) == []
