"""Restore-chain rules: examples for every rule and error, then hypothesis properties."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from rds_chain_builders import BASE_LSN, DB_GUID, FORK_GUID, Chain, chains, diff, full, guid, log, log_chain

from rds_migration.chain import (
    BackupRecord,
    BackupType,
    ChainError,
    CopyOnlyBaseError,
    DamagedBackupError,
    DiffAfterLogError,
    DiffBaseMismatchError,
    DuplicateBackupError,
    EmptyLogBackupError,
    LsnGapError,
    MissingFullBackupError,
    NotIncrementalError,
    OutOfOrderError,
    RecoveryForkError,
    RestartedChainError,
    RestorePoint,
    WrongDatabaseError,
    advance,
    check_next,
    plan_restore,
    to_lsn,
)

PROPERTY = settings(
    max_examples=120,
    deadline=None,
    # Under load the generator is slow and some properties discard many examples (assume): not a defect.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

F = BASE_LSN  # a realistic LSN > 2**64


def restored_full() -> tuple[BackupRecord, RestorePoint]:
    f = full(F + 100, F + 200, checkpoint=F + 150)
    return f, RestorePoint(full=f)


# ---------------------------------------------------------------------------------------------- values


@pytest.mark.parametrize("value", [F, Decimal(F), str(F), f" {F} ", Decimal("12345678901234567890123")])
def test_lsn_accepts_int_decimal_and_digits_beyond_2_64(value):
    assert to_lsn(value) == int(Decimal(str(value).strip()))


@pytest.mark.parametrize("value", [1.5e20, True, "12a", "-5", Decimal("1.5"), 10**25, None])
def test_lsn_rejects_floats_and_junk(value):
    with pytest.raises(ValueError):
        to_lsn(value)


def test_backup_type_codes():
    assert BackupType.from_code("D") is BackupType.FULL
    assert BackupType.from_code(5) is BackupType.DIFF
    assert BackupType.from_code("Transaction_Log") is BackupType.LOG
    with pytest.raises(ValueError, match="backup type"):
        BackupType.from_code("X")


def test_record_round_trips_through_json_keeping_precision():
    record = diff(full(F, F + 10**22), F + 5, F + 10**23, n=3)
    data = json.loads(json.dumps(record.to_dict()))
    assert data["last_lsn"] == str(F + 10**23)
    assert BackupRecord.from_dict(data) == record


def test_restore_point_round_trips():
    f, _ = restored_full()
    point = RestorePoint(full=f, last_log=log(F + 150, F + 300), logs_applied=4)
    assert RestorePoint.from_dict(json.loads(json.dumps(point.to_dict()))) == point


def test_from_msdb_row_normalises_decimals_and_uuids():
    import uuid

    row = {
        "physical_device_name": r"D:\Backups\Sales\Sales_LOG_20261124101500.trn",
        "type": "L",
        "first_lsn": Decimal(F),
        "last_lsn": Decimal(F + 10),
        "checkpoint_lsn": Decimal(F),
        "database_backup_lsn": Decimal(F - 5),
        "backup_set_uuid": uuid.UUID(guid(1)),
        "database_guid": uuid.UUID(guid(2)),
        "last_recovery_fork_guid": "{" + guid(3).upper() + "}",
        "has_backup_checksums": 1,
        "is_damaged": 0,
        "begins_log_chain": 0,
        "is_copy_only": 0,
        "backup_size": 2048,
        "compressed_backup_size": 1024,
    }
    record = BackupRecord.from_msdb_row(row)
    assert record.file_name == "Sales_LOG_20261124101500.trn"
    assert record.backup_type is BackupType.LOG and record.last_lsn == F + 10
    assert record.recovery_fork_guid == guid(3) and record.size_bytes == 1024


# ---------------------------------------------------------------------------------------------- examples


def test_full_then_logs_including_one_concurrent_with_the_full():
    f = full(F + 100, F + 200, checkpoint=F + 150)
    before, concurrent, *rest = log_chain(F + 10, [50, 150, 100, 100])
    plan = plan_restore(None, [rest[1], f, concurrent, before, rest[0]])
    assert plan.steps == [f, concurrent, *rest]
    assert [s.record for s in plan.skipped] == [before]
    assert plan.final.redo_lsn == rest[1].last_lsn


def test_latest_diff_is_used_and_older_logs_skipped():
    f = full(F + 100, F + 200, checkpoint=F + 150)
    logs = log_chain(F + 150, [100, 100, 100, 100])  # boundaries 250 350 450 550
    d1 = diff(f, F + 220, F + 260, n=1)
    d2 = diff(f, F + 360, F + 400, n=2)
    plan = plan_restore(None, [*logs, d1, f, d2])
    assert plan.steps == [f, d2, logs[2], logs[3]]
    assert {s.record.file_name for s in plan.skipped} == {d1.file_name, logs[0].file_name, logs[1].file_name}


def test_last_lsn_is_exclusive_a_log_ending_at_the_point_is_skipped():
    f, point = restored_full()
    empty = log(F + 150, F + 200, n=1)  # ends exactly at the full's last_lsn: nothing new
    nxt = log(F + 200, F + 300, n=2)
    plan = plan_restore(point, [nxt, empty])
    assert plan.steps == [nxt]
    with pytest.raises(OutOfOrderError, match="too early"):
        check_next(point, empty)


def test_gap_after_anchor_reports_range_and_rds_text():
    f, point = restored_full()
    with pytest.raises(LsnGapError) as info:
        plan_restore(point, [log(F + 250, F + 300)])
    assert (info.value.from_lsn, info.value.to_lsn) == (F + 200, F + 250)
    assert f"begins at LSN {F + 250}, which is too recent to apply" in str(info.value)
    assert f.file_name in str(info.value) and "start over from a new full backup" in str(info.value)


def test_gap_between_logs():
    _, point = restored_full()
    logs = log_chain(F + 150, [100, 100, 100])
    with pytest.raises(LsnGapError) as info:
        plan_restore(point, [logs[0], logs[2]])
    assert (info.value.from_lsn, info.value.to_lsn) == (logs[1].first_lsn, logs[1].last_lsn)


def test_overlapping_log_after_a_log_is_out_of_order():
    f, point = restored_full()
    point = advance(point, log(F + 150, F + 300, n=1))
    with pytest.raises(OutOfOrderError, match="overlaps"):
        check_next(point, log(F + 250, F + 400, n=2))


def test_duplicates_and_already_applied():
    f, point = restored_full()
    a = log(F + 150, F + 300)
    with pytest.raises(DuplicateBackupError, match="offered twice"):
        plan_restore(point, [a, replace(a, file_name="copy.trn")])
    with pytest.raises(DuplicateBackupError, match="offered twice"):
        plan_restore(point, [a, replace(a, backup_set_uuid=guid(77))])
    point = advance(point, a)
    with pytest.raises(DuplicateBackupError, match="already applied"):
        check_next(point, a)
    plan = plan_restore(point, [a, f])
    assert plan.steps == [] and {s.reason for s in plan.skipped} == {"already applied", "already restored"}


def test_wrong_database():
    _, point = restored_full()
    with pytest.raises(WrongDatabaseError, match="database_guid"):
        plan_restore(point, [log(F + 150, F + 300, database_guid=guid(9))])


def test_recovery_fork_change():
    _, point = restored_full()
    with pytest.raises(RecoveryForkError, match="fork"):
        check_next(point, log(F + 150, F + 300, recovery_fork_guid=guid(8)))


def test_begins_log_chain_allowed_only_when_covering_the_anchor():
    _, point = restored_full()
    first = log(F + 150, F + 300, n=1, begins_log_chain=True)
    check_next(point, first)  # a chain that begins at the full is ours
    point = advance(point, first)
    with pytest.raises(RestartedChainError, match="begins a new log chain"):
        check_next(point, log(F + 300, F + 400, n=2, begins_log_chain=True))
    _, fresh = restored_full()
    with pytest.raises(RestartedChainError):
        check_next(fresh, log(F + 260, F + 400, n=3, begins_log_chain=True))


def test_diff_after_log():
    f, point = restored_full()
    point = advance(point, log(F + 150, F + 300))
    later_diff = diff(f, F + 350, F + 400)
    with pytest.raises(DiffAfterLogError, match="already applied"):
        check_next(point, later_diff)
    with pytest.raises(DiffAfterLogError):
        plan_restore(point, [later_diff])
    plan = plan_restore(point, [diff(f, F + 210, F + 250)])  # ends before the point: harmless history
    assert plan.steps == [] and "already covered" in plan.skipped[0].reason


def test_diff_on_another_full():
    f, point = restored_full()
    other = diff(f, F + 300, F + 400, differential_base_guid=guid(55))
    with pytest.raises(DiffBaseMismatchError, match="another full"):
        check_next(point, other)
    assert plan_restore(point, [other]).skipped[0].record == other
    wrong_lsn = diff(f, F + 300, F + 400, differential_base_lsn=F + 1)
    with pytest.raises(DiffBaseMismatchError):
        plan_restore(point, [wrong_lsn])


def test_copy_only_full_rules():
    f = full(F + 100, F + 200, checkpoint=F + 150, is_copy_only=True, database_backup_lsn=0)
    point = RestorePoint(full=f)
    with pytest.raises(CopyOnlyBaseError, match="differential base"):
        check_next(point, diff(f, F + 300, F + 400))
    with pytest.raises(CopyOnlyBaseError, match="pseudo-simple"):
        plan_restore(None, [f, log(F + 150, F + 300)])
    # On a database that has a log chain, a copy-only full can be followed by logs.
    ok = replace(f, database_backup_lsn=F)
    assert len(plan_restore(None, [ok, log(F + 150, F + 300)]).steps) == 2


def test_full_offered_as_incremental():
    f, point = restored_full()
    newer = full(F + 500, F + 600, n=2)
    with pytest.raises(NotIncrementalError, match="we only accept transaction log or differential backup"):
        check_next(point, newer)
    with pytest.raises(NotIncrementalError):
        plan_restore(point, [newer])
    older = full(F, F + 50, n=3)
    assert plan_restore(point, [older]).skipped[0].record == older


def test_nothing_restored_needs_a_full():
    with pytest.raises(MissingFullBackupError):
        plan_restore(None, [log(F, F + 100)])
    with pytest.raises(MissingFullBackupError):
        check_next(None, log(F, F + 100))


def test_newest_full_is_chosen():
    old, new = full(F, F + 10, n=1), full(F + 100, F + 200, n=2)
    plan = plan_restore(None, [new, old])
    assert plan.steps == [new] and plan.skipped[0].record == old


def test_damaged_and_checksumless():
    _, point = restored_full()
    with pytest.raises(DamagedBackupError, match="damaged"):
        plan_restore(point, [log(F + 150, F + 300, is_damaged=True)])
    no_checksum = log(F + 150, F + 300, has_checksum=False)
    plan = plan_restore(point, [no_checksum])
    assert plan.steps == [no_checksum] and "CHECKSUM" in plan.warnings[0]
    with pytest.raises(DamagedBackupError, match="CHECKSUM"):
        plan_restore(point, [no_checksum], require_checksum=True)


def test_every_error_is_a_chain_error():
    for cls in (
        LsnGapError,
        DuplicateBackupError,
        WrongDatabaseError,
        RestartedChainError,
        DiffAfterLogError,
    ):
        assert issubclass(cls, ChainError)


# ---------------------------------------------------------------------------------------------- properties


@PROPERTY
@given(chain=chains(), data=st.data())
def test_any_valid_chain_is_accepted_in_any_order(chain: Chain, data):
    shuffled = data.draw(st.permutations(chain.records))
    plan = plan_restore(None, shuffled)
    assert plan.steps == chain.expected_steps
    assert len(plan.steps) + len(plan.skipped) == len(chain.records)
    # Applying the plan one step at a time with check_next/advance reaches the same point.
    point = None
    for record in plan.steps:
        point = advance(point, record)
    assert point == plan.final


@PROPERTY
@given(chain=chains(), data=st.data())
def test_planning_resumes_from_any_restore_point(chain: Chain, data):
    steps = chain.expected_steps
    cut = data.draw(st.integers(1, len(steps)))
    point = None
    for record in steps[:cut]:
        point = advance(point, record)
    # The caller may still offer everything (e.g. the whole msdb history): applied ones are skipped.
    plan = plan_restore(point, data.draw(st.permutations(chain.records)))
    assert plan.steps == steps[cut:]


@PROPERTY
@given(chain=chains(), data=st.data())
def test_removing_a_middle_log_is_a_gap_with_the_right_range(chain: Chain, data):
    applied = chain.expected_logs
    assume(len(applied) >= 3)
    removed = applied[data.draw(st.integers(1, len(applied) - 2))]
    candidates = [r for r in chain.records if r is not removed]
    with pytest.raises(LsnGapError) as info:
        plan_restore(None, data.draw(st.permutations(candidates)))
    assert (info.value.from_lsn, info.value.to_lsn) == (removed.first_lsn, removed.last_lsn)


@PROPERTY
@given(chain=chains(), data=st.data())
def test_duplicating_any_backup_is_caught(chain: Chain, data):
    original = data.draw(st.sampled_from(chain.records))
    copy = data.draw(
        st.sampled_from(
            [
                original,
                replace(original, file_name="renamed_copy.bak"),
                replace(original, backup_set_uuid=guid(999_999)),
            ]
        )
    )
    with pytest.raises(DuplicateBackupError):
        plan_restore(None, data.draw(st.permutations([*chain.records, copy])))


@PROPERTY
@given(chain=chains(), data=st.data())
def test_other_database_guid_is_caught(chain: Chain, data):
    assume(len(chain.records) >= 2)
    records = list(chain.records)
    index = data.draw(st.integers(0, len(records) - 1))
    records[index] = replace(records[index], database_guid=guid(424242))
    with pytest.raises(WrongDatabaseError):
        plan_restore(None, data.draw(st.permutations(records)))


@PROPERTY
@given(chain=chains(), data=st.data())
def test_other_fork_on_a_planned_backup_is_caught(chain: Chain, data):
    steps = chain.expected_steps
    assume(len(steps) >= 2)
    target = data.draw(st.sampled_from(steps))
    records = [replace(r, recovery_fork_guid=guid(313131)) if r is target else r for r in chain.records]
    with pytest.raises(RecoveryForkError):
        plan_restore(None, records)
    assert FORK_GUID != guid(313131)


@PROPERTY
@given(chain=chains(), data=st.data())
def test_restarted_chain_on_a_later_log_is_caught(chain: Chain, data):
    applied = chain.expected_logs
    assume(len(applied) >= 2)
    target = applied[data.draw(st.integers(1, len(applied) - 1))]
    records = [replace(r, begins_log_chain=True) if r is target else r for r in chain.records]
    with pytest.raises(RestartedChainError):
        plan_restore(None, data.draw(st.permutations(records)))


@PROPERTY
@given(chain=chains(), data=st.data())
def test_swapping_two_logs_in_upload_order_is_caught(chain: Chain, data):
    steps = chain.expected_steps
    logs_start = len(steps) - len(chain.expected_logs)
    assume(len(chain.expected_logs) >= 2)
    i = data.draw(st.integers(logs_start, len(steps) - 2))
    swapped = [*steps[:i], steps[i + 1], steps[i], *steps[i + 2 :]]
    point = None
    with pytest.raises(LsnGapError) as info:
        for record in swapped:
            point = advance(point, record)
    # The gap starts at the restore point (end of the step before) and ends where the early log starts.
    assert (info.value.from_lsn, info.value.to_lsn) == (steps[i - 1].last_lsn, steps[i + 1].first_lsn)


@PROPERTY
@given(chain=chains(), data=st.data())
def test_a_diff_after_an_applied_log_is_caught(chain: Chain, data):
    first_log = next((lg for lg in chain.logs if lg.first_lsn <= chain.full.last_lsn < lg.last_lsn), None)
    later = [d for d in chain.diffs if first_log and d.last_lsn > first_log.last_lsn]
    assume(first_log is not None and later)
    point = advance(advance(None, chain.full), first_log)
    with pytest.raises(DiffAfterLogError):
        check_next(point, data.draw(st.sampled_from(later)))


@PROPERTY
@given(chain=chains())
def test_a_full_offered_after_the_restore_is_not_incremental(chain: Chain):
    point = advance(None, chain.full)
    newer = replace(
        chain.full, backup_set_uuid=guid(5150), file_name="x.bak", last_lsn=chain.full.last_lsn + 1
    )
    with pytest.raises(NotIncrementalError):
        plan_restore(point, [*chain.records, newer])


# ---------------------------------------------------------------------------------------------------
# Empty log backups (an idle database) and recovery forks (the source brought back WITH RECOVERY)
# ---------------------------------------------------------------------------------------------------


def test_empty_log_at_the_restore_point_is_skipped_never_planned():
    _, point = restored_full()
    first = log(F + 50, F + 300, n=1)
    empty = log(F + 300, F + 300, n=2)
    nxt = log(F + 300, F + 400, n=3)
    plan = plan_restore(point, [nxt, empty, first])
    assert plan.steps == [first, nxt]
    assert [(s.record, s.reason) for s in plan.skipped] == [
        (empty, "empty (the database was idle): nothing to apply")
    ]
    after_first = advance(point, first)
    with pytest.raises(EmptyLogBackupError, match="never import it"):
        check_next(after_first, empty)


def test_empty_log_beyond_the_restore_point_reveals_a_gap():
    _, point = restored_full()
    point = advance(point, log(F + 50, F + 300, n=1))
    with pytest.raises(LsnGapError, match="too recent"):
        plan_restore(point, [log(F + 350, F + 350, n=2)])


def test_log_spanning_a_fork_continues_when_it_begins_on_the_targets_fork():
    _, point = restored_full()
    tail = log(F + 50, F + 300, n=1)
    point = advance(point, tail)
    after_recovery = log(
        F + 300,
        F + 500,
        n=2,
        first_recovery_fork_guid=FORK_GUID,
        recovery_fork_guid=guid(77),
        fork_point_lsn=F + 300,
    )
    assert after_recovery.spans_fork and after_recovery.first_fork_guid == FORK_GUID
    point = advance(point, after_recovery)
    assert point.fork_guid == guid(77)
    advance(point, log(F + 500, F + 600, n=3, recovery_fork_guid=guid(77)))  # the new fork continues


def test_log_recovered_before_the_target_restore_point_is_refused():
    _, point = restored_full()
    point = advance(point, log(F + 50, F + 300, n=1))
    earlier = log(
        F + 300,
        F + 500,
        n=2,
        first_recovery_fork_guid=FORK_GUID,
        recovery_fork_guid=guid(77),
        fork_point_lsn=F + 200,
    )
    with pytest.raises(RecoveryForkError, match="discarded"):
        check_next(point, earlier)


def test_log_beginning_on_another_fork_is_refused_naming_both():
    _, point = restored_full()
    other = log(
        F + 50,
        F + 300,
        n=1,
        first_recovery_fork_guid=guid(5),
        recovery_fork_guid=guid(6),
        fork_point_lsn=F + 60,
    )
    with pytest.raises(RecoveryForkError, match=f"begins on recovery fork {guid(5)}.*{FORK_GUID}"):
        check_next(point, other)


def test_log_of_a_source_restored_to_before_the_target_is_refused_even_when_it_looks_covered():
    """Restored from the full and recovered, the source's LSNs restart at the full's end: its next log ends
    below the target's restore point. Taken after the full on a fork the target never saw: refused, never
    skipped as "already covered" (the failure would otherwise come at the cutover, after the freeze)."""
    f = full(F + 100, F + 200, checkpoint=F + 150, backup_set_id=10)
    point = advance(RestorePoint(full=f), log(F + 50, F + 900, n=1, backup_set_id=11))
    diverged = log(
        F + 200,
        F + 400,
        n=2,
        backup_set_id=12,
        first_recovery_fork_guid=FORK_GUID,
        recovery_fork_guid=guid(88),
        fork_point_lsn=F + 200,
    )
    with pytest.raises(RecoveryForkError, match="discarded"):
        plan_restore(point, [diverged])
    later = log(F + 400, F + 400, n=3, backup_set_id=13, recovery_fork_guid=guid(88))  # empty, new fork
    with pytest.raises(RecoveryForkError, match=f"begins on recovery fork {guid(88)}"):
        plan_restore(point, [later])


def test_logs_older_than_the_full_on_an_old_fork_are_only_skipped():
    f = full(F + 100, F + 200, checkpoint=F + 150, backup_set_id=10)
    old = log(F + 20, F + 90, n=1, backup_set_id=3, recovery_fork_guid=guid(66))
    plan = plan_restore(RestorePoint(full=f), [old])
    assert plan.steps == [] and [s.record for s in plan.skipped] == [old]


def test_the_restore_point_remembers_every_fork_it_went_through():
    """A covered log on a fork the target passed through (before a later recovery) is skipped, not refused."""
    f = full(F + 100, F + 200, checkpoint=F + 150, backup_set_id=10)
    point = advance(RestorePoint(full=f), log(F + 50, F + 300, n=1, backup_set_id=11))
    crossing = dict(first_recovery_fork_guid=FORK_GUID, recovery_fork_guid=guid(71), fork_point_lsn=F + 300)
    point = advance(point, log(F + 300, F + 400, n=2, backup_set_id=13, **crossing))
    crossing = dict(first_recovery_fork_guid=guid(71), recovery_fork_guid=guid(72), fork_point_lsn=F + 500)
    point = advance(point, log(F + 400, F + 600, n=3, backup_set_id=15, **crossing))
    assert point.lineage == {FORK_GUID, guid(71), guid(72)}
    assert point == RestorePoint(full=f, last_log=point.last_log, logs_applied=3)  # history is not identity
    adopted = log(F + 400, F + 450, n=4, backup_set_id=14, recovery_fork_guid=guid(71))  # another job's
    plan = plan_restore(point, [adopted])
    assert plan.steps == [] and "already covered" in plan.skipped[0].reason


def test_msdb_row_with_fork_stripes_and_set_id():
    row = {
        "physical_device_name": "D:\\Backups\\Nightly\\SalesDB_LOG_1.trn",
        "type": "L",
        "first_lsn": Decimal(F),
        "last_lsn": Decimal(F + 10),
        "checkpoint_lsn": Decimal(F),
        "backup_set_uuid": guid(1),
        "database_guid": DB_GUID,
        "first_recovery_fork_guid": FORK_GUID.upper(),
        "last_recovery_fork_guid": guid(9),
        "fork_point_lsn": Decimal(F + 5),
        "backup_set_id": 42,
        "family_count": 2,
    }
    record = BackupRecord.from_msdb_row(row)
    assert record.spans_fork and record.fork_point_lsn == F + 5 and record.stripes == 2
    assert record.backup_set_id == 42 and record.physical_device_name == row["physical_device_name"]
    assert BackupRecord.from_dict(record.to_dict()) == record
    legacy = record.to_dict()
    for name in (
        "first_recovery_fork_guid",
        "fork_point_lsn",
        "physical_device_name",
        "backup_set_id",
        "stripes",
    ):
        legacy.pop(name)
    assert BackupRecord.from_dict(legacy).stripes == 1  # ledgers written before these fields still read
