"""Downtime estimate for the cutover: freeze -> tail log backup -> upload -> import -> open -> validate.

Rates come from what the migration has measured so far (each log backup, upload and import is a
sample of bytes and seconds). Until something is measured, conservative defaults apply and
:meth:`Rates.describe` says so.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

MB = 1024 * 1024
#: Only the most recent samples count: throughput drifts with load on the source and the network.
RECENT_SAMPLES = 10

CheckDbMode = Literal["AsyncExecuteDBCheck", "SyncExecuteDBCheck"]


def rate_from_samples(samples: Iterable[tuple[float, float]], default_mb_s: float) -> tuple[float, int]:
    """Median MB/s over the most recent valid ``(bytes, seconds)`` samples, and how many were used.

    The median ignores one-off stalls and bursts; samples with no bytes or no time are dropped.
    """
    rates = [b / MB / s for b, s in samples if b > 0 and s > 0]
    recent = rates[-RECENT_SAMPLES:]
    if not recent:
        return default_mb_s, 0
    return statistics.median(recent), len(recent)


@dataclass(frozen=True)
class Rates:
    """Throughputs (MB/s) and fixed overheads (seconds) used by :func:`estimate_downtime`."""

    backup_mb_s: float = 50.0
    upload_mb_s: float = 40.0
    restore_mb_s: float = 60.0
    checkdb_mb_s: float = 150.0
    freeze_s: float = 15.0  # SINGLE_USER WITH ROLLBACK IMMEDIATE and stopping the application writes
    backup_overhead_s: float = 5.0  # BACKUP LOG start-up and msdb history lookup
    upload_overhead_s: float = 2.0
    rds_task_latency_s: float = 60.0  # from CreateMigrateTask to the file being restored
    open_s: float = 60.0  # CreateOnlineDatabaseTask with AsyncExecuteDBCheck: "online within 1 minute"
    validate_s: float = 60.0
    samples: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("backup_mb_s", "upload_mb_s", "restore_mb_s", "checkdb_mb_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Rates.{name} must be > 0 MB/s (got {getattr(self, name)!r})")
        for name in (
            "freeze_s",
            "backup_overhead_s",
            "upload_overhead_s",
            "rds_task_latency_s",
            "open_s",
            "validate_s",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"Rates.{name} must be >= 0 seconds (got {getattr(self, name)!r})")

    @classmethod
    def from_samples(
        cls,
        *,
        backup: Iterable[tuple[float, float]] = (),
        upload: Iterable[tuple[float, float]] = (),
        restore: Iterable[tuple[float, float]] = (),
        rds_task_latency: Iterable[float] = (),
        **overrides: float,
    ) -> Rates:
        """Build rates from observed ``(bytes, seconds)`` samples (oldest first); defaults where none.

        ``rds_task_latency`` takes observed fixed latencies (seconds, e.g. import of a tiny log).
        Other fields can be overridden by keyword.
        """
        defaults = cls()
        backup_rate, n_backup = rate_from_samples(backup, defaults.backup_mb_s)
        upload_rate, n_upload = rate_from_samples(upload, defaults.upload_mb_s)
        restore_rate, n_restore = rate_from_samples(restore, defaults.restore_mb_s)
        latencies = [s for s in rds_task_latency if s >= 0][-RECENT_SAMPLES:]
        values: dict[str, float] = {
            "backup_mb_s": backup_rate,
            "upload_mb_s": upload_rate,
            "restore_mb_s": restore_rate,
            "rds_task_latency_s": statistics.median(latencies) if latencies else defaults.rds_task_latency_s,
        }
        values.update(overrides)
        counts = {
            "backup": n_backup,
            "upload": n_upload,
            "restore": n_restore,
            "rds_task_latency": len(latencies),
        }
        return cls(**values, samples=counts)

    def describe(self) -> str:
        """One line for humans, saying which rates are measured and which are defaults."""

        def show(label: str, value: float, key: str) -> str:
            count = self.samples.get(key, 0)
            origin = f"median of {count} samples" if count else "default"
            return f"{label} {value:.1f} MB/s ({origin})"

        latency_count = self.samples.get("rds_task_latency", 0)
        latency_origin = f"median of {latency_count}" if latency_count else "default"
        return ", ".join(
            [
                show("backup", self.backup_mb_s, "backup"),
                show("upload", self.upload_mb_s, "upload"),
                show("restore", self.restore_mb_s, "restore"),
                f"RDS task latency {self.rds_task_latency_s:.0f} s ({latency_origin})",
            ]
        )


@dataclass(frozen=True)
class DowntimeEstimate:
    """Estimated downtime, part by part (seconds), with the inputs it was computed from."""

    parts: dict[str, float]
    pending_log_bytes: int
    check_db_mode: str
    rates: Rates

    @property
    def total_seconds(self) -> float:
        return sum(self.parts.values())

    def to_dict(self) -> dict[str, object]:
        """JSON-safe form (for XCom and the approval message)."""
        return {
            "parts": {k: round(v, 1) for k, v in self.parts.items()},
            "total_seconds": round(self.total_seconds, 1),
            "pending_log_bytes": self.pending_log_bytes,
            "check_db_mode": self.check_db_mode,
            "rates": self.rates.describe(),
        }

    def describe(self) -> str:
        """E.g. ``about 4 min 05 s (freeze 15 s, tail backup 6 s, ...)`` for the approval message."""
        parts = ", ".join(
            f"{name.replace('_', ' ')} {format_duration(sec)}" for name, sec in self.parts.items()
        )
        return (
            f"about {format_duration(self.total_seconds)} ({parts}) for {self.pending_log_bytes / MB:.1f} MB "
            f"of pending log, {self.check_db_mode}; rates: {self.rates.describe()}"
        )


def format_duration(seconds: float) -> str:
    """``75.2`` -> ``1 min 15 s``; ``3725`` -> ``1 h 02 min``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def estimate_downtime(
    rates: Rates,
    pending_log_bytes: int,
    *,
    data_size_bytes: int = 0,
    check_db_mode: CheckDbMode = "AsyncExecuteDBCheck",
) -> DowntimeEstimate:
    """Estimate the cutover downtime for ``pending_log_bytes`` of log not yet backed up.

    With ``SyncExecuteDBCheck`` RDS runs DBCC CHECKDB over the whole database before opening it, so
    the open step grows with ``data_size_bytes``.
    """
    if pending_log_bytes < 0 or data_size_bytes < 0:
        raise ValueError("pending_log_bytes and data_size_bytes must be >= 0")
    if check_db_mode not in ("AsyncExecuteDBCheck", "SyncExecuteDBCheck"):
        raise ValueError(f"check_db_mode {check_db_mode!r} is not AsyncExecuteDBCheck or SyncExecuteDBCheck")
    mb = pending_log_bytes / MB
    open_s = rates.open_s
    if check_db_mode == "SyncExecuteDBCheck":
        open_s += data_size_bytes / MB / rates.checkdb_mb_s
    parts = {
        "freeze": rates.freeze_s,
        "tail_backup": rates.backup_overhead_s + mb / rates.backup_mb_s,
        "upload": rates.upload_overhead_s + mb / rates.upload_mb_s,
        "import": rates.rds_task_latency_s + mb / rates.restore_mb_s,
        "open": open_s,
        "validate": rates.validate_s,
    }
    return DowntimeEstimate(parts, pending_log_bytes, check_db_mode, rates)
