"""Migrations through the SDKs only: backups over TDS (pymssql), uploads with oss2, imports and
opens with the Tea RDS client; the target database is then checked over TDS."""

from __future__ import annotations

import pytest
from alibabacloud_rds20140815 import models as rds_models
from alibabacloud_tea_openapi.exceptions import ClientException

from tests.sandbox.rds import engines
from tests.sandbox.rds.conftest import (
    INSTANCE_ID,
    create_task,
    make_client,
    oss_downloads,
    wait_task,
)
from tests.sandbox.rds.conftest import open_database as _open
from tests.sandbox.rds.conftest import upload as _upload


def test_full_plus_three_logs_then_open(client, bucket, backups, target):
    full, *logs = _upload(bucket, backups, "full", "log1", "log2", "log3")
    task_id = create_task(client, "SalesDB", full).migrate_task_id
    assert wait_task(client, task_id).status == "Waiting"
    assert engines.state_over_tds(target, "SalesDB") == "RESTORING"
    for key in logs:
        body = create_task(client, "SalesDB", key, task_id=task_id)
        assert body.migrate_task_id == task_id
        assert wait_task(client, task_id).status == "Waiting"
    files = oss_downloads(client, task_id)
    assert [f.status for f in files] == ["Restored"] * 4
    assert [f.is_available for f in files] == ["True"] * 4  # [META]: True | False
    assert [f.backup_mode for f in files] == ["Database"] + ["Transaction_Log"] * 3
    assert engines.state_over_tds(target, "SalesDB") == "RESTORING"

    first = _open(client, "SalesDB", task_id, token="open-SalesDB-1")
    task = wait_task(client, task_id, ("Success", "Failed"))
    assert (task.status, task.description) == ("Success", "")
    again = _open(client, "SalesDB", task_id, token="open-SalesDB-1")  # idempotent retry
    assert again.request_id == first.request_id
    assert engines.state_over_tds(target, "SalesDB") == "ONLINE"
    assert engines.rows_over_tds(target, "SalesDB") == backups.rows_after["log3"]

    databases = client.describe_databases(rds_models.DescribeDatabasesRequest(dbinstance_id=INSTANCE_ID))
    assert [(d.dbname, d.dbstatus) for d in databases.body.databases.database] == [("SalesDB", "Running")]
    # [INST]: on 2012+ a same-named database makes RDS answer "does not exist or DB status does not support"
    with pytest.raises(ClientException) as raised:
        create_task(client, "SalesDB", full)
    assert (raised.value.status_code, raised.value.code) == (400, "InvalidDBName.NotFound")
    with pytest.raises(ClientException) as raised:  # an opened task takes no more files
        create_task(client, "SalesDB", logs[-1], task_id=task_id)
    assert (raised.value.code, raised.value.data["Message"]) == (
        "InvalideStatus",
        "Parent migrate task status is invalid.",
    )


def test_out_of_order_log_fails_with_sql_server_text_and_chain_can_continue(client, bucket, backups):
    full, log1, log2 = _upload(bucket, backups, "full", "log1", "log2")
    task_id = create_task(client, "SalesDB", full).migrate_task_id
    wait_task(client, task_id)
    create_task(client, "SalesDB", log2, task_id=task_id)
    task = wait_task(client, task_id)
    assert task.status == "Failed"
    assert "which is too recent to apply to the database" in task.description
    failed = oss_downloads(client, task_id)[-1]
    assert (failed.status, failed.description) == ("RestoreFailed", task.description)
    # The database is still restoring: the missing log, then the rejected one, can be imported.
    for key in (log1, log2):
        create_task(client, "SalesDB", key, task_id=task_id)
        assert wait_task(client, task_id).status == "Waiting"


def test_full_backup_sent_as_incremental(client, bucket, backups):
    (full,) = _upload(bucket, backups, "full")
    task_id = create_task(client, "SalesDB", full).migrate_task_id
    wait_task(client, task_id)
    create_task(client, "SalesDB", full, task_id=task_id)
    task = wait_task(client, task_id)
    name = full.rsplit("/", 1)[-1]
    expected = f"Backup set ({name}) is a Database FULL backup, we only accept transaction log or differential backup."
    assert (task.status, task.description) == ("Failed", expected)
    assert oss_downloads(client, task_id)[-1].status == "CheckFailed"


def test_database_count_limit(rds_settings, request, bucket, backups):
    rds_settings["max_databases"] = 1
    client = make_client(request.getfixturevalue("rds_server"))
    (full,) = _upload(bucket, backups, "full")
    assert wait_task(client, create_task(client, "SalesDB", full).migrate_task_id).status == "Waiting"
    task = wait_task(client, create_task(client, "SalesCopy", full).migrate_task_id)
    assert (task.status, task.description) == (
        "Failed",
        "The database (SalesCopy) migration failed due to databases count limitation.",
    )


def test_immediate_access_full_mode_opens_the_database(client, bucket, backups, target):
    (full,) = _upload(bucket, backups, "full")
    body = create_task(client, "SalesNow", full, mode="FULL", check_dbmode="SyncExecuteDBCheck")
    assert body.backup_mode == "FULL"
    assert wait_task(client, body.migrate_task_id, ("Success", "Failed")).status == "Success"
    assert engines.state_over_tds(target, "SalesNow") == "ONLINE"
    assert engines.rows_over_tds(target, "SalesNow") == backups.rows_after["full"]
    with pytest.raises(ClientException) as raised:  # FULL mode takes no incremental file
        create_task(client, "SalesNow", full, task_id=body.migrate_task_id)
    assert raised.value.code == "InvalideStatus"


def test_open_is_refused_while_not_waiting_and_token_mismatch(client, bucket, backups, rds_server):
    (full,) = _upload(bucket, backups, "full")
    rds_server.config.timing.step_delay_s = 1
    task_id = create_task(client, "SalesDB", full).migrate_task_id
    with pytest.raises(ClientException) as raised:  # still restoring the full
        _open(client, "SalesDB", task_id, token="t-0")
    assert raised.value.code == "IncorrectDBState"
    with pytest.raises(ClientException) as raised:  # and the next file must wait for it too
        create_task(client, "SalesDB", full, task_id=task_id)
    assert raised.value.code == "IncorrectDBState"
    rds_server.config.timing.step_delay_s = 0
    wait_task(client, task_id)
    _open(client, "SalesDB", task_id, mode="SyncExecuteDBCheck", token="t-1")
    with pytest.raises(ClientException) as raised:
        _open(client, "SalesDB", task_id, mode="AsyncExecuteDBCheck", token="t-1")
    assert raised.value.code == "IdempotentParameterMismatch"
    assert wait_task(client, task_id, ("Success", "Failed")).status == "Success"
    with pytest.raises(ClientException) as raised:
        _open(client, "SalesDB", task_id)
    assert raised.value.code == "InvalideStatus"


def _migrate_full(client, bucket, path, db_name: str = "SalesDB") -> str:
    key = f"backups/{db_name}/{path.name}"
    bucket.put_object_from_file(key, str(path))
    return create_task(client, db_name, key).migrate_task_id


def test_enterprise_features_fail_to_open_on_standard(client, bucket, tmp_path):
    path = engines.make_full_backup(tmp_path, sku_features=["Partitioning"])
    task_id = _migrate_full(client, bucket, path)
    assert wait_task(client, task_id).status == "Waiting"
    _open(client, "SalesDB", task_id)
    task = wait_task(client, task_id, ("Success", "Failed"))
    assert (task.status, task.description) == ("Failed", "Failed to open database SalesDB.")


def test_async_checkdb_failure_is_reported_after_open(client, bucket, tmp_path, target):
    task_id = _migrate_full(client, bucket, engines.make_full_backup(tmp_path, corrupt=True))
    wait_task(client, task_id)
    _open(client, "SalesDB", task_id, mode="AsyncExecuteDBCheck")
    task = wait_task(client, task_id, ("Failed",))
    assert task.description.startswith(
        "asynchronously DBCC checkdb failed: CHECKDB found 0 allocation errors and 2 consistency errors in "
    )
    assert engines.state_over_tds(target, "SalesDB") == "ONLINE"  # opened before the check


def test_backup_from_newer_version_fails_to_restore(client, bucket, tmp_path):
    task_id = _migrate_full(client, bucket, engines.make_full_backup(tmp_path, product_version="16.0.4135.4"))
    task = wait_task(client, task_id)
    assert task.status == "Failed"
    assert oss_downloads(client, task_id)[0].status == "RestoreFailed"
    expected = "The database was backed up on a server running version 16."
    assert task.description.startswith(expected), task.description
