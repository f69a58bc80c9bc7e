"""Fault injection and shaping as seen by oss2: bad CRC, 5xx, throttling, resets, latency, bandwidth."""

from __future__ import annotations

import time

import oss2
import pytest
import requests

from sandbox.oss import OssConfig, ThreadedOssServer

BUCKET = "migration-bkt"


def test_corrupted_crc_header_raises_inconsistent_error(oss_server, bucket, tmp_path):
    oss_server.faults.corrupt_next_crc()
    with pytest.raises(oss2.exceptions.InconsistentError):
        bucket.put_object("c.bak", b"payload" * 100)
    # The data itself was stored fine; only the header lied.
    assert bucket.get_object("c.bak").read() == b"payload" * 100

    oss_server.faults.corrupt_next_crc()
    with pytest.raises(oss2.exceptions.InconsistentError):
        bucket.get_object_to_file("c.bak", str(tmp_path / "c.bak"))
    assert [r.fault for r in oss_server.requests].count("corrupt_crc") == 2


def test_5xx_answers_map_to_server_errors(oss_server, bucket):
    oss_server.set_faults(error_500_rate=1.0)
    with pytest.raises(oss2.exceptions.ServerError) as excinfo:
        bucket.put_object("k", b"v" * 200_000)  # the body is drained: the client sees the answer
    assert (excinfo.value.status, excinfo.value.code) == (500, "InternalError")

    oss_server.set_faults(error_500_rate=0.0, error_503_rate=1.0)
    with pytest.raises(oss2.exceptions.ServerError) as excinfo:
        bucket.get_object("k")
    assert (excinfo.value.status, excinfo.value.code) == (503, "ServiceUnavailable")
    with pytest.raises(oss2.exceptions.ServerError) as excinfo:
        bucket.head_object("k")  # HEAD: details come from x-oss-err
    assert excinfo.value.code == "ServiceUnavailable"

    oss_server.faults.reset()
    assert bucket.put_object("k", b"v").status == 200


@pytest.mark.parametrize(
    ("throttle_code", "status"),
    [("TotalQpsLimitExceeded", 503), ("QpsLimitExceeded", 429), ("UploadTrafficRateLimitExceeded", 503)],
)
def test_throttling(oss_server, bucket, throttle_code, status):
    oss_server.set_faults(throttle_rate=1.0, throttle_code=throttle_code)
    with pytest.raises(oss2.exceptions.ServerError) as excinfo:
        bucket.put_object("k", b"v")
    assert (excinfo.value.status, excinfo.value.code) == (status, throttle_code)
    assert excinfo.value.request_id


def test_faults_can_target_one_operation(oss_server, bucket):
    oss_server.set_faults(error_503_rate=1.0, operations=["UploadPart"])
    upload_id = bucket.init_multipart_upload("t.bak").upload_id
    with pytest.raises(oss2.exceptions.ServerError):
        bucket.upload_part("t.bak", upload_id, 1, b"x")
    assert bucket.put_object("other", b"ok").status == 200


def test_seeded_faults_are_reproducible(oss_config, tmp_path):
    def statuses(data_dir):
        config = OssConfig(
            data_dir=data_dir,
            accounts=oss_config.accounts,
            buckets=oss_config.buckets,
            faults={"error_500_rate": 0.5, "seed": 1234},
        )
        with ThreadedOssServer(config) as server:
            bucket = oss2.Bucket(oss2.Auth(*next(iter(config.accounts.items()))), server.endpoint, BUCKET)
            for i in range(20):
                try:
                    bucket.put_object(f"k{i}", b"v")
                except oss2.exceptions.ServerError:
                    pass
            return [r.status for r in server.requests]

    first = statuses(tmp_path / "a")
    assert first == statuses(tmp_path / "b")
    assert {200, 500} == set(first)


def test_reset_on_upload_raises_request_error(oss_server, bucket):
    oss_server.set_faults(reset_rate=1.0)
    with pytest.raises(oss2.exceptions.RequestError):
        bucket.put_object("r.bak", b"x" * 2_000_000)
    with pytest.raises(oss2.exceptions.RequestError):
        bucket.head_object("r.bak")
    oss_server.faults.reset()
    assert [(r.operation, r.status, r.fault) for r in oss_server.requests] == [
        ("PutObject", 0, "reset"),
        ("HeadObject", 0, "reset"),
    ]
    assert oss_server.store.head(BUCKET, "r.bak") is None  # a cut upload never becomes an object
    assert bucket.put_object("r.bak", b"fine").status == 200


def test_reset_mid_download_truncates_the_body(oss_server, bucket):
    bucket.put_object("d.bak", b"y" * 1_000_000)
    oss_server.set_faults(reset_rate=1.0)
    result = bucket.get_object("d.bak")  # headers arrive, then the connection dies half-way
    # oss2 does not wrap errors raised while streaming a body: requests' own exception surfaces.
    with pytest.raises(requests.exceptions.RequestException):
        result.read()
    record = oss_server.requests[-1]
    assert (record.operation, record.status, record.fault) == ("GetObject", 0, "reset")
    assert 0 < record.bytes_out < 1_000_000


def test_latency(oss_server, bucket):
    bucket.put_object("l", b"v")
    oss_server.set_faults(latency_ms=300)
    started = time.monotonic()
    bucket.get_object("l").read()
    assert time.monotonic() - started >= 0.3


def test_bandwidth_cap_on_upload_and_download(oss_server, bucket):
    size = 600_000
    oss_server.set_faults(bandwidth_bps=1_000_000)
    started = time.monotonic()
    bucket.put_object("bw.bak", b"b" * size)
    upload_seconds = time.monotonic() - started
    started = time.monotonic()
    assert len(bucket.get_object("bw.bak").read()) == size
    download_seconds = time.monotonic() - started
    # 0.6 s at the cap; loose bounds for a busy machine.
    assert 0.45 <= upload_seconds < 5
    assert 0.45 <= download_seconds < 5

    oss_server.set_faults(bandwidth_bps=None)
    started = time.monotonic()
    bucket.get_object("bw.bak").read()
    assert time.monotonic() - started < 0.45


def test_request_log_records_operations(oss_server, bucket):
    bucket.put_object("dir/log.bak", b"v")
    bucket.list_objects_v2(prefix="dir/")
    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.get_object("dir/missing")
    log = [(r.method, r.path, r.operation, r.status) for r in oss_server.requests]
    assert log == [
        ("PUT", f"/{BUCKET}/dir%2Flog.bak", "PutObject", 200),
        ("GET", f"/{BUCKET}/", "ListObjectsV2", 200),
        ("GET", f"/{BUCKET}/dir%2Fmissing", "GetObject", 404),
    ]
    assert oss_server.requests[1].query["prefix"] == "dir/"
    oss_server.faults.clear_log()
    assert oss_server.requests == []
