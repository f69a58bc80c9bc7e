"""An instance's databases across a restart: ``<data_dir>/instance.json`` beside their SQLite files.

A real SQL Server keeps its databases, its msdb history and a RESTORING database's place in its restore
sequence when the service restarts, so a migration can span a restart of the sandbox (``python -m
sandbox`` stopped and started again with the same state dir). The data and catalogs are already in each
database's SQLite file; this module keeps the rest of :class:`~sandbox.mssql.engine.database.Database`
(state flags, GUIDs and recovery forks, the transaction log not yet backed up, the backup-chain position
and the restore state) in one JSON file, written when the instance closes.

An instance that finds the file continues from it and does not seed the config's databases again (a
real server ignores its install script after the first start). The file is removed once read: after a
crash (no clean close) the next start is a fresh one, never a mix of old metadata and newer data files.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.mssql.engine.database import Database, RestoreState
from sandbox.mssql.engine.txlog import LogRecord

if TYPE_CHECKING:
    from sandbox.mssql.engine.instance import Instance

STATE_FILE = "instance.json"
FORMAT = 1
# Plain attributes of a Database saved as they are (JSON values).
_PLAIN = (
    "state",
    "user_access",
    "read_only",
    "recovery_model",
    "compatibility_level",
    "tde",
    "sku_features",
    "corrupt",
    "padding",
    "owner",
    "files",
    "database_guid",
    "family_guid",
    "recovery_fork_guid",
    "first_recovery_fork_guid",
    "log_backup_fork_guid",
    "last_full",
    "log_chain_new",
)
# LSNs: numeric(25,0) values beyond 2**64, kept as decimal strings.
_LSNS = ("fork_point_lsn", "last_log_backup_lsn", "last_checkpoint_lsn")


def state_path(data_dir: Path) -> Path:
    return Path(data_dir) / STATE_FILE


def _param(value: Any) -> Any:
    """A redo op's SQLite parameter as JSON (bytes as ``{"$hex": ...}``, like the backup format)."""
    if isinstance(value, bytes):
        return {"$hex": value.hex()}
    if isinstance(value, Decimal):
        return str(value)
    return value


def _unparam(value: Any) -> Any:
    return bytes.fromhex(value["$hex"]) if isinstance(value, dict) else value


def _lsn(value: int | None) -> str | None:
    return None if value is None else str(value)


def _database_state(db: Database) -> dict[str, Any]:
    data = {name: getattr(db, name) for name in _PLAIN}
    data.update({name: _lsn(getattr(db, name)) for name in _LSNS})
    data.update(
        name=db.name,
        database_id=db.database_id,
        file=db.path.name,
        system=db.system,
        create_date=db.create_date.isoformat(),
        restore=dataclasses.asdict(db.restore) if db.restore is not None else None,
        log={
            "next_lsn": str(db.log.next_lsn),
            "bytes_written": db.log.bytes_written,
            "records": [
                {
                    **record.to_json(),
                    "ops": [[sql, [_param(p) for p in params]] for sql, params in record.ops],
                    "size": record.size,
                }
                for record in db.log.records
            ],
        },
    )
    return data


def save(inst: Instance) -> None:
    """Write the instance's database metadata (call with no batch running, before closing the files)."""
    with inst.lock:
        databases = [_database_state(db) for db in inst.all_databases()]
    path = state_path(inst.data_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"format": FORMAT, "databases": databases}), encoding="utf-8")
    os.replace(tmp, path)


def _restore_database(data: dict[str, Any], data_dir: Path) -> Database:
    db = Database(
        data["name"], int(data["database_id"]), data_dir / data["file"], system=bool(data["system"])
    )
    for name in _PLAIN:
        setattr(db, name, data[name])
    for name in _LSNS:
        setattr(db, name, None if data[name] is None else int(data[name]))
    db.create_date = dt.datetime.fromisoformat(data["create_date"])
    db.restore = RestoreState(**data["restore"]) if data["restore"] is not None else None
    log = data["log"]
    db.log.next_lsn = int(log["next_lsn"])
    db.log.bytes_written = int(log["bytes_written"])
    for item in log["records"]:
        record = LogRecord.from_json(item)
        record.ops = [(sql, [_unparam(p) for p in params]) for sql, params in record.ops]
        record.size = int(item["size"])
        db.log.records.append(record)
    return db


def load(data_dir: Path) -> list[Database] | None:
    """The databases saved in ``data_dir`` (their files opened again), or None when nothing was saved.

    Data files the state does not name (left by a crash) are removed; the state file is removed once read.
    """
    path = state_path(data_dir)
    if not path.is_file():
        return None
    state = json.loads(path.read_text(encoding="utf-8"))
    if state.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown instance state format {state.get('format')!r}")
    kept = {item["file"] for item in state["databases"]}
    for stale in Path(data_dir).glob("db_*.sqlite*"):
        if stale.name.split("-")[0] not in kept:
            stale.unlink()
    databases = [_restore_database(item, Path(data_dir)) for item in state["databases"]]
    path.unlink()
    return databases


def file_id(db: Database) -> int:
    """The file number in a data file's name (``db_<database_id>_<file id>.sqlite``)."""
    return int(db.path.stem.rsplit("_", 1)[-1])
