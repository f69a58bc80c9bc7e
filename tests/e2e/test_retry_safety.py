"""Every task is safe to retry, and interrupted work resumes (real hooks, drivers, SDKs, whole sandbox).

Each test migrates its own source database, so the tests do not depend on each other's order:

- ``SalesDB`` (live write workload): every task of the DAG, in order, is run a second time after it
  succeeded, and repeats no side effect (checked on msdb, the OSS request log and the RDS API).
- ``BigDB`` (a 72 MB full backup): the upload is SIGKILLed mid-multipart in a subprocess; the retry
  sends only the missing parts and the object's CRC64 matches the file.
- ``OrdersDB``: log backups a crashed task took but never recorded (and one it uploaded but never
  imported) are shipped by the next run, in LSN order, each once.
- ``HrDB``: a log backup taken by another job to another folder breaks the chain: the next shipping
  run fails before uploading anything, naming the LSN gap and what to do.

No scheduler: operators run with a minimal context and blocking waits (``deferrable=False``).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pymssql
import pytest
import yaml

from sandbox.stack import DEFAULT_CONFIG, Sandbox

ROOT = Path(__file__).resolve().parents[2]
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
BIG_FULL_BYTES = 72_000_000  # above the hook's 64 MiB multipart threshold: 7 parts of 10 MiB
# Requests that write an object (the ledger's appends are audit lines, counted separately).
WRITES = {"PutObject", "AppendObject", "InitiateMultipartUpload", "UploadPart", "CompleteMultipartUpload"}
SEED_TABLE = [{"name": "orders", "rows": 200}]


# --------------------------------------------------------------------------------------------------
# The sandbox (one per module) and one migration spec per database
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("retry-sandbox")
    config = yaml.safe_load(Path(DEFAULT_CONFIG).read_text())
    for section in ("source", "target", "oss", "rds"):
        config[section]["port"] = 0
    config["workload"]["rate"] = 20
    databases = config["source"]["instance"]["databases"]
    databases["BigDB"] = {"tables": SEED_TABLE, "backup_padding_bytes": {"full": BIG_FULL_BYTES}}
    databases["OrdersDB"] = {"tables": SEED_TABLE}
    databases["HrDB"] = {"tables": SEED_TABLE}
    sandbox = Sandbox(config, state_dir)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=lambda: (asyncio.set_event_loop(loop), loop.run_forever()), daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(sandbox.start(), loop).result(60)
    mp = pytest.MonkeyPatch()
    for conn_id, conn in sandbox.connections().items():
        mp.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    try:
        yield SimpleNamespace(sandbox=sandbox, state_dir=state_dir)
    finally:
        mp.undo()
        asyncio.run_coroutine_threadsafe(sandbox.stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def make_spec(stack, database: str):
    from rds_migration.config import MigrationSpec

    worker_folder = stack.state_dir / "source-backups" / database
    worker_folder.mkdir(parents=True, exist_ok=True)
    return MigrationSpec(
        name=database.lower(),
        source={"mssql_conn_id": "mssql_source", "database": database},
        target={
            "rds_conn_id": "rds_migration",
            "instance_id": "rm-sandbox0001",
            "region": "cn-hangzhou",
            "mssql_conn_id": "mssql_target",
        },
        oss={"oss_conn_id": "oss_migration", "bucket": "migration-sandbox", "prefix": f"retry/{database}/"},
        backup_folder={"server_path": f"D:\\Backups\\{database}", "worker_path": str(worker_folder)},
        log_shipping={"interval_minutes": 1},
        cutover_threshold_mb=50,
        import_quota={"window_hours": 0.001},  # a day scaled to 3.6 s, like the sandbox's other timings
        owner="e2e",
    )


# --------------------------------------------------------------------------------------------------
# Running operators, and reading ground truth
# --------------------------------------------------------------------------------------------------


class FakeTI:
    """The part of a task instance the operators use: XCom by task id, and other tasks' states."""

    dag_id = "mssql_to_rds__retry"
    run_id = "retry_run"
    try_number = 1

    def __init__(self, xcom: dict[str, object], task_id: str = "") -> None:
        self.xcom = xcom
        self.task_id = task_id

    def xcom_pull(self, task_ids: str) -> object:
        return self.xcom.get(task_ids)

    def get_task_states(self, dag_id, task_ids, run_ids):
        return {run_ids[0]: {t: "success" for t in task_ids}}


class Run:
    """One DAG run: a fixed ``run_after`` and run id, and the XCom of its tasks."""

    def __init__(self, spec) -> None:
        self.spec = spec
        self.xcom: dict[str, object] = {}
        self.run_after = datetime.now(UTC).replace(microsecond=0)

    def operator(self, operator_cls, task_id: str, **kwargs):
        return operator_cls(
            task_id=task_id, migration=self.spec, deferrable=False, poll_interval=0.2, **kwargs
        )

    def execute(self, op):
        context = {
            "ti": FakeTI(self.xcom, op.task_id),
            "dag_run": SimpleNamespace(run_after=self.run_after, run_id=FakeTI.run_id),
            "params": {},
        }
        op.pre_execute(context)
        self.xcom[op.task_id] = op.execute(context)
        return self.xcom[op.task_id]

    def __call__(self, operator_cls, task_id: str, **kwargs):
        return self.execute(self.operator(operator_cls, task_id, **kwargs))


def steps_for(spec):
    from operators.steps import MigrationSteps

    return MigrationSteps(spec)


def msdb_types(steps) -> Counter:
    """How many backups of each type (D, I, L) msdb holds for the database, ours or not."""
    return Counter(str(r["type"]) for r in steps.source.backup_history(steps.database, EPOCH))


def rds_tasks(steps) -> list:
    return [
        t for t in steps.rds.list_migration_tasks(steps.instance_id) if t.db_name == steps.target_database
    ]


def rds_files(steps, migrate_task_id: str) -> list[str]:
    """File names DescribeOssDownloads lists for the task, in import order."""
    return [f.file_name for f in steps.rds.get_file_states(steps.instance_id, migrate_task_id)]


class OssLog:
    """The OSS stand-in's request log, read from a mark on."""

    def __init__(self, stack) -> None:
        self.faults = stack.sandbox.oss_faults
        self.start = len(self.faults.requests)

    def requests(self) -> list:
        return list(self.faults.requests)[self.start :]

    def writes(self, ledger_key: str | None = None) -> list:
        """Object writes since the mark, except appends to the ledger."""
        return [r for r in self.requests() if r.operation in WRITES and r.key != ledger_key]


def sql(stack, database: str, statement: str) -> None:
    """Run one statement on the source as sa, outside the package (another job, the application)."""
    conn = stack.sandbox.connections()["mssql_source"]
    with pymssql.connect(
        server=conn["host"],
        port=conn["port"],
        user=conn["login"],
        password=conn["password"],
        database=database,
        tds_version="7.4",
        autocommit=True,
    ) as connection:
        with connection.cursor() as cursor:
            cursor.execute(statement)


_next_id = iter(range(100_000, 10_000_000))


def write_rows(stack, database: str, count: int = 5) -> None:
    """Application writes, so the next log backup holds log records."""
    for _ in range(count):
        sql(
            stack,
            database,
            f"INSERT INTO dbo.orders (id, customer, amount, created) "
            f"VALUES ({next(_next_id)}, N'retry', 12.50, '2024-05-01 10:00:00')",
        )


def take_log_directly(steps, seq: int):
    """A log backup taken through the hook with our naming, as a task that crashed right after it."""
    name = steps.next_log_name(seq)
    return steps.source.backup(
        steps.database,
        "LOG",
        steps.server_path(name),
        backup_name="LOG backup for ApsaraDB RDS migration",
        compression=steps.use_compression(),
    )


def ship_once(run: Run):
    """The scheduled log-shipping DAG's task. The quota planner paces imports at least a second apart
    in these tests (the day scaled to 3.6 s, 18 usable imports), so wait that second first."""
    from operators.ship_logs import ShipLogsOperator

    time.sleep(1.05)
    return run(ShipLogsOperator, "ship_logs", mode="once")


def migrate_full(stack, spec) -> tuple[Run, str]:
    """The DAG's full branch: backup, upload, create the migration task, wait for the restore."""
    from operators.backup import BackupOperator, UploadBackupOperator
    from operators.rds_import import CreateMigrationTaskOperator, WaitRestoredOperator

    run = Run(spec)
    run(BackupOperator, "full_backup", kind="FULL")
    run(UploadBackupOperator, "upload_full", backup_task_id="full_backup")
    task_id = run(CreateMigrationTaskOperator, "create_migration_task", backup_task_id="full_backup")
    run(WaitRestoredOperator, "wait_full_restored", backup_task_id="full_backup")
    return run, task_id


def assert_contiguous(steps, file_names: list[str]) -> None:
    """The log backups among ``file_names`` follow each other without an LSN gap."""
    by_name = {r.file_name: r for r in steps.our_history(EPOCH)}
    logs = [by_name[n] for n in file_names if by_name[n].backup_type.name == "LOG"]
    for before, after in zip(logs, logs[1:], strict=False):
        assert after.first_lsn == before.last_lsn, f"gap between {before.label} and {after.label}"


# --------------------------------------------------------------------------------------------------
# 1. Every task, re-run after it succeeded, repeats no side effect
# --------------------------------------------------------------------------------------------------


def test_every_task_rerun_after_success_repeats_no_side_effect(stack):
    from operators.backup import BackupOperator, UploadBackupOperator
    from operators.cutover import CutoverOperator, ReleaseTargetOperator
    from operators.preflight import PreflightOperator
    from operators.rds_import import ChooseStartOperator, CreateMigrationTaskOperator, WaitRestoredOperator
    from operators.report import ReportOperator
    from operators.ship_logs import ShipLogsOperator
    from operators.validate import ValidateOperator

    spec = make_spec(stack, "SalesDB")
    steps = steps_for(spec)
    run = Run(spec)

    def twice(operator_cls, task_id, **kwargs):
        first = run(operator_cls, task_id, **kwargs)
        return first, run(operator_cls, task_id, **kwargs)

    first, again = twice(PreflightOperator, "preflight")
    assert first["failed"] == 0 and again["failed"] == 0, again
    history_before = msdb_types(steps)  # the nightly job's backups (sandbox.yaml's history)
    assert history_before["D"] >= 1, "SalesDB had a backup job before the migration"

    def branch():
        op = run.operator(
            ChooseStartOperator, "choose_start", full_task_id="full_backup", resume_task_id="ship_logs"
        )
        context = {"ti": FakeTI(run.xcom, "choose_start"), "params": {}}
        op.pre_execute(context)
        return op.choose_branch(context)

    assert branch() == "full_backup"

    # Full backup: the retry finds its file in msdb and on disk; no second backup set.
    first, again = twice(BackupOperator, "full_backup", kind="FULL")
    assert again == first
    assert msdb_types(steps) == history_before + Counter({"D": 1})
    full_key = steps.object_key(first["file_name"])

    # Upload: the retry sends nothing (same size and CRC64 in OSS), the object is untouched.
    run(UploadBackupOperator, "upload_full", backup_task_id="full_backup")
    before = steps.oss.object_facts(steps.bucket, full_key)
    oss = OssLog(stack)
    again = run(UploadBackupOperator, "upload_full", backup_task_id="full_backup")
    assert again["skipped"] is True
    assert oss.writes() == [], "no object written, not even a ledger line"
    assert steps.oss.object_facts(steps.bucket, full_key) == before

    # CreateMigrateTask: one migration task, one file.
    first, again = twice(CreateMigrationTaskOperator, "create_migration_task", backup_task_id="full_backup")
    assert again == first
    assert [t.migrate_task_id for t in rds_tasks(steps)] == [first]
    migrate_task_id = first
    assert rds_files(steps, migrate_task_id) == [run.xcom["full_backup"]["file_name"]]
    # The branch of a re-triggered run resumes instead of starting a second full.
    assert branch() == "ship_logs"

    first, again = twice(WaitRestoredOperator, "wait_full_restored", backup_task_id="full_backup")
    assert (
        again == first and first["restore_point"]["full"]["file_name"] == run.xcom["full_backup"]["file_name"]
    )
    assert rds_files(steps, migrate_task_id) == [run.xcom["full_backup"]["file_name"]]

    # Log shipping: a re-run ships one new log backup and imports nothing twice.
    shipped = run(ShipLogsOperator, "ship_logs", mode="loop", interval=timedelta(seconds=1))
    files = rds_files(steps, migrate_task_id)
    assert len(files) == 1 + shipped["cycles"]
    oss = OssLog(stack)
    again = run(ShipLogsOperator, "ship_logs", mode="loop", interval=timedelta(seconds=1))
    files_after = rds_files(steps, migrate_task_id)
    assert files_after[: len(files)] == files and len(files_after) == len(files) + again["cycles"]
    assert {r.key for r in oss.writes(steps.ledger_key)} == {
        steps.object_key(n) for n in files_after[len(files) :]
    }
    assert len(set(files_after)) == len(files_after)
    assert_contiguous(steps, files_after)

    # Catch-up at approval: the log since the last backup is small, nothing to do, twice.
    oss = OssLog(stack)
    first, again = twice(ShipLogsOperator, "catch_up", mode="catch_up")
    assert first["log_sizes"] == again["log_sizes"] == [] and oss.writes(steps.ledger_key) == []

    # Cutover (freeze, tail, import, open): the worker dies right after RDS accepted
    # CreateOnlineDatabaseTask. The retry finds the freeze, the tail and its import done, sends the same
    # ClientToken (RDS answers the first request again) and waits for the open; a re-run after success
    # sends nothing at all.
    logs_before = msdb_types(steps)["L"]
    rds = stack.sandbox.rds
    crashed = run.operator(CutoverOperator, "cutover")
    real_open = crashed.steps.rds.open_database
    sent_tokens: list[str] = []

    def open_then_die(*args, **kwargs):
        real_open(*args, **kwargs)
        sent_tokens.append(args[-1])
        raise RuntimeError("worker killed after CreateOnlineDatabaseTask was accepted")

    crashed.steps.rds.open_database = open_then_die
    with pytest.raises(RuntimeError, match="worker killed"):
        run.execute(crashed)
    tokens = dict(rds._client_tokens)
    assert list(tokens) == sent_tokens
    facts = steps.source.database_facts(steps.database)
    assert (facts.state_desc, facts.user_access_desc, facts.is_read_only) == (
        "ONLINE",
        "RESTRICTED_USER",
        True,
    )

    retry = run.operator(CutoverOperator, "cutover")
    retry_calls: list[str] = []
    real_retry_open = retry.steps.rds.open_database

    def counting_open(*args, **kwargs):
        retry_calls.append(args[-1])
        return real_retry_open(*args, **kwargs)

    retry.steps.rds.open_database = counting_open
    first = run.execute(retry)
    assert first["migrate_task_id"] == migrate_task_id
    assert rds._client_tokens == tokens, "the retry reused the token: RDS opened the database once"
    assert retry_calls in ([], sent_tokens), retry_calls
    assert steps.rds.get_task_state(steps.instance_id, migrate_task_id).succeeded
    assert msdb_types(steps)["L"] == logs_before + 1, "one tail-log backup"
    tail_name = first["tail"]["file_name"]
    files = rds_files(steps, migrate_task_id)
    assert files == files_after + [tail_name] and len(set(files)) == len(files)

    after_success = run.operator(CutoverOperator, "cutover")
    after_success.steps.rds.open_database = lambda *a, **k: pytest.fail("opened a second time")
    assert run.execute(after_success)["tail"] == first["tail"]
    assert rds._client_tokens == tokens and rds_files(steps, migrate_task_id) == files

    first, again = twice(ValidateOperator, "validate", cutover_task_id="cutover")
    assert first == again and first["differences"] == [] and first["problems"] == [] and first["rows"] > 0

    first, again = twice(ReleaseTargetOperator, "release_target")
    assert first == ["SET READ_WRITE", "SET MULTI_USER"] and again == []
    target = steps.target_sql.database_facts(steps.target_database)
    assert (target.user_access_desc, target.is_read_only) == ("MULTI_USER", False)

    report_ids = ["catch_up", "cutover", "validate", "release_target", "rollback"]
    first, again = twice(ReportOperator, "report", task_ids=report_ids)
    assert first["report_key"] == again["report_key"] and again["outcome"].startswith(
        "migrated and validated"
    )
    reports = [
        o.key for o in steps.oss.get_bucket(steps.bucket).list_objects(steps.report_key("")).object_list
    ]
    assert reports == [first["report_key"]]

    # Across all of this: one full, one migration task, each file imported once, one of each ledger step.
    assert msdb_types(steps)["D"] == history_before["D"] + 1
    assert len(rds_tasks(steps)) == 1
    ledger = Counter((e.event.value, e.file_name) for e in steps.read_ledger())
    for name in files:
        assert ledger[("backup_taken", name)] == 1, name
        assert ledger[("uploaded", name)] == 1, name
        assert ledger[("import_requested", name)] == 1, name
    assert ledger[("source_frozen", None)] == 1


# --------------------------------------------------------------------------------------------------
# 2. A worker killed mid-upload: the retry sends only the missing parts
# --------------------------------------------------------------------------------------------------

CHILD = """
import json, sys
from types import SimpleNamespace
from operators.backup import UploadBackupOperator
from rds_migration.config import MigrationSpec

spec = MigrationSpec(**json.loads(sys.argv[1]))
record = json.loads(sys.argv[2])
ti = SimpleNamespace(xcom_pull=lambda task_ids: record)
op = UploadBackupOperator(task_id="upload_full", backup_task_id="full_backup", migration=spec, deferrable=False)
op.execute({"ti": ti, "dag_run": SimpleNamespace(run_id="child", run_after=None)})
print("UPLOAD FINISHED")
"""


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_upload_killed_mid_multipart_resumes_with_the_missing_parts(stack, tmp_path):
    import oss2

    from hooks.oss import file_crc64
    from operators.backup import BackupOperator, UploadBackupOperator

    spec = make_spec(stack, "BigDB")
    steps = steps_for(spec)
    run = Run(spec)
    record = run(BackupOperator, "full_backup", kind="FULL")
    local = steps.worker_path(record["file_name"])
    size = os.path.getsize(local)
    key = steps.object_key(record["file_name"])
    part_size = oss2.determine_part_size(size, oss2.defaults.part_size)
    all_parts = set(range(1, math.ceil(size / part_size) + 1))
    assert size > 64 * 1024 * 1024 and len(all_parts) >= 5, (size, part_size)
    checkpoints = Path(spec.backup_folder.worker_path) / ".oss-checkpoints"

    faults = stack.sandbox.oss_faults
    oss = OssLog(stack)
    out = tmp_path / "child.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)])}
    faults.update(bandwidth_bps=4_000_000)  # 10 MiB parts take ~2.6 s each: time to kill mid-upload
    try:
        with open(out, "wb") as handle:
            child = subprocess.Popen(
                [sys.executable, "-c", CHILD, spec.model_dump_json(), json.dumps(record)],
                cwd=ROOT,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 90
            while True:
                done = [
                    r
                    for r in oss.requests()
                    if r.operation == "UploadPart" and r.status == 200 and r.key == key
                ]
                if len(done) >= 2:
                    break
                assert child.poll() is None, f"upload ended before it was killed:\n{out.read_text()}"
                assert time.monotonic() < deadline, f"no part uploaded in time:\n{out.read_text()}"
                time.sleep(0.02)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait(10)
        assert child.returncode == -signal.SIGKILL
    finally:
        faults.reset()
    # The server still drains what the dead worker left in the socket buffers: wait until no part body
    # is being received (the store keeps each one in its bucket's tmp/ folder), then mark the log.
    receiving = stack.sandbox.oss_store.data_dir / steps.bucket / "tmp"
    deadline = time.monotonic() + 30
    time.sleep(0.2)
    while files_under(receiving):
        assert time.monotonic() < deadline, files_under(receiving)
        time.sleep(0.05)
    killed = [r for r in oss.requests() if r.key == key]
    oss = OssLog(stack)
    assert steps.oss.object_facts(steps.bucket, key) is None, "no object before the upload completes"
    assert files_under(checkpoints), "the killed upload left its checkpoint"

    # The retry (in-process): same upload id, only the parts OSS does not list are sent.
    result = run(UploadBackupOperator, "upload_full", backup_task_id="full_backup")
    assert result["skipped"] is False and result["size"] == size
    resumed = [r for r in oss.requests() if r.key == key]
    completed = {r.part_number for r in killed if r.operation == "UploadPart" and r.status == 200}
    assert [r.operation for r in killed].count("InitiateMultipartUpload") == 1
    assert "CompleteMultipartUpload" not in [r.operation for r in killed]
    assert completed and completed < all_parts, completed
    operations = [r.operation for r in resumed]
    assert "InitiateMultipartUpload" not in operations and "PutObject" not in operations
    assert "ListParts" in operations and operations.count("CompleteMultipartUpload") == 1
    sent = [r.part_number for r in resumed if r.operation == "UploadPart"]
    assert sorted(sent) == sorted(all_parts - completed), [
        (r.operation, r.part_number, r.status) for r in resumed
    ]
    assert all(r.status == 200 for r in resumed if r.operation == "UploadPart")
    assert sum(r.bytes_in for r in resumed if r.operation == "UploadPart") < size
    facts = steps.oss.object_facts(steps.bucket, key)
    assert facts.size == size and facts.crc64 == file_crc64(local)
    assert not files_under(checkpoints), "the checkpoint is removed once the upload completed"
    uploaded = [e for e in steps.read_ledger() if e.event.value == "uploaded"]
    assert [e.file_name for e in uploaded] == [record["file_name"]]

    # And once more: nothing sent.
    oss = OssLog(stack)
    assert run(UploadBackupOperator, "upload_full", backup_task_id="full_backup")["skipped"] is True
    assert oss.writes() == []


# --------------------------------------------------------------------------------------------------
# 3. A crash between BACKUP and recording it: the next run ships the orphan, in order


def test_log_backup_never_recorded_is_shipped_by_the_next_run_in_order(stack, monkeypatch):
    from operators.ship_logs import ShipLogsOperator

    spec = make_spec(stack, "OrdersDB")
    steps = steps_for(spec)
    run, migrate_task_id = migrate_full(stack, spec)
    full_name = run.xcom["full_backup"]["file_name"]

    # Two log backups taken by a task that died before uploading (or recording) them.
    write_rows(stack, "OrdersDB")
    orphan_1 = take_log_directly(steps, 901)
    write_rows(stack, "OrdersDB")
    orphan_2 = take_log_directly(steps, 902)
    assert not [e for e in steps.read_ledger() if e.file_name in (orphan_1.file_name, orphan_2.file_name)]

    write_rows(stack, "OrdersDB")
    shipped = ship_once(run)
    files = rds_files(steps, migrate_task_id)
    assert files[:3] == [full_name, orphan_1.file_name, orphan_2.file_name], files
    assert len(files) == 4 and len(set(files)) == 4
    assert shipped["restore_point"]["last_log"]["file_name"] == files[-1]
    assert_contiguous(steps, files)

    # One more orphan, and one that was uploaded but whose import never happened: the next task that
    # drives the chain (here the catch-up at approval) imports both in LSN order, and does not send the
    # uploaded one again.
    write_rows(stack, "OrdersDB")
    uploaded_only = take_log_directly(steps, 903)
    steps.upload(uploaded_only)
    write_rows(stack, "OrdersDB")
    orphan_3 = take_log_directly(steps, 904)
    oss = OssLog(stack)
    applied = run(ShipLogsOperator, "catch_up", mode="catch_up")
    files = rds_files(steps, migrate_task_id)
    assert files[4:] == [uploaded_only.file_name, orphan_3.file_name], files
    assert applied["restore_point"]["last_log"]["file_name"] == orphan_3.file_name
    assert {r.key for r in oss.writes(steps.ledger_key)} == {steps.object_key(orphan_3.file_name)}
    assert_contiguous(steps, files)

    # Retried once more: nothing to upload, nothing to import.
    oss = OssLog(stack)
    assert run(ShipLogsOperator, "catch_up", mode="catch_up") == applied
    assert rds_files(steps, migrate_task_id) == files and oss.writes() == []

    # Two shipping runs whose first cycle starts in the same second (a retry, or the scheduled DAG
    # right after the migration DAG): the second takes its own log backup, not the first one's file.
    import operators.steps as steps_module

    frozen = datetime.now(UTC)

    class FrozenClock(datetime):
        @classmethod
        def now(cls, tz=None):
            return frozen

    monkeypatch.setattr(steps_module, "datetime", FrozenClock)
    for _ in range(2):
        write_rows(stack, "OrdersDB")
        ship_once(run)
    new_files = rds_files(steps, migrate_task_id)[len(files) :]
    assert len(new_files) == 2 and new_files[0] != new_files[1], new_files
    assert_contiguous(steps, rds_files(steps, migrate_task_id))


# --------------------------------------------------------------------------------------------------
# 4. A log backup taken by another job breaks the chain: stop before uploading anything
# --------------------------------------------------------------------------------------------------


def test_foreign_log_backup_stops_shipping_before_any_upload(stack):
    from airflow.sdk.exceptions import AirflowFailException

    spec = make_spec(stack, "HrDB")
    steps = steps_for(spec)
    run, migrate_task_id = migrate_full(stack, spec)
    write_rows(stack, "HrDB")
    ship_once(run)
    files = rds_files(steps, migrate_task_id)
    assert len(files) == 2

    # Another job's log backup, to another folder: it takes log records our chain needs.
    (stack.state_dir / "source-backups" / "other").mkdir(parents=True, exist_ok=True)
    write_rows(stack, "HrDB")
    sql(stack, "master", r"BACKUP LOG [HrDB] TO DISK = N'D:\Backups\other\HrDB_nightly.trn' WITH INIT")
    foreign = [
        r for r in steps.source.backup_history("HrDB", EPOCH) if "other" in str(r["physical_device_name"])
    ]
    assert len(foreign) == 1
    write_rows(stack, "HrDB")

    ours_before = len(steps.our_history(EPOCH))
    oss = OssLog(stack)
    with pytest.raises(AirflowFailException) as failure:
        ship_once(run)
    message = str(failure.value)
    assert "The restore chain cannot continue" in message
    assert "too recent to apply" in message
    assert f"[{foreign[0]['first_lsn']}, {foreign[0]['last_lsn']}) are missing" in message, message
    assert "adopt_from" in message and '"start_over": true' in message and "backup folder" in message
    # ... and names the other job's file that holds the missing LSNs.
    assert f"to '{foreign[0]['physical_device_name']}'" in message, message  # as typed, not repr
    assert oss.writes(steps.ledger_key) == [], "nothing uploaded"
    assert rds_files(steps, migrate_task_id) == files, "nothing imported"
    assert len(steps.our_history(EPOCH)) == ours_before + 1  # the cycle's own log backup

    # A retry fails the same way at once: no second log backup, still nothing uploaded.
    with pytest.raises(AirflowFailException, match="too recent to apply"):
        ship_once(run)
    assert oss.writes(steps.ledger_key) == []
    assert len(steps.our_history(EPOCH)) == ours_before + 1
    assert rds_files(steps, migrate_task_id) == files
