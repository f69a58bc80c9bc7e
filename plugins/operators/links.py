"""Extra links from a migration task to the Alibaba Cloud consoles.

In Airflow 3 the worker renders links after the task and stores them in XCom, so ``get_link`` can
read the operator's own configuration.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink


class RdsMigrationRecordsLink(BaseOperatorLink):
    """The instance's Backup and Restoration page, where "Cloud Migration Records" are listed."""

    name = "RDS migration records"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        spec = getattr(operator, "migration", None)
        if spec is None:
            return ""
        instance = quote(spec.target.instance_id, safe="")
        region = quote(spec.target.region, safe="")
        return f"https://rdsnext.console.aliyun.com/detail/{instance}/backupRestore?region={region}"


class OssBackupFolderLink(BaseOperatorLink):
    """The OSS console at the folder holding this database's backup files and ledger."""

    name = "OSS backup files"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        spec = getattr(operator, "migration", None)
        if spec is None:
            return ""
        region = quote(spec.target.region, safe="")
        bucket = quote(spec.oss.bucket, safe="")
        prefix = quote((spec.oss.prefix or "").rstrip("/") + "/", safe="")
        return f"https://oss.console.aliyun.com/bucket/oss-{region}/{bucket}/object?path={prefix}"
