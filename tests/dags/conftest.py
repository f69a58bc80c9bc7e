"""Fixtures for the DAG-folder tests: a config folder of one's own, and no network while parsing."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "include" / "migrations" / "examples" / "example.yaml"


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    folder = tmp_path / "migrations"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder / "prod.yaml")
    monkeypatch.setenv("MSSQL_RDS_MIGRATIONS_DIR", str(folder))
    monkeypatch.setenv("MSSQL_RDS_LAST_GOOD_DIR", str(tmp_path / "last-good"))
    monkeypatch.delenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", raising=False)
    for name in list(os.environ):
        if name.startswith("AIRFLOW_CONN_"):
            monkeypatch.delenv(name)
    return folder


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection during parsing fails the test."""

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"network access at DAG parse time: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
