"""Pure encoding/decoding functions of sandbox.mssql.tds."""

from __future__ import annotations

import datetime as dt
import struct
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.mssql import tds
from sandbox.mssql.results import Column, Done, Message, ResultSet, SqlError


def obfuscate(password: str) -> bytes:
    return bytes(((b << 4 & 0xF0) | (b >> 4)) ^ 0xA5 for b in password.encode("utf-16-le"))


@given(st.text(max_size=128))
def test_password_deobfuscation_roundtrip(password):
    assert tds.decode_password(obfuscate(password)) == password


def test_login7_repr_hides_the_password():
    login = tds.Login7(tds.TDS74, 4096, "h", "sa", "top-secret", "app", "srv", "lib", "", "db")
    assert "top-secret" not in repr(login)


def test_packets_split_and_mark_only_the_last_one():
    writer = tds.PacketWriter(tds.PKT_REPLY, packet_size=512, spid=51)
    data = writer.packets(b"x" * 1200, final=True)
    headers = []
    pos = 0
    while pos < len(data):
        header = tds.PacketHeader.parse(data[pos : pos + 8])
        headers.append(header)
        pos += header.length
    assert [h.length for h in headers] == [512, 512, 8 + 1200 - 2 * 504]
    assert [h.is_last for h in headers] == [False, False, True]
    assert [h.packet_id for h in headers] == [1, 2, 3]
    assert {h.spid for h in headers} == {51}


def test_non_final_chunk_has_no_eom():
    writer = tds.PacketWriter()
    header = tds.PacketHeader.parse(writer.packets(b"abc", final=False)[:8])
    assert not header.is_last and header.length == 11


def test_prelogin_response_declines_encryption():
    options = tds.parse_prelogin(tds.build_prelogin_response("16.0.4135.4"))
    assert options[tds.PRELOGIN_ENCRYPTION] == bytes([tds.ENCRYPT_NOT_SUP])
    assert options[tds.PRELOGIN_VERSION] == struct.pack(">BBHH", 16, 0, 4135, 0)
    assert options[tds.PRELOGIN_MARS] == b"\x00"


@pytest.mark.parametrize(
    ("client", "acked"),
    [(0x71000001, tds.TDS71), (tds.TDS72, tds.TDS72), (tds.TDS73B, tds.TDS73B), (0x75000000, tds.TDS74)],
)
def test_negotiated_version(client, acked):
    assert tds.negotiated_version(client) == acked


def _numeric_value(data: bytes, scale: int) -> Decimal:
    size, sign = data[0], data[1]
    magnitude = int.from_bytes(data[2 : 1 + size], "little")
    value = Decimal(magnitude).scaleb(-scale)
    return value if sign == 1 else -value


@given(st.integers(min_value=-(10**25) + 1, max_value=10**25 - 1))
def test_numeric_25_0_roundtrip_beyond_2_64(value):
    column = tds._numeric_column(Column("lsn", "numeric", precision=25, scale=0))
    assert column.type_info == bytes([tds.T_NUMERICN, 13, 25, 0])
    assert _numeric_value(column.encode(Decimal(value)), 0) == value


def test_numeric_rejects_overflow_with_the_column_name():
    column = tds._numeric_column(Column("amount", "numeric", precision=5, scale=2))
    with pytest.raises(tds.TdsEncodeError, match="amount"):
        column.encode(Decimal("1000.00"))


def test_version_dependent_layouts():
    old, new = tds.TokenEncoder(tds.TDS71), tds.TokenEncoder(tds.TDS74)
    assert len(old.done(0, 5)) == 1 + 2 + 2 + 4
    assert len(new.done(0, 5)) == 1 + 2 + 2 + 8
    message = Message(1, 0, 1, "hi")
    assert len(new.message(message)) - len(old.message(message)) == 2  # line number 4 vs 2 bytes
    result = ResultSet([Column("a", "int")], [])
    # COLMETADATA: token, count, UserType (2 or 4), flags, type info, name
    assert len(new.result_set(result)) - len(old.result_set(result)) == 2


def test_nvarchar_promoted_to_max_rather_than_truncated():
    encoder = tds.TokenEncoder(tds.TDS74)
    tokens = encoder.result_set(ResultSet([Column("s", "nvarchar", size=10)], [("x" * 11,)]))
    assert bytes([tds.T_NVARCHAR]) + b"\xff\xff" in tokens


def test_datetime_rounds_to_ticks_and_midnight():
    encoded = tds._encode_datetime(dt.datetime(2024, 1, 1, 23, 59, 59, 999000))
    days, ticks = struct.unpack("<iI", encoded[1:])
    assert (days, ticks) == ((dt.date(2024, 1, 2) - tds.EPOCH_1900).days, 0)


def test_response_builder_sets_done_more_between_statements():
    encoder = tds.TokenEncoder(tds.TDS74)
    builder = tds.ResponseBuilder(encoder)
    out = builder.add(ResultSet([Column("a", "int")], [(1,)]))
    out += builder.add(Done(3))
    out += builder.finish()
    final = out[-13:]
    assert final[0] == tds.TOKEN_DONE
    assert struct.unpack_from("<H", final, 1)[0] == tds.DONE_COUNT
    assert struct.unpack_from("<q", final, 5)[0] == 3
    first_done = out.index(bytes([tds.TOKEN_DONE, tds.DONE_COUNT | tds.DONE_MORE, 0]))
    assert struct.unpack_from("<q", out, first_done + 5)[0] == 1


def test_response_builder_error_and_attention():
    encoder = tds.TokenEncoder(tds.TDS74)
    builder = tds.ResponseBuilder(encoder)
    out = builder.finish_with_error(SqlError(3013, 16, 1, "BACKUP DATABASE is terminating abnormally."))
    assert out[0] == tds.TOKEN_ERROR
    assert out[-13:] == encoder.done(tds.DONE_ERROR, 0)
    assert tds.ResponseBuilder(encoder).finish_cancelled() == encoder.done(tds.DONE_ATTN, 0)


def test_parameter_definitions_split_at_top_level_commas():
    assert tds.split_parameter_definitions("@a decimal(12, 2),@b nvarchar(max) OUTPUT, @c int") == [
        ("@a", "decimal(12, 2)"),
        ("@b", "nvarchar(max)"),
        ("@c", "int"),
    ]


def test_sql_literals_quote_safely():
    assert tds.sql_literal("O'Brien ]") == "N'O''Brien ]'"
    assert tds.sql_literal(None) == "NULL"
    assert tds.sql_literal(b"\x00\xff") == "0x00FF"
    assert tds.sql_literal(Decimal("1E+3")) == "1000"


def test_rpc_with_named_procedure_becomes_exec():
    request = tds.RpcRequest(
        "dbo.do_it", None, [tds.RpcParam("@x", 5, "int"), tds.RpcParam("@y", "a'b", "nvarchar")]
    )
    assert tds.rpc_to_batch(request) == "EXEC dbo.do_it @x = 5, @y = N'a''b'"


def test_unknown_system_procedure_is_an_sql_error():
    with pytest.raises(SqlError) as excinfo:
        tds.rpc_to_batch(tds.RpcRequest(None, 12, []))
    assert excinfo.value.number == 2812


def test_transaction_request_parsing():
    headers = struct.pack("<IIHQI", 22, 18, 2, 0, 1)
    begin = tds.parse_transaction_request(headers + struct.pack("<HBB", 5, 0, 0), tds.TDS74)
    commit = tds.parse_transaction_request(headers + struct.pack("<HBB", 7, 0, 1) + b"\x00\x00", tds.TDS74)
    assert begin.kind == "begin"
    assert commit.kind == "commit" and commit.begin_next
