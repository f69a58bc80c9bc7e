"""Shared operator plumbing: the migration spec, lazily built steps, and the chain driver."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Generator, Mapping
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from hooks.rds import FILE_FAILURE_STATES, RdsApiError
from hooks.rds_errors import advice_for
from operators.links import OssBackupFolderLink, RdsMigrationRecordsLink
from operators.steps import MigrationSteps
from rds_migration.config import MigrationSpec
from rds_migration.shipping import ChainState
from triggers.rds import MigrationFileTrigger

# A full restore of a large database can take most of a day (the seed's example: ~19 hours).
DEFAULT_WAIT_TIMEOUT = timedelta(hours=48)


class MigrationOperator(BaseOperator):
    """Base of every migration operator.

    :param migration: the validated configuration of this database's migration (a ``MigrationSpec``
        or its dict form).
    :param deferrable: wait for RDS in the triggerer instead of holding a worker slot (default: the
        config's ``deferrable``, true).
    :param poll_interval: seconds between two RDS status polls while waiting (default: the config's
        ``rds_poll_seconds``).
    :param wait_timeout: how long one wait on RDS may last before the task fails.
    """

    ui_color = "#e8f1fb"
    operator_extra_links = (RdsMigrationRecordsLink(), OssBackupFolderLink())

    def __init__(
        self,
        *,
        migration: MigrationSpec | Mapping[str, Any],
        deferrable: bool | None = None,
        poll_interval: float | None = None,
        wait_timeout: timedelta = DEFAULT_WAIT_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.migration = migration if isinstance(migration, MigrationSpec) else MigrationSpec(**migration)
        self.deferrable = self.migration.deferrable if deferrable is None else deferrable
        self.poll_interval = poll_interval or self.migration.rds_poll_seconds
        self.wait_timeout = wait_timeout

    @cached_property
    def steps(self) -> MigrationSteps:
        return MigrationSteps(self.migration)

    def pre_execute(self, context: Any) -> None:
        """Before ``execute`` and before each resume after a deferral: stamp the ledger with this task."""
        self.steps.bind(context["ti"])

    # ----------------------------------------------------------------------------------------------
    # Driving the chain: upload and import what msdb has and RDS lacks, one file at a time
    # ----------------------------------------------------------------------------------------------

    def drive_chain(self, context: Any, loop: dict[str, Any] | None = None) -> Any:
        """Bring RDS up to date with every backup we took, then call :meth:`chain_is_current`.

        Each pass re-reads ground truth (msdb and RDS), so a retried or resumed task continues where
        things stand. Waits defer to the triggerer (or block when ``deferrable`` is off).
        """
        loop = dict(loop or {})
        migrate_task_id = self.steps.find_migration_task_id()
        if migrate_task_id is None:
            raise AirflowFailException(
                f"No RDS migration task is recorded for database {self.steps.target_database!r} on instance "
                f"{self.steps.instance_id}: run the migration DAG's full branch first."
            )
        while True:
            self.on_chain_step()
            entries = self.steps.read_ledger()
            state = self.steps.chain_state(migrate_task_id, entries)
            self._fail_on_rds_failures(state)
            for name, description in state.reimport:
                self.log.warning(
                    "RDS failed on %s (%s): importing it again", name, description or "no reason"
                )
            self.steps.record_skipped(state, entries)
            if state.in_flight:
                item = state.in_flight[0]
                self.wait_for_file(
                    self.steps.task_id_for_file(migrate_task_id, item.import_name, entries),
                    item.import_name,
                    loop,
                )
                continue  # blocking mode: the file is restored, look again
            if state.blocked is not None:
                # Caught before anything is uploaded: nothing changes while someone decides.
                raise AirflowFailException(self.steps.explain_blocked(state))
            if state.pending:
                if not self.uses_cutover_reserve and self._hold_for_quota(state, entries, loop):
                    continue
                item = state.pending[0]
                self.log.info("Shipping %s", item.label)
                self.steps.upload(item)
                with fail_fast_on_refusal(), refused_reimport(state, item.import_name):
                    self.steps.import_backup(migrate_task_id, item)
                continue
            result = self.chain_is_current(context, state, loop)
            if result is not CONTINUE_CHAIN:
                return result

    #: Only the cutover may spend the imports kept in reserve for it (the tail, and one retry).
    uses_cutover_reserve = False

    def _hold_for_quota(self, state: ChainState, entries: list[Any], loop: dict[str, Any]) -> bool:
        """Before an import: never spend the cutover's reserve. When the pending backups need more imports
        than are spendable and no log is applied on top of the full yet, catch up with one differential
        (it supersedes them: one import instead of many) — decided before the first of them is imported,
        since a differential cannot follow an applied log. Without a free import, wait for the next free
        slot. Returns True when it did one of those instead of importing."""
        budget = self.steps.quota_budget(entries, state.migrate_task_id)
        decision = self.steps.plan_shipment(state, entries, interval=timedelta(milliseconds=1), budget=budget)
        if decision.action == "differential":
            self.log.warning("Import quota: %s", decision.reason)
            self.steps.take_backup("DIFF", self.steps.next_backup_name("DIFF"))
            return True
        if budget.spendable >= 1:
            return False
        self.log.info("Import quota: %s", budget.describe())
        self.wait_until(budget.next_free_slot(), loop)
        return True

    def wait_until(self, moment: datetime, loop: dict[str, Any]) -> None:
        """Pause until ``moment``: defer (resuming in :meth:`resume_after_wait`), or sleep when blocking."""
        if self.deferrable:
            self.defer(
                trigger=DateTimeTrigger(moment),
                method_name="resume_after_wait",
                kwargs={"loop": loop},
            )
        time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))

    def resume_after_wait(self, context: Any, event: Any = None, loop: dict[str, Any] | None = None) -> Any:
        """Trigger callback after :meth:`wait_until`: look at the chain again."""
        return self.drive_chain(context, loop or {})

    def on_chain_step(self) -> None:
        """Called before each pass of :meth:`drive_chain` (the cutover checks its freeze window here)."""

    def chain_is_current(self, context: Any, state: ChainState, loop: dict[str, Any]) -> Any:
        """Called when RDS has restored everything we took. Return a result, or ``CONTINUE_CHAIN``."""
        return {
            "migrate_task_id": state.migrate_task_id,
            "restore_point": state.restored.to_dict() if state.restored else None,
        }

    def wait_for_file(self, migrate_task_id: str, file_name: str, loop: dict[str, Any]) -> None:
        """Wait until RDS restored ``file_name``: defer (the task resumes in :meth:`resume_chain`)."""
        if self.deferrable:
            self.defer(
                trigger=MigrationFileTrigger(
                    rds_conn_id=self.migration.target.rds_conn_id,
                    instance_id=self.steps.instance_id,
                    migrate_task_id=migrate_task_id,
                    file_name=file_name,
                    poll_interval=self.poll_interval,
                ),
                method_name="resume_chain",
                kwargs={"loop": loop},
                timeout=self.wait_timeout,
            )
        try:
            self.steps.rds.wait_for_file_state(
                self.steps.instance_id,
                migrate_task_id,
                file_name,
                timeout=self.wait_timeout.total_seconds(),
                poll=self.poll_interval,
            )
        except RdsApiError as error:
            if error.code not in FILE_FAILURE_STATES:
                raise
            self.log.warning("%s — looking at the chain again", error)  # the chain decides: again, or fail
            return
        self.steps.record_ledger("restored", file_name=file_name, migrate_task_id=migrate_task_id)

    def resume_chain(self, context: Any, event: dict[str, Any], loop: dict[str, Any] | None = None) -> Any:
        """Trigger callback: record the restore and keep driving. A file RDS failed on is judged by the
        chain (imported again when another import can mend it, else the task fails with RDS's reason);
        any other error event fails the task."""
        if event and event.get("status") != "success" and event.get("file_status") in FILE_FAILURE_STATES:
            self.log.warning(
                "RDS failed on %s (%s): %s — looking at the chain again",
                event.get("file_name"),
                event.get("file_status"),
                event.get("message") or "no description",
            )
            return self.drive_chain(context, loop)
        raise_on_error_event(event)
        self.steps.record_ledger("restored", file_name=event.get("file_name"))
        return self.drive_chain(context, loop)

    def _fail_on_rds_failures(self, state: ChainState) -> None:
        if state.failed:
            name, description = state.failed[0]
            raise AirflowFailException(
                f"RDS failed to restore {name!r}: {description or 'no description'}. {advice_for(description)}"
            )
        if state.unknown:
            raise AirflowFailException(
                f"RDS lists {', '.join(map(repr, state.unknown))} for migration task {state.migrate_task_id}, "
                "but neither the source's msdb history nor this migration's ledger knows that file, so its "
                "place in the restore chain cannot be checked (imported by hand from another database or "
                'server?). Start over: trigger this DAG with the run conf {"start_over": true}.'
            )


# Returned by chain_is_current to say "take another turn of the loop" (any other value ends it).
CONTINUE_CHAIN = object()


@contextlib.contextmanager
def fail_fast_on_refusal() -> Generator[None, None, None]:
    """An RDS refusal (HTTP 4xx: permission, quota, name...) is not fixed by a retry a minute later:
    fail the task at once, so a cutover rolls back now instead of after its retries. Throttling and
    5xx were already retried by the hook."""
    try:
        yield
    except RdsApiError as error:
        if 400 <= error.status_code < 500:
            raise AirflowFailException(str(error)) from error
        raise


@contextlib.contextmanager
def refused_reimport(state: ChainState, import_name: str) -> Generator[None, None, None]:
    """A file RDS failed on, imported again, may be refused: whether a migration task takes more files
    after a failed one is not documented. Then only a new full backup goes on: say so, and how."""
    reasons = dict(state.reimport)
    try:
        yield
    except RdsApiError as error:
        if import_name not in reasons or error.code != "InvalideStatus":
            raise
        raise AirflowFailException(
            f"RDS failed to restore {import_name} ({reasons[import_name] or 'no reason given'}) and migration "
            f"task {state.migrate_task_id} takes no more files after a failed one (importing it again was "
            "answered InvalideStatus). Start over from a new full backup: trigger this DAG with the run conf "
            '{"start_over": true}; the old migration task is abandoned, the source keeps running as it is.'
        ) from error


def task_states(context: Any, task_ids: list[str]) -> dict[str, str]:
    """States of other tasks of this run, through the Task SDK (tasks have no database access)."""
    ti = context["ti"]
    found = ti.get_task_states(dag_id=ti.dag_id, task_ids=list(task_ids), run_ids=[ti.run_id])
    by_task = found.get(ti.run_id, {}) if isinstance(found, dict) else {}
    return {task_id: str(by_task.get(task_id) or "none") for task_id in task_ids}


def raise_on_error_event(event: Mapping[str, Any] | None) -> None:
    """Raise the failure a trigger reported (triggers report errors; operators raise them)."""
    if not event:
        raise AirflowFailException("The trigger ended without an event.")
    if event.get("status") != "success":
        message = event.get("message") or "no description"
        advice = event.get("advice") or ""
        what = event.get("file_name") or "the migration task"
        raise AirflowFailException(f"RDS reported a failure for {what}: {message}. {advice}".strip())
