"""Values the simulated SQL engine emits and the TDS layer encodes.

This module is the contract between ``sandbox.mssql.engine`` (producer) and ``sandbox.mssql.tds``
(encoder). It holds plain data only.
"""

from __future__ import annotations

from dataclasses import dataclass

COLUMN_TYPES = frozenset(
    {
        "int",
        "bigint",
        "smallint",
        "tinyint",
        "bit",
        "nvarchar",
        "numeric",
        "float",
        "datetime",
        "datetime2",
        "datetimeoffset",
        "uniqueidentifier",
        "varbinary",
    }
)


@dataclass(frozen=True)
class Column:
    """One result-set column.

    :param name: column name (any characters).
    :param type: one of ``COLUMN_TYPES``.
    :param precision: numeric precision (LSNs are numeric(25,0)).
    :param scale: numeric scale; datetime2 fractional-second scale.
    :param size: nvarchar/varbinary max chars/bytes; 0 = default 4000/8000; -1 = MAX (PLP).
    :param nullable: whether NULL may appear.
    """

    name: str
    type: str
    precision: int = 0
    scale: int = 0
    size: int = 0
    nullable: bool = True

    def __post_init__(self) -> None:
        if self.type not in COLUMN_TYPES:
            raise ValueError(f"unsupported column type {self.type!r} for column {self.name!r}")


@dataclass
class ResultSet:
    """A result set: columns plus rows of Python values.

    Values: int, bool, str, Decimal, float, datetime, uuid.UUID, bytes, or None.
    """

    columns: list[Column]
    rows: list[tuple]


@dataclass
class Done:
    """A statement finished without a result set (DML rowcount, or None)."""

    rowcount: int | None = None


@dataclass
class Message:
    """An INFO (severity <= 10) or non-fatal ERROR (severity >= 11) token sent mid-batch."""

    number: int
    severity: int
    state: int
    text: str
    line: int = 1
    server: str = ""
    proc: str = ""


class SqlError(Exception):
    """Terminates the current batch; TDS sends an ERROR token, then DONE with the error bit."""

    def __init__(self, number: int, severity: int, state: int, message: str, line: int = 1):
        super().__init__(message)
        self.number = number
        self.severity = severity
        self.state = state
        self.message = message
        self.line = line

    def __str__(self) -> str:
        return f"Msg {self.number}, Level {self.severity}, State {self.state}: {self.message}"


@dataclass
class EnvChange:
    """An environment change the client must learn about, e.g. ``USE <db>``.

    :param kind: ``'database'`` (others may be added: ``'language'``, ``'packet_size'``).
    """

    kind: str
    new: str
    old: str
