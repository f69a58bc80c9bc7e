"""MigrationMsSqlHook against the SQL Server stand-in, through pymssql (FreeTDS) over TDS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hooks.mssql import MigrationMsSqlHook, SqlServerError
from rds_migration.chain import BackupType
from tests.integration.hooks.conftest import (
    HOSTILE_DB,
    SERVER_BACKUP_DIR,
    SQL_PASSWORD,
    mssql_connection,
    set_connection,
)

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


def sa_write(server, sql: str) -> None:
    """A write by a sysadmin session: RESTRICTED_USER lets it in, READ_ONLY refuses it (3906)."""
    import pymssql

    with pymssql.connect(
        server="127.0.0.1",
        port=server.port,
        user="sa",
        password=SQL_PASSWORD,
        tds_version="7.4",
        autocommit=True,
    ) as conn:
        conn.cursor().execute(sql)


def test_read_only_freeze_stops_privileged_writers_and_undoes_without_restore(mssql_hook, mssql_server):
    import pymssql

    mssql_hook.backup(HOSTILE_DB, "FULL", path("c_FULL.bak"), backup_name="full", compression=True)
    insert = "INSERT INTO [we]]ird 'db' ü].dbo.orders (id, customer) VALUES ({}, N'x')"
    mssql_hook.set_database_option(HOSTILE_DB, "RESTRICTED_USER")
    sa_write(mssql_server, insert.format(1001))  # RESTRICTED_USER does not stop a sysadmin (S2)
    mssql_hook.set_database_option(HOSTILE_DB, "READ_ONLY")
    with pytest.raises(pymssql.Error) as info:
        sa_write(mssql_server, insert.format(1002))
    assert info.value.args[0] == 3906
    facts = mssql_hook.database_facts(HOSTILE_DB)
    assert (facts.state_desc, facts.user_access_desc, facts.is_read_only) == (
        "ONLINE",
        "RESTRICTED_USER",
        True,
    )
    tail = mssql_hook.backup(HOSTILE_DB, "LOG", path("c_TAIL.trn"), backup_name="tail", compression=True)
    assert tail.backup_type is BackupType.LOG and not tail.is_empty
    again = mssql_hook.backup(HOSTILE_DB, "LOG", path("c_AFTER.trn"), backup_name="log", compression=True)
    assert again.is_empty  # READ_ONLY: nothing can be written after the tail
    mssql_hook.set_database_option(HOSTILE_DB, "READ_WRITE")
    mssql_hook.set_database_option(HOSTILE_DB, "MULTI_USER")
    sa_write(mssql_server, insert.format(1003))
    after = mssql_hook.backup(HOSTILE_DB, "LOG", path("c_LOG2.trn"), backup_name="log", compression=True)
    assert after.first_lsn == tail.last_lsn and after.recovery_fork_guid == tail.recovery_fork_guid  # no fork


def test_database_option_allow_list(mssql_hook):
    with pytest.raises(ValueError):
        mssql_hook.set_database_option(HOSTILE_DB, "MULTI_USER; DROP DATABASE x")


def test_row_counts_come_from_metadata(mssql_hook):
    counts = mssql_hook.row_counts(HOSTILE_DB)
    assert counts == {("dbo", "orders"): 40, ("s]x", "t 'q'"): 3}


def test_table_digest_is_order_free_and_sees_every_type(mssql_hook, mssql_server):
    first = mssql_hook.table_digest(HOSTILE_DB, "dbo", "orders")
    assert first[0] == 40 and first == mssql_hook.table_digest(HOSTILE_DB, "dbo", "orders", batch=7)
    sa_write(mssql_server, "UPDATE [we]]ird 'db' ü].dbo.orders SET customer = N'changed' WHERE id = 5")
    assert mssql_hook.table_digest(HOSTILE_DB, "dbo", "orders") != first
    sa_write(
        mssql_server, "CREATE TABLE [we]]ird 'db' ü].dbo.docs (id int PRIMARY KEY, body xml, notes ntext)"
    )
    sa_write(
        mssql_server,
        "INSERT INTO [we]]ird 'db' ü].dbo.docs VALUES (1, N'<a>1</a>', N'n'), (2, N'<a>2</a>', N'n')",
    )
    before = mssql_hook.table_digest(HOSTILE_DB, "dbo", "docs")
    sa_write(mssql_server, "UPDATE [we]]ird 'db' ü].dbo.docs SET body = N'<a>9</a>' WHERE id = 1")
    assert mssql_hook.table_digest(HOSTILE_DB, "dbo", "docs") != before  # BINARY_CHECKSUM would not see it


def test_log_since_last_backup_measures_without_a_backup(mssql_hook, mssql_server):
    mssql_hook.backup(HOSTILE_DB, "FULL", path("m_FULL.bak"), backup_name="full", compression=False)
    mssql_hook.backup(HOSTILE_DB, "LOG", path("m_LOG1.trn"), backup_name="log", compression=False)
    assert mssql_hook.log_since_last_backup(HOSTILE_DB) == 0
    sa_write(mssql_server, "UPDATE [we]]ird 'db' ü].dbo.orders SET customer = N'y'")
    pending = mssql_hook.log_since_last_backup(HOSTILE_DB)
    log = mssql_hook.backup(HOSTILE_DB, "LOG", path("m_LOG2.trn"), backup_name="log", compression=False)
    assert pending and log.size_bytes >= pending * 0.5


def test_login_rights_of_a_sysadmin(mssql_hook):
    rights = mssql_hook.login_rights(HOSTILE_DB)
    assert rights.is_sysadmin and rights.can_backup_log and rights.can_alter and rights.can_checkdb
    assert rights.login_name == "sa" and rights.user_name == "dbo"


def test_a_backup_operator_may_not_checkdb_and_that_is_not_corruption(mssql_server, monkeypatch):
    """7983 (no right to run DBCC CHECKDB) lies in a CHECKDB error range: it is raised, never returned as
    a consistency error (preflight would otherwise say "repair the source")."""
    set_connection(monkeypatch, "backup_svc", mssql_connection(mssql_server.port, login="backup_svc"))
    hook = MigrationMsSqlHook(mssql_conn_id="backup_svc")
    rights = hook.login_rights(HOSTILE_DB)
    assert (rights.user_name, rights.can_backup_log, rights.can_alter, rights.can_checkdb) == (
        "backup_svc",
        True,
        False,
        False,
    )
    with pytest.raises(SqlServerError) as refused:
        hook.check_database(HOSTILE_DB)
    assert refused.value.number == 7983 and "does not have permission to run DBCC checkdb" in str(
        refused.value
    )


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


def test_backups_wait_for_one_of_the_servers_backup_slots(mssql_hook, mssql_server):
    """Another backup of this package holds the only slot: a backup waits, then fails naming the setting;
    with two slots it takes the free one; when the holder's session ends, its slot is free again."""
    import pymssql

    holder = pymssql.connect(
        server="127.0.0.1",
        port=mssql_server.port,
        user="sa",
        password=SQL_PASSWORD,
        tds_version="7.4",
        autocommit=True,
    )
    cursor = holder.cursor()
    cursor.execute(
        "DECLARE @r int; EXEC @r = sp_getapplock @Resource = N'mssql_rds_migration_backup_slot_1', "
        "@LockMode = N'Exclusive', @LockOwner = N'Session', @LockTimeout = 0; SELECT @r"
    )
    assert cursor.fetchone()[0] == 0
    with pytest.raises(SqlServerError, match="max_concurrent_backups"):
        mssql_hook.backup(
            HOSTILE_DB, "FULL", path("s1.bak"), backup_name="f", compression=False, slot_wait=1.5
        )
    assert mssql_hook.find_backup(HOSTILE_DB, path("s1.bak")) is None, "no backup ran without a slot"
    two = mssql_hook.backup(
        HOSTILE_DB, "FULL", path("s2.bak"), backup_name="f", compression=False, backup_slots=2
    )
    assert two.backup_type is BackupType.FULL
    tail = mssql_hook.backup(  # the cutover's tail takes no slot: it never waits while its database is frozen
        HOSTILE_DB, "LOG", path("s1.trn"), backup_name="t", compression=False, backup_slots=None, slot_wait=0
    )
    assert tail.backup_type is BackupType.LOG
    holder.close()
    one = mssql_hook.backup(
        HOSTILE_DB, "FULL", path("s3.bak"), backup_name="f", compression=False, slot_wait=5
    )
    assert one.backup_type is BackupType.FULL
