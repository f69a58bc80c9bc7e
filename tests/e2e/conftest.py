"""Shared e2e fixtures: the whole sandbox on a background event loop, specs, and an Airflow metadata DB.

- ``start_sandbox(config, state_dir)`` (``sandbox.background``) runs every stand-in (source and target
  SQL Server, OSS, RDS OpenAPI, optional write workload) on an asyncio loop in a daemon thread.
- ``sandbox_factory`` starts fresh sandboxes for one test and points ``AIRFLOW_CONN_*`` at the last one.
- ``airflow_metadata_db`` (session) creates the metadata DB in the isolated AIRFLOW_HOME
  (tests/conftest.py); ``airflow_db`` (module) makes the repo's ``dags/`` the DAG bundle, reading
  migration configs from a temporary folder, so ``dag.test()`` runs the real DAG file.
- ``keep_defer_kwargs`` works around an Airflow 3.3.2 ``dag.test()`` bug (see its docstring).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.background import RunningSandbox, start_sandbox
from sandbox.stack import DEFAULT_CONFIG

REPO = Path(__file__).resolve().parents[2]
DATABASE = "SalesDB"


def sandbox_config(workload_rate: float = 20) -> dict[str, Any]:
    """The demo sandbox config with free ports; ``workload_rate=0`` disables the write workload."""
    config = yaml.safe_load(Path(DEFAULT_CONFIG).read_text())
    for section in ("source", "target", "oss", "rds"):
        config[section]["port"] = 0
    if workload_rate:
        config["workload"]["rate"] = workload_rate
    else:
        config["workload"]["enabled"] = False
    return config


def set_connections(mp: pytest.MonkeyPatch, running: RunningSandbox) -> None:
    for conn_id, conn in running.connections().items():
        mp.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def make_spec(state_dir: Path, name: str, database: str = DATABASE, **overrides: Any):
    """A MigrationSpec for ``database`` on the sandbox in ``state_dir``; ``overrides`` are merged in."""
    from rds_migration.config import MigrationSpec, deep_merge

    worker_folder = state_dir / "source-backups" / database
    worker_folder.mkdir(parents=True, exist_ok=True)
    settings = {
        "name": name,
        "source": {"mssql_conn_id": "mssql_source", "database": database},
        "target": {
            "rds_conn_id": "rds_migration",
            "instance_id": "rm-sandbox0001",
            "region": "cn-hangzhou",
            "mssql_conn_id": "mssql_target",
        },
        "oss": {"oss_conn_id": "oss_migration", "bucket": "migration-sandbox", "prefix": f"e2e/{name}/"},
        "backup_folder": {"server_path": f"D:\\Backups\\{database}", "worker_path": str(worker_folder)},
        "log_shipping": {"interval_minutes": 1},
        "cutover_threshold_mb": 50,
        # The import quota's window scaled down like every other sandbox timing (a day -> 18 s): the
        # planner then paces imports about a second apart instead of 80 minutes.
        "import_quota": {"window_hours": 0.005},
        "owner": "e2e",
    }
    return MigrationSpec(**deep_merge(settings, overrides))


# ---------------------------------------------------------------------------------------------------
# The operator-level test's fixtures (one sandbox for the module)
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("sandbox")
    running = start_sandbox(sandbox_config(), state_dir)
    yield running.sandbox, state_dir
    running.stop()


@pytest.fixture(scope="module")
def spec(stack):
    sandbox, state_dir = stack
    mp = pytest.MonkeyPatch()
    for conn_id, conn in sandbox.connections().items():
        mp.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    yield make_spec(state_dir, "salesdb")
    mp.undo()


# ---------------------------------------------------------------------------------------------------
# DAG-level fixtures
# ---------------------------------------------------------------------------------------------------


@pytest.fixture
def sandbox_factory(tmp_path, monkeypatch) -> Iterator[Callable[..., RunningSandbox]]:
    """Start a fresh sandbox (optionally with a changed config); connections point at the last one."""
    started: list[RunningSandbox] = []

    def start(config: dict[str, Any] | None = None, name: str = "sandbox") -> RunningSandbox:
        running = start_sandbox(copy.deepcopy(config or sandbox_config()), tmp_path / name)
        started.append(running)
        set_connections(monkeypatch, running)
        return running

    yield start
    for running in reversed(started):
        running.stop()


@dataclass
class AirflowEnv:
    """Where the e2e DAG configs go; ``dags(spec)`` writes the entry and builds its DAGs."""

    config_dir: Path

    def dags(self, spec) -> dict[str, Any]:
        """Write ``spec`` as a YAML entry (the DAG file reads it when dag.test() syncs the bundle) and
        return the DAGs the factory builds for it, by dag_id, with short waits for the sandbox."""
        from dags.mssql_to_rds import build_log_shipping_dag, build_migration_dag
        from rds_migration.config import load_config

        document = {"databases": {spec.name: spec.model_dump(mode="json", exclude={"name"})}}
        path = self.config_dir / f"{spec.name}.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        loaded = load_config(path)
        assert not loaded.errors, loaded.errors
        assert loaded.migrations[spec.name] == spec
        dags = {}
        builders = [build_migration_dag] + ([build_log_shipping_dag] if spec.log_shipping.schedule else [])
        for build in builders:
            dag = build(spec)
            dags[dag.dag_id] = dag
        for dag in dags.values():
            speed_up(dag)
        return dags


def speed_up(dag: Any, poll_interval: float = 0.2) -> None:
    """Sandbox timings: poll RDS often and pause briefly between log-shipping cycles.

    The in-memory task objects are what ``dag.test()`` executes, so this changes nothing in the DAG's
    structure (the copy in the metadata DB comes from the same YAML).
    """
    from datetime import timedelta

    for task in dag.tasks:
        if hasattr(task, "poll_interval"):
            task.poll_interval = poll_interval
        if hasattr(task, "interval") and isinstance(task.interval, timedelta):
            task.interval = timedelta(seconds=1)


@pytest.fixture
def keep_defer_kwargs(monkeypatch):
    """Make ``dag.test()`` resume deferred tasks with the kwargs they passed to ``defer()``.

    Airflow 3.3.2's ``dag.test()`` replaces a resumed task's ``next_kwargs`` with just the trigger
    event (fixed upstream by apache/airflow#69942); the triggerer of a real deployment merges the
    event into them (``airflow.models.trigger.handle_event_submit``). The log-shipping loop keeps its
    cycle state in those kwargs, so the tests merge them back the way the triggerer does.
    """
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import _decode_next_kwargs
    from airflow.sdk.execution_time import supervisor
    from airflow.sdk.execution_time.comms import DeferTask
    from airflow.sdk.serde import deserialize, serialize
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    original = supervisor.run_task_in_process
    deferred_kwargs: dict[str, Any] = {}

    def run_task_in_process(ti, task):
        stored = deferred_kwargs.pop(str(ti.id), None)
        if stored is not None:
            with create_session() as session:
                row = session.get(TaskInstance, ti.id)
                current = row.next_kwargs
                if isinstance(current, dict) and set(current) == {"event"}:
                    merged = _decode_next_kwargs(stored)
                    merged["event"] = deserialize(current["event"])
                    row.next_kwargs = serialize(merged)
        result = original(ti=ti, task=task)
        if (
            isinstance(result.msg, DeferTask)
            and result.ti.state == TaskInstanceState.DEFERRED
            and result.msg.next_kwargs
        ):
            deferred_kwargs[str(ti.id)] = result.msg.next_kwargs
        return result

    monkeypatch.setattr(supervisor, "run_task_in_process", run_task_in_process)


@pytest.fixture(scope="session")
def airflow_metadata_db() -> None:
    """The metadata DB (SQLite) in the isolated AIRFLOW_HOME, created once (``airflow db migrate``)."""
    from airflow.utils.db import initdb

    initdb()


@pytest.fixture(scope="module")
def airflow_db(airflow_metadata_db, tmp_path_factory) -> Iterator[AirflowEnv]:
    """The repo's dags/ as the DAG bundle, reading migration configs from a temporary folder.

    Module-scoped: the environment is restored when the module's tests are done.
    """
    mp = pytest.MonkeyPatch()
    config_dir = tmp_path_factory.mktemp("migrations")
    mp.setenv("MSSQL_RDS_MIGRATIONS_DIR", str(config_dir))
    mp.setenv(
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST",
        json.dumps(
            [
                {
                    "name": "dags-folder",
                    "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {"path": str(REPO / "dags")},
                }
            ]
        ),
    )
    yield AirflowEnv(config_dir)
    mp.undo()
