"""Session language and DATEFORMAT: how SQL Server reads a character string as a date.

Facts (Microsoft, "SET DATEFORMAT", "SET LANGUAGE", "datetime (Transact-SQL)", sys.syslanguages):

- Each login has a default language; the language sets the session's DATEFORMAT and DATEFIRST.
  ``SET LANGUAGE`` changes all three, ``SET DATEFORMAT`` only the date order.
- ``datetime``/``smalldatetime``: a numeric string whose year comes first ('2026-11-24 10:15:00.000',
  the way pymssql renders a Python datetime) is read with day and month in the DATEFORMAT's relative order:
  under dmy it is year-day-month, so month 24 is out of range (error 242) and '2026-11-05' silently becomes
  11 May. ISO 8601 with a ``T`` ('2026-11-24T10:15:00') and the unseparated 'yyyymmdd' are read the same
  way under every DATEFORMAT.
- ``datetime2``/``date``/``datetimeoffset``: a year-first string is always year-month-day ("The DATEFORMAT ydm
  is not supported for date, datetime2 and datetimeoffset"); other numeric strings follow DATEFORMAT, and an
  impossible date is error 241 there, not 242 (SET DATEFORMAT example: '12/31/2008' under dmy -> Msg 241).
- CONVERT styles 120/121/126/127/112/23 and friends fix the order whatever DATEFORMAT says.

How SQL Server orders day and month for a year-first string under myd/dym is not documented; the
sandbox uses the relative order of d and m in the DATEFORMAT (dym -> y-d-m, myd -> y-m-d).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sandbox.mssql.results import SqlError


@dataclass(frozen=True)
class Language:
    name: str
    alias: str
    dateformat: str
    datefirst: int
    langid: int


# sys.syslanguages (SQL Server 2019/2022): name, alias, dateformat, datefirst, in langid order.
_LANGUAGES = [
    ("us_english", "English", "mdy", 7),
    ("Deutsch", "German", "dmy", 1),
    ("Français", "French", "dmy", 1),
    ("日本語", "Japanese", "ymd", 7),
    ("Dansk", "Danish", "dmy", 1),
    ("Español", "Spanish", "dmy", 1),
    ("Italiano", "Italian", "dmy", 1),
    ("Nederlands", "Dutch", "dmy", 1),
    ("Norsk", "Norwegian", "dmy", 1),
    ("Português", "Portuguese", "dmy", 7),
    ("Suomi", "Finnish", "dmy", 1),
    ("Svenska", "Swedish", "ymd", 1),
    ("čeština", "Czech", "dmy", 1),
    ("magyar", "Hungarian", "ymd", 1),
    ("polski", "Polish", "dmy", 1),
    ("română", "Romanian", "dmy", 1),
    ("hrvatski", "Croatian", "ymd", 1),
    ("slovenčina", "Slovak", "dmy", 1),
    ("slovenski", "Slovenian", "dmy", 1),
    ("ελληνικά", "Greek", "dmy", 1),
    ("български", "Bulgarian", "ymd", 1),
    ("русский", "Russian", "dmy", 1),
    ("Türkçe", "Turkish", "dmy", 1),
    ("British", "British English", "dmy", 1),
    ("eesti", "Estonian", "ymd", 1),
    ("latviešu", "Latvian", "ymd", 1),
    ("lietuvių", "Lithuanian", "ymd", 1),
    ("Português (Brasil)", "Brazilian", "dmy", 7),
    ("繁體中文", "Traditional Chinese", "ymd", 7),
    ("한국어", "Korean", "ymd", 7),
    ("简体中文", "Simplified Chinese", "ymd", 7),
    ("Arabic", "Arabic", "dmy", 1),
    ("ไทย", "Thai", "dmy", 7),
    ("norsk (bokmål)", "Bokmål", "dmy", 1),
]
LANGUAGES = [Language(n, a, f, d, i) for i, (n, a, f, d) in enumerate(_LANGUAGES)]
_BY_NAME = {key.casefold(): lang for lang in LANGUAGES for key in (lang.name, lang.alias)}
DEFAULT_LANGUAGE = LANGUAGES[0]
DATEFORMATS = ("mdy", "dmy", "ymd", "ydm", "myd", "dym")
LEGACY_TYPES = ("datetime", "smalldatetime")
DATE_TYPES = ("datetime", "smalldatetime", "datetime2", "date", "datetimeoffset", "time")
_MONTHS = {
    m: i
    for i, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for m in names
}


def find_language(name: str | None) -> Language | None:
    """A language by its name or alias (case-insensitive), as SET LANGUAGE accepts it."""
    if name is None:
        return None
    return _BY_NAME.get(str(name).strip().casefold())


def unknown_language(name: str) -> SqlError:
    return SqlError(
        2740,
        16,
        1,
        f"SET LANGUAGE failed because '{name}' is not an official language name or a language alias on "
        "this SQL Server.",
    )


def check_dateformat(value) -> str:
    text = "" if value is None else str(value).strip().lower()
    if text not in DATEFORMATS:
        raise SqlError(2741, 16, 1, f"SET DATEFORMAT date order '{value}' is invalid.")
    return text


# -- string -> date --------------------------------------------------------------------------------
class _Invalid(Exception):
    """Not a date/time string at all (241)."""


class _OutOfRange(Exception):
    """A well-formed string naming an impossible date or time (242 for datetime/smalldatetime)."""


_ISO_T = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})T(.+?)(Z|[+-]\d{2}:\d{2})?")
_UNSEPARATED = re.compile(r"(\d{4})(\d{2})(\d{2})(?:\s+(.+))?")
_NUMERIC = re.compile(r"(\d{1,4})([/.-])(\d{1,4})\2(\d{1,4})(?:\s+(.+))?")
_ALPHA_MONTH_FIRST = re.compile(r"([A-Za-z]+)\.?\s+(\d{1,2}),?\s+(\d{4})(?:\s+(.+))?")
_ALPHA_DAY_FIRST = re.compile(r"(\d{1,2})\s+([A-Za-z]+)\.?,?\s+(\d{4})(?:\s+(.+))?")
_TIME = re.compile(r"(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:([.:])(\d+))?)?\s*([AaPp][Mm])?")
# CONVERT styles that fix the order of a string read as a date: style -> order ('iso' = year-month-day).
_STYLE_ORDERS = {
    1: "mdy",
    101: "mdy",
    2: "ymd",
    102: "ymd",
    3: "dmy",
    103: "dmy",
    4: "dmy",
    104: "dmy",
    5: "dmy",
    105: "dmy",
    10: "mdy",
    110: "mdy",
    11: "ymd",
    111: "ymd",
    12: "ymd",
    112: "ymd",
    20: "iso",
    120: "iso",
    21: "iso",
    121: "iso",
    23: "iso",
    126: "iso",
    127: "iso",
}


def string_to_datetime(
    text: str, target: str, dateformat: str, source: str = "varchar", style: int | None = None
) -> dt.datetime:
    """Read ``text`` as SQL Server converts a character string to ``target`` (a date/time type).

    Raises 241 for a string that is not a date, 242 for an impossible date read as datetime/smalldatetime.
    """
    legacy = target in LEGACY_TYPES
    try:
        value = _parse(str(text).strip(), legacy, _order_for(style, dateformat))
        if legacy:
            value = _legacy_range(value, target)
        return value
    except _OutOfRange:
        if legacy:
            raise SqlError(
                242,
                16,
                3,
                f"The conversion of a {source} data type to a {target} data type resulted in an out-of-range value.",
            ) from None
        raise _conversion_failed() from None
    except _Invalid:
        raise _conversion_failed() from None


def _conversion_failed() -> SqlError:
    return SqlError(241, 16, 1, "Conversion failed when converting date and/or time from character string.")


def _order_for(style: int | None, dateformat: str) -> str:
    if style in (None, 0, 100, 9, 109, 13, 113, 22):
        return dateformat
    return _STYLE_ORDERS.get(int(style), dateformat)


def _parse(text: str, legacy: bool, order: str) -> dt.datetime:
    if text == "":
        if legacy:
            return dt.datetime(1900, 1, 1)  # CAST('' AS datetime) is 1900-01-01
        raise _Invalid
    if m := _ISO_T.fullmatch(text):
        return _combine(int(m[1]), int(m[2]), int(m[3]), m[4], legacy)
    if m := _UNSEPARATED.fullmatch(text):
        return _combine(int(m[1]), int(m[2]), int(m[3]), m[4], legacy)
    if m := _NUMERIC.fullmatch(text):
        return _numeric(m, legacy, order)
    if m := _ALPHA_MONTH_FIRST.fullmatch(text):
        return _combine(int(m[3]), _month(m[1]), int(m[2]), m[4], legacy)
    if m := _ALPHA_DAY_FIRST.fullmatch(text):
        return _combine(int(m[3]), _month(m[2]), int(m[1]), m[4], legacy)
    if _TIME.fullmatch(text):
        return _combine(1900, 1, 1, text, legacy)
    raise _Invalid


def _numeric(m: re.Match, legacy: bool, order: str) -> dt.datetime:
    a, b, c, rest = m[1], m[3], m[4], m[5]
    if order == "iso":
        order = "ymd"
    if len(a) == 4:  # year first
        if legacy and order.index("d") < order.index("m"):
            year, day, month = a, b, c
        else:
            year, month, day = a, b, c
    else:
        parts = dict(zip(order, (a, b, c), strict=True))
        year, month, day = parts["y"], parts["m"], parts["d"]
    if len(year) == 3 or len(month) > 2 or len(day) > 2:
        raise _Invalid
    return _combine(_full_year(year), int(month), int(day), rest, legacy)


def _full_year(text: str) -> int:
    year = int(text)
    if len(text) <= 2:
        year += 2000 if year < 50 else 1900  # two digit year cutoff 2049
    return year


def _month(name: str) -> int:
    month = _MONTHS.get(name.lower())
    if month is None:
        raise _Invalid
    return month


def _combine(year: int, month: int, day: int, time_text: str | None, legacy: bool) -> dt.datetime:
    hour = minute = second = micro = 0
    if time_text:
        t = _TIME.fullmatch(time_text.strip())
        if t is None:
            raise _Invalid
        hour, minute = int(t[1]), int(t[2])
        second = int(t[3] or 0)
        if t[5]:
            digits = t[5]
            if t[4] == ":":  # hh:mm:ss:mmm is milliseconds
                micro = int(digits) * 1000
            else:
                if legacy and len(digits) > 3:
                    raise _Invalid  # datetime takes at most three fractional digits
                micro = int((digits + "000000")[:6])
        if t[6]:
            if not 1 <= hour <= 12:
                raise _OutOfRange
            hour = hour % 12 + (12 if t[6].lower() == "pm" else 0)
        if hour > 23 or minute > 59 or second > 59 or micro > 999_999:
            raise _OutOfRange
    try:
        return dt.datetime(year, month, day, hour, minute, second, micro)
    except ValueError:
        raise _OutOfRange from None


def _legacy_range(value: dt.datetime, target: str) -> dt.datetime:
    if target == "smalldatetime":
        rounded = value.replace(second=0, microsecond=0)
        if value.second * 1_000_000 + value.microsecond >= 29_999_000:  # 29.999 s rounds up
            rounded += dt.timedelta(minutes=1)
        if not dt.datetime(1900, 1, 1) <= rounded <= dt.datetime(2079, 6, 6, 23, 59):
            raise _OutOfRange
        return rounded
    if value.year < 1753:
        raise _OutOfRange
    return round_datetime(value)


def round_datetime(value: dt.datetime) -> dt.datetime:
    """datetime keeps time in 1/300 s ticks: .xx0, .xx3 or .xx7 milliseconds."""
    ticks = round(value.microsecond * 300 / 1_000_000)
    millis = round(ticks * 1000 / 300)
    return value.replace(microsecond=0) + dt.timedelta(milliseconds=millis)


def looks_like_stored_datetime(text: str) -> bool:
    """The engine's own storage form of a date value ('YYYY-MM-DD hh:mm:ss.fff...')."""
    return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}( \d{2}:\d{2}:\d{2}(\.\d+)?)?", text))
