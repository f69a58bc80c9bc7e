"""Restore on RDS: create the migration task, wait for files, apply what is pending (seed steps 3-4)."""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.branch import BaseBranchOperator
from airflow.sdk.exceptions import AirflowFailException

from hooks.rds import TASK_SUCCESS_STATES
from hooks.rds_errors import advice_for
from operators.base import MigrationOperator
from operators.steps import TASK_TERMINAL_FAILURES
from rds_migration.chain import BackupRecord


def wants_start_over(context: Any) -> bool:
    """The run was triggered with ``{"start_over": true}`` in its conf (UI: Trigger → "Run
    configuration"; REST: ``conf``; CLI: ``airflow dags trigger -c``). A run conf, not a DAG Param: Params are copied onto every
    task and schema-checked when the DAG is serialized, which costs seconds at parse time with hundreds
    of databases."""
    dag_run = context.get("dag_run")
    conf = getattr(dag_run, "conf", None) or {}
    value = conf.get("start_over", False) if isinstance(conf, dict) else False
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


class ChooseStartOperator(MigrationOperator, BaseBranchOperator):
    """Branch: start with a full backup, or resume the migration task recorded for the database.

    When the run is triggered with ``{"start_over": true}`` as its conf, a migration task left by an
    earlier run is terminated and the database it was restoring on RDS dropped first (never one this run
    created, never an open one).

    :param full_task_id: first task of the full-backup branch.
    :param resume_task_id: task to follow when a migration task exists.
    """

    template_fields = ("full_task_id", "resume_task_id")

    def __init__(self, *, full_task_id: str, resume_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.full_task_id = full_task_id
        self.resume_task_id = resume_task_id

    def choose_branch(self, context: Any) -> str:
        entries = self.steps.read_ledger()
        migrate_task_id = self.steps.find_migration_task_id(entries)
        start_over = wants_start_over(context)
        if (
            start_over
            and migrate_task_id is not None
            and not self._created_by_this_run(migrate_task_id, context)
        ):
            try:
                done = self.steps.abandon_migration(migrate_task_id)
            except ValueError as error:
                raise AirflowFailException(str(error)) from error
            self.log.warning("Starting over: %s.", "; ".join(done) or "nothing left to undo")
            migrate_task_id = None
        if migrate_task_id is None:
            self.log.info(
                "No migration task for %s yet: starting with a full backup.", self.steps.target_database
            )
            return self.full_task_id
        task = self.steps.rds.get_task_state(self.steps.instance_id, migrate_task_id)
        if task.status in TASK_SUCCESS_STATES:
            raise AirflowFailException(
                f"Migration task {migrate_task_id} is {task.status}: {self.steps.target_database!r} is already "
                "migrated and open on RDS. Nothing to do; to migrate it again, drop it on RDS first and trigger "
                'with the run conf {"start_over": true}.'
            )
        if task.status in TASK_TERMINAL_FAILURES:
            advice = advice_for(task.description)
            cause = (
                "someone stopped it (TerminateMigrateTask or the RDS console)"
                if task.terminated
                else (task.description or "no description") + (f" ({advice})" if advice else "")
            )
            raise AirflowFailException(
                f"Migration task {migrate_task_id} is {task.status}: {cause}. It cannot take more backups: "
                'trigger this DAG with the run conf {"start_over": true} to drop the database it was restoring '
                "on RDS (terminating the task first if needed) and start again from a new full backup."
            )
        self.log.info("Migration task %s exists (%s): resuming log shipping.", migrate_task_id, task.status)
        return self.resume_task_id

    def _created_by_this_run(self, migrate_task_id: str, context: Any) -> bool:
        """A retried start_over run must not abandon the task it created itself."""
        run_id = context["ti"].run_id
        return any(
            e.migrate_task_id == migrate_task_id and e.run_id == run_id and e.backup_type == "FULL"
            for e in self.steps.read_ledger()
            if e.event == "import_requested"
        )


class CreateMigrationTaskOperator(MigrationOperator):
    """Create the RDS migration task (BackupMode=UPDF, IsOnlineDB=False: "Access Pending") from the full.

    Returns the MigrateTaskId. A migration task that already exists for the database is reused.

    :param backup_task_id: the task whose XCom holds the full backup's record.
    """

    template_fields = ("backup_task_id",)

    def __init__(self, *, backup_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backup_task_id = backup_task_id

    def execute(self, context: Any) -> str:
        existing = self.steps.find_migration_task_id()
        if existing is not None:
            self.log.info("Migration task %s already exists for this database: not created again.", existing)
            return existing
        record = BackupRecord.from_dict(context["ti"].xcom_pull(task_ids=self.backup_task_id))
        migrate_task_id = self.steps.import_backup(None, record)
        self.log.info("Created migration task %s from %s", migrate_task_id, record.file_name)
        return migrate_task_id


class WaitRestoredOperator(MigrationOperator):
    """Wait until RDS has restored the full backup (deferrable: no worker slot held while waiting).

    :param backup_task_id: the task whose XCom holds the full backup's record.
    """

    template_fields = ("backup_task_id",)

    def __init__(self, *, backup_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backup_task_id = backup_task_id

    def execute(self, context: Any) -> Any:
        record = BackupRecord.from_dict(context["ti"].xcom_pull(task_ids=self.backup_task_id))
        migrate_task_id = self.steps.find_migration_task_id()
        if migrate_task_id is None:
            raise AirflowFailException(f"No RDS migration task found for {self.steps.target_database!r}.")
        state = self.steps.chain_state(migrate_task_id)
        if state.restored is None:
            # RDS may not list the file yet right after CreateMigrateTask: wait for it by name.
            self.wait_for_file(migrate_task_id, record.file_name, {})
        elif not self._restore_recorded(record.file_name):
            # Restored before anyone waited (fast restore, or a retry): keep the ledger complete.
            self.steps.record_ledger("restored", file_name=record.file_name, migrate_task_id=migrate_task_id)
        return self.drive_chain(context)

    def _restore_recorded(self, file_name: str) -> bool:
        return any(e.event == "restored" and e.file_name == file_name for e in self.steps.read_ledger())
