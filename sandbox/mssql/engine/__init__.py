"""The simulated SQL Server engine behind the sandbox TDS server.

``Instance.from_config(cfg, base_dir, clock=None)`` builds an instance; the protocol layer calls ``login``,
``execute``, ``begin_transaction``/``commit``/``rollback`` and ``close_session``. The RDS stand-in uses
the Python API (``read_backup_header``, ``restore_file``, ``recover_database``, ``checkdb``...).

Config keys: ``name``, ``product_version``, ``edition``, ``data_dir``, ``path_map``, ``logins``,
``timezone`` (IANA name or ``+hh:mm``; default UTC: GETDATE() and msdb dates are in this zone),
``empty_log_restore`` (``accept`` | ``refuse``: RESTORE LOG of an empty log backup at the restore point),
``databases`` (per database: ``recovery_model``, ``tables``, ``history`` — a backup job's past backups,
see ``sandbox.mssql.engine.history`` — and more), ``faults`` (BACKUP faults at a seeded rate, see
``sandbox.mssql.engine.faults``; one-shot ones through ``Instance.faults.next_backup``). "Now" comes only
from ``Instance.clock``.

``Instance.close()`` saves the databases' state beside their files: an instance built again on the same
``data_dir`` continues from it instead of seeding the config's databases (``sandbox.mssql.engine.persist``).
"""

from sandbox.mssql.engine.instance import ConfigError, Instance, Session

__all__ = ["ConfigError", "Instance", "Session"]
