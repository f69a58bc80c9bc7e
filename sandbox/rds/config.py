"""Configuration of the RDS OpenAPI stand-in: the instance, its timings, injected faults and the
switches for behaviours the public documentation leaves open (UNKNOWN in real-world.md)."""

from __future__ import annotations

import collections
import dataclasses
import fnmatch
import random
import re
import threading
import zoneinfo
from collections.abc import Mapping
from typing import Any


class RdsConfigError(ValueError):
    """A configuration value is invalid; the message names the field."""


def _from_mapping(cls, data: Mapping[str, Any] | None, prefix: str):
    if data is not None and not isinstance(data, Mapping):
        raise RdsConfigError(f"{prefix}: must be a mapping, got {type(data).__name__}")
    data = dict(data or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise RdsConfigError(f"{prefix}: unknown field(s) {unknown}; known: {sorted(known)}")
    return cls(**data)


def _choice(prefix: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise RdsConfigError(f"{prefix}: {value!r} is not one of {list(allowed)}")


@dataclasses.dataclass
class TimingConfig:
    """How long the background work takes (tests use near-zero values).

    :param step_delay_s: pause before each file status change (queueing, verification...).
    :param download_mb_per_s: OSS download rate; 0 = instant.
    :param restore_mb_per_s: restore rate; 0 = instant.
    :param open_delay_s: time to open (recover) a database.
    :param checkdb_delay_s: time DBCC CHECKDB takes.
    :param delete_restored_files_after_s: sandbox-clock seconds after which a Restored file reads
        ``Deleted`` (``IsAvailable`` False): RDS removes its local copy (R10). ``None`` = never.
    """

    step_delay_s: float = 0.01
    download_mb_per_s: float = 0.0
    restore_mb_per_s: float = 0.0
    open_delay_s: float = 0.01
    checkdb_delay_s: float = 0.01
    delete_restored_files_after_s: float | None = None

    def validate(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None and field.name == "delete_restored_files_after_s":
                continue
            if not isinstance(value, int | float) or value < 0:
                raise RdsConfigError(f"rds.timing.{field.name}: must be a number >= 0, got {value!r}")


#: What an injected ambiguous CreateMigrateTask failure does after the import was accepted (R5).
CREATE_FAULTS = ("accept_then_500", "accept_then_drop", "accept_then_slow")
#: How an injected file failure shows: the download from OSS breaks off, or the RESTORE hits an I/O error.
FILE_FAULTS = ("download_failed", "restore_failed")


@dataclasses.dataclass
class FaultConfig:
    """Faults injected into API calls; change them at run time with :meth:`update`.

    :param latency_ms: delay added before every API call is answered.
    :param throttle_rate: probability of a ``Throttling.User`` answer with ``x-acs-retry-after``.
    :param retry_after_ms: the ``x-acs-retry-after`` value of a throttling answer.
    :param error_5xx_rate: probability of a 5xx answer (``error_5xx_status``), before any work is done.
    :param error_5xx_status: 500 (``InternalError``) or 503 (``ServiceUnavailable``).
    :param actions: restrict the faults above to these action names; ``None`` = every action.
    :param ambiguous_create_rate: probability that an *accepted* CreateMigrateTask (the import really
        runs) is answered with one of ``ambiguous_create_kinds`` instead of its response (R5).
    :param ambiguous_create_kinds: what such a fault does: ``accept_then_500`` (500 ``ExternalFailure``),
        ``accept_then_drop`` (TCP connection closed without a response), ``accept_then_slow`` (the
        response comes after ``slow_answer_s``, later than the client's read timeout).
    :param slow_answer_s: delay of ``accept_then_slow``.
    :param file_failure_rate: probability that an accepted *incremental* import fails once: its file stops
        in ``DownloadFailed`` or ``RestoreFailed`` (``file_failure_kinds``); importing the same file again
        succeeds (see ``RdsConfig.reimport_failed_files``). A failed full import is a start over, not a
        transient fault, so fulls are left alone.
    :param file_failure_kinds: the kinds drawn: ``download_failed``, ``restore_failed``.
    :param seed: seed of the random generator drawing the faults.

    Every fault injected is counted in :attr:`injected` (by kind), for the chaos figures.
    """

    latency_ms: float = 0.0
    throttle_rate: float = 0.0
    retry_after_ms: int = 1000
    error_5xx_rate: float = 0.0
    error_5xx_status: int = 503
    actions: list[str] | None = None
    ambiguous_create_rate: float = 0.0
    ambiguous_create_kinds: list[str] = dataclasses.field(default_factory=lambda: list(CREATE_FAULTS))
    slow_answer_s: float = 15.0
    file_failure_rate: float = 0.0
    file_failure_kinds: list[str] = dataclasses.field(default_factory=lambda: list(FILE_FAULTS))
    seed: int | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(self.seed)
        self._next_creates: collections.deque[str] = collections.deque()
        self._next_file_failures: list[tuple[str, str | None]] = []
        self._failed_once: set[str] = set()  # object keys a file fault already hit
        self.injected: collections.Counter[str] = collections.Counter()

    def validate(self) -> None:
        for name in ("throttle_rate", "error_5xx_rate", "ambiguous_create_rate", "file_failure_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise RdsConfigError(f"rds.faults.{name}: must be a probability between 0 and 1")
        if self.latency_ms < 0 or self.retry_after_ms <= 0:
            raise RdsConfigError("rds.faults: latency_ms must be >= 0 and retry_after_ms > 0")
        if self.error_5xx_status not in (500, 502, 503, 504):
            raise RdsConfigError("rds.faults.error_5xx_status: must be 500, 502, 503 or 504")
        if not self.ambiguous_create_kinds:
            raise RdsConfigError("rds.faults.ambiguous_create_kinds: must name at least one kind")
        for kind in self.ambiguous_create_kinds:
            _choice("rds.faults.ambiguous_create_kinds", kind, CREATE_FAULTS)
        if self.slow_answer_s < 0:
            raise RdsConfigError("rds.faults.slow_answer_s: must be >= 0")
        if not self.file_failure_kinds:
            raise RdsConfigError("rds.faults.file_failure_kinds: must name at least one kind")
        for kind in self.file_failure_kinds:
            _choice("rds.faults.file_failure_kinds", kind, FILE_FAULTS)

    def update(self, **changes: Any) -> None:
        """Change fault settings at run time (validated; unknown names rejected)."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise RdsConfigError(f"rds.faults: unknown field(s) {unknown}; known: {sorted(known)}")
        with self._lock:
            previous = dataclasses.asdict(self)
            for name, value in changes.items():
                setattr(self, name, value)
            try:
                self.validate()
            except RdsConfigError:
                for name, value in previous.items():
                    setattr(self, name, value)
                raise
            if "seed" in changes:
                self._random.seed(self.seed)

    def applies_to(self, action: str) -> bool:
        return self.actions is None or action in self.actions

    def draw(self, rate: float, kind: str | None = None) -> bool:
        """One seeded draw: True with probability ``rate`` (counted under ``kind`` when it fires)."""
        with self._lock:
            fired = bool(rate) and self._random.random() < rate
            if fired and kind:
                self.injected[kind] += 1
            return fired

    def next_create(self, kind: str) -> None:
        """Make the next accepted CreateMigrateTask fail ambiguously in this way (one shot, tests)."""
        _choice("faults.next_create", kind, CREATE_FAULTS)
        with self._lock:
            self._next_creates.append(kind)

    def take_create_fault(self) -> str | None:
        """The fault for an accepted CreateMigrateTask: a queued one-shot, else drawn at the rate."""
        with self._lock:
            kind = None
            if self._next_creates:
                kind = self._next_creates.popleft()
            elif self.ambiguous_create_rate and self._random.random() < self.ambiguous_create_rate:
                kind = self._random.choice(self.ambiguous_create_kinds)
            if kind is not None:
                self.injected[kind] += 1
            return kind

    def next_file_failure(self, kind: str, key: str | None = None) -> None:
        """Make the next accepted incremental import (of an object key matching ``key``, an fnmatch
        pattern such as ``*_0.trn``; None = any) fail once in this way (one shot)."""
        _choice("faults.next_file_failure", kind, FILE_FAULTS)
        with self._lock:
            self._next_file_failures.append((kind, key))

    def take_file_failure(self, key: str) -> str | None:
        """The fault for an accepted incremental import of ``key``: a queued one-shot, else drawn at the
        rate — never twice for the same object (it "fails once")."""
        with self._lock:
            kind = None
            armed = next(
                (a for a in self._next_file_failures if a[1] is None or fnmatch.fnmatch(key, a[1])), None
            )
            if armed is not None:
                self._next_file_failures.remove(armed)
                kind = armed[0]
            elif (
                key not in self._failed_once
                and self.file_failure_rate
                and self._random.random() < self.file_failure_rate
            ):
                kind = self._random.choice(self.file_failure_kinds)
            if kind is not None:
                self._failed_once.add(key)
                self.injected[kind] += 1
            return kind

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: SQL Server EngineVersion values RDS knows (CreateDBInstance docs, [SDK]/[META]): ``08r2_ent_ha``
#: (cloud disk), ``2008r2`` (local disk), bare ``2012`` (Enterprise single node), ``<year>_<edition>``.
ENGINE_VERSION = re.compile(r"^(08r2_ent_ha|2008r2|2012|20(1[2-9]|2[0-9])_(ent|ent_ha|std_ha|web|std_sl))$")
INSTANCE_STATUSES = ("Running", "Creating", "Rebooting", "DBInstanceClassChanging", "Restoring", "Locked")


@dataclasses.dataclass
class RdsConfig:
    """The simulated ApsaraDB RDS for SQL Server instance.

    :param instance_id: ``DBInstanceId``, e.g. ``rm-sandbox0001``.
    :param region: region id; OSS objects must come from a bucket in this region.
    :param accounts: ``{access_key_id: access_key_secret}`` accepted by the signature check.
    :param permissions: ``{access_key_id: [action patterns]}``: RAM permissions of an account
        (fnmatch patterns such as ``Describe*``); other actions answer 403 ``Forbidden.RAM``.
        Accounts not listed may call every action.
    :param status: ``DBInstanceStatus``; anything but ``Running`` refuses the migration APIs (403).
    :param storage_gb: ``DBInstanceStorage``; free storage = this minus the databases' size
        (fractions allowed so tests can fill it with small files; reported rounded up).
    :param max_databases: database count limit of the instance.
    :param engine_version: ``EngineVersion`` override (default derived from the target engine),
        e.g. ``2019_std_ha``, ``2019_ent`` (cluster edition), ``2012``, ``08r2_ent_ha``.
    :param category: ``Category`` override (default derived from the engine version).
    :param oss_authorized: whether the role AliyunRDSImportRole exists (RDS may read the buckets).
    :param max_imports_per_day: accepted CreateMigrateTask calls per database per day (R2).
    :param max_imports_per_instance_per_day: accepted CreateMigrateTask calls per instance per day (R2).
    :param quota_window: ``calendar`` (a day in ``quota_timezone``) or ``rolling`` (the last 24 h):
        which one RDS uses is UNKNOWN.
    :param quota_window_s: length of the ``rolling`` window in (sandbox-clock) seconds: a day, unless a
        test scales the day down like the product's ``import_quota.window_hours``.
    :param quota_timezone: IANA zone of a calendar day (Alibaba Cloud's consoles use Beijing time).
    :param daily_quota_code: the per-database refusal: ``UploadLimitExceeded`` ([INST] error table)
        or ``ExceedUploadTime`` ([META] CreateMigrateTask error codes) — both are documented.
    :param incremental_task_id: ``same`` (an incremental import answers the parent's MigrateTaskId)
        or ``child`` (it answers a new task id): UNKNOWN (R4). With ``child``: DescribeOssDownloads of
        the child lists its file, of the parent only the parent's own; DescribeMigrateTaskById and
        DescribeMigrateTasks show both (same DBName, BackupMode UPDF); a child reads Success once its
        file is restored (Failed if not: the parent stays Waiting); the next import, the open
        (CreateOnlineDatabaseTask) and TerminateMigrateTask take the parent id (a child id answers
        ``InvalideStatus``, resp. ``InvalidTaskType.Invalid``); terminating the parent stops its children.
    :param terminate_drops_database: whether TerminateMigrateTask also drops the RESTORING database
        (UNKNOWN, R3); when kept, DeleteDatabase removes it.
    :param reimport_failed_files: whether a migration task whose incremental file failed (task
        ``Failed``, database still RESTORING) accepts that file again: UNKNOWN ([META] documents
        ``InvalideStatus`` "Parent migrate task status is invalid" for a parent that cannot take a
        file, not which states those are). ``false``: such a task answers ``InvalideStatus``.
    :param terminate_updf_tasks: whether TerminateMigrateTask accepts an Access Pending (UPDF) task;
        [META] answers ``InvalidTaskType.Invalid`` "Migrate task type Incremental is not supported,
        only support FULL backup migrate task", and whether UPDF counts as "Incremental" is UNKNOWN.
    :param file_name_style: DescribeOssDownloads ``FileName``: ``name`` (last path segment) or
        ``key`` (the full object key): UNKNOWN (R10).
    :param timing: see :class:`TimingConfig`.
    :param faults: see :class:`FaultConfig`.
    """

    instance_id: str = "rm-sandbox0001"
    region: str = "cn-hangzhou"
    accounts: dict[str, str] = dataclasses.field(default_factory=dict)
    permissions: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    status: str = "Running"
    storage_gb: float = 20
    max_databases: int = 50
    engine_version: str | None = None
    category: str | None = None
    oss_authorized: bool = True
    max_imports_per_day: int = 20
    max_imports_per_instance_per_day: int = 500
    quota_window: str = "calendar"
    quota_window_s: float = 24 * 3600
    quota_timezone: str = "Asia/Shanghai"
    daily_quota_code: str = "UploadLimitExceeded"
    incremental_task_id: str = "same"
    terminate_drops_database: bool = False
    reimport_failed_files: bool = True
    terminate_updf_tasks: bool = True
    file_name_style: str = "name"
    timing: TimingConfig = dataclasses.field(default_factory=TimingConfig)
    faults: FaultConfig = dataclasses.field(default_factory=FaultConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.timing, TimingConfig):
            self.timing = _from_mapping(TimingConfig, self.timing, "rds.timing")
        if not isinstance(self.faults, FaultConfig):
            self.faults = _from_mapping(FaultConfig, self.faults, "rds.faults")
        if not isinstance(self.accounts, Mapping):
            raise RdsConfigError("rds.accounts: must be a mapping of access key id -> secret")
        if not isinstance(self.permissions, Mapping):
            raise RdsConfigError("rds.permissions: must be a mapping of access key id -> [actions]")
        self.accounts = {str(k): str(v) for k, v in self.accounts.items()}
        self.permissions = {str(k): [str(p) for p in (v or [])] for k, v in self.permissions.items()}
        self.validate()

    def validate(self) -> None:
        if not self.instance_id or not self.region:
            raise RdsConfigError("rds.instance_id and rds.region: must not be empty")
        for name in (
            "storage_gb",
            "max_databases",
            "max_imports_per_day",
            "max_imports_per_instance_per_day",
            "quota_window_s",
        ):
            if getattr(self, name) <= 0:
                raise RdsConfigError(f"rds.{name}: must be > 0")
        if any(not key or not secret for key, secret in self.accounts.items()):
            raise RdsConfigError("rds.accounts: access key ids and secrets must be non-empty")
        for key in self.permissions:
            if key not in self.accounts:
                raise RdsConfigError(f"rds.permissions: {key!r} is not one of rds.accounts")
        _choice("rds.status", self.status, INSTANCE_STATUSES)
        _choice("rds.quota_window", self.quota_window, ("calendar", "rolling"))
        _choice("rds.daily_quota_code", self.daily_quota_code, ("UploadLimitExceeded", "ExceedUploadTime"))
        _choice("rds.incremental_task_id", self.incremental_task_id, ("same", "child"))
        _choice("rds.file_name_style", self.file_name_style, ("name", "key"))
        for name in (
            "oss_authorized",
            "terminate_drops_database",
            "terminate_updf_tasks",
            "reimport_failed_files",
        ):
            if not isinstance(getattr(self, name), bool):
                raise RdsConfigError(f"rds.{name}: must be true or false")
        try:
            zoneinfo.ZoneInfo(self.quota_timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
            raise RdsConfigError(
                f"rds.quota_timezone: {self.quota_timezone!r} is not an IANA time zone"
            ) from None
        if self.engine_version is not None and not ENGINE_VERSION.match(str(self.engine_version)):
            raise RdsConfigError(
                f"rds.engine_version: {self.engine_version!r} is not an RDS SQL Server EngineVersion "
                "(e.g. 2019_std_ha, 2019_ent, 2022_web, 2012, 08r2_ent_ha)"
            )
        self.timing.validate()
        self.faults.validate()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RdsConfig:
        """Build from plain data (YAML/JSON), rejecting unknown fields by name."""
        return _from_mapping(cls, data, "rds")
