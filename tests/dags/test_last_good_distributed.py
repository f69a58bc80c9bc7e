"""The dag-processor and a worker on different machines, through Airflow's own parsing and task machinery.

The dag-processor's parse runs in Airflow's ``DagFileProcessorProcess`` (a forked child talking to the
in-process Execution API, as ``airflow dag-processor`` does) and is stored with Airflow's own
``update_dag_parsing_results_in_db``; the worker runs a task with ``supervise_task`` (the task runner
parses the DAG file for that one dag_id, as on a Celery or Kubernetes worker). Each side has its own
``MSSQL_RDS_LAST_GOOD_DIR``: the worker's is empty, as on a machine that never parsed a good config.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog

from tests.dags.conftest import EXAMPLE, REPO

BUNDLE = "dags-folder"
SALES = "mssql_to_rds__sales"
KEY = "mssql_rds__last_good__sales"


@pytest.fixture(scope="module")
def metadata_db():
    """The SQLite metadata DB in the session's AIRFLOW_HOME, with this repo's dags/ as the DAG bundle."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.utils.db import initdb

    mp = pytest.MonkeyPatch()
    mp.setenv(
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST",
        json.dumps(
            [
                {
                    "name": BUNDLE,
                    "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {"path": str(REPO / "dags")},
                }
            ]
        ),
    )
    # Store every parse (the dag-processor skips rewriting a DAG within 30 s of the last write).
    mp.setenv("AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL", "0")
    initdb()
    DagBundlesManager().sync_bundles_to_db()
    yield
    mp.undo()


@pytest.fixture
def machines(tmp_path, monkeypatch, metadata_db):
    """A config folder, and one last-good folder per machine; Variables of earlier tests removed."""
    from airflow.models.variable import Variable as VariableModel
    from airflow.utils.session import create_session

    folder = tmp_path / "migrations"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder / "prod.yaml")
    monkeypatch.setenv("MSSQL_RDS_MIGRATIONS_DIR", str(folder))
    monkeypatch.delenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", raising=False)
    with create_session() as session:
        session.query(VariableModel).filter(VariableModel.key.like("mssql_rds__last_good__%")).delete(
            synchronize_session=False
        )
    return folder, tmp_path / "processor-last-good", tmp_path / "worker-last-good"


def in_process_client():
    """The Execution API client the dag-processor uses (``DagFileProcessorManager.client``)."""
    from airflow.api_fastapi.execution_api.app import InProcessExecutionAPI
    from airflow.sdk.api.client import Client

    client = Client(base_url=None, token="", dry_run=True, transport=InProcessExecutionAPI().transport)
    client.base_url = "http://in-process.invalid./"
    return client


def processor_parse(monkeypatch, last_good_dir: Path) -> list[str]:
    """One dag-processor parse of the DAG file, stored in the metadata DB; the dag_ids it produced."""
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.dag_processing.processor import DagFileProcessorProcess
    from airflow.utils.session import create_session

    monkeypatch.setenv("MSSQL_RDS_LAST_GOOD_DIR", str(last_good_dir))
    log_file = last_good_dir.parent / "processor.log"
    with log_file.open("ab") as handle:
        proc = DagFileProcessorProcess.start(
            id=uuid.uuid4(),
            path=REPO / "dags" / "mssql_to_rds.py",
            bundle_path=REPO / "dags",
            bundle_name=BUNDLE,
            dag_file_rel_path="mssql_to_rds.py",
            callbacks=[],
            logger=structlog.get_logger(),
            logger_filehandle=handle,
            client=in_process_client(),
        )
        deadline = time.monotonic() + 120
        while not proc.is_ready:
            assert time.monotonic() < deadline, "the dag-processor's parse did not finish"
            proc._service_subprocess(max_wait_time=0.1)
        proc.close()
    result = proc.parsing_result
    assert result is not None and result.import_errors == {}, result
    # Airflow's static check for values that change on every parse (they would make a version per parse).
    assert not result.warnings, result.warnings
    with create_session() as session:
        update_dag_parsing_results_in_db(
            bundle_name=BUNDLE,
            bundle_version=None,
            dags=result.serialized_dags,
            import_errors={},
            parse_duration=0.1,
            warnings=set(),
            session=session,
            files_parsed={(BUNDLE, "mssql_to_rds.py")},
        )
    return sorted(d.dag_id for d in result.serialized_dags)


def queue_task(dag_id: str, task_id: str):
    """A new manual DAG run of the latest version (its task instances created), one task queued."""
    from airflow.executors.workloads import ExecuteTask
    from airflow.executors.workloads.base import BundleInfo
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    with create_session() as session:
        dag = SerializedDagModel.get_dag(dag_id, session=session)
        run = dag.create_dagrun(
            run_id=f"manual__{uuid.uuid4().hex[:8]}",
            logical_date=None,
            data_interval=None,
            run_after=datetime.now(UTC),
            conf={},
            run_type=DagRunType.MANUAL,
            triggered_by=DagRunTriggeredByType.TEST,
            state=DagRunState.RUNNING,
            session=session,
        )
        ti = run.get_task_instance(task_id, session=session)
        ti.state = TaskInstanceState.QUEUED
        session.flush()
        return ExecuteTask.make(ti, dag_rel_path=Path("mssql_to_rds.py"), bundle_info=BundleInfo(name=BUNDLE))


def run_task_on_worker(monkeypatch, last_good_dir: Path, dag_id: str, task_id: str, log_path: Path) -> str:
    """Run one task as a worker does (``supervise_task`` parses the DAG file for it); its final state."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.sdk.execution_time.supervisor import supervise_task
    from airflow.utils.session import create_session

    workload = queue_task(dag_id, task_id)
    monkeypatch.setenv("MSSQL_RDS_LAST_GOOD_DIR", str(last_good_dir))
    supervise_task(
        ti=workload.ti,
        bundle_info=workload.bundle_info,
        dag_rel_path=workload.dag_rel_path,
        token="",
        client=in_process_client(),
        log_path=str(log_path),
    )
    with create_session() as session:
        return str(session.get(TaskInstance, workload.ti.id).state)


def dag_versions(dag_id: str) -> list[str]:
    """The description of each stored version of ``dag_id``, oldest first."""
    from airflow.models.dag_version import DagVersion
    from airflow.utils.session import create_session

    with create_session() as session:
        versions = session.query(DagVersion).filter_by(dag_id=dag_id).order_by(DagVersion.version_number)
        return [v.serialized_dag.dag.description for v in versions]


def variable(key: str) -> str | None:
    from airflow.models.variable import Variable as VariableModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(VariableModel).filter_by(key=key).one_or_none()
        return row.val if row else None


def test_worker_without_the_folder_finds_the_kept_dag_through_variables(machines, monkeypatch, tmp_path):
    config, processor_dir, worker_dir = machines
    assert SALES in processor_parse(monkeypatch, processor_dir)
    published = json.loads(variable(KEY))
    assert published["entry"] == "sales" and published["file"] == "prod.yaml"
    assert json.loads((processor_dir / "sales.json").read_text())["published"] is True

    (config / "prod.yaml").write_text("databases: [unclosed\n")
    dag_ids = processor_parse(monkeypatch, processor_dir)
    assert SALES in dag_ids and "mssql_to_rds_config_error__prod" in dag_ids

    # The worker's machine has never parsed a good config: its folder is empty, its YAML broken.
    log_path = tmp_path / "worker-task.log"
    state = run_task_on_worker(monkeypatch, worker_dir, SALES, "resume", log_path)
    assert state == "success", log_path.read_text()
    assert not worker_dir.exists()  # a worker's parse reads, it never writes
    # The task's log does not carry the config error (it is the error DAG's business).
    assert "malformed" not in log_path.read_text()

    # Control: without the shared copy the same worker cannot build the DAG, and the task fails.
    from airflow.models.variable import Variable as VariableModel

    VariableModel.delete(KEY)
    failed = run_task_on_worker(monkeypatch, worker_dir, SALES, "resume", tmp_path / "control.log")
    assert failed != "success" and "Dag not found during start up" in (tmp_path / "control.log").read_text()


def test_processor_restarted_on_an_empty_folder_recovers_from_variables(machines, monkeypatch):
    config, processor_dir, _ = machines
    processor_parse(monkeypatch, processor_dir)
    (config / "prod.yaml").write_text("databases: [unclosed\n")
    fresh = processor_dir.parent / "new-processor-pod"
    dag_ids = processor_parse(monkeypatch, fresh)
    assert {SALES, "mssql_to_rds__hr-payroll", "mssql_to_rds_config_error__prod"} <= set(dag_ids)


def test_a_settings_change_is_a_new_dag_version_and_a_reparse_is_not(machines, monkeypatch):
    """Airflow keeps a version once a run used it: each run's version shows the settings it ran with."""
    config, processor_dir, _ = machines
    hr = "mssql_to_rds__hr-payroll"
    processor_parse(monkeypatch, processor_dir)
    queue_task(hr, "preflight")  # a run on the current version
    before = dag_versions(hr)
    processor_parse(monkeypatch, processor_dir)
    assert dag_versions(hr) == before
    text = (config / "prod.yaml").read_text()
    (config / "prod.yaml").write_text(text.replace("cutover_threshold_mb: 200", "cutover_threshold_mb: 150"))
    processor_parse(monkeypatch, processor_dir)
    after = dag_versions(hr)
    assert after[:-1] == before and len(after) == len(before) + 1
    old_hash, new_hash = (re.fullmatch(r"Config ([0-9a-f]{12}) from prod.yaml", d)[1] for d in after[-2:])
    assert old_hash != new_hash
    processor_dir_record = json.loads((processor_dir / "hr-payroll.json").read_text())
    assert processor_dir_record["config_hash"] == new_hash
    assert processor_dir_record["settings"]["cutover_threshold_mb"] == 150
