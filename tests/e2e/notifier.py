"""A notifier for the e2e tests: appends one JSON line per notification to a file, as a real one would
post to Slack or send a mail. Named in a migration config's ``notify:`` like any provider's notifier."""

from __future__ import annotations

import json
from typing import Any

from airflow.sdk.bases.notifier import BaseNotifier


class FileNotifier(BaseNotifier):
    """:param path: the file the notifications are appended to."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def notify(self, context: Any) -> None:
        ti = context.get("ti") or context.get("task_instance")
        line = {
            "task_id": getattr(ti, "task_id", None),
            "state": str(getattr(ti, "state", "")),
            "exception": str(context.get("exception") or ""),
        }
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")
