"""Ship log backups in LSN order until the last one is small (seed step 4, repeated)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk.exceptions import AirflowSkipException

from hooks.rds import TASK_FAILURE_STATES, TASK_SUCCESS_STATES
from operators.base import CONTINUE_CHAIN, MigrationOperator
from operators.steps import ChainState


class ShipLogsOperator(MigrationOperator):
    """Each cycle: log backup → chain check → upload → import → wait restored.

    In ``loop`` mode (the migration DAG) cycles repeat every ``interval`` until the last log backup is
    smaller than the cutover threshold; between cycles the task defers, holding no worker slot. In
    ``once`` mode (the scheduled log-shipping DAG) it ships one log backup when the migration waits
    between the full restore and the cutover, and skips otherwise.

    :param mode: ``loop`` or ``once``.
    :param interval: pause between two cycles in ``loop`` mode (default: the config's
        ``log_shipping.interval_minutes``).
    :param max_cycles: safety stop for ``loop`` mode; the task fails past it with the sizes seen.
    """

    template_fields = ("mode",)

    def __init__(
        self,
        *,
        mode: str = "loop",
        interval: timedelta | None = None,
        max_cycles: int = 500,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.mode = mode
        self.interval = interval or timedelta(minutes=self.migration.log_shipping.interval_minutes)
        self.max_cycles = max_cycles

    @property
    def threshold_bytes(self) -> int:
        return int(self.migration.cutover_threshold_mb * 1024 * 1024)

    def execute(self, context: Any) -> Any:
        if self.mode not in ("loop", "once"):
            raise ValueError(f"ShipLogsOperator mode {self.mode!r}: use 'loop' or 'once'")
        if self.mode == "once":
            self._skip_unless_waiting_for_logs()
        return self.drive_chain(context, {"cycle": 0, "sizes": [], "slept": True})

    def _skip_unless_waiting_for_logs(self) -> None:
        """The scheduled DAG ships only while the target waits in RESTORING for log backups."""
        migrate_task_id = self.steps.find_migration_task_id()
        if migrate_task_id is None:
            raise AirflowSkipException("No migration task for this database yet: nothing to ship.")
        task = self.steps.rds.get_task_state(self.steps.instance_id, migrate_task_id)
        if task.status in TASK_SUCCESS_STATES or task.status in TASK_FAILURE_STATES:
            raise AirflowSkipException(f"Migration task {migrate_task_id} is {task.status}: nothing to ship.")
        facts = self.steps.source.database_facts(self.steps.database)
        if facts is None or facts.state_desc != "ONLINE" or facts.user_access_desc != "MULTI_USER":
            state = f"{facts.state_desc}/{facts.user_access_desc}" if facts else "missing"
            raise AirflowSkipException(f"Source database is {state} (cutover under way?): not shipping.")
        if self.steps.chain_state(migrate_task_id).restored is None:
            raise AirflowSkipException("The full backup is not restored on RDS yet: not shipping.")

    def chain_is_current(self, context: Any, state: ChainState, loop: dict[str, Any]) -> Any:
        if "sizes" not in loop:
            # Resumed without the state passed to defer() (Airflow 3.3.2's dag.test() drops it):
            # rebuild it from ground truth, the last log RDS restored.
            last = state.restored.last_log if state.restored else None
            loop.update(cycle=1, sizes=[last.size_bytes] if last else [], slept=loop.get("slept", False))
        sizes: list[int] = loop["sizes"]
        done_once = self.mode == "once" and loop["cycle"] >= 1
        small_enough = bool(sizes) and sizes[-1] < self.threshold_bytes
        if done_once or (self.mode == "loop" and small_enough):
            self.log.info(
                "Log shipping done after %d cycle(s); last log %s bytes.", loop["cycle"], sizes[-1:]
            )
            return {
                "migrate_task_id": state.migrate_task_id,
                "cycles": loop["cycle"],
                "log_sizes": sizes,
                "restore_point": state.restored.to_dict() if state.restored else None,
            }
        if loop["cycle"] >= self.max_cycles:
            raise RuntimeError(
                f"Log backups stayed above {self.migration.cutover_threshold_mb} MB for {self.max_cycles} cycles "
                f"(last sizes: {sizes[-5:]}): shorten log_shipping.interval_minutes or raise cutover_threshold_mb."
            )
        if not loop["slept"] and not self.deferrable:
            time.sleep(self.interval.total_seconds())
        elif not loop["slept"]:
            self.defer(
                trigger=TimeDeltaTrigger(self.interval),
                method_name="resume_cycle",
                kwargs={"loop": {**loop, "slept": True}},
            )
        loop["cycle"] += 1
        record = self.steps.take_backup("LOG", self.steps.next_log_name(loop["cycle"]))
        sizes.append(record.size_bytes)
        loop["slept"] = False
        self.log.info(
            "Cycle %d: log backup %s, %.1f MB (threshold %.0f MB)",
            loop["cycle"],
            record.file_name,
            record.size_bytes / 1048576,
            self.migration.cutover_threshold_mb,
        )
        return CONTINUE_CHAIN

    def resume_cycle(self, context: Any, event: Any = None, loop: dict[str, Any] | None = None) -> Any:
        """Trigger callback after the pause between cycles."""
        return self.drive_chain(context, loop or {"slept": True})
