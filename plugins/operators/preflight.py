"""Preflight: every prerequisite of the procedure checked in one pass, then one verdict."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from operators.base import MigrationOperator
from operators.steps import parent_folder, shown

# Features persisted in a database that only Enterprise supported before SQL Server 2016 SP1
# (sys.dm_db_persisted_sku_features names). From 2016 SP1 on, all editions support them.
ENTERPRISE_ONLY_BEFORE_2016SP1 = {
    "Compression",
    "Partitioning",
    "ColumnStoreIndex",
    "InMemoryOLTP",
    "ChangeCapture",
    "MultipleFSContainers",
}


def quote_name(name: str) -> str:
    """T-SQL identifier quoting, as QUOTENAME does: ``[`` ... ``]`` with every ``]`` doubled."""
    return "[" + name.replace("]", "]]") + "]"


def describe_other_backups(foreign: list[Any]) -> str:
    """Other jobs' backups that do not break the chain, one per backup set (stripes named once)."""
    copy_only_logs = [r for r in foreign if r.backup_type.name == "LOG" and r.is_copy_only]
    data = [r for r in foreign if r.backup_type.name != "LOG"]
    kinds = Counter(
        "COPY_ONLY" if r.is_copy_only else {"FULL": "full", "DIFF": "differential"}[r.backup_type.name]
        for r in data
    )
    parts = [f"Not breakers: {len(copy_only_logs)} COPY_ONLY log backup(s) (they never truncate the log)"]
    if data:
        parts.append(
            "other jobs' data backups: " + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        )
    striped = [r for r in foreign if r.stripes > 1]
    if striped:
        parts.append(
            "striped: "
            + ", ".join(f"{r.backup_type.name} {r.file_name!r} over {r.stripes} files" for r in striped)
        )
    return "; ".join(parts) + "."


def _size(size_bytes: int) -> str:
    """``1.5 GB``, or ``72 MB`` below a gigabyte (a small database would read "0.1 GB")."""
    if size_bytes >= 1024**3:
        return f"{size_bytes / 1024**3:.1f} GB"
    return f"{size_bytes / 1024**2:.0f} MB"


@dataclass
class Check:
    """One preflight result: ``status`` is pass, warn or fail; ``fix`` says what to do."""

    name: str
    status: str
    detail: str
    fix: str = ""


class PreflightOperator(MigrationOperator):
    """Check the source, the RDS instance, the OSS bucket and the worker's backup folder.

    Every check runs, even after a failure, and the report lists them all (pass / warn / fail, with
    the fix for each); the task fails only after listing everything.

    :param run_checkdb: run ``DBCC CHECKDB`` on the source (recommended by the procedure; it reads
        the whole database, so it can take a while on large ones).
    """

    template_fields = ("run_checkdb",)

    def __init__(self, *, run_checkdb: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_checkdb = run_checkdb

    def execute(self, context: Any) -> dict[str, Any]:
        checks: list[Check] = []
        facts: dict[str, Any] = {}
        for section in (
            self._source_checks,
            self._target_checks,
            self._bucket_checks,
            self._worker_checks,
            self._pool_checks,
        ):
            self._run(section, checks, facts)
        for check in checks:
            level = {"pass": "info", "warn": "warning", "fail": "error"}[check.status]
            getattr(self.log, level)(
                "[%s] %s: %s%s",
                check.status.upper(),
                check.name,
                check.detail,
                f" -> {check.fix}" if check.fix else "",
            )
        failed = [c for c in checks if c.status == "fail"]
        report = {"checks": [asdict(c) for c in checks], "failed": len(failed)}
        if failed:
            reasons = "; ".join(f"{c.name}: {c.detail} ({c.fix})" for c in failed)
            raise AirflowFailException(f"Preflight failed {len(failed)} of {len(checks)} checks: {reasons}")
        self.steps.record_ledger("preflight_passed", checks=len(checks))
        return report

    @staticmethod
    def _run(
        section: Callable[[list[Check], dict[str, Any]], None], checks: list[Check], facts: dict
    ) -> None:
        """Run one group of checks; an error reaching a service becomes a failed check, not a crash."""
        try:
            section(checks, facts)
        except Exception as exc:  # noqa: BLE001 - reported as a failed check, with its message
            checks.append(
                Check(
                    section.__name__.strip("_").replace("_", " "),
                    "fail",
                    f"{type(exc).__name__}: {exc}",
                    "check the connection and permissions named in the message",
                )
            )

    # ----------------------------------------------------------------------------------------------

    def _source_checks(self, checks: list[Check], facts: dict[str, Any]) -> None:
        source, database = self.steps.source, self.steps.database
        server = source.server_facts()
        facts["source_server"] = server
        checks.append(Check("source version", "pass", f"{server.edition} {server.product_version}"))
        db = source.database_facts(database)
        if db is None:
            checks.append(
                Check(
                    "source database",
                    "fail",
                    f"{database!r} does not exist on the source",
                    "check source.database in the migration config",
                )
            )
            return
        facts["source_db"] = db
        state_ok = db.state_desc == "ONLINE"
        checks.append(
            Check(
                "source state",
                "pass" if state_ok else "fail",
                db.state_desc,
                "" if state_ok else "bring the database ONLINE (RESTORE DATABASE ... WITH RECOVERY)",
            )
        )
        if db.recovery_model_desc != "FULL":
            checks.append(
                Check(
                    "recovery model",
                    "fail",
                    db.recovery_model_desc,
                    "ALTER DATABASE ... SET RECOVERY FULL; log backups need the FULL model",
                )
            )
        else:
            checks.append(Check("recovery model", "pass", "FULL"))
        if db.is_read_only:
            checks.append(
                Check("read-write", "warn", "the database is READ_ONLY", "no log to ship; a full suffices")
            )
        if db.has_tde:
            checks.append(
                Check(
                    "TDE",
                    "fail",
                    "transparent data encryption is on",
                    "RDS cannot restore a TDE backup without its certificate: decrypt it first",
                )
            )
        else:
            checks.append(Check("TDE", "pass", "not encrypted"))
        rights = source.login_rights(database)
        self._rights_check(checks, rights)
        self._other_jobs_check(checks, database)
        if self.run_checkdb and not rights.can_checkdb:
            checks.append(
                Check(
                    "DBCC CHECKDB", "warn", f"not run: {rights.login_name} may not run it (see source rights)"
                )
            )
        elif self.run_checkdb:
            errors = source.check_database(database)
            checks.append(
                Check(
                    "DBCC CHECKDB",
                    "fail" if errors else "pass",
                    errors[-1] if errors else "0 allocation errors and 0 consistency errors",
                    "repair the source before migrating (see README troubleshooting)" if errors else "",
                )
            )
        if self.migration.compression == "on" and not server.can_compress_backups:
            checks.append(
                Check(
                    "backup compression",
                    "fail",
                    f"compression: on, but {server.edition} cannot create compressed backups (error 1844)",
                    "set compression: auto (or off) in the migration config",
                )
            )
        else:
            compress = self.steps.use_compression()
            named = self.steps.compression_algorithm()  # what the backups will name (the steps decide)
            algorithm = f" (ALGORITHM = {named})" if compress and named else ""
            checks.append(
                Check(
                    "backup compression",
                    "pass",
                    f"on{algorithm}" if compress else f"off ({self.migration.compression})",
                )
            )

    def _rights_check(self, checks: list[Check], rights: Any) -> None:
        """Every statement the migration will run on the source, rollback included (S6). The fix is the
        statement that grants them all: db_owner may back up, ALTER (freeze and undo) and CHECKDB."""
        needed = [
            ("BACKUP DATABASE (the full)", rights.can_backup_database),
            ("BACKUP LOG (log shipping, tail)", rights.can_backup_log),
            ("ALTER DATABASE (freeze, and its undo on rollback)", rights.can_alter),
        ]
        if self.run_checkdb:
            needed.append(("DBCC CHECKDB", rights.can_checkdb))
        missing = [what for what, ok in needed if not ok]
        login = rights.login_name or "the source login"
        if missing:
            user = quote_name(rights.user_name or rights.login_name)
            checks.append(
                Check(
                    "source rights",
                    "fail",
                    f"{login} may not run: " + "; ".join(missing),
                    f"make its user a db_owner of the database — USE {quote_name(self.steps.database)}; "
                    f"ALTER ROLE [db_owner] ADD MEMBER {user}; — or use a sysadmin login",
                )
            )
        else:
            how = "sysadmin" if rights.is_sysadmin else "granted rights"
            checks.append(Check("source rights", "pass", f"{login} may run every step ({how})"))
        if not rights.can_read_headers:
            checks.append(
                Check(
                    "source rights",
                    "warn",
                    f"{login} may not read backup headers (RESTORE HEADERONLY needs CREATE DATABASE)",
                    "a backup of another job copied into the backup folder cannot be verified and adopted; list "
                    "that job's folder in backup_folder.adopt_from instead (no right needed), or grant it: "
                    f"ALTER SERVER ROLE [dbcreator] ADD MEMBER {quote_name(login)};",
                )
            )

    def _other_jobs_check(self, checks: list[Check], database: str) -> None:
        """Other jobs' log backups truncate the log our chain needs; COPY_ONLY ones do not. Every backup is
        counted once per backup set: a striped or mirrored set has one msdb media row per file."""
        history = self.steps.history(datetime.now(UTC) - timedelta(days=7))
        shippable, foreign = self.steps.shippable(history)
        breakers = [r for r in foreign if r.backup_type.name == "LOG" and not r.is_copy_only]
        adopted = [s for s in shippable if s.origin != "ours"]
        others = describe_other_backups(foreign)
        if breakers:
            last = breakers[-1]
            folders = sorted({parent_folder(r.physical_device_name or "") for r in breakers} - {""})
            checks.append(
                Check(
                    "other log backups",
                    "warn",
                    f"{len(breakers)} log backup(s) by other jobs in 7 days break the chain, the last at "
                    f"{last.started_at:%Y-%m-%d %H:%M} UTC to {shown(last.physical_device_name or '')}. {others}",
                    "stop that job for the migration, or add its folder ("
                    + ", ".join(shown(f) for f in folders)
                    + ") to backup_folder.adopt_from so its backups join the chain: a log backup taken elsewhere "
                    "breaks it",
                )
            )
        else:
            detail = (
                f"none outside adopt_from ({len(adopted)} adopted)" if adopted else "none in the last 7 days"
            )
            checks.append(Check("other log backups", "pass", f"{detail}. {others}"))
        for folder in self.migration.backup_folder.adopt_from:
            visible = os.path.isdir(folder.worker_path)
            checks.append(
                Check(
                    "adopt_from folder",
                    "pass" if visible else "fail",
                    f"{folder.server_path!r} seen at {folder.worker_path!r}"
                    + ("" if visible else " is not visible to this worker"),
                    ""
                    if visible
                    else "mount that job's backup folder on the worker (worker_path) or remove it",
                )
            )

    def _target_checks(self, checks: list[Check], facts: dict[str, Any]) -> None:
        rds, instance_id = self.steps.rds, self.steps.instance_id
        instance = rds.instance_facts(instance_id)
        facts["target"] = instance
        if instance.engine.lower() != "sqlserver":
            checks.append(
                Check("target engine", "fail", instance.engine, "choose an RDS for SQL Server instance")
            )
        if instance.status != "Running":
            checks.append(
                Check("target status", "fail", instance.status, "wait until the instance is Running")
            )
        if not instance.supports_migration_apis:
            # R8: without DescribeOssDownloads (cluster editions) no import could be followed.
            checks.append(
                Check(
                    "target edition",
                    "fail",
                    instance.unsupported_reason,
                    "set target.instance_id to an instance of another edition",
                )
            )
        if instance.region and instance.region != self.migration.target.region:
            checks.append(
                Check(
                    "target region",
                    "fail",
                    f"instance is in {instance.region}",
                    f"set target.region to {instance.region}",
                )
            )
        server = facts.get("source_server")
        target_major = instance.major_version
        if server is not None and target_major is not None:
            newer = server.major_version > target_major
            checks.append(
                Check(
                    "version",
                    "fail" if newer else "pass",
                    f"source {server.major_version} -> target {instance.engine_version}",
                    "migrate to an RDS instance of the same or a later SQL Server version" if newer else "",
                )
            )
        db = facts.get("source_db")
        if db is not None:
            self._edition_check(checks, list(db.sku_features or ()), instance)
            needed = db.restore_bytes
            free = instance.storage_gb * 1024**3 - instance.disk_used_bytes
            enough = free > needed
            files = ", ".join(f"{kind} {_size(size)}" for kind, size in sorted(db.size_bytes.items()))
            checks.append(
                Check(
                    "target storage",
                    "pass" if enough else "fail",
                    f"{_size(max(free, 0))} free for the {_size(needed)} RESTORE creates ({files})",
                    ""
                    if enough
                    else "expand the instance storage (or shrink the source's log file) before migrating",
                )
            )
        existing = self.steps.find_migration_task_id()
        names = rds.database_names(instance_id)
        if self.steps.target_database in names and existing is None:
            checks.append(
                Check(
                    "target name",
                    "fail",
                    f"a database {self.steps.target_database!r} already exists",
                    "drop it on RDS or set target.database to another name",
                )
            )
        else:
            detail = f"resuming migration task {existing}" if existing else "free"
            checks.append(Check("target name", "pass", detail))
        if self.steps.target_sql is None:
            checks.append(
                Check(
                    "target SQL connection",
                    "warn",
                    "target.mssql_conn_id is not set",
                    "set it so the cutover can set MULTI_USER and validate the data",
                )
            )

    @staticmethod
    def _edition_check(checks: list[Check], features: list[str], instance: Any) -> None:
        if not features:
            checks.append(Check("edition features", "pass", "no edition-specific features in use"))
            return
        limited = sorted(set(features) & ENTERPRISE_ONLY_BEFORE_2016SP1)
        if instance.edition == "ent":
            checks.append(Check("edition features", "pass", f"{', '.join(features)} supported by Enterprise"))
        elif (instance.major_version or 0) < 13 and limited:
            checks.append(
                Check(
                    "edition features",
                    "fail",
                    f"{', '.join(limited)} need Enterprise on {instance.engine_version}",
                    "disable them on the source and take a new full, or use an Enterprise instance",
                )
            )
        else:
            checks.append(
                Check(
                    "edition features",
                    "warn",
                    f"{', '.join(features)} in use ({instance.edition})",
                    "make sure the target edition supports them, or opening fails",
                )
            )

    def _pool_checks(self, checks: list[Check], facts: dict[str, Any]) -> None:
        """The pool that serialises this database's log chain: one slot, deferred tasks counted."""
        from airflow.sdk.exceptions import AirflowNotFoundException

        from hooks.airflow_api import AirflowApiError, AirflowApiHook

        pool, conn_id = self.migration.pool, self.migration.airflow_api_conn_id
        create = f'airflow pools set {pool} 1 "log chain of {self.steps.database}" --include-deferred'
        try:
            found = AirflowApiHook(conn_id).get_pool(pool)
        except (AirflowNotFoundException, AirflowApiError) as error:
            reason = (
                f"no connection {conn_id!r} to the Airflow API"
                if isinstance(error, AirflowNotFoundException)
                else str(error)
            )
            checks.append(
                Check(
                    "Airflow pool",
                    "warn",
                    f"{pool!r} not verified: {reason}",
                    f"make sure it has 1 slot and include_deferred (`airflow pools get {pool}`), or create it: "
                    f"{create}; give preflight an http connection {conn_id!r} to the API to check it",
                )
            )
            return
        if found is None:
            checks.append(
                Check("Airflow pool", "fail", f"{pool!r} does not exist: tasks in it never start", create)
            )
        elif found.slots != 1 or not found.include_deferred:
            checks.append(
                Check(
                    "Airflow pool",
                    "fail",
                    f"{pool!r} has {found.slots} slot(s), include_deferred {found.include_deferred}: two tasks "
                    "could work on the log chain at once (a deferred wait frees a slot unless it is counted)",
                    create,
                )
            )
        else:
            checks.append(Check("Airflow pool", "pass", f"{pool!r}: 1 slot, deferred tasks counted"))

    def _bucket_checks(self, checks: list[Check], facts: dict[str, Any]) -> None:
        problems = self.steps.oss.check_bucket(self.steps.bucket, self.migration.target.region)
        for problem in problems:
            checks.append(Check("OSS bucket", "fail", problem))
        if not problems:
            checks.append(
                Check("OSS bucket", "pass", f"{self.steps.bucket}: Standard, not encrypted, same region")
            )

    def _worker_checks(self, checks: list[Check], facts: dict[str, Any]) -> None:
        folder = self.migration.backup_folder.worker_path
        if not os.path.isdir(folder):
            checks.append(
                Check(
                    "backup folder",
                    "fail",
                    f"{folder!r} is not visible to this worker",
                    "mount the backup share here, or route tasks with `queue` to a worker that sees it",
                )
            )
            return
        try:
            with tempfile.NamedTemporaryFile(dir=folder):
                pass
        except OSError as exc:
            checks.append(
                Check("backup folder", "fail", f"{folder!r}: {exc.strerror}", "give the worker write access")
            )
            return
        checks.append(Check("backup folder", "pass", folder))
