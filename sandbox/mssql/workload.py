"""A steady write workload against a SQL Server database, through pymssql.

It keeps inserting and updating rows of ``dbo.orders`` at a fixed rate so a migration has live
changes to ship. The migration freezes the source (READ_ONLY, SINGLE_USER, RESTORING after the
tail-log backup): the workload counts those refused writes, backs off, reconnects and keeps
going until it is stopped.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import string
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from decimal import Decimal

import pymssql

log = logging.getLogger(__name__)

TABLE = "dbo.orders"
CREATE_TABLE_SQL = (
    "CREATE TABLE dbo.orders ("
    "id int NOT NULL PRIMARY KEY, "
    "customer nvarchar(100) NULL, "
    "amount decimal(12,2) NULL, "
    "note nvarchar(max) NULL, "
    "updated_at datetime2 NULL)"
)
MAX_ID_SQL = "SELECT MAX(id) FROM dbo.orders"
INSERT_SQL = "INSERT INTO dbo.orders (id, customer, amount, note, updated_at) VALUES (%d, %s, %s, %s, %s)"
UPDATE_SQL = "UPDATE dbo.orders SET amount = %s, note = %s, updated_at = %s WHERE id = %d"

# Server errors that mean "the database does not take writes right now" (the migration froze it).
REFUSED_WRITE_ERRORS = {
    3906: "database is read-only",
    924: "database is in single-user mode",
    927: "database is being restored",
    942: "database is offline",
    952: "database is in transition",
    4060: "cannot open the database",
    18456: "login refused",
}
OBJECT_EXISTS = 2714
DUPLICATE_KEY = 2627

MIN_BACKOFF_S = 0.1
MAX_BACKOFF_S = 2.0
MAX_LAG_S = 1.0  # after a stall, do not burst more than this much backlog


@dataclass
class WorkloadStats:
    """Counts of what the workload did (printed by the CLI, returned by ``run_workload``)."""

    inserted: int = 0
    updated: int = 0
    refused: int = 0  # writes the database refused (read-only, single-user, restoring, ...)
    disconnects: int = 0  # connection lost or could not be opened (client-side errors)
    errors: int = 0  # anything else
    connects: int = 0
    elapsed_s: float = 0.0
    last_error: str | None = None

    @property
    def writes(self) -> int:
        return self.inserted + self.updated

    def as_dict(self) -> dict:
        return asdict(self) | {"writes": self.writes}


def run_workload(
    conn_params: dict,
    rate: float,
    duration: float | None,
    stop_event: threading.Event,
    payload_bytes: int = 0,
    update_ratio: float = 0.3,
    on_progress: Callable[[WorkloadStats], None] | None = None,
    progress_every_s: float = 5.0,
) -> WorkloadStats:
    """Insert/update rows of ``dbo.orders`` at ``rate`` rows per second.

    :param conn_params: keyword arguments for ``pymssql.connect`` (server, port, user, password,
        database, tds_version, ...). ``autocommit`` is forced on.
    :param rate: target writes per second (> 0).
    :param duration: seconds to run, or None to run until ``stop_event`` is set.
    :param stop_event: set it to stop the workload (checked between writes and while waiting).
    :param payload_bytes: characters of filler text in each row's ``note`` (0 = a short note).
    :param update_ratio: share of writes that update an existing row instead of inserting.
    :param on_progress: called with the running stats every ``progress_every_s`` seconds.
    """
    if rate <= 0:
        raise ValueError("rate must be > 0 rows per second")
    runner = _Workload(conn_params, payload_bytes, update_ratio)
    stats = runner.stats
    started = time.monotonic()
    deadline = None if duration is None else started + duration
    interval = 1.0 / rate
    next_write = started
    next_progress = started + progress_every_s
    backoff = MIN_BACKOFF_S
    try:
        while not stop_event.is_set():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if next_write > now:
                wake_at = next_write if deadline is None else min(next_write, deadline)
                if stop_event.wait(wake_at - now):
                    break
                continue
            if runner.write_once():
                backoff = MIN_BACKOFF_S
            else:
                # Refused or failed: wait before trying again, longer while it keeps failing.
                if stop_event.wait(backoff):
                    break
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            now = time.monotonic()
            next_write = max(next_write + interval, now - MAX_LAG_S)
            if on_progress is not None and now >= next_progress:
                stats.elapsed_s = now - started
                on_progress(stats)
                next_progress = now + progress_every_s
    finally:
        runner.close()
        stats.elapsed_s = time.monotonic() - started
    return stats


class _Workload:
    """Connection handling and the individual writes of ``run_workload``."""

    def __init__(self, conn_params: dict, payload_bytes: int, update_ratio: float):
        self.conn_params = {"login_timeout": 5, "timeout": 30, **conn_params, "autocommit": True}
        self.payload_bytes = payload_bytes
        self.update_ratio = update_ratio
        self.stats = WorkloadStats()
        self.conn = None
        self.next_id = 1
        self.first_id = 1
        self.random = random.Random()

    def write_once(self) -> bool:
        """One insert or update; returns False when it failed (already counted)."""
        try:
            if self.conn is None:
                self._connect()
            if self.next_id > self.first_id and self.random.random() < self.update_ratio:
                self._update()
            else:
                self._insert()
            return True
        except pymssql.Error as e:
            self._count_failure(e)
            self.close()  # reconnect next time: the session may be gone or the database frozen
            return False

    def _connect(self) -> None:
        self.conn = pymssql.connect(**self.conn_params)
        self.stats.connects += 1
        cursor = self.conn.cursor()
        try:
            cursor.execute(CREATE_TABLE_SQL)
        except pymssql.Error as e:
            if _error_number(e) != OBJECT_EXISTS:
                raise
        self._resync_next_id(cursor)

    def _resync_next_id(self, cursor) -> None:
        cursor.execute(MAX_ID_SQL)
        row = cursor.fetchone()
        highest = row[0] if row and row[0] is not None else 0
        self.next_id = max(self.next_id, int(highest) + 1)

    def _insert(self) -> None:
        cursor = self.conn.cursor()
        row_id = self.next_id
        try:
            cursor.execute(
                INSERT_SQL,
                (row_id, f"Customer {row_id} O'Brien ü", self._amount(), self._note(row_id), _now()),
            )
        except pymssql.IntegrityError as e:
            if _error_number(e) != DUPLICATE_KEY:
                raise
            self._resync_next_id(cursor)  # someone else inserted that id: move past it
            return
        self.next_id += 1
        self.stats.inserted += 1

    def _update(self) -> None:
        row_id = self.random.randrange(self.first_id, self.next_id)
        cursor = self.conn.cursor()
        cursor.execute(UPDATE_SQL, (self._amount(), self._note(row_id), _now(), row_id))
        self.stats.updated += 1

    def _amount(self) -> Decimal:
        return Decimal(self.random.randrange(1, 10_000_000)) / 100

    def _note(self, row_id: int) -> str:
        if self.payload_bytes <= 0:
            return f"order {row_id}"
        return "".join(self.random.choices(string.ascii_letters + string.digits, k=self.payload_bytes))

    def _count_failure(self, error: pymssql.Error) -> None:
        kind = _classify(error)
        setattr(self.stats, kind, getattr(self.stats, kind) + 1)
        number = _error_number(error) if kind != "disconnects" else None
        self.stats.last_error = f"{number}: {_error_text(error)}" if number else _error_text(error)
        log.debug("write failed (%s): %s", kind, self.stats.last_error)

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except pymssql.Error:
                pass
            self.conn = None


def _now() -> dt.datetime:
    return dt.datetime.now().replace(tzinfo=None)


def _error_number(error: Exception) -> int | None:
    """The SQL Server / DB-Library error number pymssql put in the exception, if any."""
    args = error.args
    if args and isinstance(args[0], tuple):  # pymssql wraps (number, message) in another tuple
        args = args[0]
    if args and isinstance(args[0], int):
        return args[0]
    return None


def _raw_text(error: Exception) -> str:
    args = error.args
    if args and isinstance(args[0], tuple):
        args = args[0]
    text = args[1] if len(args) > 1 else (args[0] if args else "")
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def _classify(error: Exception) -> str:
    """Which counter a failure goes to: ``refused``, ``disconnects`` or ``errors``.

    FreeTDS appends its own messages to the server's: 20018 ("General SQL Server error") means
    the server answered with an error; 20002 ("TDS server connection failed") means it rejected
    the login. Without either, the failure is client-side (unreachable, connection lost) and
    pymssql's number may be a stale one from an earlier message.
    """
    text = _raw_text(error)
    server_answered = "message 20018" in text or "message 20002" in text
    if not server_answered and (
        text.startswith("DB-Lib error message") or isinstance(error, pymssql.InterfaceError)
    ):
        return "disconnects"
    if _error_number(error) in REFUSED_WRITE_ERRORS or "message 20002" in text:
        return "refused"
    return "errors"


def _error_text(error: Exception) -> str:
    """The server's message without FreeTDS's trailing DB-Lib boilerplate."""
    text = _raw_text(error)
    return text.split("DB-Lib error message")[0].strip() or text.strip()
