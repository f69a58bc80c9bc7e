"""Faults the chaos scenarios found the product did not survive, each shown at the operator level.

Real hooks, drivers and SDKs against the whole sandbox; operators run one by one with a fake task
instance (the helpers of ``tests/e2e/test_retry_safety.py``), blocking or deferred as stated.

- An incremental file RDS fails on once (the download from OSS broke off, an I/O error during the
  RESTORE) is imported again at its place in the chain, blocking or deferred; a failure another import
  cannot mend still fails the task with RDS's reason, and a file is imported at most three times.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from sandbox.background import start_sandbox
from tests.e2e.conftest import sandbox_config
from tests.e2e.test_retry_safety import Run, migrate_full, steps_for, write_rows


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("fault-sandbox")
    config = sandbox_config(workload_rate=0)
    for name in ("ReimportDB", "DeferredDB", "BrokenDB"):
        config["source"]["instance"]["databases"][name] = {"tables": [{"name": "orders", "rows": 50}]}
    running = start_sandbox(config, state_dir)
    mp = pytest.MonkeyPatch()
    for conn_id, conn in running.connections().items():
        mp.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    try:
        yield running
    finally:
        mp.undo()
        running.stop()


def make_spec(stack, database: str):
    from tests.e2e.test_retry_safety import make_spec as retry_spec

    return retry_spec(stack, database)


def imports_of(stack, database: str) -> list[tuple[str, str]]:
    """(file name, status) of every import RDS accepted for the database, from its own records."""
    return [
        (r["file_name"], r["status"]) for r in stack.sandbox.rds.import_records() if r["db_name"] == database
    ]


def ship_once_operator(run: Run, deferrable: bool = False):
    from operators.ship_logs import ShipLogsOperator

    time.sleep(1.05)  # the quota planner paces imports about a second apart in these specs
    return ShipLogsOperator(
        task_id="ship_logs", mode="once", migration=run.spec, deferrable=deferrable, poll_interval=0.2
    )


@pytest.mark.parametrize("kind", ["download_failed", "restore_failed"])
def test_a_log_rds_fails_on_once_is_imported_again_and_the_chain_goes_on(stack, kind):
    database = "ReimportDB"
    spec = make_spec(stack, database)
    run, _task_id = migrate_full(stack, spec)
    write_rows(stack, database)
    stack.sandbox.rds.faults.next_file_failure(kind)
    result = run.execute(ship_once_operator(run))
    assert result["cycles"] == 1
    logs = [(name, status) for name, status in imports_of(stack, database) if name.endswith(".trn")]
    failed = {"download_failed": "DownloadFailed", "restore_failed": "RestoreFailed"}[kind]
    assert logs[-2:] == [(logs[-1][0], failed), (logs[-1][0], "Restored")], logs
    assert steps_for(spec).chain_state(result["migrate_task_id"]).failed == []


def test_a_failed_file_reported_by_the_trigger_is_imported_again_after_the_deferral(stack):
    from hooks.rds import FILE_SUCCESS_STATES

    database = "DeferredDB"
    spec = make_spec(stack, database)
    run, task_id = migrate_full(stack, spec)
    write_rows(stack, database)
    stack.sandbox.rds.faults.next_file_failure("download_failed")
    op = ship_once_operator(run, deferrable=True)
    context = {"ti": _ti(run, op), "dag_run": None, "params": {}}
    op.pre_execute(context)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    file_name = deferred.value.trigger.file_name
    steps = steps_for(spec)
    failed = _wait_file(steps, task_id, file_name, ("DownloadFailed",))
    event = {  # what MigrationFileTrigger reports for a failed file
        "status": "error",
        "file_name": file_name,
        "file_status": failed.status,
        "message": failed.description,
        "advice": "",
    }
    with pytest.raises(TaskDeferred) as again:  # imported again, and waited for again
        op.resume_chain(context, event, **deferred.value.kwargs)
    assert again.value.trigger.file_name == file_name
    _wait_file(steps, task_id, file_name, tuple(FILE_SUCCESS_STATES))
    done = op.resume_chain(context, {"status": "success", "file_name": file_name}, **again.value.kwargs)
    assert done["cycles"] == 1
    assert Counter(s for n, s in imports_of(stack, database) if n == file_name) == {
        "DownloadFailed": 1,
        "Restored": 1,
    }


def test_failures_another_import_cannot_mend_and_a_third_failure_fail_the_task(stack):
    database = "BrokenDB"
    spec = make_spec(stack, database)
    run, _task_id = migrate_full(stack, spec)
    write_rows(stack, database)
    for _ in range(3):  # one-shot faults hit whatever import comes next, the same file again too
        stack.sandbox.rds.faults.next_file_failure("download_failed")
    with pytest.raises(AirflowFailException, match="RDS failed to restore"):
        run.execute(ship_once_operator(run))
    logs = [status for name, status in imports_of(stack, database) if name.endswith(".trn")]
    assert logs == ["DownloadFailed"] * 3, "three imports of the file, then the task fails with the reason"


def _ti(run: Run, op):
    from tests.e2e.test_retry_safety import FakeTI

    return FakeTI(run.xcom, op.task_id)


def _wait_file(steps, task_id: str, file_name: str, statuses: tuple[str, ...], timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = [f for f in steps.rds.get_file_states(steps.instance_id, task_id) if f.file_name == file_name]
        if files and files[-1].status in statuses:
            return files[-1]
        time.sleep(0.1)
    raise AssertionError(f"{file_name} did not reach {statuses}")
