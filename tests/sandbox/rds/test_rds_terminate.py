"""R3: TerminateMigrateTask and what is left of the database, and DeleteDatabase (real restores)."""

from __future__ import annotations

import pytest
from alibabacloud_tea_openapi.exceptions import ClientException

from tests.sandbox.rds import engines
from tests.sandbox.rds.conftest import (
    create_task,
    database_names,
    delete_database,
    make_client,
    open_database,
    oss_downloads,
    task_by_id,
    terminate,
    upload,
    wait_task,
)


def _refused(call, *args, **kwargs) -> tuple[int, str, str]:
    with pytest.raises(ClientException) as raised:
        call(*args, **kwargs)
    return raised.value.status_code, raised.value.code, raised.value.data["Message"]


def _waiting_migration(client, bucket, backups) -> tuple[str, list[str]]:
    full, *logs = upload(bucket, backups, "full", "log1", "log2")
    task_id = create_task(client, "SalesDB", full).migrate_task_id
    assert wait_task(client, task_id).status == "Waiting"
    return task_id, [full, *logs]


def test_terminate_keeps_the_restoring_database_by_default(client, bucket, backups, target, rds_server):
    task_id, (full, log1, _) = _waiting_migration(client, bucket, backups)
    assert terminate(client, task_id).request_id
    task = task_by_id(client, task_id)
    assert task.status == "Terminated" and task.end_time
    rds_server.wait_idle()
    assert engines.state_over_tds(target, "SalesDB") == "RESTORING"
    assert database_names(client) == {"SalesDB": "Creating"}

    # the parent takes no more files, cannot be opened, nor terminated twice
    assert _refused(create_task, client, "SalesDB", log1, task_id=task_id)[:2] == (400, "InvalideStatus")
    assert _refused(open_database, client, "SalesDB", task_id)[1] == "InvalideStatus"
    assert _refused(terminate, client, task_id) == (
        400,
        "InvalidTaskStatus",
        "Current task status (Terminated/Failed) does not support.",
    )
    # the kept database blocks a new migration of that name until DeleteDatabase drops it
    assert _refused(create_task, client, "SalesDB", full)[:2] == (400, "InvalidDBName.NotFound")
    delete_database(client, "SalesDB")
    assert engines.state_over_tds(target, "SalesDB") is None
    new_id = create_task(client, "SalesDB", full).migrate_task_id
    assert new_id != task_id and wait_task(client, new_id).status == "Waiting"


def test_terminate_can_drop_the_database(start_rds, bucket, backups, target):
    server = start_rds(terminate_drops_database=True)
    client = make_client(server)
    task_id, (full, *_) = _waiting_migration(client, bucket, backups)
    terminate(client, task_id)
    server.wait_idle()
    assert engines.state_over_tds(target, "SalesDB") is None
    assert task_by_id(client, task_id).status == "Terminated"
    assert wait_task(client, create_task(client, "SalesDB", full).migrate_task_id).status == "Waiting"


def test_terminate_stops_a_file_in_progress(rds_server, client, bucket, backups):
    task_id, (_, log1, _) = _waiting_migration(client, bucket, backups)
    rds_server.config.timing.step_delay_s = 5  # terminated long before the first step
    create_task(client, "SalesDB", log1, task_id=task_id)
    terminate(client, task_id)
    rds_server.wait_idle()
    files = oss_downloads(client, task_id)
    assert [f.status for f in files][0] == "Restored"
    assert files[1].status == "NoStart"  # stopped where it was, for good
    assert task_by_id(client, task_id).status == "Terminated"


def test_access_pending_tasks_may_refuse_terminate(start_rds, bucket, backups):
    """[META]: "Migrate task type Incremental is not supported, only support FULL backup migrate task";
    whether an Access Pending (UPDF) task is "Incremental" is UNKNOWN: both ways."""
    client = make_client(start_rds(terminate_updf_tasks=False))
    task_id, _ = _waiting_migration(client, bucket, backups)
    assert _refused(terminate, client, task_id) == (
        400,
        "InvalidTaskType.Invalid",
        "Migrate task type Incremental is not supported, only support FULL backup migrate task.",
    )
    assert task_by_id(client, task_id).status == "Waiting"


def test_failed_and_opened_tasks_cannot_be_terminated(client, bucket, backups, rds_server):
    task_id, (_, _, log2) = _waiting_migration(client, bucket, backups)
    create_task(client, "SalesDB", log2, task_id=task_id)  # log1 skipped: the restore fails
    assert wait_task(client, task_id).status == "Failed"
    assert _refused(terminate, client, task_id)[1] == "InvalidTaskStatus"

    (full,) = upload(bucket, backups, "full", folder="backups/Other")
    other = create_task(client, "OtherDB", full).migrate_task_id
    wait_task(client, other)
    open_database(client, "OtherDB", other)
    assert wait_task(client, other, ("Success", "Failed")).status == "Success"
    assert _refused(terminate, client, other) == (
        400,
        "InvalidTaskStatus",
        "Current task status (Success) does not support.",
    )


def test_delete_database_codes(client, bucket, backups, rds_server, target):
    assert _refused(delete_database, client, "msdb") == (
        400,
        "InvalidDBName.Forbid",
        "Specified DB name is a keyword in RDS.",
    )
    assert _refused(delete_database, client, "NoSuchDB") == (
        404,
        "InvalidDBName.NotFound",
        "Specified one or more DB name does not exist or DB status does not support.",
    )
    task_id, (_, log1, _) = _waiting_migration(client, bucket, backups)
    rds_server.config.timing.step_delay_s = 1
    create_task(client, "SalesDB", log1, task_id=task_id)
    status, code, _ = _refused(delete_database, client, "SalesDB")  # a file is being restored
    assert (status, code) == (403, "IncorrectDBState")
    rds_server.config.timing.step_delay_s = 0
    assert wait_task(client, task_id).status == "Waiting"
    open_database(client, "SalesDB", task_id)
    assert wait_task(client, task_id, ("Success",)).status == "Success"
    rds_server.wait_idle()
    delete_database(client, "SalesDB")  # an opened (ONLINE) database
    assert engines.state_over_tds(target, "SalesDB") is None
    assert database_names(client) == {}
