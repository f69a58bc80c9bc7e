"""Cross-check with an independent client: alibabacloud-oss-v2 (V4, path style, its own signer/parsers)."""

from __future__ import annotations

import alibabacloud_oss_v2 as oss
import pytest

BUCKET = "migration-bkt"
KB = 1024


@pytest.fixture
def client(oss_server, secret):
    def make(**overrides):
        config = oss.config.load_default()
        config.credentials_provider = oss.credentials.StaticCredentialsProvider("LTAI-sandbox-test", secret)
        config.region = "cn-hangzhou"
        config.endpoint = oss_server.endpoint
        config.use_path_style = True
        for name, value in overrides.items():
            setattr(config, name, value)
        return oss.Client(config)

    return make


def test_put_get_head_list(client, bucket):
    c = client()
    key = "dir/a b+c?é#.bak"
    put = c.put_object(oss.PutObjectRequest(bucket=BUCKET, key=key, body=b"x" * 5000))
    assert put.status_code == 200
    got = c.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key))
    assert got.body.read() == b"x" * 5000 and got.hash_crc64 == put.hash_crc64
    ranged = c.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key, range_header="bytes=10-19"))
    assert ranged.status_code == 206 and ranged.body.read() == b"x" * 10
    head = c.head_object(oss.HeadObjectRequest(bucket=BUCKET, key=key))
    assert head.content_length == 5000
    listed = c.list_objects_v2(oss.ListObjectsV2Request(bucket=BUCKET, prefix="dir/", delimiter="/"))
    assert [o.key for o in listed.contents] == [key]
    # Interoperates with oss2 (same signature rules, same stored bytes).
    assert bucket.get_object(key).read() == b"x" * 5000
    info = c.get_bucket_info(oss.GetBucketInfoRequest(bucket=BUCKET))
    assert info.bucket_info.location == "oss-cn-hangzhou"


def test_errors_parse(client):
    with pytest.raises(oss.exceptions.OperationError) as excinfo:
        client().get_object(oss.GetObjectRequest(bucket=BUCKET, key="missing"))
    assert excinfo.value.unwrap().code == "NoSuchKey"
    with pytest.raises(oss.exceptions.OperationError) as excinfo:
        client(
            credentials_provider=oss.credentials.StaticCredentialsProvider("LTAI-sandbox-test", "bad")
        ).put_object(oss.PutObjectRequest(bucket=BUCKET, key="k", body=b"v"))
    assert excinfo.value.unwrap().code == "SignatureDoesNotMatch"


def test_uploader_multipart_with_crc(client, oss_server, random_file, crc64_of):
    source = random_file(3 * 1024 * KB + 7)
    uploader = client().uploader(part_size=256 * KB, parallel_num=3)
    result = uploader.upload_file(oss.PutObjectRequest(bucket=BUCKET, key="big/x.bak"), filepath=str(source))
    assert int(result.hash_crc64) == crc64_of(source)  # the uploader checked it against combined parts too
    assert oss_server.store.object_path(BUCKET, "big/x.bak").read_bytes() == source.read_bytes()


def test_list_parts_carries_part_crc(client, bucket):
    upload_id = bucket.init_multipart_upload("p.bak").upload_id
    sent = bucket.upload_part("p.bak", upload_id, 1, b"q" * (100 * KB))
    parts = client().list_parts(oss.ListPartsRequest(bucket=BUCKET, key="p.bak", upload_id=upload_id)).parts
    assert [(p.part_number, int(p.hash_crc64), p.size) for p in parts] == [(1, sent.crc, 100 * KB)]


def test_uploader_resumes_from_checkpoint(client, oss_server, random_file, crc64_of, tmp_path):
    source = random_file(2 * 1024 * KB)
    checkpoint_dir = tmp_path / "v2-ckpt"
    checkpoint_dir.mkdir()
    c = client(retry_max_attempts=1)  # the SDK retries 5xx by itself; make the injected failure stick

    def upload():
        uploader = c.uploader(
            part_size=128 * KB, parallel_num=1, enable_checkpoint=True, checkpoint_dir=str(checkpoint_dir)
        )
        return uploader.upload_file(
            oss.PutObjectRequest(bucket=BUCKET, key="resume.bak"), filepath=str(source)
        )

    oss_server.faults.fail_part(9)
    with pytest.raises(Exception, match="InternalError"):
        upload()
    oss_server.faults.clear_log()
    result = upload()
    resent = sorted(r.part_number for r in oss_server.requests if r.operation == "UploadPart")
    assert resent == list(
        range(9, 17)
    )  # the SDK resumes after the last listed part (it needs <HashCrc64ecma>)
    assert int(result.hash_crc64) == crc64_of(source)
