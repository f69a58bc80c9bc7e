"""An instance with the logins, owners and database users the rights and freeze tests need."""

from __future__ import annotations

from pathlib import Path

from sandbox.mssql.engine import Instance

DB = "Sales ]'ü"  # a hostile name on purpose
PW = "Pw'd]1"
LOGINS = {
    "sa": {"password": PW, "sysadmin": True},
    "app": {"password": PW},  # reader/writer: RESTRICTED_USER locks it out
    "app_owner": {"password": PW, "default_database": DB},  # db_owner role member
    "backup_svc": {"password": PW},  # db_backupoperator
    "creator": {"password": PW, "server_roles": ["dbcreator"]},
    "owner_login": {"password": PW},  # sys.databases.owner_sid of DB
    "outsider": {"password": PW},  # no user in DB
    "brit": {"password": PW, "default_language": "British"},
    "app_default": {"password": PW, "default_database": DB},  # plain user whose default database is DB
    "ghost": {"password": PW, "default_database": "Gone"},  # default database that does not exist
}
DATABASE = {
    "recovery_model": "FULL",
    "owner": "owner_login",
    "users": {
        "app": ["db_datareader", "db_datawriter"],
        "app_owner": ["db_owner"],
        "backup_svc": ["db_backupoperator"],
        "brit": ["db_datareader", "db_datawriter", "db_ddladmin"],
        "app_default": ["db_datareader", "db_datawriter"],
    },
    "tables": [{"name": "orders", "rows": 20}],
}


def q(name: str) -> str:
    return "[" + name.replace("]", "]]") + "]"


def lit(value: str) -> str:
    return "N'" + value.replace("'", "''") + "'"


def secure_instance(tmp_path: Path, name: str = "SEC", seed_tables: bool = True) -> Instance:
    """Logins above, database DB (with a seeded ``dbo.orders`` unless ``seed_tables`` is false); backups
    under ``tmp_path/backups`` as ``D:\\Backups\\...``."""
    backups = tmp_path / "backups"
    backups.mkdir(exist_ok=True)
    database = dict(DATABASE) if seed_tables else {k: v for k, v in DATABASE.items() if k != "tables"}
    cfg = {
        "name": name,
        "logins": LOGINS,
        "databases": {DB: database},
        "path_map": {"D:\\Backups": str(backups)},
        "data_dir": f"data/{name}",
    }
    return Instance.from_config(cfg, tmp_path)
