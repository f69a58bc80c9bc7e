"""Fixtures: engine instances with a mapped backup folder, and a helper to run batches."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sandbox.mssql.engine import Instance
from sandbox.mssql.results import Message, ResultSet, SqlError

HOSTILE = "we]ird 'db' ü"


class Runner:
    """Runs T-SQL batches on one session and collects what the engine emits."""

    def __init__(
        self, inst: Instance, user: str = "sa", password: str = "Pa55!", database: str | None = None
    ):
        self.inst = inst
        self.session = inst.login(user, password, database)
        self.items: list = []

    def run(self, sql: str, cancel: threading.Event | None = None) -> list:
        self.items = []
        self.inst.execute(self.session, sql, self.items.append, cancel or threading.Event())
        return self.items

    def rows(self, sql: str) -> list[tuple]:
        return [r for item in self.run(sql) if isinstance(item, ResultSet) for r in item.rows]

    def result(self, sql: str) -> ResultSet:
        return next(item for item in self.run(sql) if isinstance(item, ResultSet))

    def messages(self) -> list[Message]:
        return [m for m in self.items if isinstance(m, Message)]

    def error(self, sql: str) -> tuple[SqlError, list[Message]]:
        self.items = []
        with pytest.raises(SqlError) as info:
            self.inst.execute(self.session, sql, self.items.append, threading.Event())
        return info.value, self.messages()


def make_instance(tmp_path: Path, name: str, **extra) -> Instance:
    backups = tmp_path / "backups"
    backups.mkdir(exist_ok=True)
    cfg = {
        "name": name,
        "logins": {
            "sa": {"password": "Pa55!", "sysadmin": True},
            "app": {"password": "app", "sysadmin": False},
        },
        "path_map": {"D:\\Backups": str(backups)},
        "data_dir": f"data/{name}",
    }
    cfg.update(extra)
    return Instance.from_config(cfg, tmp_path)


@pytest.fixture
def source(tmp_path: Path) -> Instance:
    return make_instance(
        tmp_path,
        "SRC",
        edition="Enterprise Edition (64-bit)",
        databases={
            HOSTILE: {
                "recovery_model": "FULL",
                "tables": [{"name": "orders", "rows": 200}],
                "users": {"app": ["db_datareader", "db_datawriter"]},
            },
        },
    )


@pytest.fixture
def target(tmp_path: Path) -> Instance:
    return make_instance(tmp_path, "RDS", edition="Standard Edition (64-bit)")
