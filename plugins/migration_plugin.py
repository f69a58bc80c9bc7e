"""Registers the migration operators' extra links with Airflow (links must come from a plugin)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from operators.links import OssBackupFolderLink, RdsMigrationRecordsLink


class MssqlToRdsMigrationPlugin(AirflowPlugin):
    name = "mssql_to_rds_migration"
    operator_extra_links = [RdsMigrationRecordsLink(), OssBackupFolderLink()]
