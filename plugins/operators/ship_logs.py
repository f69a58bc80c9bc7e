"""Ship log backups in LSN order until the last one is small (seed step 4, repeated), within the quota."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk.exceptions import AirflowSkipException

from hooks.rds import TASK_SUCCESS_STATES
from operators.base import CONTINUE_CHAIN, MigrationOperator
from operators.steps import TASK_TERMINAL_FAILURES
from rds_migration.shipping import ChainState

MODES = ("loop", "once", "catch_up")


class ShipLogsOperator(MigrationOperator):
    """Each cycle: log backup → chain check → upload → import → wait restored.

    The cadence is planned against RDS's import quota (20 per database and 500 per instance a day):
    cycles are never closer than ``interval``, stretched when the day's budget would otherwise run out,
    and never spend the imports kept for the cutover (see ``rds_migration.quota``).

    - ``loop`` (the migration DAG): cycles repeat until the last log backup is smaller than the
      cutover threshold; between cycles the task defers, holding no worker slot.
    - ``once`` (the scheduled log-shipping DAG): ships one log backup while the migration waits between
      the full restore and the cutover, when the quota plan says one is due; skips otherwise.
    - ``catch_up`` (after the approval, before the freeze): if more than the threshold of log was written
      since the last log backup, back it up and ship it now, while applications still write, so the
      tail-log backup in the downtime stays small.

    :param mode: ``loop``, ``once`` or ``catch_up``.
    :param interval: shortest pause between two cycles (default: the config's
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
        if self.mode not in MODES:
            raise ValueError(f"ShipLogsOperator mode {self.mode!r}: use one of {', '.join(MODES)}")
        if self.mode == "once":
            self._skip_unless_waiting_for_logs()
        return self.drive_chain(context, {"cycle": 0, "sizes": [], "slept": True})

    def _skip_unless_waiting_for_logs(self) -> None:
        """The scheduled DAG ships only while the target waits in RESTORING for log backups."""
        entries = self.steps.read_ledger()
        migrate_task_id = self.steps.find_migration_task_id(entries)
        if migrate_task_id is None:
            raise AirflowSkipException("No migration task for this database yet: nothing to ship.")
        task = self.steps.rds.get_task_state(self.steps.instance_id, migrate_task_id)
        if task.status in TASK_SUCCESS_STATES or task.status in TASK_TERMINAL_FAILURES:
            raise AirflowSkipException(f"Migration task {migrate_task_id} is {task.status}: nothing to ship.")
        facts = self.steps.source.database_facts(self.steps.database)
        if (
            facts is None
            or facts.state_desc != "ONLINE"
            or facts.user_access_desc != "MULTI_USER"
            or facts.is_read_only
        ):
            state = (
                f"{facts.state_desc}/{facts.user_access_desc}/read_only={facts.is_read_only}"
                if facts
                else "missing"
            )
            raise AirflowSkipException(f"Source database is {state} (cutover under way?): not shipping.")
        state = self.steps.chain_state(migrate_task_id, entries)
        if state.restored is None:
            raise AirflowSkipException("The full backup is not restored on RDS yet: not shipping.")
        if not state.pending and not state.in_flight:
            # The DAG's schedule is its cadence: only the quota's pacing can hold a run back.
            decision = self.steps.plan_shipment(state, entries, interval=timedelta(milliseconds=1))
            if decision.action == "wait" or decision.not_before > datetime.now(UTC):
                raise AirflowSkipException(f"Not due yet: {decision.reason}")

    def chain_is_current(self, context: Any, state: ChainState, loop: dict[str, Any]) -> Any:
        if "sizes" not in loop:
            # Resumed without the state passed to defer() (Airflow 3.3.2's dag.test() drops it):
            # rebuild it from ground truth, the last log RDS restored.
            last = state.restored.last_log if state.restored else None
            loop.update(cycle=1, sizes=[last.size_bytes] if last else [], slept=loop.get("slept", False))
        if self.mode == "catch_up":
            return self._catch_up(state, loop)
        sizes: list[int] = loop["sizes"]
        done_once = self.mode == "once" and loop["cycle"] >= 1
        small_enough = bool(sizes) and sizes[-1] < self.threshold_bytes
        if done_once or (self.mode == "loop" and small_enough):
            self.log.info(
                "Log shipping done after %d cycle(s); last log %s bytes.", loop["cycle"], sizes[-1:]
            )
            return self._result(state, loop)
        if loop["cycle"] >= self.max_cycles:
            raise RuntimeError(
                f"Log backups stayed above {self.migration.cutover_threshold_mb} MB for {self.max_cycles} cycles "
                f"(last sizes: {sizes[-5:]}): shorten log_shipping.interval_minutes or raise cutover_threshold_mb."
            )
        if not loop["slept"]:
            entries = self.steps.read_ledger()
            decision = self.steps.plan_shipment(state, entries, interval=self.interval)
            self.log.info("Next cycle: %s", decision.reason)
            self._pause_until(decision.not_before, loop)
        loop["cycle"] += 1
        kind = "LOG"
        record = self.steps.take_backup(kind, self.steps.next_log_name(loop["cycle"]))
        sizes.append(record.size_bytes)
        loop["slept"] = False
        self.log.info(
            "Cycle %d: log backup %s, %.1f MB (threshold %.0f MB)%s",
            loop["cycle"],
            record.file_name,
            record.size_bytes / 1048576,
            self.migration.cutover_threshold_mb,
            " — empty: the database was idle" if record.is_empty else "",
        )
        return CONTINUE_CHAIN

    def _catch_up(self, state: ChainState, loop: dict[str, Any]) -> Any:
        """At approval: ship the log written since the briefing if it grew above the threshold."""
        if loop.get("caught_up"):
            return self._result(state, loop)
        loop["caught_up"] = True
        pending = self.steps.source.log_since_last_backup(self.steps.database)
        if pending is not None and pending < self.threshold_bytes:
            self.log.info(
                "%.1f MB of log written since the last log backup, under the %g MB threshold: the tail-log "
                "backup will carry it.",
                pending / 1048576,
                self.migration.cutover_threshold_mb,
            )
            return self._result(state, loop)
        budget = self.steps.quota_budget(self.steps.read_ledger(), state.migrate_task_id)
        if budget.spendable < 1:
            self.log.warning(
                "The log grew (%s) but the import quota has no import left outside the cutover's reserve "
                "(%s): the tail-log backup will carry it, and the downtime grows accordingly.",
                "unknown size" if pending is None else f"{pending / 1048576:.1f} MB",
                budget.describe(),
            )
            return self._result(state, loop)
        what = (
            "an unknown amount (SQL Server before 2016 SP2)"
            if pending is None
            else f"{pending / 1048576:.1f} MB"
        )
        self.log.info("Catching up before the freeze: %s of log since the last log backup.", what)
        record = self.steps.take_backup("LOG", self.steps.next_log_name(1))
        loop["sizes"].append(record.size_bytes)
        return CONTINUE_CHAIN

    @staticmethod
    def _result(state: ChainState, loop: dict[str, Any]) -> dict[str, Any]:
        return {
            "migrate_task_id": state.migrate_task_id,
            "cycles": loop["cycle"],
            "log_sizes": loop["sizes"],
            "restore_point": state.restored.to_dict() if state.restored else None,
        }

    def _pause_until(self, moment: datetime, loop: dict[str, Any]) -> None:
        """Pause between cycles; the cycle state travels in the deferral's kwargs."""
        if moment <= datetime.now(UTC):
            return
        if not self.deferrable:
            time.sleep((moment - datetime.now(UTC)).total_seconds())
            return
        self.defer(
            trigger=DateTimeTrigger(moment),
            method_name="resume_cycle",
            kwargs={"loop": {**loop, "slept": True}},
        )

    def resume_cycle(self, context: Any, event: Any = None, loop: dict[str, Any] | None = None) -> Any:
        """Trigger callback after the pause between cycles."""
        return self.drive_chain(context, loop or {"slept": True})
