"""Databases people really have migrate, and every way out the product offers works (issue #9).

Whole DAG with ``dag.test()`` against the sandbox, unless a scenario says otherwise:

1. another job's log backup after our full stops the next shipping before anything is uploaded; each way
   out the message gives works: (a) copy the file into the backup folder, (b) adopt that job's folder,
   (c) start over from a new full; and a file someone imported by hand does not stop later runs;
2. an idle database: empty log backups (in the loop and the tail) are skipped, recorded, never imported;
3. recovery forks: a log spanning the fork of a rolled-back NORECOVERY tail continues the migration; a
   source restored from an older backup is refused with the fork message, nothing uploaded;
4. preflight: missing rights (and granting exactly what it says), compression on a Web edition, a log
   file larger than the target's free space;
5. SQL Server 2022: backups pin ``COMPRESSION (ALGORITHM = MS_XPRESS)``;
6. a login whose default database is the migrated one (the hook connects to master);
7. a British session language reads msdb history (the old literal form fails with 242);
8. the demo's job history: preflight warns once per striped set and ignores COPY_ONLY logs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import oss2
import pymssql
import pytest

from tests.e2e.conftest import DATABASE, RunningSandbox, make_spec, sandbox_config
from tests.e2e.dag_helpers import WRITABLE, access, approval, states, xcom

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("keep_defer_kwargs")]

OTHER_JOB_FOLDER = "D:\\Backups\\Nightly"  # the demo's nightly job writes here (sandbox.yaml history)


# ---------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------


def connect(running: RunningSandbox, database: str = "master", **kwargs: Any) -> pymssql.Connection:
    """A plain pymssql connection to the source as sa (another job, an administrator)."""
    options = {
        "server": "127.0.0.1",
        "port": running.sandbox.ports["source"],
        "user": "sa",
        "password": running.sandbox.config["source"]["password"],
        "database": database,
        "tds_version": "7.4",
        "autocommit": True,
    }
    return pymssql.connect(**{**options, **kwargs})


def run_sql(running: RunningSandbox, *statements: str, database: str = "master") -> None:
    with connect(running, database) as conn:
        cursor = conn.cursor()
        for statement in statements:
            cursor.execute(statement)
            while cursor.nextset():
                pass


_next_id = iter(range(5_000_000, 6_000_000))


def write_rows(running: RunningSandbox, count: int = 3) -> None:
    """Application writes, so the next log backup holds log records whatever the workload does."""
    values = ", ".join(f"({next(_next_id)}, N'issue 9', 9.90, '2026-01-24 10:00:00')" for _ in range(count))
    run_sql(
        running,
        f"INSERT INTO dbo.customers (id, customer, amount, created) VALUES {values}",
        database=DATABASE,
    )


def steps_of(spec):
    from operators.steps import MigrationSteps

    return MigrationSteps(spec)


def oss_keys(steps) -> set[str]:
    """Backup files under the migration's prefix, listed with oss2 (not the ledger, not the run reports)."""
    bucket = steps.oss.get_bucket(steps.bucket)
    keys = {o.key for o in oss2.ObjectIteratorV2(bucket, prefix=steps.key_prefix)}
    return {k for k in keys if k != steps.ledger_key and not k.startswith(steps.report_key(""))}


def rds_file_names(steps, migrate_task_id: str) -> list[str]:
    return [f.file_name for f in steps.rds.get_file_states(steps.instance_id, migrate_task_id)]


def failure_message(output: str, marker: str) -> str:
    """The failing task's message (it spans lines) from the task log dag.test() printed."""
    start = output.rfind(marker)
    assert start >= 0, output[-3000:]
    return output[start : start + 4000]


def assert_migrated(dag_run, running: RunningSandbox) -> dict[str, Any]:
    """The run cut over, opened, validated and released the target; returns the validation."""
    result = states(dag_run)
    assert str(dag_run.state) == "success", result
    for task in ("cutover", "validate", "release_target", "report"):
        assert result[task] == "success", result
    validation = xcom(dag_run, "validate")
    assert validation["differences"] == [] and validation["problems"] == [] and validation["rows"] > 0
    assert access("mssql_target", DATABASE) == WRITABLE
    return validation


def run_dag(airflow_db, spec, option: str | None, run_conf: dict | None = None):
    dag = airflow_db.dags(spec)[f"mssql_to_rds__{spec.name}"]
    if option is None:
        return dag.test(run_conf=run_conf)
    with approval(dag.dag_id, option) as answered:
        dag_run = dag.test(run_conf=run_conf)
    assert answered["answered"] or str(dag_run.state) == "failed", states(dag_run)
    return dag_run


# ---------------------------------------------------------------------------------------------------
# 1. Another job's log backup after our full
# ---------------------------------------------------------------------------------------------------


def other_job_log(running: RunningSandbox, name: str) -> Path:
    """Another job's log backup to its own folder (after application writes): returns its local file."""
    write_rows(running)
    run_sql(running, f"BACKUP LOG [{DATABASE}] TO DISK = N'{OTHER_JOB_FOLDER}\\{name}' WITH INIT, CHECKSUM")
    write_rows(running)
    path = running.state_dir / "source-backups" / "Nightly" / name
    assert path.is_file()
    return path


def break_the_chain(airflow_db, running, spec, capfd) -> tuple[Path, str]:
    """Run 1 (rejected at the approval), another job's log backup, then run 2 fails in ship_logs before
    uploading anything, naming the file and the ways out. Returns the other job's file and the message."""
    first = run_dag(airflow_db, spec, "Reject")
    assert states(first)["ship_logs"] == "success", states(first)
    steps = steps_of(spec)
    migrate_task_id = steps.find_migration_task_id()
    files_before, keys_before = rds_file_names(steps, migrate_task_id), oss_keys(steps)
    capfd.readouterr()

    other = other_job_log(running, "SalesDB_LOG_nightly_0917.trn")
    second = run_dag(airflow_db, spec, "Reject")

    result = states(second)
    assert str(second.state) == "failed" and result["ship_logs"] == "failed", result
    assert result["approve_cutover"] == "upstream_failed", result
    message = failure_message(capfd.readouterr().out, "The restore chain cannot continue")
    # The file and the folder as the user types them (not repr's doubled backslashes), and every way out.
    assert f"to '{OTHER_JOB_FOLDER}\\{other.name}'" in message, message
    for way_out in (
        f"copy '{OTHER_JOB_FOLDER}\\{other.name}' into the migration's backup folder 'D:\\Backups\\{DATABASE}'",
        f"backup_folder.adopt_from in the migration config (server_path: '{OTHER_JOB_FOLDER}'",
        'trigger this DAG with the run conf {"start_over": true}',
    ):
        assert way_out in message, (way_out, message)
    assert oss_keys(steps) == keys_before, "nothing uploaded"
    assert rds_file_names(steps, migrate_task_id) == files_before, "nothing imported"
    return other, migrate_task_id


def test_other_jobs_log_then_copy_it_into_the_backup_folder(airflow_db, sandbox_factory, capfd):
    running = sandbox_factory()
    spec = make_spec(running.state_dir, "e2e_copy_other", retries=0)
    other, migrate_task_id = break_the_chain(airflow_db, running, spec, capfd)

    shutil.copy2(other, Path(spec.backup_folder.worker_path) / other.name)
    dag_run = run_dag(airflow_db, spec, "Approve")

    assert_migrated(dag_run, running)
    steps = steps_of(spec)
    copied = [e for e in steps.read_ledger() if e.event == "uploaded" and e.details.get("origin") == "copied"]
    assert len(copied) == 1 and copied[0].backup.physical_device_name.endswith(other.name), copied
    assert copied[0].file_name in rds_file_names(steps, migrate_task_id)


def test_other_jobs_log_then_adopt_its_folder(airflow_db, sandbox_factory, capfd):
    running = sandbox_factory()
    spec = make_spec(running.state_dir, "e2e_adopt_other", retries=0)
    other, migrate_task_id = break_the_chain(airflow_db, running, spec, capfd)

    adopting = make_spec(
        running.state_dir,
        "e2e_adopt_other",
        retries=0,
        backup_folder={"adopt_from": [{"server_path": OTHER_JOB_FOLDER, "worker_path": str(other.parent)}]},
    )
    dag_run = run_dag(airflow_db, adopting, "Approve")

    assert_migrated(dag_run, running)
    steps = steps_of(adopting)
    adopted = [
        e for e in steps.read_ledger() if e.event == "uploaded" and e.details.get("origin") == "adopted"
    ]
    assert [e.backup.physical_device_name for e in adopted] == [f"{OTHER_JOB_FOLDER}\\{other.name}"], adopted
    assert adopted[0].file_name in rds_file_names(steps, migrate_task_id)
    # The nightly job's older logs (before our full) are in that folder too: covered, never imported.
    assert len(adopted) == 1


@pytest.mark.parametrize("terminates", [True, False], ids=["terminate", "terminate-refused"])
def test_other_jobs_log_then_start_over(airflow_db, sandbox_factory, capfd, terminates):
    """Start over abandons the old migration task: terminated, or — when RDS refuses to terminate an
    Access Pending task (R3, UNKNOWN: ``terminate_updf_tasks``) — ended by dropping its database."""
    config = sandbox_config()
    config["rds"]["terminate_updf_tasks"] = terminates
    running = sandbox_factory(config)
    spec = make_spec(running.state_dir, f"e2e_start_over_{terminates}", retries=0)
    _, old_task_id = break_the_chain(airflow_db, running, spec, capfd)

    dag_run = run_dag(airflow_db, spec, "Approve", run_conf={"start_over": True})

    assert_migrated(dag_run, running)
    result = states(dag_run)
    assert result["full_backup"] == "success" and result["resume"] == "skipped", result
    steps = steps_of(spec)
    tasks = {
        t.migrate_task_id: t.status
        for t in steps.rds.list_migration_tasks(steps.instance_id)
        if t.db_name == DATABASE
    }
    new_task_id = xcom(dag_run, "cutover")["migrate_task_id"]
    assert new_task_id != old_task_id
    assert (tasks[old_task_id] == "Terminated") is terminates, tasks
    assert tasks[new_task_id] == "Success", tasks
    assert steps.rds.database_names(steps.instance_id).count(DATABASE) == 1
    abandoned = [e for e in steps.read_ledger() if e.event == "migration_abandoned"]
    assert [e.migrate_task_id for e in abandoned] == [old_task_id], abandoned


def test_other_jobs_log_imported_by_hand_does_not_stop_later_runs(airflow_db, sandbox_factory, capfd):
    running = sandbox_factory()
    spec = make_spec(running.state_dir, "e2e_by_hand", retries=0)
    other, migrate_task_id = break_the_chain(airflow_db, running, spec, capfd)

    # Someone uploads the other job's file under its own name and imports it into the task by hand.
    steps = steps_of(spec)
    steps.oss.upload_file(
        steps.bucket, other, steps.object_key(other.name), checkpoint_dir=str(running.state_dir / "by-hand")
    )
    answered = steps.rds.import_incremental(
        steps.instance_id, DATABASE, migrate_task_id, steps.oss_position(other.name)
    )
    steps.rds.wait_for_file_state(steps.instance_id, answered, other.name, timeout=60, poll=0.2)

    dag_run = run_dag(airflow_db, spec, "Approve")

    assert_migrated(dag_run, running)
    files = rds_file_names(steps, migrate_task_id)
    assert files.count(other.name) == 1, files
    assert "LookupError" not in capfd.readouterr().out


# ---------------------------------------------------------------------------------------------------
# 2. An idle database: empty log backups are skipped, recorded, never imported
# ---------------------------------------------------------------------------------------------------


def test_idle_database_skips_empty_logs_in_the_loop_and_at_cutover(airflow_db, sandbox_factory):
    config = sandbox_config(workload_rate=0)
    config["target"]["instance"]["empty_log_restore"] = "refuse"  # importing one would fail the migration
    running = sandbox_factory(config)
    spec = make_spec(running.state_dir, "e2e_idle", retries=0)
    first = run_dag(airflow_db, spec, "Reject")  # the full, and a first log (never empty after a full)
    assert states(first)["ship_logs"] == "success", states(first)

    dag_run = run_dag(airflow_db, spec, "Approve")

    assert_migrated(dag_run, running)
    steps = steps_of(spec)
    migrate_task_id = xcom(dag_run, "cutover")["migrate_task_id"]
    entries = steps.read_ledger()
    skipped = {e.file_name: e for e in entries if e.event == "skipped"}
    tail = xcom(dag_run, "cutover")["tail"]
    assert tail["first_lsn"] == tail["last_lsn"], "nothing was written: the tail-log backup is empty"
    loop_logs = [
        e.file_name
        for e in entries
        if e.event == "backup_taken" and e.run_id == dag_run.run_id and e.details.get("kind") == "LOG"
    ]
    assert len(loop_logs) >= 2, loop_logs  # the loop's log(s) and the tail
    assert set(loop_logs) <= set(skipped), (loop_logs, list(skipped))
    assert all("empty" in e.details["reason"] for e in skipped.values()), skipped
    imported = set(rds_file_names(steps, migrate_task_id))
    assert not imported & set(skipped), "an empty log backup was imported"
    assert not [e for e in entries if e.event in ("uploaded", "import_requested") and e.file_name in skipped]


# ---------------------------------------------------------------------------------------------------
# 3. Recovery forks
# ---------------------------------------------------------------------------------------------------


def our_backup_name(kind: str, seq: int) -> str:
    from datetime import UTC, datetime

    from rds_migration.naming import backup_file_name

    return backup_file_name(DATABASE, kind, datetime.now(UTC), seq=seq)


def test_log_spanning_the_fork_of_an_old_style_rollback_continues(airflow_db, sandbox_factory):
    """An older cutover took a NORECOVERY tail, shipped it, and was rolled back WITH RECOVERY: the next log
    spans the new fork, which begins where the target stands, so the migration goes on."""
    running = sandbox_factory(sandbox_config(workload_rate=0))  # a NORECOVERY tail needs exclusive access
    spec = make_spec(running.state_dir, "e2e_fork_ok", retries=0)
    run_dag(airflow_db, spec, "Reject")
    steps = steps_of(spec)
    migrate_task_id = steps.find_migration_task_id()

    write_rows(running)
    tail = our_backup_name("LOG", 90)
    run_sql(
        running,
        f"BACKUP LOG [{DATABASE}] TO DISK = N'{steps.server_path(tail)}' WITH INIT, CHECKSUM, NORECOVERY",
    )
    assert access("mssql_source", DATABASE)[0] == "RESTORING"
    (item,) = steps.chain_state(migrate_task_id).pending  # the product ships the tail it finds in its folder
    assert item.import_name == tail
    steps.upload(item)
    steps.import_backup(migrate_task_id, item)
    steps.rds.wait_for_file_state(steps.instance_id, migrate_task_id, tail, timeout=60, poll=0.2)
    run_sql(running, f"RESTORE DATABASE [{DATABASE}] WITH RECOVERY")  # the old rollback: a new fork starts
    write_rows(running)

    dag_run = run_dag(airflow_db, spec, "Approve")

    assert_migrated(dag_run, running)
    spanning = [
        e.backup
        for e in steps.read_ledger()
        if e.event == "import_requested" and e.backup is not None and e.backup.spans_fork
    ]
    assert len(spanning) == 1, "the first log after the recovery spans the fork, and was imported"
    assert spanning[0].fork_point_lsn == steps.source.find_backup(DATABASE, steps.server_path(tail)).last_lsn


def test_source_restored_from_an_older_backup_is_refused_before_any_upload(
    airflow_db, sandbox_factory, capfd
):
    """The source is restored from our full (older than what the target holds) and recovered: its LSNs
    restart at the full's end, below the target's restore point, on a new fork. The next shipping fails
    with the fork message — its log only *looks* covered — and nothing is uploaded."""
    running = sandbox_factory(sandbox_config(workload_rate=0))  # RESTORE over the source needs it unused
    spec = make_spec(running.state_dir, "e2e_fork_refused", retries=0)
    first = run_dag(airflow_db, spec, "Reject")
    full = xcom(first, "full_backup")["file_name"]
    write_rows(running, 40)
    second = run_dag(airflow_db, spec, "Reject")  # ships those writes: the target is well past the full
    assert states(second)["ship_logs"] == "success", states(second)
    steps = steps_of(spec)
    migrate_task_id = steps.find_migration_task_id()
    files_before, keys_before = rds_file_names(steps, migrate_task_id), oss_keys(steps)
    capfd.readouterr()

    run_sql(
        running,
        f"RESTORE DATABASE [{DATABASE}] FROM DISK = N'{steps.server_path(full)}' WITH REPLACE, RECOVERY",
    )
    write_rows(running, 1)
    dag_run = run_dag(airflow_db, spec, "Reject")

    result = states(dag_run)
    assert str(dag_run.state) == "failed" and result["ship_logs"] == "failed", result
    message = failure_message(capfd.readouterr().out, "The restore chain cannot continue")
    assert "recovery fork" in message and "Start the migration over from a new full backup" in message, (
        message
    )
    assert '"start_over": true' in message, message
    assert oss_keys(steps) == keys_before, "nothing uploaded"
    assert rds_file_names(steps, migrate_task_id) == files_before, "nothing imported"

    # The way out the message gives: start over from a new full of the source as it is now.
    over = run_dag(airflow_db, spec, "Approve", run_conf={"start_over": True})
    assert_migrated(over, running)
    assert xcom(over, "cutover")["migrate_task_id"] != migrate_task_id


# ---------------------------------------------------------------------------------------------------
# 4. Preflight: rights, compression on an edition that cannot compress, storage
# ---------------------------------------------------------------------------------------------------

MIGRATOR = {"password": "Sandbox!Migrator1"}


def preflight_failure(output: str) -> str:
    lines = [line for line in output.splitlines() if "Preflight failed" in line]
    assert lines, output[-3000:]
    return lines[-1]


def use_source_login(monkeypatch, running: RunningSandbox, login: str, password: str, **extra: Any) -> None:
    """Point the source connection at another login (and connection extras)."""
    conn = running.connections()["mssql_source"]
    conn = {
        **conn,
        "login": login,
        "password": password,
        "extra": {**conn["extra"], **extra.pop("extra", {})},
    }
    conn.update(extra)
    monkeypatch.setenv("AIRFLOW_CONN_MSSQL_SOURCE", json.dumps(conn))


def test_preflight_names_missing_rights_and_passes_once_granted(
    airflow_db, sandbox_factory, capfd, monkeypatch
):
    config = sandbox_config(workload_rate=0)
    config["source"]["instance"]["logins"]["migrator"] = MIGRATOR
    config["source"]["instance"]["databases"][DATABASE]["users"]["migrator"] = ["db_backupoperator"]
    running = sandbox_factory(config)
    use_source_login(monkeypatch, running, "migrator", MIGRATOR["password"])
    spec = make_spec(running.state_dir, "e2e_rights", retries=0)

    refused = run_dag(airflow_db, spec, None)

    result = states(refused)
    assert result["preflight"] == "failed" and result["full_backup"] == "upstream_failed", result
    message = preflight_failure(capfd.readouterr().out)
    assert (
        "source rights: migrator may not run: ALTER DATABASE (freeze, and its undo on rollback); DBCC CHECKDB"
        in message
    ), message
    grant = f"USE [{DATABASE}]; ALTER ROLE [db_owner] ADD MEMBER [migrator];"
    assert grant in message, message
    assert "Preflight failed 1 of" in message, message

    run_sql(running, grant.rstrip(";"))  # exactly what the message says, as an administrator
    granted = run_dag(airflow_db, spec, "Reject")

    result = states(granted)
    assert result["preflight"] == "success" and result["ship_logs"] == "success", result
    rights = [c for c in xcom(granted, "preflight")["checks"] if c["name"] == "source rights"]
    assert rights[0] == {
        "name": "source rights",
        "status": "pass",
        "detail": "migrator may run every step (granted rights)",
        "fix": "",
    }
    # Still a warning: adopting a copied file verifies its header, which needs CREATE DATABASE.
    headers = "ALTER SERVER ROLE [dbcreator] ADD MEMBER [migrator];"
    assert rights[1]["status"] == "warn" and headers in rights[1]["fix"], rights

    run_sql(running, headers.rstrip(";"))
    again = run_dag(airflow_db, spec, "Reject")
    rights = [c for c in xcom(again, "preflight")["checks"] if c["name"] == "source rights"]
    assert [c["status"] for c in rights] == ["pass"], rights


def test_preflight_refuses_compression_on_web_edition_and_a_log_larger_than_the_free_storage(
    airflow_db, sandbox_factory, capfd
):
    config = sandbox_config(workload_rate=0)
    config["source"]["instance"]["edition"] = "Web Edition (64-bit)"  # cannot create compressed backups
    config["source"]["instance"]["databases"][DATABASE]["files"] = {"log_mb": 3 * 1024}  # 3 GB of log
    config["rds"]["storage_gb"] = 2  # data fits, the log does not: RESTORE recreates it at its size
    running = sandbox_factory(config)
    spec = make_spec(running.state_dir, "e2e_web_storage", retries=0, compression="on")

    dag_run = run_dag(airflow_db, spec, None)

    result = states(dag_run)
    assert result["preflight"] == "failed" and result["full_backup"] == "upstream_failed", result
    message = preflight_failure(capfd.readouterr().out)
    assert "Preflight failed 2 of" in message, message
    assert (
        "backup compression: compression: on, but Web Edition (64-bit) cannot create compressed backups (error 1844)"
        in message
    ), message
    assert "set compression: auto (or off)" in message, message
    assert "target storage:" in message and "(LOG 3.0 GB, ROWS 8 MB)" in message, message
    steps = steps_of(spec)
    assert steps.our_history() == [], "no backup was attempted"

    # What the messages say: compression auto (or off), and more storage on the instance.
    running.sandbox.rds.config.storage_gb = 20
    fixed = run_dag(airflow_db, spec.model_copy(update={"compression": "auto"}), "Reject")
    checks = {c["name"]: c for c in xcom(fixed, "preflight")["checks"]}
    assert checks["backup compression"] == {
        "name": "backup compression",
        "status": "pass",
        "detail": "off (auto)",
        "fix": "",
    }
    assert checks["target storage"]["status"] == "pass", checks["target storage"]
    assert states(fixed)["ship_logs"] == "success", states(fixed)


# ---------------------------------------------------------------------------------------------------
# 5. SQL Server 2022: the compression algorithm is decided, not left to the server's default
# ---------------------------------------------------------------------------------------------------


def test_sql_server_2022_source_pins_ms_xpress_and_migrates(airflow_db, sandbox_factory):
    config = sandbox_config()
    config["source"]["instance"]["product_version"] = "16.0.4135.4"
    # The server's default is QAT (sp_configure 'backup compression algorithm', 2): whether RDS restores
    # QAT backups is not documented, so the product must name MS_XPRESS itself.
    config["source"]["instance"]["backup_compression_algorithm"] = "QAT_DEFLATE"
    config["target"]["instance"]["product_version"] = "16.0.4135.4"  # RDS 2022_std_ha
    running = sandbox_factory(config)
    spec = make_spec(running.state_dir, "e2e_sql2022", retries=0)

    dag_run = run_dag(airflow_db, spec, "Approve")

    assert_migrated(dag_run, running)
    checks = {c["name"]: c for c in xcom(dag_run, "preflight")["checks"]}
    assert checks["backup compression"]["detail"] == "on (ALGORITHM = MS_XPRESS)", checks[
        "backup compression"
    ]
    steps = steps_of(spec)
    ours = {r.file_name for r in steps.our_history()}
    with connect(running, "msdb") as conn:
        cursor = conn.cursor()
        cursor.execute(
            "SELECT bmf.physical_device_name, bs.compression_algorithm FROM msdb.dbo.backupset AS bs "
            "JOIN msdb.dbo.backupmediafamily AS bmf ON bmf.media_set_id = bs.media_set_id "
            "WHERE bs.database_name = %s",
            (DATABASE,),
        )
        algorithms = {device.split("\\")[-1]: algorithm for device, algorithm in cursor.fetchall()}
    assert len(ours) >= 3 and {algorithms[name] for name in ours} == {"MS_XPRESS"}, algorithms


# ---------------------------------------------------------------------------------------------------
# 6. A login whose default database is the migrated one
# ---------------------------------------------------------------------------------------------------

HOMED = {"password": "Sandbox!Homed1", "sysadmin": True, "default_database": DATABASE}


def test_login_whose_default_database_is_the_migrated_one(airflow_db, sandbox_factory, monkeypatch, caplog):
    config = sandbox_config()
    config["source"]["instance"]["logins"]["dba_home"] = HOMED
    running = sandbox_factory(config)
    # No database in the connection: a plain client lands in the login's default database, SalesDB.
    use_source_login(monkeypatch, running, "dba_home", HOMED["password"], schema="")
    with connect(running, "", user="dba_home", password=HOMED["password"]) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT DB_NAME()")
        assert cursor.fetchone()[0] == DATABASE
    spec = make_spec(running.state_dir, "e2e_home_db", retries=0)

    dag_run = run_dag(airflow_db, spec, "Approve")

    assert_migrated(dag_run, running)
    # Now make the source database unavailable: a plain connect without a database fails with 4064...
    run_sql(running, f"ALTER DATABASE [{DATABASE}] SET OFFLINE WITH ROLLBACK IMMEDIATE")
    # (SQL Server sends 4064 "Cannot open user default database" then 18456; pymssql reports the last one.)
    caplog.clear()
    with pytest.raises(pymssql.OperationalError) as refused:
        connect(running, "", user="dba_home", password=HOMED["password"])
    assert refused.value.args[0][0] == 18456, refused.value.args
    assert "login failed for user 'dba_home' from" in caplog.text and ": 4064" in caplog.text, caplog.text
    # ... while the hook (same connection, no database either) connects to master and reads msdb.
    from hooks.mssql import MigrationMsSqlHook

    source = MigrationMsSqlHook(mssql_conn_id="mssql_source")
    assert source.get_connection("mssql_source").login == "dba_home"
    assert source.database_facts(DATABASE).state_desc == "OFFLINE"
    from datetime import datetime

    full_started = datetime.fromisoformat(xcom(dag_run, "full_backup")["started_at"])
    assert len(source.backup_history(DATABASE, full_started)) >= 3  # the full, a log, the tail


# ---------------------------------------------------------------------------------------------------
# 7. A British session language: msdb history is read with an ISO bound
# ---------------------------------------------------------------------------------------------------

BRITISH = {"conn_properties": "SET LANGUAGE British"}  # pymssql runs it on every new connection


def test_british_session_reads_msdb_history_and_migrates(airflow_db, sandbox_factory, monkeypatch):
    from datetime import UTC, datetime, timedelta

    from hooks.mssql import MigrationMsSqlHook

    running = sandbox_factory()
    use_source_login(monkeypatch, running, "sa", running.sandbox.config["source"]["password"], extra=BRITISH)
    source = MigrationMsSqlHook(mssql_conn_id="mssql_source")
    assert source.get_first("SELECT @@LANGUAGE")[0] == "British"

    # The old form: a Python datetime, which pymssql renders as 'YYYY-MM-DD hh:mm:ss.fff', read day first.
    since = datetime(2026, 11, 24, 10, 15)
    with connect(running, "msdb", **BRITISH) as conn:
        cursor = conn.cursor()
        with pytest.raises(pymssql.DatabaseError) as misread:
            cursor.execute("SELECT COUNT(*) FROM msdb.dbo.backupset WHERE backup_start_date >= %s", (since,))
    assert misread.value.args[0] == 242, misread.value.args
    # The product's form: the same history through a British and a us_english session.
    week_ago = datetime.now(UTC) - timedelta(days=8)
    british = source.backup_history(DATABASE, week_ago)
    monkeypatch.setenv("AIRFLOW_CONN_MSSQL_PLAIN", json.dumps(running.connections()["mssql_source"]))
    plain = MigrationMsSqlHook(mssql_conn_id="mssql_plain").backup_history(DATABASE, week_ago)
    assert british == plain and len(british) > 10  # the demo's nightly job history

    spec = make_spec(running.state_dir, "e2e_british", retries=0)
    dag_run = run_dag(airflow_db, spec, "Approve")

    assert_migrated(dag_run, running)


# ---------------------------------------------------------------------------------------------------
# 8. The demo's job history, as preflight reports it
# ---------------------------------------------------------------------------------------------------


def msdb_rows(running: RunningSandbox, sql: str) -> list[tuple]:
    with connect(running, "msdb") as conn:
        cursor = conn.cursor()
        cursor.execute(sql)
        return cursor.fetchall()


def test_demo_history_preflight_warns_once_per_backup_set_and_not_about_copy_only(
    airflow_db, sandbox_factory
):
    running = sandbox_factory()
    # A DBA's ad-hoc COPY_ONLY log backup besides the nightly job: it never truncates the log.
    write_rows(running)
    run_sql(
        running, f"BACKUP LOG [{DATABASE}] TO DISK = N'{OTHER_JOB_FOLDER}\\adhoc.trn' WITH INIT, COPY_ONLY"
    )
    (logs,) = msdb_rows(
        running,
        f"SELECT COUNT(*) FROM msdb.dbo.backupset WHERE database_name = N'{DATABASE}' AND type = 'L' AND is_copy_only = 0",
    )[0]
    striped = msdb_rows(
        running,
        "SELECT bmf.physical_device_name FROM msdb.dbo.backupmediafamily AS bmf JOIN msdb.dbo.backupmediaset AS ms "
        "ON ms.media_set_id = bmf.media_set_id WHERE ms.media_family_count = 2 ORDER BY bmf.family_sequence_number",
    )
    assert len(striped) == 2, striped  # one full striped over two files: two media rows, one backup set
    spec = make_spec(running.state_dir, "e2e_history", retries=0)

    dag_run = run_dag(airflow_db, spec, "Reject")

    checks = [c for c in xcom(dag_run, "preflight")["checks"] if c["name"] == "other log backups"]
    assert len(checks) == 1 and checks[0]["status"] == "warn", checks
    detail = checks[0]["detail"]
    assert detail.startswith(f"{logs} log backup(s) by other jobs in 7 days break the chain"), (logs, detail)
    assert "Not breakers: 1 COPY_ONLY log backup(s)" in detail, detail
    assert "other jobs' data backups: 1 COPY_ONLY, " in detail, detail  # the VSS snapshot full
    first, second = (name.split("\\")[-1] for (name,) in striped)
    assert detail.count(f"FULL '{first}' over 2 files") == 1 and second not in detail, detail
    assert f"'{OTHER_JOB_FOLDER}\\SRC-SQL01\\{DATABASE}\\LOG'" in checks[0]["fix"], checks[0]["fix"]
    # msdb's backup_start_date is the server's local time; preflight reports UTC. The job names its files
    # with the local time it ran at: the last log's stamp, moved from Berlin to UTC, is what preflight says.
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    stamp = detail.split("_LOG_", 1)[1][:15]
    local = datetime.strptime(stamp, "%Y%m%d_%H%M%S").replace(tzinfo=ZoneInfo("Europe/Berlin"))
    assert f"the last at {local.astimezone(UTC):%Y-%m-%d %H:%M} UTC" in detail, detail
