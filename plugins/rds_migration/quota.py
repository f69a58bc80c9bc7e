"""Import quota planning: log shipping never spends the imports the cutover needs.

ApsaraDB RDS accepts at most **20 migration imports (``CreateMigrateTask`` calls) per database per
day** and **500 per instance per day**; past them ``CreateMigrateTask`` is refused (real-world.md R2,
R6: ``UploadLimitExceeded`` for the database, ``ConcurrentTaskExceeded`` for the instance; sources:
Alibaba's instance-level migration guide and the RDS 2014-08-15 OpenAPI metadata). One log backup
shipped every 15 minutes spends a database's 20 in five hours, and the tail-log import at the
cutover - during the downtime - would then be refused. This module paces the imports instead.

**Which "day".** Whether RDS counts per calendar day (in which time zone?) or per rolling 24 hours
is not documented. The planner keeps *every rolling window* of :attr:`QuotaLimits.window` within
the limit, which is safe either way: every calendar day of a zone without daylight saving lies
inside some 24-hour window. (A 25-hour day, when daylight saving ends, does not: use
``window=timedelta(hours=25)`` if RDS ever counts in such a zone.)

**Boundary rule.** The window at time ``t`` is the half-open interval ``(t - window, t]``: an
import made exactly ``window`` ago has left it, one made a microsecond later has not. Imports
stamped after ``now`` (clock skew between RDS and the worker) count as already in the window.

**What counts as an import.** Every ``CreateMigrateTask`` call RDS may have accepted: the full,
each differential and log, the tail - and a call that timed out or failed with a 5xx, since it may
have created the import (real-world.md R5). When unsure, count it: counting too many only slows
shipping down; counting too few can leave the cutover without an import.

**Using a decision.** :func:`plan_next_shipment` decides for ``budget.now``. When its
``not_before`` is later, sleep until then and plan again with a fresh budget before importing:
other databases on the instance may have spent its quota meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from rds_migration.estimate import format_duration

Action = Literal["ship", "wait", "differential"]

_MICROSECOND = timedelta(microseconds=1)


# --------------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------------


def _utc(value: Any, what: str) -> datetime:
    """``value`` as an aware UTC datetime; naive or non-datetime values are refused, naming ``what``."""
    if not isinstance(value, datetime):
        raise TypeError(f"{what} {value!r} is not a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{what} {value.isoformat()} has no time zone: a naive time is ambiguous (msdb's backup "
            "times are the server's local time) and the quota windows are compared in UTC; pass an "
            "aware datetime, e.g. datetime.now(timezone.utc)"
        )
    return value.astimezone(UTC)


def _at(moment: datetime) -> str:
    """``2026-12-02 03:10 UTC`` (seconds shown when not zero, rounded up so it is never too early)."""
    if moment.microsecond:
        moment += timedelta(microseconds=1_000_000 - moment.microsecond)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if moment.second else "%Y-%m-%d %H:%M UTC")


def _span(duration: timedelta) -> str:
    """``24 h``, ``80 min``, else ``1 min 15 s``: short spans for the one-line messages."""
    seconds = duration.total_seconds()
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds // 3600:.0f} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds // 60:.0f} min"
    return format_duration(seconds)


def _plural(count: int, noun: str, plural: str = "") -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {plural or noun + 's'}"


@dataclass(frozen=True)
class QuotaLimits:
    """RDS's import quotas, and how many imports the cutover keeps for itself.

    :param per_database: imports RDS accepts per database per ``window`` (20, real-world.md R2).
    :param per_instance: imports RDS accepts per instance per ``window`` (500), all databases together.
    :param window: the span the limits count over; 24 h (see the module docstring about which "day").
    :param cutover_reserve: imports never spent before the cutover: the tail-log import and retries
        (default: the tail plus one retry).
    """

    per_database: int = 20
    per_instance: int = 500
    window: timedelta = timedelta(hours=24)
    cutover_reserve: int = 2

    def __post_init__(self) -> None:
        for name in ("per_database", "per_instance", "cutover_reserve"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"QuotaLimits.{name} must be a whole number (got {value!r})")
        if self.cutover_reserve < 1:
            raise ValueError(
                f"QuotaLimits.cutover_reserve must be >= 1 (got {self.cutover_reserve}): "
                "the tail-log import at the cutover needs one import"
            )
        for name in ("per_database", "per_instance"):
            if getattr(self, name) <= self.cutover_reserve:
                raise ValueError(
                    f"QuotaLimits.{name} ({getattr(self, name)}) must be greater than cutover_reserve "
                    f"({self.cutover_reserve}): log shipping would have no import left outside the "
                    "reserve kept for the cutover; check the limit or lower cutover_reserve"
                )
        if not isinstance(self.window, timedelta) or self.window <= timedelta(0):
            raise ValueError(f"QuotaLimits.window must be a positive timedelta (got {self.window!r})")

    @property
    def usable_per_window(self) -> int:
        """Imports log shipping may spend per window for one database (the limit minus the reserve)."""
        return self.per_database - self.cutover_reserve

    @property
    def pace(self) -> timedelta:
        """The shortest gap between two imports that makes :attr:`usable_per_window` last a whole window.

        Rounded *up* to the second: imports at least this far apart never put more than
        ``usable_per_window`` imports in any half-open window.
        """
        microseconds = self.window // _MICROSECOND
        return timedelta(seconds=-(-microseconds // (self.usable_per_window * 1_000_000)))  # ceil


# --------------------------------------------------------------------------------------------------
# The budget: both rolling windows at `now`
# --------------------------------------------------------------------------------------------------


def _earliest_with_at_most(
    imports: Sequence[datetime], now: datetime, window: timedelta, allowed: int
) -> datetime:
    """Earliest ``t >= now`` at which at most ``allowed`` of ``imports`` (sorted, all ``> now - window``)
    are still inside ``(t - window, ...)``: when the oldest excess import has left the window."""
    excess = len(imports) - allowed
    if excess <= 0:
        return now
    return max(now, imports[excess - 1] + window)


@dataclass(frozen=True)
class Budget:
    """The state of the database's and the instance's rolling windows at ``now``.

    Build it with :func:`budget_at`. Times are normalised to UTC; imports that have left the window
    are dropped, the others sorted.

    :param now: the moment the budget is for (aware).
    :param database_imports: this database's imports (aware datetimes, any order).
    :param other_imports: the *other* databases' imports on the same instance (this database's are
        added to them for :attr:`instance_imports`, so none is counted twice or forgotten).
    :param limits: the quotas and the cutover reserve.
    :param database: the database name, for messages.
    """

    now: datetime
    database_imports: tuple[datetime, ...]
    other_imports: tuple[datetime, ...] = ()
    limits: QuotaLimits = field(default_factory=QuotaLimits)
    database: str = "the database"
    instance_imports: tuple[datetime, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.limits, QuotaLimits):
            raise TypeError(f"Budget.limits must be a QuotaLimits (got {type(self.limits).__name__})")
        now = _utc(self.now, "Budget.now")
        set_ = object.__setattr__
        set_(self, "now", now)
        for name in ("database_imports", "other_imports"):
            times = [_utc(t, f"Budget.{name}[{i}]") for i, t in enumerate(getattr(self, name))]
            set_(self, name, tuple(sorted(t for t in times if t > now - self.limits.window)))
        set_(self, "instance_imports", tuple(sorted(self.database_imports + self.other_imports)))

    @property
    def used_database(self) -> int:
        return len(self.database_imports)

    @property
    def used_instance(self) -> int:
        return len(self.instance_imports)

    @property
    def free_database(self) -> int:
        """Imports RDS would still accept for this database now, the reserve included."""
        return max(0, self.limits.per_database - self.used_database)

    @property
    def free_instance(self) -> int:
        """Imports RDS would still accept on the instance now, the reserve included."""
        return max(0, self.limits.per_instance - self.used_instance)

    @property
    def spendable(self) -> int:
        """Imports usable now without touching the cutover reserve, in both windows."""
        reserve = self.limits.cutover_reserve
        return max(0, min(self.free_database - reserve, self.free_instance - reserve))

    def earliest_fit(self, imports: int, *, reserve: int = 0) -> datetime | None:
        """Earliest ``t >= now`` at which ``imports`` more imports keep both windows within
        ``limit - reserve``; ``None`` when they never can (more than the limit allows).

        Every window that contains ``t`` ends at or after it, and holds no more of today's imports
        than ``(t - window, t]`` does: checking that one is enough.
        """
        windows = (
            (self.database_imports, self.limits.per_database),
            (self.instance_imports, self.limits.per_instance),
        )
        moments = []
        for history, limit in windows:
            allowed = limit - reserve - imports
            if allowed < 0:
                return None
            moments.append(_earliest_with_at_most(history, self.now, self.limits.window, allowed))
        return max(moments)

    def next_free_slot(self, reserve: int | None = None) -> datetime:
        """Earliest ``t >= now`` at which one more import keeps both windows within ``limit - reserve``.

        :param reserve: imports to keep free (default: ``limits.cutover_reserve``; 0 at the cutover).
        :returns: ``now`` when :attr:`spendable` > 0 (with the default reserve).
        """
        reserve = self.limits.cutover_reserve if reserve is None else reserve
        if isinstance(reserve, bool) or not isinstance(reserve, int) or reserve < 0:
            raise ValueError(f"reserve must be a whole number >= 0 (got {reserve!r})")
        slot = self.earliest_fit(1, reserve=reserve)
        if slot is None:
            raise ValueError(
                f"reserve {reserve} leaves no import in the limits ({self.limits.per_database} per "
                f"database, {self.limits.per_instance} per instance): use a smaller reserve"
            )
        return slot

    def figures(self) -> str:
        """``12 of 20 imports used in the last 24 h (instance: 40 of 500)``."""
        return (
            f"{self.used_database} of {self.limits.per_database} imports used in the last "
            f"{_span(self.limits.window)} (instance: {self.used_instance} of {self.limits.per_instance})"
        )

    def describe(self) -> str:
        """One line for humans: ``SalesDB: 12 of 20 imports used in the last 24 h (instance: 40 of
        500); 2 kept for the cutover; next free slot now``."""
        slot = self.next_free_slot()
        when = "now" if slot == self.now else f"at {_at(slot)}"
        return (
            f"{self.database}: {self.figures()}; {self.limits.cutover_reserve} kept for the cutover; "
            f"next free slot {when}"
        )


def budget_at(
    now: datetime,
    database_imports: Iterable[datetime],
    other_imports: Iterable[datetime] = (),
    *,
    limits: QuotaLimits | None = None,
    database: str = "the database",
) -> Budget:
    """The budget at ``now`` from the times of accepted ``CreateMigrateTask`` calls.

    :param now: current time, aware (naive datetimes are refused: they are ambiguous).
    :param database_imports: this database's imports, the full included.
    :param other_imports: the other databases' imports on the same instance (empty when unknown).
    :param limits: quotas and reserve (default :class:`QuotaLimits`).
    :param database: the database name, for messages.
    """
    return Budget(
        now=now,
        database_imports=tuple(database_imports),
        other_imports=tuple(other_imports),
        limits=limits or QuotaLimits(),
        database=database,
    )


# --------------------------------------------------------------------------------------------------
# Log shipping
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShippingDecision:
    """What log shipping does next.

    ``ship``: import one backup at ``not_before`` - the oldest pending one, else a new log backup.
    ``differential``: at ``not_before``, take a differential backup and import it instead of the
    pending log backups (it supersedes them). ``wait``: no import fits the quota before
    ``not_before``. In every case, plan again at ``not_before`` before importing (module docstring).
    """

    action: Action
    not_before: datetime
    reason: str

    def to_dict(self) -> dict[str, str]:
        """JSON-safe form for XCom."""
        return {"action": self.action, "not_before": self.not_before.isoformat(), "reason": self.reason}


def _why_no_slot(budget: Budget) -> str:
    """Which window blocks the next import, and when it frees a slot."""
    reserve = budget.limits.cutover_reserve
    reasons = []
    own = _earliest_with_at_most(
        budget.database_imports, budget.now, budget.limits.window, budget.limits.per_database - reserve - 1
    )
    if own > budget.now:
        reasons.append(f"{budget.database}'s window frees a slot at {_at(own)}")
    instance = _earliest_with_at_most(
        budget.instance_imports, budget.now, budget.limits.window, budget.limits.per_instance - reserve - 1
    )
    if instance > budget.now:
        reasons.append(
            f"the instance's window (other databases' imports included) frees one at {_at(instance)}"
        )
    return " and ".join(reasons)


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0 (got {value!r})")
    return value


def plan_next_shipment(
    budget: Budget,
    *,
    interval: timedelta,
    pending_files: int,
    logs_applied: int,
    last_import_at: datetime | None = None,
) -> ShippingDecision:
    """Decide when the next import may happen, and whether a differential should replace a backlog.

    The cadence is the configured ``interval`` stretched to :attr:`QuotaLimits.pace` when shorter,
    so the imports outside the reserve last a whole window (18 per 24 h: one every 80 min). The next
    import is never earlier than one cadence after the last import, never spends the cutover
    reserve, and respects the instance's window too (other databases spend it as well).

    A backlog that does not fit the spendable imports is caught up by one differential when no log
    has been applied on top of the full yet (a differential cannot follow a log: restore-chain rule
    7); otherwise it is imported one file per slot, and the reason says how long that takes.

    :param budget: the quota state now (:func:`budget_at`).
    :param interval: the configured pause between log backups (``log_shipping.interval_minutes``).
    :param pending_files: backups already taken but not imported yet (one import each, in order).
    :param logs_applied: log backups RDS has applied on top of the full (``RestorePoint.logs_applied``).
    :param last_import_at: the last import of this database, when it may be older than the window
        (default: the latest import in the budget; the later of the two is used).
    """
    if not isinstance(interval, timedelta) or interval <= timedelta(0):
        raise ValueError(
            f"interval must be a positive timedelta (got {interval!r}): log_shipping.interval_minutes"
        )
    pending = _check_count(pending_files, "pending_files")
    _check_count(logs_applied, "logs_applied")
    limits, now = budget.limits, budget.now
    cadence = max(interval, limits.pace)
    last = [_utc(last_import_at, "last_import_at")] if last_import_at is not None else []
    last += list(budget.database_imports[-1:])
    paced = max(last) + cadence if last else now
    slot = budget.next_free_slot()
    not_before = max(now, paced, slot)

    until = _at(not_before)
    if not_before > now and paced >= slot:
        until += f" ({_span(cadence)} after the last import at {_at(max(last))})"
    when = "now" if not_before == now else f"at {until}"
    stretched = (
        f"; interval {_span(interval)} stretched to {_span(cadence)} so that "
        f"{limits.usable_per_window} imports last {_span(limits.window)}"
        if cadence > interval
        else ""
    )
    figures = (
        f"{budget.database}: {budget.figures()}, {budget.spendable} spendable outside the "
        f"{limits.cutover_reserve} kept for the cutover"
    )
    behind = pending > budget.spendable
    if behind and pending >= 2 and logs_applied == 0:
        return ShippingDecision(
            "differential",
            not_before,
            f"take a differential backup {when}: {_plural(pending, 'pending log backup')} need "
            f"{pending} imports but only {budget.spendable} are spendable; no log is applied on top of "
            f"the full yet, so one differential supersedes them in one import; {figures}",
        )
    backlog = ""
    if behind and pending >= 2:
        backlog = (
            f"; behind: {_plural(pending, 'pending backup')} need {pending} imports, at one import every "
            f"{_span(cadence)} about {format_duration(((pending - 1) * cadence).total_seconds())} to catch "
            "up; a differential cannot follow an applied log (restore-chain rule 7), so if that is too "
            "long restart the migration from a new full backup"
        )
    if slot > now:
        return ShippingDecision(
            "wait",
            not_before,
            f"wait until {until}: no import is spendable now without the cutover reserve, "
            f"{_why_no_slot(budget)}; {figures}{backlog}",
        )
    what = (
        f"import the oldest of {_plural(pending, 'pending backup')}"
        if pending
        else "take and import a new log backup"
    )
    return ShippingDecision("ship", not_before, f"{what} {when}{stretched}; {figures}{backlog}")


# --------------------------------------------------------------------------------------------------
# Cutover
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CutoverBudget:
    """Whether the cutover's imports fit the quota, for the approval briefing.

    :param feasible_now: all imports the cutover needs fit in both windows now.
    :param imports_needed: the pending backups + the tail log + the retries kept in reserve.
    :param imports_available: imports RDS would accept now (the lower of database and instance).
    :param earliest: when they fit (``now`` when feasible now); ``None`` when they never fit.
    :param message: what the approval briefing says.
    """

    feasible_now: bool
    imports_needed: int
    imports_available: int
    earliest: datetime | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for XCom and the report."""
        return {
            "feasible_now": self.feasible_now,
            "imports_needed": self.imports_needed,
            "imports_available": self.imports_available,
            "earliest": self.earliest.isoformat() if self.earliest else None,
            "message": self.message,
        }


def cutover_budget(budget: Budget, *, pending_files: int) -> CutoverBudget:
    """Check that the cutover can import the pending backups, the tail log and its retries.

    The cutover may spend the reserve (it is what the reserve is for). All its imports are counted
    at one moment: they happen within minutes, and a later moment only frees more of the window.

    :param budget: the quota state now.
    :param pending_files: backups taken but not imported yet; the cutover must import them too.
    """
    pending = _check_count(pending_files, "pending_files")
    limits = budget.limits
    needed = pending + limits.cutover_reserve
    available = min(budget.free_database, budget.free_instance)
    earliest = budget.earliest_fit(needed)
    retries = limits.cutover_reserve - 1
    parts = ", ".join(
        part
        for part in (
            _plural(pending, "pending backup") if pending else "",
            "the tail log",
            _plural(retries, "retry", "retries") if retries else "",
        )
        if part
    )
    demand = f"it needs {needed} imports ({parts})"
    figures = f"{budget.database}: {budget.figures()}"
    if earliest is None:
        message = (
            f"The cutover cannot be done within the import quota at any time: {demand}, more than RDS "
            f"accepts in {_span(limits.window)} ({limits.per_database} per database, "
            f"{limits.per_instance} per instance); import the pending backups before the freeze, "
            f"or take a differential if no log is applied yet. {figures}."
        )
    elif earliest == budget.now:
        message = f"The cutover fits the import quota: {demand} and {available} are available. {figures}."
    else:
        message = (
            f"The cutover cannot be done within the remaining budget until {_at(earliest)}: {demand} "
            f"and only {available} are available now; approve it after that time. {figures}."
        )
    return CutoverBudget(earliest == budget.now, needed, available, earliest, message)
