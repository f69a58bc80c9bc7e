"""Prove the target holds the same data: row counts and checksums table by table."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from operators.base import MigrationOperator


def compare_fingerprints(source: dict[str, list[Any]], target: dict[str, list[Any]]) -> dict[str, Any]:
    """Compare ``{"schema.table": [row_count, checksum]}`` maps; list every difference."""
    differences = []
    for table in sorted(set(source) | set(target)):
        left, right = source.get(table), target.get(table)
        if left is None or right is None:
            differences.append(
                {"table": table, "problem": "missing on the " + ("source" if left is None else "target")}
            )
        elif list(left) != list(right):
            differences.append(
                {"table": table, "problem": "differs", "source": list(left), "target": list(right)}
            )
    return {
        "tables": len(source),
        "rows": sum(int(v[0]) for v in source.values()),
        "differences": differences,
    }


class ValidateOperator(MigrationOperator):
    """Compare the source's fingerprints (taken while frozen) with the opened target's.

    :param source_fingerprint_task_id: the task whose XCom holds the source's fingerprints.
    """

    template_fields = ("source_fingerprint_task_id",)

    def __init__(self, *, source_fingerprint_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source_fingerprint_task_id = source_fingerprint_task_id

    def execute(self, context: Any) -> dict[str, Any]:
        source = context["ti"].xcom_pull(task_ids=self.source_fingerprint_task_id)
        if source is None:
            raise AirflowFailException(f"No source fingerprints in task {self.source_fingerprint_task_id!r}.")
        hook = self.steps.target_sql
        if hook is None:
            raise AirflowSkipException(
                "target.mssql_conn_id is not configured: the target cannot be validated."
            )
        prints = hook.table_fingerprints(self.steps.target_database)
        target = {f"{s}.{t}": [count, checksum] for (s, t), (count, checksum) in prints.items()}
        result = compare_fingerprints(source, target)
        for difference in result["differences"]:
            self.log.error("Validation: %s", difference)
        self.steps.record_ledger("validated", tables=result["tables"], differences=len(result["differences"]))
        if result["differences"]:
            raise AirflowFailException(
                f"Target differs from the source in {len(result['differences'])} of {result['tables']} tables "
                "(see the log). The source stays RESTORING: bring it back with the rollback steps in README.md "
                "if you decide not to go live."
            )
        self.log.info("Validation passed: %d tables, %d rows identical.", result["tables"], result["rows"])
        return result
