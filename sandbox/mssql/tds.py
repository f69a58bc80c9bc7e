"""TDS (Tabular Data Stream) encoding and decoding for the sandbox SQL Server.

Pure functions and small classes, no I/O: packets, PRELOGIN, LOGIN7, request parsing
(SQL_BATCH, RPC, transaction manager) and response tokens with the type encodings of
``sandbox.mssql.results.Column``. Supports TDS 7.1 - 7.4; the layouts that change with the
version (UserType 2/4 bytes, DONE row count 4/8 bytes, message line 2/4 bytes, MAX types,
datetime2) follow the version the client logged in with.
"""

from __future__ import annotations

import datetime as dt
import struct
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from sandbox.mssql.results import Column, Done, EnvChange, Message, ResultSet, SqlError

# --- packet types -------------------------------------------------------------------------------
PKT_SQL_BATCH = 0x01
PKT_RPC = 0x03
PKT_REPLY = 0x04
PKT_ATTENTION = 0x06
PKT_TRANSACTION = 0x0E
PKT_LOGIN7 = 0x10
PKT_PRELOGIN = 0x12

STATUS_EOM = 0x01
HEADER = struct.Struct(">BBHHBB")  # type, status, length, spid, packet id, window
HEADER_SIZE = HEADER.size
DEFAULT_PACKET_SIZE = 4096
MIN_PACKET_SIZE = 512
MAX_PACKET_SIZE = 32767

# --- TDS versions (as sent in LOGIN7, little-endian DWORD) ---------------------------------------
TDS70 = 0x70000000
TDS71 = 0x71000001
TDS72 = 0x72090002
TDS73A = 0x730A0003
TDS73B = 0x730B0003
TDS74 = 0x74000004

# --- tokens -------------------------------------------------------------------------------------
TOKEN_COLMETADATA = 0x81
TOKEN_ERROR = 0xAA
TOKEN_INFO = 0xAB
TOKEN_RETURNSTATUS = 0x79
TOKEN_LOGINACK = 0xAD
TOKEN_ROW = 0xD1
TOKEN_ENVCHANGE = 0xE3
TOKEN_DONE = 0xFD
TOKEN_DONEPROC = 0xFE
TOKEN_DONEINPROC = 0xFF

DONE_FINAL = 0x00
DONE_MORE = 0x01
DONE_ERROR = 0x02
DONE_COUNT = 0x10
DONE_ATTN = 0x20

CURCMD_SELECT = 0xC1

ENV_DATABASE = 1
ENV_LANGUAGE = 2
ENV_PACKET_SIZE = 4
ENV_COLLATION = 7
ENV_BEGIN_TRAN = 8
ENV_COMMIT_TRAN = 9
ENV_ROLLBACK_TRAN = 10

# SQL_Latin1_General_CP1_CI_AS: LCID 0x0409, flags 0xD0 (ignore case/kana/width), sort id 52.
DEFAULT_COLLATION = bytes([0x09, 0x04, 0xD0, 0x00, 0x34])

# --- wire type ids ------------------------------------------------------------------------------
T_NULL = 0x1F
T_INT1 = 0x30
T_BIT = 0x32
T_INT2 = 0x34
T_INT4 = 0x38
T_DATETIM4 = 0x3A
T_FLT4 = 0x3B
T_MONEY = 0x3C
T_DATETIME = 0x3D
T_FLT8 = 0x3E
T_MONEY4 = 0x7A
T_INT8 = 0x7F
T_GUID = 0x24
T_INTN = 0x26
T_DECIMALN = 0x6A
T_NUMERICN = 0x6C
T_BITN = 0x68
T_FLTN = 0x6D
T_MONEYN = 0x6E
T_DATETIMN = 0x6F
T_DATEN = 0x28
T_TIMEN = 0x29
T_DATETIME2N = 0x2A
T_DATETIMEOFFSETN = 0x2B
T_BIGVARBINARY = 0xA5
T_BIGVARCHAR = 0xA7
T_BIGBINARY = 0xAD
T_BIGCHAR = 0xAF
T_NVARCHAR = 0xE7
T_NCHAR = 0xEF
T_TEXT = 0x23
T_IMAGE = 0x22
T_NTEXT = 0x63
T_XML = 0xF1

PLP_NULL = 0xFFFFFFFFFFFFFFFF
USHORT_NULL = 0xFFFF
MAX_LEN = 0xFFFF

EPOCH_1900 = dt.date(1900, 1, 1)
EPOCH_0001 = dt.date(1, 1, 1)


class TdsProtocolError(Exception):
    """The client sent something this server cannot parse."""


class TdsEncodeError(ValueError):
    """A value cannot be encoded for its column; reported to the client as an error."""


def version_name(version: int) -> str:
    """Human-readable TDS version, e.g. ``'7.4'``."""
    return f"{version >> 28 & 0xF}.{version >> 24 & 0xF}"


# --- packets ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PacketHeader:
    """The 8-byte header in front of every TDS packet."""

    type: int
    status: int
    length: int
    spid: int = 0
    packet_id: int = 0

    @classmethod
    def parse(cls, data: bytes) -> PacketHeader:
        ptype, status, length, spid, packet_id, _window = HEADER.unpack(data)
        if length < HEADER_SIZE:
            raise TdsProtocolError(f"packet length {length} is shorter than its header")
        return cls(ptype, status, length, spid, packet_id)

    @property
    def is_last(self) -> bool:
        return bool(self.status & STATUS_EOM)


class PacketWriter:
    """Splits one outgoing message into packets; packet ids continue across calls."""

    def __init__(self, packet_type: int = PKT_REPLY, packet_size: int = DEFAULT_PACKET_SIZE, spid: int = 0):
        self.packet_type = packet_type
        self.packet_size = packet_size
        self.spid = spid
        self._next_id = 1

    def packets(self, payload: bytes, final: bool) -> bytes:
        """Frame ``payload``; only the last packet of a final chunk carries EOM."""
        body_size = self.packet_size - HEADER_SIZE
        chunks = [payload[i : i + body_size] for i in range(0, len(payload), body_size)] or [b""]
        out = bytearray()
        for index, chunk in enumerate(chunks):
            last = final and index == len(chunks) - 1
            status = STATUS_EOM if last else 0
            out += HEADER.pack(
                self.packet_type, status, HEADER_SIZE + len(chunk), self.spid, self._next_id, 0
            )
            out += chunk
            self._next_id = (self._next_id + 1) % 256
        if final:
            self._next_id = 1
        return bytes(out)

    def full_packets_size(self, pending: int) -> int:
        """How many bytes of ``pending`` fill whole packets (flushable without ending the message)."""
        body_size = self.packet_size - HEADER_SIZE
        return (pending // body_size) * body_size


# --- small readers/writers ----------------------------------------------------------------------
def _ucs2(text: str) -> bytes:
    return text.encode("utf-16-le")


def b_varchar(text: str) -> bytes:
    """1-byte character count + UTF-16LE (names: truncated at 255 characters)."""
    encoded = _ucs2(text)[: 255 * 2]
    return bytes([len(encoded) // 2]) + encoded


def us_varchar(text: str) -> bytes:
    """2-byte character count + UTF-16LE."""
    encoded = _ucs2(text)[: 0xFFFF * 2]
    return struct.pack("<H", len(encoded) // 2) + encoded


def b_varbyte(data: bytes) -> bytes:
    return bytes([len(data)]) + data


class Reader:
    """Sequential little-endian reader over a request payload."""

    def __init__(self, data: bytes, pos: int = 0):
        self.data = data
        self.pos = pos

    def take(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise TdsProtocolError("request is truncated")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return self.unpack("<H")[0]

    def u32(self) -> int:
        return self.unpack("<I")[0]

    def ucs2(self, chars: int) -> str:
        return self.take(chars * 2).decode("utf-16-le")

    def b_varchar(self) -> str:
        return self.ucs2(self.u8())

    def us_varchar(self) -> str:
        return self.ucs2(self.u16())

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos


# --- PRELOGIN -----------------------------------------------------------------------------------
PRELOGIN_VERSION = 0x00
PRELOGIN_ENCRYPTION = 0x01
PRELOGIN_INSTOPT = 0x02
PRELOGIN_THREADID = 0x03
PRELOGIN_MARS = 0x04
PRELOGIN_TERMINATOR = 0xFF
ENCRYPT_NOT_SUP = 0x02


def parse_prelogin(payload: bytes) -> dict[int, bytes]:
    """Option id -> option data of a PRELOGIN message."""
    options: dict[int, bytes] = {}
    pos = 0
    while pos < len(payload) and payload[pos] != PRELOGIN_TERMINATOR:
        if pos + 5 > len(payload):
            raise TdsProtocolError("PRELOGIN option table is truncated")
        option, offset, length = struct.unpack_from(">BHH", payload, pos)
        options[option] = payload[offset : offset + length]
        pos += 5
    return options


def build_prelogin_response(product_version: str) -> bytes:
    """PRELOGIN reply without encryption (ENCRYPT_NOT_SUP) and without MARS."""
    major, minor, build = _version_parts(product_version)
    fields = [
        (PRELOGIN_VERSION, struct.pack(">BBHH", major, minor, build, 0)),
        (PRELOGIN_ENCRYPTION, bytes([ENCRYPT_NOT_SUP])),
        (PRELOGIN_INSTOPT, b"\x00"),
        (PRELOGIN_THREADID, b""),
        (PRELOGIN_MARS, b"\x00"),
    ]
    offset = len(fields) * 5 + 1
    table, data = bytearray(), bytearray()
    for option, value in fields:
        table += struct.pack(">BHH", option, offset + len(data), len(value))
        data += value
    return bytes(table) + bytes([PRELOGIN_TERMINATOR]) + bytes(data)


def _version_parts(product_version: str) -> tuple[int, int, int]:
    parts = [int(p) for p in product_version.split(".") if p.isdigit()] + [0, 0, 0]
    return parts[0] & 0xFF, parts[1] & 0xFF, parts[2] & 0xFFFF


# --- LOGIN7 -------------------------------------------------------------------------------------
@dataclass
class Login7:
    """The fields of a LOGIN7 request the server uses."""

    tds_version: int
    packet_size: int
    host_name: str
    user: str
    password: str = field(repr=False)
    app_name: str
    server_name: str
    library: str
    language: str
    database: str


def decode_password(data: bytes) -> str:
    """Undo LOGIN7 password obfuscation: XOR 0xA5, then swap the nibbles of every byte."""
    plain = bytes((((b ^ 0xA5) & 0x0F) << 4) | ((b ^ 0xA5) >> 4) for b in data)
    return plain.decode("utf-16-le")


def parse_login7(payload: bytes) -> Login7:
    """Decode a LOGIN7 message (SQL authentication only)."""
    if len(payload) < 94 - 8:
        raise TdsProtocolError("LOGIN7 message is too short")
    tds_version, packet_size = struct.unpack_from("<II", payload, 4)

    def text(index: int) -> str:
        offset, chars = struct.unpack_from("<HH", payload, 36 + index * 4)
        return payload[offset : offset + chars * 2].decode("utf-16-le")

    def raw(index: int) -> bytes:
        offset, chars = struct.unpack_from("<HH", payload, 36 + index * 4)
        return payload[offset : offset + chars * 2]

    return Login7(
        tds_version=tds_version,
        packet_size=packet_size,
        host_name=text(0),
        user=text(1),
        password=decode_password(raw(2)),
        app_name=text(3),
        server_name=text(4),
        library=text(6),
        language=text(7),
        database=text(8),
    )


def negotiated_version(client_version: int) -> int:
    """The TDS version to acknowledge: the client's, capped at 7.4, floored at 7.1."""
    if client_version >= TDS74:
        return TDS74
    if client_version >= TDS73A:
        return client_version if client_version in (TDS73A, TDS73B) else TDS73B
    if client_version >= TDS72:
        return TDS72
    return TDS71


def negotiated_packet_size(requested: int) -> int:
    if requested == 0:
        return DEFAULT_PACKET_SIZE
    return max(MIN_PACKET_SIZE, min(MAX_PACKET_SIZE, requested))


# --- requests -----------------------------------------------------------------------------------
def skip_all_headers(payload: bytes, tds_version: int) -> int:
    """Offset of the request body after the ALL_HEADERS prefix (TDS 7.2+)."""
    if tds_version < TDS72:
        return 0
    if len(payload) < 4:
        raise TdsProtocolError("ALL_HEADERS is truncated")
    total = struct.unpack_from("<I", payload)[0]
    if total < 4 or total > len(payload):
        raise TdsProtocolError(f"ALL_HEADERS length {total} is invalid")
    return total


def parse_sql_batch(payload: bytes, tds_version: int) -> str:
    """The SQL text of a SQL_BATCH request."""
    start = skip_all_headers(payload, tds_version)
    try:
        return payload[start:].decode("utf-16-le")
    except UnicodeDecodeError as e:
        raise TdsProtocolError("SQL batch text is not valid UTF-16") from e


@dataclass
class TransactionRequest:
    """A transaction-manager request: begin / commit / rollback (optionally starting a new one)."""

    kind: str  # 'begin' | 'commit' | 'rollback' | 'save' | 'other'
    begin_next: bool = False
    request_type: int = 0


TM_BEGIN_XACT = 5
TM_COMMIT_XACT = 7
TM_ROLLBACK_XACT = 8
TM_SAVE_XACT = 9


def parse_transaction_request(payload: bytes, tds_version: int) -> TransactionRequest:
    r = Reader(payload, skip_all_headers(payload, max(tds_version, TDS72)))
    request_type = r.u16()
    if request_type == TM_BEGIN_XACT:
        return TransactionRequest("begin", request_type=request_type)
    if request_type in (TM_COMMIT_XACT, TM_ROLLBACK_XACT):
        r.b_varchar()  # transaction name
        flags = r.u8() if r.remaining else 0
        kind = "commit" if request_type == TM_COMMIT_XACT else "rollback"
        return TransactionRequest(kind, begin_next=bool(flags & 1), request_type=request_type)
    if request_type == TM_SAVE_XACT:
        return TransactionRequest("save", request_type=request_type)
    return TransactionRequest("other", request_type=request_type)


@dataclass
class RpcParam:
    name: str
    value: object
    declared_type: str  # T-SQL type derived from the wire type, e.g. 'nvarchar(4000)'
    output: bool = False


@dataclass
class RpcRequest:
    proc_name: str | None
    proc_id: int | None
    params: list[RpcParam]


PROC_SP_EXECUTESQL = 10


def parse_rpc(payload: bytes, tds_version: int) -> RpcRequest:
    """Decode an RPC request carrying one procedure call (batched calls are not supported)."""
    r = Reader(payload, skip_all_headers(payload, tds_version))
    name_len = r.u16()
    proc_name, proc_id = (None, r.u16()) if name_len == 0xFFFF else (r.ucs2(name_len), None)
    r.u16()  # option flags
    params = []
    while r.remaining:
        if r.data[r.pos] in (0x80, 0xFF, 0xFE):  # batch separators: a second call in the same request
            raise TdsProtocolError("batched RPC calls are not supported")
        name = r.b_varchar()
        status = r.u8()
        value, declared = read_typed_value(r)
        params.append(RpcParam(name, value, declared, output=bool(status & 0x01)))
    return RpcRequest(proc_name, proc_id, params)


def read_typed_value(r: Reader) -> tuple[object, str]:
    """Read TYPE_INFO + value of an RPC parameter; returns (Python value, T-SQL type)."""
    type_id = r.u8()
    fixed = _FIXED_TYPES.get(type_id)
    if fixed:
        size, decl, decode = fixed
        return (None if size == 0 else decode(r.take(size))), decl
    reader = _VARIABLE_TYPE_READERS.get(type_id)
    if reader is None:
        raise TdsProtocolError(f"unsupported RPC parameter type 0x{type_id:02X}")
    return reader(r)


def _int_le(data: bytes, signed: bool = True) -> int:
    return int.from_bytes(data, "little", signed=signed)


def _money(data: bytes) -> Decimal:
    if len(data) == 8:
        high, low = struct.unpack("<iI", data)
        return Decimal((high << 32) | low) / 10000
    return Decimal(struct.unpack("<i", data)[0]) / 10000


def _decode_datetime(data: bytes) -> dt.datetime:
    days, ticks = struct.unpack("<iI", data)
    return dt.datetime.combine(EPOCH_1900, dt.time()) + dt.timedelta(
        days=days, microseconds=ticks * 10000 / 3
    )


def _decode_smalldatetime(data: bytes) -> dt.datetime:
    days, minutes = struct.unpack("<HH", data)
    return dt.datetime.combine(EPOCH_1900, dt.time()) + dt.timedelta(days=days, minutes=minutes)


_FIXED_TYPES = {
    T_NULL: (0, "int", None),
    T_INT1: (1, "tinyint", lambda d: d[0]),
    T_BIT: (1, "bit", lambda d: bool(d[0])),
    T_INT2: (2, "smallint", _int_le),
    T_INT4: (4, "int", _int_le),
    T_INT8: (8, "bigint", _int_le),
    T_FLT4: (4, "real", lambda d: struct.unpack("<f", d)[0]),
    T_FLT8: (8, "float", lambda d: struct.unpack("<d", d)[0]),
    T_MONEY: (8, "money", _money),
    T_MONEY4: (4, "smallmoney", _money),
    T_DATETIME: (8, "datetime", _decode_datetime),
    T_DATETIM4: (4, "smalldatetime", _decode_smalldatetime),
}


def _read_bytelen(r: Reader) -> bytes | None:
    size = r.u8()
    return None if size == 0 else r.take(size)


def _read_intn(r: Reader) -> tuple[object, str]:
    size = r.u8()
    data = _read_bytelen(r)
    decl = {1: "tinyint", 2: "smallint", 4: "int", 8: "bigint"}.get(size, "bigint")
    return (None if data is None else _int_le(data, signed=size != 1)), decl


def _read_bitn(r: Reader) -> tuple[object, str]:
    r.u8()
    data = _read_bytelen(r)
    return (None if data is None else bool(data[0])), "bit"


def _read_fltn(r: Reader) -> tuple[object, str]:
    size = r.u8()
    data = _read_bytelen(r)
    if data is None:
        return None, "float" if size == 8 else "real"
    return struct.unpack("<d" if len(data) == 8 else "<f", data)[0], "float" if size == 8 else "real"


def _read_moneyn(r: Reader) -> tuple[object, str]:
    size = r.u8()
    data = _read_bytelen(r)
    return (None if data is None else _money(data)), "money" if size == 8 else "smallmoney"


def _read_datetimn(r: Reader) -> tuple[object, str]:
    size = r.u8()
    data = _read_bytelen(r)
    decode = _decode_datetime if size == 8 else _decode_smalldatetime
    return (None if data is None else decode(data)), "datetime" if size == 8 else "smalldatetime"


def _read_decimal(r: Reader) -> tuple[object, str]:
    r.u8()  # max size
    precision, scale = r.u8(), r.u8()
    data = _read_bytelen(r)
    decl = f"decimal({precision},{scale})"
    if data is None:
        return None, decl
    magnitude = _int_le(data[1:], signed=False)
    value = Decimal(magnitude).scaleb(-scale)
    return (value if data[0] == 1 else -value), decl


def _read_guid(r: Reader) -> tuple[object, str]:
    r.u8()
    data = _read_bytelen(r)
    return (None if data is None else uuid.UUID(bytes_le=data)), "uniqueidentifier"


def _time_from_units(units: int, scale: int) -> dt.time:
    micro = units * 10**6 // 10**scale
    return (dt.datetime.min + dt.timedelta(microseconds=micro)).time()


def _read_daten(r: Reader) -> tuple[object, str]:
    data = _read_bytelen(r)
    return (None if data is None else EPOCH_0001 + dt.timedelta(days=_int_le(data, False))), "date"


def _read_timen(r: Reader) -> tuple[object, str]:
    scale = r.u8()
    data = _read_bytelen(r)
    return (None if data is None else _time_from_units(_int_le(data, False), scale)), f"time({scale})"


def _read_datetime2n(r: Reader) -> tuple[object, str]:
    scale = r.u8()
    data = _read_bytelen(r)
    if data is None:
        return None, f"datetime2({scale})"
    time_part = _time_from_units(_int_le(data[:-3], False), scale)
    date_part = EPOCH_0001 + dt.timedelta(days=_int_le(data[-3:], False))
    return dt.datetime.combine(date_part, time_part), f"datetime2({scale})"


def _read_datetimeoffsetn(r: Reader) -> tuple[object, str]:
    scale = r.u8()
    data = _read_bytelen(r)
    if data is None:
        return None, f"datetimeoffset({scale})"
    offset_minutes = _int_le(data[-2:])
    time_part = _time_from_units(_int_le(data[:-5], False), scale)
    date_part = EPOCH_0001 + dt.timedelta(days=_int_le(data[-5:-2], False))
    utc = dt.datetime.combine(date_part, time_part, tzinfo=dt.UTC)
    return utc.astimezone(dt.timezone(dt.timedelta(minutes=offset_minutes))), f"datetimeoffset({scale})"


def _read_plp(r: Reader) -> bytes | None:
    total = struct.unpack("<Q", r.take(8))[0]
    if total == PLP_NULL:
        return None
    out = bytearray()
    while True:
        chunk = r.u32()
        if chunk == 0:
            return bytes(out)
        out += r.take(chunk)


def _read_ushort_sized(r: Reader, max_len: int) -> bytes | None:
    if max_len == MAX_LEN:
        return _read_plp(r)
    size = r.u16()
    return None if size == USHORT_NULL else r.take(size)


def _read_character(r: Reader, type_id: int) -> tuple[object, str]:
    max_len = r.u16()
    r.take(5)  # collation
    data = _read_ushort_sized(r, max_len)
    unicode = type_id in (T_NVARCHAR, T_NCHAR)
    base = {T_NVARCHAR: "nvarchar", T_NCHAR: "nchar", T_BIGVARCHAR: "varchar", T_BIGCHAR: "char"}[type_id]
    length = "max" if max_len == MAX_LEN else str(max(1, max_len // 2 if unicode else max_len))
    if data is None:
        return None, f"{base}({length})"
    return data.decode("utf-16-le" if unicode else "cp1252"), f"{base}({length})"


def _read_binary(r: Reader, type_id: int) -> tuple[object, str]:
    max_len = r.u16()
    data = _read_ushort_sized(r, max_len)
    base = "varbinary" if type_id == T_BIGVARBINARY else "binary"
    return data, f"{base}({'max' if max_len == MAX_LEN else max(1, max_len)})"


def _read_long(r: Reader, type_id: int) -> tuple[object, str]:
    r.u32()  # max length
    if type_id != T_IMAGE:
        r.take(5)  # collation
    size = r.u32()
    data = None if size == 0xFFFFFFFF else r.take(size)
    if type_id == T_NTEXT:
        return (None if data is None else data.decode("utf-16-le")), "nvarchar(max)"
    if type_id == T_TEXT:
        return (None if data is None else data.decode("cp1252")), "varchar(max)"
    return data, "varbinary(max)"


def _read_xml(r: Reader) -> tuple[object, str]:
    if r.u8():  # schema present: database, owning schema, collection names
        r.b_varchar()
        r.b_varchar()
        r.us_varchar()
    data = _read_plp(r)
    return (None if data is None else data.decode("utf-16-le")), "xml"


_VARIABLE_TYPE_READERS = {
    T_INTN: _read_intn,
    T_BITN: _read_bitn,
    T_FLTN: _read_fltn,
    T_MONEYN: _read_moneyn,
    T_DATETIMN: _read_datetimn,
    T_DECIMALN: _read_decimal,
    T_NUMERICN: _read_decimal,
    T_GUID: _read_guid,
    T_DATEN: _read_daten,
    T_TIMEN: _read_timen,
    T_DATETIME2N: _read_datetime2n,
    T_DATETIMEOFFSETN: _read_datetimeoffsetn,
    T_NVARCHAR: lambda r: _read_character(r, T_NVARCHAR),
    T_NCHAR: lambda r: _read_character(r, T_NCHAR),
    T_BIGVARCHAR: lambda r: _read_character(r, T_BIGVARCHAR),
    T_BIGCHAR: lambda r: _read_character(r, T_BIGCHAR),
    T_BIGVARBINARY: lambda r: _read_binary(r, T_BIGVARBINARY),
    T_BIGBINARY: lambda r: _read_binary(r, T_BIGBINARY),
    T_NTEXT: lambda r: _read_long(r, T_NTEXT),
    T_TEXT: lambda r: _read_long(r, T_TEXT),
    T_IMAGE: lambda r: _read_long(r, T_IMAGE),
    T_XML: _read_xml,
}


# --- RPC -> T-SQL batch -------------------------------------------------------------------------
def sql_literal(value: object) -> str:
    """Render a parameter value as a T-SQL literal (strings as N'...' with quotes doubled)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bytes):
        return "0x" + value.hex().upper()
    if isinstance(value, str):
        return "N'" + value.replace("'", "''") + "'"
    if isinstance(value, dt.datetime):
        return "'" + value.isoformat(sep="T") + "'"
    if isinstance(value, dt.date | dt.time | uuid.UUID):
        return "'" + str(value) + "'"
    raise TdsProtocolError(f"cannot render a {type(value).__name__} parameter as SQL")


def split_parameter_definitions(definition: str) -> list[tuple[str, str]]:
    """``'@P1 int, @P2 nvarchar(10) OUTPUT'`` -> ``[('@P1', 'int'), ('@P2', 'nvarchar(10)')]``."""
    parts, depth, current = [], 0, ""
    for ch in definition:
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += (ch == "(") - (ch == ")")
        current += ch
    parts.append(current)
    result = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        name, _, type_text = part.partition(" ")
        words = type_text.strip().split()
        if words and words[-1].upper() in ("OUTPUT", "OUT"):
            words = words[:-1]
        result.append((name, " ".join(words)))
    return result


def rpc_to_batch(request: RpcRequest) -> str:
    """Turn an RPC into an equivalent SQL batch.

    ``sp_executesql`` becomes ``DECLARE @p type = literal;`` lines followed by the statement; a
    named procedure becomes ``EXEC name @p = literal, ...``. OUTPUT parameters are not returned.
    """
    if request.proc_id == PROC_SP_EXECUTESQL or (request.proc_name or "").lower() in (
        "sp_executesql",
        "sys.sp_executesql",
    ):
        return _sp_executesql_batch(request.params)
    if request.proc_name is None:
        raise SqlError(
            2812, 16, 62, f"Could not find stored procedure (system procedure id {request.proc_id})."
        )
    args = ", ".join(
        (f"{p.name} = " if p.name else "") + sql_literal(p.value) + (" OUTPUT" if p.output else "")
        for p in request.params
    )
    return f"EXEC {request.proc_name} {args}".rstrip()


def _sp_executesql_batch(params: list[RpcParam]) -> str:
    if not params or not isinstance(params[0].value, str):
        raise SqlError(214, 16, 2, "Procedure expects parameter '@statement' of type 'ntext/nchar/nvarchar'.")
    statement = params[0].value
    if len(params) == 1:
        return statement
    definitions = split_parameter_definitions(params[1].value or "")
    declared = {name.lower(): type_text for name, type_text in definitions}
    lines = []
    for index, param in enumerate(params[2:]):
        name = param.name or (definitions[index][0] if index < len(definitions) else "")
        if not name:
            raise SqlError(8144, 16, 2, "Procedure or function has too many arguments specified.")
        type_text = declared.get(name.lower(), param.declared_type)
        lines.append(f"DECLARE {name} {type_text} = {sql_literal(param.value)};")
    return "\n".join(lines + [statement])


# --- response tokens ----------------------------------------------------------------------------
class TokenEncoder:
    """Encodes response tokens for one negotiated TDS version."""

    def __init__(self, tds_version: int, server_name: str = ""):
        self.tds_version = tds_version
        self.server_name = server_name

    @property
    def is72(self) -> bool:
        return self.tds_version >= TDS72

    @property
    def is73(self) -> bool:
        return self.tds_version >= TDS73A

    def done(self, status: int, rowcount: int = 0, token: int = TOKEN_DONE, curcmd: int = 0) -> bytes:
        count = struct.pack("<q", rowcount) if self.is72 else struct.pack("<i", rowcount & 0x7FFFFFFF)
        return struct.pack("<BHH", token, status, curcmd) + count

    def message(self, msg: Message) -> bytes:
        """INFO (severity <= 10) or ERROR token."""
        token = TOKEN_INFO if msg.severity <= 10 else TOKEN_ERROR
        line = struct.pack("<I", msg.line & 0xFFFFFFFF) if self.is72 else struct.pack("<H", msg.line & 0xFFFF)
        body = (
            struct.pack("<iBB", msg.number, msg.state & 0xFF, msg.severity & 0xFF)
            + us_varchar(msg.text)
            + b_varchar(msg.server or self.server_name)
            + b_varchar(msg.proc)
            + line
        )
        return struct.pack("<BH", token, len(body)) + body

    def error(self, err: SqlError) -> bytes:
        return self.message(Message(err.number, err.severity, err.state, err.message, err.line))

    def envchange(self, env_type: int, new: bytes, old: bytes) -> bytes:
        body = bytes([env_type]) + new + old
        return struct.pack("<BH", TOKEN_ENVCHANGE, len(body)) + body

    def envchange_text(self, env_type: int, new: str, old: str) -> bytes:
        return self.envchange(env_type, b_varchar(new), b_varchar(old))

    def envchange_item(self, change: EnvChange) -> bytes:
        kinds = {"database": ENV_DATABASE, "language": ENV_LANGUAGE, "packet_size": ENV_PACKET_SIZE}
        if change.kind not in kinds:
            raise TdsEncodeError(f"unsupported environment change {change.kind!r}")
        return self.envchange_text(kinds[change.kind], change.new, change.old)

    def collation(self) -> bytes:
        return self.envchange(ENV_COLLATION, b_varbyte(DEFAULT_COLLATION), b_varbyte(b""))

    def begin_tran(self, descriptor: int) -> bytes:
        return self.envchange(ENV_BEGIN_TRAN, b_varbyte(struct.pack("<Q", descriptor)), b_varbyte(b""))

    def end_tran(self, committed: bool, descriptor: int) -> bytes:
        env_type = ENV_COMMIT_TRAN if committed else ENV_ROLLBACK_TRAN
        return self.envchange(env_type, b_varbyte(b""), b_varbyte(struct.pack("<Q", descriptor)))

    def loginack(self, product_version: str) -> bytes:
        major, minor, build = _version_parts(product_version)
        body = (
            bytes([1])  # interface: SQL_TSQL
            + struct.pack(">I", self.tds_version)
            + b_varchar("Microsoft SQL Server")
            + struct.pack(">BBH", major, minor, build)
        )
        return struct.pack("<BH", TOKEN_LOGINACK, len(body)) + body

    def return_status(self, status: int) -> bytes:
        return struct.pack("<Bi", TOKEN_RETURNSTATUS, status)

    def result_set(self, result: ResultSet) -> bytes:
        """COLMETADATA followed by every ROW (no DONE)."""
        columns = [_wire_column(c, result.rows, i, self) for i, c in enumerate(result.columns)]
        out = bytearray(self._colmetadata(columns))
        for row in result.rows:
            if len(row) != len(columns):
                raise TdsEncodeError(
                    f"row has {len(row)} values but the result set has {len(columns)} columns"
                )
            out.append(TOKEN_ROW)
            for column, value in zip(columns, row, strict=True):
                out += column.encode(value)
        return bytes(out)

    def _colmetadata(self, columns: list[WireColumn]) -> bytes:
        out = bytearray(struct.pack("<BH", TOKEN_COLMETADATA, len(columns)))
        for column in columns:
            out += struct.pack("<I", 0) if self.is72 else struct.pack("<H", 0)  # UserType
            flags = 0x0008 | (0x0001 if column.nullable else 0)  # updateable: unknown
            out += struct.pack("<H", flags)
            out += column.type_info
            out += b_varchar(column.name)
        return bytes(out)


# --- type encoding ------------------------------------------------------------------------------
@dataclass
class WireColumn:
    """A column as sent on the wire: TYPE_INFO bytes and a value encoder."""

    name: str
    nullable: bool
    type_info: bytes
    encode_value: object  # Callable[[object], bytes] for non-NULL values
    null: bytes

    def encode(self, value: object) -> bytes:
        if value is None:
            return self.null
        try:
            return self.encode_value(value)
        except TdsEncodeError:
            raise
        except (TypeError, ValueError, OverflowError, struct.error) as e:
            raise TdsEncodeError(f"column {self.name!r}: cannot encode {value!r}: {e}") from e


_INT_SIZES = {"tinyint": 1, "smallint": 2, "int": 4, "bigint": 8}
_NUMERIC_SIZES = ((9, 5), (19, 9), (28, 13), (38, 17))


def _wire_column(column: Column, rows: list[tuple], index: int, enc: TokenEncoder) -> WireColumn:
    kind = column.type
    if kind in _INT_SIZES:
        return _intn_column(column, _INT_SIZES[kind])
    if kind == "bit":
        return WireColumn(
            column.name,
            column.nullable,
            bytes([T_BITN, 1]),
            lambda v: b"\x01" + bytes([1 if v else 0]),
            b"\x00",
        )
    if kind == "float":
        return WireColumn(
            column.name,
            column.nullable,
            bytes([T_FLTN, 8]),
            lambda v: b"\x08" + struct.pack("<d", float(v)),
            b"\x00",
        )
    if kind == "numeric":
        return _numeric_column(column)
    if kind == "datetime":
        return WireColumn(column.name, column.nullable, bytes([T_DATETIMN, 8]), _encode_datetime, b"\x00")
    if kind == "datetime2":
        return _datetime2_column(column, enc)
    if kind == "datetimeoffset":
        return _datetimeoffset_column(column, enc)
    if kind == "uniqueidentifier":
        return WireColumn(column.name, column.nullable, bytes([T_GUID, 16]), _encode_guid, b"\x00")
    if kind == "nvarchar":
        return _nvarchar_column(column, _needs_max(column, rows, index, 4000, _char_len), enc)
    if kind == "varbinary":
        return _varbinary_column(column, _needs_max(column, rows, index, 8000, _byte_len), enc)
    raise TdsEncodeError(f"column {column.name!r}: unsupported type {kind!r}")


def _char_len(value: object) -> int:
    return len(_ucs2(str(value))) // 2


def _byte_len(value: object) -> int:
    return len(bytes(value)) if not isinstance(value, str) else len(value.encode())


def _needs_max(column: Column, rows: list[tuple], index: int, limit: int, measure) -> bool:
    """MAX when declared so, or when a value does not fit the declared size (never truncate data)."""
    size = column.size or limit
    if column.size == -1 or size > limit:
        return True
    return any(row[index] is not None and measure(row[index]) > size for row in rows)


def _intn_column(column: Column, size: int) -> WireColumn:
    signed = size != 1

    def encode(value: object) -> bytes:
        if isinstance(value, Decimal | float) and value != int(value):
            raise TdsEncodeError(f"column {column.name!r}: {value!r} is not an integer")
        return bytes([size]) + int(value).to_bytes(size, "little", signed=signed)

    return WireColumn(column.name, column.nullable, bytes([T_INTN, size]), encode, b"\x00")


def _numeric_column(column: Column) -> WireColumn:
    precision = column.precision or 18
    scale = column.scale
    size = next(s for p, s in _NUMERIC_SIZES if precision <= p) if precision <= 38 else None
    if size is None or not 0 <= scale <= precision:
        raise TdsEncodeError(f"column {column.name!r}: invalid numeric({precision},{scale})")

    def encode(value: object) -> bytes:
        scaled = (Decimal(value) if not isinstance(value, float) else Decimal(repr(value))).scaleb(scale)
        integral = int(scaled.to_integral_value())
        if abs(integral) >= 10**precision:
            raise TdsEncodeError(f"column {column.name!r}: {value} does not fit numeric({precision},{scale})")
        sign = 0 if integral < 0 else 1
        return bytes([size, sign]) + abs(integral).to_bytes(size - 1, "little")

    return WireColumn(
        column.name, column.nullable, bytes([T_NUMERICN, size, precision, scale]), encode, b"\x00"
    )


def _naive(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=None)


def _as_datetime(value: object) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return _naive(value)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    raise TdsEncodeError(f"{value!r} is not a datetime")


def _encode_datetime(value: object) -> bytes:
    """DATETIME: days since 1900-01-01 and 1/300 s ticks since midnight."""
    moment = _as_datetime(value)
    days = (moment.date() - EPOCH_1900).days
    micro = (moment.hour * 3600 + moment.minute * 60 + moment.second) * 10**6 + moment.microsecond
    ticks = round(micro * 300 / 10**6)
    if ticks >= 300 * 86400:  # rounding reached midnight
        days, ticks = days + 1, 0
    return b"\x08" + struct.pack("<iI", days, ticks)


def _datetime2_column(column: Column, enc: TokenEncoder) -> WireColumn:
    scale = column.scale
    if not 0 <= scale <= 7:
        raise TdsEncodeError(f"column {column.name!r}: invalid datetime2 scale {scale}")
    if not enc.is73:
        # Down-level clients (before TDS 7.3) receive datetime2 as nvarchar, like SQL Server does.
        width = 19 + (scale + 1 if scale else 0)
        return WireColumn(
            column.name,
            column.nullable,
            bytes([T_NVARCHAR]) + struct.pack("<H", width * 2) + DEFAULT_COLLATION,
            lambda v: _ushort_value(_ucs2(_datetime2_text(_as_datetime(v), scale))),
            struct.pack("<H", USHORT_NULL),
        )
    time_len = 3 if scale <= 2 else 4 if scale <= 4 else 5

    def encode(value: object) -> bytes:
        moment = _as_datetime(value)
        micro = (moment.hour * 3600 + moment.minute * 60 + moment.second) * 10**6 + moment.microsecond
        units = micro * 10**scale // 10**6
        days = (moment.date() - EPOCH_0001).days
        return bytes([time_len + 3]) + units.to_bytes(time_len, "little") + days.to_bytes(3, "little")

    return WireColumn(column.name, column.nullable, bytes([T_DATETIME2N, scale]), encode, b"\x00")


def _datetimeoffset_column(column: Column, enc: TokenEncoder) -> WireColumn:
    """DATETIMEOFFSETN: UTC time and date (as datetime2) followed by the offset in minutes."""
    scale = 7 if column.scale is None else column.scale
    if not 0 <= scale <= 7:
        raise TdsEncodeError(f"column {column.name!r}: invalid datetimeoffset scale {scale}")

    def aware(value: object) -> dt.datetime:
        moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)

    def offset_minutes(moment: dt.datetime) -> int:
        return int((moment.utcoffset() or dt.timedelta(0)).total_seconds() // 60)

    if not enc.is73:  # down-level clients get the text, as SQL Server sends it
        width = 19 + (scale + 1 if scale else 0) + 7

        def text(value: object) -> bytes:
            moment = aware(value)
            minutes = offset_minutes(moment)
            sign = "-" if minutes < 0 else "+"
            suffix = f" {sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
            return _ushort_value(_ucs2(_datetime2_text(_naive(moment), scale) + suffix))

        return WireColumn(
            column.name,
            column.nullable,
            bytes([T_NVARCHAR]) + struct.pack("<H", width * 2) + DEFAULT_COLLATION,
            text,
            struct.pack("<H", USHORT_NULL),
        )
    time_len = 3 if scale <= 2 else 4 if scale <= 4 else 5

    def encode(value: object) -> bytes:
        moment = aware(value)
        utc = moment.astimezone(dt.UTC)
        micro = (utc.hour * 3600 + utc.minute * 60 + utc.second) * 10**6 + utc.microsecond
        units = micro * 10**scale // 10**6
        days = (utc.date() - EPOCH_0001).days
        return (
            bytes([time_len + 5])
            + units.to_bytes(time_len, "little")
            + days.to_bytes(3, "little")
            + offset_minutes(moment).to_bytes(2, "little", signed=True)
        )

    return WireColumn(column.name, column.nullable, bytes([T_DATETIMEOFFSETN, scale]), encode, b"\x00")


def _datetime2_text(moment: dt.datetime, scale: int) -> str:
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    if scale:
        text += "." + f"{moment.microsecond:06d}0"[:scale]
    return text


def _encode_guid(value: object) -> bytes:
    guid = value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    return b"\x10" + guid.bytes_le


def _ushort_value(data: bytes) -> bytes:
    return struct.pack("<H", len(data)) + data


def _plp_value(data: bytes) -> bytes:
    out = struct.pack("<Q", len(data))
    if data:
        out += struct.pack("<I", len(data)) + data
    return out + struct.pack("<I", 0)


def _text_value(data: bytes) -> bytes:
    """TEXT/NTEXT/IMAGE row value: dummy 16-byte text pointer, 8-byte timestamp, 4-byte length."""
    return b"\x10" + b"\x00" * 16 + b"\x00" * 8 + struct.pack("<I", len(data)) + data


def _to_bytes(value: object) -> bytes:
    if isinstance(value, str):
        raise TdsEncodeError(f"{value!r} is text, expected bytes for varbinary")
    return bytes(value)


def _nvarchar_column(column: Column, is_max: bool, enc: TokenEncoder) -> WireColumn:
    def text_bytes(value: object) -> bytes:
        return _ucs2(value if isinstance(value, str) else str(value))

    if not is_max:
        max_bytes = (column.size or 4000) * 2
        info = bytes([T_NVARCHAR]) + struct.pack("<H", max_bytes) + DEFAULT_COLLATION
        return WireColumn(
            column.name,
            column.nullable,
            info,
            lambda v: _ushort_value(text_bytes(v)),
            struct.pack("<H", USHORT_NULL),
        )
    if enc.is72:
        info = bytes([T_NVARCHAR]) + struct.pack("<H", MAX_LEN) + DEFAULT_COLLATION
        return WireColumn(
            column.name,
            column.nullable,
            info,
            lambda v: _plp_value(text_bytes(v)),
            struct.pack("<Q", PLP_NULL),
        )
    # Before TDS 7.2 there is no nvarchar(max): send NTEXT (table name is an empty US_VARCHAR).
    info = bytes([T_NTEXT]) + struct.pack("<I", 0x7FFFFFFE) + DEFAULT_COLLATION + struct.pack("<H", 0)
    return WireColumn(column.name, column.nullable, info, lambda v: _text_value(text_bytes(v)), b"\x00")


def _varbinary_column(column: Column, is_max: bool, enc: TokenEncoder) -> WireColumn:
    if not is_max:
        info = bytes([T_BIGVARBINARY]) + struct.pack("<H", column.size or 8000)
        return WireColumn(
            column.name,
            column.nullable,
            info,
            lambda v: _ushort_value(_to_bytes(v)),
            struct.pack("<H", USHORT_NULL),
        )
    if enc.is72:
        info = bytes([T_BIGVARBINARY]) + struct.pack("<H", MAX_LEN)
        return WireColumn(
            column.name,
            column.nullable,
            info,
            lambda v: _plp_value(_to_bytes(v)),
            struct.pack("<Q", PLP_NULL),
        )
    info = bytes([T_IMAGE]) + struct.pack("<I", 0x7FFFFFFF) + struct.pack("<H", 0)
    return WireColumn(column.name, column.nullable, info, lambda v: _text_value(_to_bytes(v)), b"\x00")


# --- response assembly --------------------------------------------------------------------------
class ResponseBuilder:
    """Turns the engine's emitted items into the token stream of one response.

    The DONE of a statement is held back until the next item arrives, because only then is it
    known whether it needs DONE_MORE (more results follow) or is the final DONE.
    Inside an RPC the per-statement tokens are DONEINPROC and the response ends with
    RETURNSTATUS + DONEPROC.
    """

    def __init__(self, encoder: TokenEncoder, in_proc: bool = False):
        self.encoder = encoder
        self.in_proc = in_proc
        self._held_done: tuple[int, int] | None = None  # (status, rowcount)
        self._error_pending = False

    def add(self, item: object) -> bytes:
        """Tokens for one emitted item (may include the previously held DONE)."""
        if isinstance(item, ResultSet):
            body = self.encoder.result_set(item)  # encode first: a bad value must not leave half a set
            out = self._release_held() + body
            self._hold(DONE_COUNT, len(item.rows))
            return out
        if isinstance(item, Done):
            out = self._release_held()
            self._hold(DONE_COUNT if item.rowcount is not None else 0, item.rowcount or 0)
            return out
        if isinstance(item, Message):
            self._error_pending |= item.severity > 10
            return self._release_held() + self.encoder.message(item)
        if isinstance(item, EnvChange):
            return self._release_held() + self.encoder.envchange_item(item)
        raise TdsEncodeError(f"the engine emitted an unsupported item {type(item).__name__}")

    def finish(self) -> bytes:
        """Tokens that end a batch that completed normally."""
        if self._held_done is None:
            self._hold(0, 0)
        return self._final()

    def finish_with_error(self, error: SqlError) -> bytes:
        """Tokens that end a batch aborted by ``error``."""
        out = self._release_held() + self.encoder.error(error)
        self._error_pending = False
        if self.in_proc:
            return out + self.encoder.return_status(1) + self.encoder.done(DONE_ERROR, 0, TOKEN_DONEPROC)
        return out + self.encoder.done(DONE_ERROR, 0)

    def finish_cancelled(self) -> bytes:
        """Acknowledge an ATTENTION: the response ends with DONE(ATTN)."""
        out = self._release_held()
        self._held_done = (DONE_ATTN, 0)
        return out + self._final(attention=True)

    def _hold(self, status: int, rowcount: int) -> None:
        if self._error_pending:
            status |= DONE_ERROR
            self._error_pending = False
        self._held_done = (status, rowcount)

    def _release_held(self) -> bytes:
        if self._held_done is None:
            return b""
        status, rowcount = self._held_done
        self._held_done = None
        token = TOKEN_DONEINPROC if self.in_proc else TOKEN_DONE
        curcmd = CURCMD_SELECT if status & DONE_COUNT else 0
        return self.encoder.done(status | DONE_MORE, rowcount, token, curcmd)

    def _final(self, attention: bool = False) -> bytes:
        status, rowcount = self._held_done or (0, 0)
        self._held_done = None
        curcmd = CURCMD_SELECT if status & DONE_COUNT else 0
        if self.in_proc and not attention:
            # The statement's own DONEINPROC, then the procedure's return status and DONEPROC.
            return (
                self.encoder.done(status | DONE_MORE, rowcount, TOKEN_DONEINPROC, curcmd)
                + self.encoder.return_status(0)
                + self.encoder.done(0, 0, TOKEN_DONEPROC)
            )
        return self.encoder.done(status, rowcount, TOKEN_DONE, curcmd)


def login_response(
    encoder: TokenEncoder, database: str, product_version: str, packet_size: int, language: str = "us_english"
) -> bytes:
    """The token stream of a successful LOGIN7 reply."""
    server = encoder.server_name
    return b"".join(
        [
            encoder.envchange_text(ENV_DATABASE, database, "master"),
            encoder.message(Message(5701, 0, 2, f"Changed database context to '{database}'.", 1, server)),
            encoder.envchange_text(ENV_LANGUAGE, language, ""),
            encoder.message(Message(5703, 0, 1, f"Changed language setting to {language}.", 1, server)),
            encoder.collation(),
            encoder.envchange_text(ENV_PACKET_SIZE, str(packet_size), str(packet_size)),
            encoder.loginack(product_version),
            encoder.done(DONE_FINAL, 0),
        ]
    )


def login_failure(encoder: TokenEncoder, error: SqlError, user: str) -> bytes:
    """A refused LOGIN7; like SQL Server, any cause (e.g. 4060 unknown database) ends with 18456."""
    tokens = encoder.error(error)
    if error.number != 18456:
        tokens += encoder.error(SqlError(18456, 14, 1, f"Login failed for user '{user}'."))
    return tokens + encoder.done(DONE_ERROR, 0)


def error_response(encoder: TokenEncoder, error: SqlError) -> bytes:
    """A complete response made of one error."""
    return encoder.error(error) + encoder.done(DONE_ERROR, 0)
