"""Base exception of the migration domain."""


class MigrationError(Exception):
    """Base class for every error raised by the migration domain core.

    Messages say what is wrong (naming the file, database, field or LSN) and what to do next.
    """
