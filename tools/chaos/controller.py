"""The chaos controller: a thread that fires a plan's one-shot faults at their moment of the run.

It watches the run's task instances through the REST API and the stand-ins' own state (in this
process: the OSS request log, the RDS service's records, the source engine), and

- SIGKILLs the worker running a task at a kill point (tools/chaos/plan.py ``KILL_POINTS``): the task
  process (its title is ``airflow worker -- <ti id>``), or the LocalExecutor worker above it first;
- restarts the triggerer (SIGTERM or SIGKILL, then starts it again) while a task is deferred;
- arms the SQL Server BACKUP fault and the RDS file failure so they hit the backup/import the plan names.

Only processes below the scheduler this scenario started are ever signalled.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.chaos.plan import FaultPlan, Kill

log = logging.getLogger(__name__)

POLL_S = 0.05  # how often the stand-ins' state is looked at
# Kill points that are moments of the RDS stand-in: the worker is killed from inside the API call, after
# RDS accepted and before the answer leaves (a worker polling 50 ms later would find the ledger written).
RDS_MOMENTS = {
    "create_migration_task.accepted": "CreateMigrateTask",
    "ship_logs.log_imported": "CreateMigrateTask",
    "cutover.tail_imported": "CreateMigrateTask",
    "cutover.open_requested": "CreateOnlineDatabaseTask",
}
API_POLL_S = 0.25  # how often the task instances are read through the REST API
DATABASE = "SalesDB"
TAIL_PATTERN = "*_0.trn"  # the tail-log backup's file name (sequence number 0, operators/steps.py TAIL_SEQ)


@dataclass
class Event:
    """Something the controller did (or could not do), for the scenario's record."""

    at_s: float
    what: str
    detail: dict[str, Any] = field(default_factory=dict)


class ProcessTree:
    """Processes below one root pid (the scheduler), read from /proc."""

    def __init__(self, root_pid: int) -> None:
        self.root_pid = root_pid

    @staticmethod
    def cmdline(pid: int) -> str:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return ""

    @staticmethod
    def parent(pid: int) -> int | None:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        return int(stat.rsplit(")", 1)[1].split()[1])

    def is_below_root(self, pid: int) -> bool:
        seen = 0
        current: int | None = pid
        while current and current > 1 and seen < 64:
            if current == self.root_pid:
                return True
            current = self.parent(current)
            seen += 1
        return False

    def task_process(self, ti_id: str) -> int | None:
        """The pid of the task process running task instance ``ti_id`` (below the root), or None."""
        marker = f"airflow worker -- {ti_id}"
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            if marker in self.cmdline(pid) and self.is_below_root(pid):
                return pid
        return None


class Controller(threading.Thread):
    """Fires ``plan``'s one-shot faults during one DAG run.

    :param plan: the scenario's fault plan.
    :param task_instances: returns the run's task instances by task id (REST API rows).
    :param running: the in-process sandbox (``sandbox.background.RunningSandbox``).
    :param backup_folder: the migration's backup folder as the worker sees it.
    :param restart_triggerer: restarts the triggerer with the given signal.
    :param scheduler_pid: root of the processes that may be killed.
    :param metadata_db: Airflow's SQLite metadata DB, read (read-only) to see a deferral the moment it
        starts: in the sandbox a trigger often fires within a second, between two REST polls.
    """

    def __init__(
        self,
        plan: FaultPlan,
        task_instances: Callable[[], dict[str, dict[str, Any]]],
        running: Any,
        backup_folder: Path,
        restart_triggerer: Callable[[int], None],
        scheduler_pid: int,
        metadata_db: Path | None = None,
    ) -> None:
        super().__init__(name="chaos-controller", daemon=True)
        self.plan = plan
        self.task_instances = task_instances
        self.running = running
        self.backup_folder = backup_folder
        self.restart_triggerer = restart_triggerer
        self.tree = ProcessTree(scheduler_pid)
        self.metadata_db = metadata_db
        self.events: list[Event] = []
        self.stop_event = threading.Event()
        self.started_at = time.monotonic()
        self._pending_kills: list[Kill] = list(plan.kills)
        self._tis: dict[str, dict[str, Any]] = {}
        self._tis_read = 0.0
        self._running_since: dict[str, float] = {}  # task id -> when it was first seen running
        self._triggerer_restarted = plan.triggerer_restart is None
        self._tail_armed = False
        self._kills_lock = threading.Lock()  # the RDS stand-in's thread kills too
        self.errors: list[str] = []

    # ---- the loop ------------------------------------------------------------------------------

    def run(self) -> None:
        self._arm_at_start()
        self.running.sandbox.rds.observers.append(self._on_rds_accept)
        while not self.stop_event.wait(POLL_S):
            try:
                self._tick()
            except Exception as error:  # the controller must never end a scenario by itself
                log.exception("chaos controller tick failed")
                self.errors.append(f"{type(error).__name__}: {error}")
                time.sleep(API_POLL_S)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(30)
        with contextlib.suppress(ValueError):
            self.running.sandbox.rds.observers.remove(self._on_rds_accept)

    def record(self, what: str, **detail: Any) -> None:
        event = Event(round(time.monotonic() - self.started_at, 2), what, detail)
        self.events.append(event)
        log.info("chaos: %s %s", what, detail)

    def _tick(self) -> None:
        now = time.monotonic()
        if now - self._tis_read >= API_POLL_S:
            previous = self._tis
            self._tis = self.task_instances()
            self._tis_read = now
            for task_id, ti in self._tis.items():
                state = (ti.get("state"), ti.get("try_number"))
                if state != (
                    previous.get(task_id, {}).get("state"),
                    previous.get(task_id, {}).get("try_number"),
                ):
                    log.info("task %s try %s: %s", task_id, state[1], state[0])
                if ti.get("state") == "running":
                    self._running_since.setdefault(f"{task_id}#{ti.get('try_number')}", now)
        self._arm_when_due()
        for kill in list(self._pending_kills):
            if kill.point not in RDS_MOMENTS and self._kill_due(kill, now):
                self._take_and_kill(kill)
        deferred = [] if self._triggerer_restarted else self._deferred_now()
        if deferred:
            self._triggerer_restarted = True
            signum = signal.SIGKILL if self.plan.triggerer_restart == "kill" else signal.SIGTERM
            self.record("triggerer_restart", signal=signum.name, deferred=deferred)
            self.restart_triggerer(signum)

    def _deferred_now(self) -> list[str]:
        """Task ids deferred right now: the metadata DB when given, else the last REST poll."""
        if self.metadata_db is not None and self.metadata_db.exists():
            try:
                with contextlib.closing(
                    sqlite3.connect(f"file:{self.metadata_db}?mode=ro", uri=True, timeout=0.5)
                ) as db:
                    rows = db.execute("SELECT task_id FROM task_instance WHERE state = 'deferred'").fetchall()
                return sorted(row[0] for row in rows)
            except sqlite3.Error:  # locked by a writer for a moment: look again at the next tick
                return []
        return sorted(t for t, ti in self._tis.items() if ti.get("state") == "deferred")

    # ---- SQL Server and RDS file faults ----------------------------------------------------------

    def _arm_at_start(self) -> None:
        sandbox = self.running.sandbox
        if self.plan.sql_fault:
            kind, target = self.plan.sql_fault
            if target in ("full", "log"):
                statement = "DATABASE" if target == "full" else "LOG"
                sandbox.source.faults.next_backup(kind, database=DATABASE, statement=statement)
                self.record("sql_fault_armed", kind=kind, target=target)
        if self.plan.file_fault and self.plan.file_fault[1] == "first_log":
            sandbox.rds.faults.next_file_failure(self.plan.file_fault[0])
            self.record("file_fault_armed", kind=self.plan.file_fault[0], target="first_log")

    def _arm_when_due(self) -> None:
        """Faults on the tail are armed once the approval was asked for: only the tail follows it."""
        if self._tail_armed:
            return
        approval = self._tis.get("approve_cutover", {}).get("state")
        if approval not in ("awaiting_input", "success"):
            return
        self._tail_armed = True
        sandbox = self.running.sandbox
        if self.plan.sql_fault and self.plan.sql_fault[1] == "tail":
            sandbox.source.faults.next_backup(
                self.plan.sql_fault[0], database=DATABASE, statement="LOG", device=TAIL_PATTERN
            )
            self.record("sql_fault_armed", kind=self.plan.sql_fault[0], target="tail")
        if self.plan.file_fault and self.plan.file_fault[1] == "tail":
            sandbox.rds.faults.next_file_failure(self.plan.file_fault[0], key=TAIL_PATTERN)
            self.record("file_fault_armed", kind=self.plan.file_fault[0], target="tail")

    # ---- kills --------------------------------------------------------------------------------

    def _kill_due(self, kill: Kill, now: float, details: dict[str, Any] | None = None) -> bool:
        ti = self._tis.get(kill.task_id)
        if not ti or ti.get("state") != "running":
            return False
        since = self._running_since.get(f"{kill.task_id}#{ti.get('try_number')}", now)
        if now - since < kill.delay_s:
            return False
        return self._condition(kill, details)

    def _take_and_kill(self, kill: Kill) -> None:
        with self._kills_lock:
            if kill not in self._pending_kills:
                return
            self._pending_kills.remove(kill)
        self._kill(kill)

    def _on_rds_accept(self, action: str, details: dict[str, Any]) -> None:
        """RDS stand-in observer (its event loop thread): kill at a moment of the API call itself."""
        now = time.monotonic()
        for kill in list(self._pending_kills):
            if RDS_MOMENTS.get(kill.point) == action and self._kill_due(kill, now, details):
                self._take_and_kill(kill)

    def _condition(self, kill: Kill, details: dict[str, Any] | None = None) -> bool:
        """Whether the moment of ``kill.point`` has come (the stand-ins' own state)."""
        sandbox = self.running.sandbox
        point = kill.point
        if point == "full_backup.writing":
            return any(self.backup_folder.glob("*_FULL_*.partial"))
        if point == "upload_full.parts_sent":
            committed = [
                r
                for r in list(sandbox.oss_faults.requests)
                if r.operation == "UploadPart" and r.status == 200 and "_FULL_" in r.key
            ]
            return len(committed) >= kill.parts
        if point in RDS_MOMENTS:  # details: what RDS just accepted
            if details is None or details.get("db_name") != DATABASE:
                return False
            if point == "create_migration_task.accepted":
                return details.get("parent_id") is None
            if point == "ship_logs.log_imported":
                return str(details.get("key", "")).endswith(".trn")
            if point == "cutover.tail_imported":
                return str(details.get("key", "")).endswith("_0.trn")
            return True  # cutover.open_requested
        if point == "cutover.frozen":
            return bool(sandbox.source.database(DATABASE).read_only)
        return point.endswith(".running")  # at once (after the kill's delay)

    def _kill(self, kill: Kill) -> None:
        ti = self._tis[kill.task_id]
        pid = self.tree.task_process(str(ti["id"]))
        if pid is None:
            self.record("kill_missed", point=kill.point, reason="the task process was gone")
            return
        victims = [pid]
        if kill.mode == "worker":
            supervisor = self.tree.parent(pid)
            if (
                supervisor
                and "LocalExecutor" in self.tree.cmdline(supervisor)
                and self.tree.is_below_root(supervisor)
            ):
                victims.insert(0, supervisor)
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        self.record(
            "kill",
            point=kill.point,
            mode=kill.mode,
            task_id=kill.task_id,
            try_number=ti.get("try_number"),
            pids=victims,
        )

    def missed_kills(self) -> list[str]:
        """Kill points whose moment never came while their task ran."""
        return [k.point for k in self._pending_kills]
