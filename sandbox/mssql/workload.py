"""A steady write workload against a SQL Server database, through pymssql.

It keeps inserting and updating rows of ``dbo.orders`` at a fixed rate so a migration has live
changes to ship. The migration freezes the source (READ_ONLY, SINGLE_USER, RESTRICTED_USER, RESTORING
after the tail-log backup): the workload counts those refused writes, backs off, reconnects and keeps
going until it is stopped. A privileged login (db_owner, sysadmin) is not stopped by RESTRICTED_USER.

Every write the server acknowledged is recorded (``WorkloadStats.acknowledged`` and, optionally, a JSONL
journal), so a test can prove that each acknowledged write reached the target and that none was
acknowledged after the freeze. ``idle_every_s``/``idle_for_s`` pause the writes now and then, so the
database is sometimes idle (empty log backups).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import string
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path

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
    923: "database is in restricted mode",
    924: "database is in single-user mode",
    916: "the login cannot access the database",
    4064: "cannot open the login's default database",
    927: "database is being restored",
    942: "database is offline",
    952: "database is in transition",
    4060: "cannot open the database",
    18456: "login refused",
}
OBJECT_EXISTS = 2714
DUPLICATE_KEY = 2627

# pymssql.connect can raise its low-level exception when the server drops the connection right after the
# login (a session killed by ALTER DATABASE ... WITH ROLLBACK IMMEDIATE as it arrives): a lost connection.
DRIVER_ERRORS = (pymssql.Error, pymssql._mssql.MSSQLException)

MIN_BACKOFF_S = 0.1
MAX_BACKOFF_S = 2.0
MAX_LAG_S = 1.0  # after a stall, do not burst more than this much backlog


@dataclass(frozen=True)
class AckedWrite:
    """One write the server acknowledged: the row, what was written, and when the ack arrived."""

    id: int
    kind: str  # "insert" or "update"
    value: Decimal  # the amount written
    written_at: dt.datetime  # the updated_at value written
    acked_at: dt.datetime  # when the server's acknowledgement was received (aware UTC)

    def as_json(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "value": str(self.value),
            "written_at": self.written_at.isoformat(),
            "acked_at": self.acked_at.isoformat(),
        }


@dataclass
class WorkloadStats:
    """Counts of what the workload did (printed by the CLI, returned by ``run_workload``)."""

    inserted: int = 0
    updated: int = 0
    refused: int = 0  # writes the database refused (read-only, single-user, restoring, ...)
    disconnects: int = 0  # connection lost or could not be opened (client-side errors)
    errors: int = 0  # anything else
    connects: int = 0
    idle_periods: int = 0
    elapsed_s: float = 0.0
    last_error: str | None = None
    acknowledged: list[AckedWrite] = field(default_factory=list, repr=False)

    @property
    def writes(self) -> int:
        return self.inserted + self.updated

    def as_dict(self) -> dict:
        counts = {k: v for k, v in asdict(self).items() if k != "acknowledged"}
        return counts | {"writes": self.writes, "acknowledged": len(self.acknowledged)}


def run_workload(
    conn_params: dict,
    rate: float,
    duration: float | None,
    stop_event: threading.Event,
    payload_bytes: int = 0,
    update_ratio: float = 0.3,
    on_progress: Callable[[WorkloadStats], None] | None = None,
    progress_every_s: float = 5.0,
    idle_every_s: float | None = None,
    idle_for_s: float = 0.0,
    journal_path: str | Path | None = None,
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
    :param idle_every_s: after this many seconds of writing, pause (None: never).
    :param idle_for_s: length of each pause; the connection stays open and idle.
    :param journal_path: append each acknowledged write to this JSONL file (one object per line).
    """
    if rate <= 0:
        raise ValueError("rate must be > 0 rows per second")
    if idle_every_s is not None and (idle_every_s <= 0 or idle_for_s < 0):
        raise ValueError("idle_every_s must be > 0 and idle_for_s >= 0")
    runner = _Workload(conn_params, payload_bytes, update_ratio, journal_path)
    stats = runner.stats
    started = time.monotonic()
    deadline = None if duration is None else started + duration
    interval = 1.0 / rate
    next_write = started
    next_progress = started + progress_every_s
    next_idle = None if idle_every_s is None else started + idle_every_s
    backoff = MIN_BACKOFF_S
    try:
        while not stop_event.is_set():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if next_idle is not None and now >= next_idle:
                stats.idle_periods += 1
                pause = idle_for_s if deadline is None else min(idle_for_s, deadline - now)
                if stop_event.wait(pause):
                    break
                now = time.monotonic()
                next_idle, next_write = now + idle_every_s, now
                continue
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

    def __init__(
        self, conn_params: dict, payload_bytes: int, update_ratio: float, journal_path: str | Path | None
    ):
        self.conn_params = {"login_timeout": 5, "timeout": 30, **conn_params, "autocommit": True}
        self.payload_bytes = payload_bytes
        self.update_ratio = update_ratio
        self.stats = WorkloadStats()
        self.conn = None
        self.next_id = 1
        self.first_id = 1
        self.random = random.Random()
        self.journal_path = None if journal_path is None else Path(journal_path)

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
        except DRIVER_ERRORS as e:
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
        row_id, amount, written_at = self.next_id, self._amount(), _now()
        try:
            cursor.execute(
                INSERT_SQL,
                (row_id, f"Customer {row_id} O'Brien ü", amount, self._note(row_id), written_at),
            )
        except pymssql.IntegrityError as e:
            if _error_number(e) != DUPLICATE_KEY:
                raise
            self._resync_next_id(cursor)  # someone else inserted that id: move past it
            return
        self._acknowledged(AckedWrite(row_id, "insert", amount, written_at, dt.datetime.now(dt.UTC)))
        self.next_id += 1
        self.stats.inserted += 1

    def _update(self) -> None:
        row_id = self.random.randrange(self.first_id, self.next_id)
        amount, written_at = self._amount(), _now()
        cursor = self.conn.cursor()
        cursor.execute(UPDATE_SQL, (amount, self._note(row_id), written_at, row_id))
        if cursor.rowcount:
            self._acknowledged(AckedWrite(row_id, "update", amount, written_at, dt.datetime.now(dt.UTC)))
        self.stats.updated += 1

    def _acknowledged(self, write: AckedWrite) -> None:
        self.stats.acknowledged.append(write)
        if self.journal_path is not None:
            with self.journal_path.open("a", encoding="utf-8") as journal:
                journal.write(json.dumps(write.as_json()) + "\n")

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
            except DRIVER_ERRORS:
                pass
            self.conn = None


def read_journal(path: str | Path) -> list[AckedWrite]:
    """The acknowledged writes recorded in a JSONL journal, in order."""
    writes = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            data = json.loads(line)
            writes.append(
                AckedWrite(
                    int(data["id"]),
                    data["kind"],
                    Decimal(data["value"]),
                    dt.datetime.fromisoformat(data["written_at"]),
                    dt.datetime.fromisoformat(data["acked_at"]),
                )
            )
    return writes


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
        text.startswith("DB-Lib error message")
        or isinstance(error, (pymssql.InterfaceError, pymssql._mssql.MSSQLException))
    ):
        return "disconnects"
    if _error_number(error) in REFUSED_WRITE_ERRORS or "message 20002" in text:
        return "refused"
    return "errors"


def _error_text(error: Exception) -> str:
    """The server's message without FreeTDS's trailing DB-Lib boilerplate."""
    text = _raw_text(error)
    return text.split("DB-Lib error message")[0].strip() or text.strip()
