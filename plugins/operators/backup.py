"""Take a backup on the source and upload it to OSS (seed steps 1 and 2)."""

from __future__ import annotations

import time
from typing import Any

from operators.base import MigrationOperator
from rds_migration.chain import BackupRecord


class BackupOperator(MigrationOperator):
    """Back up the source database to the backup folder and return the msdb record.

    The file name derives from the DAG run, so a retried task finds its own backup in msdb and does
    not take a second one.

    :param kind: ``FULL`` (starts the migration). Log backups are taken by the log-shipping and cutover
        tasks themselves.
    """

    template_fields = ("kind",)

    def __init__(self, *, kind: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kind = kind

    def execute(self, context: Any) -> dict[str, Any]:
        kind = self.kind.upper()
        if kind != "FULL":
            raise ValueError(
                f"BackupOperator kind {self.kind!r}: use FULL (log backups ship in ship_logs and cutover)"
            )
        name = self.steps.full_backup_name(context["dag_run"].run_after)
        started = time.monotonic()
        last_logged = [0.0]

        def on_progress(percent: float, elapsed: float) -> None:
            if elapsed - last_logged[0] >= 10 or percent >= 100:
                last_logged[0] = elapsed
                self.log.info("%s backup %s: %.0f%% after %.0f s", kind, name, percent, elapsed)

        record = self.steps.take_backup(kind, name, on_progress=on_progress)
        self.log.info(
            "%s backup %s: %.1f MB, LSN [%s, %s) in %.1f s",
            kind,
            record.file_name,
            record.size_bytes / 1e6,
            record.first_lsn,
            record.last_lsn,
            time.monotonic() - started,
        )
        return record.to_dict()


class UploadBackupOperator(MigrationOperator):
    """Upload the backup file an upstream :class:`BackupOperator` returned, verified by CRC64.

    Nothing is sent again when OSS already holds the object with the same size and CRC64, and an
    interrupted multipart upload resumes from its checkpoint.

    :param backup_task_id: the task whose XCom holds the backup record.
    """

    template_fields = ("backup_task_id",)

    def __init__(self, *, backup_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backup_task_id = backup_task_id

    def execute(self, context: Any) -> dict[str, Any]:
        data = context["ti"].xcom_pull(task_ids=self.backup_task_id)
        if not data:
            raise ValueError(f"no backup record in the XCom of task {self.backup_task_id!r}")
        record = BackupRecord.from_dict(data)
        result = self.steps.upload(record)
        if result["skipped"]:
            self.log.info("%s already in OSS with the same size and CRC64: nothing sent.", record.file_name)
        else:
            self.log.info(
                "Uploaded %s (%.1f MB) in %.1f s", record.file_name, result["size"] / 1e6, result["seconds"]
            )
        return result
