"""Multipart uploads: oss2.resumable_upload, resume after a failed part, Complete validation."""

from __future__ import annotations

import oss2
import pytest
from oss2.models import PartInfo

BUCKET = "migration-bkt"
MB = 1024 * 1024


def _upload_parts(records):
    return sorted(r.part_number for r in records if r.operation == "UploadPart" and r.status == 200)


def test_resumable_upload_parallel_with_crc(oss_server, bucket, random_file, crc64_of, tmp_path):
    source = random_file(24 * MB + 12345)
    store = oss2.ResumableStore(root=str(tmp_path / "ckpt"))
    result = oss2.resumable_upload(
        bucket,
        "backups/Sales_FULL.bak",
        str(source),
        store=store,
        multipart_threshold=MB,
        part_size=MB,
        num_threads=4,
    )
    # oss2 compared the combined part CRCs with the Complete answer's header already (enable_crc).
    assert result.crc == crc64_of(source)
    assert result.etag.endswith("-25")
    head = bucket.head_object("backups/Sales_FULL.bak")
    assert (head.content_length, head.server_crc, head.object_type) == (
        source.stat().st_size,
        result.crc,
        "Multipart",
    )
    assert oss_server.store.object_path(BUCKET, "backups/Sales_FULL.bak").read_bytes() == source.read_bytes()
    assert _upload_parts(oss_server.requests) == list(range(1, 26))
    assert not list(oss2.MultipartUploadIterator(bucket))  # nothing left pending


def test_failed_part_then_resume_uploads_only_missing_parts(
    oss_server, bucket, random_file, crc64_of, tmp_path
):
    source = random_file(20 * MB)
    store = oss2.ResumableStore(root=str(tmp_path / "ckpt"))

    def upload():
        return oss2.resumable_upload(
            bucket,
            "backups/big.bak",
            str(source),
            store=store,
            multipart_threshold=MB,
            part_size=MB,
            num_threads=4,
        )

    oss_server.faults.fail_part(7)
    with pytest.raises(oss2.exceptions.ServerError) as excinfo:
        upload()
    assert (excinfo.value.status, excinfo.value.code) == (500, "InternalError")
    first_run = _upload_parts(oss_server.requests)
    assert 7 not in first_run and len(first_run) == 19
    assert [u.key for u in oss2.MultipartUploadIterator(bucket)] == ["backups/big.bak"]

    oss_server.faults.clear_log()
    result = upload()
    assert _upload_parts(oss_server.requests) == [7]  # only the missing part was sent again
    others = [r.operation for r in oss_server.requests if r.operation != "UploadPart"]
    # oss2 first walks all parts with max-parts=1 (its "upload still exists" check), then lists them
    # again with max-parts=1000: 19 + 1 ListParts here, no new InitiateMultipartUpload.
    assert others == ["ListParts"] * 20 + ["CompleteMultipartUpload"]
    assert bucket.head_object("backups/big.bak").server_crc == crc64_of(source) == result.crc


def test_list_parts_and_multipart_uploads(bucket):
    upload_id = bucket.init_multipart_upload("a/b.bak").upload_id
    bucket.init_multipart_upload("a/c.bak")
    bucket.init_multipart_upload("z.bak")
    for number in (3, 1, 2):
        bucket.upload_part("a/b.bak", upload_id, number, bytes([number]) * (100 * 1024))
    parts = list(oss2.PartIterator(bucket, "a/b.bak", upload_id, max_parts=2))
    assert [p.part_number for p in parts] == [1, 2, 3]
    assert all(p.size == 100 * 1024 for p in parts)

    uploads = list(oss2.MultipartUploadIterator(bucket, max_uploads=1))
    assert [u.key for u in uploads] == ["a/b.bak", "a/c.bak", "z.bak"]
    grouped = bucket.list_multipart_uploads(delimiter="/")
    assert grouped.prefix_list == ["a/"] and [u.key for u in grouped.upload_list] == ["z.bak"]


def test_complete_validates_parts(bucket):
    key = "v.bak"
    upload_id = bucket.init_multipart_upload(key).upload_id
    small = bucket.upload_part(key, upload_id, 1, b"s" * 1000)
    last = bucket.upload_part(key, upload_id, 2, b"l" * 10)

    with pytest.raises(oss2.exceptions.ServerError) as excinfo:
        bucket.complete_multipart_upload(key, upload_id, [PartInfo(1, small.etag), PartInfo(2, last.etag)])
    assert (excinfo.value.status, excinfo.value.code) == (400, "EntityTooSmall")

    with pytest.raises(oss2.exceptions.ServerError) as excinfo:
        bucket.complete_multipart_upload(key, upload_id, [PartInfo(1, "0" * 32)])
    assert excinfo.value.code == "InvalidPart"

    with pytest.raises(oss2.exceptions.ServerError) as excinfo:
        bucket.complete_multipart_upload(key, upload_id, [PartInfo(1, small.etag), PartInfo(1, small.etag)])
    assert excinfo.value.code == "InvalidPartOrder"

    # A single (last) part may be small; unlisted parts are dropped.
    done = bucket.complete_multipart_upload(
        key, upload_id, [PartInfo(1, small.etag, size=1000, part_crc=small.crc)]
    )
    assert bucket.get_object(key).read() == b"s" * 1000
    assert done.crc == small.crc
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.list_parts(key, upload_id)


def test_abort_and_unknown_upload(bucket):
    upload_id = bucket.init_multipart_upload("gone.bak").upload_id
    bucket.upload_part("gone.bak", upload_id, 1, b"x" * 10)
    assert bucket.abort_multipart_upload("gone.bak", upload_id).status == 204
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.upload_part("gone.bak", upload_id, 2, b"x")
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.abort_multipart_upload("other-key.bak", bucket.init_multipart_upload("k.bak").upload_id)


def test_multipart_upload_survives_restart(oss_config, oss_server, bucket):
    from sandbox.oss import ThreadedOssServer

    upload_id = bucket.init_multipart_upload("r.bak").upload_id
    first = bucket.upload_part("r.bak", upload_id, 1, b"a" * (100 * 1024))
    oss_server.stop()
    with ThreadedOssServer(oss_config) as again:
        reopened = oss2.Bucket(bucket.auth, again.endpoint, BUCKET, region="cn-hangzhou")
        assert [p.part_number for p in oss2.PartIterator(reopened, "r.bak", upload_id)] == [1]
        second = reopened.upload_part("r.bak", upload_id, 2, b"b")
        reopened.complete_multipart_upload(
            "r.bak", upload_id, [PartInfo(1, first.etag), PartInfo(2, second.etag)]
        )
        assert reopened.get_object("r.bak").read() == b"a" * (100 * 1024) + b"b"
