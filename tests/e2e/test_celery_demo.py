"""``make demo-celery`` end to end: the migration on a distributed Airflow, and its routing proven.

Runs ``python -m tools.demo --executor celery`` for real (PostgreSQL, Redis, scheduler, dag-processor,
triggerer, api-server, two Celery workers on their own "hosts"; a few minutes on 2 cores) and checks
what it claims: the run succeeds and validates, every task that reads the backup folder ran on the
backup host, every other task on the default worker, only the backup host sees the folder, no password
reaches a log, and nothing it started is left running.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tools import celery_demo

REPO = Path(__file__).resolve().parents[2]
DEMO_TIMEOUT_S = 20 * 60
# Tasks the DAG routes to the entry's queue because they read the backup folder (dags/mssql_to_rds.py).
BACKUP_READERS = {
    "preflight",
    "full_backup",
    "upload_full",
    "wait_full_restored",
    "ship_logs",
    "catch_up",
    "cutover",
}
# Every test shares one demo run (module fixture): whichever runs first pays for it.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(DEMO_TIMEOUT_S + 120)]


@pytest.fixture(scope="module")
def demo_run():
    # Not under pytest's tmp_path: its root is 0700, and PostgreSQL runs as the `postgres` user when we
    # are root, which must traverse the demo folder to reach its data directory.
    demo_dir = Path(tempfile.mkdtemp(prefix="celery-demo-"))
    demo_dir.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    command = [sys.executable, "-m", "tools.demo", "--executor", "celery", "--demo-dir", str(demo_dir)]
    try:
        result = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S, check=False
        )
        yield demo_dir, result
    finally:
        shutil.rmtree(demo_dir, ignore_errors=True)


def test_celery_demo_migrates_and_validates(demo_run):
    demo_dir, result = demo_run
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    out = result.stdout
    assert "CeleryExecutor, PostgreSQL, Redis" in out
    assert f"of {celery_demo.demo.DAG_ID}: SUCCESS" in out
    assert "-> IDENTICAL" in out
    assert "ROUTING OK" in out


def test_backup_readers_ran_on_the_backup_host_and_nothing_else_did(demo_run):
    demo_dir, result = demo_run
    routing = json.loads((demo_dir / celery_demo.ROUTING_FILE).read_text())
    assert routing["problems"] == []
    assert routing["queue"] == "salesdb-backups"
    tasks = {row["task_id"]: row for row in routing["tasks"]}
    assert {t for t, row in tasks.items() if row["reads_backup_folder"]} >= BACKUP_READERS
    for task_id in BACKUP_READERS:
        assert tasks[task_id]["dag_queue"] == tasks[task_id]["queue"] == "salesdb-backups", task_id
        assert tasks[task_id]["hostname"] == "backup-host", task_id
        assert tasks[task_id]["state"] == "success", task_id
    others = [row for row in tasks.values() if not row["reads_backup_folder"] and row["hostname"]]
    assert {row["task_id"] for row in others} >= {
        "choose_start",
        "create_migration_task",
        "validate",
        "release_target",
    }
    assert all(row["hostname"] == "worker-1" and row["queue"] == "default" for row in others), others


def test_only_the_backup_host_saw_the_backup_folder(demo_run):
    demo_dir, _ = demo_run
    views = json.loads((demo_dir / celery_demo.ROUTING_FILE).read_text())["views"]
    assert views.pop("backup-host") is True
    assert set(views) == {
        "worker-1",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-api-server",
    }
    assert not any(views.values()), views


def test_no_password_in_logs_or_output(demo_run):
    demo_dir, result = demo_run
    config = (demo_dir / "services" / "redis" / "redis.conf").read_text()
    password = next(line.split(" ", 1)[1] for line in config.splitlines() if line.startswith("requirepass "))
    assert len(password) >= 16
    assert password not in result.stdout + result.stderr
    # The PostgreSQL password is not kept anywhere after the run: no URL may show any password.
    shown = re.compile(r"(postgresql(\+\w+)?://airflow|redis://):(?!\*+@)[^@\s]+@")
    for path in (demo_dir / "logs").rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert password not in text, path
            assert not shown.search(text), (path, shown.search(text).group(0)[:20])


def test_everything_it_started_is_stopped(demo_run):
    assert_nothing_left(demo_run[0])


def assert_nothing_left(demo_dir: Path) -> None:
    assert not (demo_dir / "services" / "postgres" / "data" / "postmaster.pid").exists()
    config = (demo_dir / "services" / "redis" / "redis.conf").read_text()
    port = int(next(line.split()[1] for line in config.splitlines() if line.startswith("port ")))
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    leftovers = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:  # Airflow's components carry the demo folder in their environment, not their arguments
                seen = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
            except OSError:
                continue
            if str(demo_dir).encode() in seen:
                leftovers.append(
                    f"{proc.name}: " + (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                )
    assert leftovers == []


def test_interrupted_demo_stops_everything():
    """SIGINT (Ctrl-C) while the workers start: exit 130, PostgreSQL stopped, no process left behind."""
    demo_dir = Path(tempfile.mkdtemp(prefix="celery-demo-int-"))
    demo_dir.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    command = [sys.executable, "-m", "tools.demo", "--executor", "celery", "--demo-dir", str(demo_dir)]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        seen = []
        for line in process.stdout:
            seen.append(line)
            if line.startswith("Starting airflow"):
                break
        assert seen and seen[-1].startswith("Starting airflow"), "".join(seen)
        assert (demo_dir / "services" / "postgres" / "data" / "postmaster.pid").exists()
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=120)
        assert process.returncode == 130, "".join(seen) + rest
        assert "Interrupted." in rest
        assert_nothing_left(demo_dir)
    finally:
        if process.poll() is None:
            process.kill()
        shutil.rmtree(demo_dir, ignore_errors=True)
