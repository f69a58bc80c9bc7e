"""DAG factory: one migration DAG and one log-shipping DAG per database configured in YAML.

Config: every ``*.yaml`` in ``include/migrations/`` (or ``$MSSQL_RDS_MIGRATIONS_DIR``). Parsing
reads only those files (and the last good copies, below): no connection, no network.

- A broken entry that never had a valid version becomes a DAG of its own dag_id, tagged ``config-error``,
  whose only task fails with the errors (file, entry, field). The other entries still load.
- An entry that *was* valid keeps its DAGs, rebuilt from its last good settings, when it (or its whole
  file) breaks: Airflow would otherwise mark them stale under a running migration. Their description says
  so and names the error; the errors also show in the file's error DAG (``mssql_to_rds_config_error__<file>``).
- A name defined twice (in two files, or differing only in case) keeps the first valid definition; the
  other is an error in its file's error DAG.
- No config error is logged at parse time: workers parse this file too, and it would then appear
  in every healthy task's log. Errors appear only in their error DAG and its task's log.

Last good copies live in ``$MSSQL_RDS_LAST_GOOD_DIR`` (default ``$AIRFLOW_HOME/mssql_rds/last_good_config``,
written by the dag-processor's full parse) and, when running under Airflow, in Airflow Variables
``mssql_rds__last_good__<entry>``: a worker on another machine reads those through the API server.
See README.md ("When a config breaks").
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, TaskGroup, TriggerRule, get_parsing_context
from airflow.sdk.exceptions import AirflowFailException

from operators.backup import BackupOperator, UploadBackupOperator
from operators.cutover import (
    CutoverApprovalOperator,
    CutoverOperator,
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
from operators.report import BEFORE_APPROVAL, ReportOperator
from operators.ship_logs import ShipLogsOperator
from operators.validate import ValidateOperator
from rds_migration.config import (
    RESERVED_SUFFIX,
    ConfigError,
    MigrationSpec,
    entry_key,
    entry_name_ok,
    load_config_dir,
)
from rds_migration.last_good import ChainedStore, FolderStore, LastGood, Planned, plan_entries, remember

log = logging.getLogger(__name__)

CONFIG_DIR = Path(
    os.environ.get("MSSQL_RDS_MIGRATIONS_DIR")
    or Path(__file__).resolve().parent.parent / "include" / "migrations"
)
LAST_GOOD_DIR = Path(
    os.environ.get("MSSQL_RDS_LAST_GOOD_DIR")
    or Path(os.environ.get("AIRFLOW_HOME") or "~/airflow").expanduser() / "mssql_rds" / "last_good_config"
)
DAG_PREFIX = "mssql_to_rds__"
#: Error DAGs of files: a prefix no entry's dag_id can have (those all start with DAG_PREFIX).
ERROR_DAG_PREFIX = "mssql_to_rds_config_error__"
START_DATE = datetime(2026, 1, 1)
# The downtime window, freeze -> tail -> import -> open, is one task: if it fails, the rollback task
# decides (it never gives the source back once RDS is opening the database).
ROLLBACK_WATCHED = ["cutover"]
CUTOVER_TASKS = ["approve_cutover", "catch_up", *ROLLBACK_WATCHED, "validate", "release_target", "rollback"]
# The report summarises every task before it (a failure before the approval changed nothing on the source).
REPORTED_TASKS = [*BEFORE_APPROVAL, *CUTOVER_TASKS]


def migration_dag_id(entry: str) -> str:
    return f"{DAG_PREFIX}{entry}"


def log_shipping_dag_id(entry: str) -> str:
    return f"{DAG_PREFIX}{entry}{RESERVED_SUFFIX}"


def _default_args(spec: MigrationSpec) -> dict:
    return {
        "owner": spec.owner,
        "retries": spec.retries,
        "retry_delay": timedelta(minutes=spec.retry_delay_minutes),
        "on_failure_callback": notifiers_for(spec, "migration task failed"),
    }


# ---- what a DAG shows about the settings it was built from --------------------------------------
# Airflow 3 stores a new DAG version when the serialized DAG changes (once a run used the current one):
# the config hash in the description, a tag and doc_md make every settings change a new version, so each
# run's version says which settings it used. Nothing here may vary between two parses of the same files.


def _description(spec: MigrationSpec, origin: Planned | None) -> str:
    where = f" from {origin.file}" if origin else ""
    if origin and origin.broken_by:
        return (
            f"LAST GOOD CONFIG {spec.config_hash}{where}: the current config is broken, so this DAG runs "
            f"on the last valid settings until it is fixed. Error: {_one_line(origin.broken_by)}"
        )
    return f"Config {spec.config_hash}{where}"


def _tags(spec: MigrationSpec, *extra: str) -> list[str]:
    # Not a DAG param: every task copies DAG params, and serializing one validates it against its JSON
    # schema (jsonschema's check_schema each time): 3x the serialization time for 200 databases.
    return sorted({"mssql-to-rds", *extra, *spec.tags, f"config:{spec.config_hash}"})


def _doc(spec: MigrationSpec, origin: Planned | None = None) -> str:
    text = (
        f"Migrates SQL Server database `{spec.source.database}` (connection `{spec.source.mssql_conn_id}`) to "
        f"ApsaraDB RDS instance `{spec.target.instance_id}` as `{spec.target.database}`, staging backups in "
        f"`oss://{spec.oss.bucket}/{spec.oss.prefix}`. See README.md for the procedure and the approval step."
    )
    if origin and origin.broken_by:
        errors = "\n".join(str(e) for e in origin.broken_by)
        text += (
            "\n\n**Running on the last good config**: the current config of this entry is broken; fix it "
            "and this DAG follows the file again.\n\n```\n" + errors + "\n```"
        )
    where = f" from `{origin.file}`" if origin else ""
    settings = json.dumps(spec.resolved_settings(), indent=2, ensure_ascii=False)
    return (
        text + f"\n\n**Settings** (config `{spec.config_hash}`{where}; connection ids only, resolved with "
        "defaults):\n\n```json\n" + settings + "\n```"
    )


def _one_line(errors: tuple[ConfigError, ...] | list[ConfigError]) -> str:
    return "; ".join(" ".join(str(e).split()) for e in errors)


def build_migration_dag(spec: MigrationSpec, origin: Planned | None = None) -> DAG:
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
        tags=_tags(spec),
        doc_md=_doc(spec, origin),
        description=_description(spec, origin),
    ) as dag:
        preflight = PreflightOperator(task_id="preflight", **common, **files)
        choose = ChooseStartOperator(
            task_id="choose_start", full_task_id="full_backup", resume_task_id="resume", **common
        )
        resume = EmptyOperator(task_id="resume")
        with TaskGroup("full", prefix_group_id=False):
            # Routed with the readers: a retry checks that the file it took is in the folder.
            full = BackupOperator(task_id="full_backup", kind="FULL", **common, **chain, **files)
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
            cutover = CutoverOperator(
                task_id="cutover", retry_delay=timedelta(seconds=10), **common, **chain, **files
            )
            validate = ValidateOperator(task_id="validate", cutover_task_id="cutover", **common)
            release = ReleaseTargetOperator(task_id="release_target", **common)
            catch_up >> cutover >> validate >> release
        rollback = RollbackOperator(
            task_id="rollback",
            trigger_rule=TriggerRule.ONE_FAILED,
            retries=5,
            on_success_callback=notifiers_for(spec, "cutover rolled back: the source is writable again"),
            **common,
        )
        report = ReportOperator(
            task_id="report", task_ids=REPORTED_TASKS, trigger_rule=TriggerRule.ALL_DONE, **common, **files
        )
        preflight >> choose >> [full, resume]
        [restored, resume] >> ship >> approve >> catch_up
        cutover >> rollback
        [release, rollback] >> report
    return dag


def build_log_shipping_dag(spec: MigrationSpec, origin: Planned | None = None) -> DAG:
    """Ships one log backup per run while the target waits between full restore and cutover."""
    with DAG(
        dag_id=log_shipping_dag_id(spec.name),
        schedule=spec.log_shipping.schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=_default_args(spec),
        tags=_tags(spec, "log-shipping"),
        doc_md="This DAG ships one log backup per run and skips when there is nothing to do. "
        + _doc(spec, origin),
        description=_description(spec, origin),
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


def build_config_error_dag(dag_id: str, errors: list[ConfigError], kept: list[Planned] | None = None) -> DAG:
    """A visible stand-in for a broken entry or file: its only task fails with the errors, naming the fields.

    :param kept: entries of this file whose DAGs run on their last good config meanwhile.
    """
    from airflow.providers.standard.operators.python import PythonOperator

    text = "\n".join(str(e) for e in errors)
    kept_note = ""
    if kept:
        names = ", ".join(f"{p.spec.name} (config {p.spec.config_hash})" for p in kept)
        kept_note = f"\n\nKept on their last good config until this is fixed: {names}."
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        default_args={"owner": "airflow", "retries": 0},
        tags=["mssql-to-rds", "config-error"],
        description=f"Configuration error: {_one_line(errors)}"[:1000],
        doc_md="**Configuration error** — fix the YAML and the real DAGs appear:\n\n```\n"
        + text
        + "\n```"
        + kept_note,
    ) as dag:
        PythonOperator(task_id="config_error", python_callable=_fail_with, op_args=[text])
    return dag


# ---- last good copies shared through Airflow Variables ------------------------------------------


class VariableStore:
    """Last good records as Airflow Variables ``mssql_rds__last_good__<entry>``.

    The dag-processor and every worker reach Variables through their supervisor and the API server
    (Airflow 3 parses and runs tasks in a child process that has no DB access of its own), so a worker
    on a machine that never saw the last good config still finds it. Only used when such a supervisor
    is there; a plain ``DagBag`` (tests, ``airflow dags list``) uses the folder alone.
    """

    PREFIX = "mssql_rds__last_good__"

    @staticmethod
    def available() -> bool:
        # The test Airflow itself uses to choose the client secrets chain (ensure_secrets_backend_loaded);
        # looked up without importing the task runner, which a plain DagBag has no use for.
        runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
        return getattr(runner, "SUPERVISOR_COMMS", None) is not None

    def load(self, entry: str) -> LastGood | None:
        from airflow.sdk import Variable

        # Read at parse time on purpose, and only when an entry is broken (see the class docstring).
        value = Variable.get(self.PREFIX + entry, default=None)  # noqa: AIR003
        record = LastGood.from_json(value) if isinstance(value, str) else None
        return record if record is not None and record.entry == entry else None

    def load_all(self) -> dict[str, LastGood]:
        from airflow.sdk import Variable

        records = {}
        for key in Variable.keys(prefix=self.PREFIX):
            record = self.load(key[len(self.PREFIX) :])
            if record is not None:
                records[record.entry] = record
        return records

    def save(self, record: LastGood, *, published: bool) -> None:
        from airflow.sdk import Variable

        Variable.set(
            self.PREFIX + record.entry,
            record.to_json(published=published),
            description=f"Last good config of migration entry {record.entry!r} (from {record.file}), kept by "
            "dags/mssql_to_rds.py so its DAGs survive a broken YAML edit. Deleting it only removes that fallback.",
        )

    def delete(self, entry: str) -> None:
        from airflow.sdk import Variable

        Variable.delete(self.PREFIX + entry)


class _QuietStore:
    """Reads of the shared store that fail (API down) count as "no record"; parsing goes on."""

    def __init__(self, store: VariableStore) -> None:
        self.store = store

    def load(self, entry: str) -> LastGood | None:
        try:
            return self.store.load(entry)
        except Exception:
            return None

    def load_all(self) -> dict[str, LastGood]:
        try:
            return self.store.load_all()
        except Exception:
            return {}


# ---- the factory --------------------------------------------------------------------------------


def _entries_of(dag_id: str) -> set[str] | None:
    """Entry names that can own ``dag_id``; None when it is a file's error DAG (a full load is needed)."""
    if dag_id.startswith(ERROR_DAG_PREFIX) or not dag_id.startswith(DAG_PREFIX):
        return None
    name = dag_id[len(DAG_PREFIX) :]
    if name.endswith(RESERVED_SUFFIX):
        return {name, name[: -len(RESERVED_SUFFIX)]}
    return {name}


def file_error_dag_ids(files: list[str]) -> dict[str, str]:
    """dag_id of each file's error DAG, by file name: its normalised stem, unique ignoring case.

    Names are taken in order, so ``prod db.yaml`` keeps ``..._prod_db`` and a later ``prod_db.yaml``
    gets a suffix from its name; the result does not depend on which files have errors right now.
    """
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for name in sorted({Path(f).name for f in files}):
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(name).stem)[:200] or "_"
        dag_id = ERROR_DAG_PREFIX + stem
        if dag_id.casefold() in taken:
            dag_id += "__" + hashlib.sha256(name.encode()).hexdigest()[:8]
        taken.add(dag_id.casefold())
        ids[name] = dag_id
    return ids


def _route_errors(
    errors: list[ConfigError], has_dags: set[str], files: list[str]
) -> dict[str, list[ConfigError]]:
    """Which error DAG shows each error.

    An entry's own problem gets the entry's dag_id when the entry has no DAG (it never had a valid
    version); everything else (file problems, duplicates, unusable names, problems of entries that run
    on their last good config) goes to the file's error DAG, so a valid dag_id is never taken over.
    """
    by_file = file_error_dag_ids([*files, *(e.file for e in errors)])
    routed: dict[str, list[ConfigError]] = {}
    for error in errors:
        own = (
            error.entry is not None
            and error.duplicate_of is None
            and entry_name_ok(error.entry)
            and entry_key(error.entry) not in has_dags
        )
        dag_id = migration_dag_id(error.entry) if own else by_file[Path(error.file).name]
        routed.setdefault(dag_id, []).append(error)
    return routed


def build_all(
    config_dir: Path = CONFIG_DIR, only_dag_id: str | None = None, last_good_dir: Path = LAST_GOOD_DIR
) -> dict[str, DAG]:
    """Every DAG for the config folder; with ``only_dag_id`` (a worker's parse), just that DAG.

    A full parse (the dag-processor's) also records each valid entry's settings as its last good copy.
    """
    config_dir = Path(config_dir)
    only = _entries_of(only_dag_id) if only_dag_id else None
    result = load_config_dir(config_dir, None if only is None else {entry_key(name) for name in only})
    folder_missing = not config_dir.is_dir()
    if folder_missing:
        result.errors.append(
            ConfigError(
                str(config_dir),
                None,
                None,
                "the config folder does not exist (check MSSQL_RDS_MIGRATIONS_DIR and the volume mount)",
            )
        )
    local = FolderStore(last_good_dir)
    shared = VariableStore() if VariableStore.available() else None
    readers: list = [local]
    if shared:
        # A worker reads the shared copy first: the dag-processor wrote it and built the run's DAG from it.
        readers.insert(0 if only else 1, _QuietStore(shared))
    plan = plan_entries(
        result, ChainedStore(readers), only=only, folder_missing=folder_missing, folder=config_dir
    )
    if only_dag_id is None:  # the dag-processor's parse; a worker running an error DAG's task never writes
        problems = remember(plan, result, local, shared, folder_missing=folder_missing)
        if problems:  # one line, in the dag-processor's log only: not a config error
            log.warning(
                "mssql_to_rds: %d problem(s) keeping last good configs, e.g. %s", len(problems), problems[0]
            )

    dags: dict[str, DAG] = {}

    def wanted(dag_id: str) -> bool:
        return only_dag_id is None or only_dag_id == dag_id

    for name, planned in plan.entries.items():
        if wanted(migration_dag_id(name)):
            dags[migration_dag_id(name)] = build_migration_dag(planned.spec, planned)
        if planned.spec.log_shipping.schedule and wanted(log_shipping_dag_id(name)):
            dags[log_shipping_dag_id(name)] = build_log_shipping_dag(planned.spec, planned)
    has_dags = {entry_key(name) for name in plan.entries}
    files = [str(p) for p in sorted(config_dir.glob("*.yaml"))] if not folder_missing else []
    for dag_id, errors in _route_errors(plan.errors, has_dags, files).items():
        if wanted(dag_id):
            kept = [p for p in plan.entries.values() if any(e in errors for e in p.broken_by)]
            dags[dag_id] = build_config_error_dag(dag_id, errors, kept)
    return dags


globals().update(build_all(only_dag_id=get_parsing_context().dag_id))
