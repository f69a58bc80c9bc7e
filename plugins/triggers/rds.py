"""Triggers that wait on an RDS migration task or on one of its backup files.

They serialize primitives only, rebuild their hook inside ``run()``, and *report* failures as
events (the operator's ``execute_complete`` raises), as the Amazon provider's triggers do. The
import path ``triggers.rds.<Class>`` is part of their serialized form: keep it stable.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from hooks.rds import (
    FILE_FAILURE_STATES,
    FILE_SUCCESS_STATES,
    TASK_FAILURE_STATES,
    TASK_TERMINATED_STATES,
    RdsMigrationHook,
    file_matches,
)
from hooks.rds_errors import TERMINATED_ADVICE, advice_for


def _task_error(task: Any, **fields: Any) -> TriggerEvent:
    """The error event of a failed or terminated task."""
    terminated = task.status in TASK_TERMINATED_STATES
    message = "the migration task was terminated" if terminated else (task.description or "")
    return TriggerEvent(
        {
            "status": "error",
            "task_status": task.status,
            "message": message,
            "advice": TERMINATED_ADVICE if terminated else advice_for(task.description or ""),
            **fields,
        }
    )


class _RdsWaitTrigger(BaseTrigger):
    """Common fields of the RDS waits: connection, instance, migration task and poll interval."""

    def __init__(
        self, *, rds_conn_id: str, instance_id: str, migrate_task_id: str, poll_interval: float = 15.0
    ) -> None:
        super().__init__()
        self.rds_conn_id = rds_conn_id
        self.instance_id = instance_id
        self.migrate_task_id = migrate_task_id
        self.poll_interval = poll_interval

    def _fields(self) -> dict[str, Any]:
        return {
            "rds_conn_id": self.rds_conn_id,
            "instance_id": self.instance_id,
            "migrate_task_id": self.migrate_task_id,
            "poll_interval": self.poll_interval,
        }


class MigrationFileTrigger(_RdsWaitTrigger):
    """Wait until RDS reports ``file_name`` restored for ``migrate_task_id`` (or failed).

    The file is matched by its last path segment (RDS may list bare names or whole keys, R10); its
    latest entry counts, and ``Deleted`` after a restore still counts as restored. While the file is
    not done, the task is read too, so a terminated task ends the wait.

    :param rds_conn_id: Airflow connection of the RDS OpenAPI.
    :param instance_id: RDS instance id.
    :param migrate_task_id: the task the import answered (the parent, or a child task id, R4).
    :param file_name: the backup file's name or object key.
    :param poll_interval: seconds between two polls.
    """

    def __init__(self, *, file_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.file_name = file_name

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("triggers.rds.MigrationFileTrigger", {**self._fields(), "file_name": self.file_name})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = RdsMigrationHook(rds_conn_id=self.rds_conn_id)
        while True:
            files = await hook.aget_file_states(self.instance_id, self.migrate_task_id)
            matching = [f for f in files if file_matches(f, self.file_name)]
            current = matching[-1] if matching else None
            status = current.status if current else "NotListedYet"
            self.log.info("RDS file %s of task %s: %s", self.file_name, self.migrate_task_id, status)
            if current is not None and current.status in FILE_SUCCESS_STATES:
                yield TriggerEvent({"status": "success", "file_name": self.file_name, "file_status": status})
                return
            task = await hook.aget_task_state(self.instance_id, self.migrate_task_id)
            if current is not None and current.status in FILE_FAILURE_STATES:
                description = current.description or task.description or ""
                yield TriggerEvent(
                    {
                        "status": "error",
                        "file_name": self.file_name,
                        "file_status": status,
                        "message": description,
                        "advice": advice_for(description),
                    }
                )
                return
            # Only a terminated task is final here: a task may still read Failed (an earlier file) while
            # RDS has not started on this one.
            if task.status in TASK_TERMINATED_STATES:
                yield _task_error(task, file_name=self.file_name, file_status=status)
                return
            await asyncio.sleep(self.poll_interval)


class MigrationTaskTrigger(_RdsWaitTrigger):
    """Wait until the migration task's Status is one of ``target_states`` (or a failure state).

    :param rds_conn_id: Airflow connection of the RDS OpenAPI.
    :param instance_id: RDS instance id.
    :param migrate_task_id: the migration task to watch.
    :param target_states: statuses that end the wait successfully (e.g. ``["Success"]`` after open).
    :param poll_interval: seconds between two DescribeMigrateTaskById calls.
    """

    def __init__(self, *, target_states: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target_states = list(target_states)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("triggers.rds.MigrationTaskTrigger", {**self._fields(), "target_states": self.target_states})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = RdsMigrationHook(rds_conn_id=self.rds_conn_id)
        while True:
            task = await hook.aget_task_state(self.instance_id, self.migrate_task_id)
            self.log.info("RDS migration task %s: %s", self.migrate_task_id, task.status)
            if task.status in self.target_states:
                yield TriggerEvent({"status": "success", "task_status": task.status})
                return
            if task.status in TASK_FAILURE_STATES:  # Failed, or Terminated (never resumes)
                yield _task_error(task)
                return
            await asyncio.sleep(self.poll_interval)
