"""The migration's operators, in DAG order, against the whole sandbox (real hooks, drivers, SDKs).

No scheduler here: each operator's ``execute`` runs with a minimal context (XCom in a dict) and
waits block (``deferrable=False``). The full DAG with its scheduler, triggerer and approval runs in
``make demo`` and in test_dag_runs.py. A write workload runs against the source throughout.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

# Fixtures ``stack`` (the sandbox, one per module) and ``spec`` (SalesDB) live in conftest.py.


class FakeTI:
    """The part of a task instance the operators use: identity, and XCom by task id."""

    dag_id = "e2e_operators"
    run_id = "e2e_run"
    try_number = 1

    def __init__(self, xcom: dict[str, object], task_id: str) -> None:
        self.xcom = xcom
        self.task_id = task_id

    def xcom_pull(self, task_ids: str) -> object:
        return self.xcom.get(task_ids)


def run(operator_cls, spec, xcom, run_after, **kwargs):
    task_id = kwargs.pop("task_id")
    op = operator_cls(task_id=task_id, migration=spec, deferrable=False, poll_interval=0.2, **kwargs)
    context = {
        "ti": FakeTI(xcom, task_id),
        "dag_run": SimpleNamespace(run_after=run_after, run_id="e2e_run"),
        "params": {},
    }
    op.pre_execute(context)
    xcom[task_id] = op.execute(context)
    return xcom[task_id]


def test_full_migration_with_live_writes(stack, spec):
    from operators.backup import BackupOperator, UploadBackupOperator
    from operators.cutover import CutoverOperator, ReleaseTargetOperator
    from operators.preflight import PreflightOperator
    from operators.rds_import import CreateMigrationTaskOperator, WaitRestoredOperator
    from operators.ship_logs import ShipLogsOperator
    from operators.validate import ValidateOperator

    xcom: dict[str, object] = {}
    run_after = datetime.now(UTC).replace(microsecond=0)
    report = run(PreflightOperator, spec, xcom, run_after, task_id="preflight")
    assert report["failed"] == 0, report

    full = run(BackupOperator, spec, xcom, run_after, task_id="full_backup", kind="FULL")
    assert full["backup_type"] == "FULL"
    # A retried backup task finds its backup in msdb and does not take another one.
    assert run(BackupOperator, spec, xcom, run_after, task_id="full_backup", kind="FULL") == full

    run(UploadBackupOperator, spec, xcom, run_after, task_id="upload_full", backup_task_id="full_backup")
    again = run(
        UploadBackupOperator, spec, xcom, run_after, task_id="upload_full", backup_task_id="full_backup"
    )
    assert again["skipped"] is True

    task_id = run(
        CreateMigrationTaskOperator,
        spec,
        xcom,
        run_after,
        task_id="create_migration_task",
        backup_task_id="full_backup",
    )
    assert (
        run(
            CreateMigrationTaskOperator,
            spec,
            xcom,
            run_after,
            task_id="create_migration_task",
            backup_task_id="full_backup",
        )
        == task_id
    )

    restored = run(
        WaitRestoredOperator,
        spec,
        xcom,
        run_after,
        task_id="wait_full_restored",
        backup_task_id="full_backup",
    )
    assert restored["restore_point"]["full"]["file_name"] == full["file_name"]

    shipped = run(
        ShipLogsOperator,
        spec,
        xcom,
        run_after,
        task_id="ship_logs",
        mode="loop",
        interval=timedelta(seconds=1),
    )
    assert shipped["cycles"] >= 1 and shipped["log_sizes"][-1] < 50 * 1024 * 1024

    caught_up = run(ShipLogsOperator, spec, xcom, run_after, task_id="catch_up", mode="catch_up")
    assert caught_up["restore_point"] is not None
    cutover = run(CutoverOperator, spec, xcom, run_after, task_id="cutover")
    assert cutover["tail"]["backup_type"] == "LOG"
    assert int(cutover["restore_point"]["redo_lsn"]) == int(cutover["tail"]["last_lsn"])
    result = run(ValidateOperator, spec, xcom, run_after, task_id="validate", cutover_task_id="cutover")
    assert result["differences"] == [] and result["problems"] == [] and result["rows"] > 0
    released = run(ReleaseTargetOperator, spec, xcom, run_after, task_id="release_target")
    assert "SET READ_WRITE" in released and "SET MULTI_USER" in released
