"""The append-only ledger: JSON lines, truncated tails, and restore-point replay."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rds_chain_builders import BASE_LSN, full, log_chain

from rds_migration.chain import RestorePoint
from rds_migration.ledger import (
    LedgerEntry,
    LedgerError,
    LedgerEvent,
    format_ledger,
    parse_ledger,
    restore_point_from_ledger,
)

F = BASE_LSN


def history():
    f = full(F + 100, F + 200, checkpoint=F + 150)
    logs = log_chain(F + 150, [100, 100, 100])
    entries = [LedgerEntry(event="preflight_passed", database="Sales ]DB'")]
    for record in [f, *logs]:
        entries.append(
            LedgerEntry.for_backup(LedgerEvent.BACKUP_TAKEN, record, "Sales ]DB'", task_id="backup")
        )
        entries.append(LedgerEntry.for_backup("uploaded", record, "Sales ]DB'", crc64="18446744073709551615"))
        entries.append(LedgerEntry.for_backup("restored", record, "Sales ]DB'", migrate_task_id="12345"))
    return f, logs, entries


def test_json_line_round_trip_keeps_lsn_precision_and_unicode():
    entry = LedgerEntry(
        event=LedgerEvent.UPLOADED,
        database="销售",
        at=datetime(2026, 11, 24, 10, 15, tzinfo=UTC),
        first_lsn=F,
        last_lsn=str(F + 10**22),
        crc64=18446744073709551615,
        details={"etag": "abc"},
    )
    line = entry.to_json_line()
    assert "\n" not in line and f'"last_lsn":"{F + 10**22}"' in line and "销售" in line
    assert LedgerEntry.from_json_line(line) == entry
    assert entry.crc64 == "18446744073709551615"


def test_parse_ledger_ignores_a_truncated_last_line():
    _, _, entries = history()
    text = format_ledger(entries)
    assert parse_ledger(text) == entries
    assert parse_ledger(text + '{"event":"restored","datab') == entries


def test_parse_ledger_refuses_a_bad_middle_line():
    _, _, entries = history()
    text = format_ledger(entries[:2]) + "not json\n" + format_ledger(entries[2:])
    with pytest.raises(LedgerError, match="sales.jsonl: line 3"):
        parse_ledger(text, source="sales.jsonl")


@pytest.mark.parametrize(
    "line", ['{"event":"nope","database":"x"}', '{"database":"x","event":"uploaded","zz":1}', "[]"]
)
def test_bad_lines(line):
    with pytest.raises(LedgerError):
        LedgerEntry.from_json_line(line)


def test_restore_point_from_ledger_replays_restores_and_tolerates_retries():
    f, logs, entries = history()
    entries.append(entries[-1])  # a retried task recorded the same restore twice
    point = restore_point_from_ledger(parse_ledger(format_ledger(entries)))
    assert point == RestorePoint(full=f, last_log=logs[-1], logs_applied=3)
    assert restore_point_from_ledger([]) is None


def test_restore_point_from_ledger_refuses_a_broken_chain():
    f, logs, _ = history()
    entries = [LedgerEntry.for_backup("restored", r, "Sales") for r in (f, logs[0], logs[2])]
    with pytest.raises(LedgerError, match="too recent"):
        restore_point_from_ledger(entries)
    with pytest.raises(LedgerError, match="no backup record"):
        restore_point_from_ledger([LedgerEntry(event="restored", database="Sales", file_name="x.trn")])


def test_the_current_task_comes_from_the_ledger_and_start_over_abandons_it():
    from rds_migration.ledger import LedgerEntry, LedgerEvent, current_migration_task_id, task_ids_of

    def event(kind, task_id, **kw):
        return LedgerEntry(event=kind, database="Sales", migrate_task_id=task_id, **kw)

    first = event(LedgerEvent.IMPORT_REQUESTED, "mt-1", backup_type="FULL", file_name="f1.bak")
    child = event(
        LedgerEvent.IMPORT_REQUESTED,
        "mt-1c",
        backup_type="LOG",
        file_name="l1.trn",
        details={"parent_task_id": "mt-1"},
    )
    same = event(
        LedgerEvent.IMPORT_REQUESTED,
        "mt-1",
        backup_type="LOG",
        file_name="l2.trn",
        details={"parent_task_id": "mt-1"},
    )
    assert current_migration_task_id([]) is None
    assert current_migration_task_id([first, child, same]) == "mt-1"  # a log's answer never replaces the task
    assert task_ids_of([first, child, same], "mt-1") == ["mt-1", "mt-1c"]
    abandoned = event(LedgerEvent.MIGRATION_ABANDONED, "mt-1")
    assert current_migration_task_id([first, child, abandoned]) is None
    second = event(LedgerEvent.IMPORT_REQUESTED, "mt-2", backup_type="FULL", file_name="f2.bak")
    rediscovered = event(LedgerEvent.TASK_DISCOVERED, "mt-1")  # the list still shows the abandoned task
    assert current_migration_task_id([first, abandoned, second, rediscovered]) == "mt-2"
    legacy = LedgerEntry(
        event=LedgerEvent.IMPORT_REQUESTED,
        database="Sales",
        backup_type="FULL",
        details={"migrate_task_id": "mt-0"},
    )
    assert current_migration_task_id([legacy]) == "mt-0"  # ledgers written before the id had its own field
