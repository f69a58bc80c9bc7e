"""Freezes, rights, default database, language and LOB types through the real clients (pymssql, pytds)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pymssql
import pytds
import pytest

from sandbox.mssql.server import ThreadedTdsServer
from tests.sandbox.mssql_engine.security_config import DB, PW, lit, q, secure_instance

REPO = Path(__file__).resolve().parents[3]
READ_ONLY_TEXT = f'Failed to update database "{DB}" because the database is read-only.'


@pytest.fixture
def served(tmp_path):
    instance = secure_instance(tmp_path)
    with ThreadedTdsServer(instance) as server:
        yield instance, server


def connect(server, user: str, database: str | None = None, **kwargs):
    params = dict(
        server="127.0.0.1", port=server.port, user=user, password=PW, autocommit=True, login_timeout=10
    )
    if database is not None:
        params["database"] = database
    return pymssql.connect(tds_version="7.4", **params, **kwargs)


def alter(cursor, sql: str) -> None:
    """ALTER DATABASE ... WITH ROLLBACK IMMEDIATE: 5060 (severity 10) reports the rolled-back sessions and
    pymssql raises on it (it raises on severity > 6); the change is made all the same."""
    try:
        cursor.execute(sql)
    except pymssql.OperationalError as e:
        if e.args[0] != 5060:
            raise


def server_messages(conn) -> list[str]:
    """Collects the texts of the server messages of the next statements (pymssql's msghandler)."""
    texts: list[str] = []
    conn._conn.set_msghandler(lambda state, severity, srv, proc, line, text: texts.append(text.decode()))
    return texts


def scalar(conn, sql: str, params=None):
    cursor = conn.cursor()
    cursor.execute(sql, params)
    return cursor.fetchone()[0]


def pytds_error(server, user: str, database: str | None = None) -> str:
    with pytest.raises(pytds.OperationalError) as info:
        pytds.connect(
            dsn="127.0.0.1", port=server.port, user=user, password=PW, database=database, login_timeout=5
        )
    return str(info.value.args[0])  # python-tds joins the texts of every message of the refusal


def test_restricted_user_disconnects_all_and_the_db_owner_writes_again_at_once(served):
    _instance, server = served
    owner = connect(server, "app_owner")  # its default database
    plain = connect(server, "app", DB)
    assert scalar(owner, "SELECT DB_NAME()") == DB
    with connect(server, "sa", "master") as admin:
        alter(admin.cursor(), f"ALTER DATABASE {q(DB)} SET RESTRICTED_USER WITH ROLLBACK IMMEDIATE")
        for conn in (owner, plain):  # both connections were dropped
            with pytest.raises(pymssql.Error):
                scalar(conn, "SELECT 1")
        with connect(server, "app_owner") as again:
            again.cursor().execute("INSERT INTO dbo.orders (id, customer) VALUES (%d, %s)", (700, "owner"))
        assert scalar(admin, f"SELECT COUNT(*) FROM {q(DB)}.dbo.orders") == 21
        assert "requested by the login" in pytds_error(server, "app", DB)
        with connect(server, "app", "master") as refused:
            with pytest.raises(pymssql.OperationalError) as info:
                refused.cursor().execute(f"USE {q(DB)}")
        assert (
            info.value.args[0] == 923
            and f"Database '{DB}' is in restricted mode" in info.value.args[1].decode()
        )


def test_read_only_stops_a_sysadmin_writer_backup_log_works_and_read_write_undoes(served):
    _instance, server = served
    with connect(server, "sa", "master") as admin:
        cursor = admin.cursor()
        cursor.execute(f"BACKUP DATABASE {q(DB)} TO DISK = 'D:\\Backups\\f.bak' WITH INIT")
        while cursor.nextset():
            pass
        writer = connect(server, "sa", DB)
        writer.cursor().execute("INSERT INTO dbo.orders (id, customer) VALUES (%d, %s)", (800, "before"))
        alter(cursor, f"ALTER DATABASE {q(DB)} SET READ_ONLY WITH ROLLBACK IMMEDIATE")
        with pytest.raises(pymssql.Error):
            writer.cursor().execute("INSERT INTO dbo.orders (id, customer) VALUES (%d, %s)", (801, "dropped"))
        with connect(server, "sa", DB) as reader:  # a sysadmin reconnects and reads, but cannot write
            assert scalar(reader, "SELECT COUNT(*) FROM dbo.orders") == 21
            with pytest.raises(pymssql.OperationalError) as info:
                reader.cursor().execute(
                    "INSERT INTO dbo.orders (id, customer) VALUES (%d, %s)", (802, "refused")
                )
            assert info.value.args[0] == 3906 and READ_ONLY_TEXT in info.value.args[1].decode()
        cursor.execute(
            "SELECT is_read_only, CAST(DATABASEPROPERTYEX(name, 'Updateability') AS nvarchar(20)) "
            "FROM sys.databases WHERE name = %s",
            (DB,),
        )
        assert cursor.fetchall() == [(True, "READ_ONLY")]
        cursor.execute(f"BACKUP LOG {q(DB)} TO DISK = 'D:\\Backups\\tail.trn' WITH INIT")  # the plain tail
        while cursor.nextset():
            pass
        alter(cursor, f"ALTER DATABASE {q(DB)} SET READ_WRITE WITH ROLLBACK IMMEDIATE")
        with connect(server, "sa", DB) as writer_again:
            writer_again.cursor().execute(
                "INSERT INTO dbo.orders (id, customer) VALUES (%d, %s)", (803, "after")
            )
        assert scalar(admin, f"SELECT COUNT(*) FROM {q(DB)}.dbo.orders") == 22


@pytest.mark.parametrize(
    ("user", "sql", "number", "reason"),
    [
        ("app", f"BACKUP LOG {q(DB)} TO DISK = 'D:\\Backups\\l.trn'", 3013, f"BACKUP LOG permission denied in database '{DB}'."),
        ("backup_svc", f"RESTORE DATABASE {q(DB)} FROM DISK = 'D:\\Backups\\f.bak' WITH REPLACE", 3013, f"User does not have permission to RESTORE database '{DB}'."),
        ("app_owner", f"RESTORE DATABASE {q(DB)} FROM DISK = 'D:\\Backups\\f.bak' WITH REPLACE", 3013, f"User does not have permission to RESTORE database '{DB}'."),
        ("backup_svc", f"ALTER DATABASE {q(DB)} SET RESTRICTED_USER WITH ROLLBACK IMMEDIATE", 5069, f"User does not have permission to alter database '{DB}', the database does not exist, or the database is not in a state that allows access checks."),
        ("backup_svc", f"DBCC CHECKDB ({lit(DB)}) WITH NO_INFOMSGS", 7983, f"User 'backup_svc' does not have permission to run DBCC checkdb for database '{DB}'."),
        ("outsider", f"SELECT COUNT(*) FROM {q(DB)}.dbo.orders", 916, f'The server principal "outsider" is not able to access the database "{DB}" under the current security context.'),
    ],
    ids=["backup-log", "restore-backupoperator", "restore-db_owner-role", "alter", "checkdb", "connect"],
)  # fmt: skip
def test_refusals_reach_pymssql_with_number_and_text(served, user, sql, number, reason):
    _instance, server = served
    with connect(server, "sa", "master") as admin:
        admin.cursor().execute(f"BACKUP DATABASE {q(DB)} TO DISK = 'D:\\Backups\\f.bak' WITH INIT")
    with connect(server, user, "master") as conn:
        texts = server_messages(conn)
        with pytest.raises(pymssql.OperationalError) as info:
            conn.cursor().execute(sql)
    assert info.value.args[0] == number
    assert texts[0] == reason


def test_grants_backup_operator_backs_up_and_the_owner_restores(served):
    _instance, server = served
    with connect(server, "backup_svc", "master") as operator:
        cursor = operator.cursor()
        cursor.execute(f"BACKUP DATABASE {q(DB)} TO DISK = 'D:\\Backups\\f.bak' WITH INIT")
        cursor.execute(f"BACKUP LOG {q(DB)} TO DISK = 'D:\\Backups\\l.trn' WITH INIT")
    with connect(server, "owner_login", "master") as owner:
        cursor = owner.cursor()
        cursor.execute(f"RESTORE DATABASE {q(DB)} FROM DISK = 'D:\\Backups\\f.bak' WITH REPLACE, NORECOVERY")
        cursor.execute(f"RESTORE LOG {q(DB)} FROM DISK = 'D:\\Backups\\l.trn' WITH RECOVERY")
        assert scalar(owner, "SELECT state_desc FROM sys.databases WHERE name = %s", (DB,)) == "ONLINE"


def test_a_rights_query_in_the_database_as_the_product_runs_it(served):
    _instance, server = served
    sql = (
        "DECLARE @db sysname = %s; DECLARE @proc nvarchar(300) = QUOTENAME(@db) + N'.sys.sp_executesql'; "
        "EXEC @proc N'SELECT IS_SRVROLEMEMBER(''sysadmin''), IS_ROLEMEMBER(''db_owner''), "
        "HAS_PERMS_BY_NAME(DB_NAME(), ''DATABASE'', ''BACKUP LOG''), HAS_PERMS_BY_NAME(NULL, NULL, ''ALTER ANY DATABASE''), "
        "SUSER_SNAME(d.owner_sid), USER_NAME() FROM sys.databases AS d WHERE d.database_id = DB_ID()'"
    )
    results = {}
    for user in ("sa", "app_owner", "backup_svc", "creator"):
        with connect(server, user, "master") as conn:
            cursor = conn.cursor()
            if user == "creator":
                with pytest.raises(pymssql.OperationalError) as info:
                    cursor.execute(sql, (DB,))
                results[user] = info.value.args[0]
                continue
            cursor.execute(sql, (DB,))
            results[user] = cursor.fetchone()
    assert results == {
        "sa": (1, 1, 1, 1, "owner_login", "dbo"),
        "app_owner": (0, 1, 1, 0, "owner_login", "app_owner"),
        "backup_svc": (0, 0, 1, 0, "owner_login", "backup_svc"),
        "creator": 916,  # dbcreator without a user in the database
    }


def test_default_database_4064_and_explicit_master(served):
    instance, server = served
    with connect(server, "app_default") as conn:
        assert scalar(conn, "SELECT DB_NAME()") == DB
    with connect(server, "sa", "master") as admin:
        alter(admin.cursor(), f"ALTER DATABASE {q(DB)} SET OFFLINE WITH ROLLBACK IMMEDIATE")
    assert pytds_error(server, "app_default") == (
        "Cannot open user default database. Login failed. Login failed for user 'app_default'."
    )
    assert "requested by the login" in pytds_error(server, "app_default", DB)
    with connect(server, "app_default", "master") as conn:
        assert scalar(conn, "SELECT DB_NAME()") == "master"


def test_pymssql_sends_us_english_so_the_login_default_language_applies_to_other_clients(served):
    _instance, server = served
    with connect(server, "brit", DB) as conn:  # FreeTDS puts 'us_english' into LOGIN7
        assert scalar(conn, "SELECT @@LANGUAGE") == "us_english"
    with pytds.connect(dsn="127.0.0.1", port=server.port, user="brit", password=PW, database=DB) as conn:
        with conn.cursor() as cursor:  # python-tds sends no language: the login's default applies
            cursor.execute("SELECT @@LANGUAGE")
            assert cursor.fetchone() == ("British",)
            with pytest.raises(pytds.OperationalError) as info:
                cursor.execute("SELECT CAST('2026-11-24 10:15:00.000' AS datetime)")
            assert info.value.number == 242


def test_british_session_and_the_pymssql_datetime_literal(served):
    _instance, server = served
    with connect(server, "brit", DB) as conn:
        cursor = conn.cursor()
        cursor.execute("SET LANGUAGE British")
        cursor.execute("CREATE TABLE dbo.events (id int PRIMARY KEY, at datetime, at2 datetime2)")
        with pytest.raises(pymssql.OperationalError) as info:
            cursor.execute(
                "INSERT INTO dbo.events (id, at) VALUES (%d, %s)", (1, dt.datetime(2026, 11, 24, 10, 15))
            )
        assert info.value.args[0] == 242
        assert (
            "The conversion of a varchar data type to a datetime data type resulted in an out-of-range value."
            in info.value.args[1].decode()
        )
        cursor.execute(
            "INSERT INTO dbo.events (id, at, at2) VALUES (%d, %s, %s)",
            (2, dt.datetime(2026, 11, 5, 10, 15), dt.datetime(2026, 11, 24, 10, 15)),
        )
        cursor.execute(
            "INSERT INTO dbo.events (id, at) VALUES (%d, CONVERT(datetime, %s, 126))",
            (3, "2026-11-24T10:15:00"),
        )
        cursor.execute("INSERT INTO dbo.events (id, at) VALUES (%d, '2026-11-24T10:15:00')", (4,))
        cursor.execute("SELECT id, at, at2 FROM dbo.events ORDER BY id")
        assert cursor.fetchall() == [
            (2, dt.datetime(2026, 5, 11, 10, 15), dt.datetime(2026, 11, 24, 10, 15)),  # day and month swapped
            (3, dt.datetime(2026, 11, 24, 10, 15), None),
            (4, dt.datetime(2026, 11, 24, 10, 15), None),
        ]


def test_freetds_configured_for_british_gets_242_from_pymssql(served, tmp_path):
    _instance, server = served
    conf = tmp_path / "freetds.conf"
    conf.write_text("[global]\n\tlanguage = British\n", encoding="utf-8")
    code = (
        "import datetime as dt, json, sys, pymssql\n"
        "p = json.loads(sys.argv[1])\n"
        "conn = pymssql.connect(autocommit=True, **p)\n"
        "cur = conn.cursor()\n"
        "cur.execute('SELECT @@LANGUAGE')\n"
        "out = [cur.fetchone()[0]]\n"
        "try:\n"
        "    cur.execute('SELECT CAST(%s AS datetime)', (dt.datetime(2026, 11, 24, 10, 15),))\n"
        "    out.append(None)\n"
        "except pymssql.OperationalError as e:\n"
        "    out.append(e.args[0])\n"
        "print(json.dumps(out))\n"
    )
    params = dict(server="127.0.0.1", port=str(server.port), user="app", password=PW, login_timeout=5)
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(params)],
        env=dict(os.environ, FREETDSCONF=str(conf), PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == ["British", 242], result.stderr


def test_lob_columns_through_pymssql_and_binary_checksum_ignores_xml(served):
    _instance, server = served
    with connect(server, "sa", DB) as conn:
        cursor = conn.cursor()
        cursor.execute("CREATE TABLE dbo.docs (id int PRIMARY KEY, t text, nt ntext, img image, x xml)")
        cursor.execute(
            "INSERT INTO dbo.docs VALUES (%d, %s, %s, %s, %s)",
            (1, "plain", "ü" * 9000, b"\x00\xff" * 5000, "<a/>"),
        )
        cursor.execute("SELECT t, nt, img, x, DATALENGTH(nt), DATALENGTH(img) FROM dbo.docs")
        assert cursor.fetchall() == [("plain", "ü" * 9000, b"\x00\xff" * 5000, "<a/>", 18000, 10000)]
        cursor.execute("SELECT CHECKSUM_AGG(BINARY_CHECKSUM(*)) FROM dbo.docs")
        before = cursor.fetchone()
        cursor.execute("UPDATE dbo.docs SET x = %s", ("<b>changed</b>",))
        cursor.execute("SELECT CHECKSUM_AGG(BINARY_CHECKSUM(*)) FROM dbo.docs")
        assert cursor.fetchone() == before
