"""The faults of one chaos scenario, drawn from its seed (pure: the same seed gives the same plan).

A plan has two parts:

- rates handed to the stand-ins before the run, each with the scenario's seed: about 5% of OSS requests
  answer 500/503, throttle (503 ``TotalQpsLimitExceeded`` or 429 ``QpsLimitExceeded``) or reset the
  connection mid-body; about 5% of RDS API calls throttle or answer 5xx, and a share of the accepted
  CreateMigrateTask calls are answered with a 500 or a dropped connection (the import exists anyway);
- one-shot events the controller fires at a moment of the run: the worker running a task SIGKILLed at
  one of :data:`KILL_POINTS`, the triggerer restarted while a task is deferred, a SQL Server fault in a
  BACKUP (its session KILLed, or its connection dropped before or after it was recorded in msdb), and
  an incremental file RDS fails to restore once.

The rates are drawn by the stand-ins in the order requests arrive, which threads and timing decide: a
seed reproduces the plan exactly and the rate-drawn faults only statistically.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

#: Where the worker running a task is SIGKILLed: (name, task, what has just happened when it is killed).
#: Together they cover the run, the downtime window included; the controller kills at the first moment
#: the condition holds while the task runs (tools/chaos/controller.py).
KILL_POINTS: tuple[tuple[str, str, str], ...] = (
    ("full_backup.writing", "full_backup", "the full backup file is being written"),
    ("upload_full.parts_sent", "upload_full", "some parts of the full's multipart upload are committed"),
    ("create_migration_task.accepted", "create_migration_task", "RDS accepted the full import"),
    ("wait_full_restored.running", "wait_full_restored", "the wait for the full's restore runs"),
    ("ship_logs.log_imported", "ship_logs", "RDS accepted a log import"),
    ("catch_up.running", "catch_up", "the catch-up before the freeze runs"),
    ("cutover.frozen", "cutover", "the source is READ_ONLY, before the tail-log backup is recorded"),
    ("cutover.tail_imported", "cutover", "RDS accepted the tail-log import"),
    ("cutover.open_requested", "cutover", "RDS accepted CreateOnlineDatabaseTask"),
    ("validate.running", "validate", "the validation runs"),
)
KILL_POINT_NAMES = tuple(name for name, _task, _what in KILL_POINTS)
#: ``task``: SIGKILL the task process (its supervisor reports the failure at once). ``worker``: SIGKILL
#: the LocalExecutor worker (the supervisor) and then its task process, as when a machine is lost: only
#: the scheduler's heartbeat timeout notices.
KILL_MODES = ("task", "worker")
#: Which BACKUP a SQL Server fault hits: the full, the first log backup of log shipping, or the tail.
SQL_FAULT_TARGETS = ("full", "log", "tail")
SQL_FAULT_KINDS = ("kill", "drop", "drop_after_commit")
#: Which incremental import RDS fails once: the first log shipped, or the tail-log backup.
FILE_FAULT_TARGETS = ("first_log", "tail")
FILE_FAULT_KINDS = ("download_failed", "restore_failed")
OSS_THROTTLE_CODES = ("TotalQpsLimitExceeded", "QpsLimitExceeded")
# The task each SQL fault target fails, so the kill and the SQL fault never spend one task's retries.
SQL_FAULT_TASK = {"full": "full_backup", "log": "ship_logs", "tail": "cutover"}


@dataclass(frozen=True)
class Kill:
    """One SIGKILL: at ``point`` (a name of :data:`KILL_POINTS`), in ``mode``, after ``delay_s``."""

    point: str
    mode: str
    delay_s: float = 0.0
    #: For ``upload_full.parts_sent``: how many committed parts to wait for.
    parts: int = 1

    @property
    def task_id(self) -> str:
        return next(task for name, task, _what in KILL_POINTS if name == self.point)


@dataclass(frozen=True)
class FaultPlan:
    """Everything that goes wrong in one scenario (see the module docstring).

    :param seed: the scenario's seed.
    :param oss_faults: ``oss.faults`` of the sandbox config (the OSS stand-in's FaultConfig).
    :param rds_faults: ``rds.faults`` of the sandbox config (the RDS stand-in's FaultConfig).
    :param kills: the SIGKILLs, at most one per task.
    :param triggerer_restart: restart the triggerer while a task is deferred: ``term`` (graceful stop) or
        ``kill`` (SIGKILL), or None.
    :param sql_fault: ``(kind, target)``: a BACKUP fault of :data:`SQL_FAULT_KINDS` on a target of
        :data:`SQL_FAULT_TARGETS`, or None.
    :param file_fault: ``(kind, target)``: an incremental file RDS fails once, or None.
    """

    seed: int
    oss_faults: dict[str, Any] = field(default_factory=dict)
    rds_faults: dict[str, Any] = field(default_factory=dict)
    kills: tuple[Kill, ...] = ()
    triggerer_restart: str | None = None
    sql_fault: tuple[str, str] | None = None
    file_fault: tuple[str, str] | None = None

    @property
    def fault_free(self) -> bool:
        return not (
            self.oss_faults
            or self.rds_faults
            or self.kills
            or self.triggerer_restart
            or self.sql_fault
            or self.file_fault
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One line per fault, for the scenario's log and the figures."""
        if self.fault_free:
            return "no faults (baseline)"
        lines = [
            f"OSS: {_rates(self.oss_faults)}",
            f"RDS: {_rates(self.rds_faults)}",
        ]
        lines += [f"kill: {k.mode} at {k.point} (+{k.delay_s:.1f} s)" for k in self.kills]
        if self.triggerer_restart:
            lines.append(f"triggerer: {self.triggerer_restart} while a task is deferred")
        if self.sql_fault:
            lines.append(f"SQL Server: {self.sql_fault[0]} during the {self.sql_fault[1]} backup")
        if self.file_fault:
            lines.append(f"RDS file: {self.file_fault[0]} once on the {self.file_fault[1]} import")
        return "\n".join(lines)


def _rates(faults: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(faults.items()) if k != "seed")


def fault_free_plan(seed: int = 0) -> FaultPlan:
    """The baseline: the same scenario with nothing going wrong."""
    return FaultPlan(seed=seed)


def draw_plan(
    seed: int, kills_per_run: int = 1, kill_points: tuple[str, ...] = KILL_POINT_NAMES
) -> FaultPlan:
    """The fault plan of scenario ``seed``.

    :param kills_per_run: SIGKILLs per scenario, at distinct kill points (and so distinct tasks).
    :param kill_points: the points to draw from (default: all ten). Seed ``n`` starts at point
        ``n % len(kill_points)``, so consecutive seeds visit every point.
    """
    if not 0 <= kills_per_run <= len(kill_points):
        raise ValueError(f"kills_per_run must be between 0 and {len(kill_points)}, got {kills_per_run}")
    unknown = sorted(set(kill_points) - set(KILL_POINT_NAMES))
    if unknown:
        raise ValueError(f"unknown kill point(s) {unknown}; known: {list(KILL_POINT_NAMES)}")
    rng = random.Random(seed)
    oss = {
        "error_500_rate": 0.01,
        "error_503_rate": 0.01,
        "throttle_rate": 0.02,
        "throttle_code": rng.choice(OSS_THROTTLE_CODES),
        "reset_rate": 0.01,
        "seed": seed,
    }
    rds = {
        "throttle_rate": 0.025,
        "error_5xx_rate": 0.025,
        "error_5xx_status": rng.choice((500, 503)),
        "retry_after_ms": 200,
        "ambiguous_create_rate": 0.2,
        "ambiguous_create_kinds": ["accept_then_500", "accept_then_drop"],
        "seed": seed,
    }
    first = seed % len(kill_points)
    others = [p for i, p in enumerate(kill_points) if i != first]
    rng.shuffle(others)
    chosen = [kill_points[first], *others][:kills_per_run]
    kills = tuple(
        Kill(
            point=point,
            mode=rng.choice(KILL_MODES),
            delay_s=round(rng.uniform(0.0, 1.0), 2) if point.endswith(".running") else 0.0,
            parts=rng.randint(1, 5),
        )
        for point in chosen
    )
    killed_tasks = {k.task_id for k in kills}
    targets = [t for t in SQL_FAULT_TARGETS if SQL_FAULT_TASK[t] not in killed_tasks]
    sql_fault = (rng.choice(SQL_FAULT_KINDS), rng.choice(targets)) if targets else None
    file_fault = (rng.choice(FILE_FAULT_KINDS), rng.choice(FILE_FAULT_TARGETS))
    return FaultPlan(
        seed=seed,
        oss_faults=oss,
        rds_faults=rds,
        kills=kills,
        triggerer_restart=rng.choice(("term", "kill")),
        sql_fault=sql_fault,
        file_fault=file_fault,
    )
