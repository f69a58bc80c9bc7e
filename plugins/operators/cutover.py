"""The cutover: approval, freeze, open the database, and the rollback (seed steps 4-5)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from hooks.rds import TASK_SUCCESS_STATES
from operators.base import MigrationOperator, fail_fast_on_refusal, raise_on_error_event, task_states
from rds_migration.config import MigrationSpec
from rds_migration.estimate import estimate_downtime, format_duration
from triggers.rds import MigrationTaskTrigger


class CutoverApprovalOperator(ApprovalOperator):
    """Ask a person to approve the cutover, showing where the migration stands.

    The body is written when the question is asked: files shipped, last applied LSN, current gap,
    the downtime estimated from this migration's measured rates, and the exact steps approval runs.
    Rejecting skips the cutover and changes nothing on the source.

    :param migration: the validated configuration of this database's migration.
    """

    def __init__(self, *, migration: MigrationSpec | dict[str, Any], **kwargs: Any) -> None:
        spec = migration if isinstance(migration, MigrationSpec) else MigrationSpec(**migration)
        kwargs.setdefault(
            "subject", f"Approve the cutover of {spec.source.database} to {spec.target.instance_id}?"
        )
        kwargs.setdefault("body", "Computed when the approval is requested.")
        kwargs.setdefault("defaults", ["Reject"])
        kwargs.setdefault("response_timeout", timedelta(hours=spec.approval_timeout_hours))
        super().__init__(**kwargs)
        self.migration = spec

    def execute(self, context: Any) -> Any:
        from operators.steps import MigrationSteps

        self.body = cutover_briefing(MigrationSteps(self.migration))
        self.log.info("Cutover briefing:\n%s", self.body)
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        # Logged first: on Reject the parent skips the downstream tasks by raising, so nothing after
        # super().execute_complete() runs.
        from operators.steps import MigrationSteps

        approved = event.get("chosen_options") == ["Approve"]
        MigrationSteps(self.migration).record_ledger(
            "cutover_approved" if approved else "cutover_rejected",
            responded_by=str(event.get("responded_by_user") or "timeout default"),
        )
        if not approved:
            self.log.warning(
                "Cutover rejected by %s: nothing on the source changed. The scheduled log-shipping DAG keeps "
                "the target current. To cut over later, trigger this DAG again: it resumes the existing "
                "migration task and asks again.",
                event.get("responded_by_user") or "timeout default",
            )
        return super().execute_complete(context, event)


def cutover_briefing(steps: Any) -> str:
    """The approval body: facts a person needs to decide, and what approving will do."""
    spec = steps.spec
    migrate_task_id = steps.find_migration_task_id()
    state = steps.chain_state(migrate_task_id)
    entries = steps.read_ledger()
    rates = steps.measured_rates(entries)
    logs = [r for r in steps.our_history() if r.backup_type.name == "LOG"]
    last_log = logs[-1] if logs else None
    gap_bytes = last_log.size_bytes if last_log else 0
    facts = steps.source.database_facts(steps.database)
    data_bytes = facts.data_bytes if facts else 0
    estimate = estimate_downtime(
        rates, gap_bytes, data_size_bytes=data_bytes, check_db_mode=spec.check_db_mode
    )
    point = state.restored
    shipped = (point.logs_applied + 1 + (1 if point.diff else 0)) if point else 0
    age = ""
    if last_log and last_log.finished_at:
        finished = last_log.finished_at
        if finished.tzinfo is None:
            finished = finished.replace(tzinfo=UTC)
        age = f", taken {format_duration((datetime.now(UTC) - finished).total_seconds())} ago"
    last_applied = point.last_applied if point else None
    lines = [
        f"**Cutover of `{steps.database}` to RDS instance `{steps.instance_id}` as `{steps.target_database}`**",
        "",
        f"- Migration task: `{migrate_task_id}`; files restored: {shipped} (in flight: {len(state.in_flight)}, "
        f"pending: {len(state.pending)})",
        f"- Last applied LSN: {point.redo_lsn if point else 'none'} (`{last_applied.file_name if last_applied else '-'}`)",
        f"- Current gap: the last log backup held {gap_bytes / 1048576:.1f} MB{age}",
        f"- Estimated downtime: **{format_duration(estimate.total_seconds)}** — {estimate.describe()}",
        "",
        "Approving runs, in order:",
        "1. Set the source database RESTRICTED_USER WITH ROLLBACK IMMEDIATE (application writes stop).",
        "2. Record row counts and checksums of every user table on the source.",
        "3. Tail-log backup WITH NORECOVERY: the source stays RESTORING, no write can follow.",
        "4. Upload and import it (with any log not yet applied), in LSN order; wait until restored.",
        f"5. Open the database on RDS (CheckDBMode={spec.check_db_mode}); wait until it is online.",
        "6. Set MULTI_USER on the target, compare row counts and checksums table by table, write the report.",
        "",
        "If a step before the open fails, the source is brought back (RESTORE WITH RECOVERY, MULTI_USER): "
        "nothing is lost. Rejecting changes nothing on the source.",
    ]
    return "\n".join(lines)


class FreezeSourceOperator(MigrationOperator):
    """Stop application writes: the source database goes RESTRICTED_USER WITH ROLLBACK IMMEDIATE."""

    def execute(self, context: Any) -> str:
        outcome = self.steps.freeze_source()
        self.log.info("Source %s: %s", self.steps.database, outcome)
        return outcome


class FingerprintOperator(MigrationOperator):
    """Row count and checksum of every user table, returned for validation.

    :param side: ``source`` (before the tail-log backup, once frozen) or ``target`` (after the open).
    """

    template_fields = ("side",)

    def __init__(self, *, side: str = "source", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.side = side

    def execute(self, context: Any) -> dict[str, list[Any]]:
        if self.side == "source":
            hook, database = self.steps.source, self.steps.database
        else:
            hook, database = self.steps.target_sql, self.steps.target_database
            if hook is None:
                raise AirflowSkipException(
                    "target.mssql_conn_id is not configured: the target cannot be read."
                )
        prints = hook.table_fingerprints(database)
        self.log.info("%d tables fingerprinted on the %s.", len(prints), self.side)
        return {
            f"{schema}.{table}": [count, checksum] for (schema, table), (count, checksum) in prints.items()
        }


class OpenDatabaseOperator(MigrationOperator):
    """Open the database on RDS (CreateOnlineDatabaseTask) and wait until the task succeeds.

    The ClientToken derives from the DAG run, so a retry never opens twice. A task already in
    Success is not asked again.
    """

    def execute(self, context: Any) -> Any:
        migrate_task_id = self.steps.find_migration_task_id()
        if migrate_task_id is None:
            raise AirflowFailException(f"No RDS migration task found for {self.steps.target_database!r}.")
        task = self.steps.rds.get_task_state(self.steps.instance_id, migrate_task_id)
        if task.status not in TASK_SUCCESS_STATES:
            token = hashlib.sha256(f"{context['dag_run'].run_id}|{migrate_task_id}".encode()).hexdigest()[:64]
            with fail_fast_on_refusal():
                self.steps.rds.open_database(
                    self.steps.instance_id,
                    self.steps.target_database,
                    migrate_task_id,
                    self.migration.check_db_mode,
                    token,
                )
            self.steps.record_ledger(
                "opened", migrate_task_id=migrate_task_id, check_db_mode=self.migration.check_db_mode
            )
        if self.deferrable:
            self.defer(
                trigger=MigrationTaskTrigger(
                    rds_conn_id=self.migration.target.rds_conn_id,
                    instance_id=self.steps.instance_id,
                    migrate_task_id=migrate_task_id,
                    target_states=sorted(TASK_SUCCESS_STATES),
                    poll_interval=self.poll_interval,
                ),
                method_name="execute_complete",
                timeout=self.wait_timeout,
            )
        self.steps.rds.wait_for_task_state(
            self.steps.instance_id,
            migrate_task_id,
            sorted(TASK_SUCCESS_STATES),
            timeout=self.wait_timeout.total_seconds(),
            poll=self.poll_interval,
        )
        return migrate_task_id

    def execute_complete(self, context: Any, event: dict[str, Any]) -> str:
        raise_on_error_event(event)
        self.log.info("Database %s is open on %s.", self.steps.target_database, self.steps.instance_id)
        return event.get("task_status", "")


class TargetUserAccessOperator(MigrationOperator):
    """Set MULTI_USER on the opened target: RESTRICTED_USER travelled in with the tail-log backup."""

    def execute(self, context: Any) -> str:
        hook = self.steps.target_sql
        if hook is None:
            raise AirflowSkipException(
                "target.mssql_conn_id is not configured: set MULTI_USER on the target database yourself."
            )
        facts = hook.database_facts(self.steps.target_database)
        if facts is None:
            raise AirflowFailException(
                f"Target database {self.steps.target_database!r} is not visible on RDS."
            )
        if facts.user_access_desc != "MULTI_USER":
            hook.set_user_access(self.steps.target_database, "MULTI_USER")
        return "MULTI_USER"


class RollbackOperator(MigrationOperator):
    """After a failed cutover, bring the source back online and writable; nothing is lost.

    Runs only when a cutover task before the open failed (trigger rule ``one_failed``). That rule
    also fires when a task before the freeze failed (the cutover tasks are then ``upstream_failed``):
    the source was never frozen, so it is left exactly as it is.
    """

    def execute(self, context: Any) -> list[str]:
        freeze = task_states(context, ["freeze_source"])["freeze_source"]
        if freeze not in ("success", "failed"):
            raise AirflowSkipException(
                f"The source was not frozen in this run (freeze_source: {freeze}): nothing to roll back."
            )
        done = self.steps.roll_back_source()
        self.log.warning("Cutover failed; source rolled back: %s", "; ".join(done) or "nothing to undo")
        return done
