"""DATEADD, DATEDIFF and DATEPART with T-SQL semantics, for the evaluator and for SQLite queries.

Semantics from Microsoft's reference pages: DATEDIFF counts the *boundaries* of ``datepart`` crossed
between the two values (``DATEDIFF(year, '2024-12-31', '2025-01-01')`` is 1); weeks start on Sunday
(the default ``DATEFIRST 7``); a datetimeoffset is compared in UTC; DATEADD on month/quarter/year
clamps the day to the end of the target month and keeps the input's type. DATEDIFF overflows int
with error 535.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

from sandbox.mssql.results import SqlError

DATEPARTS = {
    "year": "year",
    "yy": "year",
    "yyyy": "year",
    "quarter": "quarter",
    "qq": "quarter",
    "q": "quarter",
    "month": "month",
    "mm": "month",
    "m": "month",
    "dayofyear": "dayofyear",
    "dy": "dayofyear",
    "y": "dayofyear",
    "day": "day",
    "dd": "day",
    "d": "day",
    "week": "week",
    "wk": "week",
    "ww": "week",
    "weekday": "weekday",
    "dw": "weekday",
    "w": "weekday",
    "hour": "hour",
    "hh": "hour",
    "minute": "minute",
    "mi": "minute",
    "n": "minute",
    "second": "second",
    "ss": "second",
    "s": "second",
    "millisecond": "millisecond",
    "ms": "millisecond",
    "microsecond": "microsecond",
    "mcs": "microsecond",
    "nanosecond": "nanosecond",
    "ns": "nanosecond",
    "tzoffset": "tzoffset",
    "tz": "tzoffset",
}
FUNCTIONS = ("DATEADD", "DATEDIFF", "DATEPART")  # their first argument is a bare datepart keyword
_OFFSET_TEXT = re.compile(r"^(.*\d)\s*([+-]\d{2}):(\d{2})$")
_UNITS = {
    "hour": dt.timedelta(hours=1),
    "minute": dt.timedelta(minutes=1),
    "second": dt.timedelta(seconds=1),
    "millisecond": dt.timedelta(milliseconds=1),
    "microsecond": dt.timedelta(microseconds=1),
}
INT_MAX = 2**31 - 1


def datepart_name(word: object, function: str) -> str:
    part = DATEPARTS.get(str(word).lower())
    if part is None:
        raise SqlError(155, 15, 1, f"'{word}' is not a recognized {function} option.")
    return part


def parse(value) -> dt.datetime | None:
    """A datetime from a Python value or the text SQLite stores (``...`` or ``... +hh:mm``)."""
    from sandbox.mssql.engine.types import to_datetime

    if value is None or isinstance(value, dt.datetime):
        return value
    text = str(value).strip()
    match = _OFFSET_TEXT.match(text)
    if match:
        body, hours, minutes = match.groups()
        sign = -1 if hours.startswith("-") else 1
        offset = dt.timedelta(hours=abs(int(hours)), minutes=int(minutes)) * sign
        return to_datetime(body).replace(tzinfo=dt.timezone(offset))
    try:
        return to_datetime(text)
    except ValueError as e:
        raise SqlError(
            241, 16, 1, "Conversion failed when converting date and/or time from character string."
        ) from e


def offset_text(moment: dt.datetime) -> str:
    """datetimeoffset(7) as SQL Server prints it: ``2024-03-31 04:05:06.1234560 +02:00``."""
    from sandbox.mssql.engine.servertime import format_offset

    offset = moment.utcoffset() or dt.timedelta(0)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f") + "0 " + format_offset(offset)


def _utc_naive(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def _add_months(moment: dt.datetime, months: int) -> dt.datetime:
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise SqlError(517, 16, 1, "Adding a value to a 'datetime' column caused an overflow.")
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def dateadd(part, number, value):
    """DATEADD(part, number, value) as a datetime (aware when ``value`` carries an offset)."""
    moment = parse(value)
    if moment is None or number is None:
        return None
    part = datepart_name(part, "dateadd")
    count = int(number)
    try:
        if part in ("year", "quarter", "month"):
            result = _add_months(moment, count * {"year": 12, "quarter": 3, "month": 1}[part])
        elif part in ("day", "dayofyear", "weekday"):
            result = moment + dt.timedelta(days=count)
        elif part == "week":
            result = moment + dt.timedelta(weeks=count)
        elif part == "nanosecond":
            result = moment + dt.timedelta(microseconds=count // 1000)
        elif part in _UNITS:
            result = moment + _UNITS[part] * count
        else:
            raise SqlError(9810, 16, 1, f"The datepart {part} is not supported by date function dateadd.")
    except OverflowError as e:
        raise SqlError(517, 16, 1, "Adding a value to a 'datetime' column caused an overflow.") from e
    return result


def _dateadd_stored(part, number, value):
    """DATEADD inside SQLite: the result as SQLite stores the input's type."""
    result = dateadd(part, number, value)
    return None if result is None else _as_text(result, str(value))


def _as_text(moment: dt.datetime, like: str) -> str:
    """Render like the input text was stored (datetime: 3 fraction digits; datetime2: 6; offset)."""
    if moment.tzinfo is not None:
        return offset_text(moment)
    fraction = re.search(r"\.(\d+)", like)
    if fraction and len(fraction.group(1)) > 3:
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:23]


def _floor(moment: dt.datetime, unit: dt.timedelta) -> int:
    """Whole ``unit``s since 0001-01-01 (boundaries are counted on this scale)."""
    return (moment - dt.datetime(1, 1, 1)) // unit


def datediff(part, start, end):
    """DATEDIFF(part, start, end): boundaries of ``part`` crossed (int; 535 on overflow)."""
    a, b = parse(start), parse(end)
    if a is None or b is None:
        return None
    a, b = _utc_naive(a), _utc_naive(b)
    part = datepart_name(part, "datediff")
    if part == "year":
        diff = b.year - a.year
    elif part == "quarter":
        diff = (b.year * 4 + (b.month - 1) // 3) - (a.year * 4 + (a.month - 1) // 3)
    elif part == "month":
        diff = (b.year * 12 + b.month) - (a.year * 12 + a.month)
    elif part in ("day", "dayofyear", "weekday"):
        diff = (b.date() - a.date()).days
    elif part == "week":
        diff = b.date().toordinal() // 7 - a.date().toordinal() // 7  # weeks start on Sunday
    elif part == "nanosecond":
        diff = (_floor(b, _UNITS["microsecond"]) - _floor(a, _UNITS["microsecond"])) * 1000
    elif part in _UNITS:
        diff = _floor(b, _UNITS[part]) - _floor(a, _UNITS[part])
    else:
        raise SqlError(9810, 16, 1, f"The datepart {part} is not supported by date function datediff.")
    if not -INT_MAX - 1 <= diff <= INT_MAX:
        raise SqlError(
            535,
            16,
            0,
            "The datediff function resulted in an overflow. The number of dateparts separating two "
            "date/time instances is too large. Try to use datediff with a less precise datepart.",
        )
    return diff


def datepart(part, value):
    """DATEPART(part, value) as int (weeks and weekdays with Sunday first)."""
    moment = parse(value)
    if moment is None:
        return None
    part = datepart_name(part, "datepart")
    sunday_based = (moment.isoweekday() % 7) + 1  # Sunday = 1 ... Saturday = 7
    jan1 = moment.replace(month=1, day=1)
    values = {
        "year": moment.year,
        "quarter": (moment.month - 1) // 3 + 1,
        "month": moment.month,
        "dayofyear": moment.timetuple().tm_yday,
        "day": moment.day,
        "week": (moment.timetuple().tm_yday + jan1.isoweekday() % 7 - 1) // 7 + 1,
        "weekday": sunday_based,
        "hour": moment.hour,
        "minute": moment.minute,
        "second": moment.second,
        "millisecond": moment.microsecond // 1000,
        "microsecond": moment.microsecond,
        "nanosecond": moment.microsecond * 1000,
        "tzoffset": int((moment.utcoffset() or dt.timedelta(0)).total_seconds() // 60),
    }
    return values[part]


def register(conn) -> None:
    """DATEADD/DATEDIFF/DATEPART on a SQLite connection (the datepart arrives as a string literal)."""
    conn.create_function("DATEADD", 3, _dateadd_stored)
    conn.create_function("DATEDIFF", 3, datediff)
    conn.create_function("DATEPART", 2, datepart)
