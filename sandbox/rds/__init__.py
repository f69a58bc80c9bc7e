"""RDS OpenAPI (2014-08-15) stand-in for ApsaraDB RDS for SQL Server backup migration.

- ``sandbox.rds.server``: the aiohttp front (Tea RPC protocol, V3/V2 signatures, faults);
  ``ThreadedRdsServer`` for tests, ``serve`` for a shared event loop.
- ``sandbox.rds.service``: the operations (CreateMigrateTask, CreateOnlineDatabaseTask, Describe*).
- ``sandbox.rds.pipeline``: background download/verify/restore/open against the target engine.
- ``sandbox.rds.oss_source``: ``OssObjectPositions`` parsing and the OSS stand-in's store.
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
