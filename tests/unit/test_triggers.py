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
    """Answers a scripted sequence of file states."""

    script: list[str] = []

    def __init__(self, rds_conn_id):
        self.calls = 0

    async def aget_file_states(self, instance_id, migrate_task_id):
        status = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        return (
            []
            if status == "-"
            else [SimpleNamespace(file_name="a.trn", status=status, description="too recent to apply")]
        )

    async def aget_task_state(self, instance_id, migrate_task_id):
        return SimpleNamespace(status="Failed", description="")


@pytest.mark.parametrize(
    ("script", "expected"),
    [(["-", "Downloading", "Restoring", "Restored"], "success"), (["Downloading", "RestoreFailed"], "error")],
)
def test_file_trigger_waits_then_reports(monkeypatch, script, expected):
    import triggers.rds as module

    FakeHook.script = script
    monkeypatch.setattr(module, "RdsMigrationHook", FakeHook)
    trigger = module.MigrationFileTrigger(
        rds_conn_id="rds", instance_id="rm-1", migrate_task_id="42", file_name="a.trn", poll_interval=0.001
    )

    async def first_event():
        async for event in trigger.run():
            return event.payload

    payload = asyncio.run(first_event())
    assert payload["status"] == expected
    if expected == "error":
        assert "too recent" in payload["message"] and payload["advice"]
