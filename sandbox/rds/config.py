"""Configuration of the RDS OpenAPI stand-in: the instance, its timings and injected faults."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from typing import Any


class RdsConfigError(ValueError):
    """A configuration value is invalid; the message names the field."""


def _from_mapping(cls, data: Mapping[str, Any] | None, prefix: str):
    data = dict(data or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise RdsConfigError(f"{prefix}: unknown field(s) {unknown}; known: {sorted(known)}")
    return cls(**data)


@dataclasses.dataclass
class TimingConfig:
    """How long the background work takes (tests use near-zero values).

    :param step_delay_s: pause before each file status change (queueing, verification...).
    :param download_mb_per_s: OSS download rate; 0 = instant.
    :param restore_mb_per_s: restore rate; 0 = instant.
    :param open_delay_s: time to open (recover) a database.
    :param checkdb_delay_s: time DBCC CHECKDB takes.
    """

    step_delay_s: float = 0.01
    download_mb_per_s: float = 0.0
    restore_mb_per_s: float = 0.0
    open_delay_s: float = 0.01
    checkdb_delay_s: float = 0.01

    def validate(self) -> None:
        for field in dataclasses.fields(self):
            if getattr(self, field.name) < 0:
                raise RdsConfigError(f"rds.timing.{field.name}: must be >= 0")


@dataclasses.dataclass
class FaultConfig:
    """Faults injected into API calls; change them at run time with :meth:`update`.

    :param latency_ms: delay added before every API call is answered.
    :param throttle_rate: probability of a ``Throttling.User`` answer with ``x-acs-retry-after``.
    :param retry_after_ms: the ``x-acs-retry-after`` value of a throttling answer.
    :param error_5xx_rate: probability of a 5xx answer (``error_5xx_status``).
    :param error_5xx_status: 500 (``InternalError``) or 503 (``ServiceUnavailable``).
    :param actions: restrict faults to these action names; ``None`` = every action.
    :param seed: seed of the random generator drawing the faults.
    """

    latency_ms: float = 0.0
    throttle_rate: float = 0.0
    retry_after_ms: int = 1000
    error_5xx_rate: float = 0.0
    error_5xx_status: int = 503
    actions: list[str] | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def validate(self) -> None:
        for name in ("throttle_rate", "error_5xx_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise RdsConfigError(f"rds.faults.{name}: must be a probability between 0 and 1")
        if self.latency_ms < 0 or self.retry_after_ms <= 0:
            raise RdsConfigError("rds.faults: latency_ms must be >= 0 and retry_after_ms > 0")
        if self.error_5xx_status not in (500, 502, 503, 504):
            raise RdsConfigError("rds.faults.error_5xx_status: must be 500, 502, 503 or 504")

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

    def applies_to(self, action: str) -> bool:
        return self.actions is None or action in self.actions

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class RdsConfig:
    """The simulated ApsaraDB RDS for SQL Server instance.

    :param instance_id: ``DBInstanceId``, e.g. ``rm-sandbox0001``.
    :param region: region id; OSS objects must come from a bucket in this region.
    :param accounts: ``{access_key_id: access_key_secret}`` accepted by the signature check.
    :param storage_gb: ``DBInstanceStorage``; free storage = this minus the databases' size
        (fractions allowed so tests can fill it with small files; reported rounded up).
    :param max_databases: database count limit of the instance.
    :param engine_version: ``EngineVersion`` override (default derived from the target engine).
    :param category: ``Category`` override (default derived from the engine version).
    :param oss_authorized: whether the RDS service account may read the buckets (AliyunRDSImportRole).
    :param max_imports_per_day: CreateMigrateTask calls per database per UTC day.
    :param timing: see :class:`TimingConfig`.
    :param faults: see :class:`FaultConfig`.
    """

    instance_id: str = "rm-sandbox0001"
    region: str = "cn-hangzhou"
    accounts: dict[str, str] = dataclasses.field(default_factory=dict)
    storage_gb: float = 20
    max_databases: int = 50
    engine_version: str | None = None
    category: str | None = None
    oss_authorized: bool = True
    max_imports_per_day: int = 20
    timing: TimingConfig = dataclasses.field(default_factory=TimingConfig)
    faults: FaultConfig = dataclasses.field(default_factory=FaultConfig)

    def __post_init__(self) -> None:
        if isinstance(self.timing, Mapping):
            self.timing = _from_mapping(TimingConfig, self.timing, "rds.timing")
        if isinstance(self.faults, Mapping):
            self.faults = _from_mapping(FaultConfig, self.faults, "rds.faults")
        self.accounts = {str(k): str(v) for k, v in self.accounts.items()}
        self.validate()

    def validate(self) -> None:
        if not self.instance_id or not self.region:
            raise RdsConfigError("rds.instance_id and rds.region: must not be empty")
        if self.storage_gb <= 0 or self.max_databases <= 0 or self.max_imports_per_day <= 0:
            raise RdsConfigError("rds.storage_gb, rds.max_databases, rds.max_imports_per_day: must be > 0")
        if any(not key or not secret for key, secret in self.accounts.items()):
            raise RdsConfigError("rds.accounts: access key ids and secrets must be non-empty")
        self.timing.validate()
        self.faults.validate()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RdsConfig:
        """Build from plain data (YAML/JSON), rejecting unknown fields by name."""
        return _from_mapping(cls, data, "rds")
