"""RESTRICTED_USER is not a freeze, READ_ONLY is; SINGLE_USER, NO_WAIT; options travel with backups."""

from __future__ import annotations

import pytest

from sandbox.mssql.results import SqlError
from tests.sandbox.mssql_engine.conftest import Runner, make_instance
from tests.sandbox.mssql_engine.security_config import DB, PW, lit, q, secure_instance

READ_ONLY_TEXT = f'Failed to update database "{DB}" because the database is read-only.'
RESTRICTED_TEXT = (
    f"Database '{DB}' is in restricted mode. Only the database owner and members of the dbcreator and "
    "sysadmin roles can access it."
)


def login(inst, user: str, database: str | None = None) -> Runner:
    return Runner(inst, user, PW, database)


def count(runner: Runner) -> int:
    return runner.rows(f"SELECT COUNT(*) FROM {q(DB)}.dbo.orders")[0][0]


def watch_kills(*runners: Runner) -> list[str]:
    killed: list[str] = []
    for r in runners:
        r.session.on_kill = lambda r=r: killed.append(r.session.login)
    return killed


def test_restricted_user_disconnects_everyone_and_admits_privileged_logins_at_once(tmp_path):
    inst = secure_instance(tmp_path)
    admin = login(inst, "sa")
    owner_app = login(inst, "app_owner")  # default database: DB
    plain = login(inst, "app", DB)
    sysadmin_writer = login(inst, "sa", DB)
    killed = watch_kills(owner_app, plain, sysadmin_writer)
    admin.run(f"ALTER DATABASE {q(DB)} SET RESTRICTED_USER WITH ROLLBACK IMMEDIATE")
    assert sorted(killed) == ["app", "app_owner", "sa"]  # privileged sessions are disconnected too
    assert [m.number for m in admin.messages()] == [5060]
    assert owner_app.error("SELECT 1")[0].number == 596

    for user in ("app_owner", "owner_login", "sa"):  # db_owner member, database owner, sysadmin
        again = login(inst, user, DB)
        again.run(f"INSERT INTO dbo.orders (id, customer) VALUES ({1000 + len(user)}, N'{user}')")
    assert count(admin) == 23
    assert login(inst, "app_owner").session.database == DB  # its default database opens as well

    with pytest.raises(SqlError) as info:
        inst.login("app", PW, DB)
    assert info.value.number == 4060 and info.value.__cause__.message == RESTRICTED_TEXT
    error, _ = login(inst, "app").error(f"USE {q(DB)}")
    assert (error.number, error.severity, error.message) == (923, 14, RESTRICTED_TEXT)
    # dbcreator passes the access mode but still needs a user in the database (916)
    error, _ = login(inst, "creator").error(f"USE {q(DB)}")
    assert error.number == 916

    admin.run(f"ALTER DATABASE {q(DB)} SET MULTI_USER")
    login(inst, "app", DB).run("INSERT INTO dbo.orders (id, customer) VALUES (2000, N'back')")


def test_restricted_user_admits_a_dbcreator_that_has_a_user(tmp_path):
    inst = make_instance(
        tmp_path,
        "DBC",
        logins={
            "sa": {"password": "Pa55!", "sysadmin": True},
            "dbc": {"password": PW, "server_roles": ["dbcreator"]},
        },
        databases={
            "d": {
                "users": {"dbc": ["db_datareader", "db_datawriter"]},
                "user_access": "RESTRICTED_USER",
                "tables": [{"name": "t", "rows": 1}],
            }
        },
    )
    dbc = login(inst, "dbc", "d")
    dbc.run("INSERT INTO dbo.t (id, customer) VALUES (2, N'dbcreator')")
    assert dbc.rows("SELECT COUNT(*) FROM dbo.t") == [(2,)]


def test_single_user_admits_one_connection(tmp_path):
    inst = secure_instance(tmp_path)
    admin = login(inst, "sa")
    admin.run(f"ALTER DATABASE {q(DB)} SET SINGLE_USER WITH ROLLBACK IMMEDIATE")
    first = login(inst, "app", DB)
    error, _ = login(inst, "sa").error(f"USE {q(DB)}")
    assert (error.number, error.message) == (
        924,
        f"Database '{DB}' is already open and can only have one user at a time.",
    )
    with pytest.raises(SqlError) as info:
        inst.login("app_owner", PW)  # its default database is taken
    assert info.value.number == 4064
    inst.close_session(first.session)
    login(inst, "app_owner")


def test_read_only_stops_every_writer_and_read_write_undoes_it(tmp_path):
    inst = secure_instance(tmp_path)
    admin = login(inst, "sa")
    admin.run(f"BACKUP DATABASE {q(DB)} TO DISK = 'D:\\Backups\\full.bak' WITH INIT")
    writer = login(inst, "sa", DB)  # a sysadmin writer with an open transaction
    writer.run("BEGIN TRAN; INSERT INTO dbo.orders (id, customer) VALUES (500, N'uncommitted')")
    killed = watch_kills(writer)
    admin.run(f"ALTER DATABASE {q(DB)} SET READ_ONLY WITH ROLLBACK IMMEDIATE")
    assert killed == ["sa"] and count(admin) == 20  # rolled back and disconnected

    again = login(inst, "sa", DB)  # anyone may connect and read
    assert count(again) == 20 and count(login(inst, "app", DB)) == 20
    for statement in (
        "INSERT INTO dbo.orders (id, customer) VALUES (501, N'x')",
        "UPDATE dbo.orders SET amount = 1",
        "DELETE FROM dbo.orders",
        "CREATE TABLE dbo.t (id int)",
    ):
        error, _ = again.error(statement)
        assert (error.number, error.severity, error.message) == (3906, 16, READ_ONLY_TEXT)
    assert admin.rows(
        f"SELECT is_read_only, DATABASEPROPERTYEX(name, 'Updateability') FROM sys.databases "
        f"WHERE database_id = DB_ID({lit(DB)})"
    ) == [(True, "READ_ONLY")]
    admin.run(f"BACKUP LOG {q(DB)} TO DISK = 'D:\\Backups\\ro.trn' WITH INIT")  # the plain tail works

    admin.run(f"ALTER DATABASE {q(DB)} SET READ_WRITE WITH ROLLBACK IMMEDIATE")
    login(inst, "sa", DB).run("INSERT INTO dbo.orders (id, customer) VALUES (501, N'x')")
    assert count(admin) == 21
    assert inst.database_info(DB)["is_read_only"] is False


def test_no_wait_fails_at_once_while_others_use_the_database(tmp_path):
    inst = secure_instance(tmp_path)
    admin = login(inst, "sa")
    other = login(inst, "app", DB)
    for option in ("READ_ONLY", "RESTRICTED_USER", "SINGLE_USER"):
        error, messages = admin.error(f"ALTER DATABASE {q(DB)} SET {option} WITH NO_WAIT")
        assert (error.number, error.message) == (5069, "ALTER DATABASE statement failed.")
        assert [(m.number, m.severity, m.text) for m in messages] == [
            (5070, 16, f"Database state cannot be changed while other users are using the database '{DB}'")
        ]
    assert not other.session.killed and inst.database_info(DB)["user_access_desc"] == "MULTI_USER"
    inst.close_session(other.session)
    admin.run(f"ALTER DATABASE {q(DB)} SET READ_ONLY WITH NO_WAIT")  # nobody else: immediate
    assert inst.database_info(DB)["is_read_only"] is True


@pytest.mark.parametrize(
    ("during_full", "during_log", "expected"),
    [
        ("READ_ONLY", None, (True, "MULTI_USER")),
        ("READ_ONLY", "READ_WRITE", (False, "MULTI_USER")),
        (None, "READ_ONLY", (True, "MULTI_USER")),
        (None, "RESTRICTED_USER", (False, "RESTRICTED_USER")),
    ],
)
def test_options_at_backup_time_travel_into_the_restored_database(
    tmp_path, during_full, during_log, expected
):
    source = secure_instance(tmp_path)
    target = make_instance(tmp_path, "TGT")
    admin = login(source, "sa")
    if during_full:
        admin.run(f"ALTER DATABASE {q(DB)} SET {during_full} WITH ROLLBACK IMMEDIATE")
    admin.run(f"BACKUP DATABASE {q(DB)} TO DISK = 'D:\\Backups\\f.bak' WITH INIT")
    if during_log:
        admin.run(f"ALTER DATABASE {q(DB)} SET {during_log} WITH ROLLBACK IMMEDIATE")
    admin.run(f"BACKUP LOG {q(DB)} TO DISK = 'D:\\Backups\\l.trn' WITH INIT")
    target.restore_file(DB, tmp_path / "backups" / "f.bak", recovery=False)
    target.restore_file(DB, tmp_path / "backups" / "l.trn", recovery=True)
    info = target.database_info(DB)
    assert (info["is_read_only"], info["user_access_desc"]) == expected


def test_database_users_travel_with_the_backup_and_are_orphaned_on_another_instance(tmp_path):
    source = secure_instance(tmp_path)
    target = make_instance(
        tmp_path,
        "TGT",
        logins={"sa": {"password": "Pa55!", "sysadmin": True}, "app_owner": {"password": "x"}},
    )
    login(source, "sa").run(f"BACKUP DATABASE {q(DB)} TO DISK = 'D:\\Backups\\u.bak' WITH INIT")
    target.restore_file(DB, tmp_path / "backups" / "u.bak", recovery=True)
    t = Runner(target)
    users = t.rows(
        f"SELECT name FROM {q(DB)}.sys.database_principals WHERE type = 'S' AND principal_id >= 5 ORDER BY name"
    )
    assert users == [("app",), ("app_default",), ("app_owner",), ("backup_svc",), ("brit",)]
    # same login name, different SID: the user is orphaned and the login cannot enter
    with pytest.raises(SqlError) as info:
        target.login("app_owner", "x", DB)
    assert info.value.__cause__.number == 916
