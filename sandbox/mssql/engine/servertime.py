"""The server's own clock and time zone.

SQL Server reports most times in the *server's local time*: ``GETDATE()``, ``SYSDATETIME()``,
``CURRENT_TIMESTAMP``, ``msdb.dbo.backupset.backup_start_date`` and ``restorehistory.restore_date``;
only ``GETUTCDATE()``/``SYSUTCDATETIME()`` are UTC and ``SYSDATETIMEOFFSET()`` carries the offset
(Microsoft's date and time functions reference; dbatools Get-DbaDbBackupHistory documents that
backupset dates are server local). An instance reads "now" from an injectable clock
(:class:`sandbox.clock.SandboxClock`) so tests can move time forward; while a batch runs, the
instance's clock is bound to the thread so built-in functions evaluated inside SQLite see it too.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import zoneinfo
from collections.abc import Callable, Generator
from contextlib import contextmanager

_bound = threading.local()
_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")


def parse_timezone(value: object, field: str = "timezone") -> dt.tzinfo:
    """An IANA zone name (``Europe/Berlin``), ``UTC``, or a fixed offset (``+08:00``).

    :raises ValueError: naming ``field`` when the value is neither.
    """
    text = str(value).strip() if value is not None else ""
    if text.upper() in ("UTC", "Z", "+00:00", "-00:00"):
        return dt.UTC
    match = _OFFSET.match(text)
    if match:
        sign, hours, minutes = match.groups()
        delta = dt.timedelta(hours=int(hours), minutes=int(minutes))
        if delta > dt.timedelta(hours=14) or int(minutes) >= 60:
            raise ValueError(f"{field}: offset {text!r} is out of range (-14:00 .. +14:00)")
        return dt.timezone(-delta if sign == "-" else delta)
    try:
        return zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(
            f"{field}: unknown time zone {text!r}; use an IANA name such as 'Europe/Berlin' or an offset "
            "such as '+08:00'"
        ) from e


def zone_name(tz: dt.tzinfo) -> str:
    """How the zone is written in config (``UTC``, ``Europe/Berlin`` or ``+08:00``)."""
    if tz is dt.UTC:
        return "UTC"
    if isinstance(tz, zoneinfo.ZoneInfo):
        return tz.key
    return format_offset(tz.utcoffset(None) or dt.timedelta(0))


def format_offset(offset: dt.timedelta) -> str:
    """``+01:00`` / ``-03:30``."""
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def quarter_hours(moment: dt.datetime) -> int:
    """backupset.time_zone: the UTC offset of ``moment`` in 15-minute intervals."""
    offset = moment.utcoffset() or dt.timedelta(0)
    return int(offset.total_seconds() // 900)


@contextmanager
def bound(now_local: Callable[[], dt.datetime]) -> Generator[None]:
    """Make ``now_local`` (aware, server local) the clock of built-ins evaluated on this thread."""
    saved = getattr(_bound, "now", None)
    _bound.now = now_local
    try:
        yield
    finally:
        _bound.now = saved


def current() -> dt.datetime:
    """Aware local "now" of the instance bound to this thread (the host's UTC time when none is)."""
    now = getattr(_bound, "now", None)
    return now() if now is not None else dt.datetime.now(dt.UTC)


def local_naive(moment: dt.datetime) -> dt.datetime:
    """The wall-clock reading of an aware moment (naive values are already wall-clock readings)."""
    return moment.replace(tzinfo=None)


def utc_naive(moment: dt.datetime) -> dt.datetime:
    """UTC reading of an aware moment; a naive value (old backup files) is returned unchanged."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(dt.UTC).replace(tzinfo=None)
