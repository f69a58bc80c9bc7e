"""Fixtures: a target engine, the OSS stand-in and the RDS stand-in, driven by the real SDKs.

Every call goes through ``alibabacloud_rds20140815.client.Client`` (Tea, signature V3 unless a test
asks for V2) and ``oss2`` (V4); nothing talks to the stand-ins' Python objects except to read the
target engine's state for assertions.
"""

from __future__ import annotations

import time
from pathlib import Path

import oss2
import pytest
from alibabacloud_rds20140815 import models as rds_models
from alibabacloud_rds20140815.client import Client
from alibabacloud_tea_openapi.models import Config

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
def rds_server(rds_settings, target, oss_server, tmp_path: Path):
    config = RdsConfig.from_dict(rds_settings)
    with ThreadedRdsServer(config, target, StoreObjectSource(oss_server.store), tmp_path / "rds") as server:
        yield server


def make_client(server, secret: str = ACCESS_KEY_SECRET, key_id: str = ACCESS_KEY_ID, **config) -> Client:
    return Client(
        Config(
            access_key_id=key_id,
            access_key_secret=secret,
            endpoint=server.endpoint,
            protocol="http",
            region_id=REGION,
            read_timeout=10000,
            **config,
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
