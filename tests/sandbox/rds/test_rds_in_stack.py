"""The RDS stand-in inside the whole sandbox (``sandbox.stack.Sandbox``): one shared clock, and its
state kept across a restart with the same state dir."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from pathlib import Path

import oss2
import pytest
import yaml
from alibabacloud_rds20140815 import models as rds_models
from alibabacloud_rds20140815.client import Client
from alibabacloud_tea_openapi.models import Config

from sandbox.stack import DEFAULT_CONFIG, Sandbox


def _config() -> dict:
    config = yaml.safe_load(Path(DEFAULT_CONFIG).read_text())
    for section in ("source", "target", "oss", "rds"):
        config[section]["port"] = 0
    config["workload"]["enabled"] = False
    return config


class _Running:
    """A Sandbox started on its own event loop thread."""

    def __init__(self, state_dir: Path):
        self.sandbox = Sandbox(_config(), state_dir)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(self.sandbox.start())

    def call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)

    def stop(self) -> None:
        try:
            self.call(self.sandbox.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    def rds_client(self) -> Client:
        extra = self.sandbox.connections()["rds_migration"]["extra"]
        return Client(
            Config(
                access_key_id=extra["access_key_id"],
                access_key_secret=extra["access_key_secret"],
                endpoint=extra["endpoint"],
                protocol=extra["protocol"],
                region_id=extra["region"],
            )
        )

    def bucket(self) -> oss2.Bucket:
        extra = self.sandbox.connections()["oss_migration"]["extra"]
        auth = oss2.AuthV4(extra["access_key_id"], extra["access_key_secret"])
        return oss2.Bucket(auth, extra["endpoint"], "migration-sandbox", region=extra["region"])


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def _list(client: Client) -> list[str]:
    request = rds_models.DescribeMigrateTasksRequest(
        dbinstance_id="rm-sandbox0001", start_time="2000-01-01T00:00Z", end_time="2999-01-01T00:00Z"
    )
    return [t.migrate_task_id for t in client.describe_migrate_tasks(request).body.items.migrate_task]


def test_shared_clock_and_restart(tmp_path: Path):
    running = _Running(tmp_path / "state")
    try:
        assert running.sandbox.rds.clock is running.sandbox.clock
        running.bucket().put_object("backups/Stack_FULL_1.bak", b"x" * 1024)
        client = running.rds_client()
        task_id = client.create_migrate_task(
            rds_models.CreateMigrateTaskRequest(
                dbinstance_id="rm-sandbox0001",
                dbname="StackDB",
                backup_mode="UPDF",
                is_online_db="False",
                oss_object_positions="oss-cn-hangzhou.aliyuncs.com:migration-sandbox:backups/Stack_FULL_1.bak",
            )
        ).body.migrate_task_id
        assert _list(client) == [task_id]
        running.sandbox.clock.advance(timedelta(days=8))
        assert _list(client) == []
    finally:
        running.stop()

    again = _Running(tmp_path / "state")
    try:
        assert again.sandbox.clock.offset >= timedelta(days=8)
        client = again.rds_client()
        request = rds_models.DescribeMigrateTaskByIdRequest(
            dbinstance_id="rm-sandbox0001", migrate_task_id=task_id
        )
        assert client.describe_migrate_task_by_id(request).body.dbname == "StackDB"
        assert _list(client) == []
    finally:
        again.stop()
