"""The simulated SQL Server engine behind the sandbox TDS server.

``Instance.from_config(cfg, base_dir)`` builds an instance; the protocol layer calls ``login``,
``execute``, ``begin_transaction``/``commit``/``rollback`` and ``close_session``. The RDS stand-in uses
the Python API (``read_backup_header``, ``restore_file``, ``recover_database``, ``checkdb``...).
"""

from sandbox.mssql.engine.instance import ConfigError, Instance, Session

__all__ = ["ConfigError", "Instance", "Session"]
