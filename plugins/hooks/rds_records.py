"""What the RDS API answers, as data: states, typed records and their parsing (pure Python).

Kept apart from :mod:`hooks.rds` (the client) so triggers, operators and tests can read the rules
without the SDK. Facts referenced as R<n> are in ``docs/real-world.md``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

# ---- states as data -----------------------------------------------------------------------------

#: Migration task ``Status`` values (R3: NoStart, Running, Success, Failed, Waiting, Terminated).
TASK_SUCCESS_STATES = frozenset({"Success"})
#: TerminateMigrateTask (API or console) stopped the task: it never resumes.
TASK_TERMINATED_STATES = frozenset({"Terminated"})
#: A wait for a task ends with an error in these. ``Failed`` after a failed incremental file still
#: lets the chain continue (the database is restoring); ``Terminated`` does not.
TASK_FAILURE_STATES = frozenset({"Failed"}) | TASK_TERMINATED_STATES
#: Restored and waiting for the next incremental file (Access Pending).
TASK_WAITING_STATES = frozenset({"Waiting"})
TASK_INTERMEDIATE_STATES = frozenset({"NoStart", "Running"})
#: Where a wait for a task ends, one way or the other.
TASK_TERMINAL_STATES = TASK_SUCCESS_STATES | TASK_FAILURE_STATES

#: ``DescribeOssDownloads`` file states after the restore in which RDS cleaned up (or failed to clean
#: up) its local copy of the file (R10: "a file may later show Deleted", ``IsAvailable`` False).
#: Decision: they count as restored. RDS documents them only as the removal of the downloaded copy,
#: and the stand-in reaches them only from ``Restored``; a failed file keeps its failure state.
FILE_DELETED_STATES = frozenset({"Deleted", "DeleteFailed"})
#: The file's data is in the database.
FILE_SUCCESS_STATES = frozenset({"Restored"}) | FILE_DELETED_STATES
FILE_FAILURE_STATES = frozenset({"DownloadFailed", "VerifyFailed", "CheckFailed", "RestoreFailed"})
FILE_INTERMEDIATE_STATES = frozenset({"NoStart", "Downloading", "Finished", "CheckSuccess", "Restoring"})

CHECK_DB_MODES = ("AsyncExecuteDBCheck", "SyncExecuteDBCheck")
_TIME_FORMATS = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%MZ", "%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> datetime | None:
    """Parse an RDS UTC time (``yyyy-MM-ddTHH:mm:ssZ`` or ``yyyy-MM-ddTHH:mmZ``); None if empty."""
    if not value:
        return None
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


# ---- engine versions (R8, R9) -------------------------------------------------------------------

# RDS names versions by year (EngineVersion 2019_std_ha); SQL Server reports its major version.
SQL_SERVER_MAJOR_BY_YEAR = {2008: 10, 2012: 11, 2014: 12, 2016: 13, 2017: 14, 2019: 15, 2022: 16, 2025: 17}
#: ``EngineVersion`` suffix -> edition ([SDK] CreateDBInstance: ``_ent`` cluster Enterprise,
#: ``_ent_ha`` Enterprise, ``_std_ha`` Standard, ``_web`` Web, ``_std_sl`` serverless Standard).
EDITION_BY_SUFFIX = {
    "ent": "ent",
    "ent_ha": "ent",
    "std_ha": "std",
    "std_sl": "std",
    "web": "web",
    "exp": "exp",
}
_ENGINE_VERSION = re.compile(r"^(?P<year>08r2|2008r2|20\d\d)(?:_(?P<suffix>[a-z_]+))?$")


def parse_engine_version(engine_version: str) -> tuple[int | None, str]:
    """Year and edition of an RDS ``EngineVersion``: ``2019_std_ha`` -> (2019, ``std``).

    Known forms: ``<year>_<ent|ent_ha|std_ha|std_sl|web>``, ``08r2_ent_ha`` and ``2008r2`` (SQL Server
    2008 R2), bare ``2012`` (the Enterprise single-node edition). An unknown form is logged and
    answers ``(None, "")`` (or the year with ``""``): callers must not guess.
    """
    match = _ENGINE_VERSION.match(engine_version.strip().lower())
    if match is None:
        log.warning("Unknown RDS EngineVersion %r: version and edition not recognised", engine_version)
        return None, ""
    head, suffix = match.group("year"), match.group("suffix")
    year = 2008 if head in ("08r2", "2008r2") else int(head)
    if suffix is None:
        if head in ("2012", "2008r2"):  # [SDK]: "2012" is Enterprise single node; 2008r2 was Enterprise
            return year, "ent"
        log.warning("RDS EngineVersion %r has no edition suffix: edition unknown", engine_version)
        return year, ""
    edition = EDITION_BY_SUFFIX.get(suffix)
    if edition is None:
        log.warning("Unknown edition suffix in RDS EngineVersion %r", engine_version)
        return year, ""
    return year, edition


def migration_api_support(engine_version: str, category: str) -> tuple[bool, str]:
    """Whether this migration can run on the instance, and why not.

    [META]: DescribeOssDownloads is not supported on SQL Server 2017 EE / 2019 EE cluster editions
    (``_ent``, Category ``AlwaysOn``), DescribeMigrateTasks not on the 2017 cluster edition (R8);
    SQL Server 2008 R2 takes no Access Pending import (IsOnlineDB is always True there, [META]).
    """
    version = engine_version.strip().lower()
    year, _ = parse_engine_version(version)
    cluster = version.endswith("_ent") or category == "AlwaysOn"
    if cluster and year == 2017:
        return False, (
            f"RDS does not offer DescribeOssDownloads nor DescribeMigrateTasks on SQL Server 2017 "
            f"cluster edition instances ({engine_version}, {category}): the import's files cannot be "
            "followed; use a High-availability instance"
        )
    if cluster and year == 2019:
        return False, (
            f"RDS does not offer DescribeOssDownloads on SQL Server 2019 cluster edition instances "
            f"({engine_version}, {category}): the import's files cannot be followed; use a "
            "High-availability instance or SQL Server 2022"
        )
    if year == 2008:
        return False, (
            f"SQL Server 2008 R2 instances ({engine_version}) only take a full backup that is opened at "
            "once (IsOnlineDB=True): no log shipping, no minute-level cutover"
        )
    return True, ""


# ---- records ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstanceFacts:
    """What preflight needs to know about the target RDS instance."""

    instance_id: str
    engine: str
    engine_version: str
    version_year: int | None  # 2019 for EngineVersion 2019_std_ha
    major_version: int | None  # SQL Server's own major version (15 for 2019), comparable with the source's
    edition: str
    storage_gb: int
    disk_used_bytes: int  # DBInstanceDiskUsed is in MB (R7)
    status: str
    region: str
    category: str
    lock_mode: str
    #: False when the edition lacks an API the migration needs (R8) or takes no log shipping.
    supports_migration_apis: bool = True
    unsupported_reason: str = ""


@dataclass(frozen=True)
class MigrateTask:
    """One migration task (``DescribeMigrateTasks`` item or ``DescribeMigrateTaskById``)."""

    migrate_task_id: str
    db_name: str
    backup_mode: str
    status: str
    description: str
    create_time: datetime | None
    end_time: datetime | None
    is_db_replaced: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status in TASK_SUCCESS_STATES

    @property
    def failed(self) -> bool:
        return self.status in TASK_FAILURE_STATES

    @property
    def terminated(self) -> bool:
        return self.status in TASK_TERMINATED_STATES

    @property
    def waiting(self) -> bool:
        return self.status in TASK_WAITING_STATES


@dataclass(frozen=True)
class OssDownload:
    """One backup file of a migration task (``DescribeOssDownloads`` item)."""

    file_name: str
    file_size_mb: str
    backup_mode: str
    is_available: str
    status: str
    description: str
    create_time: datetime | None
    end_time: datetime | None

    @property
    def failed(self) -> bool:
        return self.status in FILE_FAILURE_STATES

    @property
    def restored(self) -> bool:
        """The file's data is in the database (also once RDS deleted its copy)."""
        return self.status in FILE_SUCCESS_STATES


def base_name(object_key_or_name: str) -> str:
    """The last path segment: what a file is called whether RDS lists names or whole keys."""
    return object_key_or_name.rstrip("/").rsplit("/", 1)[-1]


def file_matches(download: OssDownload | str, object_key_or_name: str) -> bool:
    """True if a ``DescribeOssDownloads`` entry is the file ``object_key_or_name``.

    ``FileName`` may be the bare name or the full object key (R10, UNKNOWN): compare last segments.
    """
    listed = download if isinstance(download, str) else download.file_name
    return bool(listed) and base_name(listed) == base_name(object_key_or_name)


def object_key(oss_position: str) -> str:
    """The object key of an ``OssObjectPositions`` value (``<endpoint>:<bucket>:<key>``)."""
    return oss_position.split(":", 2)[-1].lstrip("/")


def task_from_map(item: dict[str, Any]) -> MigrateTask:
    return MigrateTask(
        migrate_task_id=str(item.get("MigrateTaskId") or ""),
        db_name=str(item.get("DBName") or ""),
        backup_mode=str(item.get("BackupMode") or ""),
        status=str(item.get("Status") or ""),
        description=str(item.get("Description") or ""),
        create_time=parse_time(item.get("CreateTime")),
        end_time=parse_time(item.get("EndTime")),
        is_db_replaced=str(item.get("IsDBReplaced") or ""),
    )


def download_from_map(item: dict[str, Any]) -> OssDownload:
    return OssDownload(
        file_name=str(item.get("FileName") or ""),
        file_size_mb=str(item.get("FileSize") or ""),
        backup_mode=str(item.get("BackupMode") or ""),
        is_available=str(item.get("IsAvailable") or ""),
        status=str(item.get("Status") or ""),
        description=str(item.get("Description") or ""),
        create_time=parse_time(item.get("CreateTime")),
        end_time=parse_time(item.get("EndTime")),
    )


def instance_facts_from_map(item: dict[str, Any], instance_id: str) -> InstanceFacts:
    engine_version = str(item.get("EngineVersion") or "")
    category = str(item.get("Category") or "")
    year, edition = parse_engine_version(engine_version)
    supported, reason = migration_api_support(engine_version, category)
    return InstanceFacts(
        instance_id=str(item.get("DBInstanceId") or instance_id),
        engine=str(item.get("Engine") or ""),
        engine_version=engine_version,
        version_year=year,
        major_version=SQL_SERVER_MAJOR_BY_YEAR.get(year) if year is not None else None,
        edition=edition,
        storage_gb=int(item.get("DBInstanceStorage") or 0),
        disk_used_bytes=int(float(item.get("DBInstanceDiskUsed") or 0) * 1024 * 1024),
        status=str(item.get("DBInstanceStatus") or ""),
        region=str(item.get("RegionId") or ""),
        category=category,
        lock_mode=str(item.get("LockMode") or ""),
        supports_migration_apis=supported,
        unsupported_reason=reason,
    )


def items(body: dict[str, Any], outer: str, inner: str) -> list[dict[str, Any]]:
    """A wrapped list of a response body (``Items.MigrateTask[]``)."""
    wrapper = body.get(outer) or {}
    found = wrapper.get(inner) if isinstance(wrapper, dict) else wrapper
    return list(found or [])


#: File modes of a child task's file (an incremental import), never a migration's first file.
INCREMENTAL_FILE_MODES = frozenset({"Transaction_Log", "Differential_Database"})
_INCREMENTAL_SUFFIXES = (".trn", ".log", ".diff")


def looks_incremental(download: OssDownload) -> bool:
    """True for a log or differential backup file (by RDS's BackupMode, else by its suffix while RDS
    has not read the file yet)."""
    if download.backup_mode:
        return download.backup_mode in INCREMENTAL_FILE_MODES
    return download.file_name.lower().endswith(_INCREMENTAL_SUFFIXES)
