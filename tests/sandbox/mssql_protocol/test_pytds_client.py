"""The sandbox TDS server as seen by python-tds (pytds): types, RPC sp_executesql, TM requests."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from decimal import Decimal

import pytds
import pytest

from tests.sandbox.mssql_protocol.conftest import ALL_TYPES_ROW, PASSWORD, USER


def connect(server, **kwargs):
    params = dict(
        dsn="127.0.0.1",
        port=server.port,
        user=USER,
        password=PASSWORD,
        database="shop",
        autocommit=True,
        login_timeout=10,
    )
    params.update(kwargs)
    return pytds.connect(**params)


@pytest.mark.parametrize("tds_version", [pytds.tds_base.TDS74, pytds.tds_base.TDS72, pytds.tds_base.TDS71])
def test_every_type_and_nulls(tds_server, tds_version):
    with connect(tds_server, tds_version=tds_version) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT ALL_TYPES")
        values, nulls = cursor.fetchall()
    expected = list(ALL_TYPES_ROW)
    if tds_version < pytds.tds_base.TDS73:
        expected[10] = "2024-02-29 23:59:58.1234560"
    assert list(values) == expected
    assert list(nulls) == [None] * len(ALL_TYPES_ROW)


def test_bad_password(tds_server):
    with pytest.raises(pytds.OperationalError) as excinfo:
        connect(tds_server, password="not-it")
    assert excinfo.value.msg_no == 18456
    assert "not-it" not in str(excinfo.value)


def test_unknown_database_reports_4060_then_18456(tds_server):
    with pytest.raises(pytds.Error) as excinfo:
        connect(tds_server, database="missing")
    text = str(excinfo.value)
    assert "Cannot open database" in text or "Login failed" in text


def test_parameters_travel_as_sp_executesql_and_become_declares(tds_server):
    params = (
        42,
        "it's ]ü",
        Decimal("12.50"),
        dt.datetime(2024, 5, 6, 7, 8, 9, 123456),
        pytds.tds_types.Binary(b"\x01\xff"),
        True,
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        2.5,
        2**70,
    )
    placeholders = ", ".join(["%s"] * len(params))
    with connect(tds_server) as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT {placeholders}", params)
        (batch,) = cursor.fetchone()
    lines = batch.splitlines()
    assert lines[0] == "DECLARE @P1 INT = 42;"
    assert lines[1].startswith("DECLARE @P2 NVARCHAR(") and lines[1].endswith("= N'it''s ]ü';")
    assert lines[2] == "DECLARE @P3 DECIMAL(3, 1) = 12.5;"  # pytds normalises the Decimal
    assert lines[3] == "DECLARE @P4 DATETIME2(6) = '2024-05-06T07:08:09.123456';"
    assert lines[4].endswith("= 0x01FF;")
    assert lines[5] == "DECLARE @P6 BIT = 1;"
    assert lines[6].endswith("= '12345678-1234-5678-1234-567812345678';")
    assert lines[7] == "DECLARE @P8 FLOAT = 2.5;"
    assert lines[8].endswith(f"= {2**70};")
    assert lines[-1] == "SELECT @P1, @P2, @P3, @P4, @P5, @P6, @P7, @P8, @P9"


def test_rpc_error_raises(tds_server):
    with connect(tds_server) as conn, conn.cursor() as cursor:
        with pytest.raises(pytds.ProgrammingError) as excinfo:
            cursor.execute("RAISE 208 16 Invalid object name %s", ("dbo.nope",))
        assert excinfo.value.msg_no == 208
        cursor.execute("SELECT %s", (1,))  # the connection stays usable
        assert cursor.fetchone()[0].startswith("DECLARE @P1")


def test_error_number_and_text(tds_server):
    with connect(tds_server) as conn, conn.cursor() as cursor:
        with pytest.raises(pytds.OperationalError) as excinfo:
            cursor.execute(
                "RAISE 3101 16 Exclusive access could not be obtained because the database is in use."
            )
        assert excinfo.value.msg_no == 3101
        assert "Exclusive access" in str(excinfo.value)
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_transaction_manager_requests(tds_server, fake_instance):
    with connect(tds_server, autocommit=False) as conn:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)
        (session,) = fake_instance.sessions.values()
        assert session.trancount == 1
        conn.commit()
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchall()
        conn.rollback()
    assert session.events[:2] == ["begin", "commit"]
    assert "rollback" in session.events


def test_info_messages_and_multiple_result_sets(tds_server):
    with connect(tds_server) as conn, conn.cursor() as cursor:
        cursor.execute("PROGRESS 0.2; SELECT 1; SELECT BIG 3")
        assert cursor.fetchall() == [(1,)]
        assert cursor.nextset()
        assert len(cursor.fetchall()) == 3
        texts = [m[1].text if hasattr(m[1], "text") else str(m[1]) for m in cursor.messages]
    assert any("percent processed" in t for t in texts)


def test_timeout_sends_attention_and_connection_stays_usable(tds_server, fake_instance):
    with connect(tds_server, timeout=0.5) as conn, conn.cursor() as cursor:
        started = time.monotonic()
        with pytest.raises(pytds.TimeoutError):
            cursor.execute("SLEEP 20")
        assert time.monotonic() - started < 5
        assert fake_instance.cancelled.wait(5)
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
