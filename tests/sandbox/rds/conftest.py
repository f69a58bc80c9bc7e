"""Fixtures: a target engine, the OSS stand-in and the RDS stand-in, driven by the real SDKs.

Every call goes through ``alibabacloud_rds20140815.client.Client`` (Tea, signature V3 unless a test
asks for V2) and ``oss2`` (V4); nothing talks to the stand-ins' Python objects except to read the
target engine's state for assertions, to move the shared clock and to inject faults.
"""

from __future__ import annotations

import time
from pathlib import Path

import oss2
import pytest
from alibabacloud_rds20140815 import models as rds_models
from alibabacloud_rds20140815.client import Client
from alibabacloud_tea_openapi.models import Config

from sandbox.clock import SandboxClock
from sandbox.oss import OssConfig, ThreadedOssServer
from sandbox.rds.config import RdsConfig
from sandbox.rds.oss_source import StoreObjectSource
from sandbox.rds.server import ThreadedRdsServer
from tests.sandbox.rds import engines

ACCESS_KEY_ID = "LTAI-rds-sandbox-test"
ACCESS_KEY_SECRET = "rds/secret+with=odd&chars"
OSS_KEY_ID = "LTAI-oss-sandbox-test"
OSS_KEY_SECRET = "oss-secret"
INSTANCE_ID = "rm-test0001"
REGION = "cn-hangzhou"
BUCKET = "migration-test"
OTHER_REGION_BUCKET = "migration-shanghai"
ENDPOINT_NAME = f"oss-{REGION}.aliyuncs.com"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """darabonba ignores NO_PROXY: local calls must not go through a proxy."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def target(tmp_path: Path):
    """The RDS instance's engine (SQL Server 2019 Standard)."""
    return engines.target_instance(tmp_path / "target")


@pytest.fixture
def oss_server(tmp_path: Path):
    config = OssConfig.from_dict(
        {
            "data_dir": "oss",
            "accounts": {OSS_KEY_ID: OSS_KEY_SECRET},
            "buckets": {BUCKET: {"region": REGION}, OTHER_REGION_BUCKET: {"region": "cn-shanghai"}},
        },
        base_dir=tmp_path,
    )
    with ThreadedOssServer(config) as server:
        yield server


@pytest.fixture
def bucket(oss_server) -> oss2.Bucket:
    return oss2.Bucket(oss2.AuthV4(OSS_KEY_ID, OSS_KEY_SECRET), oss_server.endpoint, BUCKET, region=REGION)


@pytest.fixture
def rds_settings() -> dict:
    """RdsConfig fields; tests override entries before the server starts."""
    return {
        "instance_id": INSTANCE_ID,
        "region": REGION,
        "accounts": {ACCESS_KEY_ID: ACCESS_KEY_SECRET},
        "storage_gb": 20,
        "max_databases": 50,
        "timing": {"step_delay_s": 0, "open_delay_s": 0, "checkdb_delay_s": 0},
    }


@pytest.fixture
def clock() -> SandboxClock:
    """The sandbox clock the RDS stand-in reads (tests jump it forward instead of sleeping)."""
    return SandboxClock()


@pytest.fixture
def start_rds(rds_settings, target, oss_server, tmp_path: Path, clock):
    """Factory: start an RDS stand-in over ``tmp_path/rds`` (again: a restart with the same state)."""
    servers = []

    def start(own_clock: SandboxClock | None = None, **overrides) -> ThreadedRdsServer:
        config = RdsConfig.from_dict({**rds_settings, **overrides})
        objects = StoreObjectSource(oss_server.store)
        server = ThreadedRdsServer(config, target, objects, tmp_path / "rds", clock=own_clock or clock)
        servers.append(server.start())
        return server

    yield start
    for server in reversed(servers):
        if server._runner is not None:
            server.stop()


@pytest.fixture
def rds_server(start_rds):
    return start_rds()


@pytest.fixture(scope="session")
def backups(tmp_path_factory):
    """SalesDB on a source engine: a full backup and three log backups, rows written in between."""
    return engines.make_backup_chain(tmp_path_factory.mktemp("source"))


def upload(bucket, backups, *names: str, folder: str = "backups/SalesDB") -> list[str]:
    """Put real backup files into the bucket; returns their keys."""
    keys = []
    for name in names:
        key = f"{folder}/{backups.files[name].name}"
        bucket.put_object_from_file(key, str(backups.files[name]))
        keys.append(key)
    return keys


def make_client(server, secret: str = ACCESS_KEY_SECRET, key_id: str = ACCESS_KEY_ID, **config) -> Client:
    return Client(
        Config(
            access_key_id=key_id,
            access_key_secret=secret,
            endpoint=server.endpoint,
            protocol="http",
            region_id=REGION,
            **{"read_timeout": 10000, **config},
        )
    )


@pytest.fixture
def client(rds_server) -> Client:
    return make_client(rds_server)


def position(key: str, bucket: str = BUCKET, endpoint: str = ENDPOINT_NAME) -> str:
    return f"{endpoint}:{bucket}:{key}"


def create_task(
    client: Client, db_name: str, key: str, *, task_id: str | None = None, mode: str = "UPDF", **extra
):
    request = rds_models.CreateMigrateTaskRequest(
        dbinstance_id=INSTANCE_ID,
        dbname=db_name,
        backup_mode=mode,
        is_online_db="True" if mode == "FULL" else "False",
        oss_object_positions=position(key) if ":" not in key else key,
        migrate_task_id=task_id,
        **extra,
    )
    return client.create_migrate_task(request).body


def task_by_id(client: Client, task_id: str):
    request = rds_models.DescribeMigrateTaskByIdRequest(dbinstance_id=INSTANCE_ID, migrate_task_id=task_id)
    return client.describe_migrate_task_by_id(request).body


def oss_downloads(client: Client, task_id: str) -> list:
    request = rds_models.DescribeOssDownloadsRequest(dbinstance_id=INSTANCE_ID, migrate_task_id=task_id)
    return client.describe_oss_downloads(request).body.items.oss_download


def list_tasks(client: Client, start: str = "2000-01-01T00:00Z", end: str = "2999-01-01T00:00Z", **extra):
    """DescribeMigrateTasks over a window (default: any time; the API still keeps one week)."""
    request = rds_models.DescribeMigrateTasksRequest(
        dbinstance_id=INSTANCE_ID, start_time=start, end_time=end, **extra
    )
    return client.describe_migrate_tasks(request).body


def terminate(client: Client, task_id: str):
    request = rds_models.TerminateMigrateTaskRequest(dbinstance_id=INSTANCE_ID, migrate_task_id=task_id)
    return client.terminate_migrate_task(request).body


def delete_database(client: Client, db_name: str):
    request = rds_models.DeleteDatabaseRequest(dbinstance_id=INSTANCE_ID, dbname=db_name)
    return client.delete_database(request).body


def open_database(client: Client, db_name: str, task_id: str, mode: str = "AsyncExecuteDBCheck", token=None):
    request = rds_models.CreateOnlineDatabaseTaskRequest(
        dbinstance_id=INSTANCE_ID,
        dbname=db_name,
        migrate_task_id=task_id,
        check_dbmode=mode,
        client_token=token,
    )
    return client.create_online_database_task(request).body


def database_names(client: Client) -> dict[str, str]:
    """DBName -> DBStatus of DescribeDatabases."""
    body = client.describe_databases(rds_models.DescribeDatabasesRequest(dbinstance_id=INSTANCE_ID)).body
    return {d.dbname: d.dbstatus for d in body.databases.database}


def wait_task(client: Client, task_id: str, statuses=("Waiting", "Success", "Failed"), timeout: float = 30.0):
    """Poll DescribeMigrateTaskById until the task reaches one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        task = task_by_id(client, task_id)
        if task.status in statuses:
            return task
        if time.monotonic() > deadline:
            raise AssertionError(f"task {task_id} still {task.status} after {timeout} s")
        time.sleep(0.02)
