"""Migration tasks and their backup files, how the API presents them, and how they are persisted."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# File statuses (DescribeOssDownloads) and task statuses (DescribeMigrateTasks), as the API names them.
FILE_IN_PROGRESS = ("NoStart", "Downloading", "Finished", "CheckSuccess", "Restoring")
FILE_FAILED = ("DownloadFailed", "VerifyFailed", "CheckFailed", "RestoreFailed")
TASK_ACTIVE = ("NoStart", "Running")
#: A task in one of these states takes no more work (R3: Terminated comes from TerminateMigrateTask).
TASK_FINAL = ("Success", "Terminated")

# RESTORE HEADERONLY BackupType -> DescribeOssDownloads BackupMode.
BACKUP_MODES = {1: "Database", 5: "Differential_Database", 2: "Transaction_Log"}


def api_time(epoch: float | None, *, seconds: bool = True) -> str:
    """UTC time as the API writes it: ``yyyy-MM-ddTHH:mm:ssZ``."""
    if epoch is None:
        return ""
    fmt = "%Y-%m-%dT%H:%M:%SZ" if seconds else "%Y-%m-%dT%H:%MZ"
    return datetime.fromtimestamp(epoch, UTC).strftime(fmt)


@dataclasses.dataclass
class BackupFile:
    """One backup file imported into a migration task (a row of DescribeOssDownloads)."""

    job_id: str
    bucket: str
    key: str
    size_bytes: int
    create_time: float
    status: str = "NoStart"
    backup_mode: str = ""
    description: str = ""
    end_time: float | None = None
    # Where the downloaded copy lies while it is restored (not persisted).
    local_path: Path | None = dataclasses.field(default=None, compare=False)

    @property
    def file_name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def in_progress(self) -> bool:
        return self.status in FILE_IN_PROGRESS

    def to_api(self, file_name_style: str = "name") -> dict[str, str]:
        return {
            # R10: whether FileName is the bare name or the whole key is UNKNOWN (a config switch).
            "FileName": self.key if file_name_style == "key" else self.file_name,
            "FileSize": f"{self.size_bytes / 1048576:.2f}",
            "BackupMode": self.backup_mode,
            # [META]: "IsAvailable ... True | False"; a file is usable once restored, not once deleted.
            "IsAvailable": "True" if self.status == "Restored" else "False",
            "Status": self.status,
            "CreateTime": api_time(self.create_time),
            "EndTime": api_time(self.end_time),
            "Description": self.description,
        }

    def to_state(self) -> dict[str, Any]:
        state = dataclasses.asdict(self)
        state.pop("local_path")
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BackupFile:
        return cls(**state)


@dataclasses.dataclass
class MigrateTask:
    """A migration task: the first file plus the incremental files imported into it.

    With ``incremental_task_id: child`` every incremental import is a task of its own whose
    ``parent_id`` is the full's task; its one file lives there, not on the parent.
    """

    migrate_task_id: str
    db_name: str
    backup_mode: str  # FULL or UPDF
    create_time: float
    status: str = "NoStart"
    description: str = ""
    end_time: float | None = None
    parent_id: str | None = None
    files: list[BackupFile] = dataclasses.field(default_factory=list)
    # CreateOnlineDatabaseTask: the CheckDBMode asked for (None = not asked), and whether it opened.
    open_mode: str | None = None
    opened: bool = False

    @property
    def is_child(self) -> bool:
        return self.parent_id is not None

    @property
    def busy(self) -> bool:
        return any(f.in_progress for f in self.files) or self.status in TASK_ACTIVE

    def to_api(self) -> dict[str, str]:
        return {
            "MigrateTaskId": self.migrate_task_id,
            "DBName": self.db_name,
            "BackupMode": self.backup_mode,
            "Status": self.status,
            "IsDBReplaced": "False",
            "CreateTime": api_time(self.create_time),
            "EndTime": api_time(self.end_time),
            "Description": self.description,
        }

    def to_state(self) -> dict[str, Any]:
        state = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "files"}
        state["files"] = [f.to_state() for f in self.files]
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> MigrateTask:
        state = dict(state)
        files = [BackupFile.from_state(f) for f in state.pop("files", [])]
        return cls(**state, files=files)
