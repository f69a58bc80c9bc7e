"""Instance configuration: validation with errors that name the field, and database seeding.

```yaml
name: SRC-SQL01
product_version: "15.0.4236.7"
edition: "Enterprise Edition (64-bit)"
backup_compression_algorithm: MS_XPRESS   # 16.x: or QAT_DEFLATE, what WITH COMPRESSION uses by default
data_dir: source-data
path_map: {"D:\\Backups": source-backups}
logins:
  sa:        {password: ..., sysadmin: true}
  migrator:  {password: ..., server_roles: [dbcreator], default_database: master, default_language: British}
  app_owner: {password: ..., default_database: SalesDB, sid: "0x5A3E..."}  # sid: optional, else derived
databases:
  SalesDB:
    recovery_model: FULL
    owner: sa                          # sys.databases.owner_sid; RESTORE over it needs this login
    users: {app_owner: [db_owner], backup_svc: [db_backupoperator]}   # users named like their logins
    files: {data_mb: 64, log_mb: 512, filestream_mb: 100, fulltext_mb: 10}
    user_access: MULTI_USER            # or SINGLE_USER, RESTRICTED_USER
    read_only: false
    tables: [{name: orders, rows: 1000}]
faults: {backup_fault_rate: 0.0, backup_fault_kinds: [kill, drop, drop_after_commit], seed: 7}
```
"""

from __future__ import annotations

from pathlib import Path

from sandbox.mssql.engine import history, language, security, servertime
from sandbox.mssql.engine.backup import COMPRESSION_ALGORITHMS
from sandbox.mssql.engine.database import RECOVERY_MODELS
from sandbox.mssql.engine.faults import BackupFaults

KNOWN_KEYS = {
    "name",
    "product_version",
    "edition",
    "data_dir",
    "path_map",
    "logins",
    "databases",
    "timezone",
    "empty_log_restore",
    "faults",
    "backup_compression_algorithm",
}
EMPTY_LOG_RESTORE = ("accept", "refuse")
DB_KEYS = {
    "recovery_model",
    "tde",
    "sku_features",
    "corrupt",
    "backup_padding_bytes",
    "tables",
    "user_access",
    "read_only",
    "history",
    "owner",
    "users",
    "files",
}
LOGIN_KEYS = {"password", "sysadmin", "server_roles", "default_database", "default_language", "sid"}
FILE_KEYS = {"data_mb", "log_mb", "filestream_mb", "fulltext_mb"}


def _require(cond: bool, message: str) -> None:
    if not cond:
        from sandbox.mssql.engine.instance import ConfigError

        raise ConfigError(message)


def build_instance(cls, cfg: dict, base_dir: Path, clock=None):
    _require(isinstance(cfg, dict), "config: expected a mapping")
    unknown = set(cfg) - KNOWN_KEYS
    _require(not unknown, f"config: unknown field(s) {sorted(unknown)}")
    name = cfg.get("name")
    _require(isinstance(name, str) and name != "", "name: a non-empty server name is required")
    version = str(cfg.get("product_version", "16.0.4135.4"))
    parts = version.split(".")
    _require(
        len(parts) == 4 and all(p.isdigit() for p in parts),
        f"product_version: expected four numbers like '16.0.4135.4', got {version!r}",
    )
    edition = str(cfg.get("edition", "Developer Edition (64-bit)"))
    data_dir = base_dir / str(cfg.get("data_dir", f"data/{name.replace(chr(92), '_')}"))
    path_map = cfg.get("path_map", {})
    _require(
        isinstance(path_map, dict), "path_map: expected a mapping of server path prefix -> local directory"
    )
    mapped = {str(k): (base_dir / str(v)).resolve() for k, v in path_map.items()}
    logins = _logins(cfg.get("logins"), name)
    try:
        timezone = servertime.parse_timezone(cfg.get("timezone", "UTC"))
    except ValueError as e:
        _require(False, str(e))
    empty_log = str(cfg.get("empty_log_restore", "accept")).lower()
    _require(
        empty_log in EMPTY_LOG_RESTORE,
        f"empty_log_restore: expected one of {list(EMPTY_LOG_RESTORE)}, got {cfg.get('empty_log_restore')!r}",
    )
    algorithm = str(cfg.get("backup_compression_algorithm", "MS_XPRESS")).upper()
    _require(
        algorithm in COMPRESSION_ALGORITHMS,
        f"backup_compression_algorithm: expected one of {list(COMPRESSION_ALGORITHMS)}, got "
        f"{cfg.get('backup_compression_algorithm')!r}",
    )
    _require(
        algorithm == "MS_XPRESS" or int(parts[0]) >= 16,
        f"backup_compression_algorithm: {algorithm} needs SQL Server 2022 (16.x); product_version is {version}",
    )
    inst = cls(name, version, edition, data_dir, mapped, logins, clock=clock, timezone=timezone)
    inst.empty_log_restore = empty_log
    try:
        inst.faults = BackupFaults.from_config(cfg.get("faults"))
    except ValueError as e:
        _require(False, str(e))
    inst.backup_compression_algorithm = algorithm
    if inst.restarted:  # the databases of the last run (sandbox.mssql.engine.persist), not the config's
        return inst
    databases = cfg.get("databases") or {}
    _require(isinstance(databases, dict), "databases: expected a mapping of database name -> settings")
    histories = []
    for db_name, spec in databases.items():
        _seed_database(inst, str(db_name), spec or {})
        if (spec or {}).get("history") is not None:
            histories.append((str(db_name), history.parse(spec["history"], f"databases.{db_name}.history")))
    for db_name, plan in histories:  # after every database exists: a job backs up what is there
        if plan is not None:
            history.seed(inst, db_name, plan)
    return inst  # a default_database that does not exist is legal: such a login fails with 4064


def _logins(cfg, instance_name: str) -> dict[str, security.Login]:
    """``logins: {name: {password, sysadmin, server_roles, default_database, default_language, sid}}``."""
    _require(
        isinstance(cfg, dict) and cfg,
        "logins: at least one login {name: {password, sysadmin}} is needed",
    )
    logins: dict[str, security.Login] = {}
    next_id = security.FIRST_LOGIN_ID
    for name, spec in cfg.items():
        where = f"logins.{name}"
        _require(isinstance(spec, dict), f"{where}: expected a mapping")
        unknown = set(spec) - LOGIN_KEYS
        _require(not unknown, f"{where}: unknown field(s) {sorted(unknown)}")
        _require(isinstance(spec.get("password"), str), f"{where}.password: a string password is required")
        _require(isinstance(spec.get("sysadmin", False), bool), f"{where}.sysadmin: expected true or false")
        roles = spec.get("server_roles", []) or []
        _require(isinstance(roles, list), f"{where}.server_roles: expected a list of fixed server roles")
        for role in roles:
            _require(
                str(role).lower() in security.FIXED_SERVER_ROLES,
                f"{where}.server_roles: unknown server role {role!r}; known: {sorted(security.FIXED_SERVER_ROLES)}",
            )
        roles = {str(r).lower() for r in roles} | ({"sysadmin"} if spec.get("sysadmin") else set())
        lang = language.find_language(spec.get("default_language", "us_english"))
        _require(
            lang is not None,
            f"{where}.default_language: unknown language {spec.get('default_language')!r}; use a "
            "sys.syslanguages name or alias such as us_english, British, Deutsch",
        )
        default_db = spec.get("default_database", "master")
        _require(
            isinstance(default_db, str) and default_db != "", f"{where}.default_database: a database name"
        )
        sid = _sid(spec.get("sid"), f"{where}.sid") or security.derived_sid(instance_name, str(name))
        _require(
            all(other.sid != sid for other in logins.values()), f"{where}.sid: another login has this SID"
        )
        principal_id = 1 if str(name).lower() == "sa" else next_id
        next_id += principal_id != 1
        logins[str(name)] = security.Login(
            str(name), spec["password"], principal_id, sid, frozenset(roles), default_db, lang.name
        )
    return logins


def _sid(value, where: str) -> bytes | None:
    if value is None:
        return None
    text = str(value)
    try:
        sid = bytes.fromhex(text[2:] if text.lower().startswith("0x") else text)
    except ValueError:
        sid = b""
    _require(1 <= len(sid) <= 85, f"{where}: expected a hex SID like 0x1F2E... (1 to 85 bytes)")
    return sid


def _seed_database(inst, name: str, spec: dict) -> None:
    where = f"databases.{name}"
    _require(isinstance(spec, dict), f"{where}: expected a mapping")
    unknown = set(spec) - DB_KEYS
    _require(not unknown, f"{where}: unknown field(s) {sorted(unknown)}")
    model = str(spec.get("recovery_model", "FULL")).upper()
    _require(model in RECOVERY_MODELS, f"{where}.recovery_model: expected FULL, SIMPLE or BULK_LOGGED")
    db = inst.create_database(name)
    db.recovery_model = model
    db.tde = bool(spec.get("tde", False))
    features = spec.get("sku_features", [])
    _require(isinstance(features, list), f"{where}.sku_features: expected a list of feature names")
    db.sku_features = [str(f) for f in features]
    db.corrupt = bool(spec.get("corrupt", False))
    padding = spec.get("backup_padding_bytes", {}) or {}
    _require(
        isinstance(padding, dict) and set(padding) <= {"full", "log"},
        f"{where}.backup_padding_bytes: expected {{full: bytes, log: bytes}}",
    )
    inst.set_backup_padding(
        name, full_bytes=int(padding.get("full", 0)), log_bytes=int(padding.get("log", 0))
    )
    for index, table in enumerate(spec.get("tables", []) or []):
        _require(
            isinstance(table, dict) and isinstance(table.get("name"), str),
            f"{where}.tables[{index}].name: a table name is required",
        )
        _seed_table(inst, db, table, f"{where}.tables[{index}]")
    access = str(spec.get("user_access", "MULTI_USER")).upper()
    _require(
        access in ("MULTI_USER", "SINGLE_USER", "RESTRICTED_USER"), f"{where}.user_access: invalid value"
    )
    db.user_access = access
    db.read_only = bool(spec.get("read_only", False))
    _seed_security(inst, db, spec, where)
    db.files = _files(spec.get("files"), f"{where}.files")


def _seed_security(inst, db, spec: dict, where: str) -> None:
    """``owner: login`` and ``users: {login: [roles]}`` (each user has its login's name and SID)."""
    owner = spec.get("owner", "sa")
    _require(
        isinstance(owner, str) and (owner in inst.logins or owner.lower() == "sa"),
        f"{where}.owner: no login named {owner!r}",
    )
    db.owner = owner
    users = spec.get("users", {}) or {}
    _require(isinstance(users, dict), f"{where}.users: expected a mapping of login name -> list of roles")
    for user, roles in users.items():
        login = inst.logins.get(str(user))
        _require(login is not None, f"{where}.users.{user}: no login named {user!r} (users map to logins)")
        _require(login.name != owner, f"{where}.users.{user}: the owner is dbo already and needs no user")
        roles = roles or []
        _require(isinstance(roles, list), f"{where}.users.{user}: expected a list of database roles")
        for role in roles:
            _require(
                str(role).lower() in security.FIXED_DATABASE_ROLES,
                f"{where}.users.{user}: unknown database role {role!r}; "
                f"known: {sorted(security.FIXED_DATABASE_ROLES)}",
            )
        security.add_user(db, login.name, login.sid, [str(r).lower() for r in roles])


def _files(spec, where: str) -> dict[str, int]:
    """``files: {data_mb, log_mb, filestream_mb, fulltext_mb}``: allocated sizes (data/log grow past theirs)."""
    spec = spec or {}
    _require(isinstance(spec, dict), f"{where}: expected a mapping like {{log_mb: 512, filestream_mb: 100}}")
    unknown = set(spec) - FILE_KEYS
    _require(not unknown, f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(FILE_KEYS)}")
    for key, value in spec.items():
        _require(
            isinstance(value, int) and not isinstance(value, bool) and value >= 0,
            f"{where}.{key}: expected a whole number of MB >= 0",
        )
    return dict(spec)


SEED_COLUMNS = (
    "id int NOT NULL PRIMARY KEY, customer nvarchar(100) NOT NULL, amount decimal(12,2), created datetime2"
)


def _seed_table(inst, db, table: dict, where: str) -> None:
    """Create ``schema.name`` with the standard seed columns (or ``columns``) and ``rows`` generated rows."""
    from sandbox.mssql.engine.admin import run_admin_sql
    from sandbox.mssql.engine.lexer import quote_ident

    schema = str(table.get("schema", "dbo"))
    rows = table.get("rows", 0)
    _require(isinstance(rows, int) and rows >= 0, f"{where}.rows: expected a non-negative integer")
    columns = str(table.get("columns", SEED_COLUMNS))
    full = f"{quote_ident(db.name)}.{quote_ident(schema)}.{quote_ident(table['name'])}"
    if db.schema_id(schema) is None:
        run_admin_sql(inst, db.name, f"CREATE SCHEMA {quote_ident(schema)}")
    run_admin_sql(inst, db.name, f"CREATE TABLE {full} ({columns})")
    if rows and "columns" not in table:
        info = db.find_table(schema, table["name"])
        values = [
            (
                i,
                f"customer {i % 997} é",
                f"{(i * 37) % 100000 / 100:.2f}",
                f"2024-01-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:00.0000000",
            )
            for i in range(1, rows + 1)
        ]
        db.conn.execute("BEGIN")
        db.conn.executemany(f'INSERT INTO "{info.sqlite_name}" VALUES (?, ?, ?, ?)', values)
        db.conn.execute("COMMIT")
