"""DAG factory: one migration DAG and one log-shipping DAG per database configured in YAML.

Config: every ``*.yaml`` in ``include/migrations/`` (or ``$MSSQL_RDS_MIGRATIONS_DIR``). Parsing
reads only those files: no connection, no network. A broken entry becomes a DAG whose only task
fails with the error (file, entry, field), so it is visible in the UI while the other entries load.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param, TaskGroup, TriggerRule, get_parsing_context
from airflow.sdk.exceptions import AirflowFailException

from operators.backup import BackupOperator, UploadBackupOperator
from operators.cutover import (
    CutoverApprovalOperator,
    CutoverOperator,
    OpenDatabaseOperator,
    ReleaseTargetOperator,
    RollbackOperator,
)
from operators.notify import notifiers_for
from operators.preflight import PreflightOperator
from operators.rds_import import (
    ChooseStartOperator,
    CreateMigrationTaskOperator,
    WaitRestoredOperator,
)
from operators.report import ReportOperator
from operators.ship_logs import ShipLogsOperator
from operators.validate import ValidateOperator
from rds_migration.config import ConfigError, MigrationSpec, load_config_dir

log = logging.getLogger(__name__)

CONFIG_DIR = Path(
    os.environ.get("MSSQL_RDS_MIGRATIONS_DIR")
    or Path(__file__).resolve().parent.parent / "include" / "migrations"
)
DAG_PREFIX = "mssql_to_rds__"
START_DATE = datetime(2026, 1, 1)
# The downtime window: freeze -> tail -> import (cutover), then the open. If one fails, the rollback task
# decides (it never gives the source back once RDS is opening the database).
ROLLBACK_WATCHED = ["cutover", "open_database"]
CUTOVER_TASKS = ["approve_cutover", "catch_up", *ROLLBACK_WATCHED, "validate", "release_target", "rollback"]


def migration_dag_id(entry: str) -> str:
    return f"{DAG_PREFIX}{entry}"


def log_shipping_dag_id(entry: str) -> str:
    return f"{DAG_PREFIX}{entry}__log_shipping"


def _default_args(spec: MigrationSpec) -> dict:
    return {
        "owner": spec.owner,
        "retries": spec.retries,
        "retry_delay": timedelta(minutes=1),
        "on_failure_callback": notifiers_for(spec, "migration task failed"),
    }


def _doc(spec: MigrationSpec) -> str:
    return (
        f"Migrates SQL Server database `{spec.source.database}` (connection `{spec.source.mssql_conn_id}`) to "
        f"ApsaraDB RDS instance `{spec.target.instance_id}` as `{spec.target.database}`, staging backups in "
        f"`oss://{spec.oss.bucket}/{spec.oss.prefix}`. See README.md for the procedure and the approval step."
    )


def build_migration_dag(spec: MigrationSpec) -> DAG:
    """preflight → full or resume → ship logs → approval → cutover → validate → report."""
    common = {"migration": spec}
    files = {"queue": spec.queue} if spec.queue else {}  # tasks that read the backup folder
    chain = {"pool": spec.pool}  # tasks that touch the log chain: serialised with the log-shipping DAG
    with DAG(
        dag_id=migration_dag_id(spec.name),
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=_default_args(spec),
        tags=sorted({"mssql-to-rds", *spec.tags}),
        doc_md=_doc(spec),
        params={
            "start_over": Param(
                False,
                type="boolean",
                title="Start over from a new full backup",
                description="Terminate the RDS migration task of an earlier run, drop the database it was "
                "restoring on RDS, and migrate again from a new full backup (never touches an opened database).",
            )
        },
    ) as dag:
        preflight = PreflightOperator(task_id="preflight", **common, **files)
        choose = ChooseStartOperator(
            task_id="choose_start", full_task_id="full_backup", resume_task_id="resume", **common
        )
        resume = EmptyOperator(task_id="resume")
        with TaskGroup("full", prefix_group_id=False):
            full = BackupOperator(task_id="full_backup", kind="FULL", **common, **chain)
            upload = UploadBackupOperator(
                task_id="upload_full", backup_task_id="full_backup", **common, **files
            )
            create = CreateMigrationTaskOperator(
                task_id="create_migration_task", backup_task_id="full_backup", **common, **chain
            )
            restored = WaitRestoredOperator(
                task_id="wait_full_restored", backup_task_id="full_backup", **common, **chain, **files
            )
            full >> upload >> create >> restored
        ship = ShipLogsOperator(
            task_id="ship_logs",
            mode="loop",
            trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
            **common,
            **chain,
            **files,
        )
        approve = CutoverApprovalOperator(
            task_id="approve_cutover",
            migration=spec,
            notifiers=notifiers_for(spec, "cutover approval needed"),
        )
        with TaskGroup("cutover_window", prefix_group_id=False):
            catch_up = ShipLogsOperator(task_id="catch_up", mode="catch_up", **common, **chain, **files)
            # In the downtime window a retry comes quickly; the freeze bound still caps the whole window.
            window = {"retry_delay": timedelta(seconds=10)}
            cutover = CutoverOperator(task_id="cutover", **window, **common, **chain, **files)
            open_db = OpenDatabaseOperator(task_id="open_database", **window, **common)
            validate = ValidateOperator(task_id="validate", cutover_task_id="cutover", **common)
            release = ReleaseTargetOperator(task_id="release_target", **common)
            catch_up >> cutover >> open_db >> validate >> release
        rollback = RollbackOperator(
            task_id="rollback",
            trigger_rule=TriggerRule.ONE_FAILED,
            retries=5,
            on_success_callback=notifiers_for(spec, "cutover rolled back: the source is writable again"),
            **common,
        )
        report = ReportOperator(
            task_id="report", task_ids=CUTOVER_TASKS, trigger_rule=TriggerRule.ALL_DONE, **common, **files
        )
        preflight >> choose >> [full, resume]
        [restored, resume] >> ship >> approve >> catch_up
        [cutover, open_db] >> rollback
        [release, rollback] >> report
    return dag


def build_log_shipping_dag(spec: MigrationSpec) -> DAG:
    """Ships one log backup per run while the target waits between full restore and cutover."""
    with DAG(
        dag_id=log_shipping_dag_id(spec.name),
        schedule=spec.log_shipping.schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=_default_args(spec),
        tags=sorted({"mssql-to-rds", "log-shipping", *spec.tags}),
        doc_md=_doc(spec) + " This DAG ships one log backup per run and skips when there is nothing to do.",
    ) as dag:
        ShipLogsOperator(
            task_id="ship_one_log",
            mode="once",
            migration=spec,
            pool=spec.pool,
            **({"queue": spec.queue} if spec.queue else {}),
        )
    return dag


def _fail_with(message: str) -> None:
    raise AirflowFailException(message)


def build_config_error_dag(dag_id: str, errors: list[ConfigError]) -> DAG:
    """A visible stand-in for a broken entry: its only task fails with the errors, naming the fields."""
    from airflow.providers.standard.operators.python import PythonOperator

    text = "\n".join(str(e) for e in errors)
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        default_args={"owner": "airflow", "retries": 0},
        tags=["mssql-to-rds", "config-error"],
        doc_md="**Configuration error** — fix the YAML and the real DAGs appear:\n\n```\n" + text + "\n```",
    ) as dag:
        PythonOperator(task_id="config_error", python_callable=_fail_with, op_args=[text])
    return dag


def build_all(config_dir: Path = CONFIG_DIR, only_dag_id: str | None = None) -> dict[str, DAG]:
    """Every DAG for the config folder; with ``only_dag_id``, just the entry that DAG belongs to."""
    result = load_config_dir(config_dir)
    dags: dict[str, DAG] = {}
    for name, spec in result.migrations.items():
        wanted = {migration_dag_id(name), log_shipping_dag_id(name)}
        if only_dag_id and only_dag_id not in wanted:
            continue
        dags[migration_dag_id(name)] = build_migration_dag(spec)
        if spec.log_shipping.schedule:
            dags[log_shipping_dag_id(name)] = build_log_shipping_dag(spec)
    by_dag: dict[str, list[ConfigError]] = {}
    for error in result.errors:
        log.error("mssql_to_rds config: %s", error)
        stem = error.entry or f"config_error__{Path(error.file).stem}"
        by_dag.setdefault(
            migration_dag_id("".join(c if c.isalnum() or c in "_-." else "_" for c in stem)), []
        ).append(error)
    for dag_id, errors in by_dag.items():
        if not only_dag_id or only_dag_id == dag_id:
            dags[dag_id] = build_config_error_dag(dag_id, errors)
    return dags


globals().update(build_all(only_dag_id=get_parsing_context().dag_id))
