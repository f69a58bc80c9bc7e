"""Backup file naming, OSS keys, OssObjectPositions and folder paths."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rds_migration.chain import BackupType
from rds_migration.naming import (
    InvalidNameError,
    backup_file_name,
    backup_stem,
    object_key,
    oss_object_position,
    parse_backup_file_name,
    parse_oss_object_position,
    server_backup_path,
    validate_bucket_name,
    validate_key_prefix,
    validate_object_key,
    worker_backup_path,
)

HOSTILE = [
    "Sales DB",
    "SalesDB",
    "Sales_DB",
    "sales]db",
    "o'brien",
    "销售数据库",
    "Ünïcødé",
    "!@#$%^&*()_+-=",
    "a" * 128,
    "a" * 127 + "b",
    " lead",
    "lead ",
    "tab\there",
    "[Sales]",
    "CON",
    "x/y\\z:w",
]
TAKEN = datetime(2026, 11, 24, 10, 15, 0)


@pytest.mark.parametrize("name", HOSTILE)
def test_stems_are_safe_and_files_are_valid_keys(name):
    stem = backup_stem(name)
    assert re.fullmatch(r"[A-Za-z0-9_]{1,80}", stem)
    assert backup_stem(name) == stem  # deterministic
    for kind in BackupType:
        key = object_key("backups/prod/", backup_file_name(name, kind, TAKEN))
        assert validate_object_key(key) == key


def test_hostile_names_never_collide():
    stems = [backup_stem(n) for n in HOSTILE]
    assert len(set(stems)) == len(stems)
    assert backup_stem("SalesDB") == "SalesDB" and backup_stem("Sales_DB") == "Sales_DB"
    assert backup_stem("Sales DB").startswith("Sales_DB_")


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=1, max_size=128), st.text(min_size=1, max_size=128))
def test_distinct_names_get_distinct_stems(a, b):
    if a != b:
        assert backup_stem(a) != backup_stem(b)
    assert re.fullmatch(r"[A-Za-z0-9_]+", backup_stem(a))


def test_empty_name_is_refused():
    with pytest.raises(InvalidNameError, match="empty"):
        backup_stem("")


@pytest.mark.parametrize(("kind", "suffix"), [("FULL", ".bak"), (BackupType.DIFF, ".diff"), ("L", ".trn")])
def test_file_name_format_and_parse_round_trip(kind, suffix):
    name = backup_file_name("Sales DB", kind, TAKEN, seq=3)
    assert name.endswith(f"_20261124101500_3{suffix}")
    parsed = parse_backup_file_name(r"D:\Backups\\" + name)
    assert parsed.stem == backup_stem("Sales DB") and parsed.seq == 3 and parsed.taken_at == TAKEN
    assert parsed.suffix == suffix


def test_aware_datetimes_are_converted_to_utc():
    taken = datetime(2026, 11, 24, 18, 15, tzinfo=timezone(timedelta(hours=8)))
    assert backup_file_name("Sales", "FULL", taken) == "Sales_FULL_20261124101500.bak"
    assert backup_file_name("Sales", "LOG", taken.astimezone(UTC)) == "Sales_LOG_20261124101500.trn"


def test_parse_is_tolerant_and_returns_none_for_others():
    parsed = parse_backup_file_name("backups/Sales_full_20261124101500.BAK")
    assert parsed.kind == "FULL" and parsed.suffix == ".bak" and parsed.seq is None
    assert parse_backup_file_name("Sales_LOG_2026.trn") is None
    assert parse_backup_file_name("notes.txt") is None
    assert parse_backup_file_name("Sales_LOG_20261399000000.trn") is None  # month 13


def test_bad_kind_and_seq():
    with pytest.raises(InvalidNameError, match="FULL, DIFF, LOG"):
        backup_file_name("Sales", "SNAPSHOT", TAKEN)
    with pytest.raises(InvalidNameError, match="negative"):
        backup_file_name("Sales", "LOG", TAKEN, seq=-1)


@pytest.mark.parametrize("bucket", ["abc", "my-bucket-01", "a" * 63, "9lives"])
def test_valid_buckets(bucket):
    assert validate_bucket_name(bucket) == bucket


@pytest.mark.parametrize("bucket", ["ab", "a" * 64, "My_Bucket", "-abc", "abc-", "ab.c", "", "UPPER"])
def test_invalid_buckets(bucket):
    with pytest.raises(InvalidNameError, match="not a valid OSS bucket name"):
        validate_bucket_name(bucket)


@pytest.mark.parametrize(
    ("key", "match"),
    [
        ("", "empty"),
        ("/backups/a.bak", "must not start"),
        ("\\backups\\a.bak", "must not start"),
        ("backups/a\x01.bak", "control"),
        ("backups/a-b.bak", "characters RDS refuses"),
        ("backups/a b.bak", "characters RDS refuses"),
        ("backups/a.zip", "suffix"),
        ("b/" + "x" * 1030 + ".bak", "1023 bytes"),
    ],
)
def test_invalid_object_keys(key, match):
    with pytest.raises(InvalidNameError, match=match):
        validate_object_key(key)


def test_object_keys_accept_all_suffixes_and_unicode_prefixes():
    for suffix in (".bak", ".diff", ".trn", ".log", ".BAK"):
        validate_object_key("迁移/prod/Sales_LOG_1" + suffix)
    assert object_key("a/b", "x.bak") == "a/b/x.bak"
    assert object_key("", "x.bak") == "x.bak"


@pytest.mark.parametrize("prefix", ["/a", "a\\b", "a//b", "a\nb"])
def test_invalid_prefixes(prefix):
    with pytest.raises(InvalidNameError):
        validate_key_prefix(prefix)


def test_oss_object_position_round_trip():
    key = "backups/Sales/Sales_FULL_20261124101500.bak"
    position = oss_object_position("oss-cn-hangzhou.aliyuncs.com", "mybucket", key)
    assert position == f"oss-cn-hangzhou.aliyuncs.com:mybucket:{key}"
    assert parse_oss_object_position(position) == ("oss-cn-hangzhou.aliyuncs.com", "mybucket", key)
    assert parse_oss_object_position("e:b:/a:b.bak") == ("e", "b", "a:b.bak")


@pytest.mark.parametrize("endpoint", ["https://oss-cn-hangzhou.aliyuncs.com", "127.0.0.1:9000", "a/b"])
def test_oss_object_position_rejects_schemes_and_ports(endpoint):
    with pytest.raises(InvalidNameError, match="endpoint"):
        oss_object_position(endpoint, "mybucket", "a.bak")


@pytest.mark.parametrize("bad", ["nocolons", "a:b", ":b:c", "a::c"])
def test_bad_positions(bad):
    with pytest.raises(InvalidNameError):
        parse_oss_object_position(bad)


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        (r"D:\Backups\Sales", r"D:\Backups\Sales\f.bak"),
        ("D:\\Backups\\Sales\\", r"D:\Backups\Sales\f.bak"),
        (r"\\nas\share", r"\\nas\share\f.bak"),
        ("D:/Backups", "D:/Backups\\f.bak"),
        ("/var/opt/mssql/backup/", "/var/opt/mssql/backup/f.bak"),
    ],
)
def test_server_paths_use_the_server_separator(folder, expected):
    assert server_backup_path(folder, "f.bak") == expected


def test_worker_path():
    assert worker_backup_path("/mnt/backups/sales/", "f.bak") == "/mnt/backups/sales/f.bak"
    with pytest.raises(InvalidNameError, match="worker_path"):
        worker_backup_path("", "f.bak")
