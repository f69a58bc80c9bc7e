"""Migration domain core: configuration, backup naming, restore-chain rules, estimates and ledger.

Pure Python on purpose: nothing in this package imports Airflow, so it can be read, tested and
benchmarked on its own. Operators, hooks and DAGs call into it.
"""

from rds_migration.errors import MigrationError

__all__ = ["MigrationError"]
