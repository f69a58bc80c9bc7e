"""Long migrations against the real RDS API's rules (issue #10), through the whole DAG with ``dag.test()``.

Each scenario gets a fresh sandbox and DAG ids of its own:

1. a cutover 8 days after the full: DescribeMigrateTasks no longer lists the task; run 2 resumes by id,
   after the sandbox stopped and started again with the same state (8.);
2. the import quota (20 per database in a short rolling window): a fast cadence never runs out, the
   cutover keeps its reserve; other databases' imports make the briefing say when a cutover fits;
3. a backlog that does not fit the budget before any log was applied: a differential catches up;
4. child task ids and object-key FileNames (both UNKNOWN ways RDS may answer): every id is recorded;
5. ambiguous CreateMigrateTask failures (500 / dropped connection after acceptance): each file once;
6. a terminated migration task: run 2 stops with advice; ``{"start_over": true}`` starts again;
7. preflight refuses a cluster-edition target (naming it) and a target without the storage a restore takes;

The stand-in's own records (its tasks, files and answered calls) are the evidence, not the product's.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pymssql
import pytest

from tests.e2e.conftest import DATABASE, RunningSandbox, make_spec, sandbox_config
from tests.e2e.dag_helpers import (
    WRITABLE,
    access,
    acknowledged,
    approval,
    assert_acknowledged_writes_in,
    preflight_error,
    states,
    xcom,
)

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("keep_defer_kwargs")]

DONE = ["catch_up", "cutover", "validate", "release_target", "report"]


# ---------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------


def when(condition, then, timeout: float = 120) -> threading.Thread:
    """Run ``then()`` from a thread as soon as ``condition()`` holds (polled)."""

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                then()
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, name="e2e-fault-injector", daemon=True)
    thread.start()
    return thread


def steps_for(spec):
    from operators.steps import MigrationSteps

    return MigrationSteps(spec)


def run(
    airflow_db,
    spec,
    option: str | None,
    before=None,
    conf: dict | None = None,
    interval: timedelta | None = None,
):
    """One run of the migration DAG, the approval answered with ``option`` (None: never asked).

    :param interval: the log-shipping loop's shortest pause between cycles (default: 1 s, see speed_up).
    """
    dag = airflow_db.dags(spec)[f"mssql_to_rds__{spec.name}"]
    if interval is not None:
        dag.get_task("ship_logs").interval = interval
    kwargs = {"run_conf": conf} if conf else {}
    if option is None:
        return dag.test(**kwargs), {}
    with approval(dag.dag_id, option, before) as answered:
        dag_run = dag.test(**kwargs)
    return dag_run, answered


def assert_migrated(dag_run, answered: dict, running: RunningSandbox | None = None) -> dict[str, str]:
    """The run cut over, opened, validated and released the target; nothing acknowledged was lost."""
    result = states(dag_run)
    assert answered.get("answered"), result
    assert str(dag_run.state) == "success", result
    assert all(result[t] == "success" for t in DONE), result
    validation = xcom(dag_run, "validate")
    assert validation["differences"] == [] and validation["problems"] == [] and validation["rows"] > 0
    assert access("mssql_target", DATABASE) == WRITABLE
    if running is not None and running.sandbox.config["workload"].get("enabled", True):
        assert_acknowledged_writes_in("mssql_target", acknowledged(running))
    return result


def stand_in_files(running: RunningSandbox, database: str = DATABASE) -> list[tuple[str, str, str]]:
    """(task id, object key, status) of every file the RDS stand-in accepted for ``database``, in the
    order it accepted them."""
    found = [
        (f.create_time, task.migrate_task_id, f.key, f.status)
        for task in running.sandbox.rds.tasks.values()
        if task.db_name.lower() == database.lower()
        for f in task.files
    ]
    return [(task_id, key, status) for _, task_id, key, status in sorted(found)]


def assert_each_file_imported_once(running: RunningSandbox, database: str = DATABASE) -> list[str]:
    """From the stand-in's own records: no object key was imported twice. Returns the keys in order."""
    keys = [key for _, key, _ in stand_in_files(running, database)]
    twice = {k: n for k, n in Counter(keys).items() if n > 1}
    assert not twice, f"imported more than once: {twice}"
    return keys


def ledger_task_ids(spec) -> set[str]:
    return {e.migrate_task_id for e in steps_for(spec).read_ledger() if e.migrate_task_id}


def assert_every_answered_id_recorded(running: RunningSandbox, spec) -> None:
    """Every MigrateTaskId the stand-in created for the database is in the product's ledger."""
    answered = {t for t, _, _ in stand_in_files(running, spec.target.database or spec.source.database)}
    missing = answered - ledger_task_ids(spec)
    assert not missing, f"task ids RDS answered that the ledger does not hold: {missing}"


def target_rows(statement: str) -> list[tuple]:
    """Rows from the target (the migrated database) through the product's SQL hook."""
    from hooks.mssql import MigrationMsSqlHook

    return MigrationMsSqlHook(mssql_conn_id="mssql_target").get_records(statement)


def source_sql(running: RunningSandbox, statement: str, database: str = "master") -> None:
    source = running.sandbox.config["source"]
    with pymssql.connect(
        server="127.0.0.1",
        port=running.sandbox.ports["source"],
        user="sa",
        password=source["password"],
        database=database,
        tds_version="7.4",
        autocommit=True,
    ) as conn:
        conn.cursor().execute(statement)


# ---------------------------------------------------------------------------------------------------
# 7. Preflight: cluster edition, storage in MB
# ---------------------------------------------------------------------------------------------------


def test_preflight_refuses_cluster_edition_and_too_little_storage(airflow_db, sandbox_factory, capfd):
    """R8: no DescribeOssDownloads on a 2019 cluster edition (AlwaysOn) instance; R7: DBInstanceDiskUsed
    is in MB, so a nearly full 1 GB instance cannot take SalesDB's files (read as bytes, it looked empty)."""
    config = sandbox_config(workload_rate=0)
    config["rds"].update(engine_version="2019_ent", category="AlwaysOn", storage_gb=1)
    # ~970 MB used on the instance: DescribeDBInstanceAttribute answers DBInstanceDiskUsed of about 970 (MB).
    config["target"]["instance"]["databases"] = {"ArchiveDB": {"files": {"data_mb": 900}}}
    running = sandbox_factory(config)
    spec = make_spec(running.state_dir, "long_preflight", retries=0)

    dag_run, _ = run(airflow_db, spec, None)

    result = states(dag_run)
    assert str(dag_run.state) == "failed" and result["preflight"] == "failed", result
    assert result["full_backup"] == "upstream_failed", result
    message = preflight_error(capfd.readouterr().out)
    assert "target edition:" in message and "2019_ent" in message and "AlwaysOn" in message, message
    assert "target storage:" in message and " MB free for the " in message, message
    assert "Preflight failed 2 of" in message, message
    assert not running.sandbox.rds.tasks, "nothing was imported"


# ---------------------------------------------------------------------------------------------------
# 1 and 8. Eight days between the full and the cutover, the sandbox stopped and started meanwhile
# ---------------------------------------------------------------------------------------------------


def test_cutover_eight_days_later_across_a_sandbox_restart(airflow_db, sandbox_factory):
    """R1: DescribeMigrateTasks lists one week only; run 2 resumes by the MigrateTaskId in the ledger.

    Between the runs the sandbox stops and starts again with the same state dir (its SQL Servers keep
    their databases, msdb and the RESTORING target; OSS its objects; RDS its tasks, files and clock).
    Only the sandbox's clock moves (the worker's cannot, in one process): RDS's times are 8 days ahead
    of the product's, so nothing may depend on the two agreeing either.
    """
    running = sandbox_factory()
    spec = make_spec(running.state_dir, "long_8days", retries=0)
    first, answered = run(airflow_db, spec, "Reject")
    assert answered["answered"] and states(first)["wait_full_restored"] == "success", states(first)
    before = stand_in_files(running)
    (migrate_task_id,) = {t for t, _, _ in before}

    running.sandbox.clock.advance(timedelta(days=8))
    running.stop()
    again = sandbox_factory(running.sandbox.config, name=running.state_dir.name)

    assert again.state_dir == running.state_dir
    assert again.sandbox.clock.offset >= timedelta(days=8), "time never runs backwards"
    assert [(t, k) for t, k, _ in stand_in_files(again)] == [(t, k) for t, k, _ in before]
    assert again.sandbox.target.database_info(DATABASE)["state_desc"] == "RESTORING"
    assert access("mssql_source", DATABASE) == WRITABLE
    from hooks.rds import RdsMigrationHook

    # A hook whose clock agrees with RDS's (8 days on), as every real one would.
    later = RdsMigrationHook(rds_conn_id="rds_migration", clock=again.sandbox.clock.now)
    listed = [t.migrate_task_id for t in later.list_migration_tasks(spec.target.instance_id)]
    assert migrate_task_id not in listed, "DescribeMigrateTasks lists one week only (R1)"
    assert later.find_migration_task(spec.target.instance_id, DATABASE) is None
    assert later.get_task(spec.target.instance_id, migrate_task_id).status == "Waiting"
    # RDS removed its copies of the restored files meanwhile (R10): they read Deleted now.
    assert {f.status for f in later.get_file_states(spec.target.instance_id, migrate_task_id)} == {"Deleted"}

    second, answered = run(airflow_db, spec, "Approve")

    # Acknowledged writes from before and after the restart (the journal spans both) are on the target.
    result = assert_migrated(second, answered, again)
    assert result["resume"] == "success" and result["full_backup"] == "skipped", result
    assert xcom(second, "cutover")["migrate_task_id"] == migrate_task_id
    files = stand_in_files(again)
    assert {t for t, _, _ in files} == {migrate_task_id}, "no new migration task: the same one, by id"
    assert len(files) >= 3, files  # the full, logs, the tail
    assert_each_file_imported_once(again)
    assert_every_answered_id_recorded(again, spec)  # the default: incremental imports answer the same id


# ---------------------------------------------------------------------------------------------------
# 4. Child task ids, FileName as the object key
# ---------------------------------------------------------------------------------------------------


def test_child_task_ids_and_object_key_file_names(airflow_db, sandbox_factory):
    """R4 and R10 are UNKNOWN: here every incremental import answers a new child MigrateTaskId, and
    DescribeOssDownloads names files by their whole object key. (The other tests run the default: the
    parent's id and bare names.) A log's and the tail's CreateMigrateTask answers are lost too (R5): the
    hook finds those imports under their child ids."""
    config = sandbox_config()
    config["rds"].update(incremental_task_id="child", file_name_style="key")
    running = sandbox_factory(config)
    rds = running.sandbox.rds
    spec = make_spec(running.state_dir, "long_child", retries=0)
    when(lambda: bool(rds.tasks), lambda: rds.faults.next_create("accept_then_500"))  # the first log

    dag_run, answered = run(
        airflow_db, spec, "Approve", before=lambda: rds.faults.next_create("accept_then_drop")
    )

    assert_migrated(dag_run, answered, running)
    files = stand_in_files(running)
    parent = xcom(dag_run, "cutover")["migrate_task_id"]
    children = {t for t, _, _ in files} - {parent}
    assert len(children) == len(files) - 1 >= 2, files  # one child per log, the tail's included
    assert all(running.sandbox.rds.tasks[c].parent_id == parent for c in children)
    assert_every_answered_id_recorded(running, spec)
    assert_each_file_imported_once(running)
    assert not rds.faults.take_create_fault(), "every injected fault met an import"
    from hooks.rds import RdsMigrationHook

    listed = RdsMigrationHook(rds_conn_id="rds_migration").get_file_states(spec.target.instance_id, parent)
    assert listed and all("/" in f.file_name for f in listed), "the stand-in answered object keys"


# ---------------------------------------------------------------------------------------------------
# 5. Ambiguous CreateMigrateTask failures
# ---------------------------------------------------------------------------------------------------


def test_ambiguous_create_failures_import_each_file_once(airflow_db, sandbox_factory):
    """R5: CreateMigrateTask has no ClientToken. RDS accepts the import, then the answer is lost: a 500
    ExternalFailure, or the connection closed without a response. The full, a shipped log and the tail
    each meet one; the hook looks (DescribeOssDownloads / DescribeMigrateTasks) before importing again."""
    running = sandbox_factory()
    rds = running.sandbox.rds
    spec = make_spec(running.state_dir, "long_ambiguous", retries=0)
    rds.faults.next_create("accept_then_drop")  # the full
    when(
        lambda: any(len(t.files) == 1 for t in rds.tasks.values()),
        lambda: rds.faults.next_create("accept_then_500"),
    )

    dag_run, answered = run(
        airflow_db, spec, "Approve", before=lambda: rds.faults.next_create("accept_then_drop")
    )

    assert_migrated(dag_run, answered, running)
    assert not rds.faults.take_create_fault(), "every injected fault met an import"
    keys = assert_each_file_imported_once(running)
    tail = xcom(dag_run, "cutover")["tail"]["file_name"]
    assert "_FULL_" in keys[0] and keys[-1].endswith(tail) and len(keys) >= 3, keys
    assert_every_answered_id_recorded(running, spec)


# ---------------------------------------------------------------------------------------------------
# 6. A terminated migration task
# ---------------------------------------------------------------------------------------------------


def test_terminated_task_stops_with_advice_then_start_over(airflow_db, sandbox_factory, capfd):
    """R3: Terminated is terminal. Someone terminates the task while the approval waits; the next run
    stops at choose_start saying how to go on, and ``{"start_over": true}`` migrates from a new full."""
    running = sandbox_factory()
    spec = make_spec(running.state_dir, "long_terminated", retries=0)
    from hooks.rds import RdsMigrationHook

    hook = RdsMigrationHook(rds_conn_id="rds_migration")

    def terminate() -> None:
        (task_id,) = {t for t, _, _ in stand_in_files(running)}
        assert hook.terminate_migration_task(spec.target.instance_id, task_id).status == "Terminated"

    first, answered = run(airflow_db, spec, "Reject", before=terminate)
    assert answered["answered"] and str(first.state) == "success", states(first)
    (terminated,) = {t for t, _, _ in stand_in_files(running)}
    capfd.readouterr()

    second, _ = run(airflow_db, spec, None)

    result = states(second)
    assert str(second.state) == "failed" and result["choose_start"] == "failed", result
    assert result["full_backup"] == "skipped" or result["full_backup"] == "upstream_failed", result
    output = capfd.readouterr().out
    assert f"Migration task {terminated} is Terminated: someone stopped it" in output, output[-3000:]
    assert '{"start_over": true}' in output, output[-3000:]
    assert running.sandbox.rds.tasks[terminated].status == "Terminated"

    third, answered = run(airflow_db, spec, "Approve", conf={"start_over": True})

    result = assert_migrated(third, answered, running)
    assert result["full_backup"] == "success" and result["resume"] == "skipped", result
    new_task = xcom(third, "cutover")["migrate_task_id"]
    assert new_task != terminated
    assert running.sandbox.rds.tasks[terminated].status == "Terminated"
    files = stand_in_files(running)
    assert [k for t, k, _ in files if t == new_task][0].split("/")[-1].split("_")[1] == "FULL", files
    events = [e.event for e in steps_for(spec).read_ledger()]
    assert "migration_abandoned" in events
    assert_every_answered_id_recorded(running, spec)  # the terminated task's and the new one's


# ---------------------------------------------------------------------------------------------------
# 2. The import quota
# ---------------------------------------------------------------------------------------------------

#: The quota's day scaled down, on both sides (stand-in ``quota_window_s``, product ``window_hours``):
#: 18 s make the planner's pace 1 s (18 imports outside the reserve per window).
QUOTA_WINDOW_S = 18
QUOTA_REFUSALS = {"UploadLimitExceeded", "ExceedUploadTime", "ConcurrentTaskExceeded"}


def quota_config(window_s: float = QUOTA_WINDOW_S, **rds: Any) -> dict[str, Any]:
    config = sandbox_config()
    config["rds"].update(quota_window="rolling", quota_window_s=window_s, max_imports_per_day=20, **rds)
    config["rds"]["timing"].update(step_delay_s=0.05)
    config["workload"]["idle_every_s"] = None  # busy all along: every log backup is worth shipping
    return config


def quota_spec(running: RunningSandbox, name: str, window_s: float = QUOTA_WINDOW_S, **overrides: Any):
    quota = {"window_hours": window_s / 3600, "per_database": 20, **overrides.pop("import_quota", {})}
    return make_spec(running.state_dir, name, retries=0, import_quota=quota, **overrides)


def accepted_imports(running: RunningSandbox, database: str = DATABASE) -> list[float]:
    """Sandbox times at which the stand-in accepted a CreateMigrateTask of ``database``."""
    return [
        a.at
        for a in running.sandbox.rds.answers
        if a.action == "CreateMigrateTask" and a.db_name == database and a.status == 200
    ]


def busiest_window(times: list[float], window_s: float) -> int:
    """The most imports any rolling window of ``window_s`` held."""
    return max((sum(1 for t in times if end - window_s < t <= end) for end in times), default=0)


def test_fast_cadence_never_runs_out_of_import_quota(airflow_db, sandbox_factory):
    """Log backups every 0.2 s would spend a database's 20 imports within the (18 s) window; the planner
    stretches the cadence to its pace (18 imports per window outside the cutover's reserve of 2: 1 s),
    the loop ships more imports than one window allows, and RDS never refuses one: the tail finds its
    reserve."""
    running = sandbox_factory(quota_config())
    spec = quota_spec(running, "long_quota", cutover_threshold_mb=0.005)  # ~1 s of writes: keep shipping
    # Once more imports than one window's quota were accepted, the applications go quiet: the next log
    # backup is small and the loop ends.
    when(lambda: len(accepted_imports(running)) > 20, running.sandbox.stop_workload, timeout=240)

    dag_run, answered = run(airflow_db, spec, "Approve", interval=timedelta(milliseconds=200))

    assert_migrated(dag_run, answered, running)
    refused = [a for a in running.sandbox.rds.answers if a.code in QUOTA_REFUSALS]
    assert not refused, refused
    accepted = accepted_imports(running)
    assert len(accepted) > 21, "more imports than one window allows: the full, 20+ logs, the tail"
    reserve = spec.import_quota.cutover_reserve
    assert busiest_window(accepted[:-1], QUOTA_WINDOW_S) <= 20 - reserve, (
        "log shipping never spent the reserve"
    )
    assert busiest_window(accepted, QUOTA_WINDOW_S) <= 20
    logs = accepted[1:-1]
    gaps = [b - a for a, b in zip(logs, logs[1:], strict=False)]
    assert min(gaps) >= 1, f"the 0.2 s interval was stretched to the quota's pace (1 s): {gaps}"
    body = answered["body"]
    assert "Import quota: SalesDB:" in body and "kept for the cutover" in body, body
    assert "The cutover fits the import quota" in body, body
    assert_each_file_imported_once(running)
    report = xcom(dag_run, "report")
    assert "imports used in the last 18 s" in report["import_quota"], report  # the report shows it too


OTHERS_FULL_KEY = "e2e/others/ReportsDB_FULL.bak"


def reports_db(config: dict[str, Any]) -> dict[str, Any]:
    """Another database on the source, whose full backup other migrations import."""
    config["source"]["instance"]["databases"]["ReportsDB"] = {"tables": [{"name": "daily", "rows": 5}]}
    return config


def import_other_databases(running: RunningSandbox, count: int) -> list[str]:
    """``count`` full imports of other databases on the RDS instance, through the hook: they spend the
    instance's import quota (R2: 500 a day per instance, here scaled down)."""
    from hooks.oss import OssMigrationHook
    from hooks.rds import RdsMigrationHook

    folder = running.state_dir / "source-backups" / "Others"
    folder.mkdir(parents=True, exist_ok=True)
    local = folder / "ReportsDB_FULL.bak"
    if not local.exists():
        source_sql(running, "BACKUP DATABASE [ReportsDB] TO DISK = 'D:\\Backups\\Others\\ReportsDB_FULL.bak'")
        OssMigrationHook(oss_conn_id="oss_migration").upload_file(
            "migration-sandbox", local, OTHERS_FULL_KEY, checkpoint_dir=folder / ".ckpt"
        )
    hook = RdsMigrationHook(rds_conn_id="rds_migration")
    position = f"oss-cn-hangzhou.aliyuncs.com:migration-sandbox:{OTHERS_FULL_KEY}"
    taken = len([t for t in running.sandbox.rds.tasks.values() if t.db_name.startswith("OtherDB")])
    return [
        hook.create_migration_task("rm-sandbox0001", f"OtherDB{taken + i}", position) for i in range(count)
    ]


def test_briefing_says_when_other_databases_leave_no_room_for_the_cutover(airflow_db, sandbox_factory):
    """Other databases' imports nearly spend the instance's quota while the migration waits for its
    approval: the briefing says the cutover cannot be done before a given time, before anyone approves."""
    window_s, per_instance = 60, 8
    config = reports_db(quota_config(window_s, max_imports_per_instance_per_day=per_instance))
    config["workload"]["enabled"] = False  # nothing written after the first run: the second ships nothing
    running = sandbox_factory(config)
    spec = quota_spec(running, "long_others", window_s, import_quota={"per_instance": per_instance})
    first, answered = run(airflow_db, spec, "Reject")
    assert answered["answered"] and states(first)["ship_logs"] == "success", states(first)
    ours = accepted_imports(running)
    # The instance's window holds ours and 5 others: 1 import left, and the cutover needs 2 (tail, retry).
    import_other_databases(running, per_instance - 1 - len(ours))

    second, answered = run(airflow_db, spec, "Reject")

    body = answered["body"]
    assert "The cutover cannot be done within the remaining budget until" in body, body
    assert "it needs 2 imports (the tail log, 1 retry) and only 1 are available now" in body, body
    until = re.search(r"remaining budget until (\S+ \S+) UTC", body).group(1)
    frees = datetime.fromisoformat(until + ("" if until.count(":") == 2 else ":00")).replace(tzinfo=UTC)
    # When our full leaves the instance's window (RDS lists times to the second).
    assert abs(frees.timestamp() - (ours[0] + window_s)) <= 2, (frees, ours[0] + window_s)
    assert f"(instance: {per_instance - 1} of {per_instance})" in body, body
    assert not [a for a in running.sandbox.rds.answers if a.code in QUOTA_REFUSALS]


# ---------------------------------------------------------------------------------------------------
# 3. A differential catches up with a backlog the budget cannot carry
# ---------------------------------------------------------------------------------------------------


def test_differential_catches_up_a_backlog_before_any_log_is_applied(airflow_db, sandbox_factory):
    """The nightly job (its folder adopted) takes three log backups while the full is still restoring, and
    other databases leave the instance no import to spare: rather than spend the imports one log at a
    time (or wait), the planner takes a differential, which supersedes the three in one import; the chain
    goes on (FULL, DIFF, then logs) and validates."""
    # Margins for a loaded machine: the backlog is ready ~6 s before the full is restored, and the other
    # databases' imports are still in the window ~8 s after that.
    window_s, per_instance = 15, 8
    config = reports_db(quota_config(window_s, max_imports_per_instance_per_day=per_instance))
    config["workload"]["enabled"] = False
    config["source"]["instance"]["databases"]["SalesDB"]["backup_padding_bytes"] = {"full": 12_000_000}
    config["rds"]["timing"].update(restore_mb_per_s=2)  # the full restores for ~6 s
    running = sandbox_factory(config)
    nightly = running.state_dir / "source-backups" / "Nightly"
    spec = quota_spec(
        running,
        "long_diff",
        window_s,
        import_quota={"per_instance": per_instance},
        backup_folder={"adopt_from": [{"server_path": "D:\\Backups\\Nightly", "worker_path": str(nightly)}]},
    )
    import_other_databases(running, 0)  # the other databases' backup is in OSS before the run
    rds = running.sandbox.rds

    def nightly_job_and_other_databases() -> None:
        source_sql(running, "CREATE TABLE dbo.batches (id int PRIMARY KEY, note nvarchar(50))", DATABASE)
        for n in range(1, 4):
            source_sql(running, f"INSERT INTO dbo.batches VALUES ({n}, N'before the differential')", DATABASE)
            device = f"D:\\Backups\\Nightly\\SalesDB_job_LOG_{n}.trn"
            source_sql(running, f"BACKUP LOG [SalesDB] TO DISK = '{device}' WITH CHECKSUM")
        # Ours (the full) and 6 others: 1 import left on the instance, 2 kept for the cutover.
        import_other_databases(running, per_instance - 2)

    def full_restoring() -> bool:
        return any(
            t.db_name == DATABASE and t.files and t.files[0].status != "Restored" for t in rds.tasks.values()
        )

    def differential_listed() -> bool:
        return any(f.key.endswith(".diff") for t in rds.tasks.values() for f in t.files)

    backlog = when(full_restoring, nightly_job_and_other_databases)
    later = when(
        differential_listed,
        lambda: source_sql(
            running, "INSERT INTO dbo.batches VALUES (100, N'after the differential')", DATABASE
        ),
    )

    dag_run, answered = run(airflow_db, spec, "Approve")

    backlog.join(1)
    later.join(1)
    assert not backlog.is_alive() and not later.is_alive()
    assert_migrated(dag_run, answered)
    keys = assert_each_file_imported_once(running)
    kinds = [key.rsplit(".", 1)[-1] for key in keys]
    assert kinds[:2] == ["bak", "diff"] and set(kinds[2:]) == {"trn"} and len(kinds) >= 3, keys
    assert not any("_job_LOG_" in key for key in keys), "the differential superseded the job's three logs"
    assert not [a for a in rds.answers if a.code in QUOTA_REFUSALS]
    rows = dict(target_rows("SELECT id, note FROM [SalesDB].dbo.batches"))
    assert rows == {
        1: "before the differential",
        2: "before the differential",
        3: "before the differential",
        100: "after the differential",
    }
