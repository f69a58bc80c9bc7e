"""Configuration of the OSS stand-in: accounts, buckets and fault injection settings."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Mapping
from typing import Any

from oss2.utils import is_valid_bucket_name

STORAGE_CLASSES = ("Standard", "IA", "Archive", "ColdArchive", "DeepColdArchive")
SSE_ALGORITHMS = (None, "AES256", "KMS")

# What OSS answers when it throttles (documented on the "HTTP status code 503" and "429" pages).
THROTTLE_ERRORS: dict[str, tuple[int, str]] = {
    "TotalQpsLimitExceeded": (503, "Max total qps limit is exceeded"),
    "QpsLimitExceeded": (429, "Please reduce your request rate."),
    "UploadTrafficRateLimitExceeded": (503, "Please reduce your upload request traffic"),
    "DownloadTrafficRateLimitExceeded": (503, "Please reduce your download request traffic"),
    "ServiceUnavailable": (503, "Thread pool is almost full, please retry later"),
}


class OssConfigError(ValueError):
    """A configuration value is invalid; the message names the field."""


@dataclasses.dataclass
class BucketConfig:
    """One bucket served by the stand-in.

    :param region: region id such as ``cn-hangzhou`` (reported as Location ``oss-cn-hangzhou``).
    :param storage_class: bucket storage class, one of :data:`STORAGE_CLASSES`.
    :param sse: server-side encryption rule: ``None``, ``"AES256"`` or ``"KMS"``.
    """

    region: str = "cn-hangzhou"
    storage_class: str = "Standard"
    sse: str | None = None

    def validate(self, name: str) -> None:
        if not is_valid_bucket_name(name):
            raise OssConfigError(f"buckets.{name}: not a valid OSS bucket name")
        if self.storage_class not in STORAGE_CLASSES:
            raise OssConfigError(
                f"buckets.{name}.storage_class: {self.storage_class!r} is not one of {STORAGE_CLASSES}"
            )
        if self.sse not in SSE_ALGORITHMS:
            raise OssConfigError(f"buckets.{name}.sse: {self.sse!r} is not one of {SSE_ALGORITHMS}")
        if not self.region:
            raise OssConfigError(f"buckets.{name}.region: must not be empty")


@dataclasses.dataclass
class FaultConfig:
    """Traffic shaping and fault injection; every field can be changed at run time.

    :param latency_ms: delay added before every request is handled.
    :param bandwidth_bps: cap in bytes/s for each request body read and each response body sent
        (``None`` = unlimited).
    :param error_500_rate: probability of answering ``500 InternalError``.
    :param error_503_rate: probability of answering ``503 ServiceUnavailable``.
    :param throttle_rate: probability of answering the throttling error named by ``throttle_code``.
    :param throttle_code: one of :data:`THROTTLE_ERRORS`.
    :param reset_rate: probability of closing the connection abruptly mid-body.
    :param fail_parts: part numbers whose next UploadPart fails once (``500 InternalError``).
    :param corrupt_crc: number of upcoming responses whose ``x-oss-hash-crc64ecma`` is wrong.
    :param operations: restrict the probabilistic faults to these operation names
        (e.g. ``{"UploadPart"}``); ``None`` = every operation.
    :param seed: seed of the random generator that draws the probabilistic faults.
    """

    latency_ms: float = 0.0
    bandwidth_bps: int | None = None
    error_500_rate: float = 0.0
    error_503_rate: float = 0.0
    throttle_rate: float = 0.0
    throttle_code: str = "TotalQpsLimitExceeded"
    reset_rate: float = 0.0
    fail_parts: list[int] = dataclasses.field(default_factory=list)
    corrupt_crc: int = 0
    operations: frozenset[str] | None = None
    seed: int | None = None

    def validate(self) -> None:
        for name in ("error_500_rate", "error_503_rate", "throttle_rate", "reset_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise OssConfigError(f"faults.{name}: {value!r} is not a probability between 0 and 1")
        if self.latency_ms < 0:
            raise OssConfigError(f"faults.latency_ms: {self.latency_ms!r} must be >= 0")
        if self.bandwidth_bps is not None and self.bandwidth_bps <= 0:
            raise OssConfigError(f"faults.bandwidth_bps: {self.bandwidth_bps!r} must be > 0 or None")
        if self.throttle_code not in THROTTLE_ERRORS:
            raise OssConfigError(
                f"faults.throttle_code: {self.throttle_code!r} is not one of {sorted(THROTTLE_ERRORS)}"
            )
        if any(not 1 <= n <= 10000 for n in self.fail_parts):
            raise OssConfigError(f"faults.fail_parts: {self.fail_parts!r} must hold part numbers 1..10000")
        if self.corrupt_crc < 0:
            raise OssConfigError(f"faults.corrupt_crc: {self.corrupt_crc!r} must be >= 0")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> FaultConfig:
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise OssConfigError(f"faults: unknown field(s) {unknown}; known: {sorted(known)}")
        if data.get("operations") is not None:
            data["operations"] = frozenset(data["operations"])
        if "fail_parts" in data:
            data["fail_parts"] = [int(n) for n in data["fail_parts"]]
        faults = cls(**data)
        faults.validate()
        return faults


@dataclasses.dataclass
class OssConfig:
    """Everything the OSS stand-in needs.

    :param data_dir: folder holding the objects, metadata sidecars and multipart parts.
    :param accounts: ``{access_key_id: access_key_secret}`` accepted by signature checks.
    :param buckets: ``{bucket_name: BucketConfig}``.
    :param faults: shaping and fault injection (see :class:`FaultConfig`).
    :param owner_id: owner id reported in bucket info and listings.
    """

    data_dir: pathlib.Path
    accounts: dict[str, str] = dataclasses.field(default_factory=dict)
    buckets: dict[str, BucketConfig] = dataclasses.field(default_factory=dict)
    faults: FaultConfig = dataclasses.field(default_factory=FaultConfig)
    owner_id: str = "1234567890123456"

    def __post_init__(self) -> None:
        self.data_dir = pathlib.Path(self.data_dir)
        self.buckets = {
            name: bucket if isinstance(bucket, BucketConfig) else BucketConfig(**bucket)
            for name, bucket in self.buckets.items()
        }
        if isinstance(self.faults, Mapping):
            self.faults = FaultConfig.from_dict(self.faults)
        for name, bucket in self.buckets.items():
            bucket.validate(name)
        self.faults.validate()
        for access_key_id, secret in self.accounts.items():
            if not access_key_id or not secret:
                # Never echo the secret itself.
                raise OssConfigError("accounts: access key ids and secrets must be non-empty strings")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base_dir: str | pathlib.Path = ".") -> OssConfig:
        """Build a config from plain data (YAML/JSON); a relative ``data_dir`` is taken from ``base_dir``."""
        if "data_dir" not in data:
            raise OssConfigError("data_dir: required")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise OssConfigError(f"unknown field(s) {unknown}; known: {sorted(known)}")
        data_dir = pathlib.Path(base_dir) / pathlib.Path(data["data_dir"]).expanduser()
        buckets = {}
        for name, spec in (data.get("buckets") or {}).items():
            spec = dict(spec or {})
            unknown_bucket = sorted(set(spec) - {"region", "storage_class", "sse"})
            if unknown_bucket:
                raise OssConfigError(f"buckets.{name}: unknown field(s) {unknown_bucket}")
            buckets[name] = BucketConfig(**spec)
        return cls(
            data_dir=data_dir,
            accounts={str(k): str(v) for k, v in (data.get("accounts") or {}).items()},
            buckets=buckets,
            faults=FaultConfig.from_dict(data.get("faults")),
            owner_id=str(data.get("owner_id", "1234567890123456")),
        )
