"""Where RDS reads backup files from: ``OssObjectPositions`` resolved to the OSS stand-in's store.

Callers name objects as on Alibaba Cloud (``oss-cn-hangzhou.aliyuncs.com:bucket:key``); the stand-in
maps that endpoint name to the local OSS store of the same process, so no local address ever appears
in an API parameter.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Protocol

from sandbox.rds import errors

ALLOWED_SUFFIXES = (".bak", ".diff", ".trn", ".log")
# 3 TB: the documented maximum backup file size (BakFileSizeExceeded, [INST]).
MAX_BACKUP_BYTES = 3 * 1024**4
_ENDPOINT = re.compile(r"^oss-(?P<region>[a-z0-9-]+?)(?P<internal>-internal)?\.aliyuncs\.com$")


@dataclasses.dataclass(frozen=True)
class ObjectPosition:
    """A parsed ``OssObjectPositions`` value."""

    endpoint: str
    region: str
    bucket: str
    key: str

    @property
    def file_name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


def parse_object_position(value: str) -> ObjectPosition:
    """Split ``<endpoint>:<bucket>:<key>`` on the first two colons (the key may hold ``/`` or ``:``).

    A value of another shape is refused with 403 ``InvalidOssObjectPositions.Format`` ([META]).
    """
    parts = value.strip().split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise errors.invalid_oss_object_positions()
    endpoint, bucket, key = parts
    if "://" in value or endpoint.startswith(("http", "/")):
        raise errors.invalid_oss_object_positions()
    match = _ENDPOINT.match(endpoint)
    if match is None:
        raise errors.invalid_oss_object_positions()
    key = key.lstrip("/")
    if not key:
        raise errors.invalid_oss_object_positions()
    return ObjectPosition(endpoint, match.group("region"), bucket, key)


def check_suffix(key: str) -> None:
    """A folder (key ending in ``/``) is no file at all; other names need a backup suffix ([INST])."""
    if key.endswith("/"):
        raise errors.invalid_file()
    if not key.rsplit("/", 1)[-1].lower().endswith(ALLOWED_SUFFIXES):
        raise errors.incorrect_file_extension()


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    size: int
    region: str


class ObjectSource(Protocol):
    """What RDS needs from OSS: object facts and a readable copy of the data."""

    def stat(self, bucket: str, key: str) -> ObjectInfo | None: ...

    def data_path(self, bucket: str, key: str) -> Path | None: ...


class StoreObjectSource:
    """Reads objects from an ``sandbox.oss.store.OssStore`` (same process)."""

    def __init__(self, store):
        self.store = store

    def stat(self, bucket: str, key: str) -> ObjectInfo | None:
        bucket_config = self.store.buckets.get(bucket)
        head = self.store.head(bucket, key) if bucket_config is not None else None
        if head is None:
            return None
        return ObjectInfo(size=int(head["size"]), region=bucket_config.region)

    def data_path(self, bucket: str, key: str) -> Path | None:
        return self.store.object_path(bucket, key)


def resolve(source: ObjectSource, position: ObjectPosition, instance_region: str) -> ObjectInfo:
    """Check the same-region rule and that the object exists and is a file; return its facts.

    An unreadable object (other region, missing) is 400 ``InvalidOSSURL`` ([META]); an empty one is
    400 ``InvalidFile`` ("The operation does not support this kind of file"); over 3 TB is
    ``BakFileSizeExceeded`` ([INST]).
    """
    if position.region != instance_region:
        raise errors.invalid_oss_url()
    info = source.stat(position.bucket, position.key)
    if info is None or info.region != position.region:
        raise errors.invalid_oss_url()
    if info.size == 0:
        raise errors.invalid_file()
    if info.size > MAX_BACKUP_BYTES:
        raise errors.bak_file_size_exceeded()
    return info
