"""Load the T-SQL statements of ``include/sql/`` and fill their ``{{ NAME }}`` keyword slots.

Values (names, paths, dates) never go through here: they are pymssql parameters (``%(name)s``).
Only option keywords that T-SQL cannot take from a variable are filled, and only from fixed allow-lists.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from pathlib import Path

#: Environment variable that overrides the folder holding the ``.sql`` files.
SQL_DIR_ENV = "RDS_MIGRATION_SQL_DIR"

#: The only values each keyword slot may take.
SLOT_VALUES: Mapping[str, frozenset[str]] = {
    "COMPRESSION": frozenset({"COMPRESSION", "NO_COMPRESSION", "COMPRESSION (ALGORITHM = MS_XPRESS)"}),
    "OPTION": frozenset({"RESTRICTED_USER", "SINGLE_USER", "MULTI_USER", "READ_ONLY", "READ_WRITE"}),
}

_SLOT = re.compile(r"\{\{\s*([A-Z_][A-Z0-9_]*)\s*\}\}")
_NAME = re.compile(r"[a-z0-9_]+")


class SqlFileError(LookupError):
    """A statement file is missing, or a keyword slot is unknown, unfilled or given a refused value."""


def sql_dir() -> Path:
    """Return the folder holding the statement files.

    ``$RDS_MIGRATION_SQL_DIR`` if set, else ``<root>/include/sql`` where ``<root>`` is the folder above
    ``plugins/`` (the repository root, or ``/opt/airflow`` when deployed as
    ``/opt/airflow/{plugins,include}``).
    """
    override = os.environ.get(SQL_DIR_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "include" / "sql"


@functools.lru_cache(maxsize=64)
def _read(folder: str, name: str) -> str:
    path = Path(folder) / f"{name}.sql"
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise SqlFileError(
            f"SQL statement file {path} not found: deploy include/sql next to plugins/ "
            f"or set {SQL_DIR_ENV} to the folder holding the .sql files"
        ) from e


def slots_of(text: str) -> set[str]:
    """Return the names of the ``{{ NAME }}`` slots in a statement text."""
    return set(_SLOT.findall(text))


def load_sql(name: str, **slots: str) -> str:
    """Return the statement ``include/sql/<name>.sql`` with its keyword slots filled.

    :param name: file name without ``.sql`` (lowercase letters, digits and ``_`` only).
    :param slots: one value per ``{{ NAME }}`` slot of the file, each from :data:`SLOT_VALUES`.
    :raises SqlFileError: unknown file, a slot missing or not in the file, or a value not allowed.
    """
    if not _NAME.fullmatch(name):
        raise SqlFileError(f"SQL statement name {name!r} is invalid: use the file name without '.sql'")
    text = _read(str(sql_dir()), name)
    wanted = slots_of(text)
    missing = wanted - set(slots)
    extra = set(slots) - wanted
    if missing or extra:
        raise SqlFileError(
            f"{name}.sql has slots {sorted(wanted)}; missing {sorted(missing)}, unexpected {sorted(extra)}"
        )
    for slot, value in slots.items():
        allowed = SLOT_VALUES.get(slot)
        if allowed is None or value not in allowed:
            raise SqlFileError(
                f"value {value!r} is not allowed in slot {slot} of {name}.sql: "
                f"use one of {sorted(allowed or ())}"
            )
    return _SLOT.sub(lambda m: slots[m.group(1)], text)
