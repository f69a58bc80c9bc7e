"""``python -m sandbox up`` / ``down`` round trip on the default topology (ports from the OS)."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pymssql
import pytest
import yaml
from alibabacloud_rds20140815 import models as rds_models
from alibabacloud_rds20140815.client import Client
from alibabacloud_tea_openapi.models import Config

from sandbox.stack import DEFAULT_CONFIG

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def sandbox_env(monkeypatch) -> dict:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _sandbox(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _connections(stdout: str) -> dict[str, dict]:
    found = {}
    for line in stdout.splitlines():
        if line.startswith("export AIRFLOW_CONN_"):
            name, _, value = line.removeprefix("export AIRFLOW_CONN_").partition("=")
            found[name.lower()] = json.loads(shlex.split(value)[0])
    return found


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _process_gone(pid: int) -> bool:
    """Exited (a zombie waiting for its new parent to reap it counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def test_up_status_down_round_trip(tmp_path, sandbox_env):
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    for section in ("source", "target", "oss", "rds"):
        config[section]["port"] = 0
    config["workload"]["rate"] = 2
    config_path = tmp_path / "sandbox.yaml"
    config_path.write_text(yaml.safe_dump(config))
    state_dir = tmp_path / "state"

    up = _sandbox(sandbox_env, "up", "--config", str(config_path), "--state-dir", str(state_dir))
    try:
        assert up.returncode == 0, up.stderr + (state_dir / "sandbox.log").read_text()
        pid = int((state_dir / "sandbox.pid").read_text())
        connections = _connections(up.stdout)
        assert set(connections) == {"mssql_source", "mssql_target", "oss_migration", "rds_migration"}
        ports = json.loads((state_dir / "connections.json").read_text())["ports"]
        assert all(_answers(port) for port in ports.values())
        assert (state_dir / "env").read_text().count("export AIRFLOW_CONN_") == 4

        source = connections["mssql_source"]
        with pymssql.connect(
            server=source["host"],
            port=source["port"],
            user=source["login"],
            password=source["password"],
            database="master",
            tds_version=source["extra"]["tds_version"],
        ) as conn:
            cursor = conn.cursor()
            cursor.execute("SELECT name FROM sys.databases WHERE name = 'SalesDB'")
            assert cursor.fetchall() == [("SalesDB",)]

        rds = connections["rds_migration"]["extra"]
        client = Client(
            Config(
                access_key_id=rds["access_key_id"],
                access_key_secret=rds["access_key_secret"],
                endpoint=rds["endpoint"],
                protocol=rds["protocol"],
                region_id=rds["region"],
            )
        )
        body = client.describe_dbinstance_attribute(
            rds_models.DescribeDBInstanceAttributeRequest(dbinstance_id=config["rds"]["instance_id"])
        ).body
        assert body.items.dbinstance_attribute[0].engine == "SQLServer"

        status = _sandbox(sandbox_env, "status", "--state-dir", str(state_dir))
        assert status.returncode == 0 and "running" in status.stdout
    finally:
        down = _sandbox(sandbox_env, "down", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr
    assert not (state_dir / "sandbox.pid").exists()
    assert _process_gone(pid)
    assert not any(_answers(port) for port in ports.values())
    assert _sandbox(sandbox_env, "status", "--state-dir", str(state_dir)).returncode == 1
