"""The RDS stand-in's protocol, authentication, faults and synchronous validation, via the Tea SDK."""

from __future__ import annotations

import json
import urllib.request

import pytest
from alibabacloud_rds20140815 import models as rds_models
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException, ThrottlingException

from tests.sandbox.rds.conftest import (
    BUCKET,
    INSTANCE_ID,
    OTHER_REGION_BUCKET,
    REGION,
    create_task,
    make_client,
    position,
    task_by_id,
)


def _attribute(client):
    request = rds_models.DescribeDBInstanceAttributeRequest(dbinstance_id=INSTANCE_ID)
    return client.describe_dbinstance_attribute(request).body.items.dbinstance_attribute[0]


def test_instance_attribute_describes_the_target_engine(client):
    attribute = _attribute(client)
    assert attribute.engine == "SQLServer"
    assert attribute.engine_version == "2019_std_ha"
    assert attribute.category == "HighAvailability"
    assert attribute.dbinstance_status == "Running"
    assert attribute.region_id == REGION
    assert attribute.dbinstance_storage == 20
    assert int(attribute.dbinstance_disk_used) > 0
    assert attribute.dbmax_quantity == 50


def test_v2_signature_is_accepted(rds_server):
    client = make_client(rds_server, signature_algorithm="v2")
    assert _attribute(client).dbinstance_id == INSTANCE_ID


@pytest.mark.parametrize(
    ("config", "status", "code"),
    [
        ({"secret": "wrong"}, 400, "IncompleteSignature"),
        ({"secret": "wrong", "signature_algorithm": "v2"}, 400, "SignatureDoesNotMatch"),
        ({"key_id": "LTAI-unknown"}, 404, "InvalidAccessKeyId.NotFound"),
    ],
)
def test_bad_credentials_are_rejected(rds_server, config, status, code):
    with pytest.raises(ClientException) as raised:
        _attribute(make_client(rds_server, **config))
    assert (raised.value.status_code, raised.value.code) == (status, code)
    assert "wrong" not in raised.value.message  # the secret is never echoed


def test_unknown_instance_and_missing_parameter(client):
    with pytest.raises(ClientException) as raised:
        client.describe_databases(rds_models.DescribeDatabasesRequest(dbinstance_id="rm-nope"))
    assert (raised.value.status_code, raised.value.code) == (404, "InvalidDBInstanceId.NotFound")
    with pytest.raises(ClientException) as raised:
        client.describe_migrate_tasks(rds_models.DescribeMigrateTasksRequest(dbinstance_id=INSTANCE_ID))
    assert raised.value.code == "MissingStartTime"


def test_throttling_is_seen_as_throttling_exception(rds_server, client):
    rds_server.faults.update(throttle_rate=1.0, retry_after_ms=250)
    with pytest.raises(ThrottlingException) as raised:
        _attribute(client)
    assert raised.value.code == "Throttling.User"
    assert raised.value.retry_after == 250
    rds_server.faults.update(throttle_rate=0.0)
    assert _attribute(client).engine == "SQLServer"


def test_server_errors_and_faults_endpoint(rds_server, client):
    request = urllib.request.Request(
        f"http://{rds_server.endpoint}/_sandbox/faults",
        data=json.dumps({"error_5xx_rate": 1.0, "actions": ["DescribeDatabases"]}).encode(),
        method="PUT",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.load(response)["error_5xx_rate"] == 1.0
    with pytest.raises(ServerException) as raised:
        client.describe_databases(rds_models.DescribeDatabasesRequest(dbinstance_id=INSTANCE_ID))
    assert (raised.value.status_code, raised.value.code) == (503, "ServiceUnavailable")
    assert _attribute(client).engine == "SQLServer"  # other actions unaffected


@pytest.fixture
def full_backup_object(bucket) -> str:
    """An object with an accepted name; synchronous validation never reads its content."""
    bucket.put_object("backups/SalesDB_FULL_20261124101500.bak", b"x" * 1024)
    return "backups/SalesDB_FULL_20261124101500.bak"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"oss_object_positions": position("backups/SalesDB.zip")}, "IncorrectFileExtension"),
        ({"is_online_db": "True"}, "InvalidParameter"),
        ({"oss_object_positions": position("backups/missing.bak")}, "InvalidOssUrl"),
        ({"oss_object_positions": f"http://oss-cn-hangzhou.aliyuncs.com:{BUCKET}:a.bak"}, "InvalidOssUrl"),
        (
            {"oss_object_positions": position("a.bak", OTHER_REGION_BUCKET, "oss-cn-shanghai.aliyuncs.com")},
            "InvalidOssUrl",
        ),
        ({"dbinstance_id": "rm-other"}, "InvalidDBInstanceId.NotFound"),
        ({"migrate_task_id": "999"}, "InvalidMigrateTaskId.NotFound"),
    ],
)
def test_create_migrate_task_validation(client, full_backup_object, changes, code):
    request = rds_models.CreateMigrateTaskRequest(
        dbinstance_id=INSTANCE_ID,
        dbname="SalesDB",
        backup_mode="UPDF",
        is_online_db="False",
        oss_object_positions=position(full_backup_object),
    )
    for name, value in changes.items():
        setattr(request, name, value)
    with pytest.raises(ClientException) as raised:
        client.create_migrate_task(request)
    assert raised.value.code == code


def test_key_with_leading_slash_is_accepted(client, full_backup_object):
    body = create_task(client, "SlashDB", position("/" + full_backup_object))
    assert body.migrate_task_id and body.backup_mode == "UPDF" and body.dbname == "SlashDB"


@pytest.mark.parametrize(
    ("settings", "status", "code"),
    [
        ({"oss_authorized": False}, 403, "Forbidden.RAM"),
        ({"storage_gb": 0.0000001}, 400, "FileSizeExceeded"),
    ],
)
def test_instance_level_refusals(rds_settings, request, full_backup_object, settings, status, code):
    rds_settings.update(settings)
    client = make_client(request.getfixturevalue("rds_server"))
    with pytest.raises(ClientException) as raised:
        create_task(client, "SalesDB", full_backup_object)
    assert (raised.value.status_code, raised.value.code) == (status, code)


def test_daily_import_limit(rds_settings, request, full_backup_object):
    rds_settings["max_imports_per_day"] = 2
    rds_server = request.getfixturevalue("rds_server")
    client = make_client(rds_server)
    for _ in range(2):
        create_task(client, "LimitDB", full_backup_object)
        rds_server.wait_idle()  # the fake file fails verification, so the name is free again
    with pytest.raises(ClientException) as raised:
        create_task(client, "limitdb", full_backup_object)  # names compare case-insensitively
    assert raised.value.code == "UploadLimitExceeded"


def test_describe_migrate_tasks_window_and_paging(client, rds_server, full_backup_object):
    created = [create_task(client, f"PageDB{i}", full_backup_object).migrate_task_id for i in range(3)]
    rds_server.wait_idle()
    request = rds_models.DescribeMigrateTasksRequest(
        dbinstance_id=INSTANCE_ID, start_time="2000-01-01T00:00Z", end_time="2999-01-01T00:00Z", page_size=30
    )
    body = client.describe_migrate_tasks(request).body
    assert body.total_record_count == 3 and body.page_number == 1 and body.page_record_count == 3
    assert {t.migrate_task_id for t in body.items.migrate_task} == set(created)
    assert {t.backup_mode for t in body.items.migrate_task} == {"UPDF"}
    request.end_time = "2001-01-01T00:00Z"
    assert client.describe_migrate_tasks(request).body.total_record_count == 0
    request.start_time, request.end_time, request.page_number = "2000-01-01T00:00Z", "2999-01-01T00:00Z", 2
    assert client.describe_migrate_tasks(request).body.items.migrate_task == []
    request.start_time = "yesterday"
    with pytest.raises(ClientException) as raised:
        client.describe_migrate_tasks(request)
    assert raised.value.code == "InvalidStartTime.Malformed"
    assert task_by_id(client, created[0]).dbinstance_name == INSTANCE_ID
