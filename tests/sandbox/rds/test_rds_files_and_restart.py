"""R10 (FileName style, files that read Deleted later) and the stand-in's state surviving a restart."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alibabacloud_tea_openapi.exceptions import ClientException

from sandbox.clock import SandboxClock
from sandbox.rds.state import StateFileError
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


@pytest.mark.parametrize(("style", "expected"), [("name", "SalesDB_FULL_20261124101500.bak"), ("key", None)])
def test_file_name_style(start_rds, bucket, backups, style, expected):
    """R10: whether FileName is the bare name or the whole object key is UNKNOWN."""
    client = make_client(start_rds(file_name_style=style))
    (key,) = upload(bucket, backups, "full", folder="backups/Sales DB/2026")
    task_id = create_task(client, "SalesDB", key).migrate_task_id
    wait_task(client, task_id)
    assert oss_downloads(client, task_id)[0].file_name == (expected or key)


def test_restored_files_read_deleted_after_the_configured_delay(start_rds, clock, bucket, backups):
    server = start_rds(timing={"step_delay_s": 0, "delete_restored_files_after_s": 3600})
    client = make_client(server)
    full, log1 = upload(bucket, backups, "full", "log1")
    task_id = create_task(client, "SalesDB", full).migrate_task_id
    wait_task(client, task_id)
    (restored,) = oss_downloads(client, task_id)
    assert (restored.status, restored.is_available) == ("Restored", "True")
    clock.advance(timedelta(minutes=59))
    assert oss_downloads(client, task_id)[0].status == "Restored"
    clock.advance(timedelta(minutes=2))
    (deleted,) = oss_downloads(client, task_id)
    assert (deleted.status, deleted.is_available, deleted.end_time) == ("Deleted", "False", restored.end_time)
    # RDS only removed its copy: the migration goes on
    assert task_by_id(client, task_id).status == "Waiting"
    create_task(client, "SalesDB", log1, task_id=task_id)
    assert wait_task(client, task_id).status == "Waiting"
    assert [f.status for f in oss_downloads(client, task_id)] == ["Deleted", "Restored"]


def test_state_survives_a_restart(start_rds, clock, bucket, backups, target):
    server = start_rds(max_imports_per_day=4)
    client = make_client(server)
    full, log1, log2 = upload(bucket, backups, "full", "log1", "log2")
    task_id = create_task(client, "SalesDB", full).migrate_task_id
    wait_task(client, task_id)
    create_task(client, "SalesDB", log1, task_id=task_id)
    wait_task(client, task_id)
    (other_full,) = upload(bucket, backups, "full", folder="backups/Other")
    other = create_task(client, "OtherDB", other_full).migrate_task_id
    wait_task(client, other)
    terminate(client, other)
    opened = create_task(client, "OpenDB", other_full).migrate_task_id
    wait_task(client, opened)
    first_open = open_database(client, "OpenDB", opened, token="open-1")
    wait_task(client, opened, ("Success",))
    clock.advance(timedelta(days=2))
    before = list_tasks(client).to_map()
    server.stop()

    # a new process: a fresh clock, the same state dir and target engine
    again = start_rds(own_clock=SandboxClock(), max_imports_per_day=4)
    client = make_client(again)
    assert again.clock.offset >= timedelta(days=2)  # time did not run backwards
    assert list_tasks(client).to_map()["Items"] == before["Items"]
    assert [f.status for f in oss_downloads(client, task_id)] == ["Restored", "Restored"]
    assert task_by_id(client, other).status == "Terminated"
    assert open_database(client, "OpenDB", opened, token="open-1").request_id == first_open.request_id

    # the migration continues where it stopped
    create_task(client, "SalesDB", log2, task_id=task_id)
    assert wait_task(client, task_id).status == "Waiting"
    open_database(client, "SalesDB", task_id)
    assert wait_task(client, task_id, ("Success", "Failed")).status == "Success"
    assert engines.rows_over_tds(target, "SalesDB") == backups.rows_after["log2"]

    # quota counters survive too (a fake file: it fails verification, the name stays free)
    bucket.put_object("backups/Quota_FULL_1.bak", b"x" * 1024)
    for _ in range(4):
        create_task(client, "QuotaDB", "backups/Quota_FULL_1.bak")
        again.wait_idle()
    again.stop()
    third = start_rds(max_imports_per_day=4)
    with pytest.raises(ClientException) as raised:
        create_task(make_client(third), "QuotaDB", "backups/Quota_FULL_1.bak")
    assert raised.value.code == "UploadLimitExceeded"


def test_work_in_progress_is_resumed_after_a_restart(start_rds, bucket, backups, target):
    server = start_rds(timing={"step_delay_s": 5})
    client = make_client(server)
    (full,) = upload(bucket, backups, "full")
    task_id = create_task(client, "SalesDB", full).migrate_task_id
    assert oss_downloads(client, task_id)[0].status == "NoStart"
    server.stop()  # stops before the file was downloaded
    again = start_rds()
    client = make_client(again)
    assert wait_task(client, task_id).status == "Waiting"
    assert oss_downloads(client, task_id)[0].status == "Restored"
    assert engines.state_over_tds(target, "SalesDB") == "RESTORING"


def test_a_broken_state_file_is_named(start_rds, tmp_path):
    (tmp_path / "rds").mkdir()
    (tmp_path / "rds" / "state.json").write_text("{not json")
    with pytest.raises(StateFileError, match="state.json"):
        start_rds()
