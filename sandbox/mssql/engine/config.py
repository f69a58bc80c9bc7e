"""Instance configuration: validation with errors that name the field, and database seeding."""

from __future__ import annotations

from pathlib import Path

from sandbox.mssql.engine import history, servertime
from sandbox.mssql.engine.database import RECOVERY_MODELS

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
}


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
    logins = cfg.get("logins")
    _require(
        isinstance(logins, dict) and logins,
        "logins: at least one login {name: {password, sysadmin}} is needed",
    )
    for login, spec in logins.items():
        _require(
            isinstance(spec, dict) and isinstance(spec.get("password"), str),
            f"logins.{login}.password: a string password is required",
        )
    try:
        timezone = servertime.parse_timezone(cfg.get("timezone", "UTC"))
    except ValueError as e:
        _require(False, str(e))
    empty_log = str(cfg.get("empty_log_restore", "accept")).lower()
    _require(
        empty_log in EMPTY_LOG_RESTORE,
        f"empty_log_restore: expected one of {list(EMPTY_LOG_RESTORE)}, got {cfg.get('empty_log_restore')!r}",
    )
    inst = cls(
        name,
        version,
        edition,
        data_dir,
        mapped,
        {k: dict(v) for k, v in logins.items()},
        clock=clock,
        timezone=timezone,
    )
    inst.empty_log_restore = empty_log
    histories = []
    for db_name, spec in (cfg.get("databases") or {}).items():
        _seed_database(inst, str(db_name), spec or {})
        if (spec or {}).get("history") is not None:
            histories.append((str(db_name), history.parse(spec["history"], f"databases.{db_name}.history")))
    for db_name, plan in histories:  # after every database exists: a job backs up what is there
        if plan is not None:
            history.seed(inst, db_name, plan)
    return inst


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
