"""The RDS stand-in's protocol, authentication, faults and synchronous validation, via the Tea SDK.

Codes, statuses and messages are the documented ones (R6: [INST] error table, [META] error codes).
"""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from alibabacloud_rds20140815 import models as rds_models
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException, ThrottlingException

from sandbox.rds.config import RdsConfig, RdsConfigError
from tests.sandbox.rds.conftest import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    BUCKET,
    INSTANCE_ID,
    OTHER_REGION_BUCKET,
    REGION,
    create_task,
    delete_database,
    list_tasks,
    make_client,
    open_database,
    oss_downloads,
    position,
    task_by_id,
    terminate,
)


def _attribute(client):
    request = rds_models.DescribeDBInstanceAttributeRequest(dbinstance_id=INSTANCE_ID)
    return client.describe_dbinstance_attribute(request).body.items.dbinstance_attribute[0]


def _refused(call, *args, **kwargs) -> tuple[int, str, str]:
    with pytest.raises(ClientException) as raised:
        call(*args, **kwargs)
    return raised.value.status_code, raised.value.code, raised.value.data["Message"]


def test_instance_attribute_describes_the_target_engine(client, target):
    attribute = _attribute(client)
    assert attribute.engine == "SQLServer"
    assert attribute.engine_version == "2019_std_ha"
    assert attribute.category == "HighAvailability"
    assert attribute.dbinstance_status == "Running"
    assert attribute.region_id == REGION
    assert attribute.dbinstance_storage == 20  # GB, an integer (R7)
    assert attribute.dbmax_quantity == 50
    # DBInstanceDiskUsed is a string in MB (R7): the target's system databases, rounded up.
    used_bytes = sum(target.database_info(n)["size_bytes"] for n in target.database_names())
    assert attribute.dbinstance_disk_used == str(-(-used_bytes // (1024 * 1024)))


@pytest.mark.parametrize(
    ("engine_version", "category"),
    [
        ("2019_ent", "AlwaysOn"),  # "_ent" is the cluster edition
        ("2017_ent", "AlwaysOn"),
        ("2022_ent_ha", "HighAvailability"),
        ("2016_web", "Basic"),
        ("2012", "Basic"),  # Enterprise single node
        ("08r2_ent_ha", "HighAvailability"),
        ("2016_std_sl", "serverless_ha"),
    ],
)
def test_engine_versions_and_categories(start_rds, engine_version, category):
    attribute = _attribute(make_client(start_rds(engine_version=engine_version)))
    assert (attribute.engine_version, attribute.category) == (engine_version, category)


@pytest.mark.parametrize(
    ("engine_version", "refused"),
    [
        ("2017_ent", {"DescribeOssDownloads", "DescribeMigrateTasks"}),
        ("2019_ent", {"DescribeOssDownloads"}),
        ("2022_ent", set()),
        ("2019_ent_ha", set()),
    ],
)
def test_cluster_editions_refuse_migration_apis(start_rds, bucket, engine_version, refused):
    """R8: [META] says which APIs an edition lacks; the error itself is UNKNOWN (our choice: 400
    IncorrectDBInstanceType, RDS's answer for an instance type that does not support an operation)."""
    client = make_client(start_rds(engine_version=engine_version))
    bucket.put_object("backups/x.bak", b"x" * 1024)
    task_id = create_task(client, "EditionDB", "backups/x.bak").migrate_task_id
    calls = {
        "DescribeOssDownloads": lambda: oss_downloads(client, task_id),
        "DescribeMigrateTasks": lambda: list_tasks(client),
    }
    for action, call in calls.items():
        if action in refused:
            assert _refused(call)[:2] == (400, "IncorrectDBInstanceType")
        else:
            call()
    assert task_by_id(client, task_id).migrate_task_id == task_id  # by id always works


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


def test_ram_permissions_per_account(rds_settings, start_rds, full_backup_object):
    """Forbidden.RAM (403) is the *caller's* missing permission, action by action."""
    rds_settings["accounts"] = {ACCESS_KEY_ID: ACCESS_KEY_SECRET, "LTAI-readonly": "ro-secret"}
    rds_settings["permissions"] = {"LTAI-readonly": ["Describe*"]}
    server = start_rds()
    readonly = make_client(server, secret="ro-secret", key_id="LTAI-readonly")
    assert _attribute(readonly).engine == "SQLServer"
    status, code, message = _refused(create_task, readonly, "SalesDB", full_backup_object)
    assert (status, code) == (403, "Forbidden.RAM")
    assert message == (
        "The user is not authorized to operate the specified resource, or this operation does not support RAM."
    )
    assert create_task(make_client(server), "SalesDB", full_backup_object).migrate_task_id  # full access


def test_permissions_must_name_known_accounts():
    with pytest.raises(RdsConfigError, match=r"rds\.permissions: 'LTAI-x' is not one of rds\.accounts"):
        RdsConfig.from_dict({"accounts": {"a": "b"}, "permissions": {"LTAI-x": ["*"]}})


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"quota_window": "weekly"}, "rds.quota_window"),
        ({"quota_window_s": 0}, "rds.quota_window_s"),
        ({"quota_timezone": "Mars/Olympus"}, "rds.quota_timezone"),
        ({"incremental_task_id": "both"}, "rds.incremental_task_id"),
        ({"file_name_style": "path"}, "rds.file_name_style"),
        ({"engine_version": "2019_enterprise"}, "rds.engine_version"),
        ({"terminate_drops_database": "yes"}, "rds.terminate_drops_database"),
        ({"max_imports_per_instance_per_day": 0}, "rds.max_imports_per_instance_per_day"),
        ({"daily_quota_code": "QuotaExceeded"}, "rds.daily_quota_code"),
        ({"timing": {"delete_restored_files_after_s": -1}}, "rds.timing.delete_restored_files_after_s"),
        ({"faults": {"ambiguous_create_kinds": ["explode"]}}, "rds.faults.ambiguous_create_kinds"),
        ({"faults": {"ambiguous_create_rate": 2}}, "rds.faults.ambiguous_create_rate"),
        ({"status": "Broken"}, "rds.status"),
        ({"surprise": 1}, "unknown field"),
    ],
)
def test_bad_config_names_the_field(settings, field):
    with pytest.raises(RdsConfigError, match=field.replace(".", r"\.")):
        RdsConfig.from_dict(settings)


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


def test_server_errors_limited_to_actions(rds_server, client):
    rds_server.faults.update(error_5xx_rate=1.0, actions=["DescribeDatabases"])
    with pytest.raises(ServerException) as raised:
        client.describe_databases(rds_models.DescribeDatabasesRequest(dbinstance_id=INSTANCE_ID))
    assert (raised.value.status_code, raised.value.code) == (503, "ServiceUnavailable")
    assert _attribute(client).engine == "SQLServer"  # other actions unaffected


def test_the_port_serves_no_sandbox_admin_endpoint(rds_server):
    """Faults and the clock change through Python only: nothing the product could call by mistake."""
    for path in ("/_sandbox/faults", "/_sandbox/clock"):
        request = urllib.request.Request(f"http://{rds_server.endpoint}{path}", data=b"{}", method="PUT")
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(request, timeout=5)
        assert raised.value.code == 404


@pytest.fixture
def full_backup_object(bucket) -> str:
    """An object with an accepted name; synchronous validation never reads its content."""
    bucket.put_object("backups/SalesDB_FULL_20261124101500.bak", b"x" * 1024)
    return "backups/SalesDB_FULL_20261124101500.bak"


@pytest.mark.parametrize(
    ("changes", "status", "code", "message"),
    [
        (
            {"oss_object_positions": position("backups/SalesDB.zip")},
            400,
            "IncorrectFileExtension",
            "The file extension does not support.",
        ),
        ({"oss_object_positions": position("backups/")}, 400, "InvalidFile", None),
        ({"oss_object_positions": position("backups/empty.bak")}, 400, "InvalidFile", None),
        ({"is_online_db": "True"}, 400, "InvalidParameter", None),
        (
            {"oss_object_positions": position("backups/missing.bak")},
            400,
            "InvalidOSSURL",
            "The Specified OSS URL is not valid",
        ),
        (
            {"oss_object_positions": position("a.bak", OTHER_REGION_BUCKET, "oss-cn-shanghai.aliyuncs.com")},
            400,
            "InvalidOSSURL",
            None,
        ),
        (
            {"oss_object_positions": f"http://oss-cn-hangzhou.aliyuncs.com:{BUCKET}:a.bak"},
            403,
            "InvalidOssObjectPositions.Format",
            "The specified params OssObjectPositions is not valid.",
        ),
        ({"oss_object_positions": f"{BUCKET}/a.bak"}, 403, "InvalidOssObjectPositions.Format", None),
        (
            {"oss_object_positions": f"s3.amazonaws.com:{BUCKET}:a.bak"},
            403,
            "InvalidOssObjectPositions.Format",
            None,
        ),
        ({"oss_object_positions": None}, 404, "BakFilesNeeded", "Backup file does not supply."),
        ({"dbinstance_id": "rm-other"}, 404, "InvalidDBInstanceId.NotFound", None),
        (
            {"migrate_task_id": "999"},
            400,
            "InvalidMigrateTask",
            "The specified MigrateTaskId 999 does not exist. Please check again.",
        ),
        ({"dbname": "master"}, 403, "InvalidDBName", "The specified database name is not allowed."),
        ({"dbname": "TempDB"}, 403, "InvalidDBName", None),
    ],
)
def test_create_migrate_task_validation(client, bucket, full_backup_object, changes, status, code, message):
    bucket.put_object("backups/empty.bak", b"")
    request = rds_models.CreateMigrateTaskRequest(
        dbinstance_id=INSTANCE_ID,
        dbname="SalesDB",
        backup_mode="UPDF",
        is_online_db="False",
        oss_object_positions=position(full_backup_object),
    )
    for name, value in changes.items():
        setattr(request, name, value)
    got = _refused(client.create_migrate_task, request)
    assert got[:2] == (status, code)
    if message is not None:
        assert got[2] == message


def test_key_with_leading_slash_is_accepted(client, full_backup_object):
    body = create_task(client, "SlashDB", position("/" + full_backup_object))
    assert body.migrate_task_id and body.backup_mode == "UPDF" and body.dbname == "SlashDB"


@pytest.mark.parametrize(
    ("settings", "status", "code", "message"),
    [
        ({"oss_authorized": False}, 400, "EntityNotExist.Role", "The role not exists"),
        ({"storage_gb": 0.0000001}, 400, "ExceedDiskSize", "The file size exceeding the disk size"),
        ({"status": "DBInstanceClassChanging"}, 403, "InvalidInstanceState", None),
    ],
)
def test_instance_level_refusals(start_rds, full_backup_object, settings, status, code, message):
    client = make_client(start_rds(**settings))
    got = _refused(create_task, client, "SalesDB", full_backup_object)
    assert got[:2] == (status, code)
    if message is not None:
        assert got[2] == message


def test_file_larger_than_free_storage(start_rds, bucket, target):
    """FileSizeExceeded ([INST]): fits the disk, not what is left of it."""
    used = sum(target.database_info(n)["size_bytes"] for n in target.database_names())
    bucket.put_object("backups/big.bak", b"x" * 4096)
    client = make_client(start_rds(storage_gb=(used + 2048) / 1024**3))
    got = _refused(create_task, client, "SalesDB", "backups/big.bak")
    assert got == (400, "FileSizeExceeded", "Exceeding the allowed file size of DB instance.")


def test_instance_not_running_refuses_migration_apis(rds_server, client, full_backup_object):
    task_id = create_task(client, "StateDB", full_backup_object).migrate_task_id
    rds_server.config.status = "Restoring"  # e.g. the instance is being restored or changed
    assert _refused(task_by_id, client, task_id)[:2] == (403, "InvalidInstanceState")
    assert _refused(list_tasks, client)[:2] == (403, "InvalidInstanceState")
    assert _refused(open_database, client, "StateDB", task_id)[:2] == (403, "IncorrectDBInstanceState")
    assert _refused(delete_database, client, "StateDB")[:2] == (403, "IncorrectDBInstanceState")
    assert _attribute(client).dbinstance_status == "Restoring"


def test_unknown_ids_on_every_task_api(client):
    assert _refused(task_by_id, client, "404")[:2] == (400, "InvalidMigrateTask")
    assert _refused(oss_downloads, client, "404")[:2] == (400, "InvalidMigrateTask")
    assert _refused(open_database, client, "SalesDB", "404")[:2] == (400, "InvalidMigrateTask")
    assert _refused(terminate, client, "404") == (
        400,
        "InvalidTask.NotFound",
        "Specified MigrateTaskId could not be found on RDS.",
    )


def test_backup_over_3_tb_is_refused(rds_settings, target, oss_server, bucket, tmp_path):
    """[INST]: BakFileSizeExceeded over 3 TB (an object source that reports such a size: the OSS
    stand-in cannot hold one)."""
    from sandbox.rds.oss_source import MAX_BACKUP_BYTES, ObjectInfo, StoreObjectSource
    from sandbox.rds.server import ThreadedRdsServer

    class HugeObjects(StoreObjectSource):
        def stat(self, bucket_name, key):
            info = super().stat(bucket_name, key)
            return ObjectInfo(MAX_BACKUP_BYTES + 1, info.region) if info else None

    bucket.put_object("backups/Huge_FULL_1.bak", b"x" * 1024)
    config = RdsConfig.from_dict(rds_settings)
    with ThreadedRdsServer(config, target, HugeObjects(oss_server.store), tmp_path / "huge") as server:
        got = _refused(create_task, make_client(server), "HugeDB", "backups/Huge_FULL_1.bak")
    assert got == (400, "BakFileSizeExceeded", "Exceeding the allowed bak file size.")
