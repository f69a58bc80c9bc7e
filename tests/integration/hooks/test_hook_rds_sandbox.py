"""RdsMigrationHook against the RDS stand-in, through the real Tea SDK (signature V3 over HTTP).

Every restore is real: backups taken on a real source engine are put into the OSS stand-in, and the RDS
stand-in restores them into its real target engine (SQL Server 2019 Standard). Behaviours the
documentation leaves open (R4 task ids, R10 file names, R3 terminate) are run both ways.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

import oss2
import pytest

from hooks.rds import (
    FILE_SUCCESS_STATES,
    TASK_SUCCESS_STATES,
    TASK_WAITING_STATES,
    RdsApiError,
    RdsMigrationHook,
    RdsWaitTimeoutError,
    file_matches,
)
from hooks.rds_errors import TERMINATED_ADVICE
from tests.integration.hooks.conftest import (
    BUCKET,
    FAR_BUCKET,
    FAST_RETRY,
    INSTANCE_ID,
    OSS_KEY_ID,
    OSS_SECRET,
    RDS_SECRET,
    REGION,
    rds_connection,
    set_connection,
)
from tests.sandbox.rds.engines import rows_over_tds

DB = "we]ird 'db' ü"
ENDPOINT = f"oss-{REGION}.aliyuncs.com"
WAIT = {"timeout": 20.0, "poll": 0.05}


@pytest.fixture
def chain(source_backups):
    """The real source's backup files by name: ``full``, ``log1``, ``log2``, ``log3``."""
    return source_backups.chain.files


@pytest.fixture
def put_backup(oss_server):
    """Factory: upload a real backup file as ``name``; returns its OssObjectPositions value."""
    auth = oss2.AuthV4(OSS_KEY_ID, OSS_SECRET)

    def put(name: str, source: Path, bucket: str = BUCKET) -> str:
        key = f"backups/weird/{name}"
        oss2.Bucket(auth, oss_server.endpoint, bucket, region=REGION).put_object_from_file(key, str(source))
        return f"{ENDPOINT}:{bucket}:{key}"

    return put


def test_instance_facts(rds_hook, target_engine):
    facts = rds_hook.instance_facts(INSTANCE_ID)
    assert facts.engine == "SQLServer"
    assert facts.engine_version == "2019_std_ha"
    assert facts.version_year == 2019 and facts.major_version == 15
    assert facts.edition == "std"
    assert facts.storage_gb == 20
    assert facts.status == "Running"
    assert facts.region == REGION
    assert facts.supports_migration_apis and facts.unsupported_reason == ""
    # DBInstanceDiskUsed is in MB (R7): the hook turns it into bytes, never reads MB as bytes
    used = sum(target_engine.database_info(n)["size_bytes"] for n in target_engine.database_names())
    assert used <= facts.disk_used_bytes < used + 1024 * 1024


@pytest.mark.parametrize(
    ("settings", "supported", "needle"),
    [
        ({"engine_version": "2019_ent"}, False, "DescribeOssDownloads"),
        ({"engine_version": "2017_ent"}, False, "DescribeMigrateTasks"),
        ({"engine_version": "08r2_ent_ha"}, False, "2008 R2"),
        ({"engine_version": "2022_ent"}, True, ""),
        ({"engine_version": "2012"}, True, ""),
    ],
)
def test_instance_facts_say_whether_the_migration_can_run(rds_settings, request, settings, supported, needle):
    """R8: preflight refuses the editions that lack the APIs, naming why."""
    rds_settings.update(settings)
    facts = request.getfixturevalue("rds_hook").instance_facts(INSTANCE_ID)
    assert facts.supports_migration_apis is supported
    assert needle in facts.unsupported_reason
    assert facts.version_year is not None and facts.edition == "ent"


def test_unknown_instance_is_clear(rds_hook):
    with pytest.raises(RdsApiError) as info:
        rds_hook.instance_facts("rm-nope")
    assert info.value.code == "InvalidDBInstanceId.NotFound"
    assert "instance id" in info.value.advice


def test_full_migration_flow(rds_hook, put_backup, chain, source_backups, target_engine, assert_no_secrets):
    assert rds_hook.find_migration_task(INSTANCE_ID, DB) is None
    task_id = rds_hook.create_migration_task(INSTANCE_ID, DB, put_backup("w_FULL_1.bak", chain["full"]))
    task = rds_hook.wait_for_task_state(INSTANCE_ID, task_id, TASK_WAITING_STATES, **WAIT)
    assert task.db_name == DB and task.backup_mode == "UPDF"
    assert DB in rds_hook.database_names(INSTANCE_ID)
    assert target_engine.database_info(DB)["state_desc"] == "RESTORING"

    found = rds_hook.find_migration_task(INSTANCE_ID, DB)
    assert found is not None and found.migrate_task_id == task_id

    for name, log in (("w_LOG_2.trn", "log1"), ("w_LOG_3.trn", "log2")):
        same = rds_hook.import_incremental(INSTANCE_ID, DB, task_id, put_backup(name, chain[log]))
        assert same == task_id  # incremental_task_id: same (the stand-in's default)
        download = rds_hook.wait_for_file_state(INSTANCE_ID, task_id, name, FILE_SUCCESS_STATES, **WAIT)
        assert download.status == "Restored"
        rds_hook.wait_for_task_state(INSTANCE_ID, task_id, TASK_WAITING_STATES, **WAIT)
    files = rds_hook.get_file_states(INSTANCE_ID, task_id)
    assert [f.file_name for f in files] == ["w_FULL_1.bak", "w_LOG_2.trn", "w_LOG_3.trn"]

    token = uuid.uuid4().hex
    rds_hook.open_database(INSTANCE_ID, DB, task_id, "AsyncExecuteDBCheck", token)
    done = rds_hook.wait_for_task_state(INSTANCE_ID, task_id, TASK_SUCCESS_STATES, **WAIT)
    assert done.status == "Success"
    assert target_engine.database_info(DB)["state_desc"] == "ONLINE"
    # the opened database holds exactly the source's rows as of the last restored log backup
    assert rows_over_tds(target_engine, DB) == source_backups.chain.rows_after["log2"]
    assert_no_secrets(rds_hook)


def test_lsn_gap_fails_fast_with_advice(rds_hook, put_backup, chain):
    task_id = rds_hook.create_migration_task(INSTANCE_ID, DB, put_backup("w_FULL_1.bak", chain["full"]))
    rds_hook.wait_for_task_state(INSTANCE_ID, task_id, TASK_WAITING_STATES, **WAIT)
    # log2 begins where log1 ends: with log1 skipped the engine refuses it (error 4305)
    rds_hook.import_incremental(INSTANCE_ID, DB, task_id, put_backup("w_LOG_3.trn", chain["log2"]))
    with pytest.raises(RdsApiError) as info:
        rds_hook.wait_for_file_state(INSTANCE_ID, task_id, "w_LOG_3.trn", **WAIT)
    assert "too recent to apply" in info.value.message
    assert "LSN order" in info.value.advice
    # a failed task is not resumed
    assert rds_hook.find_migration_task(INSTANCE_ID, DB) is None


def test_full_sent_as_incremental(rds_hook, put_backup, chain):
    task_id = rds_hook.create_migration_task(INSTANCE_ID, DB, put_backup("w_FULL_1.bak", chain["full"]))
    rds_hook.wait_for_task_state(INSTANCE_ID, task_id, TASK_WAITING_STATES, **WAIT)
    rds_hook.import_incremental(INSTANCE_ID, DB, task_id, put_backup("w_FULL_2.bak", chain["full"]))
    with pytest.raises(RdsApiError) as info:
        rds_hook.wait_for_task_state(INSTANCE_ID, task_id, TASK_SUCCESS_STATES | TASK_WAITING_STATES, **WAIT)
    assert "we only accept" in info.value.message
    assert "log or differential" in info.value.advice


def test_open_failure_maps_edition_advice(rds_hook, put_backup, source_backups, target_engine, caplog):
    # the source database uses Partitioning: it restores on the Standard target but cannot start (905)
    position = put_backup("w_FULL_1.bak", source_backups.enterprise_full)
    task_id = rds_hook.create_migration_task(INSTANCE_ID, DB, position)
    rds_hook.wait_for_task_state(INSTANCE_ID, task_id, TASK_WAITING_STATES, **WAIT)
    rds_hook.open_database(INSTANCE_ID, DB, task_id, "SyncExecuteDBCheck", "token-1")
    with pytest.raises(RdsApiError) as info:
        rds_hook.wait_for_task_state(INSTANCE_ID, task_id, TASK_SUCCESS_STATES, **WAIT)
    assert "Failed to open database" in info.value.message
    assert "edition" in info.value.advice
    assert target_engine.database_info(DB)["state_desc"] == "RECOVERY_PENDING"
    assert "Only Enterprise edition of SQL Server supports partitioning" in caplog.text


def test_api_error_codes_carry_advice(rds_hook, put_backup, chain):
    with pytest.raises(RdsApiError) as info:
        rds_hook.create_migration_task(INSTANCE_ID, DB, f"{ENDPOINT}:{BUCKET}:backups/weird/w.zip")
    assert info.value.code == "IncorrectFileExtension"
    assert info.value.request_id
    with pytest.raises(RdsApiError) as info:
        rds_hook.create_migration_task(
            INSTANCE_ID, DB, put_backup("w_FULL_9.bak", chain["full"], bucket=FAR_BUCKET)
        )
    assert info.value.advice


def test_wait_timeout(rds_hook, put_backup, chain):
    task_id = rds_hook.create_migration_task(INSTANCE_ID, DB, put_backup("w_FULL_1.bak", chain["full"]))
    with pytest.raises(RdsWaitTimeoutError):
        rds_hook.wait_for_task_state(INSTANCE_ID, task_id, TASK_SUCCESS_STATES, timeout=0.3, poll=0.05)


def test_async_twins(rds_hook, put_backup, chain):
    task_id = rds_hook.create_migration_task(INSTANCE_ID, DB, put_backup("w_FULL_1.bak", chain["full"]))
    rds_hook.wait_for_task_state(INSTANCE_ID, task_id, TASK_WAITING_STATES, **WAIT)

    async def both():
        return await asyncio.gather(
            rds_hook.aget_task_state(INSTANCE_ID, task_id), rds_hook.aget_file_states(INSTANCE_ID, task_id)
        )

    task, files = asyncio.run(both())
    assert task.status == "Waiting"
    assert [f.status for f in files] == ["Restored"]


def test_throttling_is_retried_honouring_retry_after(rds_hook, rds_server, caplog):
    rds_server.faults.update(throttle_rate=0.6, retry_after_ms=20)
    for _ in range(5):
        assert rds_hook.instance_facts(INSTANCE_ID).engine == "SQLServer"
    rds_server.faults.update(throttle_rate=0.0)
    assert "Throttling" in caplog.text and "retrying in 0.0" in caplog.text


def test_server_errors_are_retried(rds_hook, rds_server, caplog):
    rds_server.faults.update(error_5xx_rate=0.5)
    for _ in range(5):
        rds_hook.database_names(INSTANCE_ID)
    rds_server.faults.update(error_5xx_rate=0.0)
    assert "retrying" in caplog.text


def test_client_errors_are_not_retried(rds_server, monkeypatch, caplog, assert_no_secrets):
    wrong = "Wrong-Rds-S3cret"
    set_connection(monkeypatch, "rds_bad", rds_connection(rds_server.endpoint, secret=wrong))
    hook = RdsMigrationHook("rds_bad", retry=FAST_RETRY)
    with pytest.raises(RdsApiError) as info:
        hook.instance_facts(INSTANCE_ID)
    assert "retrying" not in caplog.text
    assert "access_key" in info.value.advice
    assert wrong not in str(info.value) and wrong not in caplog.text
    assert_no_secrets(info.value, hook)
    assert RDS_SECRET not in repr(hook.client.__dict__.get("_credential", ""))


def test_network_error_after_retries(monkeypatch):
    set_connection(monkeypatch, "rds_dead", rds_connection("127.0.0.1:9"))
    hook = RdsMigrationHook("rds_dead", retry=FAST_RETRY)
    with pytest.raises(RdsApiError) as info:
        hook.instance_facts(INSTANCE_ID)
    assert info.value.code == "NetworkError"


def test_proxy_variables_do_not_capture_sandbox_traffic(rds_hook, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    assert rds_hook.instance_facts(INSTANCE_ID).engine == "SQLServer"


def test_no_request_before_first_call(rds_server, monkeypatch):
    set_connection(monkeypatch, "rds_migration", rds_connection(rds_server.endpoint))
    hook = RdsMigrationHook("rds_migration")
    assert "client" not in vars(hook)


# ---- R4: child task ids, R10: FileName style ------------------------------------------------------


@pytest.mark.parametrize("task_ids", ["same", "child"])
@pytest.mark.parametrize("file_names", ["name", "key"])
def test_migration_whichever_ids_and_file_names(
    rds_settings, request, put_backup, chain, source_backups, target_engine, task_ids, file_names
):
    rds_settings.update(incremental_task_id=task_ids, file_name_style=file_names)
    rds_hook = request.getfixturevalue("rds_hook")
    parent = rds_hook.create_migration_task(INSTANCE_ID, DB, put_backup("w_FULL_1.bak", chain["full"]))
    rds_hook.wait_for_task_state(INSTANCE_ID, parent, TASK_WAITING_STATES, **WAIT)
    answered = [parent]
    for name, log in (("w_LOG_2.trn", "log1"), ("w_LOG_3.trn", "log2")):
        task_id = rds_hook.import_incremental(INSTANCE_ID, DB, parent, put_backup(name, chain[log]))
        answered.append(task_id)
        done = rds_hook.wait_for_file_state(INSTANCE_ID, task_id, name, **WAIT)  # bare name, any style
        assert done.status == "Restored" and file_matches(done, name)
    if task_ids == "same":
        assert answered == [parent] * 3
    else:
        assert len(set(answered)) == 3
    # the files of the whole migration, wherever RDS lists them
    files = rds_hook.get_migration_files(INSTANCE_ID, answered)
    assert [(t, f.file_name.rsplit("/", 1)[-1]) for t, f in files] == list(
        zip(answered, ["w_FULL_1.bak", "w_LOG_2.trn", "w_LOG_3.trn"], strict=True)
    )
    assert all(f.file_name.startswith("backups/weird/") == (file_names == "key") for _, f in files)
    # the list fallback finds the parent, not the newest child
    assert rds_hook.find_migration_task(INSTANCE_ID, DB).migrate_task_id == parent
    rds_hook.open_database(INSTANCE_ID, DB, parent, "SyncExecuteDBCheck", uuid.uuid4().hex)
    rds_hook.wait_for_task_state(INSTANCE_ID, parent, TASK_SUCCESS_STATES, **WAIT)
    assert rows_over_tds(target_engine, DB) == source_backups.chain.rows_after["log2"]


def test_deleted_file_counts_as_restored(rds_settings, request, put_backup, chain):
    """R10: RDS later removes its copy of a restored file (Deleted, IsAvailable False)."""
    rds_settings["timing"]["delete_restored_files_after_s"] = 60
    rds_server, rds_hook = request.getfixturevalue("rds_server"), request.getfixturevalue("rds_hook")
    task_id = rds_hook.create_migration_task(INSTANCE_ID, DB, put_backup("w_FULL_1.bak", chain["full"]))
    rds_hook.wait_for_task_state(INSTANCE_ID, task_id, TASK_WAITING_STATES, **WAIT)
    rds_server.clock.advance(timedelta(minutes=2))
    download = rds_hook.wait_for_file_state(INSTANCE_ID, task_id, "w_FULL_1.bak", **WAIT)
    assert (download.status, download.is_available, download.restored) == ("Deleted", "False", True)


# ---- R1: one week of listing ------------------------------------------------------------------------


def test_a_migration_older_than_a_week_is_found_by_id_only(rds_server, rds_hook, put_backup, chain):
    task_id = rds_hook.create_migration_task(INSTANCE_ID, DB, put_backup("w_FULL_1.bak", chain["full"]))
    rds_hook.wait_for_task_state(INSTANCE_ID, task_id, TASK_WAITING_STATES, **WAIT)
    rds_server.clock.advance(timedelta(days=8))  # people approve the cutover days after the full
    assert rds_hook.find_migration_task(INSTANCE_ID, DB) is None
    assert rds_hook.get_task(INSTANCE_ID, task_id).status == "Waiting"
    log = rds_hook.import_incremental(INSTANCE_ID, DB, task_id, put_backup("w_LOG_2.trn", chain["log1"]))
    assert rds_hook.wait_for_file_state(INSTANCE_ID, log, "w_LOG_2.trn", **WAIT).status == "Restored"


# ---- R3: terminate, delete --------------------------------------------------------------------------


@pytest.mark.parametrize("drops", [False, True])
def test_terminate_then_delete_the_database(rds_settings, request, put_backup, chain, target_engine, drops):
    rds_settings["terminate_drops_database"] = drops
    rds_server, rds_hook = request.getfixturevalue("rds_server"), request.getfixturevalue("rds_hook")
    task_id = rds_hook.create_migration_task(INSTANCE_ID, DB, put_backup("w_FULL_1.bak", chain["full"]))
    rds_hook.wait_for_task_state(INSTANCE_ID, task_id, TASK_WAITING_STATES, **WAIT)

    assert rds_hook.terminate_migration_task(INSTANCE_ID, task_id).status == "Terminated"
    assert rds_hook.terminate_migration_task(INSTANCE_ID, task_id).terminated  # idempotent
    with pytest.raises(RdsApiError) as info:
        rds_hook.wait_for_task_state(INSTANCE_ID, task_id, TASK_SUCCESS_STATES, **WAIT)
    assert (info.value.code, info.value.advice) == ("Terminated", TERMINATED_ADVICE)
    with pytest.raises(RdsApiError) as info:
        rds_hook.wait_for_file_state(INSTANCE_ID, task_id, "w_LOG_9.trn", **WAIT)
    assert info.value.advice == TERMINATED_ADVICE
    assert rds_hook.find_migration_task(INSTANCE_ID, DB) is None
    with pytest.raises(RdsApiError) as info:  # the parent takes no more files
        rds_hook.import_incremental(INSTANCE_ID, DB, task_id, put_backup("w_LOG_2.trn", chain["log1"]))
    assert info.value.code == "InvalideStatus" and "start over" in info.value.advice

    rds_server.wait_idle()
    kept = target_engine.database_info(DB) is not None
    assert kept is not drops
    assert rds_hook.delete_database(INSTANCE_ID, DB) is kept
    assert rds_hook.delete_database(INSTANCE_ID, DB) is False  # absent is fine
    assert DB not in rds_hook.database_names(INSTANCE_ID)


def test_terminate_refused_for_access_pending_tasks(rds_settings, request, put_backup, chain):
    rds_settings["terminate_updf_tasks"] = False
    rds_hook = request.getfixturevalue("rds_hook")
    task_id = rds_hook.create_migration_task(INSTANCE_ID, DB, put_backup("w_FULL_1.bak", chain["full"]))
    rds_hook.wait_for_task_state(INSTANCE_ID, task_id, TASK_WAITING_STATES, **WAIT)
    with pytest.raises(RdsApiError) as info:
        rds_hook.terminate_migration_task(INSTANCE_ID, task_id)
    assert info.value.code == "InvalidTaskType.Invalid" and "DeleteDatabase" in info.value.advice
    assert rds_hook.delete_database(INSTANCE_ID, DB) is True  # the way out: drop the database


def test_a_failed_task_is_not_terminated_silently(rds_hook, put_backup, chain):
    task_id = rds_hook.create_migration_task(INSTANCE_ID, DB, put_backup("w_FULL_1.bak", chain["full"]))
    rds_hook.wait_for_task_state(INSTANCE_ID, task_id, TASK_WAITING_STATES, **WAIT)
    rds_hook.import_incremental(INSTANCE_ID, DB, task_id, put_backup("w_LOG_3.trn", chain["log2"]))
    with pytest.raises(RdsApiError):
        rds_hook.wait_for_file_state(INSTANCE_ID, task_id, "w_LOG_3.trn", **WAIT)
    with pytest.raises(RdsApiError) as info:
        rds_hook.terminate_migration_task(INSTANCE_ID, task_id)
    assert info.value.code == "InvalidTaskStatus"


# ---- R5: ambiguous CreateMigrateTask failures ------------------------------------------------------


def _imports_of(rds_server) -> list[tuple[str, str]]:
    """(task id, object key) of every file RDS accepted: the test's view of duplicate imports."""
    return [(t.migrate_task_id, f.key) for t in rds_server.service.tasks.values() for f in t.files]


@pytest.mark.parametrize("kind", ["accept_then_500", "accept_then_drop", "accept_then_slow"])
@pytest.mark.parametrize("task_ids", ["same", "child"])
def test_ambiguous_create_is_looked_up_not_repeated(
    rds_settings, request, monkeypatch, put_backup, chain, caplog, kind, task_ids
):
    rds_settings["incremental_task_id"] = task_ids
    rds_settings["faults"]["slow_answer_s"] = 1.5
    rds_server = request.getfixturevalue("rds_server")
    set_connection(monkeypatch, "rds_migration", rds_connection(rds_server.endpoint))
    hook = RdsMigrationHook("rds_migration", retry=FAST_RETRY, read_timeout=0.5, clock=rds_server.clock.now)

    rds_server.faults.next_create(kind)
    parent = hook.create_migration_task(INSTANCE_ID, DB, put_backup("w_FULL_1.bak", chain["full"]))
    hook.wait_for_task_state(INSTANCE_ID, parent, TASK_WAITING_STATES, **WAIT)
    rds_server.faults.next_create(kind)
    answered = hook.import_incremental(INSTANCE_ID, DB, parent, put_backup("w_LOG_2.trn", chain["log1"]))
    assert hook.wait_for_file_state(INSTANCE_ID, answered, "w_LOG_2.trn", **WAIT).status == "Restored"

    imports = _imports_of(rds_server)
    assert [key.rsplit("/", 1)[-1] for _, key in imports] == ["w_FULL_1.bak", "w_LOG_2.trn"]  # once each
    assert imports[0][0] == parent and imports[1][0] == answered
    assert (answered == parent) is (task_ids == "same")
    assert caplog.text.count("RDS had accepted it after all") == 2


def test_no_blind_retry_when_rds_cannot_be_asked(rds_server, rds_hook, put_backup, chain):
    """An ambiguous failure, then the look-up fails too: stop, never send the import again."""
    rds_server.faults.update(error_5xx_rate=1.0, actions=["DescribeOssDownloads", "DescribeMigrateTasks"])
    rds_server.faults.next_create("accept_then_500")
    with pytest.raises(RdsApiError) as info:
        rds_hook.create_migration_task(INSTANCE_ID, DB, put_backup("w_FULL_1.bak", chain["full"]))
    assert info.value.code == "ImportOutcomeUnknown" and "before importing it again" in info.value.advice
    assert len(_imports_of(rds_server)) == 1  # the accepted one, and no second import


def test_create_is_retried_when_rds_shows_nothing(rds_server, rds_hook, put_backup, chain, caplog):
    """5xx refusals before acceptance: the look finds nothing, the import is sent again, once."""
    rds_server.faults.update(
        error_5xx_rate=0.5, error_5xx_status=500, actions=["CreateMigrateTask"], seed=1
    )  # 500, then accepted
    task_id = rds_hook.create_migration_task(INSTANCE_ID, DB, put_backup("w_FULL_1.bak", chain["full"]))
    assert "looking before importing again" in caplog.text
    assert [t for t, _ in _imports_of(rds_server)] == [task_id]


def test_create_gives_up_after_the_attempts(rds_server, rds_hook, put_backup, chain):
    rds_server.faults.update(error_5xx_rate=1.0, error_5xx_status=500, actions=["CreateMigrateTask"])
    with pytest.raises(RdsApiError) as info:
        rds_hook.create_migration_task(INSTANCE_ID, DB, put_backup("w_FULL_1.bak", chain["full"]))
    assert (info.value.code, info.value.status_code) == ("InternalError", 500)
    assert _imports_of(rds_server) == []


def test_create_throttling_is_retried_plainly(rds_server, rds_hook, put_backup, chain, caplog):
    rds_server.faults.update(throttle_rate=0.6, retry_after_ms=10, actions=["CreateMigrateTask"], seed=1)
    task_id = rds_hook.create_migration_task(INSTANCE_ID, DB, put_backup("w_FULL_1.bak", chain["full"]))
    assert "Throttling" in caplog.text and "looking before" not in caplog.text
    assert [t for t, _ in _imports_of(rds_server)] == [task_id]


# ---- R2, R6: refusals carry advice --------------------------------------------------------------


def test_name_conflict_and_quota_refusals(rds_settings, request, put_backup, chain):
    rds_settings["max_imports_per_day"] = 2
    rds_hook = request.getfixturevalue("rds_hook")
    task_id = rds_hook.create_migration_task(INSTANCE_ID, DB, put_backup("w_FULL_1.bak", chain["full"]))
    rds_hook.wait_for_task_state(INSTANCE_ID, task_id, TASK_WAITING_STATES, **WAIT)
    with pytest.raises(RdsApiError) as info:  # a database of that name exists now (R6)
        rds_hook.create_migration_task(INSTANCE_ID, DB, put_backup("w_FULL_2.bak", chain["full"]))
    assert (info.value.code, info.value.status_code) == ("InvalidDBName.NotFound", 400)
    assert "already exists" in info.value.advice
    rds_hook.import_incremental(INSTANCE_ID, DB, task_id, put_backup("w_LOG_2.trn", chain["log1"]))
    rds_hook.wait_for_file_state(INSTANCE_ID, task_id, "w_LOG_2.trn", **WAIT)
    with pytest.raises(RdsApiError) as info:  # the third import of the day
        rds_hook.import_incremental(INSTANCE_ID, DB, task_id, put_backup("w_LOG_3.trn", chain["log2"]))
    assert (info.value.code, info.value.status_code) == ("UploadLimitExceeded", 400)
    assert "20 imports per database per day" in info.value.advice


def test_missing_import_role_and_ram_permission(rds_settings, request, monkeypatch, put_backup, chain):
    rds_settings.update(
        oss_authorized=False,
        accounts={**rds_settings["accounts"], "LTAI5tReadOnly": "ro-S3cret"},
        permissions={"LTAI5tReadOnly": ["Describe*"]},
    )
    rds_hook = request.getfixturevalue("rds_hook")
    position = put_backup("w_FULL_1.bak", chain["full"])
    with pytest.raises(RdsApiError) as info:
        rds_hook.create_migration_task(INSTANCE_ID, DB, position)
    assert info.value.code == "EntityNotExist.Role" and "AliyunRDSImportRole" in info.value.advice
    conn = rds_connection(request.getfixturevalue("rds_server").endpoint, secret="ro-S3cret")
    conn["extra"]["access_key_id"] = "LTAI5tReadOnly"
    set_connection(monkeypatch, "rds_readonly", conn)
    readonly = RdsMigrationHook("rds_readonly", retry=FAST_RETRY)
    assert readonly.instance_facts(INSTANCE_ID).engine == "SQLServer"
    with pytest.raises(RdsApiError) as info:
        readonly.create_migration_task(INSTANCE_ID, DB, position)
    assert (info.value.code, info.value.status_code) == ("Forbidden.RAM", 403)
    assert "AliyunRDSFullAccess" in info.value.advice
