"""MigrationSteps' pure parts: rates measured from the ledger, names, ownership of backup files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rds_migration.ledger import LedgerEntry, LedgerEvent

MB = 1024 * 1024


@pytest.fixture
def steps():
    from operators.steps import MigrationSteps
    from rds_migration.config import MigrationSpec

    spec = MigrationSpec(
        name="sales",
        source={"mssql_conn_id": "src", "database": "Sales DB"},
        target={"rds_conn_id": "rds", "instance_id": "rm-1", "region": "cn-hangzhou", "mssql_conn_id": "t"},
        oss={"oss_conn_id": "oss", "bucket": "mig-bucket", "prefix": "prod/sales/"},
        backup_folder={"server_path": "D:\\Backups\\Sales", "worker_path": "/mnt/sales"},
    )
    return MigrationSteps(spec)


def entry(event, at, name, size=None, **details):
    return LedgerEntry(
        event=event, database="Sales DB", at=at, file_name=name, size_bytes=size, details=details
    )


def test_rates_come_from_large_files_and_small_ones_measure_latency(steps):
    t0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    entries = [
        entry(LedgerEvent.UPLOADED, t0, "big.bak", 200 * MB, seconds=10.0),
        entry(LedgerEvent.UPLOADED, t0, "tiny.trn", 10_000, seconds=1.0),  # overhead, not throughput
        entry(LedgerEvent.IMPORT_REQUESTED, t0, "big.bak"),
        entry(LedgerEvent.RESTORED, t0 + timedelta(seconds=20), "big.bak"),
        entry(LedgerEvent.IMPORT_REQUESTED, t0, "tiny.trn"),
        entry(LedgerEvent.RESTORED, t0 + timedelta(seconds=7), "tiny.trn"),
    ]
    rates = steps.measured_rates(entries)
    assert rates.upload_mb_s == pytest.approx(20.0)
    assert rates.restore_mb_s == pytest.approx(10.0)
    assert rates.rds_task_latency_s == pytest.approx(7.0)
    assert rates.samples["upload"] == 1 and rates.samples["rds_task_latency"] == 1


def test_keys_and_paths_follow_the_config(steps):
    assert steps.ledger_key.startswith("prod/sales/Sales") and steps.ledger_key.endswith("_ledger.jsonl")
    assert steps.report_key("r.html") == "prod/sales/reports/r.html"
    name = steps.tail_backup_name(datetime(2026, 11, 24, 10, 0, 5))
    assert steps.server_path(name) == f"D:\\Backups\\Sales\\{name}"
    assert steps.worker_path(name) == f"/mnt/sales/{name}"
    assert steps.oss_position(name) == f"oss-cn-hangzhou.aliyuncs.com:mig-bucket:prod/sales/{name}"


def test_only_our_files_in_our_folder_are_ours(steps):
    name = steps.tail_backup_name(datetime(2026, 11, 24, 10, 0, 5))
    assert steps.is_ours(f"D:\\Backups\\Sales\\{name}")
    assert steps.is_ours(f"d:\\backups\\sales\\{name}")  # Windows paths are case-insensitive
    assert not steps.is_ours(f"D:\\Backups\\Other\\{name}")  # another job's folder
    assert not steps.is_ours("D:\\Backups\\Sales\\Sales_LOG_20261124100005.trn")  # another stem


def test_quota_budget_counts_rds_times_at_the_latest_moment_they_can_stand_for(steps, monkeypatch):
    """RDS lists CreateTime to the second: an import listed at 10:00:00 happened before 10:00:01, so at
    10:01:00.5 it may still be in RDS's 60 s window and must still count (for others' imports too),
    unless the ledger holds the time our own import was accepted."""
    from hooks.rds_records import MigrateTask, OssDownload
    from operators import steps as steps_module

    now = datetime(2026, 11, 24, 10, 1, 0, 500_000, tzinfo=UTC)

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return now

    listed = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)

    def download(name: str) -> OssDownload:
        return OssDownload(name, "1", "Transaction_Log", "True", "Restored", "", listed, listed)

    class FakeRds:
        def list_migration_tasks(self, instance_id):
            return [MigrateTask("9", "OtherDB", "UPDF", "Waiting", "", listed, None)]

        def get_file_states(self, instance_id, task_id):
            return [download("ours.trn" if task_id == "1" else "other.bak")]

    from rds_migration.config import ImportQuotaSettings

    monkeypatch.setattr(steps_module, "datetime", Frozen)
    quota = ImportQuotaSettings(window_hours=60 / 3600)
    steps = steps_module.MigrationSteps(steps.spec.model_copy(update={"import_quota": quota}))
    steps.__dict__["rds"] = FakeRds()
    budget = steps.quota_budget([], "1")
    assert (budget.used_database, budget.used_instance) == (1, 2)
    # Our own import's time from the ledger (written once RDS had accepted it) is exact: it left.
    requested = entry(LedgerEvent.IMPORT_REQUESTED, listed.replace(microsecond=400_000), "ours.trn")
    assert steps.quota_budget([requested], "1").used_database == 0
    now = datetime(2026, 11, 24, 10, 1, 1, tzinfo=UTC)  # a whole window after 10:00:01: gone
    assert steps.quota_budget([], "1").used_instance == 0
