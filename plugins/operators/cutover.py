"""The cutover: approval, freeze → tail → open in the fewest hand-offs, guardrails, rollback (seed steps 5-7).

Downtime runs from the freeze to the open. Nothing in that window grows with the size of the data: the
tail-log backup holds only what was written since the last shipped log, and validation reads metadata.
One task covers the window (``cutover``: freeze, tail, upload, import, wait restored, open, wait online),
waiting on RDS in the worker with a short poll instead of handing over to the triggerer or to the next
task, and logging every step with its duration.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from hooks.rds import TASK_SUCCESS_STATES, RdsApiError, RdsWaitTimeoutError
from operators.base import MigrationOperator
from operators.steps import TASK_TERMINAL_FAILURES
from rds_migration.config import MigrationSpec
from rds_migration.estimate import estimate_downtime, format_duration
from rds_migration.ledger import LedgerEvent
from rds_migration.quota import cutover_budget

#: Poll interval while RDS finishes the tail and the open: the downtime is counted in seconds here.
WINDOW_POLL_S = 1.0


class FreezeWindowExceeded(AirflowFailException):
    """The open was not requested within ``max_freeze_minutes`` of the freeze: roll back."""


# --------------------------------------------------------------------------------------------------
# Approval
# --------------------------------------------------------------------------------------------------


class CutoverApprovalOperator(ApprovalOperator):
    """Ask a person to approve the cutover, showing where the migration stands and what approval does.

    The body is computed when the question is asked and says when. Only ``approvers`` (the config's
    Airflow user ids) may answer when the list is set; the notifiers are told that an answer is needed.
    Without an answer within ``approval_timeout_hours`` the task fails (and notifies): nothing changes
    on the source. Rejecting skips the cutover and changes nothing either.

    :param migration: the validated configuration of this database's migration.
    """

    def __init__(self, *, migration: MigrationSpec | dict[str, Any], **kwargs: Any) -> None:
        spec = migration if isinstance(migration, MigrationSpec) else MigrationSpec(**migration)
        kwargs.setdefault(
            "subject", f"Approve the cutover of {spec.source.database} to {spec.target.instance_id}?"
        )
        kwargs.setdefault("body", "Computed when the approval is requested.")
        kwargs.setdefault("response_timeout", timedelta(hours=spec.approval_timeout_hours))
        if spec.approvers:
            kwargs.setdefault("assigned_users", [{"id": user, "name": user} for user in spec.approvers])
        super().__init__(**kwargs)
        self.migration = spec

    def execute(self, context: Any) -> Any:
        from operators.steps import MigrationSteps

        self.body = cutover_briefing(MigrationSteps(self.migration).bind(context["ti"]))
        self.log.info("Cutover briefing:\n%s", self.body)
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        # Logged first: on Reject the parent skips the downstream tasks by raising, so nothing after
        # super().execute_complete() runs.
        from operators.steps import MigrationSteps

        steps = MigrationSteps(self.migration).bind(context["ti"])
        if event.get("error_type") == "timeout":
            steps.record_ledger("cutover_rejected", responded_by="nobody (timed out)")
            raise AirflowFailException(
                f"Nobody answered the cutover approval within {self.migration.approval_timeout_hours:g} h: "
                "nothing changed on the source. The log-shipping DAG keeps the target current; trigger this "
                "DAG again to be asked again."
            )
        approved = event.get("chosen_options") == ["Approve"]
        who = str(event.get("responded_by_user") or "unknown")
        steps.record_ledger("cutover_approved" if approved else "cutover_rejected", responded_by=who)
        if not approved:
            self.log.warning(
                "Cutover rejected by %s: nothing on the source changed. The scheduled log-shipping DAG keeps "
                "the target current. To cut over later, trigger this DAG again: it resumes the existing "
                "migration task and asks again.",
                who,
            )
        return super().execute_complete(context, event)


def cutover_briefing(steps: Any) -> str:
    """The approval body: facts a person needs to decide, and what approving will do."""
    spec = steps.spec
    computed = datetime.now(UTC)
    entries = steps.read_ledger()
    migrate_task_id = steps.find_migration_task_id(entries)
    state = steps.chain_state(migrate_task_id, entries)
    rates = steps.measured_rates(entries)
    facts = steps.source.database_facts(steps.database)
    pending_bytes = steps.source.log_since_last_backup(steps.database)
    pending_files = len(state.pending)
    pending_files_bytes = sum(item.record.size_bytes for item in state.pending)
    data_bytes = facts.data_bytes if facts else 0
    estimate = estimate_downtime(
        rates,
        (pending_bytes or 0) + pending_files_bytes,
        data_size_bytes=data_bytes,
        check_db_mode=spec.check_db_mode,
    )
    deep = spec.validation == "deep"
    deep_line = ""
    if deep:
        scan_s, scanned = deep_scan_estimate(steps)
        estimate.parts["validate"] = estimate.parts.get("validate", 0) + scan_s
        deep_line = (
            f"- Deep validation reads every row on both sides (in parallel): about {format_duration(scan_s)} "
            f"({scanned}); it is part of the downtime, since applications wait for validation."
        )
    budget = steps.quota_budget(entries, migrate_task_id)
    fits = cutover_budget(budget, pending_files=pending_files)
    point = state.restored
    last_applied = point.last_applied if point else None
    threshold = spec.cutover_threshold_mb
    gap = (
        "unknown (this SQL Server cannot tell before SQL Server 2016 SP2)"
        if pending_bytes is None
        else (f"{pending_bytes / 1048576:.1f} MB of log written since the last log backup")
    )
    lines = [
        f"**Cutover of `{steps.database}` to RDS instance `{steps.instance_id}` as `{steps.target_database}`**",
        f"(computed at {computed:%Y-%m-%d %H:%M:%S} UTC)",
        "",
        f"- Migration task: `{migrate_task_id}`; restored up to LSN {point.redo_lsn if point else 'none'} "
        f"(`{last_applied.file_name if last_applied else '-'}`); in flight: {len(state.in_flight)}, "
        f"backups not imported yet: {pending_files}",
        f"- Current gap: {gap}",
        f"- Estimated downtime: **{format_duration(estimate.total_seconds)}** — {estimate.describe()}",
        f"- Import quota: {budget.describe()}",
        f"- {fits.message}",
    ]
    if deep_line:
        lines.append(deep_line)
    lines += [
        "",
        "Approving runs, in order:",
        f"0. The log written since this briefing is measured again: above {threshold:g} MB it is backed up, "
        "shipped and restored first, while applications still write (no downtime).",
        "1. Freeze: the source database goes RESTRICTED_USER and READ_ONLY WITH ROLLBACK IMMEDIATE — every "
        "writer stops, sysadmin and db_owner sessions included; reads still work.",
        "2. Tail-log backup (the database stays READ_ONLY, so nothing can follow it), upload, import; wait "
        "until RDS restored it.",
        f"3. Open the database on RDS (CheckDBMode={spec.check_db_mode}) and wait until it is online. If the "
        f"open has not been requested {spec.max_freeze_minutes:g} min after the freeze, the cutover rolls "
        "back by itself.",
        "4. Validate: RDS restored through the tail's last LSN, same database_guid, backups with CHECKSUM, row "
        "counts per table from metadata" + (", and every row's content" if deep else "") + ".",
        "5. Let applications in: READ_WRITE and MULTI_USER on the target (the freeze state travelled with "
        "the log).",
        "",
        "If a step before the open fails, the source is given back (READ_WRITE, MULTI_USER): nothing is lost "
        "and log shipping can continue. Once the open was requested, nothing is rolled back unless RDS shows "
        "the database is not opening. Rejecting changes nothing on the source.",
    ]
    return "\n".join(lines)


def deep_scan_estimate(steps: Any, sample_s: float = 3.0) -> tuple[float, str]:
    """Seconds a deep validation takes, from a scan rate measured now on the source's largest table."""
    counts = steps.source.row_counts(steps.database)
    if not counts:
        return 0.0, "no user tables"
    (schema, table), rows = max(counts.items(), key=lambda item: item[1])
    total_rows = sum(counts.values())
    if rows == 0:
        return 0.0, f"{total_rows} rows"
    started = time.monotonic()
    scanned = steps.source.table_digest(steps.database, schema, table, max_seconds=sample_s)[0]
    elapsed = max(time.monotonic() - started, 1e-3)
    rows_per_s = max(scanned / elapsed, 1.0)
    return (
        total_rows / rows_per_s,
        f"{total_rows} rows at {rows_per_s:,.0f} rows/s measured on {schema}.{table}",
    )


# --------------------------------------------------------------------------------------------------
# The window: freeze → tail → open
# --------------------------------------------------------------------------------------------------


class _WindowOperator(MigrationOperator):
    """Common guard of the tasks inside the downtime window: the freeze must not outlast its bound."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("deferrable", False)  # a hand-off to the triggerer costs seconds of downtime
        kwargs.setdefault("poll_interval", WINDOW_POLL_S)
        super().__init__(**kwargs)

    def window_left(self, frozen_at: datetime | None) -> timedelta | None:
        """Time left before the freeze outlasts ``max_freeze_minutes`` (None: not frozen yet)."""
        if frozen_at is None:
            return None
        return timedelta(minutes=self.migration.max_freeze_minutes) - (datetime.now(UTC) - frozen_at)

    def check_freeze_window(self, frozen_at: datetime | None) -> None:
        left = self.window_left(frozen_at)
        if left is not None and left <= timedelta(0):
            frozen_for = datetime.now(UTC) - frozen_at
            raise FreezeWindowExceeded(
                f"The source has been frozen for {format_duration(frozen_for.total_seconds())}, more than "
                f"max_freeze_minutes ({self.migration.max_freeze_minutes:g}), and the open was not requested: "
                "rolling back so the applications can write again. Nothing is lost; log shipping can continue "
                "and the cutover can be approved again."
            )

    def step(self, what: str, started: float) -> tuple[float, float]:
        """Log one step with its duration; return (duration, the next step's start)."""
        now = time.monotonic()
        self.log.info("Cutover step done: %s (%.1f s)", what, now - started)
        return round(now - started, 3), now


class CutoverOperator(_WindowOperator):
    """The downtime window in one task: freeze the source, take the tail-log backup, upload and import
    it, wait until RDS restored it, open the database on RDS and wait until it is online.

    One task, so no Airflow hand-off happens while the source is frozen; each step is logged with its
    duration. The freeze is bounded: if the open has not been requested ``max_freeze_minutes`` after the
    freeze (checked between steps, and no wait for RDS lasts longer than the window has left), the task
    fails and the rollback gives the source back. ``open_requested`` is written to the ledger *before*
    CreateOnlineDatabaseTask: from then on the rollback asks RDS before touching the source. The
    ClientToken derives from the DAG run, so a retry never opens twice; retried, the task continues where
    it stopped (frozen already, the tail in msdb, the file in OSS or RDS, the open requested).
    """

    #: The tail-log import is what the quota reserve is kept for.
    uses_cutover_reserve = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.execution_timeout is None:
            # The task checks the bound itself; the timeout is the backstop for a step that hangs.
            minutes = self.migration.max_freeze_minutes + self.migration.open_timeout_minutes + 1
            self.execution_timeout = timedelta(minutes=minutes)

    def execute(self, context: Any) -> dict[str, Any]:
        run_id = context["ti"].run_id
        entries = self.steps.read_ledger()
        self._open_requested = any(
            e.event is LedgerEvent.OPEN_REQUESTED and e.run_id == run_id for e in entries
        )
        self.check_freeze_window(self.steps.frozen_at(entries, run_id))
        timings: dict[str, float] = {}
        started = time.monotonic()
        outcome = self.steps.freeze_source(entries, run_id)
        timings["freeze_s"], started = self.step(f"source {outcome}", started)
        self._frozen_at = self.steps.frozen_at(self.steps.read_ledger(), run_id)
        # No backup slot: another database's full may hold them all for hours, and this one is frozen.
        tail = self.steps.take_backup(
            "LOG", self.steps.tail_backup_name(context["dag_run"].run_after), wait_for_slot=False
        )
        timings["tail_backup_s"], started = self.step(
            f"tail-log backup {tail.file_name}, {tail.size_bytes / 1048576:.1f} MB, LSN [{tail.first_lsn}, "
            f"{tail.last_lsn})"
            + (" (empty: nothing was written since the last log)" if tail.is_empty else ""),
            started,
        )
        result = self.drive_chain(context)
        timings["ship_s"], _ = self.step("tail uploaded, imported and restored on RDS", started)
        self.steps.record_ledger("cutover_timings", tail, **timings)
        self.open_database(result["migrate_task_id"], run_id)
        return {**result, "tail": tail.to_dict()}

    def check_freeze_window(self, frozen_at: datetime | None) -> None:
        if not getattr(self, "_open_requested", False):  # once requested, the open is RDS's to finish
            super().check_freeze_window(frozen_at)

    def on_chain_step(self) -> None:
        self.check_freeze_window(getattr(self, "_frozen_at", None))

    def wait_for_file(self, migrate_task_id: str, file_name: str, loop: dict[str, Any]) -> None:
        """Wait for RDS no longer than the freeze window has left: past it, roll back."""
        left = self.window_left(getattr(self, "_frozen_at", None))
        if left is not None:
            self.wait_timeout = max(min(self.wait_timeout, left), timedelta(seconds=1))
        try:
            super().wait_for_file(migrate_task_id, file_name, loop)
        except RdsWaitTimeoutError as error:
            self.check_freeze_window(self._frozen_at)
            raise FreezeWindowExceeded(
                f"RDS did not restore {file_name} within the freeze window (max_freeze_minutes "
                f"{self.migration.max_freeze_minutes:g}): rolling back so the applications can write again."
            ) from error

    def chain_is_current(self, context: Any, state: Any, loop: dict[str, Any]) -> Any:
        return {
            "migrate_task_id": state.migrate_task_id,
            "restore_point": state.restored.to_dict() if state.restored else None,
        }

    def open_database(self, migrate_task_id: str, run_id: str) -> None:
        """CreateOnlineDatabaseTask (unless RDS already opened it), then wait until it is online."""
        started = time.monotonic()
        task = self.steps.rds.get_task_state(self.steps.instance_id, migrate_task_id)
        if task.status not in TASK_SUCCESS_STATES:
            if not self._open_requested:
                self.check_freeze_window(self._frozen_at)
                self.steps.record_ledger(
                    "open_requested",
                    migrate_task_id=migrate_task_id,
                    check_db_mode=self.migration.check_db_mode,
                )
                self._open_requested = True
            # A retry asks again after an ambiguous failure: the same ClientToken makes it harmless.
            self._request_open(migrate_task_id, run_id)
            self.step(f"CreateOnlineDatabaseTask accepted ({self.migration.check_db_mode})", started)
        self.steps.rds.wait_for_task_state(
            self.steps.instance_id,
            migrate_task_id,
            sorted(TASK_SUCCESS_STATES),
            timeout=self.migration.open_timeout_minutes * 60,
            poll=self.poll_interval,
        )
        open_s, _ = self.step(
            f"database {self.steps.target_database!r} is online on {self.steps.instance_id}", started
        )
        self.steps.record_ledger(
            "opened",
            migrate_task_id=migrate_task_id,
            check_db_mode=self.migration.check_db_mode,
            open_s=open_s,
        )

    def _request_open(self, migrate_task_id: str, run_id: str) -> None:
        token = hashlib.sha256(f"{run_id}|{migrate_task_id}".encode()).hexdigest()[:64]
        try:
            self.steps.rds.open_database(
                self.steps.instance_id,
                self.steps.target_database,
                migrate_task_id,
                self.migration.check_db_mode,
                token,
            )
        except RdsApiError as error:
            # A refusal (4xx) means RDS did not accept the open: the rollback may go ahead at once.
            refused = 400 <= error.status_code < 500
            self.steps.record_ledger("failed", step="open_database", refused=refused, code=error.code)
            if refused:
                raise AirflowFailException(str(error)) from error
            raise


class ReleaseTargetOperator(MigrationOperator):
    """Let applications in on the target once validation passed: undo the freeze state (READ_ONLY,
    RESTRICTED_USER) that travelled in with the tail-log backup."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("execution_timeout", timedelta(minutes=10))
        super().__init__(**kwargs)

    def execute(self, context: Any) -> list[str]:
        done = self.steps.release_target(self.steps.read_ledger())
        self.log.info(
            "Target %s: %s — applications may connect and write.",
            self.steps.target_database,
            ", ".join(done) or "already released",
        )
        return done


class RollbackOperator(MigrationOperator):
    """After a failed cutover, give the source back to the applications; nothing is lost.

    Runs when ``cutover`` failed (trigger rule ``one_failed``). It does nothing if
    this run never froze the source. Once the open was requested it rolls back only when RDS shows the
    database is not opening (the open was refused, the task failed, or it stayed waiting through
    ``open_grace``); otherwise it refuses, loudly — two writable copies would be worse than a frozen
    source — and says how to decide.

    :param open_grace: how long RDS may take to show an accepted open before the rollback concludes it
        was not accepted.
    """

    def __init__(self, *, open_grace: timedelta = timedelta(minutes=2), **kwargs: Any) -> None:
        kwargs.setdefault("execution_timeout", timedelta(minutes=15))
        super().__init__(**kwargs)
        self.open_grace = open_grace

    def execute(self, context: Any) -> list[str]:
        run_id = context["ti"].run_id
        entries = self.steps.read_ledger()
        if self.steps.frozen_at(entries, run_id) is None:
            raise AirflowSkipException("The source was not frozen in this run: nothing to roll back.")
        if any(e.event is LedgerEvent.OPEN_REQUESTED and e.run_id == run_id for e in entries):
            self._refuse_unless_rds_is_not_opening(entries, run_id)
        done = self.steps.roll_back_source(entries)
        self.log.warning("Cutover failed; source rolled back: %s", "; ".join(done) or "nothing to undo")
        return done

    def _refuse_unless_rds_is_not_opening(self, entries: list[Any], run_id: str) -> None:
        refused = any(
            e.event is LedgerEvent.FAILED and e.run_id == run_id and e.details.get("refused") for e in entries
        )
        if refused:
            self.log.info("RDS refused the open request: the database is not opening, rolling back.")
            return
        migrate_task_id = self.steps.find_migration_task_id(entries)
        deadline = time.monotonic() + self.open_grace.total_seconds()
        while True:
            task = self.steps.rds.get_task_state(self.steps.instance_id, migrate_task_id)
            if task.status in TASK_TERMINAL_FAILURES:
                self.log.info("RDS reports the migration task %s: the database is not opening.", task.status)
                return
            if task.status in TASK_SUCCESS_STATES or task.status == "Running":
                raise AirflowFailException(
                    f"NOT rolled back: the open was requested and RDS reports migration task {migrate_task_id} "
                    f"{task.status} — {self.steps.target_database!r} is (or is becoming) live on RDS, and giving "
                    "the source back too would leave two writable copies. The source stays frozen (READ_ONLY). "
                    "Wait for the open to finish and validate the target; if you decide to go back to the "
                    f"source anyway, run on it: ALTER DATABASE [{self.steps.database}] SET READ_WRITE WITH "
                    f"ROLLBACK IMMEDIATE; ALTER DATABASE [{self.steps.database}] SET MULTI_USER; and stop "
                    "applications from using the RDS copy."
                )
            if time.monotonic() > deadline:
                self.log.info(
                    "Migration task %s still %s %.0f s after the open request: RDS did not accept it; rolling back.",
                    migrate_task_id,
                    task.status,
                    self.open_grace.total_seconds(),
                )
                return
            time.sleep(min(self.poll_interval, 5.0))
