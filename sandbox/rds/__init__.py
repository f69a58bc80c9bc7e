"""RDS OpenAPI (2014-08-15) stand-in for ApsaraDB RDS for SQL Server backup migration.

- ``sandbox.rds.server``: the aiohttp front (Tea RPC protocol, V3/V2 signatures, RAM permissions,
  faults); ``ThreadedRdsServer`` for tests, ``serve`` for a shared event loop.
- ``sandbox.rds.service``: the operations (CreateMigrateTask, CreateOnlineDatabaseTask,
  TerminateMigrateTask, DeleteDatabase, Describe*), timed by the shared ``SandboxClock``.
- ``sandbox.rds.pipeline``: background download/verify/restore/open against the target engine.
- ``sandbox.rds.quota``: the daily import quotas; ``sandbox.rds.state``: the state file.
- ``sandbox.rds.oss_source``: ``OssObjectPositions`` parsing and the OSS stand-in's store.
- ``sandbox.rds.config``: the instance, timings, faults and the switches for UNKNOWN behaviours.
- ``sandbox.rds.errors``: the documented error codes, statuses and messages.
"""

from sandbox.rds.config import FaultConfig, RdsConfig, TimingConfig
from sandbox.rds.oss_source import StoreObjectSource
from sandbox.rds.server import ThreadedRdsServer, create_app, serve
from sandbox.rds.service import RdsService

__all__ = [
    "FaultConfig",
    "RdsConfig",
    "RdsService",
    "StoreObjectSource",
    "ThreadedRdsServer",
    "TimingConfig",
    "create_app",
    "serve",
]
