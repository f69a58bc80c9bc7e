"""The daily import quotas of CreateMigrateTask (R2): 20 per database and 500 per instance per day.

[INST] documents the limits, not what a "day" is nor which calls count. The stand-in counts every
*accepted* CreateMigrateTask (full or incremental, whether the import later fails or not; refused
calls and CreateOnlineDatabaseTask do not count) and lets the config choose the day: a calendar day
in a time zone, or the last 24 hours (a rolling window whose length tests may scale down).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sandbox.rds import errors

DAY_S = 24 * 3600


class ImportQuota:
    """Counts accepted imports by database and refuses the one over a daily limit.

    :param per_database: imports per database per day.
    :param per_instance: imports per instance per day.
    :param window: ``calendar`` or ``rolling``.
    :param timezone: IANA zone of a calendar day.
    :param database_code: error code of the per-database refusal.
    :param window_s: length of the rolling window in seconds (a day).
    """

    def __init__(
        self,
        per_database: int,
        per_instance: int,
        window: str,
        timezone: str,
        database_code: str,
        window_s: float = DAY_S,
    ):
        self.per_database = per_database
        self.per_instance = per_instance
        self.window = window
        self.window_s = window_s
        self.zone = ZoneInfo(timezone)
        self.database_code = database_code
        self.imports: list[tuple[str, float]] = []  # (database name, lower case; sandbox epoch)

    def _same_day(self, then: float, now: float) -> bool:
        if self.window == "rolling":
            return now - self.window_s < then <= now
        day = datetime.fromtimestamp(now, self.zone).date()
        return datetime.fromtimestamp(then, self.zone).date() == day

    def check(self, db_name: str, now: float) -> None:
        """Raise the refusal if one more import of ``db_name`` now would exceed a limit."""
        today = [name for name, then in self.imports if self._same_day(then, now)]
        if today.count(db_name.lower()) >= self.per_database:
            raise errors.daily_db_quota(self.database_code)
        if len(today) >= self.per_instance:
            raise errors.daily_instance_quota()

    def record(self, db_name: str, now: float) -> None:
        # Older entries can count for no day any more: keep the list (and the state file) short.
        self.imports = [(n, t) for n, t in self.imports if now - t < 2 * max(DAY_S, self.window_s)]
        self.imports.append((db_name.lower(), now))

    def to_state(self) -> list[list]:
        return [[name, then] for name, then in self.imports]

    def load(self, state: list[list]) -> None:
        self.imports = [(str(name), float(then)) for name, then in state]
