"""R4: whether an incremental import answers the parent's MigrateTaskId or a new child id is UNKNOWN;
the stand-in does either (``incremental_task_id: same|child``), shown here with real restores."""

from __future__ import annotations

import pytest
from alibabacloud_tea_openapi.exceptions import ClientException

from tests.sandbox.rds import engines
from tests.sandbox.rds.conftest import (
    create_task,
    list_tasks,
    make_client,
    open_database,
    oss_downloads,
    task_by_id,
    terminate,
    upload,
    wait_task,
)


def _code(call, *args, **kwargs) -> str:
    with pytest.raises(ClientException) as raised:
        call(*args, **kwargs)
    return raised.value.code


def _ship(client, bucket, backups) -> tuple[str, list[str], list[str]]:
    """Full + log1 + log2: the parent id, the ids the incremental imports answered, the keys."""
    keys = upload(bucket, backups, "full", "log1", "log2")
    parent = create_task(client, "SalesDB", keys[0]).migrate_task_id
    assert wait_task(client, parent).status == "Waiting"
    answered = []
    for key in keys[1:]:
        answered.append(create_task(client, "SalesDB", key, task_id=parent).migrate_task_id)
        assert wait_task(client, answered[-1], ("Waiting", "Success", "Failed")).status != "Failed"
    return parent, answered, keys


def test_same_mode_answers_the_parent_id(start_rds, bucket, backups, target):
    client = make_client(start_rds(incremental_task_id="same"))
    parent, answered, _ = _ship(client, bucket, backups)
    assert answered == [parent, parent]
    assert [f.status for f in oss_downloads(client, parent)] == ["Restored"] * 3
    assert [t.migrate_task_id for t in list_tasks(client).items.migrate_task] == [parent]
    open_database(client, "SalesDB", parent)
    assert wait_task(client, parent, ("Success", "Failed")).status == "Success"
    assert engines.rows_over_tds(target, "SalesDB") == backups.rows_after["log2"]


def test_child_mode_answers_a_new_task_per_incremental_file(start_rds, bucket, backups, target):
    client = make_client(start_rds(incremental_task_id="child"))
    parent, children, keys = _ship(client, bucket, backups)
    assert len(set(children)) == 2 and parent not in children

    # each task lists its own file(s); both are readable by id; the list shows all three
    assert [f.file_name for f in oss_downloads(client, parent)] == [keys[0].rsplit("/", 1)[-1]]
    for child, key in zip(children, keys[1:], strict=True):
        (only,) = oss_downloads(client, child)
        assert (only.file_name, only.status, only.backup_mode) == (
            key.rsplit("/", 1)[-1],
            "Restored",
            "Transaction_Log",
        )
        task = task_by_id(client, child)
        assert (task.status, task.dbname, task.backup_mode) == ("Success", "SalesDB", "UPDF")
    assert task_by_id(client, parent).status == "Waiting"
    assert {t.migrate_task_id for t in list_tasks(client).items.migrate_task} == {parent, *children}

    # a child is no parent: it takes no file, cannot be opened, nor terminated
    assert _code(create_task, client, "SalesDB", keys[2], task_id=children[0]) == "InvalideStatus"
    assert _code(open_database, client, "SalesDB", children[0]) == "InvalideStatus"
    assert _code(terminate, client, children[0]) == "InvalidTaskType.Invalid"

    open_database(client, "SalesDB", parent)  # the open takes the parent id
    assert wait_task(client, parent, ("Success", "Failed")).status == "Success"
    assert engines.rows_over_tds(target, "SalesDB") == backups.rows_after["log2"]


def test_child_failure_leaves_the_parent_waiting(start_rds, bucket, backups):
    client = make_client(start_rds(incremental_task_id="child"))
    full, log1, log2 = upload(bucket, backups, "full", "log1", "log2")
    parent = create_task(client, "SalesDB", full).migrate_task_id
    wait_task(client, parent)
    gap = create_task(client, "SalesDB", log2, task_id=parent).migrate_task_id
    failed = wait_task(client, gap)
    assert failed.status == "Failed" and "too recent to apply" in failed.description
    assert task_by_id(client, parent).status == "Waiting"
    for key in (log1, log2):  # the chain continues from the parent
        child = create_task(client, "SalesDB", key, task_id=parent).migrate_task_id
        assert wait_task(client, child, ("Success", "Failed")).status == "Success"


def test_terminating_the_parent_stops_its_children(start_rds, bucket, backups):
    server = start_rds(incremental_task_id="child")
    client = make_client(server)
    full, log1 = upload(bucket, backups, "full", "log1")
    parent = create_task(client, "SalesDB", full).migrate_task_id
    wait_task(client, parent)
    server.config.timing.step_delay_s = 5  # terminated long before the first step
    child = create_task(client, "SalesDB", log1, task_id=parent).migrate_task_id
    terminate(client, parent)
    server.wait_idle()
    assert task_by_id(client, parent).status == "Terminated"
    assert task_by_id(client, child).status == "Terminated"
