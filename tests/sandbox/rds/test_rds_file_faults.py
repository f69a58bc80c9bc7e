"""An incremental file that fails once (a broken download, an I/O error during RESTORE), and what the
migration task does next: take the same file again (``reimport_failed_files: true``) or refuse every
further file (``false``) — which one RDS does is UNKNOWN, so both are shown.

Also the stand-in's own record of imports (``RdsService.import_records``), which the chaos scenarios
count "imported exactly once" from, and the counters of injected faults.
"""

from __future__ import annotations

import pytest
from alibabacloud_tea_openapi.exceptions import ClientException

from sandbox.rds.config import FaultConfig, RdsConfigError
from tests.sandbox.rds.conftest import create_task, make_client, oss_downloads, upload, wait_task


def _restore_full(client, bucket, backups) -> tuple[str, list[str]]:
    keys = upload(bucket, backups, "full", "log1", "log2")
    task_id = create_task(client, "SalesDB", keys[0]).migrate_task_id
    assert wait_task(client, task_id).status == "Waiting"
    return task_id, keys


def _wait_file(client, task_id: str, name: str, statuses: tuple[str, ...]):
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        files = [f for f in oss_downloads(client, task_id) if f.file_name == name]
        if files and files[-1].status in statuses:
            return files[-1]
        time.sleep(0.02)
    raise AssertionError(f"{name} never reached {statuses}")


@pytest.mark.parametrize(
    ("kind", "status", "words"),
    [
        ("download_failed", "DownloadFailed", "Failed to download"),
        ("restore_failed", "RestoreFailed", "1117(The request could not be performed because of an I/O"),
    ],
)
def test_a_file_fails_once_and_the_same_file_imported_again_restores(
    rds_server, bucket, backups, kind, status, words
):
    client = make_client(rds_server)
    task_id, keys = _restore_full(client, bucket, backups)
    rds_server.faults.next_file_failure(kind)
    create_task(client, "SalesDB", keys[1], task_id=task_id)
    failed = _wait_file(client, task_id, keys[1].rsplit("/", 1)[-1], ("DownloadFailed", "RestoreFailed"))
    assert failed.status == status and words in failed.description
    task = wait_task(client, task_id, statuses=("Failed",))
    assert words in task.description  # the task carries the file's reason

    create_task(client, "SalesDB", keys[1], task_id=task_id)  # the same file again: accepted
    assert _wait_file(client, task_id, keys[1].rsplit("/", 1)[-1], ("Restored",)).status == "Restored"
    assert wait_task(client, task_id).status == "Waiting"
    create_task(client, "SalesDB", keys[2], task_id=task_id)  # and the chain goes on
    assert _wait_file(client, task_id, keys[2].rsplit("/", 1)[-1], ("Restored",)).status == "Restored"

    records = rds_server.service.import_records()
    assert [(r["key"], r["status"]) for r in records] == [
        (keys[0], "Restored"),
        (keys[1], status),
        (keys[1], "Restored"),
        (keys[2], "Restored"),
    ]
    assert rds_server.faults.injected[kind] == 1


def test_a_task_whose_file_failed_may_refuse_every_further_file(start_rds, bucket, backups):
    server = start_rds(reimport_failed_files=False)
    client = make_client(server)
    task_id, keys = _restore_full(client, bucket, backups)
    server.faults.next_file_failure("download_failed")
    create_task(client, "SalesDB", keys[1], task_id=task_id)
    _wait_file(client, task_id, keys[1].rsplit("/", 1)[-1], ("DownloadFailed",))
    for key in keys[1:]:
        with pytest.raises(ClientException) as refused:
            create_task(client, "SalesDB", key, task_id=task_id)
        assert (refused.value.code, refused.value.data["Message"]) == (
            "InvalideStatus",
            "Parent migrate task status is invalid.",
        )


def test_the_rate_hits_incremental_imports_only_and_each_object_at_most_once(start_rds, bucket, backups):
    server = start_rds(
        faults={"file_failure_rate": 1.0, "file_failure_kinds": ["download_failed"], "seed": 1}
    )
    client = make_client(server)
    task_id, keys = _restore_full(client, bucket, backups)  # the full is never failed by the rate
    create_task(client, "SalesDB", keys[1], task_id=task_id)
    _wait_file(client, task_id, keys[1].rsplit("/", 1)[-1], ("DownloadFailed",))
    create_task(client, "SalesDB", keys[1], task_id=task_id)
    assert _wait_file(client, task_id, keys[1].rsplit("/", 1)[-1], ("Restored",)).status == "Restored"
    assert server.faults.injected == {"download_failed": 1}


def test_throttling_and_5xx_are_counted_by_kind():
    faults = FaultConfig(throttle_rate=1.0, seed=2)
    assert faults.draw(faults.throttle_rate, "throttling") and faults.injected == {"throttling": 1}
    faults.next_create("accept_then_drop")
    assert faults.take_create_fault() == "accept_then_drop"
    assert faults.injected == {"throttling": 1, "accept_then_drop": 1}


def test_bad_file_fault_settings_name_the_field(start_rds):
    with pytest.raises(RdsConfigError, match="rds.faults.file_failure_rate"):
        start_rds(faults={"file_failure_rate": 1.5})
    with pytest.raises(RdsConfigError, match="rds.faults.file_failure_kinds"):
        start_rds(faults={"file_failure_kinds": ["explode"]})
    with pytest.raises(RdsConfigError, match="rds.reimport_failed_files"):
        start_rds(reimport_failed_files="yes")
    with pytest.raises(RdsConfigError, match="faults.next_file_failure"):
        FaultConfig().next_file_failure("explode")


def test_an_armed_file_failure_waits_for_the_object_it_names(rds_server, bucket, backups):
    client = make_client(rds_server)
    task_id, keys = _restore_full(client, bucket, backups)
    rds_server.faults.next_file_failure("restore_failed", key=f"*/{keys[2].rsplit('/', 1)[-1]}")
    create_task(client, "SalesDB", keys[1], task_id=task_id)
    assert _wait_file(client, task_id, keys[1].rsplit("/", 1)[-1], ("Restored",)).status == "Restored"
    create_task(client, "SalesDB", keys[2], task_id=task_id)
    assert (
        _wait_file(client, task_id, keys[2].rsplit("/", 1)[-1], ("RestoreFailed",)).status == "RestoreFailed"
    )
