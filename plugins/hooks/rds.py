"""ApsaraDB RDS hook for the migration: instance facts, the UPDF migration task, file states, open database.

Thin layer over the Tea SDK (``alibabacloud_rds20140815``). The client is built on first use from the
Airflow connection; retries (throttling with retry-after, 5xx, network) are done here with tenacity,
because the SDK's ``RuntimeOptions(autoretry=...)`` is ignored. ``CreateMigrateTask`` is the exception:
it has no ClientToken (R5), so after a 5xx, a timeout or a dropped connection the hook first looks
whether RDS accepted the import, and imports again only when RDS shows nothing.

States, records and parsing live in :mod:`hooks.rds_records`, SDK error mapping and the proxy bypass
in :mod:`hooks.rds_client` (both re-exported here).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from airflow.sdk import BaseHook

from hooks._retry import RetryPolicy, call_with_retries
from hooks.rds_client import (
    RdsApiError,
    RdsWaitTimeoutError,
    _bypass_env_proxy,
    _is_direct_host,
    describe,
    is_ambiguous,
    is_throttling,
    is_transient,
    map_error,
    retry_after_seconds,
    sdk_errors,
)
from hooks.rds_errors import TERMINATED_ADVICE, advice_for
from hooks.rds_records import (
    CHECK_DB_MODES,
    EDITION_BY_SUFFIX,
    FILE_DELETED_STATES,
    FILE_FAILURE_STATES,
    FILE_INTERMEDIATE_STATES,
    FILE_SUCCESS_STATES,
    SQL_SERVER_MAJOR_BY_YEAR,
    TASK_FAILURE_STATES,
    TASK_INTERMEDIATE_STATES,
    TASK_SUCCESS_STATES,
    TASK_TERMINAL_STATES,
    TASK_TERMINATED_STATES,
    TASK_WAITING_STATES,
    InstanceFacts,
    MigrateTask,
    OssDownload,
    base_name,
    download_from_map,
    file_matches,
    instance_facts_from_map,
    items,
    looks_incremental,
    migration_api_support,
    object_key,
    parse_engine_version,
    parse_time,
    task_from_map,
)

__all__ = [
    "CHECK_DB_MODES",
    "EDITION_BY_SUFFIX",
    "FILE_DELETED_STATES",
    "FILE_FAILURE_STATES",
    "FILE_INTERMEDIATE_STATES",
    "FILE_SUCCESS_STATES",
    "SQL_SERVER_MAJOR_BY_YEAR",
    "TASK_FAILURE_STATES",
    "TASK_INTERMEDIATE_STATES",
    "TASK_SUCCESS_STATES",
    "TASK_TERMINAL_STATES",
    "TASK_TERMINATED_STATES",
    "TASK_WAITING_STATES",
    "InstanceFacts",
    "MigrateTask",
    "OssDownload",
    "RdsApiError",
    "RdsMigrationHook",
    "RdsWaitTimeoutError",
    "describe",
    "file_matches",
    "is_ambiguous",
    "is_throttling",
    "is_transient",
    "map_error",
    "retry_after_seconds",
    "migration_api_support",
    "parse_engine_version",
    "parse_time",
]

T = TypeVar("T")
log = logging.getLogger(__name__)

#: How far RDS's clock may be from ours when the hook looks for a task or file "created since the
#: request" (CreateTime has second precision; NTP keeps real clocks far closer than this).
CLOCK_SKEW = timedelta(minutes=2)
#: How many candidate tasks :meth:`RdsMigrationHook.find_migration_task` inspects at most.
MAX_CANDIDATES = 50


# ---- hook ---------------------------------------------------------------------------------------


class RdsMigrationHook(BaseHook):
    """ApsaraDB RDS OpenAPI access for the migration (conn_type ``alibaba_cloud``).

    Connection extras: ``auth_type`` ``"AK"``, ``access_key_id``, ``access_key_secret`` (login/password as
    fallback), ``region`` (required), optional ``endpoint`` (VPC endpoint or ``127.0.0.1:PORT``) and
    ``protocol`` (``https`` default, ``http`` for the sandbox). With no key pair the Alibaba default
    credential chain is used (env, ECS RAM role, STS).

    :param rds_conn_id: Airflow connection id.
    :param retry: retry policy for throttling, 5xx and network errors.
    :param read_timeout: seconds to wait for a response.
    :param connect_timeout: seconds to wait for a connection.
    :param clock: current UTC time for the list windows (tests pass the sandbox clock's ``now``).
    """

    conn_name_attr = "rds_conn_id"
    default_conn_name = "alibaba_cloud_default"
    conn_type = "alibaba_cloud"
    hook_name = "ApsaraDB RDS (RDS migration)"

    def __init__(
        self,
        rds_conn_id: str = default_conn_name,
        *,
        retry: RetryPolicy | None = None,
        read_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__()
        self.rds_conn_id = rds_conn_id
        self.retry = retry or RetryPolicy()
        self.read_timeout = read_timeout
        self.connect_timeout = connect_timeout
        self.clock = clock

    def __repr__(self) -> str:
        return f"<{type(self).__name__} rds_conn_id={self.rds_conn_id!r}>"

    @functools.cached_property
    def region(self) -> str:
        """Region id of the connection, e.g. ``cn-hangzhou``."""
        region = self.get_connection(self.rds_conn_id).extra_dejson.get("region")
        if not region:
            raise RdsApiError(
                "MissingRegion",
                f"connection {self.rds_conn_id!r} has no 'region' extra",
                "set it, e.g. cn-hangzhou",
            )
        return str(region)

    @functools.cached_property
    def client(self) -> Any:
        """The SDK client, built on first use."""
        from alibabacloud_rds20140815.client import Client
        from alibabacloud_tea_openapi.models import Config

        conn = self.get_connection(self.rds_conn_id)
        extra = conn.extra_dejson
        ak = extra.get("access_key_id") or conn.login or ""
        sk = extra.get("access_key_secret") or conn.password or ""
        protocol = str(extra.get("protocol") or "https").lower()
        if protocol not in ("http", "https"):
            raise RdsApiError(
                "InvalidProtocol", f"protocol {protocol!r} of {self.rds_conn_id!r}", "use https or http"
            )
        config = Config(
            region_id=self.region,
            endpoint=extra.get("endpoint") or None,
            protocol=protocol,
            read_timeout=int(self.read_timeout * 1000),
            connect_timeout=int(self.connect_timeout * 1000),
        )
        if ak and sk:
            config.access_key_id = ak
            config.access_key_secret = sk
            if extra.get("security_token"):
                config.security_token = extra["security_token"]
        elif ak or sk:
            raise RdsApiError(
                "IncompleteAccessKey",
                f"connection {self.rds_conn_id!r} has only half of the AccessKey pair",
                "set both access_key_id and access_key_secret, or neither (default credential chain)",
            )
        else:
            from alibabacloud_credentials.client import Client as CredentialClient

            config.credential = CredentialClient()
        client = Client(config)
        if _is_direct_host(protocol, client._endpoint):
            _bypass_env_proxy(protocol, client._endpoint, config.max_idle_conns)
        return client

    def _call(
        self,
        action: str,
        method: str,
        request: Any,
        *,
        transient: Callable[[BaseException], bool] = is_transient,
    ) -> dict[str, Any]:
        """Call ``client.<method>(request)``, retrying what ``transient`` allows; return the body as a
        PascalCase dict. SDK errors come out as :class:`RdsApiError` (the SDK's error as its cause)."""
        fn = getattr(self.client, method)
        try:
            response = call_with_retries(
                lambda: fn(request),
                what=action,
                policy=self.retry,
                is_transient=transient,
                wait_hint=retry_after_seconds,
                describe=describe,
            )
        except sdk_errors() as e:
            raise map_error(e, action) from e
        return response.body.to_map() if response.body is not None else {}

    def _now(self) -> datetime:
        return self.clock() if self.clock is not None else datetime.now(UTC)

    # ---- preflight ----------------------------------------------------------------------------

    def instance_facts(self, instance_id: str) -> InstanceFacts:
        """Return engine, version, edition, storage, status and migration support of an instance.

        :param instance_id: RDS instance id (``rm-...``).
        """
        from alibabacloud_rds20140815 import models

        body = self._call(
            f"DescribeDBInstanceAttribute {instance_id}",
            "describe_dbinstance_attribute",
            models.DescribeDBInstanceAttributeRequest(dbinstance_id=instance_id),
        )
        found = items(body, "Items", "DBInstanceAttribute")
        if not found:
            raise RdsApiError(
                "InvalidDBInstanceId.NotFound",
                f"instance {instance_id} not found",
                advice_for("InvalidDBInstanceId.NotFound"),
            )
        return instance_facts_from_map(found[0], instance_id)

    def database_names(self, instance_id: str) -> list[str]:
        """Return the names of the databases on an instance.

        :param instance_id: RDS instance id.
        """
        from alibabacloud_rds20140815 import models

        names: list[str] = []
        page = 1
        while True:
            body = self._call(
                f"DescribeDatabases {instance_id}",
                "describe_databases",
                models.DescribeDatabasesRequest(dbinstance_id=instance_id, page_number=page, page_size=100),
            )
            found = items(body, "Databases", "Database")
            names.extend(str(item.get("DBName")) for item in found)
            if len(found) < 100:
                return names
            page += 1

    # ---- migration tasks ----------------------------------------------------------------------

    def list_migration_tasks(
        self, instance_id: str, *, days: int = 7, since: datetime | None = None
    ) -> list[MigrateTask]:
        """Return the migration tasks of the last ``days`` days, all pages (newest first).

        The API keeps one week only (R1): a migration whose full was imported earlier is not listed;
        keep its MigrateTaskId and use :meth:`get_task`.

        :param instance_id: RDS instance id.
        :param days: how far back to look (at most 7).
        :param since: only tasks created since then (narrower window, fewer pages).
        """
        from alibabacloud_rds20140815 import models

        now = self._now()
        end = now + CLOCK_SKEW
        start = now - timedelta(days=min(days, 7))
        if since is not None:
            start = max(start, since - CLOCK_SKEW)
        tasks: list[MigrateTask] = []
        page = 1
        while True:
            body = self._call(
                f"DescribeMigrateTasks {instance_id}",
                "describe_migrate_tasks",
                models.DescribeMigrateTasksRequest(
                    dbinstance_id=instance_id,
                    start_time=start.strftime("%Y-%m-%dT%H:%MZ"),
                    end_time=end.strftime("%Y-%m-%dT%H:%MZ"),
                    page_number=page,
                    page_size=100,
                ),
            )
            found = items(body, "Items", "MigrateTask")
            tasks.extend(task_from_map(item) for item in found)
            total = int(body.get("TotalRecordCount") or 0)
            if len(found) < 100 or (total and len(tasks) >= total):
                return tasks
            page += 1

    def find_migration_task(self, instance_id: str, db_name: str) -> MigrateTask | None:
        """Return the newest migration (parent) task of ``db_name`` listed this week that has neither
        failed nor been terminated, or None. The fallback when no MigrateTaskId was recorded.

        With child task ids (R4) the incremental imports are tasks of the same DBName too: a task whose
        first file is a log or differential backup is such a child and is skipped.

        :param instance_id: RDS instance id.
        :param db_name: database name on the instance.
        """
        candidates = [
            task
            for task in self.list_migration_tasks(instance_id)
            if task.db_name == db_name and task.backup_mode.upper() == "UPDF" and not task.failed
        ]
        oldest = datetime.min.replace(tzinfo=UTC)
        candidates.sort(key=lambda t: (t.create_time or oldest, t.migrate_task_id), reverse=True)
        for task in candidates[:MAX_CANDIDATES]:
            files = self.get_file_states(instance_id, task.migrate_task_id)
            if files and looks_incremental(files[0]):
                continue
            return task
        return None

    def get_task(self, instance_id: str, migrate_task_id: str) -> MigrateTask:
        """Return a migration task by id (``DescribeMigrateTaskById``: works at any age, R1).

        :param instance_id: RDS instance id.
        :param migrate_task_id: the migration task.
        """
        from alibabacloud_rds20140815 import models

        body = self._call(
            f"DescribeMigrateTaskById {migrate_task_id}",
            "describe_migrate_task_by_id",
            models.DescribeMigrateTaskByIdRequest(dbinstance_id=instance_id, migrate_task_id=migrate_task_id),
        )
        return task_from_map(body)

    #: Former name of :meth:`get_task`.
    get_task_state = get_task

    def _create_updf_task(
        self, instance_id: str, db_name: str, oss_position: str, parent_id: str | None
    ) -> str:
        """The one place that builds ``CreateMigrateTask`` (BackupMode UPDF, IsOnlineDB False).

        No ClientToken exists for it (R5): throttling (refused before acceptance) is retried; after a
        5xx, a timeout or a lost connection the import may exist, so RDS is asked first and an import
        it shows is returned instead of importing the file a second time.
        """
        from alibabacloud_rds20140815 import models

        request = models.CreateMigrateTaskRequest(
            dbinstance_id=instance_id,
            dbname=db_name,
            backup_mode="UPDF",
            is_online_db="False",
            oss_object_positions=oss_position,
            migrate_task_id=parent_id,
        )
        what = "incremental import" if parent_id else "full import"
        action = f"CreateMigrateTask ({what}) of {db_name!r} from {oss_position}"

        def accepted_since(sent: datetime) -> str | None:
            try:
                found = self._find_accepted_import(instance_id, db_name, oss_position, parent_id, sent)
            except RdsApiError as error:  # cannot tell: importing again could import the file twice
                raise RdsApiError(
                    "ImportOutcomeUnknown",
                    f"{action} failed and RDS could not be asked whether it accepted the import: {error}",
                    advice_for("ImportOutcomeUnknown"),
                ) from error
            if found is not None:
                log.warning("%s: RDS had accepted it after all (MigrateTaskId %s)", action, found)
            return found

        first_sent: datetime | None = None  # when the first attempt with an unknown outcome was sent
        for attempt in range(1, self.retry.attempts + 1):
            if first_sent is not None and (found := accepted_since(first_sent)):
                return found
            sent = self._now()
            try:
                body = self._call(action, "create_migrate_task", request, transient=is_throttling)
            except RdsApiError as error:
                cause = error.__cause__
                if cause is None or not is_ambiguous(cause):
                    # e.g. "database exists" because an earlier attempt did create the import
                    if first_sent is not None and (found := accepted_since(first_sent)):
                        return found
                    raise
                first_sent = first_sent or sent
                if attempt == self.retry.attempts:
                    if found := accepted_since(first_sent):
                        return found
                    raise
                wait = self.retry.backoff(attempt)
                log.warning(
                    "%s failed (%s) and may have been accepted all the same: looking before importing "
                    "again (attempt %d of %d, next in %.1f s)",
                    action,
                    describe(cause),
                    attempt,
                    self.retry.attempts,
                    wait,
                )
                time.sleep(wait)
                continue
            task_id = str(body.get("MigrateTaskId") or "")
            if not task_id:
                raise RdsApiError("MissingMigrateTaskId", f"{action} returned no MigrateTaskId")
            log.info("%s accepted: MigrateTaskId %s", action, task_id)
            return task_id
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _find_accepted_import(
        self, instance_id: str, db_name: str, oss_position: str, parent_id: str | None, since: datetime
    ) -> str | None:
        """The MigrateTaskId of an import of ``oss_position`` RDS accepted since ``since``, or None.

        Incremental: the parent lists the file again (same task id), or a task of this database
        created since then lists it (child task id, R4). Full: a task of this database created since
        then whose first file is this one.
        """
        key = object_key(oss_position)
        earliest = since - CLOCK_SKEW

        def recent(entry: OssDownload | MigrateTask) -> bool:
            return entry.create_time is not None and entry.create_time >= earliest

        if parent_id is not None:
            listed = self.get_file_states(instance_id, parent_id)
            if any(file_matches(f, key) and recent(f) for f in listed):
                return parent_id
        for task in self.list_migration_tasks(instance_id, since=since):
            if task.db_name != db_name or task.migrate_task_id == parent_id or not recent(task):
                continue
            files = self.get_file_states(instance_id, task.migrate_task_id)
            if files and file_matches(files[0], key):
                return task.migrate_task_id
        return None

    def create_migration_task(self, instance_id: str, db_name: str, oss_position: str) -> str:
        """Start an "Access Pending" migration from a full backup; return the MigrateTaskId.

        Never imports the file twice: see :meth:`_create_updf_task`.

        :param instance_id: RDS instance id.
        :param db_name: database name to create on the instance.
        :param oss_position: ``<oss-endpoint>:<bucket>:<key>`` of the full backup.
        """
        return self._create_updf_task(instance_id, db_name, oss_position, None)

    def import_incremental(
        self, instance_id: str, db_name: str, migrate_task_id: str, oss_position: str
    ) -> str:
        """Import a log or differential backup into a migration; return the MigrateTaskId RDS answered.

        Whether that is ``migrate_task_id`` itself or a new child task id is UNKNOWN (R4): callers
        record the answer and follow the file there (:meth:`wait_for_file_state`), and keep opening
        the database with the parent's id.

        :param instance_id: RDS instance id.
        :param db_name: database name on the instance.
        :param migrate_task_id: the (parent) task created by :meth:`create_migration_task`.
        :param oss_position: ``<oss-endpoint>:<bucket>:<key>`` of the backup.
        """
        if not migrate_task_id:
            raise ValueError("migrate_task_id is required for an incremental import")
        return self._create_updf_task(instance_id, db_name, oss_position, migrate_task_id)

    def open_database(
        self, instance_id: str, db_name: str, migrate_task_id: str, check_db_mode: str, client_token: str
    ) -> None:
        """Open the migrated database (``CreateOnlineDatabaseTask``), idempotent through ``client_token``.

        :param instance_id: RDS instance id.
        :param db_name: database name on the instance.
        :param migrate_task_id: the migration (parent) task.
        :param check_db_mode: ``AsyncExecuteDBCheck`` or ``SyncExecuteDBCheck``.
        :param client_token: idempotency token (<= 64 ASCII characters), the same on every retry.
        """
        from alibabacloud_rds20140815 import models

        if check_db_mode not in CHECK_DB_MODES:
            raise ValueError(f"check_db_mode {check_db_mode!r} is not one of {', '.join(CHECK_DB_MODES)}")
        if not client_token or len(client_token) > 64 or not client_token.isascii():
            raise ValueError("client_token must be 1-64 ASCII characters (the same on every retry)")
        self._call(
            f"CreateOnlineDatabaseTask of {db_name!r} (task {migrate_task_id}, {check_db_mode})",
            "create_online_database_task",
            models.CreateOnlineDatabaseTaskRequest(
                dbinstance_id=instance_id,
                dbname=db_name,
                migrate_task_id=migrate_task_id,
                check_dbmode=check_db_mode,
                client_token=client_token,
            ),
        )
        log.info("CreateOnlineDatabaseTask of %r accepted (%s)", db_name, check_db_mode)

    def terminate_migration_task(self, instance_id: str, migrate_task_id: str) -> MigrateTask:
        """Stop a migration task (``TerminateMigrateTask``); return it as RDS then shows it.

        Idempotent: a task that is already Terminated is fine. RDS refuses a Failed or opened task
        (``InvalidTaskStatus``) and may refuse an Access Pending one (``InvalidTaskType.Invalid``): then
        drop the database with :meth:`delete_database` to abandon the migration.

        :param instance_id: RDS instance id.
        :param migrate_task_id: the migration (parent) task.
        """
        from alibabacloud_rds20140815 import models

        try:
            self._call(
                f"TerminateMigrateTask {migrate_task_id}",
                "terminate_migrate_task",
                models.TerminateMigrateTaskRequest(
                    dbinstance_id=instance_id, migrate_task_id=migrate_task_id
                ),
            )
        except RdsApiError as error:
            if error.code != "InvalidTaskStatus":
                raise
            task = self.get_task(instance_id, migrate_task_id)
            if not task.terminated:
                raise
            log.info("Migration task %s was already terminated", migrate_task_id)
            return task
        log.info("Migration task %s terminated", migrate_task_id)
        return self.get_task(instance_id, migrate_task_id)

    def delete_database(self, instance_id: str, db_name: str) -> bool:
        """Drop a database on the instance (``DeleteDatabase``); True if it was dropped now.

        Idempotent: a database that does not exist is fine (False). RDS answers the same code for
        "does not exist" and "DB status does not support", so absence is checked by listing.

        :param instance_id: RDS instance id.
        :param db_name: database name on the instance.
        """
        from alibabacloud_rds20140815 import models

        try:
            self._call(
                f"DeleteDatabase {db_name!r}",
                "delete_database",
                models.DeleteDatabaseRequest(dbinstance_id=instance_id, dbname=db_name),
            )
        except RdsApiError as error:
            if error.code != "InvalidDBName.NotFound" or db_name in self.database_names(instance_id):
                raise
            log.info("Database %r is not on %s: nothing to delete", db_name, instance_id)
            return False
        log.info("Database %r deleted on %s", db_name, instance_id)
        return True

    # ---- states -------------------------------------------------------------------------------

    def get_file_states(self, instance_id: str, migrate_task_id: str) -> list[OssDownload]:
        """Return the backup files of a migration task and their states (``DescribeOssDownloads``).

        With child task ids (R4) a task lists only its own file(s): use :meth:`get_migration_files`
        for the files of a whole migration.

        :param instance_id: RDS instance id.
        :param migrate_task_id: the migration task.
        """
        from alibabacloud_rds20140815 import models

        body = self._call(
            f"DescribeOssDownloads {migrate_task_id}",
            "describe_oss_downloads",
            models.DescribeOssDownloadsRequest(dbinstance_id=instance_id, migrate_task_id=migrate_task_id),
        )
        return [download_from_map(item) for item in items(body, "Items", "OssDownload")]

    def get_migration_files(
        self, instance_id: str, migrate_task_ids: Collection[str]
    ) -> list[tuple[str, OssDownload]]:
        """The files of several tasks (a parent and the child ids its imports answered), each with the
        id of the task that lists it; a task id given twice is asked once.

        :param instance_id: RDS instance id.
        :param migrate_task_ids: the task ids recorded for the migration.
        """
        found: list[tuple[str, OssDownload]] = []
        for task_id in dict.fromkeys(migrate_task_ids):
            found.extend((task_id, f) for f in self.get_file_states(instance_id, task_id))
        return found

    async def aget_task_state(self, instance_id: str, migrate_task_id: str) -> MigrateTask:
        """Async twin of :meth:`get_task` (runs in a thread, with the same retries and proxy rules).

        :param instance_id: RDS instance id.
        :param migrate_task_id: the migration task.
        """
        return await asyncio.to_thread(self.get_task, instance_id, migrate_task_id)

    async def aget_file_states(self, instance_id: str, migrate_task_id: str) -> list[OssDownload]:
        """Async twin of :meth:`get_file_states`.

        :param instance_id: RDS instance id.
        :param migrate_task_id: the migration task.
        """
        return await asyncio.to_thread(self.get_file_states, instance_id, migrate_task_id)

    @staticmethod
    def task_failure(task: MigrateTask) -> RdsApiError:
        """The error for a failed or terminated task, with advice from its description."""
        if task.terminated:
            return RdsApiError(
                task.status,
                f"migration task {task.migrate_task_id} of {task.db_name!r} was terminated",
                TERMINATED_ADVICE,
            )
        return RdsApiError(
            task.status,
            f"migration task {task.migrate_task_id} of {task.db_name!r} failed: "
            f"{task.description or '(no description)'}",
            advice_for(task.description),
        )

    @staticmethod
    def file_failure(migrate_task_id: str, download: OssDownload) -> RdsApiError:
        """The error for a failed backup file, with advice from its description."""
        return RdsApiError(
            download.status,
            f"backup file {download.file_name} of task {migrate_task_id} is {download.status}: "
            f"{download.description or '(no description)'}",
            advice_for(download.description),
        )

    def _wait(
        self, what: str, poll: Callable[[], T], done: Callable[[T], bool], timeout: float, interval: float
    ) -> T:
        deadline = time.monotonic() + timeout
        while True:
            value = poll()
            if done(value):
                return value
            if time.monotonic() + interval > deadline:
                raise RdsWaitTimeoutError(
                    "Timeout",
                    f"{what}: not reached after {timeout:.0f} s",
                    "the task may still finish: wait again",
                )
            time.sleep(interval)

    def wait_for_task_state(
        self,
        instance_id: str,
        migrate_task_id: str,
        targets: Collection[str] = TASK_SUCCESS_STATES | TASK_WAITING_STATES,
        *,
        timeout: float = 3600.0,
        poll: float = 15.0,
    ) -> MigrateTask:
        """Block until the task reaches one of ``targets``; fail fast on a failure state (Terminated too).

        :param instance_id: RDS instance id.
        :param migrate_task_id: the migration task.
        :param targets: task states to wait for.
        :param timeout: seconds before :class:`RdsWaitTimeoutError`.
        :param poll: seconds between two polls (one status line each).
        """

        def check() -> MigrateTask:
            task = self.get_task(instance_id, migrate_task_id)
            log.info(
                "Migration task %s (%s): %s %s", migrate_task_id, task.db_name, task.status, task.description
            )
            if task.status not in targets and task.status in TASK_FAILURE_STATES:
                raise self.task_failure(task)
            return task

        return self._wait(
            f"migration task {migrate_task_id} reaching {sorted(targets)}",
            check,
            lambda task: task.status in targets,
            timeout,
            poll,
        )

    def wait_for_file_state(
        self,
        instance_id: str,
        migrate_task_id: str,
        file_name: str,
        targets: Collection[str] = FILE_SUCCESS_STATES,
        *,
        timeout: float = 3600.0,
        poll: float = 15.0,
    ) -> OssDownload:
        """Block until a backup file of the task reaches one of ``targets``; fail fast on a failure state.

        The file is matched by its last path segment (:func:`file_matches`), whatever ``FileName`` style
        RDS uses; its latest entry counts (``Deleted`` after a restore counts as restored). A file the
        task does not list yet is waited for. While the file is not done, the task is read too: a
        terminated task fails the wait (a Failed one may be the previous file's failure: the file's
        own state decides).

        :param instance_id: RDS instance id.
        :param migrate_task_id: the task the import answered (the parent, or a child task, R4).
        :param file_name: the file's name or object key.
        :param targets: file states to wait for.
        :param timeout: seconds before :class:`RdsWaitTimeoutError`.
        :param poll: seconds between two polls (one status line each).
        """
        base = base_name(file_name)

        def check() -> OssDownload | None:
            files = [f for f in self.get_file_states(instance_id, migrate_task_id) if file_matches(f, base)]
            current = files[-1] if files else None
            if current is not None:
                log.info(
                    "Backup file %s of task %s: %s %s",
                    base,
                    migrate_task_id,
                    current.status,
                    current.description,
                )
                if current.status in targets:
                    return current
                if current.status in FILE_FAILURE_STATES:
                    raise self.file_failure(migrate_task_id, current)
            task = self.get_task(instance_id, migrate_task_id)
            if current is None:
                log.info(
                    "Backup file %s not listed yet by task %s (task %s)", base, migrate_task_id, task.status
                )
            if task.terminated:
                raise self.task_failure(task)
            return current

        result: OssDownload = self._wait(  # type: ignore[assignment]
            f"backup file {base} of task {migrate_task_id} reaching {sorted(targets)}",
            check,
            lambda f: f is not None and f.status in targets,
            timeout,
            poll,
        )
        return result
