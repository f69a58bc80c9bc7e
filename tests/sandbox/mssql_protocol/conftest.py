"""Fixtures for the TDS protocol tests: a small fake engine ``Instance`` and a running server.

The fake understands a handful of commands (one per statement, statements split on ``;``) so
the protocol layer is tested without the real SQL engine:

- ``SET ...``, ``BEGIN TRAN``, ``COMMIT``/``ROLLBACK`` forms pymssql sends -> Done
- ``SELECT 1`` -> one int; ``SELECT @@TRANCOUNT``; ``SELECT DB_NAME()``
- ``SELECT ALL_TYPES`` -> every column type, one row of values and one row of NULLs
- ``SELECT BIG <n>`` -> n rows (multi-packet responses)
- ``PROGRESS <seconds>`` -> STATS-like INFO messages over the given time, honours cancel
- ``SLEEP <seconds>`` -> waits, honours cancel
- ``RAISE <number> <severity> <text>`` -> SqlError (aborts the batch)
- ``WARN <text>`` -> a non-fatal severity-16 message, then a result set
- ``USE <db>`` -> EnvChange + INFO 5701
- ``UPDATE <n>`` -> Done(rowcount=n)
- anything starting with ``DECLARE`` (from RPC) -> the batch text echoed as one nvarchar(max)
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from sandbox.mssql.results import Column, Done, EnvChange, Message, ResultSet, SqlError
from sandbox.mssql.server import ThreadedTdsServer

USER = "sa"
PASSWORD = "S3cr3t!'pw]ü"  # quotes, brackets and Unicode on purpose
DATABASES = {"master", "shop", "Ünïcode ]db'"}

BIG_LSN = Decimal("1234567890123456789012345")  # numeric(25,0) > 2**64
ALL_TYPES_COLUMNS = [
    Column("c_int", "int"),
    Column("c_bigint", "bigint"),
    Column("c_smallint", "smallint"),
    Column("c_tinyint", "tinyint"),
    Column("c_bit", "bit"),
    Column("c_nvarchar", "nvarchar", size=100),
    Column("c_numeric", "numeric", precision=12, scale=2),
    Column("c_lsn", "numeric", precision=25, scale=0),
    Column("c_float", "float"),
    Column("c_datetime", "datetime"),
    Column("c_datetime2", "datetime2", scale=7),
    Column("c_guid", "uniqueidentifier"),
    Column("c_varbinary", "varbinary", size=50),
    Column("c_nvarchar_max", "nvarchar", size=-1),
    Column("c_varbinary_max", "varbinary", size=-1),
    Column("col ]'ü", "int"),
]
ALL_TYPES_ROW = (
    -2147483648,
    9223372036854775807,
    -32768,
    255,
    True,
    "Grüße ]' 漢字 🙂",
    Decimal("-1234567890.12"),
    BIG_LSN,
    3.141592653589793,
    dt.datetime(2024, 2, 29, 23, 59, 58, 990000),
    dt.datetime(2024, 2, 29, 23, 59, 58, 123456),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    b"\x00\x01\xfe\xff",
    "x" * 10000,
    b"\xab" * 20000,
    7,
)


@dataclass
class FakeSession:
    spid: int
    user: str
    database: str
    trancount: int = 0
    events: list[str] = field(default_factory=list)


class FakeInstance:
    """Just enough of the engine ``Instance`` interface for protocol tests."""

    server_name = "FAKESQL"
    product_version = "16.0.4135.4"

    def __init__(self) -> None:
        self._spids = itertools.count(51)
        self.sessions: dict[int, FakeSession] = {}
        self.closed: list[int] = []
        self.cancelled = threading.Event()
        self.lock = threading.Lock()

    def login(self, user, password, database, app_name="", host_name="", language_name=None):
        if user != USER or password != PASSWORD:
            raise SqlError(18456, 14, 1, f"Login failed for user '{user}'.")
        database = database or "master"
        if database not in DATABASES:
            raise SqlError(4060, 11, 1, f'Cannot open database "{database}" requested by the login.')
        session = FakeSession(next(self._spids), user, database)
        with self.lock:
            self.sessions[session.spid] = session
        return session

    def close_session(self, session) -> None:
        with self.lock:
            self.sessions.pop(session.spid, None)
            self.closed.append(session.spid)

    def begin_transaction(self, session) -> None:
        session.trancount += 1
        session.events.append("begin")

    def commit(self, session) -> None:
        if session.trancount == 0:
            raise SqlError(
                3902, 16, 1, "The COMMIT TRANSACTION request has no corresponding BEGIN TRANSACTION."
            )
        session.trancount -= 1
        session.events.append("commit")

    def rollback(self, session) -> None:
        session.trancount = 0
        session.events.append("rollback")

    def execute(self, session, sql, emit, cancel) -> None:
        sql = sql.strip()
        if sql.upper().startswith("DECLARE"):
            last_line = sql.splitlines()[-1]
            if last_line.upper().startswith("RAISE "):
                self._statement(session, last_line, emit, cancel)
            emit(ResultSet([Column("batch", "nvarchar", size=-1)], [(sql,)]))
            return
        for statement in (s.strip() for s in sql.split(";")):
            if statement:
                self._statement(session, statement, emit, cancel)
                if cancel.is_set():
                    self.cancelled.set()
                    return

    def _statement(self, session, sql, emit, cancel) -> None:
        upper = sql.upper()
        words = sql.split()
        if upper.startswith("SET "):
            emit(Done())
        elif "COMMIT" in upper or "ROLLBACK" in upper:  # pymssql: IF @@TRANCOUNT > 0 COMMIT TRAN
            session.trancount = 0
            session.events.append(sql)
            emit(Done())
        elif upper in ("BEGIN TRAN", "BEGIN TRANSACTION"):
            session.trancount += 1
            session.events.append(sql)
            emit(Done())
        elif upper == "SELECT 1":
            emit(ResultSet([Column("", "int")], [(1,)]))
        elif upper == "SELECT @@TRANCOUNT":
            emit(ResultSet([Column("", "int")], [(session.trancount,)]))
        elif upper == "SELECT DB_NAME()":
            emit(ResultSet([Column("", "nvarchar", size=128)], [(session.database,)]))
        elif upper == "SELECT ALL_TYPES":
            emit(ResultSet(ALL_TYPES_COLUMNS, [ALL_TYPES_ROW, (None,) * len(ALL_TYPES_COLUMNS)]))
        elif upper.startswith("SELECT BIG "):
            count = int(words[2])
            emit(
                ResultSet(
                    [Column("n", "int"), Column("s", "nvarchar", size=50)],
                    [(i, f"row {i}") for i in range(count)],
                )
            )
        elif upper.startswith("PROGRESS "):
            self._progress(float(words[1]), emit, cancel)
        elif upper.startswith("SLEEP "):
            cancel.wait(float(words[1]))
            emit(Done())
        elif upper.startswith("RAISE "):
            raise SqlError(int(words[1]), int(words[2]), 1, " ".join(words[3:]))
        elif upper.startswith("WARN "):
            emit(Message(50001, 16, 1, sql[5:], server=self.server_name))
            emit(ResultSet([Column("after", "int")], [(2,)]))
        elif upper.startswith("USE "):
            new = sql[4:].strip()
            if new.startswith("[") and new.endswith("]"):
                new = new[1:-1].replace("]]", "]")
            if new not in DATABASES:
                raise SqlError(911, 16, 1, f"Database '{new}' does not exist.")
            old, session.database = session.database, new
            emit(EnvChange("database", new, old))
            emit(Message(5701, 0, 1, f"Changed database context to '{new}'."))
            emit(Done())
        elif upper.startswith("UPDATE "):
            emit(Done(rowcount=int(words[1])))
        else:
            raise SqlError(102, 15, 1, f"Incorrect syntax near '{words[0] if words else ''}'.")

    def _progress(self, seconds: float, emit, cancel) -> None:
        """Ten STATS-like messages spread over ``seconds``; stops early on cancel."""
        for percent in range(10, 101, 10):
            if cancel.wait(seconds / 10):
                return
            emit(Message(3211, 0, 1, f"{percent} percent processed."))
        emit(Message(3014, 0, 1, "BACKUP DATABASE successfully processed 42 pages."))
        emit(Done())


@pytest.fixture
def fake_instance() -> FakeInstance:
    return FakeInstance()


@pytest.fixture
def tds_server(fake_instance):
    with ThreadedTdsServer(fake_instance) as server:
        yield server


@pytest.fixture
def wait_until():
    def _wait(predicate, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()

    return _wait


def connect_error_in_fresh_process(port: int, **kwargs) -> tuple[int, str]:
    """``(number, text)`` of a failing ``pymssql.connect``, in a new interpreter.

    pymssql keeps login-time messages in process-wide state: in a process that saw other login
    failures (the suite's workload, other tests) the number of a new failure can be stale.
    """
    import json
    import subprocess
    import sys

    params = {"server": "127.0.0.1", "port": str(port), "login_timeout": 5, **kwargs}
    code = (
        "import json, sys, pymssql\n"
        "try:\n"
        "    pymssql.connect(**json.loads(sys.argv[1]))\n"
        "except pymssql.OperationalError as e:\n"
        "    print(json.dumps([e.args[0][0], str(e)]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(params)], capture_output=True, text=True, timeout=60
    )
    number, text = json.loads(out.stdout.strip().splitlines()[-1])
    return number, text
