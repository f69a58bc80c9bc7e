"""The HTML report: phases derived from the ledger, the gap chart, everything escaped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rds_migration.ledger import LedgerEntry, LedgerEvent


def at(seconds: float) -> datetime:
    return datetime(2026, 11, 24, 10, 0, tzinfo=UTC) + timedelta(seconds=seconds)


def e(event, seconds, name=None, kind=None, size=None):
    return LedgerEntry(
        event=event, database="S", at=at(seconds), file_name=name, backup_type=kind, size_bytes=size
    )


LEDGER = [
    e(LedgerEvent.BACKUP_TAKEN, 0, "f.bak", "FULL", 100),
    e(LedgerEvent.RESTORED, 30, "f.bak"),
    e(LedgerEvent.BACKUP_TAKEN, 40, "l1.trn", "LOG", 3 * 1048576),
    e(LedgerEvent.RESTORED, 50, "l1.trn"),
    e(LedgerEvent.BACKUP_TAKEN, 60, "l2.trn", "LOG", 1048576),
    e(LedgerEvent.RESTORED, 70, "l2.trn"),
    e(LedgerEvent.CUTOVER_APPROVED, 80),
    e(LedgerEvent.SOURCE_FROZEN, 81),
    e(LedgerEvent.BACKUP_TAKEN, 82, "tail.trn", "LOG", 1000),
    e(LedgerEvent.RESTORED, 90, "tail.trn"),
    e(LedgerEvent.OPENED, 95),
    e(LedgerEvent.VALIDATED, 99),
]


def test_phases_follow_the_procedure():
    from operators.report import phase_rows

    rows = {name: (end - start).total_seconds() for name, start, end in phase_rows(LEDGER)}
    assert rows["full backup, upload and restore"] == 30
    assert rows["log shipping"] == 30  # first log taken -> last restore before the freeze
    assert rows["cutover: freeze to database open (downtime)"] == 14
    assert rows["validation"] == 4
    assert "approval (cutover_approved)" in rows


def test_report_is_self_contained_and_escaped():
    from operators.report import render_report

    page = render_report(
        "Migration of <db>", "ok & done", {"database": "we]ird 'db' <x>"}, LEDGER, 2, {"validate": "success"}
    )
    assert "<svg" in page and "threshold 2 MB" in page
    assert "&lt;db&gt;" in page and "we]ird &#x27;db&#x27; &lt;x&gt;" in page
    assert "<script" not in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")
