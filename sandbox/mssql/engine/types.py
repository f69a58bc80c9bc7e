"""T-SQL types: how values are stored in SQLite, converted back, and described to clients."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal, InvalidOperation

from sandbox.mssql.engine.parser import SqlType
from sandbox.mssql.results import Column, SqlError

INT_RANGES = {
    "tinyint": (0, 255),
    "smallint": (-(2**15), 2**15 - 1),
    "int": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}
STRING_TYPES = {"nvarchar", "varchar", "nchar", "char", "sysname", "text", "ntext", "xml"}
BINARY_TYPES = {"varbinary", "binary", "image", "rowversion", "timestamp"}
# BINARY_CHECKSUM(*) and CHECKSUM(*) skip these ("noncomparable data types": Microsoft, BINARY_CHECKSUM).
NONCOMPARABLE_TYPES = {"text", "ntext", "image", "xml"}
LOB_TYPES = NONCOMPARABLE_TYPES  # returned to clients as nvarchar(max)/varbinary(max)
SINGLE_BYTE_TYPES = {"varchar", "char", "text"}  # one byte per (code page) character
DATE_TYPES = {"datetime", "datetime2", "smalldatetime", "date", "datetimeoffset", "time"}
NUMERIC_TYPES = {"decimal", "numeric", "money", "smallmoney"}
KNOWN_TYPES = (
    set(INT_RANGES)
    | STRING_TYPES
    | BINARY_TYPES
    | DATE_TYPES
    | NUMERIC_TYPES
    | {"bit", "float", "real", "uniqueidentifier", "sql_variant"}
)


def check_type(sqltype: SqlType) -> None:
    if sqltype.name not in KNOWN_TYPES:
        raise SqlError(
            2715, 16, 6, f"Column, parameter, or variable #1: Cannot find data type {sqltype.name}."
        )


def affinity(sqltype: SqlType) -> str:
    """SQLite column affinity for a T-SQL type (decimals kept as exact text)."""
    name = sqltype.name
    if name in INT_RANGES or name == "bit":
        return "INTEGER"
    if name in ("float", "real"):
        return "REAL"
    if name in BINARY_TYPES:
        return "BLOB"
    return "TEXT"


def column_for(name: str, sqltype: SqlType, nullable: bool = True) -> Column:
    """The result-set column describing ``sqltype``."""
    t = sqltype.name
    if t in ("int", "bigint", "smallint", "tinyint", "bit", "uniqueidentifier", "datetime", "datetime2"):
        if t == "datetime2":
            return Column(
                name, "datetime2", scale=7 if sqltype.scale is None else sqltype.scale, nullable=nullable
            )
        return Column(name, t, nullable=nullable)
    if t in NUMERIC_TYPES:
        precision = sqltype.precision or (19 if t == "money" else 18)
        scale = sqltype.scale if sqltype.scale is not None else (4 if "money" in t else 0)
        return Column(name, "numeric", precision=precision, scale=scale, nullable=nullable)
    if t in ("float", "real"):
        return Column(name, "float", nullable=nullable)
    if t in ("smalldatetime",):
        return Column(name, "datetime", nullable=nullable)
    if t in ("date", "datetimeoffset", "time"):
        return Column(name, "datetime2", scale=0 if t == "date" else 7, nullable=nullable)
    if t in LOB_TYPES:
        kind = "varbinary" if t == "image" else "nvarchar"
        return Column(name, kind, size=-1, nullable=nullable)
    if t in BINARY_TYPES:
        return Column(name, "varbinary", size=_size(sqltype, 8000), nullable=nullable)
    if t == "sysname":
        return Column(name, "nvarchar", size=128, nullable=nullable)
    return Column(name, "nvarchar", size=_size(sqltype, 4000), nullable=nullable)


def _size(sqltype: SqlType, default: int) -> int:
    if sqltype.length is None:
        return 1 if sqltype.name in ("char", "nchar", "binary") else default
    if sqltype.length < 0 or sqltype.length > default:
        return -1
    return sqltype.length


def format_datetime(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:23]


def coerce(value, sqltype: SqlType, dateformat: str = "mdy", source: str = "varchar", style=None):
    """Convert a Python value to ``sqltype`` as T-SQL CAST/assignment would (NULL stays NULL).

    A string becomes a date/time value under the session's ``dateformat`` (``source`` names its type in
    error 242); date/time results are ``datetime`` objects.
    """
    if value is None:
        return None
    t = sqltype.name
    try:
        if t in INT_RANGES:
            number = _to_number(value)
            result = int(number)
            low, high = INT_RANGES[t]
            if not low <= result <= high:
                raise SqlError(
                    8115, 16, 2, f"Arithmetic overflow error converting expression to data type {t}."
                )
            return result
        if t == "bit":
            return 1 if _to_number(value) else 0
        if t in NUMERIC_TYPES:
            number = Decimal(str(_to_number(value)))
            scale = sqltype.scale if sqltype.scale is not None else 0
            return number.quantize(Decimal(1).scaleb(-scale)) if t in ("decimal", "numeric") else number
        if t in ("float", "real"):
            return float(_to_number(value))
        if t in STRING_TYPES:
            text = _to_text(value)
            if sqltype.length is not None and sqltype.length > 0:
                return text[: sqltype.length]
            if t == "sysname":
                return text[:128]
            return text if sqltype.length is not None or t in ("text", "ntext", "xml") else text[:30]
        if t == "uniqueidentifier":
            return str(uuid.UUID(str(value))).upper()
        if t in DATE_TYPES:
            if isinstance(value, str):
                from sandbox.mssql.engine.language import string_to_datetime

                return string_to_datetime(value, t, dateformat, source, style)
            return to_datetime(value)
        if t in BINARY_TYPES:
            return value if isinstance(value, bytes) else str(value).encode("utf-16-le")
    except SqlError:
        raise
    except (ValueError, TypeError, InvalidOperation) as e:
        raise SqlError(
            245, 16, 1, f"Conversion failed when converting the value '{value}' to data type {t}."
        ) from e
    return value


def _to_number(value):
    if isinstance(value, (int, float, Decimal)):
        return value
    if isinstance(value, bool):
        return int(value)
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        return Decimal(text)


def _to_text(value) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.datetime):
        return value.strftime("%b %d %Y %I:%M%p")
    if isinstance(value, uuid.UUID):
        return str(value).upper()
    if isinstance(value, bytes):
        return value.decode("utf-16-le", errors="replace")
    return str(value)


def to_datetime(value) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    text = str(value).strip().replace("T", " ")
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y%m%d"):
        try:
            return dt.datetime.strptime(text[:26], fmt)
        except ValueError:
            continue
    raise ValueError(text)


def from_storage(value, column: Column):
    """A SQLite value converted back to the Python type the client expects for ``column``."""
    if value is None:
        return None
    t = column.type
    try:
        if t == "numeric":
            number = Decimal(str(value))
            return number.quantize(Decimal(1).scaleb(-column.scale)) if column.scale is not None else number
        if t == "bit":
            return bool(int(value))
        if t in ("int", "bigint", "smallint", "tinyint"):
            return int(value)
        if t == "float":
            return float(value)
        if t == "uniqueidentifier":
            return uuid.UUID(str(value))
        if t in ("datetime", "datetime2"):
            return to_datetime(value)
        if t == "varbinary":
            return value if isinstance(value, bytes) else str(value).encode()
        if t == "nvarchar":
            return value if isinstance(value, str) else _to_text(value)
    except (ValueError, InvalidOperation):
        return value
    return value


def infer_column(name: str, values: list) -> Column:
    """A column type guessed from values (for expressions whose type is not declared)."""
    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, bool):
        return Column(name, "bit")
    if isinstance(sample, int):
        small = all(v is None or -(2**31) <= v < 2**31 for v in values)
        return Column(name, "int" if small else "bigint")
    if isinstance(sample, float):
        return Column(name, "float")
    if isinstance(sample, Decimal):
        return Column(name, "numeric", precision=38, scale=max(0, -sample.as_tuple().exponent))
    if isinstance(sample, bytes):
        return Column(name, "varbinary", size=-1)
    if isinstance(sample, dt.datetime):
        if sample.tzinfo is not None:  # SYSDATETIMEOFFSET()
            return Column(name, "datetimeoffset", scale=7)
        return Column(name, "datetime")
    if isinstance(sample, uuid.UUID):
        return Column(name, "uniqueidentifier")
    return Column(name, "nvarchar", size=4000)


def storage_value(value):
    """A Python value as SQLite stores it (UUID/datetime/Decimal/bool become text/int)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, uuid.UUID):
        return str(value).upper()
    if isinstance(value, dt.datetime):
        return format_datetime(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return str(value)  # LSNs are numeric(25,0): beyond SQLite's 64-bit INTEGER, kept as digits
    return value
