"""Who may BACKUP, RESTORE, ALTER, CHECKDB and connect; the rights functions and security catalog views."""

from __future__ import annotations

import pytest

from sandbox.mssql.engine import security
from sandbox.mssql.results import SqlError
from tests.sandbox.mssql_engine.conftest import Runner
from tests.sandbox.mssql_engine.security_config import DB, PW, lit, q, secure_instance

BACKUP_DB = f"BACKUP DATABASE {q(DB)} TO DISK = 'D:\\Backups\\f.bak' WITH INIT"
BACKUP_LOG = f"BACKUP LOG {q(DB)} TO DISK = 'D:\\Backups\\l.trn' WITH INIT"
RESTORE = f"RESTORE DATABASE {q(DB)} FROM DISK = 'D:\\Backups\\f.bak' WITH REPLACE, NORECOVERY"
ALTER = f"ALTER DATABASE {q(DB)} SET RECOVERY FULL"
CHECKDB = f"DBCC CHECKDB ({lit(DB)}) WITH NO_INFOMSGS"


@pytest.fixture
def inst(tmp_path):
    inst = secure_instance(tmp_path)
    admin = Runner(inst, "sa", PW)
    admin.run(BACKUP_DB)
    admin.run(BACKUP_LOG)
    return inst


def as_login(inst, user: str) -> Runner:
    return Runner(inst, user, PW, "master")


def refusal(inst, user: str, sql: str) -> tuple[tuple, list[tuple]]:
    error, messages = as_login(inst, user).error(sql)
    return (error.number, error.severity, error.message), [(m.number, m.severity, m.text) for m in messages]


def backup_denied(kind: str) -> tuple:
    return (262, 14, f"BACKUP {kind} permission denied in database '{DB}'.")


RESTORE_DENIED = (3110, 14, f"User does not have permission to RESTORE database '{DB}'.")
ALTER_DENIED = (
    5011,
    14,
    f"User does not have permission to alter database '{DB}', the database does not exist, or the database "
    "is not in a state that allows access checks.",
)


@pytest.mark.parametrize("user", ["app", "outsider", "creator"])
def test_backup_needs_sysadmin_db_owner_or_db_backupoperator(inst, user):
    for sql, kind in ((BACKUP_DB, "DATABASE"), (BACKUP_LOG, "LOG")):
        error, messages = refusal(inst, user, sql)
        assert error == (3013, 16, f"BACKUP {kind} is terminating abnormally.")
        assert messages == [backup_denied(kind)]


@pytest.mark.parametrize("user", ["backup_svc", "app_owner", "owner_login", "sa"])
def test_backup_grants(inst, user):
    runner = as_login(inst, user)
    runner.run(BACKUP_DB)
    runner.run(BACKUP_LOG)
    assert runner.messages()[-1].number == 3014


@pytest.mark.parametrize("user", ["backup_svc", "app_owner", "app", "outsider"])
def test_restore_needs_sysadmin_dbcreator_or_the_owner_not_the_db_owner_role(inst, user):
    error, messages = refusal(inst, user, RESTORE)
    assert error == (3013, 16, "RESTORE DATABASE is terminating abnormally.")
    assert messages == [RESTORE_DENIED]
    assert inst.database_info(DB)["state_desc"] == "ONLINE"


@pytest.mark.parametrize("user", ["owner_login", "creator", "sa"])
def test_restore_grants(inst, user):
    Runner(inst, "sa", PW).run(f"ALTER DATABASE {q(DB)} SET SINGLE_USER WITH ROLLBACK IMMEDIATE")
    as_login(inst, user).run(RESTORE)
    assert inst.database_info(DB)["state_desc"] == "RESTORING"
    as_login(inst, user).run(f"RESTORE DATABASE {q(DB)} WITH RECOVERY")
    assert inst.database_info(DB)["owner"] == "owner_login"  # restoring over it keeps the owner


def test_restore_of_a_new_database_needs_create_database_and_makes_the_restorer_its_owner(inst):
    new = "Copy ]'"
    sql = f"RESTORE DATABASE {q(new)} FROM DISK = 'D:\\Backups\\f.bak'"
    error, messages = refusal(inst, "owner_login", sql)
    assert messages == [(3110, 14, f"User does not have permission to RESTORE database '{new}'.")]
    as_login(inst, "creator").run(sql)
    assert inst.database_info(new)["owner"] == "creator"
    rows = as_login(inst, "creator").rows(
        f"SELECT SUSER_SNAME(owner_sid) FROM sys.databases WHERE name = {lit(new)}"
    )
    assert rows == [("creator",)]


@pytest.mark.parametrize("user", ["app", "backup_svc", "outsider"])
def test_alter_database_needs_alter_permission(inst, user):
    error, messages = refusal(
        inst, user, f"ALTER DATABASE {q(DB)} SET RESTRICTED_USER WITH ROLLBACK IMMEDIATE"
    )
    assert error == (5069, 16, "ALTER DATABASE statement failed.")
    assert messages == [ALTER_DENIED]
    assert inst.database_info(DB)["user_access_desc"] == "MULTI_USER"


@pytest.mark.parametrize("user", ["app_owner", "owner_login", "creator", "sa"])
def test_alter_database_grants(inst, user):
    as_login(inst, user).run(ALTER)


def test_alter_database_of_an_unknown_database_is_5011_too(inst):
    error, messages = refusal(inst, "sa", "ALTER DATABASE [nope] SET READ_ONLY")
    assert error[0] == 5069 and messages[0][0] == 5011 and "'nope'" in messages[0][2]


def test_checkdb_needs_sysadmin_or_db_owner(inst):
    error, _ = refusal(inst, "backup_svc", CHECKDB)
    assert error == (
        7983,
        14,
        f"User 'backup_svc' does not have permission to run DBCC checkdb for database '{DB}'.",
    )
    for user in ("app_owner", "owner_login", "sa"):
        assert as_login(inst, user).run(CHECKDB) == []
    error, _ = refusal(inst, "creator", CHECKDB)  # no user in the database at all
    assert error[0] == 916


def test_connecting_needs_a_user_in_the_database(inst):
    with pytest.raises(SqlError) as info:
        inst.login("outsider", PW, DB)
    assert info.value.number == 4060
    assert info.value.message == f'Cannot open database "{DB}" requested by the login. The login failed.'
    error, _ = refusal(inst, "outsider", f"SELECT COUNT(*) FROM {q(DB)}.dbo.orders")
    assert error == (
        916,
        14,
        f'The server principal "outsider" is not able to access the database "{DB}" under the current '
        "security context.",
    )
    error, _ = refusal(inst, "outsider", f"EXEC {q(DB)}.sys.sp_executesql N'SELECT 1'")
    assert error[0] == 916
    # master and msdb admit any login (guest); backup history is readable (real msdb grants vary)
    rows = as_login(inst, "outsider").rows(
        "SELECT COUNT(*) FROM msdb.dbo.backupset bs JOIN msdb.dbo.backupmediafamily bmf "
        "ON bmf.media_set_id = bs.media_set_id"
    )
    assert rows == [(2,)]


def test_create_and_drop_database(inst):
    error, _ = refusal(inst, "app", "CREATE DATABASE x")
    assert error == (262, 14, "CREATE DATABASE permission denied in database 'master'.")
    creator = as_login(inst, "creator")
    creator.run("CREATE DATABASE [made by creator]")
    assert inst.database_info("made by creator")["owner"] == "creator"
    error, _ = refusal(inst, "app", "DROP DATABASE [made by creator]")
    assert error[0] == 3701
    creator.run("DROP DATABASE [made by creator]")


RIGHTS_QUERY = """SELECT IS_SRVROLEMEMBER('sysadmin'), IS_SRVROLEMEMBER('dbcreator'), IS_ROLEMEMBER('db_owner'),
IS_ROLEMEMBER('db_backupoperator'), IS_MEMBER('db_owner'),
HAS_PERMS_BY_NAME(DB_NAME(), 'DATABASE', 'BACKUP DATABASE'), HAS_PERMS_BY_NAME(DB_NAME(), 'DATABASE', 'BACKUP LOG'),
HAS_PERMS_BY_NAME(DB_NAME(), 'DATABASE', 'ALTER'), HAS_PERMS_BY_NAME(DB_NAME(), 'DATABASE', 'CONNECT'),
HAS_PERMS_BY_NAME(NULL, NULL, 'ALTER ANY DATABASE'), HAS_PERMS_BY_NAME(NULL, NULL, 'CREATE ANY DATABASE'),
HAS_PERMS_BY_NAME(NULL, NULL, 'VIEW SERVER STATE'),
CASE WHEN d.owner_sid = SUSER_SID() THEN 1 ELSE 0 END, SUSER_SNAME(d.owner_sid), USER_NAME(), ORIGINAL_LOGIN()
FROM sys.databases AS d WHERE d.database_id = DB_ID()"""


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("sa", (1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, "owner_login", "dbo", "sa")),
        ("app_owner", (0, 0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, "owner_login", "app_owner", "app_owner")),
        ("owner_login", (0, 0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0, 1, "owner_login", "dbo", "owner_login")),
        ("backup_svc", (0, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0, 0, 0, "owner_login", "backup_svc", "backup_svc")),
        ("app", (0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, "owner_login", "app", "app")),
    ],
)
def test_rights_functions_in_a_database_through_sp_executesql(inst, user, expected):
    sql = f"EXEC {q(DB)}.sys.sp_executesql N'{RIGHTS_QUERY.replace(chr(39), chr(39) * 2)}'"
    assert as_login(inst, user).rows(sql) == [expected]


def test_rights_functions_with_explicit_principals_and_invalid_names(inst):
    r = as_login(inst, "app")
    assert r.rows(
        "SELECT IS_SRVROLEMEMBER('dbcreator', 'creator'), IS_SRVROLEMEMBER('sysadmin', 'creator'), "
        "IS_SRVROLEMEMBER('no_such_role'), IS_SRVROLEMEMBER('sysadmin', 'nobody'), "
        "HAS_PERMS_BY_NAME(NULL, NULL, 'NO SUCH PERMISSION'), HAS_PERMS_BY_NAME('nodb', 'DATABASE', 'CONNECT'), "
        f"HAS_PERMS_BY_NAME({lit(DB)}, 'DATABASE', 'BACKUP LOG'), SUSER_SNAME(0x01), SUSER_SID('sa')"
    ) == [(1, 0, None, None, None, None, 0, "sa", b"\x01")]
    inside = Runner(inst, "sa", PW, DB)
    assert inside.rows(
        "SELECT IS_ROLEMEMBER('db_owner', 'app_owner'), IS_ROLEMEMBER('db_owner', 'backup_svc'), "
        "IS_ROLEMEMBER('db_backupoperator', 'backup_svc'), IS_ROLEMEMBER('db_owner', 'dbo'), "
        "IS_ROLEMEMBER('not_a_role'), CURRENT_USER, USER_NAME(1), DATABASE_PRINCIPAL_ID('app_owner')"
    ) == [(1, 0, 1, 1, None, "dbo", "dbo", 6)]  # users are numbered from 5 in config order


def test_security_catalog_views(inst):
    r = Runner(inst, "sa", PW)
    logins = dict(
        r.rows("SELECT name, default_language_name FROM sys.server_principals WHERE type = 'S' ORDER BY name")
    )
    assert logins["brit"] == "British" and logins["sa"] == "us_english"
    members = r.rows(
        "SELECT r.name, m.name FROM sys.server_role_members rm "
        "JOIN sys.server_principals r ON r.principal_id = rm.role_principal_id "
        "JOIN sys.server_principals m ON m.principal_id = rm.member_principal_id ORDER BY r.name, m.name"
    )
    assert members == [("dbcreator", "creator"), ("sysadmin", "sa")]
    sql = (
        "SELECT r.name, u.name FROM sys.database_role_members rm "
        "JOIN sys.database_principals r ON r.principal_id = rm.role_principal_id "
        "JOIN sys.database_principals u ON u.principal_id = rm.member_principal_id "
        "WHERE u.name IN (N''dbo'', N''app_owner'', N''backup_svc'') ORDER BY u.name"
    )
    assert r.rows(f"EXEC {q(DB)}.sys.sp_executesql N'{sql}'") == [
        ("db_owner", "app_owner"),
        ("db_backupoperator", "backup_svc"),
        ("db_owner", "dbo"),
    ]
    sids = r.rows(
        f"SELECT u.sid, SUSER_SID(u.name) FROM {q(DB)}.sys.database_principals u WHERE u.name = N'app_owner'"
    )
    assert sids[0][0] == sids[0][1] and len(sids[0][0]) == 16
    owner = r.rows(f"SELECT sid FROM {q(DB)}.sys.database_principals WHERE name = N'dbo'")[0][0]
    assert owner == security.sid_of(inst, "owner_login")


def test_table_permissions_follow_the_database_roles(inst):
    backup_svc = Runner(inst, "backup_svc", PW, DB)  # a user without data roles
    for sql, permission in (
        ("SELECT COUNT(*) FROM dbo.orders", "SELECT"),
        ("INSERT INTO dbo.orders (id, customer) VALUES (900, N'x')", "INSERT"),
        ("UPDATE dbo.orders SET amount = 0", "UPDATE"),
        ("DELETE FROM dbo.orders", "DELETE"),
    ):
        error, _ = backup_svc.error(sql)
        assert (error.number, error.severity, error.message) == (
            229,
            14,
            f"The {permission} permission was denied on the object 'orders', database '{DB}', schema 'dbo'.",
        )
    app = Runner(inst, "app", PW, DB)  # db_datareader + db_datawriter
    app.run("INSERT INTO dbo.orders (id, customer) VALUES (900, N'x'); UPDATE dbo.orders SET amount = 1")
    error, _ = app.error("CREATE TABLE dbo.t (id int)")
    assert (error.number, error.message) == (262, f"CREATE TABLE permission denied in database '{DB}'.")
    error, _ = app.error("CREATE INDEX ix ON dbo.orders (amount)")
    assert error.number == 1088
    error, _ = app.error("DROP TABLE dbo.orders")
    assert error.number == 3701
    brit = Runner(inst, "brit", PW, DB)  # db_ddladmin
    brit.run("CREATE TABLE dbo.t (id int); CREATE INDEX ix ON dbo.t (id); DROP TABLE dbo.t")


def test_alter_role_add_member_grants_and_drop_member_takes_back(inst):
    """What preflight tells a DBA to run: ALTER ROLE [db_owner] ADD MEMBER in the database (db_owner needed)."""
    grant = f"USE {q(DB)}; ALTER ROLE [db_owner] ADD MEMBER [backup_svc]"
    error, _ = refusal(inst, "backup_svc", grant)
    assert error == (
        15151,
        16,
        "Cannot alter the role 'db_owner', because it does not exist or you do not have permission.",
    )
    assert refusal(inst, "backup_svc", ALTER)[0] == (5069, 16, "ALTER DATABASE statement failed.")

    as_login(inst, "app_owner").run(grant)  # a db_owner member may grant it

    as_login(inst, "backup_svc").run(ALTER)
    as_login(inst, "backup_svc").run(CHECKDB)
    as_login(inst, "sa").run(f"USE {q(DB)}; ALTER ROLE db_owner DROP MEMBER backup_svc")
    assert refusal(inst, "backup_svc", ALTER)[0][0] == 5069


def test_alter_role_refuses_unknown_roles_and_principals(inst):
    admin = as_login(inst, "sa")
    admin.run(f"USE {q(DB)}")
    error, _ = admin.error("ALTER ROLE db_nosuch ADD MEMBER app")
    assert (error.number, error.message) == (
        15151,
        "Cannot alter the role 'db_nosuch', because it does not exist or you do not have permission.",
    )
    error, _ = admin.error("ALTER ROLE db_owner DROP MEMBER outsider")  # a login without a user here
    assert (error.number, error.message) == (
        15151,
        "Cannot drop the principal 'outsider', because it does not exist or you do not have permission.",
    )
    admin.run(f"ALTER DATABASE {q(DB)} SET READ_ONLY")
    error, _ = admin.error("ALTER ROLE db_owner ADD MEMBER app")
    assert error.number == 3906


def test_alter_server_role_add_member_by_a_member_of_that_role(inst):
    """dbcreator holds CREATE ANY DATABASE (RESTORE HEADERONLY) and ALTER ANY DATABASE."""
    headers_right = "SELECT HAS_PERMS_BY_NAME(NULL, NULL, N'CREATE ANY DATABASE')"
    assert as_login(inst, "backup_svc").rows(headers_right) == [(0,)]
    error, _ = refusal(inst, "backup_svc", "ALTER SERVER ROLE [dbcreator] ADD MEMBER [backup_svc]")
    assert error == (
        15151,
        16,
        "Cannot alter the server role 'dbcreator', because it does not exist or you do not have permission.",
    )
    as_login(inst, "creator").run("ALTER SERVER ROLE dbcreator ADD MEMBER backup_svc")  # a member may add
    assert as_login(inst, "backup_svc").rows(headers_right) == [(1,)]
    as_login(inst, "sa").run("ALTER SERVER ROLE [dbcreator] DROP MEMBER [backup_svc]")
    assert as_login(inst, "backup_svc").rows(headers_right) == [(0,)]
    error, _ = as_login(inst, "sa").error("ALTER SERVER ROLE dbcreator ADD MEMBER nobody")
    assert (error.number, error.message) == (
        15151,
        "Cannot add the principal 'nobody', because it does not exist or you do not have permission.",
    )
