"""Built-in scalar/aggregate functions, shared by the expression evaluator and SQLite queries.

Functions that read the clock or make GUIDs take them from a per-thread *write context*, so a logged
write replays to the same values during RESTORE.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import threading
import uuid
import zlib
from contextlib import contextmanager

from sandbox.mssql.engine import datefuncs, language, servertime
from sandbox.mssql.engine.lexer import quote_ident
from sandbox.mssql.engine.types import format_datetime
from sandbox.mssql.results import SqlError

_context = threading.local()


@contextmanager
def write_context(now: dt.datetime, seed: int):
    """Pin the clock and GUID generator while a write (or its replay) runs."""
    saved = getattr(_context, "state", None)
    _context.state = (now, random.Random(seed))
    try:
        yield
    finally:
        _context.state = saved


def now_offset() -> dt.datetime:
    """SYSDATETIMEOFFSET(): the server's local time with its UTC offset (pinned during a write)."""
    state = getattr(_context, "state", None)
    return state[0] if state else servertime.current()


def now_local() -> dt.datetime:
    """GETDATE()/SYSDATETIME(): the server's wall-clock time (its own time zone), naive."""
    return servertime.local_naive(now_offset())


def now_utc() -> dt.datetime:
    """GETUTCDATE()/SYSUTCDATETIME(), naive UTC."""
    return servertime.utc_naive(now_offset())


def new_guid() -> str:
    state = getattr(_context, "state", None)
    value = uuid.UUID(int=state[1].getrandbits(128), version=4) if state else uuid.uuid4()
    return str(value).upper()


def quotename(name, quote_char: str = "[") -> str | None:
    """QUOTENAME: NULL for NULL or input over 128 characters."""
    if name is None or len(str(name)) > 128:
        return None
    name = str(name)
    if quote_char in ("[", "]"):
        return quote_ident(name)
    if quote_char == "'":
        return "'" + name.replace("'", "''") + "'"
    if quote_char == '"':
        return '"' + name.replace('"', '""') + '"'
    return None


def _checksum_bytes(value) -> bytes:
    if value is None:
        return b"\x00N"
    if isinstance(value, bytes):
        return b"\x01B" + value
    if isinstance(value, float):
        return b"\x01F" + repr(value).encode()
    if isinstance(value, int):
        return b"\x01I" + str(value).encode()
    return b"\x01S" + str(value).encode("utf-8")


def binary_checksum(*values) -> int:
    """A deterministic 32-bit signed checksum of a row (equal data -> equal checksum)."""
    crc = 0
    for value in values:
        crc = zlib.crc32(_checksum_bytes(value), crc)
        crc = zlib.crc32(b"\x1f", crc)
    return crc - 2**32 if crc >= 2**31 else crc


def checksum(*values) -> int:
    """CHECKSUM: like BINARY_CHECKSUM but case-insensitive for strings (default CI collation)."""
    return binary_checksum(*(v.casefold() if isinstance(v, str) else v for v in values))


class ChecksumAgg:
    """CHECKSUM_AGG: XOR of the values (order-independent), NULL for no rows."""

    def __init__(self) -> None:
        self.value: int | None = None

    def step(self, value) -> None:
        if value is not None:
            self.value = (self.value or 0) ^ int(value)

    def finalize(self) -> int | None:
        return self.value


HASH_ALGORITHMS = {
    "MD2": None,  # not in hashlib; SQL Server 2016+ deprecates it
    "MD4": None,
    "MD5": "md5",
    "SHA": "sha1",
    "SHA1": "sha1",
    "SHA2_256": "sha256",
    "SHA2_512": "sha512",
}


def hashbytes(algorithm, value) -> bytes | None:
    """HASHBYTES: a string hashes as UTF-16LE (nvarchar, the sandbox's string storage), bytes as they are."""
    if algorithm is None or value is None:
        return None
    name = HASH_ALGORITHMS.get(str(algorithm).upper())
    if name is None:
        return None
    data = value if isinstance(value, bytes) else str(value).encode("utf-16-le")
    return hashlib.new(name, data).digest()


def single_byte_length(value) -> int | None:
    """DATALENGTH of a varchar/char/text value: one byte per (code page 1252) character."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return len(value)
    return len(str(value).encode("cp1252", errors="replace"))


def to_date(value, target, dateformat, style, source):
    """SQLite side of CAST/CONVERT to a date type: a string is read under the DATEFORMAT passed in.

    ``source`` 'date' marks a date column (kept as it is); 'auto' an expression of unknown type, whose
    value in the engine's storage form is taken as a date value. The DATEFORMAT travels in the SQL text, so a logged write replays alike.
    """
    if value is None or isinstance(value, (bytes, int, float)) or source == "date":
        return value
    text = str(value)
    if source == "auto" and language.looks_like_stored_datetime(text):
        return text
    try:
        parsed = language.string_to_datetime(
            text, target, dateformat, "varchar" if source == "auto" else source, style
        )
    except SqlError as e:
        _context.function_error = e
        raise
    return format_datetime(parsed)


def take_function_error() -> SqlError | None:
    """The SqlError a SQLite user function raised in this thread (SQLite only reports that one failed)."""
    error = getattr(_context, "function_error", None)
    _context.function_error = None
    return error


def register_common(conn) -> None:
    """Register the functions that need no instance/session state on a SQLite connection."""
    conn.create_function("GETDATE", 0, lambda: format_datetime(now_local()))
    conn.create_function("SYSDATETIME", 0, lambda: now_local().strftime("%Y-%m-%d %H:%M:%S.%f"))
    conn.create_function("GETUTCDATE", 0, lambda: format_datetime(now_utc()))
    conn.create_function("SYSUTCDATETIME", 0, lambda: now_utc().strftime("%Y-%m-%d %H:%M:%S.%f"))
    conn.create_function("SYSDATETIMEOFFSET", 0, lambda: datefuncs.offset_text(now_offset()))
    datefuncs.register(conn)
    conn.create_function("NEWID", 0, new_guid)
    conn.create_function("QUOTENAME", 1, quotename)
    conn.create_function("QUOTENAME", 2, quotename)
    conn.create_function("BINARY_CHECKSUM", -1, binary_checksum, deterministic=True)
    conn.create_function("CHECKSUM", -1, checksum, deterministic=True)
    conn.create_aggregate("CHECKSUM_AGG", 1, ChecksumAgg)
    conn.create_function("LEN", 1, lambda s: None if s is None else len(str(s).rstrip(" ")))
    conn.create_function("DATALENGTH", 1, _datalength)
    conn.create_function("ISNULL", 2, lambda a, b: b if a is None else a)
    conn.create_function("UPPER", 1, lambda s: None if s is None else str(s).upper())
    conn.create_function("HASHBYTES", 2, hashbytes, deterministic=True)
    conn.create_function("DATALENGTH_SB", 1, single_byte_length, deterministic=True)
    conn.create_function("SBX_TO_DATE", 5, to_date, deterministic=True)
    conn.create_function("LOWER", 1, lambda s: None if s is None else str(s).lower())


def _datalength(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, str):
        return len(value.encode("utf-16-le"))
    return 8
