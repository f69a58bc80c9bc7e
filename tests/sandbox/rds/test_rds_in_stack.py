"""The RDS stand-in inside the whole sandbox (``sandbox.stack.Sandbox``): one shared clock (moved by
``python -m sandbox clock --advance``), and its state kept across a restart with the same state dir."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import oss2
import pytest
import yaml
from alibabacloud_rds20140815 import models as rds_models
from alibabacloud_rds20140815.client import Client
from alibabacloud_tea_openapi.models import Config

from sandbox.stack import DEFAULT_CONFIG, Sandbox, parse_duration

REPO = Path(__file__).resolve().parents[3]


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


@pytest.mark.parametrize(
    ("text", "expected"),
    [("8d", timedelta(days=8)), ("36h", timedelta(hours=36)), ("1d12h30m", timedelta(days=1.5, minutes=30))],
)
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "8", "8x", "0d", "-1d", "8d 2h"])
def test_parse_duration_refuses(text):
    with pytest.raises(ValueError, match="duration|forward"):
        parse_duration(text)


def _cli(*args: str, state_dir: Path, config: Path | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "sandbox", *args, "--state-dir", str(state_dir)]
    if config is not None:
        command += ["--config", str(config)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_clock_command_moves_the_running_sandbox(tmp_path: Path):
    config_path = tmp_path / "sandbox.yaml"
    config_path.write_text(yaml.safe_dump(_config()))
    state_dir = tmp_path / "state"
    up = _cli("up", state_dir=state_dir, config=config_path)
    try:
        assert up.returncode == 0, up.stderr
        extra = {}
        for line in up.stdout.splitlines():
            if line.startswith("export AIRFLOW_CONN_RDS_MIGRATION="):
                extra = json.loads(shlex.split(line.partition("=")[2])[0])["extra"]
        client = Client(
            Config(
                access_key_id=extra["access_key_id"],
                access_key_secret=extra["access_key_secret"],
                endpoint=extra["endpoint"],
                protocol=extra["protocol"],
                region_id=extra["region"],
            )
        )
        bucket_extra = json.loads((state_dir / "connections.json").read_text())["connections"][
            "oss_migration"
        ]
        oss = bucket_extra["extra"]
        bucket = oss2.Bucket(
            oss2.AuthV4(oss["access_key_id"], oss["access_key_secret"]),
            oss["endpoint"],
            "migration-sandbox",
            region=oss["region"],
        )
        bucket.put_object("backups/Cli_FULL_1.bak", b"x" * 1024)
        client.create_migrate_task(
            rds_models.CreateMigrateTaskRequest(
                dbinstance_id="rm-sandbox0001",
                dbname="CliDB",
                backup_mode="UPDF",
                is_online_db="False",
                oss_object_positions="oss-cn-hangzhou.aliyuncs.com:migration-sandbox:backups/Cli_FULL_1.bak",
            )
        )
        assert len(_list(client)) == 1

        bad = _cli("clock", "--advance", "8 days", state_dir=state_dir)
        assert bad.returncode == 2 and "not a duration" in bad.stderr
        moved = _cli("clock", "--advance", "8d", state_dir=state_dir)
        assert moved.returncode == 0, moved.stderr
        assert "ahead of real time by 8 days" in moved.stdout
        assert _list(client) == []  # the import is more than a week old now
        shown = _cli("clock", state_dir=state_dir)
        assert "ahead of real time by 8 days" in shown.stdout
    finally:
        down = _cli("down", state_dir=state_dir)
    assert down.returncode == 0, down.stderr
    assert _cli("clock", state_dir=state_dir).returncode == 1  # not running


def test_a_given_clock_is_the_one_the_stand_ins_read(tmp_path: Path):
    from sandbox.clock import SandboxClock

    clock = SandboxClock(timedelta(days=3))
    assert Sandbox(_config(), tmp_path / "state", clock=clock).clock is clock
