"""SQL Server errors the engine raises, with their real numbers, severities, states and texts."""

from __future__ import annotations

from sandbox.mssql.results import SqlError


def cancelled() -> SqlError:
    return SqlError(3617, 25, 1, "The query was cancelled by the client (attention).")


def backup_aborted() -> SqlError:
    return SqlError(3204, 16, 1, "The backup or restore was aborted.")


def terminating(statement: str) -> SqlError:
    return SqlError(3013, 16, 1, f"{statement} is terminating abnormally.")


def db_not_exist(name: str) -> SqlError:
    return SqlError(
        911, 16, 1, f"Database '{name}' does not exist. Make sure that the name is entered correctly."
    )


def db_restoring(name: str) -> SqlError:
    return SqlError(927, 14, 2, f"Database '{name}' cannot be opened. It is in the middle of a restore.")


def db_offline(name: str) -> SqlError:
    return SqlError(942, 14, 4, f"Database '{name}' cannot be opened because it is offline.")


def db_recovery_pending(name: str) -> SqlError:
    return SqlError(
        945,
        14,
        2,
        f"Database '{name}' cannot be opened due to inaccessible files or insufficient memory or disk space. "
        "See the SQL Server errorlog for details.",
    )


def db_single_user(name: str) -> SqlError:
    return SqlError(924, 14, 1, f"Database '{name}' is already open and can only have one user at a time.")


def db_read_only(name: str) -> SqlError:
    return SqlError(3906, 16, 1, f'Failed to update database "{name}" because the database is read-only.')


def in_transaction() -> SqlError:
    return SqlError(3021, 16, 1, "Cannot perform a backup or restore operation within a transaction.")


def exclusive_access() -> SqlError:
    return SqlError(3101, 16, 1, "Exclusive access could not be obtained because the database is in use.")


def cannot_open_device(path: str, os_error: int, os_text: str) -> SqlError:
    return SqlError(
        3201, 16, 1, f"Cannot open backup device '{path}'. Operating system error {os_error}({os_text})."
    )


def media_incorrectly_formed(path: str) -> SqlError:
    return SqlError(
        3241,
        16,
        1,
        f"The media family on device '{path}' is incorrectly formed. SQL Server cannot process this media family.",
    )


def restore_page_error(database: str) -> SqlError:
    return SqlError(
        3183,
        16,
        1,
        f'RESTORE detected an error on page (1:1) in database "{database}" as read from the backup set.',
    )


def invalid_object(name: str) -> SqlError:
    return SqlError(208, 16, 1, f"Invalid object name '{name}'.")
