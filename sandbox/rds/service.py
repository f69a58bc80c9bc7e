"""The RDS OpenAPI operations of the stand-in, over a simulated target SQL Server instance.

Each operation takes the request parameters (all strings, as on the wire) and returns the JSON body
(without ``RequestId``, which the HTTP layer adds). Validation errors raise :class:`ApiError`
synchronously; restores and opens run in the background (:mod:`sandbox.rds.pipeline`) and are
observed through the Describe operations, like on Alibaba Cloud.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox.rds import errors
from sandbox.rds.config import RdsConfig
from sandbox.rds.engine_facts import EngineFacts
from sandbox.rds.models import MigrateTask, api_time
from sandbox.rds.oss_source import ObjectSource, check_suffix, parse_object_position, resolve
from sandbox.rds.pipeline import MigrationPipeline

log = logging.getLogger(__name__)

CHECK_DB_MODES = ("SyncExecuteDBCheck", "AsyncExecuteDBCheck")
# DescribeMigrateTasks only returns tasks of the last week.
TASK_HISTORY_S = 7 * 24 * 3600
Params = dict[str, str]
# RequestId of the API call being handled (per asyncio task, so concurrent calls do not mix).
current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("current_request_id", default="")


def _required(params: Params, name: str) -> str:
    value = params.get(name, "").strip()
    if not value:
        raise errors.missing_parameter(name)
    return value


def _bool_param(params: Params, name: str) -> bool:
    value = _required(params, name)
    if value.lower() not in ("true", "false"):
        raise errors.invalid_parameter(name, value)
    return value.lower() == "true"


def _int_param(params: Params, name: str, default: int) -> int:
    value = params.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise errors.ApiError(
            400, f"Invalid{name}.Malformed", f"Specified parameter {name} is not valid."
        ) from None


def _parse_window_time(params: Params, name: str) -> float:
    value = _required(params, name)
    for fmt in ("%Y-%m-%dT%H:%MZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    raise errors.ApiError(
        400,
        f"Invalid{name}.Malformed",
        f"Specified {name} is not valid: use the format yyyy-MM-ddTHH:mmZ (UTC).",
    )


class RdsService:
    """State and operations of one simulated RDS instance.

    :param config: the instance's configuration.
    :param engine: the target ``sandbox.mssql.engine.Instance`` the backups are restored into.
    :param objects: where ``OssObjectPositions`` are read from (the OSS stand-in's store).
    :param work_dir: folder for downloaded backup files.
    """

    def __init__(self, config: RdsConfig, engine: Any, objects: ObjectSource, work_dir: Path):
        self.config = config
        self.facts = EngineFacts(engine, config)
        self.objects = objects
        self.tasks: dict[str, MigrateTask] = {}
        self.pipeline = MigrationPipeline(
            engine, self.facts, objects, config.timing, Path(work_dir), config.max_databases
        )
        self._task_ids = itertools.count(int(time.time()) % 1_000_000 * 10)
        self._job_ids = itertools.count(int(time.time()) % 1_000_000 * 100)
        self._imports: dict[tuple[str, str], int] = {}  # (db name, UTC day) -> CreateMigrateTask calls
        self._client_tokens: dict[str, tuple[tuple[str, ...], str]] = {}
        self._background: set[asyncio.Task] = set()
        self.operations: dict[str, Callable[[Params], Awaitable[dict[str, Any]]]] = {
            "CreateMigrateTask": self.create_migrate_task,
            "CreateOnlineDatabaseTask": self.create_online_database_task,
            "DescribeMigrateTasks": self.describe_migrate_tasks,
            "DescribeMigrateTaskById": self.describe_migrate_task_by_id,
            "DescribeOssDownloads": self.describe_oss_downloads,
            "DescribeDatabases": self.describe_databases,
            "DescribeDBInstanceAttribute": self.describe_db_instance_attribute,
        }

    # --- plumbing -----------------------------------------------------------------------------------

    async def call(self, action: str, params: Params, request_id: str) -> dict[str, Any]:
        operation = self.operations.get(action)
        if operation is None:
            raise errors.ApiError(
                404, "InvalidAction.NotFound", "Specified api is not found, please check your url and method."
            )
        current_request_id.set(request_id)
        return await operation(params)

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def aclose(self) -> None:
        """Cancel background work (restores in progress are abandoned, like a service restart)."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    async def wait_idle(self) -> None:
        """Wait until no background work is left (tests)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    def _instance(self, params: Params) -> None:
        if _required(params, "DBInstanceId") != self.config.instance_id:
            raise errors.instance_not_found()

    def _task(self, params: Params) -> MigrateTask:
        task_id = _required(params, "MigrateTaskId")
        task = self.tasks.get(task_id)
        if task is None:
            raise errors.migrate_task_not_found(task_id)
        return task

    def _count_import(self, db_name: str) -> None:
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        used = self._imports.get((db_name.lower(), day), 0)
        if used >= self.config.max_imports_per_day:
            raise errors.upload_limit_exceeded(db_name, self.config.max_imports_per_day)
        self._imports[(db_name.lower(), day)] = used + 1

    # --- CreateMigrateTask --------------------------------------------------------------------------

    async def create_migrate_task(self, params: Params) -> dict[str, Any]:
        self._instance(params)
        db_name = _required(params, "DBName")
        backup_mode = _required(params, "BackupMode")
        if backup_mode not in ("FULL", "UPDF"):
            raise errors.invalid_parameter("BackupMode", backup_mode)
        is_online = _bool_param(params, "IsOnlineDB")
        if is_online != (backup_mode == "FULL"):
            raise errors.ApiError(
                400,
                "InvalidParameter",
                "BackupMode and IsOnlineDB do not match: use BackupMode=FULL with IsOnlineDB=True "
                "(Immediate Access) or BackupMode=UPDF with IsOnlineDB=False (Access Pending).",
            )
        check_db_mode = params.get("CheckDBMode") or "AsyncExecuteDBCheck"
        if check_db_mode not in CHECK_DB_MODES:
            raise errors.invalid_parameter("CheckDBMode", check_db_mode)
        if not params.get("OssObjectPositions") and params.get("OSSUrls"):
            raise errors.ApiError(
                400,
                "EngineNotSupported",
                "OSSUrls is only supported by SQL Server 2008 R2; use OssObjectPositions.",
            )
        position = parse_object_position(_required(params, "OssObjectPositions"))
        check_suffix(position.file_name)
        if not self.config.oss_authorized:
            raise errors.oss_not_authorized()
        info = resolve(self.objects, position, self.config.region)
        free = await self.facts.free_storage_bytes(self._pending_bytes())
        if info.size > free:
            raise errors.file_size_exceeded(info.size / 1048576, free / 1048576)

        if params.get("MigrateTaskId"):
            task = await self._incremental_target(params, db_name, backup_mode)
        else:
            task = await self._new_task(db_name, backup_mode)
        self._count_import(db_name)
        backup_file = self.pipeline.new_file(
            str(next(self._job_ids)), position.bucket, position.key, info.size
        )
        self.tasks.setdefault(task.migrate_task_id, task)
        task.files.append(backup_file)
        first = len(task.files) == 1
        self._spawn(self.pipeline.import_file(task, backup_file, first=first, check_db_mode=check_db_mode))
        return {
            "DBInstanceId": self.config.instance_id,
            "DBName": db_name,
            "MigrateTaskId": task.migrate_task_id,
            "TaskId": backup_file.job_id,
            "BackupMode": backup_mode,
        }

    async def _new_task(self, db_name: str, backup_mode: str) -> MigrateTask:
        if await self.facts.has_database(db_name):
            raise errors.db_name_exists(db_name)
        for other in self.tasks.values():
            if other.db_name.lower() == db_name.lower() and other.busy:
                raise errors.concurrent_task(
                    f"Migration task {other.migrate_task_id} of database {db_name} is still running."
                )
        return MigrateTask(str(next(self._task_ids)), db_name, backup_mode)

    async def _incremental_target(self, params: Params, db_name: str, backup_mode: str) -> MigrateTask:
        """The task an incremental file joins: UPDF, same database, idle, database still restoring."""
        task = self._task(params)
        if task.db_name != db_name:
            raise errors.ApiError(
                400,
                "InvalidDBName",
                f"Migration task {task.migrate_task_id} belongs to database {task.db_name}, not {db_name}.",
            )
        if task.backup_mode != "UPDF" or backup_mode != "UPDF":
            raise errors.incorrect_db_state(
                "Incremental files are only accepted by an Access Pending task "
                "(BackupMode=UPDF, IsOnlineDB=False)."
            )
        if task.busy:
            raise errors.concurrent_task(
                f"The previous backup file of migration task {task.migrate_task_id} is still being processed."
            )
        if task.opened:
            raise errors.incorrect_db_state(f"Database {db_name} has already been opened.")
        if await self.facts.state_of(db_name) != "RESTORING":
            raise errors.incorrect_db_state(
                f"Database {db_name} is not restoring; the full backup of task "
                f"{task.migrate_task_id} was not restored."
            )
        return task

    def _pending_bytes(self) -> int:
        """Bytes of files accepted but not restored yet: storage they will take."""
        return sum(
            f.size_bytes
            for t in self.tasks.values()
            for f in t.files
            if f.status in ("NoStart", "Downloading")
        )

    # --- CreateOnlineDatabaseTask -------------------------------------------------------------------

    async def create_online_database_task(self, params: Params) -> dict[str, Any]:
        self._instance(params)
        db_name = _required(params, "DBName")
        task_id = _required(params, "MigrateTaskId")
        check_db_mode = _required(params, "CheckDBMode")
        if check_db_mode not in CHECK_DB_MODES:
            raise errors.invalid_parameter("CheckDBMode", check_db_mode)
        token = params.get("ClientToken", "")
        if len(token) > 64 or not token.isascii():
            raise errors.invalid_parameter("ClientToken", token)
        fingerprint = (db_name, task_id, check_db_mode)
        if token in self._client_tokens:
            seen_fingerprint, request_id = self._client_tokens[token]
            if seen_fingerprint != fingerprint:
                raise errors.idempotent_mismatch()
            return {"RequestId": request_id}  # the original answer, nothing done twice
        task = self._task(params)
        if task.db_name != db_name:
            raise errors.db_name_not_found(db_name)
        if task.backup_mode != "UPDF":
            raise errors.incorrect_db_state("Only an Access Pending task (BackupMode=UPDF) can be opened.")
        if task.opened or task.status == "Success":
            raise errors.incorrect_db_state(f"Database {db_name} has already been opened.")
        if task.busy or task.status != "Waiting":
            raise errors.incorrect_db_state(
                f"Migration task {task_id} is {task.status}; open the database once every file is Restored."
            )
        if token:
            self._client_tokens[token] = (fingerprint, current_request_id.get())
        task.status = "Running"
        self._spawn(self.pipeline.open_database(task, check_db_mode))
        return {}

    # --- Describe* ----------------------------------------------------------------------------------

    async def describe_migrate_tasks(self, params: Params) -> dict[str, Any]:
        self._instance(params)
        start = _parse_window_time(params, "StartTime")
        end = _parse_window_time(params, "EndTime")
        page_size = min(max(_int_param(params, "PageSize", 30), 30), 100)
        page_number = max(_int_param(params, "PageNumber", 1), 1)
        oldest = time.time() - TASK_HISTORY_S
        # EndTime has minute precision: include the whole minute it names.
        matching = [
            t for t in self.tasks.values() if t.create_time >= oldest and start <= t.create_time < end + 60
        ]
        matching.sort(key=lambda t: t.create_time, reverse=True)
        page = matching[(page_number - 1) * page_size : page_number * page_size]
        return {
            "DBInstanceId": self.config.instance_id,
            "TotalRecordCount": len(matching),
            "PageNumber": page_number,
            "PageRecordCount": len(page),
            "Items": {"MigrateTask": [t.to_api() for t in page]},
        }

    async def describe_migrate_task_by_id(self, params: Params) -> dict[str, Any]:
        self._instance(params)
        task = self._task(params)
        body = task.to_api()
        body["DBInstanceName"] = self.config.instance_id
        return body

    async def describe_oss_downloads(self, params: Params) -> dict[str, Any]:
        self._instance(params)
        task = self._task(params)
        return {
            "DBInstanceId": self.config.instance_id,
            "MigrateTaskId": task.migrate_task_id,
            "Items": {"OssDownload": [f.to_api() for f in task.files]},
        }

    async def describe_databases(self, params: Params) -> dict[str, Any]:
        self._instance(params)
        wanted = params.get("DBName", "").strip()
        databases = await self.facts.user_databases()
        if wanted:
            databases = [d for d in databases if d["DBName"].lower() == wanted.lower()]
        status = params.get("DBStatus", "").strip()
        if status:
            databases = [d for d in databases if d["DBStatus"] == status]
        return {"Databases": {"Database": databases}}

    async def describe_db_instance_attribute(self, params: Params) -> dict[str, Any]:
        self._instance(params)
        attribute = await self.facts.instance_attribute()
        attribute["CreationTime"] = api_time(self.facts.created_at)
        return {"Items": {"DBInstanceAttribute": [attribute]}}
