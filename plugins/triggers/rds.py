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
    RdsMigrationHook,
)
from hooks.rds_errors import advice_for


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

    :param rds_conn_id: Airflow connection of the RDS OpenAPI.
    :param instance_id: RDS instance id.
    :param migrate_task_id: the migration task the file was imported into.
    :param file_name: the backup file name as RDS lists it.
    :param poll_interval: seconds between two DescribeOssDownloads calls.
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
            current = next((f for f in files if f.file_name == self.file_name), None)
            status = current.status if current else "NotListedYet"
            self.log.info("RDS file %s of task %s: %s", self.file_name, self.migrate_task_id, status)
            if current is not None and current.status in FILE_SUCCESS_STATES:
                yield TriggerEvent({"status": "success", "file_name": self.file_name, "file_status": status})
                return
            if current is not None and current.status in FILE_FAILURE_STATES:
                task = await hook.aget_task_state(self.instance_id, self.migrate_task_id)
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
            if task.status in TASK_FAILURE_STATES:
                yield TriggerEvent(
                    {
                        "status": "error",
                        "task_status": task.status,
                        "message": task.description or "",
                        "advice": advice_for(task.description or ""),
                    }
                )
                return
            await asyncio.sleep(self.poll_interval)
