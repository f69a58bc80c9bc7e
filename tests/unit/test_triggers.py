"""Triggers serialize to primitives under a stable import path, and only wait (narrow: fake hook).

Their real use (against the RDS stand-in, inline in dag.test() and across processes in make demo)
is covered by tests/e2e.
"""

from __future__ import annotations

import asyncio
import importlib
from types import SimpleNamespace

import pytest


def roundtrip(trigger):
    path, kwargs = trigger.serialize()
    module, name = path.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (path, kwargs)
    assert all(isinstance(v, (str, int, float, list)) for v in kwargs.values())
    return path


def test_serialize_roundtrip_with_stable_paths():
    from triggers.rds import MigrationFileTrigger, MigrationTaskTrigger

    common = {"rds_conn_id": "rds", "instance_id": "rm-1", "migrate_task_id": "42", "poll_interval": 0.01}
    assert roundtrip(MigrationFileTrigger(file_name="a.trn", **common)) == "triggers.rds.MigrationFileTrigger"
    assert (
        roundtrip(MigrationTaskTrigger(target_states=["Success"], **common))
        == "triggers.rds.MigrationTaskTrigger"
    )


class FakeHook:
    """Answers scripted file states (``-`` = not listed yet) and task states, one per poll."""

    script: list[str] = []
    tasks: list[str] = ["Running"]
    listed_name = "a.trn"

    def __init__(self, rds_conn_id):
        self.calls = 0
        self.task_calls = 0

    async def aget_file_states(self, instance_id, migrate_task_id):
        status = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        return (
            []
            if status == "-"
            else [
                SimpleNamespace(file_name=self.listed_name, status=status, description="too recent to apply")
            ]
        )

    async def aget_task_state(self, instance_id, migrate_task_id):
        status = self.tasks[min(self.task_calls, len(self.tasks) - 1)]
        self.task_calls += 1
        return SimpleNamespace(status=status, description="")


def _first_event(monkeypatch, trigger_cls, script, tasks=("Running",), listed_name="a.trn", **kwargs):
    import triggers.rds as module

    FakeHook.script, FakeHook.tasks, FakeHook.listed_name = list(script), list(tasks), listed_name
    monkeypatch.setattr(module, "RdsMigrationHook", FakeHook)
    trigger = getattr(module, trigger_cls)(
        rds_conn_id="rds", instance_id="rm-1", migrate_task_id="42", poll_interval=0.001, **kwargs
    )

    async def first():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(first())


@pytest.mark.parametrize(
    ("script", "tasks", "expected"),
    [
        (["-", "Downloading", "Restoring", "Restored"], ["Running"], "success"),
        (["Downloading", "RestoreFailed"], ["Running", "Failed"], "error"),
        (["Restoring", "Deleted"], ["Running"], "success"),  # RDS removed its copy after the restore
        (["-", "-", "Restored"], ["Failed"], "success"),  # Failed from an earlier file: keep waiting
    ],
)
def test_file_trigger_waits_then_reports(monkeypatch, script, tasks, expected):
    payload = _first_event(monkeypatch, "MigrationFileTrigger", script, tasks, file_name="a.trn")
    assert payload["status"] == expected
    if expected == "error":
        assert "too recent" in payload["message"] and payload["advice"]


def test_file_trigger_matches_a_full_key(monkeypatch):
    """R10: RDS may list the whole object key; the trigger compares last path segments."""
    payload = _first_event(
        monkeypatch,
        "MigrationFileTrigger",
        ["Restored"],
        listed_name="backups/Sales/a.trn",
        file_name="a.trn",
    )
    assert payload["status"] == "success"


def test_file_trigger_ends_when_the_task_is_terminated(monkeypatch):
    from hooks.rds_errors import TERMINATED_ADVICE

    payload = _first_event(
        monkeypatch, "MigrationFileTrigger", ["Restoring"], ["Running", "Terminated"], file_name="a.trn"
    )
    assert (payload["status"], payload["task_status"], payload["advice"]) == (
        "error",
        "Terminated",
        TERMINATED_ADVICE,
    )


def test_task_trigger_ends_when_the_task_is_terminated(monkeypatch):
    from hooks.rds_errors import TERMINATED_ADVICE

    payload = _first_event(
        monkeypatch, "MigrationTaskTrigger", [], ["Running", "Terminated"], target_states=["Success"]
    )
    assert (payload["status"], payload["task_status"], payload["advice"]) == (
        "error",
        "Terminated",
        TERMINATED_ADVICE,
    )
    assert "terminated" in payload["message"]


def test_task_trigger_success(monkeypatch):
    payload = _first_event(
        monkeypatch, "MigrationTaskTrigger", [], ["Running", "Success"], target_states=["Success"]
    )
    assert payload == {"status": "success", "task_status": "Success"}
