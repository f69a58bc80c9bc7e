"""The cutover's guardrails, through the whole DAG against the sandbox (``dag.test()``, approval from a thread).

The sandbox's application writes as db_owner, so only the READ_ONLY freeze stops it. Each scenario:

1. the freeze outlasts ``max_freeze_minutes`` (RDS is slow to restore the tail): the cutover rolls back by
   itself, every acknowledged write is still on the source, the notifiers were told;
2. the approval comes late and the log grew meanwhile: it is shipped before the freeze, the tail stays small,
   and in the default validation mode no statement in the window reads table data;
3. the open fails on the Airflow side while RDS goes on opening: the source is NOT given back (two writable
   copies would be worse), and RDS finishes the open;
4. default validation catches a row missing on the target; both sides stay as they are, and the way out the
   message gives (let applications in on the target anyway) works;
5. deep validation catches content BINARY_CHECKSUM cannot see (an xml column); the other way out (back to the
   source, drop the copy on RDS, start over) works.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pymssql
import pytest

from tests.e2e.conftest import DATABASE, RunningSandbox, make_spec, sandbox_config
from tests.e2e.dag_helpers import (
    FROZEN,
    WRITABLE,
    access,
    acknowledged,
    approval,
    assert_acknowledged_writes_in,
    hook,
    run_migration,
    states,
    xcom,
)

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("keep_defer_kwargs")]

USER_TABLES = ("orders", "customers", "invoices", "docs")


def steady_config(rate: float = 20) -> dict:
    """The default sandbox, with writes that never pause (so the log grows predictably)."""
    config = sandbox_config(workload_rate=rate)
    config["workload"].pop("idle_every_s", None)
    config["workload"].pop("idle_for_s", None)
    return config


def sa(running: RunningSandbox, side: str, statements: list[str], database: str = "master") -> None:
    """Run statements as sa on the source or the target (an administrator, or a test injecting a fault)."""
    section = running.sandbox.config[side]
    with pymssql.connect(
        server="127.0.0.1",
        port=running.sandbox.ports[side],
        user="sa",
        password=section["password"],
        database=database,
        tds_version="7.4",
        autocommit=True,
    ) as conn:
        cursor = conn.cursor()
        for statement in statements:
            cursor.execute(statement)


def ledger(spec) -> list:
    from operators.steps import MigrationSteps

    return MigrationSteps(spec).read_ledger()


def first(entries: list, event: str, **match) -> object:
    return next(e for e in entries if e.event == event and all(getattr(e, k) == v for k, v in match.items()))


# ---------------------------------------------------------------------------------------------------
# 1. A freeze that outlasts max_freeze_minutes rolls back by itself
# ---------------------------------------------------------------------------------------------------


def test_a_freeze_that_outlasts_its_bound_rolls_back_by_itself(airflow_db, sandbox_factory, tmp_path):
    running = sandbox_factory(steady_config())
    notes = tmp_path / "notifications.jsonl"
    spec = make_spec(
        running.state_dir,
        "e2e_freeze_bound",
        retries=0,
        max_freeze_minutes=0.1,  # 6 s
        notify=[{"class": "tests.e2e.notifier.FileNotifier", "kwargs": {"path": str(notes)}}],
    )

    def slow_rds() -> None:  # RDS takes longer to restore the tail than the freeze may last
        running.sandbox.rds.config.timing.step_delay_s = 5

    dag_run, answered = run_migration(airflow_db, spec, "Approve", before=slow_rds)

    result = states(dag_run)
    assert answered["answered"], result
    assert result["cutover"] == "failed" and result["validate"] == "upstream_failed", result
    assert result["rollback"] == "success", result
    assert access("mssql_source", DATABASE) == WRITABLE
    assert_acknowledged_writes_in("mssql_source", acknowledged(running))
    entries = ledger(spec)
    frozen, rolled_back = first(entries, "source_frozen"), first(entries, "rolled_back")
    assert (rolled_back.at - frozen.at).total_seconds() < 6 + 15, "rolled back soon after the bound"
    assert not [e for e in entries if e.event == "open_requested"], "the open was never requested"
    sent = [json.loads(line) for line in notes.read_text().splitlines()]
    assert {"approve_cutover", "cutover", "rollback"} <= {n["task_id"] for n in sent}, sent
    assert any("max_freeze_minutes" in n["exception"] for n in sent if n["task_id"] == "cutover"), sent


# ---------------------------------------------------------------------------------------------------
# 2. A late approval ships the grown log first; the window reads no table data
# ---------------------------------------------------------------------------------------------------


def test_a_late_approval_ships_the_grown_log_before_the_freeze(airflow_db, sandbox_factory):
    running = sandbox_factory(steady_config(rate=40))
    spec = make_spec(running.state_dir, "e2e_catch_up", retries=0, cutover_threshold_mb=0.0625)
    threshold = int(0.0625 * 1024 * 1024)
    for instance in (running.sandbox.source, running.sandbox.target):
        instance.batch_log = []

    def approve_late() -> None:
        time.sleep(6)  # the log grows past the threshold while the approval waits

    dag_run, answered = run_migration(airflow_db, spec, "Approve", before=approve_late)

    result = states(dag_run)
    assert answered["answered"] and str(dag_run.state) == "success", result
    assert "measured again" in answered["body"] and "computed at" in answered["body"], answered["body"]
    caught_up = xcom(dag_run, "catch_up")
    assert len(caught_up["log_sizes"]) == 1 and caught_up["log_sizes"][0] > threshold, caught_up
    tail = xcom(dag_run, "cutover")["tail"]
    assert int(tail["size_bytes"]) < caught_up["log_sizes"][0], "the tail carries only the last seconds"
    entries = ledger(spec)
    frozen = first(entries, "source_frozen")
    catch_up_file = next(
        e.file_name
        for e in entries
        if e.event == "backup_taken" and e.size_bytes == caught_up["log_sizes"][0]
    )
    assert first(entries, "restored", file_name=catch_up_file).at < frozen.at, "shipped before the freeze"

    # Default validation mode: between the freeze and the end of validation, the product (as sa) sent no
    # statement that reads a user table; row counts come from metadata.
    validated = first(entries, "validated")
    window = [
        batch
        for instance in (running.sandbox.source, running.sandbox.target)
        for batch in instance.batch_log
        if batch.login == "sa" and frozen.at <= batch.at <= validated.at
    ]
    assert window, "the cutover talked to SQL Server"
    scans = [b.sql for b in window if any(t in b.sql.lower() for t in USER_TABLES)]
    assert scans == [], scans[:3]
    assert any("dm_db_partition_stats" in b.sql for b in window)


# ---------------------------------------------------------------------------------------------------
# 3. The open fails on the Airflow side while RDS opens: no rollback
# ---------------------------------------------------------------------------------------------------


def test_an_open_failing_on_the_airflow_side_while_rds_opens_is_not_rolled_back(airflow_db, sandbox_factory):
    running = sandbox_factory(steady_config())
    spec = make_spec(running.state_dir, "e2e_open_ambiguous", retries=0, open_timeout_minutes=0.05)  # 3 s

    def slow_open() -> None:
        running.sandbox.rds.config.timing.open_delay_s = 12  # RDS opens, but after the task gave up

    dag_run, answered = run_migration(airflow_db, spec, "Approve", before=slow_open)

    result = states(dag_run)
    assert answered["answered"], result
    assert result["cutover"] == "failed" and result["validate"] == "upstream_failed", result
    assert result["rollback"] == "failed", "the rollback refused to give the source back"
    assert access("mssql_source", DATABASE) == FROZEN, "the source stays frozen: no two writable copies"
    entries = ledger(spec)
    assert first(entries, "open_requested") and not [e for e in entries if e.event == "rolled_back"]
    from operators.steps import MigrationSteps

    steps = MigrationSteps(spec)
    task_id = steps.find_migration_task_id()
    deadline = time.monotonic() + 60
    while not steps.rds.get_task_state(steps.instance_id, task_id).succeeded:
        assert time.monotonic() < deadline, "RDS never finished the open"
        time.sleep(1)
    assert access("mssql_target", DATABASE)[0] == "ONLINE"
    report = (Path(spec.backup_folder.worker_path) / "reports").glob("*.html")
    assert "NOT rolled back" in next(report).read_text()


# ---------------------------------------------------------------------------------------------------
# 4-5. Validation failures leave both sides as they are, and the ways out work
# ---------------------------------------------------------------------------------------------------


def tamper_with_target_before_validation(
    monkeypatch: pytest.MonkeyPatch, running: RunningSandbox, statements: list[str]
) -> None:
    """Change the opened target right before validation runs (it is READ_ONLY: lift it for the change)."""
    from operators.validate import ValidateOperator

    original = ValidateOperator.execute

    def execute(self, context):
        sa(
            running,
            "target",
            [f"ALTER DATABASE [{DATABASE}] SET READ_WRITE WITH ROLLBACK IMMEDIATE", *statements]
            + [f"ALTER DATABASE [{DATABASE}] SET READ_ONLY WITH ROLLBACK IMMEDIATE"],
        )
        return original(self, context)

    monkeypatch.setattr(ValidateOperator, "execute", execute)


def failure_message(capfd) -> str:
    lines = [line for line in capfd.readouterr().out.splitlines() if "Validation failed:" in line]
    assert lines, "the validate task's failure is in the log"
    return lines[-1]


def test_default_validation_catches_a_missing_row_and_going_live_anyway_works(
    airflow_db, sandbox_factory, monkeypatch, capfd
):
    running = sandbox_factory(steady_config())
    spec = make_spec(running.state_dir, "e2e_missing_row", retries=0)
    tamper_with_target_before_validation(
        monkeypatch, running, [f"DELETE FROM [{DATABASE}].dbo.customers WHERE id = 7"]
    )

    dag_run, _ = run_migration(airflow_db, spec, "Approve")

    result = states(dag_run)
    assert result["cutover"] == "success" and result["validate"] == "failed", result
    assert result["release_target"] == "upstream_failed" and result["rollback"] == "skipped", result
    problems = xcom(dag_run, "validate")
    assert problems is None  # a failed task returns nothing; the log says what differs and what to do
    message = failure_message(capfd)
    assert "dbo.customers: row count differs" in message, message
    assert access("mssql_source", DATABASE) == FROZEN
    assert access("mssql_target", DATABASE) == ("ONLINE", "RESTRICTED_USER", "READ_ONLY")
    # Way out (b), as the message gives it: go live anyway, on the target.
    statements = message.split("on the target run ", 1)[1].rstrip(".").split("; ")
    sa(running, "target", statements)
    assert access("mssql_target", DATABASE) == WRITABLE


def test_deep_validation_catches_content_binary_checksum_misses_and_starting_over_works(
    airflow_db, sandbox_factory, capfd
):
    running = sandbox_factory(steady_config())
    sa(
        running,
        "source",
        [
            "CREATE TABLE dbo.docs (id int PRIMARY KEY, body xml, notes ntext)",
            "INSERT INTO dbo.docs VALUES (1, N'<a>1</a>', N'n'), (2, N'<a>2</a>', N'n')",
        ],
        database=DATABASE,
    )
    spec = make_spec(running.state_dir, "e2e_deep", retries=0, validation="deep")
    tampering = pytest.MonkeyPatch()  # its own patch: undoing it must not drop the sandbox's connections
    tamper_with_target_before_validation(
        tampering, running, [f"UPDATE [{DATABASE}].dbo.docs SET body = N'<a>9</a>' WHERE id = 1"]
    )

    dag_run, answered = run_migration(airflow_db, spec, "Approve")

    result = states(dag_run)
    assert "Deep validation reads every row" in answered["body"], answered["body"]
    assert result["validate"] == "failed", result
    message = failure_message(capfd)
    assert "dbo.docs: content differs" in message, message
    checksum = f"SELECT CHECKSUM_AGG(BINARY_CHECKSUM(*)) FROM [{DATABASE}].dbo.docs"
    same = [hook(conn).get_first(checksum) for conn in ("mssql_source", "mssql_target")]
    assert same[0] == same[1], "BINARY_CHECKSUM ignores xml: only the deep mode sees the difference"

    # Way out (a), as the message gives it: back to the source, drop the copy on RDS, start over.
    source_statements = message.split("on it run ", 1)[1].split("; then drop", 1)[0].split("; ")
    sa(running, "source", source_statements)
    assert access("mssql_source", DATABASE) == WRITABLE
    from operators.steps import MigrationSteps

    steps = MigrationSteps(spec)
    steps.rds.delete_database(steps.instance_id, DATABASE)
    tampering.undo()  # no more tampering
    dag = airflow_db.dags(spec)[f"mssql_to_rds__{spec.name}"]
    with approval(dag.dag_id, "Approve"):
        again = dag.test(run_conf={"start_over": True})
    assert str(again.state) == "success", states(again)
    assert states(again)["full_backup"] == "success", "a new full started the new migration"
    assert xcom(again, "validate")["differences"] == []
    assert access("mssql_target", DATABASE) == WRITABLE


def test_approval_timeout_fails_loudly_and_changes_nothing(sandbox_factory):
    """Without an answer the approval task fails (and notifies); it no longer turns into a silent Reject."""
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowFailException

    from operators.cutover import CutoverApprovalOperator

    running = sandbox_factory(steady_config())
    spec = make_spec(running.state_dir, "e2e_timeout", approvers=["dba.alice", "dba.bob"])
    operator = CutoverApprovalOperator(task_id="approve_cutover", migration=spec)
    assert operator.assigned_users == [
        {"id": "dba.alice", "name": "dba.alice"},
        {"id": "dba.bob", "name": "dba.bob"},
    ]
    assert operator.defaults is None, "no default answer: a timeout is a failure, not a Reject"
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="approve_cutover", try_number=1)
    with pytest.raises(AirflowFailException, match="Nobody answered the cutover approval"):
        operator.execute_complete({"ti": ti}, {"error_type": "timeout", "chosen_options": []})
    assert access("mssql_source", DATABASE) == WRITABLE
    assert [e.event for e in ledger(spec)][-1] == "cutover_rejected"
