"""The sandbox TDS server as seen by pymssql (FreeTDS), with TDS 7.4 and older versions."""

from __future__ import annotations

import threading
import time

import pymssql
import pytest

from tests.sandbox.mssql_protocol.conftest import (
    ALL_TYPES_ROW,
    BIG_LSN,
    PASSWORD,
    USER,
    connect_error_in_fresh_process,
)

VERSIONS = ["7.4", "7.1"]


def connect(server, tds_version="7.4", **kwargs):
    params = dict(
        server="127.0.0.1",
        port=server.port,
        user=USER,
        password=PASSWORD,
        database="shop",
        tds_version=tds_version,
        login_timeout=10,
        autocommit=True,
    )
    params.update(kwargs)
    return pymssql.connect(**params)


@pytest.mark.parametrize("tds_version", VERSIONS)
def test_login_and_select(tds_server, tds_version):
    with connect(tds_server, tds_version) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT 1")
        assert cursor.fetchall() == [(1,)]
        cursor.execute("SELECT DB_NAME()")
        assert cursor.fetchone() == ("shop",)


def test_login_into_unicode_database_name(tds_server):
    with connect(tds_server, database="Ünïcode ]db'") as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT DB_NAME()")
        assert cursor.fetchone() == ("Ünïcode ]db'",)


def test_bad_password_is_18456_and_not_leaked(tds_server, fake_instance):
    number, text = connect_error_in_fresh_process(
        tds_server.port, user=USER, password="wrong-secret", database="shop", tds_version="7.4"
    )
    assert number == 18456
    assert "wrong-secret" not in text
    assert fake_instance.sessions == {}


def test_unknown_database_is_refused(tds_server):
    number, _ = connect_error_in_fresh_process(
        tds_server.port, user=USER, password=PASSWORD, database="nope", tds_version="7.4"
    )
    assert number == 18456  # SQL Server sends 4060, then 18456 (FreeTDS reports the last)


@pytest.mark.parametrize("tds_version", ["7.4", "7.3", "7.1"])
def test_every_type_and_nulls(tds_server, tds_version):
    with connect(tds_server, tds_version) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT ALL_TYPES")
        values, nulls = cursor.fetchall()
    expected = list(ALL_TYPES_ROW)
    if tds_version < "7.3":  # datetime2 reaches down-level clients as text, like SQL Server does
        expected[10] = "2024-02-29 23:59:58.1234560"
    assert list(values) == expected
    assert values[7] == BIG_LSN and values[7] > 2**64
    assert nulls == (None,) * len(ALL_TYPES_ROW)
    names = [d[0] for d in cursor.description]
    assert names[-1] == "col ]'ü"


@pytest.mark.parametrize("tds_version", VERSIONS)
def test_multi_packet_result_and_multiple_result_sets(tds_server, tds_version):
    with connect(tds_server, tds_version) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT BIG 5000; SELECT 1; UPDATE 3; SELECT ALL_TYPES")
        big = cursor.fetchall()
        assert len(big) == 5000 and big[-1] == (4999, "row 4999")
        assert cursor.nextset()
        assert cursor.fetchall() == [(1,)]
        assert cursor.nextset()
        assert len(cursor.fetchall()) == 2
        assert not cursor.nextset()


def test_rowcount_of_dml(tds_server):
    with connect(tds_server) as conn:
        cursor = conn.cursor()
        cursor.execute("UPDATE 17")
        assert cursor.rowcount == 17


def test_info_messages_arrive_while_the_statement_runs(tds_server):
    received: list[tuple[float, int, str]] = []

    def on_message(state, severity, server, proc, line, text):
        received.append((time.monotonic(), severity, text.decode() if isinstance(text, bytes) else text))

    with connect(tds_server) as conn:
        conn._conn.set_msghandler(on_message)
        cursor = conn.cursor()
        started = time.monotonic()
        cursor.execute("PROGRESS 1.0")
        while cursor.nextset():
            pass
        finished = time.monotonic()
    texts = [text for _t, _s, text in received]
    assert texts[0] == "10 percent processed." and texts[-1].startswith("BACKUP DATABASE successfully")
    assert all(severity == 0 for _t, severity, _x in received)
    # Streaming, not buffered: the first message arrived long before the statement ended.
    assert received[0][0] - started < 0.6 * (finished - started)


@pytest.mark.parametrize("tds_version", VERSIONS)
def test_error_token_raises_with_number_and_message(tds_server, tds_version):
    with connect(tds_server, tds_version) as conn:
        cursor = conn.cursor()
        with pytest.raises(pymssql.OperationalError) as excinfo:
            cursor.execute("RAISE 3013 16 BACKUP DATABASE is terminating abnormally.")
        assert excinfo.value.args[0] == 3013
        assert b"BACKUP DATABASE is terminating abnormally." in excinfo.value.args[1]
        cursor.execute("SELECT 1")  # still usable
        assert cursor.fetchall() == [(1,)]


def test_syntax_error_is_programming_error(tds_server):
    with connect(tds_server) as conn:
        with pytest.raises(pymssql.ProgrammingError) as excinfo:
            conn.cursor().execute("SELEKT nothing")
        assert excinfo.value.args[0] == 102


def test_non_fatal_error_message_raises(tds_server):
    with connect(tds_server) as conn:
        cursor = conn.cursor()
        with pytest.raises(pymssql.DatabaseError) as excinfo:
            cursor.execute("WARN disk is almost full")
        assert excinfo.value.args[0] == 50001


def test_use_database_changes_context(tds_server):
    with connect(tds_server) as conn:
        cursor = conn.cursor()
        cursor.execute("USE master")
        cursor.execute("SELECT DB_NAME()")
        assert cursor.fetchone() == ("master",)


def test_cancel_from_another_thread_keeps_connection_usable(tds_server, fake_instance):
    # pymssql's Connection has no cancel(); the underlying _mssql connection does (dbcancel -> ATTENTION).
    with connect(tds_server) as conn:
        cursor = conn.cursor()
        timer = threading.Timer(0.3, conn._conn.cancel)
        timer.start()
        started = time.monotonic()
        try:
            with pytest.raises(pymssql.OperationalError):
                cursor.execute("SLEEP 20")
        finally:
            timer.join()
        assert time.monotonic() - started < 5
        assert fake_instance.cancelled.wait(5)
        cursor.execute("SELECT 1")
        assert cursor.fetchall() == [(1,)]


def test_query_timeout_aborts_the_batch(tds_server, fake_instance, wait_until):
    # On a query timeout pymssql drops the connection (no ATTENTION): the server must notice the
    # disconnect, cancel the running statement and close the session.
    conn = connect(tds_server, timeout=1)
    started = time.monotonic()
    with pytest.raises(pymssql.OperationalError) as excinfo:
        conn.cursor().execute("SLEEP 20")
    assert time.monotonic() - started < 8
    assert "timed out" in str(excinfo.value)
    assert fake_instance.cancelled.wait(5)
    assert wait_until(lambda: not fake_instance.sessions)
    conn.close()
    with connect(tds_server) as fresh:
        cursor = fresh.cursor()
        cursor.execute("SELECT 1")
        assert cursor.fetchall() == [(1,)]


@pytest.mark.parametrize("tds_version", VERSIONS)
def test_autocommit_off_uses_begin_tran_batches(tds_server, fake_instance, tds_version):
    with connect(tds_server, tds_version, autocommit=False) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT @@TRANCOUNT")
        assert cursor.fetchone() == (1,)
        conn.commit()
        conn.rollback()
        (session,) = fake_instance.sessions.values()
    assert session.events[0].upper().startswith("BEGIN TRAN")
    assert any("COMMIT" in event.upper() for event in session.events)


def test_closing_the_connection_closes_the_session(tds_server, fake_instance, wait_until):
    conn = connect(tds_server)
    conn.cursor().execute("SELECT 1")
    assert len(fake_instance.sessions) == 1
    conn.close()
    assert wait_until(lambda: not fake_instance.sessions)
