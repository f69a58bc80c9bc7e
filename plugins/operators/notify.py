"""Notifications: who is told when the approval is needed, when a task fails and when a cutover rolls back.

Airflow's notifier mechanism (``BaseNotifier``) is used as is, so any provider's notifier (Slack, SMTP,
Teams...) can be named in the config. The class is imported when a notification is sent, not when the
DAG file is parsed, so a notifier's provider costs nothing at parse time. A log-only notifier is always
there: the task log is the audit trail of record.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from airflow.sdk.bases.notifier import BaseNotifier

from rds_migration.config import MigrationSpec, NotifierSettings

log = logging.getLogger(__name__)


def _summary(context: Any, what: str) -> str:
    ti = context.get("ti") or context.get("task_instance")
    where = f"{ti.dag_id} / {ti.run_id} / {ti.task_id}" if ti is not None else "?"
    error = context.get("exception")
    return f"{what}: {where}" + (f" — {error}" if error else "")


class LogNotifier(BaseNotifier):
    """Writes one WARNING line to the log of the task it runs for.

    :param what: what happened, e.g. ``"cutover approval needed"``.
    """

    template_fields = ("what",)

    def __init__(self, what: str = "task failed") -> None:
        super().__init__()
        self.what = what

    def notify(self, context: Any) -> None:
        log.warning("NOTIFY %s", _summary(context, self.what))


class ConfiguredNotifier(BaseNotifier):
    """A notifier named in the config (dotted class path and arguments), built when it is used.

    :param settings: the ``notify`` entry of the migration config.
    """

    def __init__(self, settings: NotifierSettings) -> None:
        super().__init__()
        self.settings = settings

    def _build(self) -> BaseNotifier:
        module_name, _, class_name = self.settings.class_.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as error:
            raise ValueError(
                f"notify: cannot import {self.settings.class_!r} ({error}): install the provider that has it "
                "or fix the class path in the migration config"
            ) from error
        if not (isinstance(cls, type) and issubclass(cls, BaseNotifier)):
            raise ValueError(f"notify: {self.settings.class_!r} is not an Airflow notifier (BaseNotifier)")
        return cls(**self.settings.kwargs)

    def notify(self, context: Any) -> None:
        # A broken notifier must not hide the failure it reports: log it and go on.
        try:
            self._build()(context)
        except Exception as error:  # noqa: BLE001 - reported, never raised from a callback
            log.error("Notifier %s failed: %s", self.settings.class_, error)


def notifiers_for(spec: MigrationSpec, what: str) -> list[BaseNotifier]:
    """The log notifier plus every notifier the config names, for one kind of event."""
    return [LogNotifier(what), *(ConfiguredNotifier(settings) for settings in spec.notify)]
