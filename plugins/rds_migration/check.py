"""Validate a migration config folder before it is deployed (CI, a pre-commit hook, a deploy step).

From the repository root::

    PYTHONPATH=plugins .venv/bin/python -m rds_migration.check include/migrations

Exit code 0 when every entry of every ``*.yaml`` file is valid (a summary goes to stdout); 1 when not,
with every problem on stderr, one per line (nothing else there), as the DAG factory reports it: ``<file>: entry '<entry>':
field '<field>': <message>``; entry names defined twice across files (ignoring case) are problems too.
2 for a wrong command line. Same rules as the DAG factory, which imports nothing from Airflow here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rds_migration.config import ConfigError, load_config_dir


def check_folder(folder: str | Path) -> tuple[int, list[ConfigError]]:
    """(number of valid entries, every problem) for the config folder ``folder``."""
    path = Path(folder)
    if not path.is_dir():
        return 0, [ConfigError(str(folder), None, None, "is not a folder")]
    result = load_config_dir(path)
    return len(result.migrations), result.errors


def _one_line(error: ConfigError) -> str:
    return " ".join(str(error).split())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rds_migration.check",
        description="Validate the migration config folder (every *.yaml file) as the DAG factory would.",
    )
    parser.add_argument("folder", help="config folder, e.g. include/migrations")
    args = parser.parse_args(argv)
    valid, errors = check_folder(args.folder)
    for error in errors:
        print(_one_line(error), file=sys.stderr)
    if errors:
        # The summary goes to stdout: stderr holds exactly one line per problem, for CI to parse.
        print(f"{len(errors)} problem(s); {valid} valid entr{'y' if valid == 1 else 'ies'}")
        return 1
    files = len(list(Path(args.folder).glob("*.yaml")))
    note = "" if files else " (no *.yaml file: the DAG factory builds no DAG here)"
    print(f"OK: {valid} entr{'y' if valid == 1 else 'ies'} in {files} file(s) in {args.folder}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
