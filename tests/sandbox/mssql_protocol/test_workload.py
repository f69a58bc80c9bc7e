"""The write workload (run_workload and the CLI) against a fake instance that can be frozen."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sandbox.mssql.results import Column, Done, ResultSet, SqlError
from sandbox.mssql.server import ThreadedTdsServer
from sandbox.mssql.workload import read_journal, run_workload
from tests.sandbox.mssql_protocol.conftest import PASSWORD, USER, FakeInstance

REPO = Path(__file__).resolve().parents[3]


class OrdersInstance(FakeInstance):
    """Keeps ``dbo.orders`` ids in memory; ``freeze_with`` makes writes (and logins) fail."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[int] = set()
        self.updates = 0
        self.payload_lengths: list[int] = []
        self.frozen: SqlError | None = None
        self.table_created = False

    def login(self, user, password, database, app_name="", host_name="", language_name=None):
        if self.frozen is not None and self.frozen.number == 924:
            raise SqlError(
                924, 14, 1, "Database 'shop' is already open and can only have one user at a time."
            )
        return super().login(user, password, database, app_name, host_name)

    def _statement(self, session, sql, emit, cancel) -> None:
        upper = sql.upper()
        if upper.startswith("CREATE TABLE DBO.ORDERS"):
            if self.table_created:
                raise SqlError(2714, 16, 6, "There is already an object named 'orders' in the database.")
            self.table_created = True
            emit(Done())
        elif upper == "SELECT MAX(ID) FROM DBO.ORDERS":
            emit(ResultSet([Column("", "int")], [(max(self.ids, default=None),)]))
        elif upper.startswith(("INSERT", "UPDATE DBO.ORDERS")):
            self._write(sql, emit)
        else:
            super()._statement(session, sql, emit, cancel)

    def _write(self, sql, emit) -> None:
        if self.frozen is not None:
            raise self.frozen
        if sql.upper().startswith("INSERT"):
            row_id = int(re.search(r"VALUES \((\d+),", sql).group(1))
            if row_id in self.ids:
                raise SqlError(2627, 14, 1, "Violation of PRIMARY KEY constraint.")
            self.ids.add(row_id)
            note = re.search(r", N'([A-Za-z0-9 ]*)', '", sql)
            self.payload_lengths.append(len(note.group(1)) if note else -1)
        else:
            self.updates += 1
        emit(Done(rowcount=1))


@pytest.fixture
def orders_server():
    instance = OrdersInstance()
    with ThreadedTdsServer(instance) as server:
        yield instance, server


def params(server) -> dict:
    return dict(server="127.0.0.1", port=server.port, user=USER, password=PASSWORD, database="shop")


def test_writes_at_the_requested_rate(orders_server):
    instance, server = orders_server
    stats = run_workload(
        params(server), rate=40, duration=1.0, stop_event=threading.Event(), payload_bytes=64
    )
    assert 25 <= stats.writes <= 45
    assert stats.inserted == len(instance.ids) and stats.updated == instance.updates
    assert stats.refused == stats.errors == 0
    assert set(instance.payload_lengths) == {64}


def test_refused_writes_are_counted_and_the_workload_recovers(orders_server):
    instance, server = orders_server
    stop = threading.Event()
    result = {}
    worker = threading.Thread(
        target=lambda: result.setdefault("stats", run_workload(params(server), 50, None, stop)), daemon=True
    )
    worker.start()
    time.sleep(0.4)
    instance.frozen = SqlError(
        3906, 16, 1, "Failed to update database 'shop' because the database is read-only."
    )
    time.sleep(0.6)
    instance.frozen = SqlError(924, 14, 1, "Database 'shop' is already open and can only have one user.")
    time.sleep(0.6)
    instance.frozen = None
    before = len(instance.ids)
    time.sleep(2.5)  # backoff is at most 2 s
    stop.set()
    worker.join(5)
    assert not worker.is_alive()
    stats = result["stats"]
    assert stats.refused >= 2
    assert len(instance.ids) > before  # writing again after the freeze
    assert stats.inserted == len(instance.ids)
    assert stats.last_error  # pymssql may attach a stale number to a refused login: don't pin it


def test_continues_after_existing_rows(orders_server):
    instance, server = orders_server
    instance.table_created = True
    instance.ids.update({1, 2, 3, 10})
    stats = run_workload(params(server), rate=20, duration=0.3, stop_event=threading.Event(), update_ratio=0)
    assert stats.inserted >= 1 and min(instance.ids - {1, 2, 3, 10}) == 11


def test_unreachable_server_counts_disconnects_and_stops():
    stop = threading.Event()
    threading.Timer(0.8, stop.set).start()
    stats = run_workload(
        dict(server="127.0.0.1", port=1, user=USER, password="x", database="shop", login_timeout=1),
        rate=10,
        duration=None,
        stop_event=stop,
    )
    assert stats.writes == 0 and stats.disconnects >= 1


def test_cli_workload_uses_env_password_and_stops_on_sigterm(orders_server, tmp_path):
    instance, server = orders_server
    journal = tmp_path / "acks.jsonl"
    env = dict(os.environ, SANDBOX_MSSQL_PASSWORD=PASSWORD, PYTHONPATH=str(REPO))
    command = [
        sys.executable,
        "-m",
        "sandbox.mssql.cli",
        "workload",
        "--host",
        "127.0.0.1",
        "--port",
        str(server.port),
        "--user",
        USER,
        "--database",
        "shop",
        "--rate",
        "30",
        "--journal",
        str(journal),
    ]
    proc = subprocess.Popen(
        command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 15
        while len(instance.ids) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert '"inserted"' in out.splitlines()[-1] and out.splitlines()[-1].startswith("done ")
    assert PASSWORD not in out + err
    assert {w.id for w in read_journal(journal) if w.kind == "insert"} == instance.ids


def test_acknowledged_writes_are_recorded_and_journaled(orders_server, tmp_path):
    instance, server = orders_server
    journal = tmp_path / "journal.jsonl"
    stats = run_workload(
        params(server), rate=40, duration=1.0, stop_event=threading.Event(), journal_path=journal
    )
    acks = stats.acknowledged
    assert len(acks) == stats.writes and read_journal(journal) == acks
    assert {w.id for w in acks if w.kind == "insert"} == instance.ids
    assert all(a.acked_at <= b.acked_at for a, b in zip(acks, acks[1:], strict=False))
    assert stats.as_dict()["acknowledged"] == len(acks) and "acknowledged" not in repr(stats)


def test_idle_periods_leave_the_database_idle(orders_server):
    _instance, server = orders_server
    stats = run_workload(
        params(server), rate=50, duration=2.4, stop_event=threading.Event(), idle_every_s=0.4, idle_for_s=0.5
    )
    assert stats.idle_periods >= 2
    times = [w.acked_at for w in stats.acknowledged]
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    assert sum(gap >= 0.45 for gap in gaps) >= 2
    with pytest.raises(ValueError):
        run_workload(params(server), 10, 0.1, threading.Event(), idle_every_s=0)


def test_cli_workload_requires_a_password(monkeypatch, capsys):
    from sandbox.mssql.cli import main

    monkeypatch.delenv("SANDBOX_MSSQL_PASSWORD", raising=False)
    code = main(["workload", "--user", "sa", "--database", "shop", "--duration", "0.1"])
    assert code == 2
    assert "SANDBOX_MSSQL_PASSWORD" in capsys.readouterr().err


def test_a_connection_dropped_right_after_login_is_a_disconnect(monkeypatch):
    """pymssql raises its low-level exception when the server drops the connection between the login and
    the first statement (a session killed by ROLLBACK IMMEDIATE as it arrives): the workload goes on."""
    from pymssql import _mssql

    from sandbox.mssql import workload

    def dropped(**_params):
        raise _mssql.MSSQLDatabaseException(
            (20017, b"DB-Lib error message 20017, severity 9:\nUnexpected EOF")
        )

    monkeypatch.setattr(workload.pymssql, "connect", dropped)
    stats = run_workload(
        dict(server="127.0.0.1", port=1, user=USER, password="x"), 50, 0.3, threading.Event()
    )
    assert stats.disconnects >= 1 and stats.errors == 0 and stats.writes == 0
