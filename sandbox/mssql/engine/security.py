"""Logins, server roles, database users and roles, and the permission checks SQL Server makes.

Facts (Microsoft: "Server-level roles", "Database-level roles", the Permissions sections of BACKUP,
RESTORE, ALTER DATABASE and DBCC CHECKDB, error messages 262/916/923/3110/5011/7983):

- A login reaches a database through a database user with its SID (sysadmin members and the database
  owner enter as ``dbo``); master, msdb and tempdb let any login in as ``guest``. Otherwise: error 916.
- BACKUP DATABASE/LOG: sysadmin, db_owner or db_backupoperator (else 262, then 3013).
- ALTER DATABASE: ALTER on the database: sysadmin, dbcreator (ALTER ANY DATABASE) or db_owner (else 5011 + 5069).
- DBCC CHECKDB: sysadmin or db_owner (else 7983).
- RESTORE: sysadmin, dbcreator or the database *owner* (sys.databases.owner_sid); the db_owner role is not
  enough (else 3110, then 3013). A database that does not exist yet needs CREATE DATABASE (sysadmin, dbcreator).
- RESTRICTED_USER admits db_owner members, the owner, dbcreator and sysadmin (else 923).

Database users and their role memberships live inside the database file (``__users``, ``__role_members``),
so they travel with its backups; logins and their SIDs belong to the instance. A login's SID is derived from
the instance and login name unless the config gives one, so a database restored on another instance has
orphaned users unless the logins were created there with the same SID (as sp_help_revlogin does).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sandbox.mssql.results import SqlError

if TYPE_CHECKING:
    from sandbox.mssql.engine.database import Database
    from sandbox.mssql.engine.instance import Instance, Session

FIXED_SERVER_ROLES = {
    "public": 2,
    "sysadmin": 3,
    "securityadmin": 4,
    "serveradmin": 5,
    "setupadmin": 6,
    "processadmin": 7,
    "diskadmin": 8,
    "dbcreator": 9,
    "bulkadmin": 10,
}
FIXED_DATABASE_ROLES = {
    "db_owner": 16384,
    "db_accessadmin": 16385,
    "db_securityadmin": 16386,
    "db_ddladmin": 16387,
    "db_backupoperator": 16389,
    "db_datareader": 16390,
    "db_datawriter": 16391,
    "db_denydatareader": 16392,
    "db_denydatawriter": 16393,
}
SA_SID = b"\x01"
GUEST_SID = b"\x00"
GUEST_DATABASES = {"master", "msdb", "tempdb"}  # guest has CONNECT there by default
FIRST_LOGIN_ID = 256
FIRST_USER_ID = 5

# Database permissions each fixed role grants (db_owner has them all). Microsoft, "Database-level roles".
ROLE_PERMISSIONS = {
    "db_backupoperator": {"BACKUP DATABASE", "BACKUP LOG", "CHECKPOINT"},
    "db_datareader": {"SELECT"},
    "db_datawriter": {"INSERT", "UPDATE", "DELETE"},
    "db_ddladmin": {
        "CREATE TABLE",
        "CREATE VIEW",
        "CREATE PROCEDURE",
        "CREATE FUNCTION",
        "CREATE SCHEMA",
        "ALTER ANY SCHEMA",
        "REFERENCES",
        "CHECKPOINT",
    },
    "db_accessadmin": {"ALTER ANY USER", "CREATE SCHEMA"},
    "db_securityadmin": {"ALTER ANY ROLE", "ALTER ANY APPLICATION ROLE", "CREATE SCHEMA", "VIEW DEFINITION"},
}
DENIED_BY_ROLE = {"db_denydatareader": {"SELECT"}, "db_denydatawriter": {"INSERT", "UPDATE", "DELETE"}}
DATABASE_PERMISSIONS = set().union(*ROLE_PERMISSIONS.values()) | {
    "ALTER",
    "CONNECT",
    "CONTROL",
    "EXECUTE",
    "SHOWPLAN",
    "TAKE OWNERSHIP",
    "VIEW DATABASE STATE",
    "AUTHENTICATE",
}
OBJECT_PERMISSIONS = {"SELECT", "INSERT", "UPDATE", "DELETE", "REFERENCES", "ALTER", "CONTROL"}
# Server permissions and the fixed server roles that hold them (sysadmin holds every one).
SERVER_PERMISSIONS = {
    "CONNECT SQL": {"public"},
    "VIEW ANY DATABASE": {"public"},
    "ALTER ANY DATABASE": {"dbcreator"},
    "CREATE ANY DATABASE": {"dbcreator"},
    "VIEW SERVER STATE": {"serveradmin"},
    "ALTER SERVER STATE": {"serveradmin", "processadmin"},
    "ALTER SETTINGS": {"serveradmin"},
    "SHUTDOWN": {"serveradmin"},
    "ALTER ANY LOGIN": {"securityadmin"},
    "ALTER ANY CONNECTION": {"processadmin"},
    "ADMINISTER BULK OPERATIONS": {"bulkadmin"},
    "ALTER RESOURCES": {"diskadmin", "serveradmin"},
    "ALTER ANY LINKED SERVER": {"setupadmin"},
    "CONTROL SERVER": set(),
    "VIEW ANY DEFINITION": set(),
    "ALTER TRACE": set(),
}

USERS_DDL = [
    'CREATE TABLE IF NOT EXISTS "__users" (principal_id INTEGER PRIMARY KEY, name TEXT NOT NULL COLLATE NOCASE '
    "UNIQUE, sid BLOB, create_date TEXT NOT NULL)",
    'CREATE TABLE IF NOT EXISTS "__role_members" (role TEXT NOT NULL COLLATE NOCASE, member_id INTEGER NOT NULL, '
    "PRIMARY KEY (role, member_id))",
]


@dataclass
class Login:
    """One SQL login of the instance."""

    name: str
    password: str = field(repr=False)
    principal_id: int
    sid: bytes
    server_roles: frozenset[str] = frozenset()
    default_database: str = "master"
    default_language: str = "us_english"
    create_date: dt.datetime = field(default_factory=lambda: dt.datetime.now().replace(microsecond=0))

    @property
    def sysadmin(self) -> bool:
        return "sysadmin" in self.server_roles


def derived_sid(instance_name: str, login: str) -> bytes:
    """A stable 16-byte SID for a SQL login created on ``instance_name`` (sa is always 0x01)."""
    if login.lower() == "sa":
        return SA_SID
    return hashlib.md5(f"{instance_name.lower()}\\{login}".encode()).digest()  # noqa: S324 - an id, not a secret


# -- database users (stored in the database file) -----------------------------------------------------
def add_user(db: Database, name: str, sid: bytes, roles: list[str]) -> None:
    """CREATE USER [name] FOR LOGIN ... plus ALTER ROLE ... ADD MEMBER (config seeding)."""
    row = db.conn.execute('SELECT MAX(principal_id) FROM "__users"').fetchone()
    principal_id = max(FIRST_USER_ID, (row[0] or 0) + 1)
    now = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")[:23]
    db.conn.execute('INSERT INTO "__users" VALUES (?, ?, ?, ?)', (principal_id, name, sid, now))
    db.conn.executemany(
        'INSERT OR IGNORE INTO "__role_members" VALUES (?, ?)', [(role, principal_id) for role in roles]
    )


def alter_role_member(
    inst: Instance, session: Session, db: Database, role: str, member: str, add: bool, cancel=None
) -> None:
    """``ALTER ROLE <fixed role> ADD|DROP MEMBER <user>`` in the session's database.

    Changing a fixed database role's membership needs db_owner (sysadmin and the owner act as dbo); an
    unknown role or one the session may not change, and an unknown user, all answer 15151 (Microsoft,
    "ALTER ROLE", Permissions; texts as SQL Server words them). The change is a logged write: it travels
    with the next log backup, and a READ_ONLY database refuses it (3906).
    """
    key = role.lower()
    if key not in FIXED_DATABASE_ROLES or not is_db_owner(inst, session, db):
        raise SqlError(
            15151,
            16,
            1,
            f"Cannot alter the role '{role}', because it does not exist or you do not have permission.",
        )
    row = db.conn.execute('SELECT principal_id FROM "__users" WHERE name = ?', (member,)).fetchone()
    if row is None:
        raise SqlError(
            15151,
            16,
            1,
            f"Cannot {'add' if add else 'drop'} the principal '{member}', because it does not exist or you do not "
            "have permission.",
        )
    if add:
        op = ('INSERT OR IGNORE INTO "__role_members" VALUES (?, ?)', [key, row[0]])
    else:
        op = ('DELETE FROM "__role_members" WHERE role = ? AND member_id = ?', [key, row[0]])
    inst.write(session, db, lambda: [op], cancel)


def alter_server_role_member(inst: Instance, session: Session, role: str, member: str, add: bool) -> None:
    """``ALTER SERVER ROLE <fixed role> ADD|DROP MEMBER <login>``: a member of that role or of sysadmin may
    change it; otherwise, or for an unknown role or login, 15151 (Microsoft, "ALTER SERVER ROLE")."""
    key = role.lower()
    if (
        key not in FIXED_SERVER_ROLES
        or key == "public"
        or not {"sysadmin", key} & server_roles(inst, session)
    ):
        raise SqlError(
            15151,
            16,
            1,
            f"Cannot alter the server role '{role}', because it does not exist or you do not have permission.",
        )
    login = next((x for x in inst.logins.values() if x.name.lower() == member.lower()), None)
    if login is None:
        raise SqlError(
            15151,
            16,
            1,
            f"Cannot {'add' if add else 'drop'} the principal '{member}', because it does not exist or you do not "
            "have permission.",
        )
    login.server_roles = (login.server_roles | {key}) if add else (login.server_roles - {key})


def database_users(db: Database) -> list[tuple[int, str, bytes, str]]:
    """(principal_id, name, sid, create_date) of the users created in ``db``."""
    return db.conn.execute(
        'SELECT principal_id, name, sid, create_date FROM "__users" ORDER BY principal_id'
    ).fetchall()


def role_members(db: Database) -> list[tuple[str, int]]:
    return db.conn.execute('SELECT role, member_id FROM "__role_members" ORDER BY role, member_id').fetchall()


# -- who is who ----------------------------------------------------------------------------------------
def login_of(inst: Instance, session: Session) -> Login | None:
    return inst.logins.get(session.login)


def server_roles(inst: Instance, session: Session) -> set[str]:
    login = login_of(inst, session)
    roles = {"public"} | (set(login.server_roles) if login else set())
    if session.sysadmin:
        roles.add("sysadmin")
    return roles


def sid_of(inst: Instance, login_name: str | None) -> bytes | None:
    if login_name is None:
        return None
    login = inst.logins.get(login_name)
    if login is not None:
        return login.sid
    return SA_SID if login_name.lower() == "sa" else None


def owner_sid(inst: Instance, db: Database) -> bytes | None:
    return sid_of(inst, getattr(db, "owner", "sa"))


def is_owner(inst: Instance, session: Session, db: Database) -> bool:
    sid = sid_of(inst, session.login)
    return sid is not None and sid == owner_sid(inst, db)


def database_user(inst: Instance, session: Session, db: Database) -> tuple[int, str] | None:
    """(principal_id, user name) the session has in ``db``, or None: no access."""
    if session.sysadmin or is_owner(inst, session, db):
        return 1, "dbo"
    sid = sid_of(inst, session.login)
    if sid is not None:
        row = db.conn.execute('SELECT principal_id, name FROM "__users" WHERE sid = ?', (sid,)).fetchone()
        if row is not None:
            return row[0], row[1]
    if db.name.lower() in GUEST_DATABASES:
        return 2, "guest"
    return None


def database_roles(inst: Instance, session: Session, db: Database) -> set[str]:
    user = database_user(inst, session, db)
    if user is None:
        return set()
    return member_roles(db, user[0])


def member_roles(db: Database, principal_id: int) -> set[str]:
    if principal_id == 1:
        return {"public", "db_owner"}
    rows = db.conn.execute(
        'SELECT role FROM "__role_members" WHERE member_id = ?', (principal_id,)
    ).fetchall()
    return {"public"} | {r[0].lower() for r in rows}


def is_db_owner(inst: Instance, session: Session, db: Database) -> bool:
    return "db_owner" in database_roles(inst, session, db)


def database_permissions(inst: Instance, session: Session, db: Database) -> set[str]:
    """Effective database permissions of the session in ``db``."""
    perms: set[str] = set()
    if "dbcreator" in server_roles(inst, session):
        perms.add("ALTER")  # ALTER ANY DATABASE
    user = database_user(inst, session, db)
    if user is None:
        return perms
    roles = member_roles(db, user[0])
    if "db_owner" in roles:
        return set(DATABASE_PERMISSIONS)
    perms.add("CONNECT")
    for role in roles:
        perms |= ROLE_PERMISSIONS.get(role, set())
    for role in roles:
        perms -= DENIED_BY_ROLE.get(role, set())
    return perms


def has_server_permission(inst: Instance, session: Session, permission: str) -> bool | None:
    holders = SERVER_PERMISSIONS.get(permission.upper())
    if holders is None:
        return None
    roles = server_roles(inst, session)
    return "sysadmin" in roles or bool(roles & holders)


def may_use_restricted(inst: Instance, session: Session, db: Database) -> bool:
    """RESTRICTED_USER admits sysadmin, dbcreator, the owner and db_owner members."""
    if {"sysadmin", "dbcreator"} & server_roles(inst, session):
        return True
    return is_db_owner(inst, session, db)


# -- refusals ------------------------------------------------------------------------------------------
def check_connect(inst: Instance, session: Session, db: Database) -> None:
    if database_user(inst, session, db) is None:
        raise SqlError(
            916,
            14,
            1,
            f'The server principal "{session.login}" is not able to access the database "{db.name}" under the '
            "current security context.",
        )


def restricted_error(db: Database) -> SqlError:
    return SqlError(
        923,
        14,
        1,
        f"Database '{db.name}' is in restricted mode. Only the database owner and members of the dbcreator "
        "and sysadmin roles can access it.",
    )


def check_backup(inst: Instance, session: Session, db: Database, kind: str) -> None:
    """BACKUP DATABASE / BACKUP LOG: sysadmin, db_owner or db_backupoperator (Msg 262, Level 14)."""
    if f"BACKUP {kind}" not in database_permissions(inst, session, db):
        raise SqlError(262, 14, 1, f"BACKUP {kind} permission denied in database '{db.name}'.")


def check_alter_database(inst: Instance, session: Session, db: Database) -> None:
    if "ALTER" not in database_permissions(inst, session, db):
        raise alter_denied(db.name, state=9)


def alter_denied(name: str, state: int) -> SqlError:
    """5011: state 9 when permission is missing, 5 when the database does not exist (both seen live)."""
    return SqlError(
        5011,
        14,
        state,
        f"User does not have permission to alter database '{name}', the database does not exist, or the "
        "database is not in a state that allows access checks.",
    )


def check_checkdb(inst: Instance, session: Session, db: Database) -> None:
    if session.sysadmin or is_db_owner(inst, session, db):
        return
    user = database_user(inst, session, db)
    name = user[1] if user else "guest"
    raise SqlError(
        7983, 14, 36, f"User '{name}' does not have permission to run DBCC checkdb for database '{db.name}'."
    )


def check_restore(inst: Instance, session: Session, name: str, db: Database | None) -> None:
    """RESTORE: sysadmin, dbcreator or the owner of the existing database (the db_owner role is not enough)."""
    if {"sysadmin", "dbcreator"} & server_roles(inst, session):
        return
    if db is not None and is_owner(inst, session, db):
        return
    raise SqlError(3110, 14, 1, f"User does not have permission to RESTORE database '{name}'.")


def check_object(
    inst: Instance, session: Session, db: Database, schema: str, name: str, permission: str
) -> None:
    """SELECT/INSERT/UPDATE/DELETE on a user table (db_datareader, db_datawriter, db_owner...): else 229.

    System databases are not checked: their grants vary between installations (msdb backup history is
    read by many tools), and the engine's own tables live there.
    """
    if db.system or permission in database_permissions(inst, session, db):
        return
    raise SqlError(
        229,
        14,
        5,
        f"The {permission} permission was denied on the object '{name}', database '{db.name}', schema '{schema}'.",
    )


def check_database_permission(inst: Instance, session: Session, db: Database, permission: str) -> None:
    """CREATE TABLE, CREATE SCHEMA... in a database (db_ddladmin, db_owner): else 262."""
    if permission in database_permissions(inst, session, db):
        return
    raise SqlError(262, 14, 1, f"{permission} permission denied in database '{db.name}'.")


def check_create_database(inst: Instance, session: Session) -> None:
    if not {"sysadmin", "dbcreator"} & server_roles(inst, session):
        raise SqlError(262, 14, 1, "CREATE DATABASE permission denied in database 'master'.")


def may_drop_database(inst: Instance, session: Session, db: Database) -> bool:
    return bool({"sysadmin", "dbcreator"} & server_roles(inst, session)) or is_owner(inst, session, db)


# -- built-in functions (called as fn(inst, session, *args)) -------------------------------------------
def _current_db(inst: Instance, session: Session) -> Database | None:
    return inst.find_database(session.database)


def fn_is_srvrolemember(inst: Instance, session: Session, role, login=None):
    if role is None or str(role).lower() not in FIXED_SERVER_ROLES:
        return None
    role = str(role).lower()
    if login is None:
        return int(role in server_roles(inst, session))
    account = inst.logins.get(str(login))
    if account is None:
        return None
    return int(role == "public" or role in account.server_roles)


def fn_is_rolemember(inst: Instance, session: Session, role, principal=None):
    db = _current_db(inst, session)
    if db is None or role is None:
        return None
    role = str(role).lower()
    if role != "public" and role not in FIXED_DATABASE_ROLES:
        return None
    if principal is None:
        user = database_user(inst, session, db)
        return None if user is None else int(role in member_roles(db, user[0]))
    principal_id = _principal_id(inst, db, str(principal))
    return None if principal_id is None else int(role in member_roles(db, principal_id))


def fn_is_member(inst: Instance, session: Session, name):
    if name is None:
        return None
    return fn_is_rolemember(inst, session, name)


def fn_has_perms_by_name(inst: Instance, session: Session, securable, securable_class, permission, *_sub):
    if permission is None:
        return None
    permission = " ".join(str(permission).upper().split())
    kind = "SERVER" if securable_class is None else str(securable_class).upper()
    if kind == "SERVER":
        result = has_server_permission(inst, session, permission)
        return None if result is None else int(result)
    if kind == "DATABASE":
        if permission not in DATABASE_PERMISSIONS:
            return None
        db = inst.find_database(session.database if securable is None else str(securable))
        if db is None:
            return None
        return int(permission in database_permissions(inst, session, db))
    if kind == "OBJECT":
        return _object_permission(inst, session, securable, permission)
    return None


def _object_permission(inst: Instance, session: Session, securable, permission: str):
    from sandbox.mssql.engine.parser import Parser

    if securable is None or permission not in OBJECT_PERMISSIONS:
        return None
    try:
        parts = Parser(str(securable)).name_parts()
    except SqlError:
        return None
    db = inst.find_database(parts[-3] if len(parts) >= 3 and parts[-3] else session.database)
    if db is None or db.state != "ONLINE":
        return None
    if db.find_table(parts[-2] if len(parts) >= 2 and parts[-2] else "dbo", parts[-1]) is None:
        return None
    perms = database_permissions(inst, session, db)
    return int("CONTROL" in perms or permission in perms)


def fn_suser_sname(inst: Instance, session: Session, sid=None):
    if sid is None:
        return session.login
    sid = bytes(sid) if isinstance(sid, (bytes, bytearray, memoryview)) else None
    if sid == SA_SID:
        return "sa"
    return next((login.name for login in inst.logins.values() if login.sid == sid), None)


def fn_suser_sid(inst: Instance, session: Session, login=None):
    return sid_of(inst, session.login if login is None else str(login))


def fn_original_login(inst: Instance, session: Session):
    return session.login


def fn_user_name(inst: Instance, session: Session, principal_id=None):
    db = _current_db(inst, session)
    if db is None:
        return None
    if principal_id is None:
        user = database_user(inst, session, db)
        return None if user is None else user[1]
    return next((name for pid, name in database_principal_names(db) if pid == int(principal_id)), None)


def fn_database_principal_id(inst: Instance, session: Session, name=None):
    db = _current_db(inst, session)
    if db is None:
        return None
    if name is None:
        user = database_user(inst, session, db)
        return None if user is None else user[0]
    return _principal_id(inst, db, str(name))


def database_principal_names(db: Database) -> list[tuple[int, str]]:
    fixed = [(0, "public"), (1, "dbo"), (2, "guest"), (3, "INFORMATION_SCHEMA"), (4, "sys")]
    users = [(pid, name) for pid, name, _sid, _date in database_users(db)]
    roles = [(pid, name) for name, pid in FIXED_DATABASE_ROLES.items()]
    return fixed + users + roles


def _principal_id(inst: Instance, db: Database, name: str) -> int | None:
    return next((pid for pid, n in database_principal_names(db) if n.lower() == name.lower()), None)


BUILTINS = {
    "is_srvrolemember": fn_is_srvrolemember,
    "is_rolemember": fn_is_rolemember,
    "is_member": fn_is_member,
    "has_perms_by_name": fn_has_perms_by_name,
    "suser_sname": fn_suser_sname,
    "suser_name": fn_suser_sname,
    "system_user": fn_suser_sname,
    "suser_sid": fn_suser_sid,
    "original_login": fn_original_login,
    "user_name": fn_user_name,
    "current_user": fn_user_name,
    "session_user": fn_user_name,
    "user": fn_user_name,
    "database_principal_id": fn_database_principal_id,
}
# (name, arities) registered on SQLite connections for queries with FROM.
SQLITE_ARITIES = {
    "IS_SRVROLEMEMBER": (1, 2),
    "IS_ROLEMEMBER": (1, 2),
    "IS_MEMBER": (1,),
    "HAS_PERMS_BY_NAME": (3, 4, 5),
    "SUSER_SNAME": (0, 1),
    "SUSER_NAME": (0,),
    "SYSTEM_USER": (0,),
    "SUSER_SID": (0, 1),
    "ORIGINAL_LOGIN": (0,),
    "USER_NAME": (0, 1),
    "CURRENT_USER": (0,),
    "SESSION_USER": (0,),
    "USER": (0,),
    "DATABASE_PRINCIPAL_ID": (0, 1),
}
