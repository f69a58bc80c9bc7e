"""The real DAGs run with ``dag.test()`` against the sandbox: scheduler logic, trigger rules, deferrals
(triggers run inline) and the human approval, answered from a thread the way the UI/REST API would.

Each scenario gets a fresh sandbox (and its own DAG ids), so they do not interfere:

1. happy path with live writes: approve → cutover → validate → report;
2. reject at the approval: nothing changes on the source, the cutover is skipped;
3. the tail import fails (RDS loses access to the bucket) → rollback: the source is back, nothing lost;
4. preflight lists every failure at once (encrypted/IA bucket, SIMPLE recovery, TDE, name conflict,
   newer source version);
5. the log-shipping DAG runs while the migration waits for approval; the chain stays intact.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path, PureWindowsPath

import pymssql
import pytest

from tests.e2e.conftest import DATABASE, make_spec, sandbox_config
from tests.e2e.dag_helpers import (
    APPROVAL_TASK,
    CUTOVER_TASKS,
    FROZEN,
    WRITABLE,
    access,
    acknowledged,
    approval,
    assert_acknowledged_writes_in,
    assert_writes_continue,
    order_count,
    preflight_error,
    run_migration,
    states,
    xcom,
)

pytestmark = [pytest.mark.timeout(240), pytest.mark.usefixtures("keep_defer_kwargs")]

# ---------------------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------------------


def test_happy_path_with_live_writes(airflow_db, sandbox_factory):
    """The default sandbox is unfriendly: the source had a nightly log-backup job until 20 minutes ago, and
    the application writes as db_owner (RESTRICTED_USER would not stop it)."""
    running = sandbox_factory()
    spec = make_spec(running.state_dir, "e2e_happy", retries=0)
    before = order_count(running)

    dag_run, answered = run_migration(airflow_db, spec, "Approve")

    result = states(dag_run)
    assert answered["answered"], result
    assert str(dag_run.state) == "success", result
    for words in ("Estimated downtime", "computed at", "Import quota", "READ_ONLY WITH ROLLBACK IMMEDIATE"):
        assert words in answered["body"], (words, answered["body"])
    assert result["resume"] == "skipped" and result["full_backup"] == "success"
    assert all(result[t] == "success" for t in ["ship_logs", APPROVAL_TASK, *CUTOVER_TASKS, "report"]), result
    assert result["rollback"] == "skipped"

    shipped = xcom(dag_run, "ship_logs")
    assert shipped["cycles"] >= 1
    validation = xcom(dag_run, "validate")
    assert validation["differences"] == [] and validation["problems"] == [] and validation["rows"] > 0
    assert int(validation["proof"]["restored_through_lsn"]) >= int(
        xcom(dag_run, "cutover")["tail"]["last_lsn"]
    )
    assert order_count(running) > before, "rows written by the workload during the run were migrated"

    report = xcom(dag_run, "report")
    assert Path(report["report_path"]).is_file()
    assert "migrated and validated" in Path(report["report_path"]).read_text()
    assert report["downtime_s"] is not None and report["downtime_orchestration_s"] is not None
    assert access("mssql_target", DATABASE) == WRITABLE, "applications may use the target"
    assert access("mssql_source", DATABASE) == FROZEN, "the source stays frozen: READ_ONLY, nothing lost"
    writes = acknowledged(running)
    assert_acknowledged_writes_in("mssql_target", writes)
    from operators.steps import MigrationSteps

    entries = MigrationSteps(spec).read_ledger()
    frozen = next(e for e in entries if e.event == "source_frozen")
    timings = next(e for e in entries if e.event == "cutover_timings")
    frozen_by = frozen.at + timedelta(seconds=float(timings.details["freeze_s"]) + 0.5)
    late = [w for w in writes if w.acked_at > frozen_by]
    assert not late, f"writes acknowledged after the freeze: {late[:3]}"


def test_reject_changes_nothing_on_the_source(airflow_db, sandbox_factory, capfd):
    running = sandbox_factory()
    spec = make_spec(running.state_dir, "e2e_reject", retries=0)

    dag_run, answered = run_migration(airflow_db, spec, "Reject")

    result = states(dag_run)
    assert answered["answered"], result
    assert str(dag_run.state) == "success", result
    assert all(result[t] == "skipped" for t in CUTOVER_TASKS), result
    assert result["rollback"] == "skipped" and result["report"] == "success"
    assert access("mssql_source", DATABASE) == WRITABLE
    assert_writes_continue(running)
    report = xcom(dag_run, "report")
    assert "cutover not approved" in Path(report["report_path"]).read_text()
    output = "".join(capfd.readouterr())
    assert "trigger this DAG again" in output, "the log says how to continue"
    # The target still waits for logs: the next run resumes the same migration task.
    from hooks.rds import TASK_FAILURE_STATES, TASK_SUCCESS_STATES
    from operators.steps import MigrationSteps

    steps = MigrationSteps(spec)
    task = steps.rds.get_task_state(steps.instance_id, steps.find_migration_task_id())
    assert task.status not in TASK_SUCCESS_STATES | TASK_FAILURE_STATES


def test_failed_tail_import_rolls_back_the_source(airflow_db, sandbox_factory, capfd):
    running = sandbox_factory()
    # Default retries: an RDS refusal fails the task at once (no retry a minute later), so the
    # rollback starts right away.
    spec = make_spec(running.state_dir, "e2e_rollback", retries=2)

    def revoke_bucket_access() -> None:
        # RAM role gone: RDS refuses every import from now on (OSS.Unauthorized-like error).
        running.sandbox.rds.config.oss_authorized = False

    dag_run, answered = run_migration(airflow_db, spec, "Approve", before=revoke_bucket_access)

    result = states(dag_run)
    assert answered["answered"], result
    assert str(dag_run.state) == "failed", result
    assert result["catch_up"] == "success" and result["cutover"] == "failed", result
    assert result["validate"] == "upstream_failed", result
    assert result["rollback"] == "success", result
    assert result["report"] == "failed", result  # written, then fails the run so the failure stays visible
    undone = " ".join(xcom(dag_run, "rollback"))
    assert "READ_WRITE" in undone and "MULTI_USER" in undone and "RESTORE" not in undone, undone
    assert "AliyunRDSImportRole" in "".join(capfd.readouterr()), "the failure names its cause"
    (report,) = (Path(spec.backup_folder.worker_path) / "reports").glob("*.html")
    assert (
        "the cutover failed before RDS opened the database; the source was given back" in report.read_text()
    )

    assert access("mssql_source", DATABASE) == WRITABLE
    assert_writes_continue(running)
    assert_acknowledged_writes_in("mssql_source", acknowledged(running))


def test_preflight_lists_every_failure_simple_recovery_and_encrypted_bucket(
    airflow_db, sandbox_factory, capfd
):
    running = sandbox_factory(sandbox_config(workload_rate=0))
    source = running.sandbox.config["source"]
    with pymssql.connect(
        server="127.0.0.1",
        port=running.sandbox.ports["source"],
        user="sa",
        password=source["password"],
        tds_version="7.4",
        autocommit=True,
    ) as conn:
        cursor = conn.cursor()
        cursor.execute("CREATE DATABASE SimpleDB")
        cursor.execute("ALTER DATABASE SimpleDB SET RECOVERY SIMPLE")
    spec = make_spec(
        running.state_dir,
        "e2e_preflight_simple",
        database="SimpleDB",
        retries=0,
        oss={"bucket": "migration-encrypted"},
    )

    dag_run, _ = run_migration(airflow_db, spec, None)

    result = states(dag_run)
    assert str(dag_run.state) == "failed", result
    assert result["preflight"] == "failed", result
    assert result["full_backup"] == "upstream_failed", result
    assert result["rollback"] == "skipped", "the source was never frozen: nothing to roll back"
    message = preflight_error(capfd.readouterr().out)
    assert "recovery model: SIMPLE" in message, message
    assert "OSS bucket" in message and "encrypt" in message.lower(), message
    assert "Preflight failed 2 of" in message, message
    assert access("mssql_source", "SimpleDB") == WRITABLE


def test_preflight_lists_every_failure_tde_name_conflict_newer_source_ia_bucket(
    airflow_db, sandbox_factory, capfd
):
    config = sandbox_config(workload_rate=0)
    config["source"]["instance"]["product_version"] = "16.0.4135.4"  # SQL Server 2022 -> 2019 target
    config["source"]["instance"]["databases"]["LegacyDB"] = {
        "tde": True,
        "tables": [{"name": "items", "rows": 10}],
    }
    config["target"]["instance"]["databases"] = {"LegacyDB": {"tables": [{"name": "other", "rows": 1}]}}
    running = sandbox_factory(config)
    spec = make_spec(
        running.state_dir, "e2e_preflight_tde", database="LegacyDB", retries=0, oss={"bucket": "migration-ia"}
    )

    dag_run, _ = run_migration(airflow_db, spec, None)

    result = states(dag_run)
    assert str(dag_run.state) == "failed", result
    assert result["preflight"] == "failed", result
    message = preflight_error(capfd.readouterr().out)
    for reason in ("TDE:", "version: source 16", "target name:", "OSS bucket:"):
        assert reason in message, (reason, message)
    assert "Preflight failed 4 of" in message, message
    assert result["rollback"] == "skipped", result
    assert access("mssql_source", "LegacyDB") == WRITABLE


def test_log_shipping_dag_interleaves_without_breaking_the_chain(airflow_db, sandbox_factory):
    """Run 1 stops at the approval (Reject); the scheduled DAG ships logs; run 2 resumes and cuts over.

    (``dag.test()`` must run in the main thread, so the log-shipping runs go between two migration
    runs rather than during one approval wait: the same state, the target RESTORING between logs.)
    """
    running = sandbox_factory()
    spec = make_spec(running.state_dir, "e2e_interleave", retries=0, log_shipping={"schedule": "*/5 * * * *"})
    dags = airflow_db.dags(spec)
    migration = dags[f"mssql_to_rds__{spec.name}"]
    shipping = dags[f"mssql_to_rds__{spec.name}__log_shipping"]

    with approval(migration.dag_id, "Reject"):
        first = migration.test()
    assert states(first)["wait_full_restored"] == "success", states(first)

    shipped = []
    for _ in range(3):
        time.sleep(0.3)  # let the workload write between two log backups
        run = shipping.test()
        shipped.append((str(run.state), states(run)["ship_one_log"], xcom(run, "ship_one_log")))
    assert [(s, t) for s, t, _ in shipped] == [("success", "success")] * 3, shipped
    assert all(x["cycles"] == 1 for _, _, x in shipped), shipped

    with approval(migration.dag_id, "Approve") as answered:
        second = migration.test()

    result = states(second)
    assert answered["answered"], result
    assert str(second.state) == "success", result
    assert result["resume"] == "success" and result["full_backup"] == "skipped", result
    validation = xcom(second, "validate")
    assert validation["differences"] == [] and validation["rows"] > 0

    from operators.steps import MigrationSteps

    steps = MigrationSteps(spec)
    files = steps.rds.get_file_states(steps.instance_id, xcom(second, "cutover")["migrate_task_id"])
    # One chain, all restored: every backup this migration took (the full, the logs of both runs and of
    # the log-shipping DAG, the tail), except the empty logs of the workload's idle moments (skipped).
    entries = steps.read_ledger()
    taken = {
        PureWindowsPath(e.backup.physical_device_name).name for e in entries if e.event == "backup_taken"
    }
    skipped = {e.file_name for e in entries if e.event == "skipped"}
    assert {f.file_name for f in files} == taken - skipped, (files, taken, skipped)
    assert len(taken) >= 6 and {f.status for f in files} == {"Restored"}, files
    assert access("mssql_target", DATABASE) == WRITABLE
    # After the cutover, the scheduled DAG sees the migration task done and skips.
    after = shipping.test()
    assert states(after)["ship_one_log"] == "skipped"
