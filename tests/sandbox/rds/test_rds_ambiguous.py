"""R5: CreateMigrateTask has no ClientToken, so a failure the client sees may hide an accepted import.
The stand-in can accept an import and then answer 500, drop the connection, or answer too late."""

from __future__ import annotations

import pytest
from alibabacloud_tea_openapi.exceptions import ServerException
from darabonba.exceptions import UnretryableException

from sandbox.rds.config import FaultConfig, RdsConfigError
from tests.sandbox.rds.conftest import create_task, list_tasks, make_client, upload, wait_task


def _only_task(client):
    (task,) = list_tasks(client).items.migrate_task
    return task


@pytest.fixture
def full_key(bucket, backups) -> str:
    (key,) = upload(bucket, backups, "full")
    return key


def test_accepted_then_500(rds_server, client, full_key):
    rds_server.faults.next_create("accept_then_500")
    with pytest.raises(ServerException) as raised:
        create_task(client, "SalesDB", full_key)
    assert (raised.value.status_code, raised.value.code) == (500, "ExternalFailure")
    assert (
        raised.value.data["Message"] == "The request processing has failed due to external service failure."
    )
    task = _only_task(client)  # ... and yet the import was created and restores
    assert (task.dbname, wait_task(client, task.migrate_task_id).status) == ("SalesDB", "Waiting")
    create_task(client, "OtherDB", full_key)  # one shot: the next import is answered normally


def test_accepted_then_connection_dropped(rds_server, client, full_key):
    rds_server.faults.next_create("accept_then_drop")
    with pytest.raises(UnretryableException) as raised:
        create_task(client, "SalesDB", full_key)
    assert "without response" in str(raised.value.inner_exception)
    assert wait_task(client, _only_task(client).migrate_task_id).status == "Waiting"


def test_accepted_then_answered_after_the_read_timeout(rds_server, full_key):
    rds_server.faults.update(slow_answer_s=1.5)
    rds_server.faults.next_create("accept_then_slow")
    client = make_client(rds_server, read_timeout=300)
    with pytest.raises(UnretryableException) as raised:
        create_task(client, "SalesDB", full_key)
    assert "timed out" in str(raised.value.inner_exception)
    assert wait_task(client, _only_task(client).migrate_task_id).status == "Waiting"


def test_refusals_before_acceptance_create_nothing(rds_server, client, full_key):
    """A 5xx drawn *before* the call is handled (error_5xx_rate) is not an accepted import."""
    rds_server.faults.update(error_5xx_rate=1.0, error_5xx_status=500, actions=["CreateMigrateTask"])
    with pytest.raises(ServerException):
        create_task(client, "SalesDB", full_key)
    assert list_tasks(client).total_record_count == 0


def test_rate_is_seeded_and_every_faulted_import_exists(rds_server, bucket, backups):
    rds_server.faults.update(ambiguous_create_rate=0.5, ambiguous_create_kinds=["accept_then_500"], seed=7)
    client = make_client(rds_server)
    keys = upload(bucket, backups, "full")
    outcomes = []
    for i in range(8):
        try:
            create_task(client, f"Db{i}", keys[0])
            outcomes.append("ok")
        except ServerException:
            outcomes.append("500")
    assert list_tasks(client).total_record_count == 8  # every one was accepted
    expected = FaultConfig(ambiguous_create_rate=0.5, ambiguous_create_kinds=["accept_then_500"], seed=7)
    assert outcomes == ["ok" if expected.take_create_fault() is None else "500" for _ in range(8)]
    assert {"ok", "500"} == set(outcomes)


def test_one_shot_kind_is_validated(rds_server):
    with pytest.raises(RdsConfigError, match="accept_then_500"):
        rds_server.faults.next_create("explode")
