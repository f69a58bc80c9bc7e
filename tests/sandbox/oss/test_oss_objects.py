"""Object and bucket operations through oss2 (V4 and V1 signatures)."""

from __future__ import annotations

import base64
import hashlib

import oss2
import pytest
import requests

from sandbox.oss import OssConfig, ThreadedOssServer

BUCKET = "migration-bkt"  # as configured in conftest.py
ODD_KEYS = [
    "backups/Sales_FULL_20240501120000.bak",
    "dir/with space/plus+and%percent?.trn",
    "ünïcode/数据库/日志.log",
    "tilde~hash#amp&eq=semi;colon,quote'\".bak",
    "a//double//slash/",
]


@pytest.mark.parametrize("signing", ["v4", "v1"])
@pytest.mark.parametrize("key", ODD_KEYS)
def test_put_get_head_delete_roundtrip(request, signing, key):
    bucket = request.getfixturevalue("bucket" if signing == "v4" else "bucket_v1")
    data = b"backup-bytes" * 1000
    put = bucket.put_object(key, data)  # oss2 checks the CRC header itself (enable_crc)
    assert put.status == 200
    assert put.etag == hashlib.md5(data).hexdigest().upper()
    assert put.crc is not None

    assert bucket.get_object(key).read() == data
    head = bucket.head_object(key)
    assert (head.content_length, head.etag, head.server_crc, head.object_type) == (
        len(data),
        put.etag,
        put.crc,
        "Normal",
    )
    assert head.headers["x-oss-storage-class"] == "Standard"

    assert bucket.delete_object(key).status == 204
    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.head_object(key)
    assert bucket.delete_object(key).status == 204  # deleting a missing key is fine, as on OSS


def test_range_get(bucket):
    data = bytes(range(256)) * 40
    bucket.put_object("r.bin", data)
    part = bucket.get_object("r.bin", byte_range=(10, 19))
    assert part.status == 206
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert part.read() == data[10:20]
    assert bucket.get_object("r.bin", byte_range=(None, 5)).read() == data[-5:]
    assert bucket.get_object("r.bin", byte_range=(100, None)).read() == data[100:]
    # An unsatisfiable range is ignored by OSS (whole object, 200) unless the standard behaviour is asked.
    whole = bucket.get_object("r.bin", byte_range=(len(data) + 5, len(data) + 9))
    assert (whole.status, whole.read()) == (200, data)
    with pytest.raises(oss2.exceptions.ServerError) as excinfo:
        bucket.get_object(
            "r.bin", byte_range=(len(data) + 5, len(data) + 9), headers={"x-oss-range-behavior": "standard"}
        )
    assert (excinfo.value.status, excinfo.value.code) == (416, "InvalidRange")


def test_get_object_to_file_checks_crc(bucket, tmp_path):
    data = b"z" * 300_000
    bucket.put_object("f.bak", data)
    target = tmp_path / "out.bak"
    bucket.get_object_to_file("f.bak", str(target))
    assert target.read_bytes() == data


def test_list_objects_v2_prefix_delimiter_and_pages(bucket):
    keys = (
        [f"backups/db{i}/full.bak" for i in range(3)]
        + [f"backups/x{i}.trn" for i in range(5)]
        + ["other.bak"]
    )
    for key in keys:
        bucket.put_object(key, b"1")
    top = bucket.list_objects_v2(prefix="backups/", delimiter="/", max_keys=100)
    assert top.prefix_list == ["backups/db0/", "backups/db1/", "backups/db2/"]
    assert [o.key for o in top.object_list] == [f"backups/x{i}.trn" for i in range(5)]
    assert not top.is_truncated

    paged = [o.key for o in oss2.ObjectIteratorV2(bucket, prefix="backups/", max_keys=2)]
    assert paged == sorted(k for k in keys if k.startswith("backups/"))
    mixed = list(oss2.ObjectIteratorV2(bucket, prefix="backups/", delimiter="/", max_keys=2))
    assert [o.key for o in mixed] == [
        "backups/db0/",
        "backups/db1/",
        "backups/db2/",
        *[f"backups/x{i}.trn" for i in range(5)],
    ]
    # ListObjects (v1, marker-based) as used by oss2.ObjectIterator.
    assert [o.key for o in oss2.ObjectIterator(bucket, max_keys=3)] == sorted(keys)
    first = bucket.list_objects_v2(max_keys=1)
    assert first.is_truncated and first.object_list[0].size == 1
    assert first.object_list[0].etag == hashlib.md5(b"1").hexdigest().upper()


def test_list_with_url_encoding_keeps_odd_keys(bucket):
    for key in ODD_KEYS:
        bucket.put_object(key, b"x")
    listed = [o.key for o in oss2.ObjectIteratorV2(bucket, max_keys=2)]  # oss2 asks for encoding-type=url
    assert listed == sorted(ODD_KEYS)


def test_bucket_info_and_location(make_bucket):
    info = make_bucket

    standard = info(BUCKET, "cn-hangzhou").get_bucket_info()
    assert (standard.name, standard.location, standard.storage_class) == (
        BUCKET,
        "oss-cn-hangzhou",
        "Standard",
    )
    assert standard.bucket_encryption_rule.sse_algorithm is None
    assert standard.extranet_endpoint == "oss-cn-hangzhou.aliyuncs.com"
    assert standard.acl.grant == "private"

    ia = info("ia-kms-bkt", "cn-shanghai").get_bucket_info()
    assert (ia.location, ia.storage_class, ia.bucket_encryption_rule.sse_algorithm) == (
        "oss-cn-shanghai",
        "IA",
        "KMS",
    )
    assert info("aes-bkt", "cn-hangzhou").get_bucket_info().bucket_encryption_rule.sse_algorithm == "AES256"
    assert info("ia-kms-bkt", "cn-shanghai").get_bucket_location().location == "oss-cn-shanghai"


def test_encrypted_bucket_reports_sse_on_objects(make_bucket):
    aes = make_bucket("aes-bkt")
    aes.put_object("k", b"v")
    assert aes.head_object("k").headers["x-oss-server-side-encryption"] == "AES256"


@pytest.mark.parametrize("auth_class", [oss2.AuthV4, oss2.Auth])
def test_wrong_secret_and_unknown_key(make_bucket, secret, auth_class):
    def bucket_for(ak, sk):
        return make_bucket(access_key_id=ak, secret=sk, auth_class=auth_class)

    good_ak = "LTAI-sandbox-test"
    with pytest.raises(oss2.exceptions.SignatureDoesNotMatch) as excinfo:
        bucket_for(good_ak, "wrong-secret").put_object("k", b"data")
    assert excinfo.value.status == 403
    assert excinfo.value.request_id
    assert excinfo.value.ec
    assert secret not in str(excinfo.value.body)

    with pytest.raises(oss2.exceptions.ServerError) as excinfo:
        bucket_for("LTAI-unknown", secret).get_object("k")
    assert (excinfo.value.status, excinfo.value.code) == (403, "InvalidAccessKeyId")

    # HEAD answers carry no body: oss2 decodes the base64 x-oss-err header.
    with pytest.raises(oss2.exceptions.SignatureDoesNotMatch):
        bucket_for(good_ak, "wrong-secret").head_object("k")


def test_anonymous_access_denied(oss_server):
    anonymous = oss2.Bucket(oss2.AnonymousAuth(), oss_server.endpoint, BUCKET)
    with pytest.raises(oss2.exceptions.AccessDenied):
        anonymous.get_object("k")


def test_no_such_bucket(make_bucket):
    missing = make_bucket("nope-bkt")
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        missing.put_object("k", b"v")


def test_error_document_and_headers(oss_server, bucket):
    with pytest.raises(oss2.exceptions.NoSuchKey) as excinfo:
        bucket.get_object("missing.bak")
    error = excinfo.value
    assert error.headers["x-oss-request-id"] == error.request_id
    assert error.headers["x-oss-ec"] == error.ec == "0026-00000001"
    assert error.details["HostId"] and error.details["Message"]
    # Raw HEAD: no body, x-oss-err holds the XML.
    response = requests.head(f"{oss_server.endpoint}/{BUCKET}/missing.bak", timeout=10)
    assert response.status_code == 403 and response.content == b""
    assert b"<Code>AccessDenied</Code>" in base64.b64decode(response.headers["x-oss-err"])


def test_content_md5_mismatch(bucket):
    with pytest.raises(oss2.exceptions.InvalidDigest):
        bucket.put_object("k", b"data", headers={"Content-MD5": base64.b64encode(b"0" * 16).decode()})
    good = base64.b64encode(hashlib.md5(b"data").digest()).decode()
    assert bucket.put_object("k", b"data", headers={"Content-MD5": good}).status == 200


def test_user_metadata_and_content_type(bucket):
    bucket.put_object(
        "meta.bak", b"1", headers={"x-oss-meta-lsn": "42000000012300001", "Content-Type": "text/x"}
    )
    head = bucket.head_object("meta.bak")
    assert head.headers["x-oss-meta-lsn"] == "42000000012300001"
    assert head.content_type == "text/x"


def test_store_api_for_other_stand_ins(oss_server, bucket):
    data = b"full backup" * 100
    put = bucket.put_object("backups/Sales_FULL.bak", data)
    info = oss_server.store.head(BUCKET, "backups/Sales_FULL.bak")
    assert (info["size"], info["crc64"], info["etag"]) == (len(data), put.crc, put.etag)
    assert info["last_modified"] > 0
    assert oss_server.store.object_path(BUCKET, "backups/Sales_FULL.bak").read_bytes() == data
    assert oss_server.store.head(BUCKET, "absent") is None
    assert oss_server.store.object_path(BUCKET, "absent") is None


def test_objects_survive_restart(oss_config, bucket, oss_server):
    bucket.put_object("persist.bak", b"still here")
    oss_server.stop()
    with ThreadedOssServer(oss_config) as again:
        reopened = oss2.Bucket(bucket.auth, again.endpoint, BUCKET, region="cn-hangzhou")
        assert reopened.get_object("persist.bak").read() == b"still here"


def test_overwrite_is_atomic_for_open_readers(oss_server, bucket):
    bucket.put_object("k", b"old" * 1000)
    meta, handle = oss_server.store.open_object(BUCKET, "k")
    with handle:
        bucket.put_object("k", b"new")
        assert handle.read() == b"old" * 1000  # the old version stays readable
    assert bucket.get_object("k").read() == b"new"


def test_config_errors_name_the_field(tmp_path):
    from sandbox.oss import OssConfigError

    with pytest.raises(OssConfigError, match="storage_class"):
        OssConfig.from_dict({"data_dir": "d", "buckets": {"bkt-a": {"storage_class": "Cold"}}}, tmp_path)
    with pytest.raises(OssConfigError, match="buckets.Bad_Name"):
        OssConfig.from_dict({"data_dir": "d", "buckets": {"Bad_Name": {}}}, tmp_path)
    with pytest.raises(OssConfigError, match="faults.error_500_rate"):
        OssConfig.from_dict({"data_dir": "d", "faults": {"error_500_rate": 2}}, tmp_path)
    with pytest.raises(OssConfigError, match="faults.throttle_code"):
        OssConfig.from_dict({"data_dir": "d", "faults": {"throttle_code": "Nope"}}, tmp_path)


def test_start_server_on_a_shared_loop(oss_config, secret):
    """start_server() runs on the caller's loop (how one process hosts several stand-ins)."""
    import asyncio

    from sandbox.oss import start_server

    async def scenario():
        server = await start_server(oss_config)
        try:
            auth = oss2.AuthV4("LTAI-sandbox-test", secret)
            bucket = oss2.Bucket(auth, server.endpoint, BUCKET, region="cn-hangzhou")
            await asyncio.to_thread(bucket.put_object, "shared.bak", b"v")
            return server.store.head(BUCKET, "shared.bak")["size"]
        finally:
            await server.close()

    assert asyncio.run(scenario()) == 1
