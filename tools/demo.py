"""``make demo``: a full migration rehearsal, under real Airflow, against the local sandbox.

What it shows, end to end, with nothing faked on the Airflow side:

1. The sandbox starts (``python -m sandbox up``): a source SQL Server (TDS) with ``SalesDB`` and a live
   write workload, the RDS instance's SQL Server, an OSS stand-in and an RDS OpenAPI stand-in.
2. A migration YAML is written for the sandbox (``<demo dir>/migrations/demo.yaml``) and Airflow runs
   from this repo's ``dags/`` and ``plugins/``: ``airflow db migrate`` (SQLite), the pool, then
   ``scheduler``, ``dag-processor``, ``triggerer`` and ``api-server`` as separate processes
   (LocalExecutor), so deferred waits cross processes as in production.
3. Through the REST API, as a person or a CI job would: the DAG ``mssql_to_rds__salesdb`` is unpaused
   and triggered; when ``approve_cutover`` asks, its briefing is printed and the cutover is approved
   (``PATCH .../hitlDetails``); the run is followed to its end.
4. A summary: task states and durations, files shipped with LSN ranges and sizes (the OSS ledger),
   time per phase, the measured downtime (freeze of the source to the database open on RDS), the
   validation of source against target, and the HTML report's path.
5. Everything it started is stopped (also on Ctrl-C or SIGTERM). Logs stay in ``<demo dir>/logs``.

Watch it in the UI instead::

    .venv/bin/python -m tools.demo --keep-running

prints the UI address and a login as soon as the API answers and leaves everything up after the run
until Ctrl-C. Add ``--manual-approval`` to answer the approval yourself (Browse → Required Actions)
instead of the demo approving it through the REST API.

State, the SQLite metadata DB, backups, the HTML report and logs go to ``demo-output/`` (``--demo-dir``),
wiped at the start of each demo. The log-shipping DAG is configured (every 2 minutes) but created paused,
as every DAG is; unpause it in the UI to watch it ship logs while the approval waits. The demo takes
about 2-3 minutes on 2 cores. The exit code is 0 when the run succeeded and the target matched the
source, non-zero otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DEMO_DIR = REPO / "demo-output"
MARKER = ".mssql-rds-demo"  # only a folder holding this file is wiped at start
ENTRY = "salesdb"
DAG_ID = f"mssql_to_rds__{ENTRY}"
LOG_SHIPPING_DAG_ID = f"{DAG_ID}__log_shipping"
POOL = f"mssql_migration_{ENTRY}"
DATABASE = "SalesDB"
UI_USER = "demo"
POOL_READER = "preflight"  # a viewer: preflight reads the entry's pool through the API with it
RUN_TIMEOUT_S = 20 * 60
STARTUP_TIMEOUT_S = 180
COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")
FINAL_RUN_STATES = ("success", "failed")
# Phases of the summary: (label, first task, last task) measured start of first -> end of last.
PHASES = (
    ("preflight and branch", "preflight", "choose_start"),
    ("full backup, upload, restore", "full_backup", "wait_full_restored"),
    ("log shipping", "ship_logs", "ship_logs"),
    ("waiting for approval", "approve_cutover", "approve_cutover"),
    ("catch-up before the freeze", "catch_up", "catch_up"),
    ("cutover: freeze -> open (downtime)", "cutover", "cutover"),
    ("validation, then applications in", "validate", "release_target"),
    ("report", "report", "report"),
)


def say(message: str = "") -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------------------------------
# Processes: every one we start is its own session, stopped by its process group id
# --------------------------------------------------------------------------------------------------


@dataclass
class Processes:
    """The long-running processes the demo started, stopped in reverse order."""

    log_dir: Path
    started: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    commands: dict[str, tuple[list[str], dict[str, str], dict[str, Any]]] = field(default_factory=dict)

    def start(self, name: str, command: list[str], env: dict[str, str], **popen: Any) -> subprocess.Popen:
        self.commands[name] = (command, env, popen)
        log_file = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        with _signals_held():  # an interrupt inside Popen would leave a child we never learn about
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
                start_new_session=True,  # own process group: its children are stopped with it
                **popen,
            )
            self.started.append((name, process))
        log_file.close()
        return process

    def restart(self, name: str, signum: int = signal.SIGTERM, timeout: float = 30) -> subprocess.Popen:
        """Stop one component (its process group, with ``signum``; SIGKILL after ``timeout``) and start
        it again with the same command; its log goes on in the same file."""
        index, process = next((i, p) for i, (n, p) in enumerate(self.started) if n == name)
        _signal_group(process, signum)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait(timeout=10)
        _signal_group(process, signal.SIGKILL)  # children it left behind
        del self.started[index]
        command, env, popen = self.commands[name]
        return self.start(name, command, env, **popen)

    def check_alive(self) -> None:
        for name, process in self.started:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with code {process.returncode}; see {self.log_dir / name}.log"
                )

    def stop_all(self) -> None:
        for _name, process in reversed(self.started):
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for _name, process in reversed(self.started):
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            _signal_group(process, signal.SIGKILL)  # children left behind by a stopped leader
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        self.started.clear()


@contextlib.contextmanager
def _signals_held() -> Generator[None, None, None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP while a child starts and is recorded; raise them afterwards.

    Signal handlers belong to the main thread: another thread (a restart by the chaos controller)
    starts its child without holding them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, lambda signum, _frame: held.append(signum)) for signum in stops}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if held:
        raise KeyboardInterrupt(f"signal {held[0]}")


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)  # pgid == pid: started with start_new_session


def run_checked(command: list[str], env: dict[str, str], log_path: Path, what: str) -> str:
    """Run a short command to completion; its output goes to ``log_path`` and is returned."""
    result = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {result.returncode}); see {log_path}")
    return result.stdout


# --------------------------------------------------------------------------------------------------
# Demo folder, ports, sandbox, migration config
# --------------------------------------------------------------------------------------------------


def prepare_demo_dir(demo_dir: Path) -> None:
    """Start from an empty folder; refuse to wipe one the demo did not create or that is in use."""
    if demo_dir.exists() and any(demo_dir.iterdir()):
        if not (demo_dir / MARKER).exists():
            raise SystemExit(f"{demo_dir} is not empty and was not created by the demo: choose --demo-dir")
        if sandbox_running(demo_dir):
            raise SystemExit(
                f"a demo still runs in {demo_dir} (--keep-running?): stop it first (Ctrl-C), or "
                f"`python -m sandbox down --state-dir {demo_dir / 'sandbox'}`"
            )
        shutil.rmtree(demo_dir)
    for sub in ("logs", "migrations", "airflow"):
        (demo_dir / sub).mkdir(parents=True, exist_ok=True)
    (demo_dir / MARKER).write_text("created by python -m tools.demo\n")


def sandbox_running(demo_dir: Path) -> bool:
    command = [sys.executable, "-m", "sandbox", "status", "--state-dir", str(demo_dir / "sandbox")]
    return subprocess.run(command, cwd=REPO, capture_output=True, check=False).returncode == 0


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_port_block(count: int) -> int:
    """A base port N with N..N+count-1 all free."""
    for _ in range(200):
        base = 20000 + secrets.randbelow(30000)
        if all(_port_free(base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no block of {count} free ports found")


def start_sandbox(demo_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    """``python -m sandbox up`` (detached, with its write workload); returns connections.json."""
    state_dir = demo_dir / "sandbox"
    command = [sys.executable, "-m", "sandbox", "up", "--state-dir", str(state_dir)]
    command += ["--port-base", str(free_port_block(4))]
    run_checked(command, env, demo_dir / "logs" / "sandbox-cli.log", "python -m sandbox up")
    return json.loads((state_dir / "connections.json").read_text())


def stop_sandbox(demo_dir: Path, env: dict[str, str]) -> None:
    command = [sys.executable, "-m", "sandbox", "down", "--state-dir", str(demo_dir / "sandbox")]
    subprocess.run(command, env=env, cwd=REPO, capture_output=True, check=False)


def write_migration_config(
    demo_dir: Path, log_shipping_schedule: str | None, queue: str | None = None
) -> Path:
    """The migration YAML for the sandbox; the backup folder as SQL Server and as the worker see it.

    ``queue`` routes the tasks that read the backup folder (the distributed demo's backup host)."""
    worker_path = demo_dir / "sandbox" / "source-backups" / DATABASE  # sandbox maps D:\Backups here
    worker_path.mkdir(parents=True, exist_ok=True)
    config = {
        "defaults": {"owner": "migration-demo", "retries": 2, "tags": ["demo"]},
        "databases": {
            ENTRY: {
                "source": {"mssql_conn_id": "mssql_source", "database": DATABASE},
                "target": {
                    "rds_conn_id": "rds_migration",
                    "instance_id": "rm-sandbox0001",
                    "region": "cn-hangzhou",
                    "mssql_conn_id": "mssql_target",
                },
                "oss": {
                    "oss_conn_id": "oss_migration",
                    "bucket": "migration-sandbox",
                    "prefix": "demo/salesdb/",
                },
                "backup_folder": {"server_path": f"D:\\Backups\\{DATABASE}", "worker_path": str(worker_path)},
                "log_shipping": {"interval_minutes": 1, "schedule": log_shipping_schedule},
                # The demo's log backups are tens of KB: the loop ends after its first cycle.
                "cutover_threshold_mb": 2,
                "rds_poll_seconds": 2,
                "approval_timeout_hours": 1,
                # Like every sandbox timing, the quota's day is scaled down (to 72 s): the planner then
                # paces imports 4 s apart instead of 80 minutes, within the sandbox's 20 per day.
                "import_quota": {"window_hours": 0.02},
                **({"queue": queue} if queue else {}),
            }
        },
    }
    path = demo_dir / "migrations" / "demo.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Written by python -m tools.demo for the local sandbox (see include/migrations/README.md).\n"
    path.write_text(header + yaml.safe_dump(config, sort_keys=False))
    return path


# --------------------------------------------------------------------------------------------------
# Airflow: environment, metadata DB, components
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AirflowSetup:
    env: dict[str, str]
    api_url: str
    password: str


def airflow_env(demo_dir: Path, connections: dict[str, Any], api_port: int) -> AirflowSetup:
    """Every setting through the environment: no airflow.cfg edits, connections from AIRFLOW_CONN_*."""
    home = demo_dir / "airflow"
    api_url = f"http://127.0.0.1:{api_port}"
    password = secrets.token_urlsafe(12)
    reader_password = secrets.token_urlsafe(12)  # a read-only account: preflight checks the pool with it
    passwords_file = home / "simple_auth_manager_passwords.json"
    passwords_file.write_text(json.dumps({UI_USER: password, POOL_READER: reader_password}) + "\n")
    passwords_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{UI_USER}:admin,{POOL_READER}:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),  # shared by every component
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": api_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(demo_dir / "logs" / "tasks"),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            # The task supervisor notices a finished task within this many seconds (default 5). A shorter
            # lag narrows an Airflow 3.3 race (apache/airflow#72716): when a trigger fires at once, as the
            # sandbox's fast restores do, the stale "success" of the deferring attempt can reach the
            # scheduler after the resumed attempt started, which then fails it (the retry recovers).
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            "MSSQL_RDS_MIGRATIONS_DIR": str(demo_dir / "migrations"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    connections = {
        **connections,
        "airflow_api": {
            "conn_type": "http",
            "host": api_url,
            "login": POOL_READER,
            "password": reader_password,
        },
    }
    for conn_id, conn in connections.items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    return AirflowSetup(env=env, api_url=api_url, password=password)


def airflow_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "airflow", *args]


def init_airflow(setup: AirflowSetup, log_dir: Path) -> None:
    log = log_dir / "airflow-cli.log"
    run_checked(airflow_command("db", "migrate"), setup.env, log, "airflow db migrate")
    run_checked(
        airflow_command("pools", "set", POOL, "1", f"log chain of {DATABASE}", "--include-deferred"),
        setup.env,
        log,
        "airflow pools set",
    )


def start_airflow(
    processes: Processes, setup: AirflowSetup, wrap: Callable[[str, list[str]], list[str]] | None = None
) -> None:
    """Start the components; ``wrap(component, command)`` may run each somewhere else (another host)."""
    for component in COMPONENTS:
        args = ["api-server", "--port", setup.env["AIRFLOW__API__PORT"]] if component == "api-server" else []
        command = airflow_command(*(args or [component]))
        processes.start(component, wrap(component, command) if wrap else command, setup.env)


# --------------------------------------------------------------------------------------------------
# REST API client
# --------------------------------------------------------------------------------------------------


class AirflowApi:
    """The few public REST calls the demo makes, authenticated as the demo user (JWT)."""

    def __init__(self, base_url: str, user: str, password: str) -> None:
        self.base_url = base_url
        self.user = user
        self.password = password
        self.client = httpx.Client(base_url=base_url, timeout=30)

    def close(self) -> None:
        self.client.close()

    def login(self) -> None:
        response = self.client.post("/auth/token", json={"username": self.user, "password": self.password})
        response.raise_for_status()
        self.client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.client.request(method, "/api/v2" + path, **kwargs)
        if response.status_code == 401:  # token expired: log in again once
            self.login()
            response = self.client.request(method, "/api/v2" + path, **kwargs)
        return response

    def get(self, path: str, **params: Any) -> Any:
        response = self._call("GET", path, params=params)
        response.raise_for_status()
        return response.json()

    def get_or_none(self, path: str, **params: Any) -> Any:
        response = self._call("GET", path, params=params)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def send(self, method: str, path: str, body: dict[str, Any]) -> Any:
        response = self._call(method, path, json=body)
        if response.is_error:
            raise RuntimeError(f"{method} {path} -> {response.status_code}: {response.text}")
        return response.json()

    def xcom(self, run_id: str, task_id: str) -> Any:
        path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        entry = self.get_or_none(path, deserialize="true")
        return None if entry is None else entry.get("value")


def wait_for_api(api: AirflowApi, processes: Processes) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        processes.check_alive()
        with contextlib.suppress(httpx.HTTPError):
            if api.client.get("/api/v2/monitor/health").status_code == 200:
                api.login()
                return
        time.sleep(1)
    raise TimeoutError(f"the api-server did not answer within {STARTUP_TIMEOUT_S} s")


def wait_for_dag(api: AirflowApi, processes: Processes) -> None:
    """Until the dag-processor has parsed the DAG (import errors are reported at once)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        processes.check_alive()
        if api.get_or_none(f"/dags/{DAG_ID}") is not None:
            return
        errors = api.get("/importErrors").get("import_errors", [])
        if errors:
            raise RuntimeError("DAG import errors:\n" + "\n".join(e["stack_trace"] for e in errors))
        time.sleep(2)
    raise TimeoutError(f"{DAG_ID} was not parsed within {STARTUP_TIMEOUT_S} s")


def trigger_run(api: AirflowApi) -> str:
    api.send("PATCH", f"/dags/{DAG_ID}", {"is_paused": False})
    run = api.send("POST", f"/dags/{DAG_ID}/dagRuns", {"logical_date": None, "note": "make demo"})
    return run["dag_run_id"]


# --------------------------------------------------------------------------------------------------
# Following the run and answering the approval
# --------------------------------------------------------------------------------------------------


def task_instances(api: AirflowApi, run_id: str) -> dict[str, dict[str, Any]]:
    found = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", limit=100)
    return {ti["task_id"]: ti for ti in found["task_instances"]}


# A person reads the briefing before answering. Answering within the worker's heartbeat of the
# question also meets an Airflow 3.3.2 race (apache/airflow#72716) that fails the resumed attempt.
APPROVAL_DELAY_S = 5.0


def approve_if_asked(api: AirflowApi, run_id: str, state: str | None) -> bool:
    """Approve ``approve_cutover`` while it waits for input, as a person would. True once answered."""
    if state not in ("awaiting_input", "deferred"):
        return False
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/approve_cutover/-1/hitlDetails"
    detail = api.get_or_none(path)
    if detail is None:
        return False
    say("")
    say(f"  approval requested: {detail.get('subject')}")
    for line in (detail.get("body") or "").splitlines():
        say(f"  | {line}")
    if not detail.get("response_received"):
        api.send("PATCH", path, {"chosen_options": ["Approve"], "params_input": {}})
        say(f"  -> approved by '{UI_USER}' through PATCH /api/v2{path}")
    say("")
    return True


def follow_run(api: AirflowApi, processes: Processes, run_id: str, auto_approve: bool) -> str:
    """Poll the run, print each task's state changes, approve the cutover; return the final state."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    seen: dict[str, str | None] = {}
    answered_try: int | None = None  # a retried approval task asks again: answer each attempt once
    asked_at: dict[int, float] = {}
    started = time.monotonic()
    while time.monotonic() < deadline:
        processes.check_alive()
        tis = task_instances(api, run_id)
        for task_id, ti in tis.items():
            if ti["state"] != seen.get(task_id) and ti["state"] is not None:
                say(f"  [{time.monotonic() - started:6.1f}s] {task_id:<22} {ti['state']}")
                if ti["state"] == "awaiting_input" and not auto_approve:
                    say(f"  -> answer it in the UI: {api.base_url} (Browse -> Required Actions)")
            seen[task_id] = ti["state"]
        approval = tis.get("approve_cutover", {})
        attempt = approval.get("try_number")
        if auto_approve and approval.get("state") == "awaiting_input" and attempt != answered_try:
            waited = time.monotonic() - asked_at.setdefault(attempt, time.monotonic())
            if waited >= APPROVAL_DELAY_S and approve_if_asked(api, run_id, approval["state"]):
                answered_try = attempt
        run = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}")
        if run["state"] in FINAL_RUN_STATES:
            return run["state"]
        time.sleep(2)
    raise TimeoutError(f"the run did not end within {RUN_TIMEOUT_S // 60} minutes")


# --------------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------------


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _span(tis: dict[str, dict[str, Any]], first: str, last: str) -> float | None:
    start = _time(tis.get(first, {}).get("start_date"))
    end = _time(tis.get(last, {}).get("end_date"))
    return (end - start).total_seconds() if start and end else None


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:7.1f} s"


def print_tasks(tis: dict[str, dict[str, Any]]) -> None:
    say("Tasks (state, tries, duration):")
    ordered = sorted(tis.values(), key=lambda ti: (ti["start_date"] is None, ti["start_date"] or ""))
    for ti in ordered:
        say(
            f"  {ti['task_id']:<24} {ti['state'] or '-':<16} try {ti['try_number']}  {_seconds(ti['duration'])}"
        )


def print_phases(tis: dict[str, dict[str, Any]]) -> None:
    say("Phases (start of first task -> end of last):")
    for label, first, last in PHASES:
        say(f"  {label:<38} {_seconds(_span(tis, first, last))}")


def print_downtime(entries: list[Any], run_id: str) -> dict[str, float] | None:
    """Freeze -> open from the ledger, split into the work itself and Airflow's orchestration."""
    from operators.report import downtime_split

    split = downtime_split(entries, run_id)
    if split is None:
        say("MEASURED DOWNTIME: - (the run did not both freeze the source and open the database)")
        return None
    say(f"MEASURED DOWNTIME (source frozen -> database open on RDS): {split['window']:.1f} s")
    say(
        f"  work {split['work']:.1f} s = freeze {split['freeze']:.1f} + tail backup {split['tail_backup']:.1f} "
        f"+ upload {split['upload']:.1f} + RDS restore wait {split['rds_restore_wait']:.1f} "
        f"+ RDS open wait {split['rds_open_wait']:.1f}"
    )
    say(f"  orchestration (Airflow hand-offs, bookkeeping) {split['orchestration']:.1f} s")
    return split


def read_ledger(setup: AirflowSetup, config_path: Path) -> list[Any]:
    """The OSS ledger, read with the project's own hook through the same Airflow connections."""
    os.environ.update({k: v for k, v in setup.env.items() if k.startswith("AIRFLOW")})
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "ERROR"  # this process only: keep the summary clean
    sys.path.insert(0, str(REPO / "plugins"))
    from operators.steps import MigrationSteps
    from rds_migration.config import load_config

    spec = load_config(config_path).migrations[ENTRY]
    return MigrationSteps(spec).read_ledger()


def print_files(entries: list[Any]) -> None:
    from rds_migration.ledger import LedgerEvent

    uploads = {e.file_name: e for e in entries if e.event == LedgerEvent.UPLOADED}
    imported = {e.file_name for e in entries if e.event == LedgerEvent.IMPORT_REQUESTED}
    backups = [e for e in entries if e.event == LedgerEvent.BACKUP_TAKEN]
    say(f"Files shipped, in LSN order (OSS ledger, {len(entries)} events):")
    say(f"  {'file':<34} {'type':<5} {'LSN range [first, last)':<52} {'bytes':>8} {'upload':>8}  imported")
    for e in sorted(backups, key=lambda e: (e.first_lsn or 0, e.last_lsn or 0)):
        upload = uploads.get(e.file_name)
        seconds = upload.details.get("seconds") if upload else None
        lsns = f"[{e.first_lsn}, {e.last_lsn})"
        say(
            f"  {e.file_name:<34} {e.backup_type or '-':<5} {lsns:<52} {e.size_bytes or 0:>8} "
            f"{(f'{float(seconds):.2f} s') if seconds is not None else '-':>8}  "
            f"{'yes' if e.file_name in imported else 'no'}"
        )
    total = sum(e.size_bytes or 0 for e in uploads.values())
    say(f"  total uploaded: {total} bytes ({total / 1048576:.2f} MB) in {len(uploads)} file(s)")


def print_restore_point(api: AirflowApi, run_id: str) -> None:
    """What RDS had restored when the tail was applied (XCom of ``cutover``)."""
    point = (api.xcom(run_id, "cutover") or {}).get("restore_point")
    if not point:
        say("RDS restore point: unknown (the cutover task did not succeed)")
        return
    last = (point.get("last_log") or {}).get("file_name", "-")
    say(
        f"RDS restore point before the open: full + {point['logs_applied']} log(s), redo LSN "
        f"{point['redo_lsn']} (last file {last})"
    )


def print_preflight(api: AirflowApi, run_id: str) -> None:
    report = api.xcom(run_id, "preflight") or {}
    say("Preflight (every check, with its outcome):")
    for check in report.get("checks", []):
        say(f"  [{check['status'].upper():<4}] {check['name']}: {check['detail']}")


def print_validation(api: AirflowApi, run_id: str) -> bool:
    result = api.xcom(run_id, "validate")
    say("Validation (completeness by LSN, row counts from metadata; no table data read):")
    if not result:
        say("  no validation result (the task did not succeed)")
        return False
    proof = result.get("proof") or {}
    say(
        f"  RDS restored through LSN {proof.get('rds_restored_through_lsn')} (tail ends at "
        f"{proof.get('tail_last_lsn')}); target msdb: {proof.get('restored_through_lsn')} after "
        f"{proof.get('restores')} restores; family_guid {proof.get('target_family_guid')}; CHECKDB {proof.get('checkdb')}"
    )
    bad = result["problems"] + result["differences"]
    verdict = "IDENTICAL" if not bad else f"{len(bad)} PROBLEM(S)"
    say(f"  target vs source: {result['tables']} tables, {result['rows']} rows -> {verdict}")
    for problem in bad:
        say(f"    {problem}")
    return not bad


def print_summary(api: AirflowApi, setup: AirflowSetup, run_id: str, state: str, config_path: Path) -> bool:
    tis = task_instances(api, run_id)
    say("")
    say("=" * 100)
    say(f"Run {run_id} of {DAG_ID}: {state.upper()}")
    say("=" * 100)
    print_tasks(tis)
    say("")
    print_preflight(api, run_id)
    say("")
    print_phases(tis)
    say("")
    try:
        entries = read_ledger(setup, config_path)
        print_files(entries)
        say("")
        print_downtime(entries, run_id)
    except Exception as exc:  # the summary must not hide the run's outcome
        say(f"  (could not read the ledger: {exc})")
    print_restore_point(api, run_id)
    say("")
    valid = print_validation(api, run_id)
    report = api.xcom(run_id, "report") or {}
    say("")
    say(f"Outcome: {report.get('outcome', '-')}")
    say(f"HTML report: {report.get('report_path', '-')}")
    if report.get("report_key"):
        say(f"            (and oss://migration-sandbox/{report['report_key']})")
    return state == "success" and valid


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", type=Path, default=DEFAULT_DEMO_DIR, help="state and logs (wiped)")
    parser.add_argument(
        "--keep-running", action="store_true", help="leave everything up after the run, until Ctrl-C"
    )
    parser.add_argument(
        "--manual-approval", action="store_true", help="do not approve: wait for a person in the UI"
    )
    parser.add_argument(
        "--executor",
        choices=("local", "celery"),
        default="local",
        help="local: one machine, SQLite (default); celery: PostgreSQL, Redis, a backup-host worker (make demo-celery)",
    )
    parser.add_argument(
        "--log-shipping-schedule",
        default="*/2 * * * *",
        help="schedule of the log-shipping DAG (created paused; 'none' for no DAG)",
    )
    return parser.parse_args(argv)


def _raise_on_signal(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_demo(args: argparse.Namespace, processes: Processes, cleanup: list) -> int:
    demo_dir = args.demo_dir.resolve()
    base_env = dict(os.environ)
    say(f"Demo folder: {demo_dir}")
    say("Starting the sandbox (source SQL Server with a live write workload, target, OSS, RDS API)...")
    cleanup.append(lambda: stop_sandbox(demo_dir, base_env))
    connections = start_sandbox(demo_dir, base_env)["connections"]
    schedule = (
        None if args.log_shipping_schedule.lower() in ("none", "null", "") else args.log_shipping_schedule
    )
    config_path = write_migration_config(demo_dir, schedule)
    setup = airflow_env(demo_dir, connections, free_port())
    say(f"Migration config: {config_path}")
    say("Initialising Airflow (SQLite metadata DB, pool)...")
    init_airflow(setup, demo_dir / "logs")
    say(f"Starting airflow {', '.join(COMPONENTS)}...")
    start_airflow(processes, setup)
    return run_migration(args, processes, cleanup, setup, config_path)


def run_migration(
    args: argparse.Namespace,
    processes: Processes,
    cleanup: list,
    setup: AirflowSetup,
    config_path: Path,
    after_summary: Callable[[AirflowApi, str], bool] | None = None,
) -> int:
    """With Airflow starting: trigger the run, answer the approval, follow it, print the summary.

    ``after_summary(api, run_id)`` adds a section (the distributed demo's routing); False fails the demo.
    """
    demo_dir = args.demo_dir.resolve()
    api = AirflowApi(setup.api_url, UI_USER, setup.password)
    cleanup.insert(0, api.close)
    wait_for_api(api, processes)
    ui_line = f"UI: {setup.api_url}  (login {UI_USER} / {setup.password})"
    say(ui_line)
    wait_for_dag(api, processes)
    run_id = trigger_run(api)
    say(f"Triggered {DAG_ID}, run {run_id}:")
    state = follow_run(api, processes, run_id, auto_approve=not args.manual_approval)
    ok = print_summary(api, setup, run_id, state, config_path)
    if after_summary is not None:
        ok = after_summary(api, run_id) and ok
    say("")
    say(f"Logs: {demo_dir / 'logs'} (components: <name>.log; tasks: tasks/)")
    if args.keep_running:
        say(f"Everything keeps running. {ui_line}. Ctrl-C stops it all.")
        while True:
            processes.check_alive()
            time.sleep(5)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    run = run_demo
    if args.executor == "celery":
        from tools import celery_demo

        celery_demo.stop_leftovers(args.demo_dir.resolve())
        run = celery_demo.run_demo
    prepare_demo_dir(args.demo_dir.resolve())
    processes = Processes(args.demo_dir.resolve() / "logs")
    cleanup: list = [processes.stop_all]
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_on_signal)
    code = 1
    try:
        code = run(args, processes, cleanup)
    except KeyboardInterrupt:
        say("\nInterrupted.")
        code = 130
    except Exception as exc:
        say(f"\nDEMO FAILED: {exc}")
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)  # let the cleanup finish
        say("Stopping Airflow and the sandbox...")
        for step in cleanup:
            with contextlib.suppress(Exception):
                step()
        say(
            f"Stopped. Logs: {args.demo_dir.resolve() / 'logs'}. Total time {time.monotonic() - started:.0f} s."
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
