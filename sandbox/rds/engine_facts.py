"""What the RDS API reports about the target engine: databases, storage, engine version."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from sandbox.rds.config import RdsConfig

SYSTEM_DATABASES = frozenset({"master", "model", "msdb", "tempdb"})
#: Names a migration may not use ([INST]: 403 InvalidDBName "You cannot use system database names").
RESERVED_NAMES = SYSTEM_DATABASES | {"mssqlsystemresource"}
# SERVERPROPERTY('ProductVersion') major -> the year RDS uses in EngineVersion.
VERSION_YEARS = {10: "2008r2", 11: "2012", 12: "2014", 13: "2016", 14: "2017", 15: "2019", 16: "2022"}
# EngineVersion -> Category ([META] DescribeDBInstanceAttribute/CreateDBInstance: "_ent" is the
# cluster edition, Category AlwaysOn; "_ent_ha"/"_std_ha" high availability; "_web" basic; bare
# "2012" the Enterprise single node (basic); "_sl" serverless).
CATEGORIES = {
    "_ent": "AlwaysOn",
    "_ent_ha": "HighAvailability",
    "_std_ha": "HighAvailability",
    "_web": "Basic",
    "_std_sl": "serverless_ha",
}
# sys.databases state_desc -> DescribeDatabases DBStatus ([META]: Creating, Running, Deleting, Cold;
# a database being restored by a migration is being created as far as RDS is concerned).
DB_STATUS = {"ONLINE": "Running", "RESTORING": "Creating", "RECOVERING": "Creating", "OFFLINE": "Offline"}
# [META] DescribeOssDownloads: "not supported on SQL Server 2017 EE and 2019 EE" (the "_ent" cluster
# editions); DescribeMigrateTasks: "not supported on SQL Server 2017 cluster edition" (R8).
UNSUPPORTED_ACTIONS = {
    "2017_ent": frozenset({"DescribeOssDownloads", "DescribeMigrateTasks"}),
    "2019_ent": frozenset({"DescribeOssDownloads"}),
}
_MB = 1024 * 1024


def engine_version_of(product_version: str, edition: str) -> str:
    """``EngineVersion`` such as ``2019_std_ha`` from ``15.0.4236.7`` and ``Standard Edition (64-bit)``."""
    major = int(str(product_version).split(".")[0])
    year = VERSION_YEARS.get(major, str(major))
    edition = (edition or "").lower()
    if "enterprise" in edition or "developer" in edition:
        suffix = "_ent_ha"
    elif "web" in edition or "express" in edition:
        suffix = "_web"
    else:
        suffix = "_std_ha"
    return f"{year}{suffix}"


def category_of(engine_version: str) -> str:
    if engine_version == "2012":
        return "Basic"
    for suffix in sorted(CATEGORIES, key=len, reverse=True):
        if engine_version.endswith(suffix):
            return CATEGORIES[suffix]
    return "HighAvailability"  # 08r2_ent_ha, 2008r2


class EngineFacts:
    """Reads the target engine off the event loop (engine calls may block on its locks)."""

    def __init__(self, engine: Any, config: RdsConfig, created_at: float):
        self.engine = engine
        self.config = config
        self.created_at = created_at

    @property
    def engine_version(self) -> str:
        return self.config.engine_version or engine_version_of(
            self.engine.product_version, self.engine.edition
        )

    async def _databases(self) -> list[tuple[str, dict]]:
        def read() -> list[tuple[str, dict]]:
            found = []
            for name in self.engine.database_names():
                info = self.engine.database_info(name)
                if info is not None:
                    found.append((name, info))
            return found

        return await asyncio.to_thread(read)

    def supports(self, action: str) -> bool:
        """False for an API the instance's edition does not offer (R8)."""
        return action not in UNSUPPORTED_ACTIONS.get(self.engine_version, frozenset())

    async def has_database(self, name: str) -> bool:
        return any(found.lower() == name.lower() for found, _ in await self._databases())

    async def state_of(self, name: str) -> str | None:
        for found, info in await self._databases():
            if found.lower() == name.lower():
                return info.get("state_desc")
        return None

    async def user_databases(self) -> list[dict[str, Any]]:
        databases = []
        for name, info in await self._databases():
            if name.lower() in SYSTEM_DATABASES:
                continue
            state = info.get("state_desc", "ONLINE")
            databases.append(
                {
                    "DBName": name,
                    "DBStatus": DB_STATUS.get(state, state.title()),
                    "Engine": "SQLServer",
                    "DBInstanceId": self.config.instance_id,
                    "CharacterSetName": info.get("collation_name") or "Chinese_PRC_CI_AS",
                    "DBDescription": "",
                }
            )
        return databases

    async def user_database_count(self) -> int:
        return len(await self.user_databases())

    async def used_bytes(self) -> int:
        return sum(int(info.get("size_bytes") or 0) for _, info in await self._databases())

    async def free_storage_bytes(self, reserved: int = 0) -> int:
        return int(self.config.storage_gb * 1024**3) - await self.used_bytes() - reserved

    async def instance_attribute(self) -> dict[str, Any]:
        engine_version = self.engine_version
        return {
            "DBInstanceId": self.config.instance_id,
            "RegionId": self.config.region,
            "ZoneId": f"{self.config.region}-h",
            "Engine": "SQLServer",
            "EngineVersion": engine_version,
            "Category": self.config.category or category_of(engine_version),
            "DBInstanceStatus": self.config.status,
            # [META]: DBInstanceStorage is an integer in GB, DBInstanceDiskUsed a string in MB (R7).
            "DBInstanceStorage": math.ceil(self.config.storage_gb),
            "DBInstanceStorageType": "cloud_essd",
            "DBInstanceDiskUsed": str(math.ceil(await self.used_bytes() / _MB)),
            "DBMaxQuantity": self.config.max_databases,
            "DBInstanceType": "Primary",
            "LockMode": "Unlock",
            "LockReason": "",
            "PayType": "Postpaid",
            "DBInstanceClass": "mssql.x4.medium.s2",
            "ConnectionString": f"{self.config.instance_id}.mssql.rds.aliyuncs.com",
            "Port": "1433",
            "CurrentKernelVersion": str(self.engine.product_version),
        }
