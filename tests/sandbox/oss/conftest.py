"""Fixtures: a fresh OSS stand-in per test, and oss2 buckets signed with V4 and V1."""

from __future__ import annotations

import os

import oss2
import pytest

from sandbox.oss import OssConfig, ThreadedOssServer

ACCESS_KEY_ID = "LTAI-sandbox-test"
ACCESS_KEY_SECRET = "s3cr3t/with+odd=chars"
BUCKET = "migration-bkt"
REGION = "cn-hangzhou"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Local clients must talk to 127.0.0.1 directly."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def oss_config(tmp_path) -> OssConfig:
    return OssConfig.from_dict(
        {
            "data_dir": "oss-data",
            "accounts": {ACCESS_KEY_ID: ACCESS_KEY_SECRET},
            "buckets": {
                BUCKET: {"region": REGION},
                "ia-kms-bkt": {"region": "cn-shanghai", "storage_class": "IA", "sse": "KMS"},
                "aes-bkt": {"region": REGION, "sse": "AES256"},
            },
            "faults": {"seed": 7},
        },
        base_dir=tmp_path,
    )


@pytest.fixture
def oss_server(oss_config):
    with ThreadedOssServer(oss_config) as server:
        yield server


@pytest.fixture
def bucket(oss_server) -> oss2.Bucket:
    """V4-signed oss2 bucket (the migration's configuration)."""
    return oss2.Bucket(
        oss2.AuthV4(ACCESS_KEY_ID, ACCESS_KEY_SECRET), oss_server.endpoint, BUCKET, region=REGION
    )


@pytest.fixture
def bucket_v1(oss_server) -> oss2.Bucket:
    return oss2.Bucket(oss2.Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET), oss_server.endpoint, BUCKET)


@pytest.fixture
def make_bucket(oss_server):
    """Factory: an oss2 bucket on the stand-in, V4 by default (``auth_class=oss2.Auth`` for V1)."""

    def make(
        name: str = BUCKET,
        region: str = REGION,
        access_key_id: str = ACCESS_KEY_ID,
        secret: str = ACCESS_KEY_SECRET,
        auth_class=oss2.AuthV4,
    ) -> oss2.Bucket:
        return oss2.Bucket(auth_class(access_key_id, secret), oss_server.endpoint, name, region=region)

    return make


@pytest.fixture
def secret() -> str:
    return ACCESS_KEY_SECRET


@pytest.fixture
def crc64_of():
    """Function: CRC64-ECMA of a local file, as oss2 computes it."""
    return file_crc64


@pytest.fixture
def random_file(tmp_path):
    """Factory: a file of ``size`` random bytes."""

    def make(size: int, name: str = "payload.bin"):
        path = tmp_path / name
        with open(path, "wb") as f:
            remaining = size
            while remaining:
                chunk = os.urandom(min(remaining, 1 << 20))
                f.write(chunk)
                remaining -= len(chunk)
        return path

    return make


def file_crc64(path) -> int:
    crc = oss2.utils.Crc64()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            crc.update(chunk)
    return crc.crc
