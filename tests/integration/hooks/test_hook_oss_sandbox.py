"""OssMigrationHook against the OSS stand-in, through the real oss2 client."""

from __future__ import annotations

from collections import Counter

import oss2
import pytest

from hooks._retry import RetryPolicy
from hooks.oss import MiB, OssMigrationError, OssMigrationHook, file_crc64
from rds_migration.ledger import LedgerEntry, LedgerEvent
from tests.integration.hooks.conftest import (
    BUCKET,
    FAR_BUCKET,
    FAST_RETRY,
    IA_BUCKET,
    OSS_KEY_ID,
    OSS_SECRET,
    REGION,
    SSE_BUCKET,
    oss_connection,
    set_connection,
)

KEY = "backups/Sales/Sales_FULL_20261124101500.bak"
PART = 128 * 1024  # small parts keep the tests fast (OSS minimum is 100 KB)


def _parts_sent(server, key: str) -> Counter:
    return Counter(r.part_number for r in server.requests if r.operation == "UploadPart" and r.key == key)


def _raw_bucket(server, name: str = BUCKET) -> oss2.Bucket:
    return oss2.Bucket(oss2.AuthV4(OSS_KEY_ID, OSS_SECRET), server.endpoint, name, region=REGION)


# ---- bucket ----------------------------------------------------------------------------------------


def test_bucket_facts(oss_hook):
    facts = oss_hook.bucket_facts(BUCKET)
    assert facts.name == BUCKET
    assert facts.region == REGION
    assert facts.storage_class == "Standard"
    assert facts.sse_algorithm is None


def test_check_bucket_fit(oss_hook):
    assert oss_hook.check_bucket(BUCKET, REGION) == []


@pytest.mark.parametrize(
    ("bucket", "needle"),
    [
        (IA_BUCKET, "storage class IA"),
        (SSE_BUCKET, "server-side encryption (KMS)"),
        (FAR_BUCKET, "is in cn-shanghai"),
        ("no-such-bkt", "does not exist"),
    ],
)
def test_check_bucket_problems(oss_hook, bucket, needle):
    problems = oss_hook.check_bucket(bucket, REGION)
    assert len(problems) == 1
    assert needle in problems[0]


def test_wrong_secret_is_clear_and_not_retried(oss_server, monkeypatch, assert_no_secrets):
    wrong = "Wrong-S3cret-value"
    set_connection(monkeypatch, "oss_bad", oss_connection(oss_server.endpoint, secret=wrong))
    hook = OssMigrationHook("oss_bad", retry=FAST_RETRY)
    with pytest.raises(OssMigrationError) as info:
        hook.bucket_facts(BUCKET)
    assert info.value.code == "SignatureDoesNotMatch"
    assert "access_key_secret" in str(info.value)
    assert sum(r.operation == "GetBucketInfo" for r in oss_server.requests) == 1  # 4xx: no retry
    assert wrong not in str(info.value)
    assert_no_secrets(info.value, hook)


def test_signature_v1(oss_server, monkeypatch):
    set_connection(monkeypatch, "oss_v1", oss_connection(oss_server.endpoint, signature_version="v1"))
    assert OssMigrationHook("oss_v1").bucket_facts(BUCKET).storage_class == "Standard"


def test_no_request_in_constructor(oss_server, monkeypatch):
    set_connection(monkeypatch, "oss_migration", oss_connection(oss_server.endpoint))
    OssMigrationHook("oss_migration")
    assert oss_server.requests == []


# ---- objects and uploads -------------------------------------------------------------------------


def test_object_facts_missing_and_present(oss_hook, oss_server, make_file):
    assert oss_hook.object_facts(BUCKET, KEY) is None
    path = make_file(1000)
    _raw_bucket(oss_server).put_object_from_file(KEY, str(path))
    facts = oss_hook.object_facts(BUCKET, KEY)
    assert facts.size == 1000
    assert facts.crc64 == file_crc64(path)
    assert facts.etag


def test_simple_upload_verified_then_skipped(oss_hook, oss_server, make_file, tmp_path, assert_no_secrets):
    path = make_file(300_000)
    result = oss_hook.upload_file(BUCKET, path, KEY, checkpoint_dir=tmp_path / "ckpt")
    assert not result.skipped
    assert result.size == 300_000
    assert result.crc64 == file_crc64(path)
    assert sum(r.operation == "PutObject" for r in oss_server.requests) == 1

    again = oss_hook.upload_file(BUCKET, path, KEY, checkpoint_dir=tmp_path / "ckpt")
    assert again.skipped
    assert sum(r.operation == "PutObject" for r in oss_server.requests) == 1  # nothing sent again
    assert_no_secrets()


def test_changed_file_is_sent_again(oss_hook, oss_server, make_file, tmp_path):
    oss_hook.upload_file(BUCKET, make_file(2000, seed=1), KEY, checkpoint_dir=tmp_path / "ckpt")
    path = make_file(2000, seed=2)
    result = oss_hook.upload_file(BUCKET, path, KEY, checkpoint_dir=tmp_path / "ckpt")
    assert not result.skipped
    assert oss_hook.object_facts(BUCKET, KEY).crc64 == file_crc64(path)


def test_multipart_upload_parallel(oss_hook, oss_server, make_file, tmp_path):
    path = make_file(5 * PART + 1234)
    progress: list[tuple[int, int]] = []
    result = oss_hook.upload_file(
        BUCKET,
        path,
        KEY,
        checkpoint_dir=tmp_path / "ckpt",
        multipart_threshold=PART,
        part_size=PART,
        num_threads=3,
        on_progress=lambda sent, total: progress.append((sent, total)),
    )
    assert result.crc64 == file_crc64(path)
    assert sorted(_parts_sent(oss_server, KEY)) == [1, 2, 3, 4, 5, 6]
    assert progress[-1] == (result.size, result.size)
    assert not [p for p in (tmp_path / "ckpt").rglob("*") if p.is_file()]  # checkpoint removed on success


def test_interrupted_upload_resumes_without_resending_parts(oss_server, monkeypatch, make_file, tmp_path):
    set_connection(monkeypatch, "oss_migration", oss_connection(oss_server.endpoint))
    path = make_file(6 * PART)
    once = OssMigrationHook("oss_migration", retry=RetryPolicy(attempts=1))
    oss_server.faults.fail_part(4)
    with pytest.raises(OssMigrationError):
        once.upload_file(
            BUCKET, path, KEY, checkpoint_dir=tmp_path / "ckpt", multipart_threshold=PART, part_size=PART
        )
    first = _parts_sent(oss_server, KEY)
    assert first[4] == 1 and set(first) == {1, 2, 3, 4, 5, 6}
    assert once.object_facts(BUCKET, KEY) is None

    oss_server.faults.clear_log()
    result = OssMigrationHook("oss_migration").upload_file(
        BUCKET, path, KEY, checkpoint_dir=tmp_path / "ckpt", multipart_threshold=PART, part_size=PART
    )
    assert _parts_sent(oss_server, KEY) == Counter({4: 1})  # only the missing part
    assert result.crc64 == file_crc64(path)


def test_failed_part_is_retried_within_one_call(oss_hook, oss_server, make_file, tmp_path):
    path = make_file(4 * PART)
    oss_server.faults.fail_part(2)
    result = oss_hook.upload_file(
        BUCKET, path, KEY, checkpoint_dir=tmp_path / "ckpt", multipart_threshold=PART, part_size=PART
    )
    sent = _parts_sent(oss_server, KEY)
    assert sent[2] == 2 and all(sent[n] == 1 for n in (1, 3, 4))
    assert result.crc64 == file_crc64(path)


@pytest.mark.parametrize(
    "faults",
    [
        {"error_503_rate": 0.5},
        {"error_500_rate": 0.5},
        {"throttle_rate": 0.5, "throttle_code": "QpsLimitExceeded"},
        {"reset_rate": 0.3},
    ],
    ids=["503", "500", "throttling", "reset"],
)
def test_transient_faults_survived(oss_hook, oss_server, make_file, tmp_path, faults, caplog):
    path = make_file(4 * PART + 77)
    oss_server.set_faults(**faults, operations=frozenset({"PutObject", "UploadPart", "HeadObject"}))
    result = oss_hook.upload_file(
        BUCKET, path, KEY, checkpoint_dir=tmp_path / "ckpt", multipart_threshold=PART, part_size=PART
    )
    oss_server.set_faults(error_503_rate=0.0, error_500_rate=0.0, throttle_rate=0.0, reset_rate=0.0)
    assert result.crc64 == file_crc64(path)
    assert any(r.fault for r in oss_server.requests)  # faults really happened
    assert "retrying" in caplog.text


def test_access_denied_like_errors_not_retried(oss_hook, oss_server, make_file, tmp_path):
    with pytest.raises(OssMigrationError) as info:
        oss_hook.upload_file("no-such-bkt", make_file(10), KEY, checkpoint_dir=tmp_path / "ckpt")
    assert info.value.code == "NoSuchBucket"
    assert sum(r.operation == "HeadObject" for r in oss_server.requests) == 1


def test_crc_corrupted_in_transit_is_detected(oss_hook, oss_server, make_file, tmp_path):
    oss_server.faults.corrupt_next_crc(1)  # the PutObject answer carries a wrong CRC64
    with pytest.raises(OssMigrationError) as info:
        oss_hook.upload_file(BUCKET, make_file(5000), KEY, checkpoint_dir=tmp_path / "ckpt")
    assert info.value.code == "CrcMismatch"


def test_final_crc_check_catches_mismatch_after_resume(oss_server, monkeypatch, make_file, tmp_path):
    """After a resume oss2 cannot check the combined CRC; the hook's own HEAD check must."""
    set_connection(monkeypatch, "oss_migration", oss_connection(oss_server.endpoint))
    path = make_file(3 * PART)
    kwargs = {"checkpoint_dir": tmp_path / "ckpt", "multipart_threshold": PART, "part_size": PART}
    oss_server.set_faults(error_500_rate=1.0, operations=frozenset({"CompleteMultipartUpload"}))
    with pytest.raises(OssMigrationError):
        OssMigrationHook("oss_migration", retry=RetryPolicy(attempts=1)).upload_file(
            BUCKET, path, KEY, **kwargs
        )
    oss_server.set_faults(error_500_rate=0.0, operations=None)
    oss_server.faults.corrupt_next_crc(2)  # the Complete answer and the verifying HEAD
    with pytest.raises(OssMigrationError) as info:
        OssMigrationHook("oss_migration", retry=RetryPolicy(attempts=1)).upload_file(
            BUCKET, path, KEY, **kwargs
        )
    assert info.value.code == "CrcMismatch"
    assert "does not count" in str(info.value)


def test_missing_local_file(oss_hook, tmp_path):
    with pytest.raises(OssMigrationError) as info:
        oss_hook.upload_file(BUCKET, tmp_path / "nope.bak", KEY, checkpoint_dir=tmp_path / "ckpt")
    assert info.value.code == "LocalFileMissing"


def test_proxy_variables_do_not_capture_local_endpoint(oss_hook, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    assert oss_hook.bucket_facts(BUCKET).name == BUCKET


# ---- ledger and cleanup ----------------------------------------------------------------------------

LEDGER = "backups/Sales/ledger.jsonl"


def _entry(event: str, name: str) -> LedgerEntry:
    return LedgerEntry(event=LedgerEvent(event), database="we]ird 'db' ü", file_name=name)


def test_ledger_append_and_read(oss_hook):
    assert oss_hook.read_ledger(BUCKET, LEDGER) == []
    oss_hook.append_ledger(BUCKET, LEDGER, [_entry("backup_taken", "a.bak")])
    oss_hook.append_ledger(BUCKET, LEDGER, [_entry("uploaded", "a.bak"), _entry("backup_taken", "b.trn")])
    entries = oss_hook.read_ledger(BUCKET, LEDGER)
    assert [(e.event.value, e.file_name) for e in entries] == [
        ("backup_taken", "a.bak"),
        ("uploaded", "a.bak"),
        ("backup_taken", "b.trn"),
    ]
    assert entries[0].database == "we]ird 'db' ü"


def test_ledger_append_after_losing_a_race(oss_hook, monkeypatch):
    oss_hook.append_ledger(BUCKET, LEDGER, [_entry("backup_taken", "a.bak")])
    real = oss_hook.object_facts
    calls = []

    def stale_once(bucket, key):  # another writer appended after our HEAD
        calls.append(key)
        return None if len(calls) == 1 else real(bucket, key)

    monkeypatch.setattr(oss_hook, "object_facts", stale_once)
    oss_hook.append_ledger(BUCKET, LEDGER, [_entry("uploaded", "a.bak")])
    assert [e.event.value for e in oss_hook.read_ledger(BUCKET, LEDGER)] == ["backup_taken", "uploaded"]
    assert len(calls) == 2


def test_read_ledger_written_elsewhere(oss_hook, oss_server):
    text = _entry("backup_taken", "a.bak").to_json_line() + "\n" + '{"event": "uplo'  # torn last line
    _raw_bucket(oss_server).put_object(LEDGER, text.encode())
    assert [e.file_name for e in oss_hook.read_ledger(BUCKET, LEDGER)] == ["a.bak"]


def test_delete_prefix_stays_inside(oss_hook, oss_server):
    raw = _raw_bucket(oss_server)
    for key in ("backups/Sales/a.bak", "backups/Sales/b.trn", "backups/Sales2/c.bak", "backups/x.bak"):
        raw.put_object(key, b"x")
    assert oss_hook.delete_prefix(BUCKET, "backups/Sales/") == 2
    left = sorted(o.key for o in oss2.ObjectIteratorV2(raw))
    assert left == ["backups/Sales2/c.bak", "backups/x.bak"]


@pytest.mark.parametrize("prefix", ["", "backups", "/backups/"])
def test_delete_prefix_refuses_unsafe_prefix(oss_hook, prefix):
    with pytest.raises(ValueError):
        oss_hook.delete_prefix(BUCKET, prefix)


def test_large_default_threshold_uses_single_put(oss_hook, oss_server, make_file, tmp_path):
    assert MiB * 64 > 200_000
    oss_hook.upload_file(BUCKET, make_file(200_000), KEY, checkpoint_dir=tmp_path / "ckpt")
    assert [r.operation for r in oss_server.requests if r.operation in ("PutObject", "UploadPart")] == [
        "PutObject"
    ]
