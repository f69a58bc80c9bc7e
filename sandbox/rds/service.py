"""The RDS OpenAPI operations of the stand-in, over a simulated target SQL Server instance.

Each operation takes the request parameters (all strings, as on the wire) and returns the JSON body
(without ``RequestId``, which the HTTP layer adds). Validation errors raise :class:`ApiError`
synchronously; restores and opens run in the background (:mod:`sandbox.rds.pipeline`) and are
observed through the Describe operations, like on Alibaba Cloud. Every time comes from the shared
:class:`~sandbox.clock.SandboxClock`, and the state is saved in ``<work_dir>/state.json`` after every
change, so a sandbox started again with the same state dir continues where it stopped.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import dataclasses
import fnmatch
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sandbox.clock import SandboxClock
from sandbox.mssql.results import SqlError
from sandbox.rds import errors
from sandbox.rds.config import RdsConfig
from sandbox.rds.engine_facts import RESERVED_NAMES, EngineFacts
from sandbox.rds.models import FILE_FAILED, TASK_FINAL, BackupFile, MigrateTask, api_time
from sandbox.rds.oss_source import ObjectSource, check_suffix, parse_object_position, resolve
from sandbox.rds.pipeline import MigrationPipeline
from sandbox.rds.quota import ImportQuota
from sandbox.rds.state import read_state, write_state

log = logging.getLogger(__name__)

CHECK_DB_MODES = ("SyncExecuteDBCheck", "AsyncExecuteDBCheck")
#: How many answered calls :attr:`RdsService.answers` keeps.
ANSWERS_KEPT = 10_000
# R1: DescribeMigrateTasks only returns tasks created in the last week, whatever the window asks.
TASK_HISTORY_S = 7 * 24 * 3600
STATE_FILE = "state.json"
Params = dict[str, str]
# RequestId of the API call being handled (per asyncio task, so concurrent calls do not mix).
current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("current_request_id", default="")


@dataclasses.dataclass(frozen=True)
class Answer:
    """One API call as the stand-in answered it: what the client was told (tests read these records).

    :param action: the API name (``CreateMigrateTask``...).
    :param db_name: the call's ``DBName`` parameter ("" without one).
    :param status: the HTTP status of the answer.
    :param code: the error code ("" for a success).
    :param at: sandbox-clock time of the answer (epoch seconds).
    :param injected: the fault that changed the answer of an accepted call ("" for none), e.g.
        ``accept_then_drop``: the client saw the connection close instead of this 200.
    """

    action: str
    db_name: str
    status: int
    code: str
    at: float
    injected: str = ""


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
        raise errors.malformed(name) from None


def _window_time(params: Params, name: str) -> float:
    """``yyyy-MM-ddTHH:mmZ`` (UTC), the only format [META] documents for the window."""
    value = _required(params, name)
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise errors.malformed(name) from None


class RdsService:
    """State and operations of one simulated RDS instance.

    :param config: the instance's configuration.
    :param engine: the target ``sandbox.mssql.engine.Instance`` the backups are restored into.
    :param objects: where ``OssObjectPositions`` are read from (the OSS stand-in's store).
    :param work_dir: folder for downloaded backup files and the state file.
    :param clock: the sandbox clock shared with the other stand-ins (a new one if not given).
    """

    def __init__(
        self,
        config: RdsConfig,
        engine: Any,
        objects: ObjectSource,
        work_dir: Path,
        clock: SandboxClock | None = None,
    ):
        self.config = config
        self.clock = clock or SandboxClock()
        self.faults = config.faults
        self.objects = objects
        self.work_dir = Path(work_dir)
        self.state_file = self.work_dir / STATE_FILE
        self.tasks: dict[str, MigrateTask] = {}
        self.quota = ImportQuota(
            config.max_imports_per_day,
            config.max_imports_per_instance_per_day,
            config.quota_window,
            config.quota_timezone,
            config.daily_quota_code,
            config.quota_window_s,
        )
        now = self.clock.timestamp()
        self._next_task_id = int(now) % 1_000_000 * 10
        self._next_job_id = int(now) % 1_000_000 * 100
        self._client_tokens: dict[str, tuple[list[str], str]] = {}
        #: Called as ``observer(action, details)`` once RDS accepted an import or an open, before the
        #: caller gets the answer (tests, the chaos controller: a worker killed at that very moment).
        self.observers: list[Callable[[str, dict[str, Any]], None]] = []
        self.facts = EngineFacts(engine, config, now)
        self._load()
        self.pipeline = MigrationPipeline(
            engine,
            self.facts,
            objects,
            config.timing,
            self.work_dir,
            config.max_databases,
            self.clock,
            on_change=self.save,
        )
        #: Every answered API call, oldest first (the last :data:`ANSWERS_KEPT`).
        self.answers: collections.deque[Answer] = collections.deque(maxlen=ANSWERS_KEPT)
        self._background: set[asyncio.Task] = set()
        self._task_work: dict[str, set[asyncio.Task]] = {}
        self.operations: dict[str, Callable[[Params], Awaitable[dict[str, Any]]]] = {
            "CreateMigrateTask": self.create_migrate_task,
            "CreateOnlineDatabaseTask": self.create_online_database_task,
            "TerminateMigrateTask": self.terminate_migrate_task,
            "DescribeMigrateTasks": self.describe_migrate_tasks,
            "DescribeMigrateTaskById": self.describe_migrate_task_by_id,
            "DescribeOssDownloads": self.describe_oss_downloads,
            "DescribeDatabases": self.describe_databases,
            "DeleteDatabase": self.delete_database,
            "DescribeDBInstanceAttribute": self.describe_db_instance_attribute,
        }

    # --- persistence --------------------------------------------------------------------------------

    def save(self) -> None:
        """Write the whole state (small: tasks of weeks, two days of quota) atomically."""
        write_state(
            self.state_file,
            {
                "instance_id": self.config.instance_id,
                "clock_offset_s": self.clock.offset.total_seconds(),
                "created_at": self.facts.created_at,
                "next_task_id": self._next_task_id,
                "next_job_id": self._next_job_id,
                "tasks": [task.to_state() for task in self.tasks.values()],
                "imports": self.quota.to_state(),
                "client_tokens": {k: [list(f), r] for k, (f, r) in self._client_tokens.items()},
            },
        )

    def _load(self) -> None:
        state = read_state(self.state_file)
        if state is None:
            return
        if state.get("instance_id") != self.config.instance_id:
            log.warning(
                "%s belongs to instance %s, not %s: starting without it",
                self.state_file,
                state.get("instance_id"),
                self.config.instance_id,
            )
            return
        saved_offset = timedelta(seconds=float(state.get("clock_offset_s", 0)))
        if saved_offset > self.clock.offset:  # time never runs backwards, not even across a restart
            self.clock.advance(saved_offset - self.clock.offset)
        self.facts.created_at = float(state["created_at"])
        self._next_task_id = int(state["next_task_id"])
        self._next_job_id = int(state["next_job_id"])
        self.tasks = {t["migrate_task_id"]: MigrateTask.from_state(t) for t in state.get("tasks", [])}
        self.quota.load(state.get("imports", []))
        self._client_tokens = {k: (list(f), str(r)) for k, (f, r) in state.get("client_tokens", {}).items()}
        log.info("RDS stand-in: %d migration task(s) reloaded from %s", len(self.tasks), self.state_file)

    async def resume(self) -> None:
        """Restart the work a stop interrupted: files in progress are processed again from the start,
        an open that was asked for is done (call once the event loop runs)."""
        for task in self.tasks.values():
            for index, backup_file in enumerate(task.files):
                if backup_file.in_progress and task.status != "Terminated":
                    backup_file.status = "NoStart"
                    first = index == 0 and not task.is_child
                    mode = task.open_mode or "AsyncExecuteDBCheck"
                    self._spawn(
                        self.pipeline.import_file(task, backup_file, first=first, check_db_mode=mode), task
                    )
            pending_open = task.backup_mode == "UPDF" and task.open_mode and not task.opened
            if pending_open and task.status == "Running" and not any(f.in_progress for f in task.files):
                self._spawn(self.pipeline.open_database(task, task.open_mode), task)

    # --- plumbing -----------------------------------------------------------------------------------

    def authorize(self, access_key_id: str, action: str) -> None:
        """RAM: an account with ``permissions`` may call only the actions they match (403 otherwise)."""
        patterns = self.config.permissions.get(access_key_id)
        if patterns is not None and not any(fnmatch.fnmatchcase(action, p) for p in patterns):
            raise errors.forbidden_ram()

    def record_answer(
        self, action: str, params: Params, status: int, code: str = "", *, injected: str = ""
    ) -> None:
        """Keep what a call was answered (see :class:`Answer`)."""
        db_name = params.get("DBName", "")
        self.answers.append(Answer(action, db_name, status, code, self.clock.timestamp(), injected))

    async def call(self, action: str, params: Params, request_id: str) -> dict[str, Any]:
        operation = self.operations.get(action)
        if operation is None:
            raise errors.ApiError(
                404, "InvalidAction.NotFound", "Specified api is not found, please check your url and method."
            )
        current_request_id.set(request_id)
        return await operation(params)

    def _notify(self, action: str, **details: Any) -> None:
        for observer in list(self.observers):
            try:
                observer(action, details)
            except Exception:  # an observer's bug must not fail the API call
                log.exception("RDS stand-in observer failed on %s", action)

    def _spawn(self, coroutine: Awaitable[None], task: MigrateTask | None = None) -> None:
        job = asyncio.ensure_future(coroutine)
        self._background.add(job)
        job.add_done_callback(self._background.discard)
        if task is not None:
            work = self._task_work.setdefault(task.migrate_task_id, set())
            work.add(job)
            job.add_done_callback(work.discard)

    async def aclose(self) -> None:
        """Cancel background work (it is resumed from the state file at the next start); save the
        state once more, with the clock as it is now."""
        for job in list(self._background):
            job.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.pipeline.settle(list(self.tasks))
        self.save()

    async def wait_idle(self) -> None:
        """Wait until no background work is left (tests)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    def _instance(self, params: Params) -> None:
        if _required(params, "DBInstanceId") != self.config.instance_id:
            raise errors.instance_not_found()

    def _running(self, refusal: Callable[[], errors.ApiError]) -> None:
        if self.config.status != "Running":
            raise refusal()

    def _supported(self, action: str) -> None:
        if not self.facts.supports(action):
            raise errors.incorrect_instance_type()

    def _task(self, params: Params) -> MigrateTask:
        task_id = _required(params, "MigrateTaskId")
        task = self.tasks.get(task_id)
        if task is None:
            raise errors.migrate_task_not_found(task_id)
        return task

    def _children(self, task: MigrateTask) -> list[MigrateTask]:
        return [t for t in self.tasks.values() if t.parent_id == task.migrate_task_id]

    def _busy(self, task: MigrateTask) -> bool:
        """The task or one of its child tasks is processing a file or opening the database."""
        return task.busy or any(child.busy for child in self._children(task))

    def _new_id(self) -> str:
        self._next_task_id += 1
        return str(self._next_task_id)

    def _new_job_id(self) -> str:
        self._next_job_id += 1
        return str(self._next_job_id)

    # --- CreateMigrateTask --------------------------------------------------------------------------

    async def create_migrate_task(self, params: Params) -> dict[str, Any]:
        self._instance(params)
        self._running(errors.invalid_instance_state)
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
        positions = params.get("OssObjectPositions", "").strip()
        if not positions:
            if params.get("OSSUrls"):  # [META]: OSSUrls is for SQL Server 2008 R2 only
                raise errors.ApiError(
                    400, "EngineNotSupported", "Engine specified cannot be supported the operation."
                )
            raise errors.bak_files_needed()
        position = parse_object_position(positions)
        check_suffix(position.key)
        if not self.config.oss_authorized:
            raise errors.role_not_exists()
        info = resolve(self.objects, position, self.config.region)
        if info.size > self.config.storage_gb * 1024**3:
            raise errors.exceed_disk_size()
        if info.size > await self.facts.free_storage_bytes(self._pending_bytes()):
            raise errors.file_size_exceeded()

        parent = None
        if params.get("MigrateTaskId"):
            parent = await self._incremental_parent(params, db_name, backup_mode)
        else:
            await self._check_new_database(db_name)
        now = self.clock.timestamp()
        self.quota.check(db_name, now)

        # Accepted from here on: the import counts against the quotas even if it fails later.
        self.quota.record(db_name, now)
        if parent is not None and self.config.incremental_task_id == "same":
            task = parent
        else:
            task = MigrateTask(
                self._new_id(),
                db_name,
                backup_mode,
                now,
                parent_id=parent.migrate_task_id if parent is not None else None,
                open_mode=check_db_mode if backup_mode == "FULL" else None,
            )
            self.tasks[task.migrate_task_id] = task
        backup_file = BackupFile(self._new_job_id(), position.bucket, position.key, info.size, now)
        task.files.append(backup_file)
        self.save()
        failure = self.faults.take_file_failure(position.key) if parent is not None else None
        self._spawn(
            self.pipeline.import_file(
                task, backup_file, first=parent is None, check_db_mode=check_db_mode, failure=failure
            ),
            task,
        )
        self._notify(
            "CreateMigrateTask",
            migrate_task_id=task.migrate_task_id,
            parent_id=parent.migrate_task_id if parent is not None else None,
            db_name=db_name,
            key=position.key,
        )
        return {
            "DBInstanceId": self.config.instance_id,
            "DBName": db_name,
            "MigrateTaskId": task.migrate_task_id,
            "TaskId": backup_file.job_id,
            "BackupMode": backup_mode,
        }

    async def _check_new_database(self, db_name: str) -> None:
        """A full import creates the database: not a system name, not an existing one ([INST])."""
        if db_name.lower() in RESERVED_NAMES:
            raise errors.system_db_name()
        if await self.facts.has_database(db_name):
            raise errors.db_name_not_found()
        if any(t.db_name.lower() == db_name.lower() and self._busy(t) for t in self.tasks.values()):
            raise errors.incorrect_db_state()  # a migration of that name is being restored

    async def _incremental_parent(self, params: Params, db_name: str, backup_mode: str) -> MigrateTask:
        """The task an incremental file joins: UPDF, same database, idle, database still restoring."""
        parent = self._task(params)
        if parent.db_name.lower() != db_name.lower():
            raise errors.db_name_not_found()
        if (
            parent.is_child
            or parent.backup_mode != "UPDF"
            or backup_mode != "UPDF"
            or parent.status in TASK_FINAL
            or parent.opened
        ):
            raise errors.parent_status_invalid()
        if not self.config.reimport_failed_files and any(
            f.status in FILE_FAILED for t in (parent, *self._children(parent)) for f in t.files
        ):
            raise errors.parent_status_invalid()  # a file failed: this task takes no more files
        if self._busy(parent):
            raise errors.incorrect_db_state()  # the previous file is still being processed
        if await self.facts.state_of(db_name) != "RESTORING":
            raise errors.parent_status_invalid()  # the full never restored, or the database was dropped
        return parent

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
        self._running(errors.incorrect_instance_state)
        db_name = _required(params, "DBName")
        task_id = _required(params, "MigrateTaskId")
        check_db_mode = _required(params, "CheckDBMode")
        if check_db_mode not in CHECK_DB_MODES:
            raise errors.invalid_parameter("CheckDBMode", check_db_mode)
        token = params.get("ClientToken", "")
        if len(token) > 64 or not token.isascii():
            raise errors.invalid_parameter("ClientToken", token)
        fingerprint = [db_name, task_id, check_db_mode]
        if token in self._client_tokens:
            seen_fingerprint, request_id = self._client_tokens[token]
            if seen_fingerprint != fingerprint:
                raise errors.idempotent_mismatch()
            return {"RequestId": request_id}  # the original answer, nothing done twice
        task = self._task(params)
        if task.db_name != db_name:
            raise errors.db_name_not_found()
        if self._busy(task):
            raise errors.incorrect_db_state()
        if task.is_child or task.backup_mode != "UPDF" or task.opened or task.status != "Waiting":
            raise errors.parent_status_invalid()
        if await self.facts.state_of(db_name) != "RESTORING":
            raise errors.parent_status_invalid()
        if token:
            self._client_tokens[token] = (fingerprint, current_request_id.get())
        task.status = "Running"
        task.open_mode = check_db_mode
        self.save()
        self._spawn(self.pipeline.open_database(task, check_db_mode), task)
        self._notify("CreateOnlineDatabaseTask", migrate_task_id=task.migrate_task_id, db_name=db_name)
        return {}

    # --- TerminateMigrateTask / DeleteDatabase ------------------------------------------------------

    async def terminate_migrate_task(self, params: Params) -> dict[str, Any]:
        """Stop a migration task and its child tasks: status Terminated, files stop where they are."""
        self._instance(params)
        task = self.tasks.get(_required(params, "MigrateTaskId"))
        if task is None:
            raise errors.terminate_not_found()
        if task.is_child or (task.backup_mode == "UPDF" and not self.config.terminate_updf_tasks):
            raise errors.terminate_task_type()
        if task.status in ("Terminated", "Failed", "Success"):
            raise errors.terminate_task_status(task.status)
        now = self.clock.timestamp()
        family = [task, *self._children(task)]
        for member in family:
            for job in list(self._task_work.get(member.migrate_task_id, ())):
                job.cancel()
            if member is task or member.busy:
                member.status = "Terminated"
                member.description = ""
                member.end_time = now
        self.save()
        log.info("migration task %s of %s terminated", task.migrate_task_id, task.db_name)
        self._spawn(self._after_terminate([m.migrate_task_id for m in family], task.db_name))
        return {}

    async def _after_terminate(self, task_ids: list[str], db_name: str) -> None:
        await self.pipeline.settle(task_ids)  # a RESTORE in the engine runs to its end
        if self.config.terminate_drops_database and await self.facts.state_of(db_name) == "RESTORING":
            try:
                await asyncio.to_thread(self.pipeline.engine.drop_database, db_name)
            except SqlError as exc:
                log.warning("dropping %s after terminate failed: %s", db_name, exc.message)

    async def delete_database(self, params: Params) -> dict[str, Any]:
        self._instance(params)
        self._running(errors.incorrect_instance_state)
        db_name = _required(params, "DBName")
        if db_name.lower() in RESERVED_NAMES:
            raise errors.db_name_forbidden()
        if not await self.facts.has_database(db_name):
            raise errors.db_name_not_found_404()
        mine = [t for t in self.tasks.values() if t.db_name.lower() == db_name.lower()]
        if any(t.busy and t.status != "Terminated" for t in mine):
            raise errors.db_state_forbids_delete()  # a file is being restored or the database opened
        await self.pipeline.settle([t.migrate_task_id for t in mine])
        try:
            await asyncio.to_thread(self.pipeline.engine.drop_database, db_name)
        except (SqlError, KeyError) as exc:
            log.info("DeleteDatabase %s failed: %s", db_name, getattr(exc, "message", exc))
            raise errors.delete_failed() from exc
        log.info("database %s deleted", db_name)
        return {}

    # --- the stand-in's own records (tests) ---------------------------------------------------------

    def import_records(self) -> list[dict[str, Any]]:
        """Every import RDS accepted, oldest first: one per file entry of every task, with its outcome.

        What tests count "imported exactly once" from: the service's own state, not what the API shows.
        """
        records = [
            {
                "migrate_task_id": task.migrate_task_id,
                "parent_id": task.parent_id,
                "db_name": task.db_name,
                "job_id": f.job_id,
                "key": f.key,
                "file_name": f.file_name,
                "create_time": f.create_time,
                "status": f.status,
                "description": f.description,
            }
            for task in list(self.tasks.values())  # copies: another thread may read while the loop works
            for f in list(task.files)
        ]
        return sorted(records, key=lambda r: (r["create_time"], int(r["job_id"])))

    # --- Describe* ----------------------------------------------------------------------------------

    async def describe_migrate_tasks(self, params: Params) -> dict[str, Any]:
        self._instance(params)
        self._running(errors.invalid_instance_state)
        self._supported("DescribeMigrateTasks")
        start = _window_time(params, "StartTime")
        end = _window_time(params, "EndTime")
        if end <= start:
            raise errors.window_malformed()
        page_size = min(max(_int_param(params, "PageSize", 30), 30), 100)
        page_number = max(_int_param(params, "PageNumber", 1), 1)
        oldest = self.clock.timestamp() - TASK_HISTORY_S
        # EndTime has minute precision: include the whole minute it names.
        matching = [
            t for t in self.tasks.values() if t.create_time >= oldest and start <= t.create_time < end + 60
        ]
        matching.sort(key=lambda t: (t.create_time, int(t.migrate_task_id)), reverse=True)
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
        self._running(errors.invalid_instance_state)
        body = self._task(params).to_api()
        body["DBInstanceName"] = self.config.instance_id
        return body

    async def describe_oss_downloads(self, params: Params) -> dict[str, Any]:
        self._instance(params)
        self._supported("DescribeOssDownloads")
        task = self._task(params)
        self._expire_restored_files(task)
        style = self.config.file_name_style
        return {
            "DBInstanceId": self.config.instance_id,
            "MigrateTaskId": task.migrate_task_id,
            "Items": {"OssDownload": [f.to_api(style) for f in task.files]},
        }

    def _expire_restored_files(self, task: MigrateTask) -> None:
        """R10: RDS removes its copy of a restored file after a while; the file then reads Deleted."""
        after = self.config.timing.delete_restored_files_after_s
        if after is None:
            return
        now = self.clock.timestamp()
        expired = [
            f
            for f in task.files
            if f.status == "Restored" and f.end_time is not None and now - f.end_time >= after
        ]
        for backup_file in expired:
            backup_file.status = "Deleted"
        if expired:
            self.save()

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
