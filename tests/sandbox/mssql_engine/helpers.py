"""Helpers for the backup-history, time and fork tests (engine level and through pymssql)."""

from __future__ import annotations

import datetime as dt
import threading

from sandbox.mssql.results import ResultSet

BACKUP_HISTORY = (
    "SELECT bs.backup_set_id, bs.type, bs.is_copy_only, bs.first_lsn, bs.last_lsn, bs.checkpoint_lsn, "
    "bs.first_recovery_fork_guid, bs.last_recovery_fork_guid, bs.fork_point_lsn, bs.database_guid, "
    "bs.backup_start_date, bs.backup_finish_date, bs.time_zone, bs.user_name, bs.is_snapshot, "
    "bs.begins_log_chain, bs.database_name, bs.server_name, bs.media_set_id "
    "FROM msdb.dbo.backupset AS bs WHERE bs.database_name = N'{db}' ORDER BY bs.backup_set_id"
)


class FixedClock:
    """A settable clock (aware UTC), for tests that need a given instant such as a DST change."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at
        self.lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self.lock:
            return self.at

    def timestamp(self) -> float:
        return self.now().timestamp()

    def set(self, at: dt.datetime) -> None:
        with self.lock:
            self.at = at


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)


def dicts(result: ResultSet) -> list[dict]:
    names = [c.name for c in result.columns]
    return [dict(zip(names, row, strict=True)) for row in result.rows]


def history(runner, db: str) -> list[dict]:
    """msdb.dbo.backupset rows of ``db``, oldest first (``runner`` is a conftest ``Runner``)."""
    return dicts(runner.result(BACKUP_HISTORY.format(db=db.replace("'", "''"))))


def quote(name: str) -> str:
    return "[" + name.replace("]", "]]") + "]"


def lit(value: str) -> str:
    return "N'" + value.replace("'", "''") + "'"
