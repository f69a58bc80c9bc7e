"""``make demo``'s building blocks, without starting anything (the demo itself runs in ``make demo``).

The config it writes is a valid migration for the sandbox and builds both DAGs; the Airflow
environment it gives the components is complete and consistent; it never wipes a folder it did not
create.
"""

from __future__ import annotations

import json

import pytest
from airflow.dag_processing.dagbag import DagBag

from tools import demo

CONNECTIONS = {
    "mssql_source": {"conn_type": "mssql", "host": "127.0.0.1", "port": 1},
    "oss_migration": {"conn_type": "oss", "extra": {"region": "cn-hangzhou"}},
}


def test_migration_config_is_valid_and_builds_both_dags(tmp_path, monkeypatch):
    from rds_migration.config import load_config_dir

    path = demo.write_migration_config(tmp_path, "*/2 * * * *")
    loaded = load_config_dir(path.parent)
    assert loaded.errors == []
    spec = loaded.migrations[demo.ENTRY]
    assert spec.pool == demo.POOL
    assert spec.retries == 2 and spec.log_shipping.interval_minutes == 1
    worker = tmp_path / "sandbox" / "source-backups" / demo.DATABASE
    assert spec.backup_folder.worker_path == str(worker) and worker.is_dir()

    monkeypatch.setenv("MSSQL_RDS_MIGRATIONS_DIR", str(path.parent))
    bag = DagBag(dag_folder=str(demo.REPO / "dags"), safe_mode=False)
    assert bag.import_errors == {}
    assert {demo.DAG_ID, demo.LOG_SHIPPING_DAG_ID} <= set(bag.dag_ids)
    assert "approve_cutover" in bag.dags[demo.DAG_ID].task_ids


def test_no_log_shipping_dag_without_schedule(tmp_path):
    from rds_migration.config import load_config_dir

    path = demo.write_migration_config(tmp_path, None)
    assert load_config_dir(path.parent).migrations[demo.ENTRY].log_shipping.schedule is None


def test_airflow_env_is_complete(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")  # the caller's settings never leak in
    (tmp_path / "airflow").mkdir()
    setup = demo.airflow_env(tmp_path, CONNECTIONS, 18080)
    env = setup.env
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite:////")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(demo.REPO / "dags")
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(demo.REPO / "plugins")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18080/execution/"
    assert env["MSSQL_RDS_MIGRATIONS_DIR"] == str(tmp_path / "migrations")
    assert json.loads(env["AIRFLOW_CONN_MSSQL_SOURCE"]) == CONNECTIONS["mssql_source"]
    assert json.loads(env["AIRFLOW_CONN_OSS_MIGRATION"]) == CONNECTIONS["oss_migration"]
    passwords = json.loads((tmp_path / "airflow" / "simple_auth_manager_passwords.json").read_text())
    assert set(passwords) == {demo.UI_USER, demo.POOL_READER} and passwords[demo.UI_USER] == setup.password
    api = json.loads(env["AIRFLOW_CONN_AIRFLOW_API"])  # preflight checks the pool with the read-only user
    assert api["login"] == demo.POOL_READER and api["password"] == passwords[demo.POOL_READER]
    assert (
        env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == f"{demo.UI_USER}:admin,{demo.POOL_READER}:viewer"
    )


def test_refuses_to_wipe_a_foreign_folder(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(SystemExit, match="not created by the demo"):
        demo.prepare_demo_dir(tmp_path)
    assert (tmp_path / "precious.txt").exists()


def test_wipes_its_own_folder(tmp_path):
    demo.prepare_demo_dir(tmp_path)
    (tmp_path / "logs" / "old.log").write_text("old")
    demo.prepare_demo_dir(tmp_path)
    assert not (tmp_path / "logs" / "old.log").exists()
    assert (tmp_path / demo.MARKER).exists()


def test_phase_spans_and_downtime():
    tis = {
        "catch_up": {"start_date": "2026-01-01T00:00:00+00:00", "end_date": "2026-01-01T00:00:01+00:00"},
        "cutover": {"start_date": "2026-01-01T00:00:20+00:00", "end_date": "2026-01-01T00:00:42+00:00"},
    }
    assert demo._span(tis, "catch_up", "cutover") == 42.0
    assert demo._span(tis, "catch_up", "validate") is None
