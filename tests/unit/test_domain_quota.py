"""Import quota planner: examples for each edge case, then hypothesis properties.

The oracle ``in_window`` counts imports in ``(t - window, t]`` directly (plus those stamped after
``t``, which the planner counts as already made), independently of the code under test.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rds_migration.quota import (
    Budget,
    QuotaLimits,
    budget_at,
    cutover_budget,
    plan_next_shipment,
)

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)
MIN = timedelta(minutes=1)
SHANGHAI = timezone(timedelta(hours=8))


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def in_window(times, t, window) -> int:
    """Imports counting against the window that ends at ``t``."""
    return sum(1 for x in times if x > t - window)


def fits(database, others, t, limits, *, imports=1, reserve=None) -> bool:
    """``imports`` more imports at ``t`` keep both windows within ``limit - reserve``."""
    reserve = limits.cutover_reserve if reserve is None else reserve
    own = in_window(database, t, limits.window) + imports <= limits.per_database - reserve
    instance = in_window(database + others, t, limits.window) + imports <= limits.per_instance - reserve
    return own and instance


def plan(budget, *, interval=15 * MIN, pending=0, logs=1, last=None):
    return plan_next_shipment(
        budget, interval=interval, pending_files=pending, logs_applied=logs, last_import_at=last
    )


# ---------------------------------------------------------------------------------------------- limits


def test_default_limits_and_pace():
    limits = QuotaLimits()
    assert (limits.per_database, limits.per_instance, limits.window, limits.cutover_reserve) == (
        20,
        500,
        DAY,
        2,
    )
    assert limits.usable_per_window == 18
    assert limits.pace == timedelta(minutes=80)  # 18 imports spread over 24 h


def test_pace_rounds_up_to_the_second():
    limits = QuotaLimits(per_database=9, cutover_reserve=2, window=timedelta(hours=1))
    assert limits.pace == timedelta(seconds=515)  # 3600 / 7 = 514.28...: never more than 7 per hour
    assert 7 * limits.pace > limits.window


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"per_database": 2}, r"per_database \(2\) must be greater than cutover_reserve \(2\)"),
        ({"per_database": 1}, r"per_database \(1\) must be greater than cutover_reserve"),
        ({"per_instance": 3, "cutover_reserve": 3}, r"per_instance \(3\) must be greater"),
        ({"cutover_reserve": 0}, r"cutover_reserve must be >= 1 .*tail-log import"),
        ({"window": timedelta(0)}, r"window must be a positive timedelta"),
        ({"window": 24}, r"window must be a positive timedelta"),
        ({"per_database": 20.0}, r"per_database must be a whole number"),
        ({"cutover_reserve": True}, r"cutover_reserve must be a whole number"),
    ],
)
def test_bad_limits_name_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        QuotaLimits(**kwargs)


# ---------------------------------------------------------------------------------------------- budget


def test_empty_history():
    budget = budget_at(NOW, [], database="SalesDB")
    assert (budget.used_database, budget.used_instance) == (0, 0)
    assert (budget.free_database, budget.free_instance, budget.spendable) == (20, 500, 18)
    assert budget.next_free_slot() == NOW
    assert budget.describe() == (
        "SalesDB: 0 of 20 imports used in the last 24 h (instance: 0 of 500); 2 kept for the cutover; "
        "next free slot now"
    )
    decision = plan(budget, logs=0)
    assert (decision.action, decision.not_before) == ("ship", NOW)
    assert decision.reason.startswith("take and import a new log backup now")


def test_an_import_exactly_one_window_ago_has_left_the_window():
    edge = NOW - DAY
    budget = budget_at(NOW, [edge, edge + timedelta(microseconds=1)], [edge, NOW - 2 * DAY])
    assert budget.database_imports == (edge + timedelta(microseconds=1),)
    assert budget.used_instance == 1


def test_imports_stamped_after_now_count_as_made():
    # clock skew between RDS and the worker: a CreateMigrateTask stamped 30 s in the future
    budget = budget_at(NOW, [NOW + timedelta(seconds=30)])
    assert budget.used_database == 1


def test_times_are_normalised_to_utc_and_sorted():
    local_now = NOW.astimezone(SHANGHAI)
    budget = budget_at(local_now, [ago(5).astimezone(SHANGHAI), ago(60)], [ago(30).astimezone(SHANGHAI)])
    assert budget.now == NOW and budget.now.tzinfo is UTC
    assert budget.database_imports == (ago(60), ago(5))
    assert budget.instance_imports == (ago(60), ago(30), ago(5))
    assert "UTC" in plan(budget).reason


@pytest.mark.parametrize(
    ("now", "database", "others", "match"),
    [
        (NOW.replace(tzinfo=None), [], [], r"Budget\.now 2026-12-01T12:00:00 has no time zone"),
        (NOW, [ago(5), ago(1).replace(tzinfo=None)], [], r"Budget\.database_imports\[1\] .* no time zone"),
        (NOW, [], [ago(1).replace(tzinfo=None)], r"Budget\.other_imports\[0\] .* no time zone"),
    ],
)
def test_naive_datetimes_are_refused_saying_why(now, database, others, match):
    with pytest.raises(ValueError, match=match) as info:
        budget_at(now, database, others)
    assert "ambiguous" in str(info.value) and "timezone.utc" in str(info.value)


def test_non_datetimes_are_refused():
    with pytest.raises(TypeError, match=r"Budget\.database_imports\[0\] '2026-12-01' is not a datetime"):
        budget_at(NOW, ["2026-12-01"])


def test_direct_construction_matches_budget_at():
    limits = QuotaLimits(per_database=10)
    direct = Budget(NOW, (ago(3), ago(9)), (ago(1),), limits=limits, database="x")
    assert direct == budget_at(NOW, [ago(9), ago(3)], [ago(1)], limits=limits, database="x")


def test_window_full_with_the_oldest_expiring_soon():
    oldest = NOW - DAY + 5 * MIN
    history = [oldest] + [ago(10 * i) for i in range(17)]  # 18 = limit - reserve
    budget = budget_at(NOW, history, database="SalesDB")
    assert (budget.used_database, budget.free_database, budget.spendable) == (18, 2, 0)
    assert budget.next_free_slot() == oldest + DAY == NOW + 5 * MIN
    assert budget.next_free_slot(reserve=0) == NOW  # the cutover may spend the reserve
    assert budget.describe().endswith("2 kept for the cutover; next free slot at 2026-12-01 12:05 UTC")


def test_next_free_slot_with_the_whole_limit_used():
    history = [ago(100 + i) for i in range(20)]
    budget = budget_at(NOW, history)
    assert budget.free_database == 0
    assert budget.next_free_slot(reserve=0) == min(history) + DAY
    assert budget.next_free_slot() == sorted(history)[2] + DAY  # three must leave for one outside the reserve


@pytest.mark.parametrize("reserve", [-1, 20, 1.5])
def test_next_free_slot_refuses_a_reserve_that_leaves_nothing(reserve):
    with pytest.raises(ValueError, match="reserve"):
        budget_at(NOW, []).next_free_slot(reserve=reserve)


def test_describe_shows_seconds_rounded_up():
    oldest = NOW - DAY + timedelta(seconds=30, microseconds=1)
    budget = budget_at(NOW, [oldest] * 18)
    assert budget.describe().endswith("next free slot at 2026-12-01 12:00:31 UTC")


# ---------------------------------------------------------------------------------------------- shipping


def test_interval_is_stretched_so_the_budget_lasts_the_window():
    budget = budget_at(NOW, [ago(10), ago(200)], database="SalesDB")
    decision = plan(budget, interval=15 * MIN)
    assert (decision.action, decision.not_before) == ("ship", ago(10) + 80 * MIN)
    assert "interval 15 min stretched to 80 min so that 18 imports last 24 h" in decision.reason
    assert "(80 min after the last import at 2026-12-01 11:50 UTC)" in decision.reason
    assert (
        "SalesDB: 2 of 20 imports used in the last 24 h (instance: 2 of 500), 16 spendable" in decision.reason
    )


def test_a_longer_interval_is_kept():
    decision = plan(budget_at(NOW, [ago(10)]), interval=2 * 60 * MIN)
    assert decision.not_before == ago(10) + 120 * MIN
    assert "stretched" not in decision.reason


def test_a_generous_limit_keeps_the_configured_interval():
    limits = QuotaLimits(per_database=500, per_instance=5000)
    decision = plan(budget_at(NOW, [ago(10)], limits=limits), interval=15 * MIN)
    assert decision.not_before == ago(10) + 15 * MIN


def test_last_import_older_than_the_window_is_taken_into_account():
    limits = QuotaLimits(window=timedelta(hours=1), per_database=100)  # pace 37 s; interval 2 h
    last = ago(90)  # outside the 1-hour window, so not in the budget
    budget = budget_at(NOW, [last], limits=limits)
    assert budget.used_database == 0
    assert plan(budget, interval=120 * MIN, last=last).not_before == last + 120 * MIN
    assert plan(budget, interval=120 * MIN).not_before == NOW


def test_pending_backup_is_imported_first():
    decision = plan(budget_at(NOW, []), pending=1)
    assert decision.reason.startswith("import the oldest of 1 pending backup now")


def test_quota_exhausted_waits_for_the_slot():
    oldest = NOW - DAY + 5 * MIN
    history = [oldest] + [ago(200 + 10 * i) for i in range(17)]
    budget = budget_at(NOW, history, database="SalesDB")
    decision = plan(budget)
    assert (decision.action, decision.not_before) == ("wait", NOW + 5 * MIN)
    assert "SalesDB's window frees a slot at 2026-12-01 12:05 UTC" in decision.reason
    assert "0 spendable outside the 2 kept for the cutover" in decision.reason
    later = plan(budget_at(decision.not_before, history, database="SalesDB"))
    assert (later.action, later.not_before) == ("ship", decision.not_before)


def test_other_databases_exhausting_the_instance_budget():
    others = [ago(300 + i) for i in range(498)]  # 498 + ours > 500 - 2
    budget = budget_at(NOW, [ago(500)], others, database="SalesDB")
    assert budget.free_database == 19 and budget.spendable == 0
    decision = plan(budget)
    assert decision.action == "wait"
    # two of the instance's imports must leave: 499 in the window, one more must leave 498 - 1 = 497 before
    assert decision.not_before == sorted([ago(500), *others])[1] + DAY
    assert "the instance's window (other databases' imports included) frees one at" in decision.reason
    assert "SalesDB's window" not in decision.reason
    assert cutover_budget(budget, pending_files=0).imports_available == 1


def test_backlog_that_does_not_fit_becomes_a_differential_before_any_log():
    history = [ago(30 * i) for i in range(8)]  # 10 spendable
    decision = plan(budget_at(NOW, history), pending=25, logs=0)
    assert decision.action == "differential"
    assert decision.not_before == history[0] + 80 * MIN
    assert "25 pending log backups need 25 imports but only 10 are spendable" in decision.reason
    assert "one differential supersedes them in one import" in decision.reason


def test_backlog_that_fits_is_shipped_not_replaced():
    assert plan(budget_at(NOW, []), pending=18, logs=0).action == "ship"


def test_one_pending_file_is_not_replaced_by_a_differential():
    history = [NOW - DAY + 5 * MIN] * 18
    assert plan(budget_at(NOW, history), pending=1, logs=0).action == "wait"


def test_backlog_after_a_log_was_applied_is_caught_up_file_by_file():
    history = [ago(90)]
    decision = plan(budget_at(NOW, history), pending=25, logs=3)
    assert (decision.action, decision.not_before) == ("ship", NOW)
    assert "behind: 25 pending backups need 25 imports" in decision.reason
    assert "about 32 h 00 min to catch up" in decision.reason  # 24 more at one every 80 min
    assert "restore-chain rule 7" in decision.reason and "new full backup" in decision.reason


def test_huge_backlog_with_the_quota_spent():
    history = [NOW - DAY + 5 * MIN] * 18
    decision = plan(budget_at(NOW, history), pending=100_000, logs=1)
    assert (decision.action, decision.not_before) == ("wait", NOW + 5 * MIN)
    assert "100000 pending backups" in decision.reason
    assert plan(budget_at(NOW, history), pending=100_000, logs=0).action == "differential"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"interval": timedelta(0)}, "interval must be a positive timedelta"),
        ({"interval": 15}, "interval must be a positive timedelta"),
        ({"pending_files": -1}, "pending_files must be a whole number >= 0"),
        ({"logs_applied": None}, "logs_applied must be a whole number >= 0"),
        ({"last_import_at": ago(5).replace(tzinfo=None)}, "last_import_at .* no time zone"),
    ],
)
def test_bad_shipping_inputs(kwargs, match):
    args = {"interval": 15 * MIN, "pending_files": 0, "logs_applied": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        plan_next_shipment(budget_at(NOW, []), **args)


def test_decision_to_dict_is_json():
    data = json.loads(json.dumps(plan(budget_at(NOW, [])).to_dict()))
    assert data["action"] == "ship" and data["not_before"] == "2026-12-01T12:00:00+00:00"


# ---------------------------------------------------------------------------------------------- cutover


def test_cutover_fits():
    result = cutover_budget(budget_at(NOW, [ago(i) for i in range(12)], database="SalesDB"), pending_files=1)
    assert (result.feasible_now, result.imports_needed, result.imports_available) == (True, 3, 8)
    assert result.earliest == NOW
    assert result.message.startswith(
        "The cutover fits the import quota: it needs 3 imports (1 pending backup, the tail log, 1 retry)"
    )


def test_cutover_waits_for_the_window():
    history = [NOW - DAY + 7 * MIN] * 2 + [ago(i) for i in range(16)]  # 18 used, 2 free
    result = cutover_budget(budget_at(NOW, history, database="SalesDB"), pending_files=1)
    assert (result.feasible_now, result.imports_needed, result.imports_available) == (False, 3, 2)
    assert result.earliest == NOW + 7 * MIN
    assert result.message.startswith(
        "The cutover cannot be done within the remaining budget until 2026-12-01 12:07 UTC: it needs 3 imports"
    )
    assert "SalesDB: 18 of 20 imports used" in result.message


def test_cutover_that_never_fits():
    limits = QuotaLimits(cutover_reserve=3)
    result = cutover_budget(budget_at(NOW, [], limits=limits), pending_files=18)
    assert (result.feasible_now, result.imports_needed, result.earliest) == (False, 21, None)
    assert "(18 pending backups, the tail log, 2 retries)" in result.message
    assert "at any time" in result.message and "before the freeze" in result.message
    assert json.loads(json.dumps(result.to_dict()))["earliest"] is None


def test_cutover_refuses_a_negative_backlog():
    with pytest.raises(ValueError, match="pending_files"):
        cutover_budget(budget_at(NOW, []), pending_files=-2)


# ---------------------------------------------------------------------------------------------- properties


@st.composite
def limit_sets(draw) -> QuotaLimits:
    reserve = draw(st.integers(1, 3))
    per_database = draw(st.integers(reserve + 1, 25))
    per_instance = draw(st.integers(reserve + 1, 60))
    window = timedelta(minutes=draw(st.integers(30, 48 * 60)))
    return QuotaLimits(per_database, per_instance, window, reserve)


def times_around(now: datetime, window: timedelta, *, max_size: int):
    """Import times from two windows ago to a little after ``now`` (clock skew), whole seconds."""
    span = int(window.total_seconds())
    offsets = st.one_of(st.integers(-2 * span, 120), st.sampled_from([-span, 1 - span]))  # the edge
    return st.lists(offsets.map(lambda s: now + timedelta(seconds=s)), max_size=max_size)


@PROPERTY
@given(limits=limit_sets(), data=st.data())
def test_next_free_slot_is_minimal_and_never_in_the_past(limits, data):
    database = data.draw(times_around(NOW, limits.window, max_size=40))
    others = data.draw(times_around(NOW, limits.window, max_size=80))
    reserve = data.draw(st.integers(0, min(limits.per_database, limits.per_instance) - 1))
    budget = budget_at(NOW, database, others, limits=limits)
    assert budget.used_database == in_window(database, NOW, limits.window)
    assert budget.used_instance == in_window(database + others, NOW, limits.window)
    slot = budget.next_free_slot(reserve=reserve)
    assert slot >= NOW
    assert fits(database, others, slot, limits, reserve=reserve)
    assert fits(database, others, slot + data.draw(st.integers(0, 10**6)) * MIN, limits, reserve=reserve)
    if slot > NOW:
        for earlier in (slot - timedelta(seconds=1), slot - timedelta(microseconds=1)):
            assert not fits(database, others, max(NOW, earlier), limits, reserve=reserve)
    if reserve == limits.cutover_reserve:
        assert (budget.spendable > 0) == (slot == NOW)


@PROPERTY
@given(limits=limit_sets(), data=st.data())
def test_cutover_earliest_is_minimal(limits, data):
    database = data.draw(times_around(NOW, limits.window, max_size=30))
    others = data.draw(times_around(NOW, limits.window, max_size=60))
    pending = data.draw(st.integers(0, 30))
    result = cutover_budget(budget_at(NOW, database, others, limits=limits), pending_files=pending)
    needed = pending + limits.cutover_reserve
    assert result.imports_needed == needed
    if result.earliest is None:
        assert needed > min(limits.per_database, limits.per_instance)
        return
    assert result.feasible_now == (result.earliest == NOW)
    assert fits(database, others, result.earliest, limits, imports=needed, reserve=0)
    if result.earliest > NOW:
        earlier = max(NOW, result.earliest - timedelta(microseconds=1))
        assert not fits(database, others, earlier, limits, imports=needed, reserve=0)


@PROPERTY
@given(limits=limit_sets(), data=st.data())
def test_every_decision_makes_progress(limits, data):
    """The decision is due when asked again at its ``not_before``, and never further than a window."""
    database = data.draw(times_around(NOW, limits.window, max_size=30))
    others = data.draw(times_around(NOW, limits.window, max_size=60))
    interval = data.draw(st.integers(1, 24 * 60)) * MIN
    pending = data.draw(st.integers(0, 50))
    logs = data.draw(st.integers(0, 3))
    assume_history_within_limits(database, others, limits)
    decision = plan(
        budget_at(NOW, database, others, limits=limits), interval=interval, pending=pending, logs=logs
    )
    assert (
        NOW <= decision.not_before <= NOW + max(interval, limits.pace, limits.window) + timedelta(minutes=2)
    )
    again = plan(
        budget_at(decision.not_before, database, others, limits=limits),
        interval=interval,
        pending=pending,
        logs=logs,
    )
    assert again.not_before == decision.not_before
    assert again.action in ("ship", "differential")
    if decision.action == "wait":
        assert budget_at(NOW, database, others, limits=limits).spendable == 0


def assume_history_within_limits(database, others, limits) -> None:
    """Drop inputs RDS could not have produced (more accepted imports than its limits)."""
    for t in database + others:
        assume(in_window([x for x in database if x <= t], t, limits.window) <= limits.per_database)
        assume(in_window([x for x in database + others if x <= t], t, limits.window) <= limits.per_instance)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(limits=limit_sets(), data=st.data())
def test_following_the_planner_never_spends_the_reserve(limits, data):
    """Simulate a migration against random other-database traffic for three windows."""
    window = limits.window
    span = int(window.total_seconds())
    # Start state: imports RDS accepted in the window before the start, within its limits.
    database = sorted(
        NOW - timedelta(seconds=s)
        for s in data.draw(
            st.lists(st.integers(0, span - 1), max_size=min(limits.per_database, limits.per_instance))
        )
    )
    others = sorted(
        NOW - timedelta(seconds=s)
        for s in data.draw(st.lists(st.integers(0, span - 1), max_size=limits.per_instance - len(database)))
    )
    traffic = sorted(
        NOW + timedelta(seconds=s) for s in data.draw(st.lists(st.integers(0, 3 * span), max_size=120))
    )
    interval = data.draw(st.integers(1, 24 * 60)) * MIN
    pending = data.draw(st.integers(0, 40))
    logs = data.draw(st.integers(0, 3))
    cap_db = limits.per_database - limits.cutover_reserve
    cap_instance = limits.per_instance - limits.cutover_reserve

    t, end, ours, steps = NOW, NOW + 3 * window, 0, 0
    expect_due = False
    while t < end:
        steps += 1
        assert steps < 2000, "the planner does not converge"
        arrived = False
        while traffic and traffic[0] <= t:
            other = traffic.pop(0)
            if in_window(database + others, other, window) < limits.per_instance:  # RDS refuses above
                others.append(other)
                arrived = True
        decision = plan(
            budget_at(t, database, others, limits=limits), interval=interval, pending=pending, logs=logs
        )
        assert decision.not_before >= t
        if expect_due and not arrived:
            assert decision.not_before == t, "asked again at not_before, the decision must be due"
        if decision.not_before > t:
            t, expect_due = decision.not_before, True
            continue
        assert decision.action in ("ship", "differential")
        # The import happens now: it must leave the reserve free in both windows.
        assert in_window(database, t, window) + 1 <= cap_db
        assert in_window(database + others, t, window) + 1 <= cap_instance
        database.append(t)
        ours += 1
        if decision.action == "differential":
            pending = 0  # the differential supersedes the pending log backups
        else:
            pending, logs = max(0, pending - 1), logs + 1
        expect_due = False
    # Progress: once the start state has left the window, nothing but the cadence holds imports back
    # when no other database shares the instance.
    if not others and limits.per_instance >= limits.per_database:
        cadence = max(interval, limits.pace)
        assert ours >= (2 * window) // cadence - 2
