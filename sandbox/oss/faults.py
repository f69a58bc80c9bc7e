"""Run-time fault injection, bandwidth pacing and the per-request log of the OSS stand-in."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import threading
import time
from typing import Any

from .config import THROTTLE_ERRORS, FaultConfig
from .errors import OssApiError


@dataclasses.dataclass
class RequestRecord:
    """One handled request, as tests see it in :attr:`FaultInjector.requests`."""

    method: str
    path: str  # raw path (percent-encoded as sent)
    query: dict[str, str]
    operation: str
    bucket: str | None
    key: str
    status: int = 0  # 0 = the connection was reset before an answer
    fault: str | None = None  # the injected fault, if any
    bytes_in: int = 0
    bytes_out: int = 0
    started: float = dataclasses.field(default_factory=time.monotonic)

    @property
    def part_number(self) -> int | None:
        value = self.query.get("partNumber")
        return int(value) if value and value.isdigit() else None


class ConnectionResetFault(Exception):
    """Raised inside a handler after the transport was aborted on purpose."""


class FaultInjector:
    """Holds the current :class:`FaultConfig` and draws faults from a seedable RNG (thread-safe)."""

    def __init__(self, config: FaultConfig) -> None:
        self._lock = threading.Lock()
        self._config = dataclasses.replace(config, fail_parts=list(config.fail_parts))
        self._rng = random.Random(config.seed)
        self.requests: list[RequestRecord] = []

    # --- run-time control ---------------------------------------------------------------------------

    @property
    def config(self) -> FaultConfig:
        with self._lock:
            return dataclasses.replace(self._config, fail_parts=list(self._config.fail_parts))

    def update(self, **changes: Any) -> FaultConfig:
        """Change some fault settings (same names as :class:`FaultConfig`); ``seed`` reseeds the RNG."""
        with self._lock:
            merged = {**dataclasses.asdict(self._config), **changes}
            new = FaultConfig.from_dict(merged)
            if "seed" in changes:
                self._rng.seed(new.seed)
            self._config = new
            return new

    def reset(self) -> None:
        """Back to a well-behaved server (no faults, no shaping)."""
        with self._lock:
            self._config = FaultConfig(seed=self._config.seed)

    def fail_part(self, *part_numbers: int) -> None:
        """Make the next UploadPart of each given part number fail once with ``500 InternalError``."""
        with self._lock:
            self._config.fail_parts.extend(part_numbers)
            self._config.validate()

    def corrupt_next_crc(self, count: int = 1) -> None:
        """Send a wrong ``x-oss-hash-crc64ecma`` on the next ``count`` responses that carry one."""
        with self._lock:
            self._config.corrupt_crc += count

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    def log(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)

    # --- decisions taken by the server --------------------------------------------------------------

    def latency_seconds(self) -> float:
        with self._lock:
            return self._config.latency_ms / 1000.0

    def bandwidth(self) -> int | None:
        with self._lock:
            return self._config.bandwidth_bps

    def draw_request_fault(self, operation: str) -> OssApiError | str | None:
        """An error to answer with, ``"reset"`` to drop the connection, or ``None`` (draw order fixed)."""
        with self._lock:
            config = self._config
            if config.operations is not None and operation not in config.operations:
                return None
            if self._rng.random() < config.throttle_rate:
                status, message = THROTTLE_ERRORS[config.throttle_code]
                return OssApiError(config.throttle_code, message, status=status)
            if self._rng.random() < config.error_503_rate:
                return OssApiError("ServiceUnavailable")
            if self._rng.random() < config.error_500_rate:
                return OssApiError("InternalError")
            if self._rng.random() < config.reset_rate:
                return "reset"
            return None

    def take_part_failure(self, part_number: int) -> bool:
        """True (once) if this part number was armed with :meth:`fail_part`."""
        with self._lock:
            if part_number in self._config.fail_parts:
                self._config.fail_parts.remove(part_number)
                return True
            return False

    def take_crc_corruption(self) -> bool:
        with self._lock:
            if self._config.corrupt_crc > 0:
                self._config.corrupt_crc -= 1
                return True
            return False


class Pacer:
    """Sleeps as needed so a body streams at no more than ``bytes_per_second``."""

    def __init__(self, bytes_per_second: int | None) -> None:
        self.rate = bytes_per_second
        self.started = time.monotonic()
        self.sent = 0

    def chunk_size(self, default: int) -> int:
        # Small chunks under a cap keep the pacing smooth (about 20 wake-ups per second).
        return default if self.rate is None else max(1024, min(default, self.rate // 20))

    async def account(self, nbytes: int) -> None:
        self.sent += nbytes
        if self.rate is None:
            return
        ahead = self.sent / self.rate - (time.monotonic() - self.started)
        if ahead > 0:
            await asyncio.sleep(ahead)
