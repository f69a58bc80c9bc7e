"""RdsMigrationHook against the RDS stand-in, through the real Tea SDK (signature V3 over HTTP).

Every restore is real: backups taken on a real source engine are put into the OSS stand-in, and the RDS
stand-in restores them into its real target engine (SQL Server 2019 Standard).
"""

from __future__ import annotations

import asyncio
import uuid
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
)
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


def test_instance_facts(rds_hook):
    facts = rds_hook.instance_facts(INSTANCE_ID)
    assert facts.engine == "SQLServer"
    assert facts.engine_version == "2019_std_ha"
    assert facts.version_year == 2019 and facts.major_version == 15
    assert facts.edition == "std"
    assert facts.storage_gb == 20
    assert facts.status == "Running"
    assert facts.region == REGION


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
        assert same == task_id
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
