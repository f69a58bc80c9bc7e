"""Prove the target holds the same data — by LSN and metadata by default, by content on request.

A physical restore is byte-identical (real-world.md S8): the proof of completeness is that RDS restored
the chain through the tail-log backup's ``last_lsn``, from backups of the source's ``database_guid``
(the restored copy gets a ``database_guid`` of its own but keeps the source's ``family_guid``) taken
WITH CHECKSUM, and that DBCC CHECKDB passed. Row counts from ``sys.dm_db_partition_stats`` on both
sides cost O(tables), not O(rows). The opt-in deep mode also compares every row's content (text, ntext,
image and xml included, which BINARY_CHECKSUM ignores). Nothing here reads table data in the default mode.
"""

from __future__ import annotations

import concurrent.futures
from datetime import timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from operators.base import MigrationOperator
from rds_migration.chain import BackupRecord


def compare_counts(source: dict[str, int], target: dict[str, int]) -> list[dict[str, Any]]:
    """Every table whose row count differs or that exists on one side only."""
    differences = []
    for table in sorted(set(source) | set(target)):
        left, right = source.get(table), target.get(table)
        if left is None or right is None:
            side = "source" if left is None else "target"
            differences.append({"table": table, "problem": f"missing on the {side}"})
        elif left != right:
            differences.append(
                {"table": table, "problem": "row count differs", "source": left, "target": right}
            )
    return differences


def _named(counts: dict[tuple[str, str], int]) -> dict[str, int]:
    return {f"{schema}.{table}": rows for (schema, table), rows in counts.items()}


class ValidateOperator(MigrationOperator):
    """Check the opened target against the frozen source; the target stays restricted until this passes.

    :param cutover_task_id: the task whose XCom holds the tail-log backup's record (``tail``).
    """

    template_fields = ("cutover_task_id",)

    def __init__(self, *, cutover_task_id: str, **kwargs: Any) -> None:
        kwargs.setdefault("execution_timeout", timedelta(hours=24))
        super().__init__(**kwargs)
        self.cutover_task_id = cutover_task_id

    def execute(self, context: Any) -> dict[str, Any]:
        cutover = context["ti"].xcom_pull(task_ids=self.cutover_task_id) or {}
        if not cutover.get("tail"):
            raise AirflowFailException(f"No tail-log backup record in the XCom of {self.cutover_task_id!r}.")
        tail = BackupRecord.from_dict(cutover["tail"])
        problems: list[str] = []
        proof = self.prove_completeness(tail, problems)
        source_counts = _named(self.steps.source.row_counts(self.steps.database))
        target_counts = _named(self.steps.target_sql.row_counts(self.steps.target_database))
        differences = compare_counts(source_counts, target_counts)
        if self.migration.validation == "deep":
            differences += self.compare_content(source_counts)
        for difference in differences:
            self.log.error("Validation: %s", difference)
        result = {
            "mode": self.migration.validation,
            "tables": len(source_counts),
            "rows": sum(source_counts.values()),
            "proof": proof,
            "problems": problems,
            "differences": differences,
        }
        self.steps.record_ledger(
            "validated",
            mode=self.migration.validation,
            tables=result["tables"],
            problems=len(problems),
            differences=len(differences),
        )
        if problems or differences:
            raise AirflowFailException(self._what_to_do(problems, differences))
        self.log.info(
            "Validation passed (%s): restored through LSN %s, %d tables, %d rows.",
            self.migration.validation,
            proof.get("restored_through_lsn"),
            result["tables"],
            result["rows"],
        )
        return result

    def prove_completeness(self, tail: BackupRecord, problems: list[str]) -> dict[str, Any]:
        """Restored through the tail's ``last_lsn``, same database, checksummed backups, CHECKDB."""
        steps = self.steps
        entries = steps.read_ledger()
        migrate_task_id = steps.find_migration_task_id(entries)
        state = steps.chain_state(migrate_task_id, entries)
        point = state.restored
        proof: dict[str, Any] = {"tail_last_lsn": str(tail.last_lsn)}
        if point is None or point.redo_lsn < tail.last_lsn or state.in_flight or state.pending:
            problems.append(
                f"RDS has not restored through the tail's last LSN {tail.last_lsn} (restored up to "
                f"{point.redo_lsn if point else 'nothing'}, {len(state.in_flight)} in flight, "
                f"{len(state.pending)} not imported)"
            )
        proof["rds_restored_through_lsn"] = str(point.redo_lsn) if point else None
        if point is not None and point.database_guid != tail.database_guid:
            problems.append(
                f"the restored full has database_guid {point.database_guid}, the tail {tail.database_guid}"
            )
        unchecked = [r.file_name for r in _applied(point) if not r.has_checksum]
        if unchecked:
            problems.append(f"backups taken without CHECKSUM: {', '.join(unchecked)}")
        target = steps.target_sql.restore_proof(steps.target_database)
        source = steps.source.database_facts(steps.database)
        reached = target["restored_through_lsn"]
        proof.update(
            restored_through_lsn=str(reached) if reached else None,
            restores=target["restores"],
            backup_database_guid=target["backup_database_guid"],
            target_family_guid=target["family_guid"],
            source_family_guid=source.family_guid if source else None,
        )
        reached = target["restored_through_lsn"]
        if reached is None:
            proof["msdb"] = "restore history not readable on the target: RDS's file list is the proof"
        elif int(reached) < tail.last_lsn:
            problems.append(f"the target's msdb shows restores up to LSN {reached}, short of {tail.last_lsn}")
        if target["backup_database_guid"] and target["backup_database_guid"] != tail.database_guid:
            problems.append(
                f"the target was restored from backups of database_guid {target['backup_database_guid']}, "
                f"the source's is {tail.database_guid}"
            )
        if (
            source
            and source.family_guid
            and target["family_guid"]
            and target["family_guid"] != source.family_guid
        ):
            problems.append(
                f"the target's family_guid {target['family_guid']} is not the source's {source.family_guid}"
            )
        task = steps.rds.get_task_state(steps.instance_id, migrate_task_id)
        checkdb = (
            "passed before the open"
            if self.migration.check_db_mode == "SyncExecuteDBCheck"
            else (
                "running in the background (AsyncExecuteDBCheck): its result appears in the migration task's "
                "description"
            )
        )
        if "checkdb failed" in (task.description or "").lower():
            problems.append(f"RDS reports: {task.description}")
            checkdb = "failed"
        proof["checkdb"] = checkdb
        return proof

    def compare_content(self, source_counts: dict[str, int]) -> list[dict[str, Any]]:
        """Deep mode: every row's content on both sides, the two sides read in parallel."""
        steps = self.steps
        differences = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            for name in sorted(source_counts):
                schema, _, table = name.partition(".")
                left = pool.submit(steps.source.table_digest, steps.database, schema, table)
                right = pool.submit(steps.target_sql.table_digest, steps.target_database, schema, table)
                (left_rows, left_digest), (right_rows, right_digest) = left.result(), right.result()
                if (left_rows, left_digest) != (right_rows, right_digest):
                    differences.append(
                        {
                            "table": name,
                            "problem": "content differs",
                            "source_rows": left_rows,
                            "target_rows": right_rows,
                        }
                    )
        return differences

    def _what_to_do(self, problems: list[str], differences: list[dict[str, Any]]) -> str:
        db, target = self.steps.database, self.steps.target_database
        found = "; ".join(problems + [f"{d['table']}: {d['problem']}" for d in differences[:20]])
        return (
            f"Validation failed: {found}. Both sides are left as they are: the source is READ_ONLY and "
            f"RESTRICTED_USER (nothing changes it), the target {target!r} is open on RDS but READ_ONLY and "
            "RESTRICTED_USER (applications cannot write to it). Decide: "
            f"(a) go back to the source: on it run ALTER DATABASE [{db}] SET READ_WRITE WITH ROLLBACK IMMEDIATE; "
            f"ALTER DATABASE [{db}] SET MULTI_USER; then drop {target!r} on RDS (console, or the DeleteDatabase "
            'API) and trigger this DAG with the run conf {"start_over": true} to migrate again; or '
            f"(b) go live anyway, if the differences are understood: on the target run ALTER DATABASE [{target}] "
            f"SET READ_WRITE WITH ROLLBACK IMMEDIATE; ALTER DATABASE [{target}] SET MULTI_USER."
        )


def _applied(point: Any) -> list[BackupRecord]:
    if point is None:
        return []
    return [r for r in (point.full, point.diff, point.last_log) if r is not None]
