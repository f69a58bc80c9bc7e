"""Where the chain stands and what ships next, from msdb history and RDS's file list (pure rules)."""

from __future__ import annotations

from rds_chain_builders import BASE_LSN, full, log

from rds_migration.chain import LsnGapError, RecoveryForkError
from rds_migration.shipping import (
    ADOPTED,
    FAILED,
    IN_FLIGHT,
    OURS,
    RESTORED,
    ListedFile,
    Shippable,
    build_chain_state,
    latest_per_name,
)

F = BASE_LSN
TASK = "mt-1"


def ours(record) -> Shippable:
    return Shippable(record, record.file_name, f"/mnt/bk/{record.file_name}", OURS)


def adopted(record) -> Shippable:
    return Shippable(
        record, f"Sales_LOG_A{record.first_lsn % 1000}.trn", f"/mnt/nightly/{record.file_name}", ADOPTED
    )


def listed(*pairs) -> list[ListedFile]:
    return [ListedFile(name, state) for name, state in pairs]


def known_of(*items: Shippable) -> dict:
    return {s.import_name: s.record for s in items}


# A database that had a log-backup job: its last log ended at F+100; our full ran [F+150, F+200).
JOB_LOG = log(F + 50, F + 100, n=901, file_name="SalesDB_LOG_job_1.trn")
OUR_FULL = full(F + 150, F + 200, checkpoint=F + 160)
FIRST_LOG = log(F + 100, F + 300, n=1)  # begins *before* the full: the job's log truncated up to F+100
SECOND_LOG = log(F + 300, F + 400, n=2)


def test_first_log_after_a_full_begins_before_it_and_is_shipped():
    items = [ours(OUR_FULL), ours(FIRST_LOG), ours(SECOND_LOG)]
    state = build_chain_state(
        TASK, listed((OUR_FULL.file_name, RESTORED)), items, known_of(*items), foreign=[JOB_LOG]
    )
    assert state.blocked is None
    assert [s.record for s in state.pending] == [FIRST_LOG, SECOND_LOG]
    assert state.restored.full == OUR_FULL


def test_a_log_taken_by_another_job_after_the_full_blocks_before_anything_ships():
    stolen = log(F + 300, F + 350, n=902, file_name="SalesDB_LOG_job_2.trn")
    after = log(F + 350, F + 450, n=3)
    copy_only = log(F + 300, F + 420, n=903, file_name="SalesDB_LOG_copy.trn", is_copy_only=True)
    items = [ours(OUR_FULL), ours(FIRST_LOG), ours(after)]
    state = build_chain_state(
        TASK,
        listed((OUR_FULL.file_name, RESTORED), (FIRST_LOG.file_name, RESTORED)),
        items,
        known_of(*items),
        foreign=[JOB_LOG, stolen, copy_only],
    )
    assert isinstance(state.blocked, LsnGapError)
    assert (state.blocked.from_lsn, state.blocked.to_lsn) == (F + 300, F + 350)
    assert state.pending == []
    assert state.culprits == [stolen]  # the COPY_ONLY log never truncated anything


def test_an_adopted_log_fills_the_gap_in_lsn_order():
    stolen = log(F + 300, F + 350, n=902, file_name="SalesDB_LOG_job_2.trn")
    after = log(F + 350, F + 450, n=3)
    items = [ours(OUR_FULL), ours(FIRST_LOG), ours(after), adopted(stolen)]
    state = build_chain_state(
        TASK,
        listed((OUR_FULL.file_name, RESTORED), (FIRST_LOG.file_name, RESTORED)),
        items,
        known_of(*items),
    )
    assert state.blocked is None
    assert [(s.record, s.origin) for s in state.pending] == [(stolen, ADOPTED), (after, OURS)]


def test_a_file_imported_by_hand_under_its_own_name_is_part_of_the_chain():
    stolen = log(F + 300, F + 350, n=902, file_name="SalesDB_LOG_job_2.trn")
    after = log(F + 350, F + 450, n=3)
    items = [ours(OUR_FULL), ours(FIRST_LOG), ours(after)]
    known = {**known_of(*items), stolen.file_name: stolen}
    state = build_chain_state(
        TASK,
        listed(
            (OUR_FULL.file_name, RESTORED), (FIRST_LOG.file_name, RESTORED), (stolen.file_name, IN_FLIGHT)
        ),
        items,
        known,
        foreign=[stolen],
    )
    assert state.unknown == [] and state.blocked is None
    assert [s.record for s in state.in_flight] == [stolen]
    assert [s.record for s in state.pending] == [after]


def test_a_file_nobody_knows_is_reported_not_guessed():
    items = [ours(OUR_FULL)]
    state = build_chain_state(
        TASK, listed((OUR_FULL.file_name, RESTORED), ("Other_LOG.trn", RESTORED)), items, known_of(*items)
    )
    assert state.unknown == ["Other_LOG.trn"]


def test_empty_log_backups_are_skipped_never_pending():
    empty = log(F + 300, F + 300, n=2)
    third = log(F + 300, F + 500, n=3)
    items = [ours(OUR_FULL), ours(FIRST_LOG), ours(empty), ours(third)]
    state = build_chain_state(
        TASK, listed((OUR_FULL.file_name, RESTORED), (FIRST_LOG.file_name, RESTORED)), items, known_of(*items)
    )
    assert [s.record for s in state.pending] == [third]
    assert [(s.record, reason) for s, reason in state.skipped] == [
        (empty, "empty (the database was idle): nothing to apply")
    ]


def test_an_empty_tail_leaves_nothing_pending_and_nothing_blocked():
    empty_tail = log(F + 300, F + 300, n=9)
    items = [ours(OUR_FULL), ours(FIRST_LOG), ours(empty_tail)]
    state = build_chain_state(
        TASK, listed((OUR_FULL.file_name, RESTORED), (FIRST_LOG.file_name, RESTORED)), items, known_of(*items)
    )
    assert state.pending == [] and state.blocked is None
    assert state.restored.redo_lsn == empty_tail.last_lsn  # the target holds everything the tail covers


def test_in_flight_files_move_the_chain_head_and_failed_ones_are_reported():
    items = [ours(OUR_FULL), ours(FIRST_LOG), ours(SECOND_LOG)]
    state = build_chain_state(
        TASK,
        [
            ListedFile(OUR_FULL.file_name, RESTORED),
            ListedFile(FIRST_LOG.file_name, IN_FLIGHT),
            ListedFile(SECOND_LOG.file_name, FAILED, "The log in this backup set begins at LSN ..."),
        ],
        items,
        known_of(*items),
    )
    assert [s.record for s in state.in_flight] == [FIRST_LOG]
    assert state.chain_head.redo_lsn == FIRST_LOG.last_lsn
    assert state.failed == [(SECOND_LOG.file_name, "The log in this backup set begins at LSN ...")]
    assert state.pending == []  # a failed file is not shipped again behind the user's back


def test_a_log_from_another_fork_blocks_with_the_fork_error():
    other = log(F + 300, F + 400, n=2, recovery_fork_guid="11111111-2222-3333-4444-555555555555")
    items = [ours(OUR_FULL), ours(FIRST_LOG), ours(other)]
    state = build_chain_state(
        TASK, listed((OUR_FULL.file_name, RESTORED), (FIRST_LOG.file_name, RESTORED)), items, known_of(*items)
    )
    assert isinstance(state.blocked, RecoveryForkError) and state.culprits == []


def test_nothing_pending_before_the_full_is_listed():
    items = [ours(OUR_FULL), ours(FIRST_LOG)]
    assert build_chain_state(None, [], items, {}).pending == []
    assert build_chain_state(TASK, [], items, known_of(*items)).pending == []


def test_a_file_imported_again_counts_by_its_latest_listing():
    from datetime import UTC, datetime

    t0, t1 = datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC)
    files = [ListedFile("a.trn", RESTORED, created=t1), ListedFile("a.trn", FAILED, created=t0)]
    assert latest_per_name(files) == [files[0]]


def _failed_once(status: str, description: str, times: int = 1) -> list[ListedFile]:
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    return [
        ListedFile(OUR_FULL.file_name, RESTORED, created=t0),
        ListedFile(FIRST_LOG.file_name, RESTORED, created=t0 + timedelta(minutes=1)),
        *(
            ListedFile(SECOND_LOG.file_name, FAILED, description, t0 + timedelta(minutes=2 + i), status)
            for i in range(times)
        ),
    ]


def test_a_log_that_failed_in_a_way_another_import_mends_is_pending_again_at_its_place():
    items = [ours(OUR_FULL), ours(FIRST_LOG), ours(SECOND_LOG)]
    for status, description in [
        ("DownloadFailed", "Failed to download b.trn: the transfer from OSS was interrupted."),
        ("RestoreFailed", 'Read on "b.trn" failed: 1117(The request could not be performed because of ...)'),
    ]:
        state = build_chain_state(TASK, _failed_once(status, description), items, known_of(*items))
        assert state.failed == [] and state.reimport == [(SECOND_LOG.file_name, description)]
        assert [s.record for s in state.pending] == [SECOND_LOG]


def test_a_failure_another_import_cannot_mend_stays_failed():
    items = [ours(OUR_FULL), ours(FIRST_LOG), ours(SECOND_LOG)]
    for status, description in [
        ("RestoreFailed", "The log in this backup set begins at LSN 42, which is too recent to apply"),
        ("VerifyFailed", "The media family on device is incorrectly formed."),
        ("CheckFailed", "Backup set (b.trn) is a Database FULL backup, we only accept transaction log..."),
    ]:
        state = build_chain_state(TASK, _failed_once(status, description), items, known_of(*items))
        assert state.failed == [(SECOND_LOG.file_name, description)] and state.reimport == []
        assert state.pending == []


def test_a_file_is_imported_at_most_three_times():
    items = [ours(OUR_FULL), ours(FIRST_LOG), ours(SECOND_LOG)]
    description = "Failed to download b.trn: the transfer from OSS was interrupted."
    twice = build_chain_state(TASK, _failed_once("DownloadFailed", description, 2), items, known_of(*items))
    assert [s.record for s in twice.pending] == [SECOND_LOG]
    thrice = build_chain_state(TASK, _failed_once("DownloadFailed", description, 3), items, known_of(*items))
    assert thrice.failed == [(SECOND_LOG.file_name, description)] and thrice.pending == []


def test_a_full_that_failed_is_never_imported_again_behind_the_users_back():
    items = [ours(OUR_FULL), ours(FIRST_LOG)]
    state = build_chain_state(
        TASK,
        [ListedFile(OUR_FULL.file_name, FAILED, "Failed to download", status="DownloadFailed")],
        items,
        known_of(*items),
    )
    assert state.failed == [(OUR_FULL.file_name, "Failed to download")] and state.pending == []
