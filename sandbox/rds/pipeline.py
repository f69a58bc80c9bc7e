"""Background work of a migration: download, verify and restore each file; open the database.

A file moves NoStart -> Downloading -> Finished -> CheckSuccess -> Restoring -> Restored, or stops at
DownloadFailed / VerifyFailed / CheckFailed / RestoreFailed with the reason in its Description (for
restores, SQL Server's own error text). The task follows: Running while a file is processed, Waiting
(Access Pending, ready for the next file) or Success (opened), Failed with a Description. A child task
(``incremental_task_id: child``) holds one incremental file: Success once it is restored, Failed if not;
its parent stays Waiting.

Every change is reported through ``on_change`` (the service persists its state), and every engine call
runs as a future of its task that :meth:`MigrationPipeline.settle` can wait for: cancelling a task's
coroutine (TerminateMigrateTask) cannot stop a RESTORE already running in the engine.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandbox.clock import SandboxClock
from sandbox.mssql.results import SqlError
from sandbox.rds.config import TimingConfig
from sandbox.rds.engine_facts import EngineFacts
from sandbox.rds.models import BACKUP_MODES, BackupFile, MigrateTask
from sandbox.rds.oss_source import ObjectSource

log = logging.getLogger(__name__)

_CHECKDB_TABLE_SUMMARY = re.compile(
    r"CHECKDB found \d+ allocation errors and \d+ consistency errors in table .*"
)
_OBJECT_ID = re.compile(r"Object ID (\d+)")
_MB = 1024 * 1024


class FileFailure(Exception):
    """A file stops in a failed status; ``description`` is shown on the file and its task."""

    def __init__(self, status: str, description: str):
        super().__init__(description)
        self.status = status
        self.description = description


def checkdb_summary(engine: Any, database: str, messages: list[str]) -> str:
    """The 'CHECKDB found ...' sentence RDS reports for a failed consistency check.

    Uses the engine's own summary line if it printed one; otherwise counts the error messages and
    names the damaged table from the object id they mention (blocking: call it off the loop).
    """
    for message in messages:
        match = _CHECKDB_TABLE_SUMMARY.search(message)
        if match:
            return match.group(0).strip()
    count = len(messages)
    for object_id in sorted({int(i) for m in messages for i in _OBJECT_ID.findall(m)} - {0}):
        table = _table_name(engine, database, object_id)
        if table is not None:
            return (
                f"CHECKDB found 0 allocation errors and {count} consistency errors in table '{table}' "
                f"(object ID {object_id})."
            )
    return f"CHECKDB found 0 allocation errors and {count} consistency errors in database '{database}'."


def _table_name(engine: Any, database: str, object_id: int) -> str | None:
    try:
        table = engine.database(database).find_object(object_id)
    except (AttributeError, SqlError):
        return None
    return None if table is None else table.name


class MigrationPipeline:
    """Runs the imports and opens of migration tasks against the target engine.

    :param engine: the target ``sandbox.mssql.engine.Instance``.
    :param facts: engine facts (database count for the instance's database limit).
    :param objects: the OSS object source.
    :param timing: delays and transfer rates.
    :param work_dir: where downloaded files are kept while they are restored.
    :param max_databases: the instance's database count limit.
    :param clock: the sandbox clock (CreateTime/EndTime).
    :param on_change: called after every status change.
    """

    def __init__(
        self,
        engine: Any,
        facts: EngineFacts,
        objects: ObjectSource,
        timing: TimingConfig,
        work_dir: Path,
        max_databases: int,
        clock: SandboxClock,
        on_change: Callable[[], None] = lambda: None,
    ):
        self.engine = engine
        self.facts = facts
        self.objects = objects
        self.timing = timing
        self.work_dir = Path(work_dir)
        self.max_databases = max_databases
        self.clock = clock
        self.on_change = on_change
        self._engine_work: dict[str, set[asyncio.Future]] = {}

    async def _engine(self, task: MigrateTask, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking engine call in a thread, as work of ``task`` that outlives a cancellation."""
        future = asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args, **kwargs))
        work = self._engine_work.setdefault(task.migrate_task_id, set())
        work.add(future)
        future.add_done_callback(work.discard)
        return await asyncio.shield(future)

    async def settle(self, task_ids: list[str]) -> None:
        """Wait until no engine call of these tasks runs any more (their outcome is ignored)."""
        futures = [f for task_id in task_ids for f in self._engine_work.get(task_id, ())]
        await asyncio.gather(*futures, return_exceptions=True)

    async def _pause(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))

    def _transfer_time(self, size: int, mb_per_s: float) -> float:
        return size / _MB / mb_per_s if mb_per_s > 0 else 0.0

    # --- importing a file ---------------------------------------------------------------------------

    async def import_file(
        self,
        task: MigrateTask,
        backup_file: BackupFile,
        *,
        first: bool,
        check_db_mode: str,
        failure: str | None = None,
    ) -> None:
        """Download, verify and restore one file; a FULL-mode task is then opened.

        :param failure: an injected fault (``FaultConfig.file_failure_rate``): ``download_failed`` or
            ``restore_failed`` stops the file there, as a broken transfer or an I/O error would.
        """
        task.status = "Running"
        task.description = ""
        self.on_change()
        try:
            await self._download(task, backup_file)
            if failure == "download_failed":
                raise FileFailure(
                    "DownloadFailed",
                    f"Failed to download {backup_file.file_name}: the transfer from OSS was interrupted.",
                )
            header = await self._verify(task, backup_file, first)
            if failure == "restore_failed":
                await self._pause(self.timing.step_delay_s)
                backup_file.status = "Restoring"
                self.on_change()
                # SQL Server's message 3203 for a read that failed with OS error 1117 (I/O device error).
                raise FileFailure(
                    "RestoreFailed",
                    f'Read on "{backup_file.file_name}" failed: 1117(The request could not be performed '
                    "because of an I/O device error.)",
                )
            await self._restore(task, backup_file, header)
        except FileFailure as failure:
            self._fail_file(task, backup_file, failure)
            return
        finally:
            if backup_file.local_path is not None:
                backup_file.local_path.unlink(missing_ok=True)
        if task.backup_mode == "FULL":
            await self.open_database(task, check_db_mode)
        elif task.is_child:
            self._finish(task, "Success", "")
        else:
            task.status = "Waiting"
            self.on_change()

    async def _download(self, task: MigrateTask, backup_file: BackupFile) -> None:
        await self._pause(self.timing.step_delay_s)
        backup_file.status = "Downloading"
        self.on_change()
        await self._pause(self._transfer_time(backup_file.size_bytes, self.timing.download_mb_per_s))
        source = self.objects.data_path(backup_file.bucket, backup_file.key)
        if source is None:
            raise FileFailure(
                "DownloadFailed",
                f"Failed to download {backup_file.file_name}: the object {backup_file.key} no longer "
                f"exists in bucket {backup_file.bucket}.",
            )
        target = self.work_dir / task.migrate_task_id / f"{backup_file.job_id}_{backup_file.file_name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            await asyncio.to_thread(shutil.copyfile, source, target)
        except OSError as exc:
            raise FileFailure(
                "DownloadFailed", f"Failed to download {backup_file.file_name}: {exc.strerror}."
            ) from exc
        backup_file.local_path = target
        backup_file.status = "Finished"
        self.on_change()

    async def _verify(self, task: MigrateTask, backup_file: BackupFile, first: bool) -> dict[str, Any]:
        await self._pause(self.timing.step_delay_s)
        try:
            header = await self._engine(task, self.engine.read_backup_header, backup_file.local_path)
        except SqlError as exc:
            raise FileFailure("VerifyFailed", exc.message) from exc
        backup_type = int(header.get("BackupType", 0))
        backup_file.backup_mode = BACKUP_MODES.get(backup_type, "")
        if not first and backup_type == 1:
            raise FileFailure(
                "CheckFailed",
                f"Backup set ({backup_file.file_name}) is a Database FULL backup, "
                "we only accept transaction log or differential backup.",
            )
        if first and await self.facts.user_database_count() >= self.max_databases:
            raise FileFailure(
                "CheckFailed",
                f"The database ({task.db_name}) migration failed due to databases count limitation.",
            )
        backup_file.status = "CheckSuccess"
        self.on_change()
        return header

    async def _restore(self, task: MigrateTask, backup_file: BackupFile, header: dict[str, Any]) -> None:
        await self._pause(self.timing.step_delay_s)
        backup_file.status = "Restoring"
        self.on_change()
        await self._pause(self._transfer_time(backup_file.size_bytes, self.timing.restore_mb_per_s))
        try:
            # Always WITH NORECOVERY: Access Pending keeps the database restoring; FULL mode opens it next.
            await self._engine(
                task, self.engine.restore_file, task.db_name, backup_file.local_path, recovery=False
            )
        except SqlError as exc:
            raise FileFailure("RestoreFailed", exc.message) from exc
        backup_file.status = "Restored"
        backup_file.end_time = self.clock.timestamp()
        self.on_change()
        log.info(
            "restored %s into %s (task %s, LSN %s-%s)",
            backup_file.file_name,
            task.db_name,
            task.migrate_task_id,
            header.get("FirstLSN"),
            header.get("LastLSN"),
        )

    def _fail_file(self, task: MigrateTask, backup_file: BackupFile, failure: FileFailure) -> None:
        now = self.clock.timestamp()
        backup_file.status = failure.status
        backup_file.description = failure.description
        backup_file.end_time = now
        task.status = "Failed"
        task.description = failure.description
        task.end_time = now
        self.on_change()
        log.info("task %s file %s: %s", task.migrate_task_id, backup_file.file_name, failure.status)

    # --- opening the database -----------------------------------------------------------------------

    async def open_database(self, task: MigrateTask, check_db_mode: str) -> None:
        """RESTORE WITH RECOVERY, with DBCC CHECKDB before (sync) or after (async) the open."""
        await self._pause(self.timing.open_delay_s)
        try:
            await self._engine(task, self.engine.recover_database, task.db_name)
        except SqlError as exc:
            # RDS reports only this sentence; the engine's reason goes to the log.
            log.info("opening %s failed: %s", task.db_name, exc.message)
            self._finish(task, "Failed", f"Failed to open database {task.db_name}.")
            return
        task.opened = True
        self.on_change()
        if check_db_mode == "SyncExecuteDBCheck":
            summary = await self._checkdb(task)
            self._finish(
                task, *(("Failed", f"DBCC checkdb failed: {summary}") if summary else ("Success", ""))
            )
            return
        self._finish(task, "Success", "")
        summary = await self._checkdb(task)
        if summary:
            self._finish(task, "Failed", f"asynchronously DBCC checkdb failed: {summary}")

    async def _checkdb(self, task: MigrateTask) -> str | None:
        """DBCC CHECKDB on the opened database: None when clean, else the summary sentence."""
        await self._pause(self.timing.checkdb_delay_s)

        def check() -> str | None:
            try:
                problems = list(self.engine.checkdb(task.db_name))
            except SqlError as exc:
                problems = [exc.message]
            return checkdb_summary(self.engine, task.db_name, problems) if problems else None

        return await self._engine(task, check)

    def _finish(self, task: MigrateTask, status: str, description: str) -> None:
        task.status = status
        task.description = description
        task.end_time = self.clock.timestamp()
        self.on_change()
