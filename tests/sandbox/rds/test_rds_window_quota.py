"""R1 (DescribeMigrateTasks keeps one week) and R2 (daily import quotas), moved by the sandbox clock."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException

from tests.sandbox.rds.conftest import (
    create_task,
    list_tasks,
    make_client,
    oss_downloads,
    task_by_id,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def fake_full(bucket) -> str:
    """An object RDS accepts synchronously; its import fails verification in the background, so the
    database name is free again for the next full import."""
    bucket.put_object("backups/Quota_FULL_1.bak", b"x" * 1024)
    return "backups/Quota_FULL_1.bak"


def _code(call, *args, **kwargs) -> str:
    with pytest.raises(ClientException) as raised:
        call(*args, **kwargs)
    return raised.value.code


def _advance_to(clock, local: time, zone) -> datetime:
    """Move the clock forward to the next ``local`` time of day in ``zone``."""
    now = clock.now().astimezone(zone)
    target = now.replace(hour=local.hour, minute=local.minute, second=local.second, microsecond=0)
    if target <= now:
        target += timedelta(days=1)
    clock.advance(target - now)
    return target


def _import(client, server, db_name: str, key: str) -> str:
    task_id = create_task(client, db_name, key).migrate_task_id
    server.wait_idle()  # the fake file fails verification: the name is free again
    return task_id


# ---- R1 ------------------------------------------------------------------------------------------


def test_tasks_older_than_a_week_are_no_longer_listed_but_stay_readable_by_id(
    rds_server, client, clock, fake_full
):
    old = _import(client, rds_server, "OldDB", fake_full)
    clock.advance(timedelta(days=6, hours=23))
    assert [t.migrate_task_id for t in list_tasks(client).items.migrate_task] == [old]
    clock.advance(timedelta(hours=2))  # 7 days and 1 hour
    recent = _import(client, rds_server, "NewDB", fake_full)
    listed = list_tasks(client)  # the window asks for every year: the API still keeps one week
    assert [t.migrate_task_id for t in listed.items.migrate_task] == [recent]
    assert listed.total_record_count == 1
    assert task_by_id(client, old).status == "Failed"
    assert len(oss_downloads(client, old)) == 1


def test_window_is_applied_within_the_week(rds_server, client, clock, fake_full):
    first = _import(client, rds_server, "WinDB", fake_full)
    clock.advance(timedelta(days=3))
    second = _import(client, rds_server, "WinDB", fake_full)
    now = clock.now()
    day_ago = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%MZ")
    in_a_minute = (now + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%MZ")
    assert [t.migrate_task_id for t in list_tasks(client, day_ago, in_a_minute).items.migrate_task] == [
        second
    ]
    assert {t.migrate_task_id for t in list_tasks(client).items.migrate_task} == {first, second}


@pytest.mark.parametrize(
    ("start", "end", "code"),
    [
        ("2026-01-01T00:00:00Z", "2026-01-02T00:00Z", "InvalidStartTime.Malformed"),  # minutes only
        ("yesterday", "2026-01-02T00:00Z", "InvalidStartTime.Malformed"),
        ("2026-01-01T00:00Z", "2026/01/02", "InvalidEndTime.Malformed"),
        ("2026-01-02T00:00Z", "2026-01-01T00:00Z", "InvalidStartTimeAndEndTime.Malformed"),
        ("2026-01-01T00:00Z", "2026-01-01T00:00Z", "InvalidStartTimeAndEndTime.Malformed"),
    ],
)
def test_window_format_is_validated(client, start, end, code):
    assert _code(list_tasks, client, start, end) == code


def test_paging(rds_server, client, fake_full):
    created = [_import(client, rds_server, f"PageDB{i}", fake_full) for i in range(3)]
    body = list_tasks(client, page_size=30)
    assert (body.total_record_count, body.page_number, body.page_record_count) == (3, 1, 3)
    assert [t.migrate_task_id for t in body.items.migrate_task] == created[::-1]  # newest first
    assert list_tasks(client, page_number=2).items.migrate_task == []


# ---- R2 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["UploadLimitExceeded", "ExceedUploadTime"])
def test_per_database_daily_quota(start_rds, clock, fake_full, code):
    """The 21st import of a database in a day is refused; every accepted import counts, even one that
    fails later; refused calls do not count (our reading: the sources do not say)."""
    server = start_rds(max_imports_per_day=2, daily_quota_code=code)
    client = make_client(server)
    _advance_to(clock, time(10, 0), SHANGHAI)
    assert _code(create_task, client, "LimitDB", "backups/missing.bak") == "InvalidOSSURL"  # not counted
    for _ in range(2):
        assert task_by_id(client, _import(client, server, "LimitDB", fake_full)).status == "Failed"
    with pytest.raises(ClientException) as raised:
        create_task(client, "limitdb", fake_full)  # names compare case-insensitively
    assert (raised.value.status_code, raised.value.code) == (400, code)
    assert "Exceeding the daily upload times of this DB." in raised.value.data["Message"]
    _import(client, server, "OtherDB", fake_full)  # another database has its own quota


def test_per_instance_daily_quota(start_rds, clock, fake_full):
    server = start_rds(max_imports_per_instance_per_day=3)
    client = make_client(server)
    _advance_to(clock, time(10, 0), SHANGHAI)
    for i in range(3):
        _import(client, server, f"Db{i}", fake_full)
    with pytest.raises(ClientException) as raised:
        create_task(client, "Db9", fake_full)
    assert (raised.value.status_code, raised.value.code, raised.value.data["Message"]) == (
        400,
        "ConcurrentTaskExceeded",
        "Concurrent task exceeding the allowed amount.",
    )


def test_calendar_day_in_beijing_time_resets_at_local_midnight(start_rds, clock, fake_full):
    server = start_rds(max_imports_per_day=1, quota_window="calendar", quota_timezone="Asia/Shanghai")
    client = make_client(server)
    _advance_to(clock, time(23, 58), SHANGHAI)  # 15:58 UTC: still "today" in Beijing
    _import(client, server, "DayDB", fake_full)
    assert _code(create_task, client, "DayDB", fake_full) == "UploadLimitExceeded"
    clock.advance(timedelta(minutes=3))  # 00:01 in Beijing, same UTC day
    _import(client, server, "DayDB", fake_full)


def test_calendar_day_follows_the_configured_zone(start_rds, clock, fake_full):
    server = start_rds(max_imports_per_day=1, quota_timezone="UTC")
    client = make_client(server)
    _advance_to(clock, time(23, 58), SHANGHAI)
    _import(client, server, "DayDB", fake_full)
    clock.advance(timedelta(minutes=3))  # a new day in Beijing, not in UTC
    assert _code(create_task, client, "DayDB", fake_full) == "UploadLimitExceeded"


def test_rolling_window_counts_the_last_24_hours(start_rds, clock, fake_full):
    server = start_rds(max_imports_per_day=1, quota_window="rolling")
    client = make_client(server)
    _advance_to(clock, time(23, 58), SHANGHAI)
    _import(client, server, "RollDB", fake_full)
    clock.advance(timedelta(minutes=3))  # past midnight, but not 24 h later
    assert _code(create_task, client, "RollDB", fake_full) == "UploadLimitExceeded"
    clock.advance(timedelta(hours=23, minutes=58))  # 24 h 1 min after the first import
    _import(client, server, "RollDB", fake_full)


def test_rolling_window_length_is_configurable_and_answers_are_recorded(start_rds, clock, fake_full):
    """``quota_window_s`` scales the rolling day down (e2e tests: seconds, like the product's
    ``import_quota.window_hours``); ``service.answers`` keeps what every call was told."""
    server = start_rds(max_imports_per_day=1, quota_window="rolling", quota_window_s=60)
    client = make_client(server)
    _import(client, server, "RollDB", fake_full)
    clock.advance(timedelta(seconds=59))
    assert _code(create_task, client, "RollDB", fake_full) == "UploadLimitExceeded"
    clock.advance(timedelta(seconds=2))  # 61 s after the first import: it left the window
    _import(client, server, "RollDB", fake_full)
    answers = [a for a in server.service.answers if a.action == "CreateMigrateTask"]
    assert [(a.db_name, a.status, a.code, a.injected) for a in answers] == [
        ("RollDB", 200, "", ""),
        ("RollDB", 400, "UploadLimitExceeded", ""),
        ("RollDB", 200, "", ""),
    ]
    assert answers[0].at < answers[1].at < answers[2].at


def test_injected_answers_are_recorded(start_rds, fake_full):
    server = start_rds()
    client = make_client(server)
    server.faults.next_create("accept_then_500")
    with pytest.raises(ServerException) as raised:
        create_task(client, "FaultDB", fake_full)
    assert raised.value.code == "ExternalFailure"
    (answer,) = [a for a in server.service.answers if a.action == "CreateMigrateTask"]
    assert (answer.status, answer.code, answer.injected) == (500, "ExternalFailure", "accept_then_500")
