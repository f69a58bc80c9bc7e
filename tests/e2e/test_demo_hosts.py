"""The distributed demo's building blocks: host views, routing verdicts, the Celery environment.

The host views are what make "the default worker does not see the backup folder" real: these tests run
the project's own upload step on a host without the share and see it fail the way it would on a
machine that does not mount it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tools import celery_demo, demo
from tools.hosts import Host
from tools.services import Postgres, Redis, RunAs, ServiceError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def share(tmp_path) -> Path:
    folder = tmp_path / "share" / "Sales DB's [backups]"  # names with spaces and quotes survive
    folder.mkdir(parents=True)
    (folder / "Sales_FULL_1.bak").write_bytes(b"backup")
    return folder


def test_backup_host_sees_the_share_and_a_default_worker_does_not(share):
    assert Host("backup-host").sees(share) is True
    assert Host("worker-1", share.parent).sees(share) is False
    assert share.is_dir()  # covering the share in a host's namespace leaves ours untouched


def test_each_host_has_its_own_host_name(tmp_path):
    command = Host("backup-host", tmp_path).command(
        [sys.executable, "-c", "import socket; print(socket.gethostname())"]
    )
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "backup-host"


def test_an_upload_on_a_host_without_the_share_fails_as_misrouted(share):
    """The project's own upload step, run on a host that does not mount the share."""
    spec = {
        "name": "sales",
        "source": {"mssql_conn_id": "mssql_source", "database": "Sales"},
        "target": {
            "rds_conn_id": "rds",
            "instance_id": "rm-x",
            "region": "cn-hangzhou",
            "mssql_conn_id": "t",
        },
        "oss": {"oss_conn_id": "oss", "bucket": "migration-bucket", "prefix": "p/"},
        "backup_folder": {"server_path": "D:\\Backups", "worker_path": str(share)},
    }
    script = f"""
import sys
from operators.steps import MigrationSteps
from rds_migration.chain import BackupRecord, BackupType
from rds_migration.config import MigrationSpec
spec = MigrationSpec(**{spec!r})
from uuid import uuid4
guids = [str(uuid4()) for _ in range(3)]
record = BackupRecord("Sales_FULL_1.bak", BackupType.FULL, 1, 2, 1, None, *guids)
try:
    MigrationSteps(spec).upload(record)
except FileNotFoundError as exc:
    print(exc)
    sys.exit(7)
"""
    env_path = f"{REPO / 'plugins'}:{REPO}"
    command = Host("worker-1", share.parent).command(
        ["env", f"PYTHONPATH={env_path}", sys.executable, "-c", script]
    )
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)
    assert result.returncode == 7, result.stderr[-3000:]
    assert "is not visible to this worker" in result.stdout
    assert "route this task to a worker that sees the folder (queue)" in result.stdout


def row(task_id: str, routed: bool, hostname: str | None) -> dict:
    return {"task_id": task_id, "reads_backup_folder": routed, "hostname": hostname}


def test_routing_verdicts():
    good = [
        row("upload_full", True, "backup-host"),
        row("freeze_source", False, "worker-1"),
        row("rollback", False, None),
    ]
    assert celery_demo.routing_problems(good) == []
    misrouted = [row("upload_full", True, "worker-1"), row("freeze_source", False, "worker-1")]
    assert celery_demo.routing_problems(misrouted) == [
        "upload_full ran on 'worker-1', expected 'backup-host'"
    ]
    stray = [row("upload_full", True, "backup-host"), row("freeze_source", False, "backup-host")]
    assert celery_demo.routing_problems(stray) == ["freeze_source ran on 'backup-host', expected 'worker-1'"]
    nothing_routed = [row("upload_full", False, "worker-1")]
    assert "no task routed" in celery_demo.routing_problems(nothing_routed)[0]


def test_config_routes_the_backup_readers(tmp_path):
    from rds_migration.config import load_config_dir

    path = demo.write_migration_config(tmp_path, None, queue=celery_demo.QUEUE)
    assert yaml.safe_load(path.read_text())["databases"][demo.ENTRY]["queue"] == "salesdb-backups"
    spec = load_config_dir(path.parent).migrations[demo.ENTRY]
    assert spec.queue == celery_demo.QUEUE
    assert spec.backup_folder.worker_path == str(celery_demo.worker_path(tmp_path))


def test_celery_env(tmp_path):
    (tmp_path / "airflow").mkdir()
    setup = demo.airflow_env(tmp_path, {}, 18080)
    run_as = RunAs(None, 0, 0)
    postgres = Postgres(tmp_path / "pg", 5999, run_as, tmp_path, password="p@ss/word")
    redis = Redis(tmp_path / "redis", 6999, run_as, password="r:pw")
    env = celery_demo.celery_env(setup, postgres, redis)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == (
        "postgresql+psycopg2://airflow:p%40ss%2Fword@127.0.0.1:5999/airflow"
    )
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://:r%3Apw@127.0.0.1:6999/0"
    assert env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == "socket.gethostname"
    assert env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] == "default"
    assert setup.env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"  # the embedded demo's env is untouched


def test_services_refuse_an_untraversable_folder(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    run_as = RunAs("postgres", 65534, 65534)
    monkeypatch.setattr("os.chown", lambda *a: None)
    with pytest.raises(ServiceError, match="not traversable by postgres"):
        run_as.own(locked / "postgres")
