"""Migration tasks and their backup files, and how the API presents them."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from pathlib import Path

# File statuses (DescribeOssDownloads) and task statuses (DescribeMigrateTasks), as the API names them.
FILE_IN_PROGRESS = ("NoStart", "Downloading", "Finished", "CheckSuccess", "Restoring")
FILE_FAILED = ("DownloadFailed", "VerifyFailed", "CheckFailed", "RestoreFailed")
TASK_ACTIVE = ("NoStart", "Running")

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
    status: str = "NoStart"
    backup_mode: str = ""
    description: str = ""
    create_time: float = dataclasses.field(default_factory=time.time)
    end_time: float | None = None
    local_path: Path | None = None

    @property
    def file_name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    def to_api(self) -> dict[str, str]:
        return {
            "FileName": self.file_name,
            "FileSize": f"{self.size_bytes / 1048576:.2f}",
            "BackupMode": self.backup_mode,
            "IsAvailable": "1" if self.status == "Restored" else "0",
            "Status": self.status,
            "CreateTime": api_time(self.create_time),
            "EndTime": api_time(self.end_time),
            "Description": self.description,
        }


@dataclasses.dataclass
class MigrateTask:
    """A migration task: the first file plus the incremental files imported into it."""

    migrate_task_id: str
    db_name: str
    backup_mode: str  # FULL or UPDF
    status: str = "NoStart"
    description: str = ""
    create_time: float = dataclasses.field(default_factory=time.time)
    end_time: float | None = None
    files: list[BackupFile] = dataclasses.field(default_factory=list)
    # Set once CreateOnlineDatabaseTask was accepted: {client_token or "": check_db_mode}.
    online_requests: dict[str, str] = dataclasses.field(default_factory=dict)
    opened: bool = False

    @property
    def busy(self) -> bool:
        return any(f.status in FILE_IN_PROGRESS for f in self.files) or self.status in TASK_ACTIVE

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
