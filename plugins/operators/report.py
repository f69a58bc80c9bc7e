"""The run's audit report: a timeline of the phases and the gap shrinking cycle by cycle."""

from __future__ import annotations

import html
import os
import re
from datetime import datetime
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from operators.base import MigrationOperator, task_states
from rds_migration.ledger import LedgerEntry, LedgerEvent


def gap_chart_svg(sizes_mb: list[float], threshold_mb: float, width: int = 560, height: int = 220) -> str:
    """A bar chart (inline SVG) of log backup sizes per cycle, with the cutover threshold line."""
    if not sizes_mb:
        return "<p>No log backups were shipped.</p>"
    top = max(max(sizes_mb), threshold_mb) * 1.1 or 1.0
    left, bottom, plot_w, plot_h = 50, height - 30, width - 60, height - 50
    bar_w = plot_w / len(sizes_mb)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    parts.append(f'<text x="{left}" y="14" font-size="12">Log backup size per cycle (MB)</text>')
    for i, size in enumerate(sizes_mb):
        h = plot_h * size / top
        x = left + i * bar_w
        parts.append(
            f'<rect x="{x + 2:.1f}" y="{bottom - h:.1f}" width="{max(bar_w - 4, 1):.1f}" height="{h:.1f}" '
            f'fill="#4a7fc1"><title>cycle {i + 1}: {size:.2f} MB</title></rect>'
        )
        parts.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{bottom + 14}" font-size="10" text-anchor="middle">{i + 1}</text>'
        )
    y = bottom - plot_h * threshold_mb / top
    parts.append(
        f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#c0392b" stroke-dasharray="4"/>'
    )
    parts.append(
        f'<text x="{left + plot_w}" y="{y - 4:.1f}" font-size="10" text-anchor="end">threshold {threshold_mb:g} MB</text>'
    )
    parts.append(f'<line x1="{left}" y1="{bottom}" x2="{left + plot_w}" y2="{bottom}" stroke="#333"/>')
    parts.append("</svg>")
    return "".join(parts)


def timeline_rows(entries: list[LedgerEntry]) -> list[tuple[str, str, str]]:
    """(time, event, detail) rows of the ledger, oldest first."""
    rows = []
    for entry in sorted(entries, key=lambda e: e.at):
        detail = entry.file_name or ""
        if entry.size_bytes:
            detail += f" ({entry.size_bytes / 1048576:.1f} MB)"
        if entry.first_lsn is not None:
            detail += f" LSN [{entry.first_lsn}, {entry.last_lsn})"
        rows.append((entry.at.strftime("%Y-%m-%d %H:%M:%S UTC"), entry.event.value, detail.strip()))
    return rows


def phase_rows(entries: list[LedgerEntry]) -> list[tuple[str, datetime, datetime]]:
    """(phase, start, end) of the migration's phases, from the ledger's events."""
    ordered = sorted(entries, key=lambda e: e.at)

    def first(event: LedgerEvent, **match: str) -> LedgerEntry | None:
        return next(
            (e for e in ordered if e.event == event and all(getattr(e, k) == v for k, v in match.items())),
            None,
        )

    def last(event: LedgerEvent) -> LedgerEntry | None:
        return next((e for e in reversed(ordered) if e.event == event), None)

    full = first(LedgerEvent.BACKUP_TAKEN, backup_type="FULL")
    full_restored = first(LedgerEvent.RESTORED, file_name=full.file_name) if full else None
    first_log = first(LedgerEvent.BACKUP_TAKEN, backup_type="LOG")
    decided = last(LedgerEvent.CUTOVER_APPROVED) or last(LedgerEvent.CUTOVER_REJECTED)
    frozen = last(LedgerEvent.SOURCE_FROZEN)
    opened = last(LedgerEvent.OPENED)
    validated = last(LedgerEvent.VALIDATED)
    last_restored_before_freeze = next(
        (
            e
            for e in reversed(ordered)
            if e.event == LedgerEvent.RESTORED and (frozen is None or e.at <= frozen.at)
        ),
        None,
    )
    candidates = [
        ("full backup, upload and restore", full, full_restored),
        ("log shipping", first_log, last_restored_before_freeze),
        ("cutover: freeze to database open (downtime)", frozen, opened),
        ("validation", opened, validated),
    ]
    rows = [
        (name, start.at, end.at) for name, start, end in candidates if start and end and end.at >= start.at
    ]
    if decided is not None:
        rows.append((f"approval ({decided.event.value})", decided.at, decided.at))
    return sorted(rows, key=lambda row: row[1])


def downtime_split(entries: list[LedgerEntry], run_id: str | None = None) -> dict[str, float] | None:
    """Freeze → open of one run (the last one by default), split into work and orchestration (seconds).

    Work is the time spent inside SQL Server (freeze, tail-log backup), the upload, and waiting for RDS
    (restoring the tail, opening the database); orchestration is the rest: Airflow hand-offs and the
    package's own bookkeeping. None until a run both froze the source and opened the database.
    """
    ordered = sorted(entries, key=lambda e: e.at)

    def last(event: LedgerEvent, **match: Any) -> LedgerEntry | None:
        return next(
            (
                e
                for e in reversed(ordered)
                if e.event == event
                and (run_id is None or e.run_id == run_id)
                and all(getattr(e, k) == v for k, v in match.items())
            ),
            None,
        )

    opened = last(LedgerEvent.OPENED)
    if opened is None:
        return None
    run_id = run_id or opened.run_id
    frozen, timings = last(LedgerEvent.SOURCE_FROZEN), last(LedgerEvent.CUTOVER_TIMINGS)
    if frozen is None or timings is None:
        return None
    tail = timings.file_name
    uploaded = next((e for e in ordered if e.event == LedgerEvent.UPLOADED and e.file_name == tail), None)
    requested = next(
        (e for e in ordered if e.event == LedgerEvent.IMPORT_REQUESTED and e.file_name == tail), None
    )
    restored = next((e for e in ordered if e.event == LedgerEvent.RESTORED and e.file_name == tail), None)
    parts = {
        "freeze": float(timings.details.get("freeze_s", 0)),
        "tail_backup": float(timings.details.get("tail_backup_s", 0)),
        "upload": float(uploaded.details.get("seconds", 0)) if uploaded else 0.0,
        "rds_restore_wait": (restored.at - requested.at).total_seconds() if requested and restored else 0.0,
        "rds_open_wait": float(opened.details.get("open_s", 0)),
    }
    window = (opened.at - frozen.at).total_seconds()
    work = sum(parts.values())
    return {"window": window, "work": work, "orchestration": window - work, **parts}


def render_report(
    title: str,
    outcome: str,
    summary: dict[str, Any],
    entries: list[LedgerEntry],
    threshold_mb: float,
    states: dict[str, str] | None = None,
) -> str:
    """The HTML report (self-contained: inline SVG, no external assets)."""
    sizes = [
        (e.size_bytes or 0) / 1048576
        for e in sorted(entries, key=lambda e: e.at)
        if e.event == LedgerEvent.BACKUP_TAKEN and e.backup_type == "LOG"
    ]
    esc = html.escape

    def table(headers: list[str], rows: list[tuple[Any, ...]]) -> str:
        head = "".join(f"<th>{esc(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>" for row in rows)
        return f"<table><tr>{head}</tr>{body}</table>"

    phases = [
        (name, f"{start:%H:%M:%S}", f"{end:%H:%M:%S}", f"{(end - start).total_seconds():.1f} s")
        for name, start, end in phase_rows(entries)
    ]
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head><body>"
        f"<h1>{esc(title)}</h1><p><strong>Outcome:</strong> {esc(outcome)}</p>"
        f"<h2>Summary</h2>{table(['', ''], list(summary.items()))}"
        f"<h2>Phases (UTC)</h2>{table(['phase', 'start', 'end', 'duration'], phases)}"
        f"<h2>Gap per cycle</h2>{gap_chart_svg(sizes, threshold_mb)}"
        f"<h2>Cutover tasks</h2>{table(['task', 'state'], list((states or {}).items()))}"
        f"<h2>Ledger</h2>{table(['time', 'event', 'detail'], timeline_rows(entries))}"
        "</body></html>"
    )


def describe_outcome(states: dict[str, str]) -> str:
    """One sentence for the run, from the states of its tasks."""
    if states.get("release_target") == "success":
        return "migrated and validated: the target holds the same data, applications may use it"
    if states.get("validate") == "failed":
        return "validation failed: both sides left as they are (see the validate task's log for what to do)"
    if states.get("rollback") == "success":
        return (
            "the cutover failed before RDS opened the database; the source was given back to the applications, "
            "nothing lost"
        )
    if states.get("rollback") == "failed":
        return "cutover failed and the source was NOT rolled back (see the rollback task's log)"
    if states.get("cutover") == "success":
        return "database opened on RDS; validation did not complete"
    if states.get("approve_cutover") == "failed":
        return "the approval timed out: nothing changed on the source"
    early = [t for t in BEFORE_APPROVAL if states.get(t) == "failed"]
    if early:
        return f"the run failed at {early[0]}, before the cutover: nothing changed on the source"
    return "cutover not approved: nothing changed on the source"


#: The tasks before the approval, in order: a failure there never touched the source.
BEFORE_APPROVAL = (
    "preflight",
    "choose_start",
    "full_backup",
    "upload_full",
    "create_migration_task",
    "wait_full_restored",
    "ship_logs",
)


class ReportOperator(MigrationOperator):
    """Write the run's report (HTML) next to the backups and in OSS; return the summary.

    Runs whatever happened before it (trigger rule ``all_done``) and then fails the run if the
    cutover did not complete, so the audit trail is always written and a failure stays visible.

    :param task_ids: the tasks whose outcome the report summarises, in order.
    """

    template_fields = ("task_ids",)

    def __init__(self, *, task_ids: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.task_ids = task_ids

    def execute(self, context: Any) -> dict[str, Any]:
        dag_run = context["dag_run"]
        states = task_states(context, self.task_ids)
        failed = [t for t, s in states.items() if s in ("failed", "upstream_failed")]
        outcome = describe_outcome(states)
        entries = self.steps.read_ledger()
        validation = context["ti"].xcom_pull(task_ids="validate") or {}
        split = downtime_split(entries, dag_run.run_id)
        summary = {
            "database": self.steps.database,
            "target": f"{self.steps.instance_id} / {self.steps.target_database}",
            "run_id": dag_run.run_id,
            "outcome": outcome,
            "files": len({e.file_name for e in entries if e.event == LedgerEvent.BACKUP_TAKEN}),
            "bytes_shipped": sum(e.size_bytes or 0 for e in entries if e.event == LedgerEvent.UPLOADED),
            "validation": validation.get("mode"),
            "tables_validated": validation.get("tables"),
            "rows_validated": validation.get("rows"),
            "restored_through_lsn": (validation.get("proof") or {}).get("rds_restored_through_lsn"),
            "downtime_s": round(split["window"], 1) if split else None,
            "downtime_work_s": round(split["work"], 1) if split else None,
            "downtime_orchestration_s": round(split["orchestration"], 1) if split else None,
        }
        try:
            migrate_task_id = self.steps.find_migration_task_id(entries)
            summary["import_quota"] = self.steps.quota_budget(entries, migrate_task_id).describe()
        except Exception as error:  # noqa: BLE001 - the report is written whatever RDS answers
            summary["import_quota"] = f"unknown ({error})"
        page = render_report(
            f"Migration of {self.steps.database} to ApsaraDB RDS",
            outcome,
            summary,
            entries,
            self.migration.cutover_threshold_mb,
            states,
        )
        file_name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"report_{dag_run.run_id}") + ".html"
        folder = os.path.join(self.migration.backup_folder.worker_path, "reports")
        os.makedirs(folder, exist_ok=True)
        local = os.path.join(folder, file_name)
        with open(local, "w", encoding="utf-8") as handle:
            handle.write(page)
        key = self.steps.report_key(file_name)
        self.steps.oss.upload_file(
            self.steps.bucket, local, key, checkpoint_dir=os.path.join(folder, ".ckpt")
        )
        summary.update({"task_states": states, "report_path": local, "report_key": key})
        self.log.info("Report written to %s and oss://%s/%s", local, self.steps.bucket, key)
        if failed:
            raise AirflowFailException(f"The migration did not complete ({outcome}). Report: {local}")
        return summary
