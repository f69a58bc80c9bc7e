"""Helpers of the DAG-level e2e tests: answering the approval as a person would, reading run results,
looking at the databases and at the workload's acknowledged writes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pymssql
import pytest

from tests.e2e.conftest import DATABASE, RunningSandbox

APPROVAL_TASK = "approve_cutover"
CUTOVER_TASKS = ["catch_up", "cutover", "validate", "release_target"]


# ---------------------------------------------------------------------------------------------------
# Helpers: answering the approval, reading run results, looking at the databases
# ---------------------------------------------------------------------------------------------------


@contextmanager
def approval(
    dag_id: str, option: str, before: Callable[[], None] | None = None, timeout: float = 180
) -> Generator[dict[str, Any], None, None]:
    """Answer the cutover approval of ``dag_id`` with ``option`` from a thread, as a person would.

    Finds the task instance in AWAITING_INPUT, runs ``before`` (e.g. inject a fault, run the
    log-shipping DAG), fills its HITLDetail and resumes it with ``handle_event_submit``.
    """
    outcome: dict[str, Any] = {"answered": False, "error": None}
    stop = threading.Event()

    def answer() -> None:
        from airflow.models.hitl import HITLDetail
        from airflow.models.taskinstance import TaskInstance
        from airflow.models.trigger import handle_event_submit
        from airflow.triggers.base import TriggerEvent
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState
        from sqlalchemy import select

        deadline = time.monotonic() + timeout
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                with create_session() as session:
                    ti = session.scalar(
                        select(TaskInstance).where(
                            TaskInstance.dag_id == dag_id,
                            TaskInstance.task_id == APPROVAL_TASK,
                            TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
                        )
                    )
                    if ti is None:
                        session.rollback()
                        time.sleep(0.3)
                        continue
                    detail = session.scalar(select(HITLDetail).where(HITLDetail.ti_id == ti.id))
                    outcome["body"] = detail.body
                    outcome["options"] = list(detail.options)
                if before is not None:
                    before()
                with create_session() as session:
                    ti = session.get(TaskInstance, ti.id)
                    detail = session.scalar(select(HITLDetail).where(HITLDetail.ti_id == ti.id))
                    detail.chosen_options = [option]
                    detail.params_input = {}
                    detail.responded_by = {"id": "e2e", "name": "e2e tester"}
                    detail.responded_at = datetime.now(UTC)
                    session.flush()
                    handle_event_submit(
                        TriggerEvent(detail.as_resume_event_payload()), task_instance=ti, session=session
                    )
                outcome["answered"] = True
                return
        except BaseException as exc:  # reported by the main thread
            outcome["error"] = exc

    thread = threading.Thread(target=answer, name="e2e-approver", daemon=True)
    thread.start()
    try:
        yield outcome
    finally:
        stop.set()
        thread.join(30)
    if outcome["error"] is not None:
        raise outcome["error"]


def states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def xcom(dag_run, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(
                run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key="return_value"
            )
        ).first()
        return None if row is None else XComModel.deserialize_value(row)


def hook(conn_id: str):
    from hooks.mssql import MigrationMsSqlHook

    return MigrationMsSqlHook(mssql_conn_id=conn_id)


def access(conn_id: str, database: str) -> tuple[str, str, str]:
    facts = hook(conn_id).database_facts(database)
    assert facts is not None, f"{database} missing on {conn_id}"
    return facts.state_desc, facts.user_access_desc, "READ_ONLY" if facts.is_read_only else "READ_WRITE"


WRITABLE = ("ONLINE", "MULTI_USER", "READ_WRITE")
FROZEN = ("ONLINE", "RESTRICTED_USER", "READ_ONLY")


def acknowledged(running: RunningSandbox) -> list:
    """Every write the workload's SQL Server acknowledged (its journal), once the workload is stopped: a
    write acknowledged after the journal was read would otherwise look lost."""
    from sandbox.mssql.workload import read_journal

    running.sandbox.stop_workload()
    path = running.state_dir / running.sandbox.config["workload"]["journal"]
    return read_journal(path) if path.exists() else []


def assert_acknowledged_writes_in(conn_id: str, writes: list) -> None:
    """Each acknowledged write is in the database with its last acknowledged value: nothing lost."""
    latest: dict[int, Any] = {}
    for write in writes:
        latest[write.id] = write.value
    assert latest, "the workload acknowledged no write"
    cursor_hook = hook(conn_id)
    rows = dict(cursor_hook.get_records("SELECT id, amount FROM [SalesDB].dbo.orders"))
    missing = {i: v for i, v in latest.items() if rows.get(i) != v}
    assert not missing, f"{len(missing)} acknowledged write(s) not in {conn_id}: {list(missing.items())[:5]}"


def order_count(running: RunningSandbox, database: str = DATABASE) -> int:
    """Rows in the workload's table (0 until the workload has created it)."""
    source = running.sandbox.config["source"]
    with pymssql.connect(
        server="127.0.0.1",
        port=running.sandbox.ports["source"],
        user="sa",
        password=source["password"],
        database=database,
        tds_version="7.4",
    ) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT COUNT(*) FROM sys.tables WHERE name = 'orders'")
        if not cursor.fetchone()[0]:
            return 0
        cursor.execute("SELECT COUNT(*) FROM dbo.orders")
        return int(cursor.fetchone()[0])


def assert_writes_continue(running: RunningSandbox, within: float = 15) -> None:
    """The workload's inserts land on the source again (it backs off and reconnects after a freeze)."""
    first = order_count(running)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if order_count(running) > first:
            return
    pytest.fail(f"no new rows in dbo.orders within {within}s: writes did not resume")


def run_migration(airflow_db, spec, option: str | None, before: Callable[[], None] | None = None):
    dag = airflow_db.dags(spec)[f"mssql_to_rds__{spec.name}"]
    if option is None:
        return dag.test(), {}
    with approval(dag.dag_id, option, before) as answered:
        dag_run = dag.test()
    return dag_run, answered


def preflight_error(output: str) -> str:
    """The preflight task's failure message, from the task log printed by dag.test()."""
    lines = [line for line in output.splitlines() if "Preflight failed" in line]
    assert lines, output[-3000:]
    return lines[-1]
