"""Narrow unit tests of the hooks' pure parts: SQL files, error mapping, advice, retry decisions."""

from __future__ import annotations

import logging
from pathlib import Path

import oss2.exceptions as oss_exc
import pymssql
import pytest
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException, ThrottlingException
from darabonba.exceptions import RetryError, UnretryableException

from hooks import mssql, oss, rds, rds_records, sql_files
from hooks._retry import RetryPolicy, call_with_retries
from hooks.rds_errors import CODE_ADVICE, TERMINATED_ADVICE, advice_for

SQL_DIR = Path(__file__).resolve().parents[3] / "include" / "sql"


# ---- SQL files -----------------------------------------------------------------------------------


def test_sql_dir_resolves_to_repo_include_sql():
    assert sql_files.sql_dir() == SQL_DIR


def test_sql_dir_override(monkeypatch, tmp_path):
    (tmp_path / "x.sql").write_text("SELECT 1;")
    monkeypatch.setenv(sql_files.SQL_DIR_ENV, str(tmp_path))
    assert sql_files.load_sql("x") == "SELECT 1;"


@pytest.mark.parametrize("path", sorted(SQL_DIR.glob("*.sql")), ids=lambda p: p.stem)
def test_every_statement_file_loads_with_its_slots(path):
    text = path.read_text()
    slots = sql_files.slots_of(text)
    values = {slot: sorted(sql_files.SLOT_VALUES[slot])[0] for slot in slots}
    loaded = sql_files.load_sql(path.stem, **values)
    assert "{{" not in loaded
    assert "%(" in loaded or path.stem == "server_properties"  # values travel as parameters


def test_slot_values_come_from_allow_list_only():
    with pytest.raises(sql_files.SqlFileError, match="not allowed"):
        sql_files.load_sql("backup_full", COMPRESSION="COMPRESSION; DROP DATABASE x")
    with pytest.raises(sql_files.SqlFileError, match="missing"):
        sql_files.load_sql("backup_full")
    with pytest.raises(sql_files.SqlFileError, match="unexpected"):
        sql_files.load_sql("checkdb", COMPRESSION="COMPRESSION")
    with pytest.raises(sql_files.SqlFileError, match="invalid"):
        sql_files.load_sql("../etc/passwd")
    with pytest.raises(sql_files.SqlFileError, match="not found"):
        sql_files.load_sql("no_such_statement")


def test_set_database_option_fills_the_option():
    text = sql_files.load_sql("set_database_option", OPTION="READ_ONLY")
    assert "SET READ_ONLY WITH ROLLBACK IMMEDIATE" in text


# ---- SQL Server errors ---------------------------------------------------------------------------

PASSWORD = "Pw-that-must-not-leak"


def _pymssql_error(number: int, text: str) -> pymssql.OperationalError:
    raw = f"{text}DB-Lib error message 20018, severity 16:\nGeneral SQL Server error: Check messages\n"
    return pymssql.OperationalError(number, raw.encode())


@pytest.mark.parametrize(
    ("number", "needle"),
    [
        (4214, "pseudo-simple"),
        (4208, "SIMPLE recovery"),
        (3101, "exclusive access"),
        (18456, "login failed"),
        (3201, "service account"),
        (911, "does not exist"),
    ],
)
def test_sql_error_numbers_map_to_advice(number, needle):
    database = "we]ird 'db' ü"
    error = mssql.map_error(_pymssql_error(number, "Server text."), f"LOG backup of {database!r}", database)
    assert error.number == number
    assert needle in error.message
    assert "we]ird 'db' ü" in error.message
    assert "DB-Lib" not in error.message
    assert error.server_message == "Server text."


def test_login_failure_text_has_no_password():
    exc = _pymssql_error(18456, "Login failed for user 'sa'.")
    error = mssql.map_error(exc, "connecting to SQL Server 127.0.0.1:1433 as 'sa'")
    assert PASSWORD not in str(error)


def test_error_number_from_nested_args():
    assert mssql.error_number(pymssql.OperationalError((20009, b"Unable to connect"))) == 20009
    assert mssql.error_number(ValueError("x")) == 0


@pytest.mark.parametrize(
    ("edition", "edition_id", "engine_edition", "expected"),
    [
        ("Enterprise Edition (64-bit)", 1804890536, 3, True),
        ("Developer Edition (64-bit)", -2117995310, 3, True),
        ("Standard Edition (64-bit)", -1534726760, 2, True),
        ("Web Edition (64-bit)", 1674378470, 2, False),
        ("Express Edition (64-bit)", -1592396055, 4, False),
    ],
)
def test_can_compress_backups(edition, edition_id, engine_edition, expected):
    facts = mssql.ServerFacts("s", "15.0.4153.1", 15, edition, edition_id, engine_edition)
    assert facts.can_compress_backups is expected


def test_progress_messages_reach_callback_and_log_sparingly(caplog):
    calls: list[tuple[int, float]] = []
    capture = mssql._Capture(on_progress=lambda p, e: calls.append((p, e)), label="FULL backup")
    caplog.set_level(logging.INFO, logger="hooks.mssql")
    for percent in (5, 10, 10, 15, 100):
        capture.handler(0, 0, "srv", "", 1, f"{percent} percent processed.".encode())
    capture.handler(0, 16, "srv", "", 1, b"Something broke.")
    assert [p for p, _ in calls] == [5, 10, 15, 100]
    assert capture.errors == ["Something broke."]
    progress_lines = [r for r in caplog.records if "%" in r.getMessage()]
    assert 1 <= len(progress_lines) <= 2  # the first line and 100 %, not every message


# ---- OSS errors ----------------------------------------------------------------------------------


def _oss_error(cls, status: int, code: str) -> oss_exc.OssError:
    return cls(status, {"x-oss-request-id": "RID"}, b"", {"Code": code, "Message": "msg"})


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (_oss_error(oss_exc.ServerError, 503, "ServiceUnavailable"), True),
        (_oss_error(oss_exc.ServerError, 500, "InternalError"), True),
        (_oss_error(oss_exc.ServerError, 429, "QpsLimitExceeded"), True),
        (_oss_error(oss_exc.ServerError, 503, "TotalQpsLimitExceeded"), True),
        (oss_exc.RequestError(ConnectionResetError("reset")), True),
        (_oss_error(oss_exc.AccessDenied, 403, "AccessDenied"), False),
        (_oss_error(oss_exc.NoSuchBucket, 404, "NoSuchBucket"), False),
        (oss_exc.InconsistentError("crc", "RID"), False),
    ],
)
def test_oss_transient_decision(error, transient):
    assert oss.is_transient(error) is transient


def test_oss_error_mapping_names_fix():
    error = oss.map_error(_oss_error(oss_exc.AccessDenied, 403, "AccessDenied"), "upload of x")
    assert error.code == "AccessDenied"
    assert "AliyunOSSFullAccess" in str(error)
    assert error.request_id == "RID"
    crc = oss.map_error(oss_exc.InconsistentError("mismatch", "RID"), "upload of x")
    assert crc.code == "CrcMismatch"


def test_oss_final_crc_mismatch_raises(monkeypatch, tmp_path):
    """The hook's own HEAD check (the sandbox covers it end to end too)."""
    path = tmp_path / "a.bak"
    path.write_bytes(b"payload")
    hook = oss.OssMigrationHook("unused")
    facts = iter([None, oss.ObjectFacts("k", 7, 12345, "etag")])
    monkeypatch.setattr(hook, "object_facts", lambda bucket, key: next(facts))
    monkeypatch.setattr(hook, "get_bucket", lambda bucket: object())
    monkeypatch.setattr(oss.oss2, "resumable_upload", lambda *a, **k: None)
    with pytest.raises(oss.OssMigrationError) as info:
        hook.upload_file("bkt", path, "k", checkpoint_dir=tmp_path / "ckpt")
    assert info.value.code == "CrcMismatch"


def test_oss_hook_repr_and_init_touch_nothing():
    hook = oss.OssMigrationHook("some_conn")
    assert repr(hook) == "<OssMigrationHook oss_conn_id='some_conn'>"
    assert "_auth" not in vars(hook) and "_settings" not in vars(hook)


# ---- RDS errors and advice -----------------------------------------------------------------------


def _client_exc(code: str, status: int = 400) -> ClientException:
    data = {"Code": code, "Message": "The thing failed.", "RequestId": "REQ-1"}
    return ClientException(
        status_code=status, code=code, message="code: 400, x", data=data, request_id="REQ-1"
    )


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ThrottlingException(status_code=400, code="Throttling.User", message="m", retry_after=200), True),
        (ServerException(status_code=503, code="ServiceUnavailable", message="m"), True),
        (ServerException(status_code=500, code="InternalError", message="m"), True),
        (RetryError("connection reset"), True),
        (_client_exc("Throttling.User"), True),
        (_client_exc("InvalidDBName"), False),
        (_client_exc("Forbidden.RAM", 403), False),
        (_client_exc("InvalidAccessKeyId.NotFound", 404), False),
    ],
)
def test_rds_transient_decision(error, transient):
    assert rds.is_transient(error) is transient


@pytest.mark.parametrize(
    ("error", "ambiguous"),
    [
        (ServerException(status_code=500, code="ExternalFailure", message="m"), True),
        (ServerException(status_code=503, code="ServiceUnavailable", message="m"), True),
        (RetryError("Read timed out."), True),
        (ThrottlingException(status_code=400, code="Throttling.User", message="m", retry_after=1), False),
        (_client_exc("Throttling.User"), False),
        (_client_exc("InvalidDBName.NotFound"), False),
    ],
)
def test_rds_ambiguous_decision(error, ambiguous):
    """After these, CreateMigrateTask may or may not have created the import (R5)."""
    assert rds.is_ambiguous(error) is ambiguous


def test_rds_network_error_wrapped_by_sdk_is_transient():
    class Ctx:
        http_request = None
        exception = RetryError("Connection refused")

    wrapped = UnretryableException(Ctx())
    assert rds.is_transient(wrapped)
    error = rds.map_error(wrapped, "DescribeMigrateTaskById x")
    assert error.code == "NetworkError"
    assert "HTTP(S)_PROXY" in error.advice


def test_rds_retry_after_is_milliseconds():
    exc = ThrottlingException(status_code=400, code="Throttling", message="m", retry_after=1500)
    assert rds.retry_after_seconds(exc) == 1.5
    assert rds.retry_after_seconds(_client_exc("InvalidDBName")) is None


@pytest.mark.parametrize(
    "code",
    [
        "InvalidDBName",
        "InvalidDBName.NotFound",
        "IncorrectDBInstanceState",
        "UploadLimitExceeded",
        "IncorrectFileExtension",
        "InvalidOssUrl",
        "BakFileSizeExceeded",
        "FileSizeExceeded",
        "Forbidden.RAM",
        "InvalidAccessKeyId.NotFound",
    ],
)
def test_rds_error_mapping_carries_advice(code):
    error = rds.map_error(_client_exc(code), "CreateMigrateTask of 'x'")
    assert error.code == code
    assert error.advice and error.advice in str(error)
    assert error.request_id == "REQ-1"
    assert "The thing failed." in error.message


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("Failed to open database Sales.", "edition"),
        (
            "The log in this backup set begins at LSN 35000000019200001, which is too recent to apply",
            "LSN order",
        ),
        (
            "Backup set (x.bak) is a Database FULL backup, we only accept transaction log or differential",
            "FULL",
        ),
        ("asynchronously DBCC checkdb failed: CHECKDB found 0 allocation errors and 2 consistency", "REPAIR"),
        ("The database (Sales) migration failed due to databases count limitation.", "delete unused"),
    ],
)
def test_advice_for_seed_descriptions(text, needle):
    assert needle in advice_for(text)


R6_AND_QUOTA_CODES = [
    "InvalidDBName.NotFound",
    "InvalidDBName",
    "EntityNotExist.Role",
    "Forbidden.RAM",
    "InvalidMigrateTask",
    "InvalideStatus",
    "ConcurrentTaskExceeded",
    "UploadLimitExceeded",
    "ExceedUploadTime",
    "InvalidOSSURL",
    "InvalidOssUrl",
    "InvalidOssObjectPositions.Format",
    "ExceedDiskSize",
    "FileSizeExceeded",
    "InvalidFile",
    "InvalidInstanceState",
    "BakFilesNeeded",
    "ExternalFailure",
    "IncorrectDBInstanceType",
    "IncorrectDBState",
    "InvalidTaskType.Invalid",
    "InvalidTaskStatus",
    "InvalidTask.NotFound",
    "InvalidDBName.Forbid",
]


@pytest.mark.parametrize("code", R6_AND_QUOTA_CODES)
def test_every_documented_code_has_its_own_advice(code):
    assert code in CODE_ADVICE  # exact, not a prefix's generic text
    assert len(advice_for(code)) > 30


def test_name_conflict_advice_says_the_database_exists():
    """InvalidDBName.NotFound on CreateMigrateTask means a same-named database exists (2012+, R6)."""
    advice = advice_for("InvalidDBName.NotFound")
    assert "already exists" in advice and "target.database" in advice and "drop" in advice


def test_quota_advice_names_the_limits():
    assert "20 imports per database per day" in advice_for("UploadLimitExceeded")
    assert advice_for("ExceedUploadTime") == advice_for("UploadLimitExceeded")
    assert "500 imports per instance per day" in advice_for("ConcurrentTaskExceeded")


def test_advice_for_a_terminated_task_text():
    assert advice_for("migration task 42 of 'x' was terminated") == TERMINATED_ADVICE


def test_advice_for_prefixes_and_unknown():
    assert advice_for("Forbidden.RAM") == CODE_ADVICE["Forbidden.RAM"]
    assert advice_for("Forbidden.Whatever") == CODE_ADVICE["Forbidden"]
    assert advice_for("Throttling.Api") == CODE_ADVICE["Throttling"]
    assert advice_for("SomethingNew") == ""
    assert advice_for(None) == ""


def test_task_failure_carries_description_advice():
    task = rds.MigrateTask("1", "db", "UPDF", "Failed", "Failed to open database db.", None, None)
    error = rds.RdsMigrationHook.task_failure(task)
    assert error.code == "Failed" and "edition" in error.advice


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("2019_std_ha", (2019, "std")),
        ("2022_ent", (2022, "ent")),
        ("2016_web", (2016, "web")),
        ("2017_ent_ha", (2017, "ent")),
        ("08r2_ent_ha", (2008, "ent")),
        ("2008r2", (2008, "ent")),
        ("2012", (2012, "ent")),  # the Enterprise single-node edition
        ("2012_ent_ha", (2012, "ent")),
        ("2016_std_sl", (2016, "std")),  # serverless
        ("2019_ent", (2019, "ent")),
        ("2019_STD_HA", (2019, "std")),
    ],
)
def test_parse_engine_version(version, expected):
    assert rds.parse_engine_version(version) == expected


@pytest.mark.parametrize(
    ("version", "expected"), [("8.0", (None, "")), ("2019", (2019, "")), ("2019_pro", (2019, ""))]
)
def test_unknown_engine_versions_are_logged_not_guessed(version, expected, caplog):
    assert rds.parse_engine_version(version) == expected
    assert version in caplog.text


@pytest.mark.parametrize(
    ("version", "category", "supported", "needle"),
    [
        ("2019_std_ha", "HighAvailability", True, ""),
        ("2022_ent", "AlwaysOn", True, ""),
        ("2019_ent_ha", "HighAvailability", True, ""),
        ("2019_ent", "AlwaysOn", False, "DescribeOssDownloads"),
        ("2017_ent", "AlwaysOn", False, "DescribeMigrateTasks"),
        ("08r2_ent_ha", "HighAvailability", False, "2008 R2"),
    ],
)
def test_migration_api_support(version, category, supported, needle):
    ok, reason = rds.migration_api_support(version, category)
    assert ok is supported
    assert (needle in reason) if needle else reason == ""


def test_instance_facts_from_the_api_units():
    """DBInstanceStorage is GB, DBInstanceDiskUsed MB (R7)."""
    facts = rds_records.instance_facts_from_map(
        {
            "Engine": "SQLServer",
            "EngineVersion": "2019_ent",
            "Category": "AlwaysOn",
            "DBInstanceStorage": 100,
            "DBInstanceDiskUsed": "1536",
        },
        "rm-1",
    )
    assert (facts.storage_gb, facts.disk_used_bytes) == (100, 1536 * 1024 * 1024)
    assert (facts.version_year, facts.major_version, facts.edition) == (2019, 15, "ent")
    assert not facts.supports_migration_apis and "2019 cluster" in facts.unsupported_reason


def _download(name: str, status: str = "Restored", mode: str = "") -> rds.OssDownload:
    return rds.OssDownload(name, "1.00", mode, "True", status, "", None, None)


@pytest.mark.parametrize(
    ("listed", "wanted", "matches"),
    [
        ("Sales_LOG_1.trn", "Sales_LOG_1.trn", True),
        ("backups/Sales/Sales_LOG_1.trn", "Sales_LOG_1.trn", True),  # FileName style "key"
        ("Sales_LOG_1.trn", "backups/Sales/Sales_LOG_1.trn", True),
        ("backups/a/Sales_LOG_1.trn", "backups/b/Sales_LOG_1.trn", True),  # last segment decides
        ("Sales_LOG_1.trn", "Sales_LOG_10.trn", False),
        ("", "Sales_LOG_1.trn", False),
    ],
)
def test_file_matches_whichever_file_name_style(listed, wanted, matches):
    assert rds.file_matches(_download(listed), wanted) is matches


def test_object_key_of_a_position():
    assert rds_records.object_key("oss-cn-hangzhou.aliyuncs.com:bkt:/a/b:c.bak") == "a/b:c.bak"


@pytest.mark.parametrize(
    ("download", "incremental"),
    [
        (_download("x.bak", mode="Database"), False),
        (_download("x.trn", mode="Transaction_Log"), True),
        (_download("x.bak", mode="Differential_Database"), True),
        (_download("x.trn", status="NoStart"), True),  # not read yet: by suffix
        (_download("x.bak", status="NoStart"), False),
    ],
)
def test_looks_incremental(download, incremental):
    assert rds_records.looks_incremental(download) is incremental


def test_deleted_files_count_as_restored():
    assert _download("a.bak", "Deleted").restored and _download("a.bak", "DeleteFailed").restored
    assert not _download("a.bak", "RestoreFailed").restored


def test_terminated_task_failure_advice():
    task = rds.MigrateTask("7", "db", "UPDF", "Terminated", "", None, None)
    error = rds.RdsMigrationHook.task_failure(task)
    assert task.failed and task.terminated
    assert (error.code, error.advice) == ("Terminated", TERMINATED_ADVICE)
    assert "start over from a new full backup" in str(error)


def test_direct_hosts(monkeypatch):
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert rds._is_direct_host("http", "127.0.0.1:8080")
    assert rds._is_direct_host("http", "localhost:1")
    assert not rds._is_direct_host("https", "rds.aliyuncs.com")
    monkeypatch.setenv("NO_PROXY", ".aliyuncs.com")
    assert rds._is_direct_host("https", "rds-vpc.cn-hangzhou.aliyuncs.com")


def test_state_sets_are_disjoint_and_complete():
    files = [rds.FILE_SUCCESS_STATES, rds.FILE_FAILURE_STATES, rds.FILE_INTERMEDIATE_STATES]
    assert sum(len(g) for g in files) == len(set().union(*files)) == 12  # every documented file status
    assert rds.FILE_DELETED_STATES <= rds.FILE_SUCCESS_STATES
    tasks = [
        rds.TASK_SUCCESS_STATES,
        rds.TASK_FAILURE_STATES,
        rds.TASK_WAITING_STATES,
        rds.TASK_INTERMEDIATE_STATES,
    ]
    assert sum(len(g) for g in tasks) == len(set().union(*tasks)) == 6
    assert set().union(*tasks) == {"NoStart", "Running", "Success", "Failed", "Waiting", "Terminated"}
    assert rds.TASK_TERMINATED_STATES <= rds.TASK_FAILURE_STATES
    assert rds.TASK_TERMINAL_STATES == rds.TASK_SUCCESS_STATES | rds.TASK_FAILURE_STATES


# ---- retries -------------------------------------------------------------------------------------


def test_retries_transient_then_succeeds(caplog):
    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionResetError("reset")
        return "ok"

    policy = RetryPolicy(attempts=5, initial_wait=0.001, max_wait=0.002)
    assert call_with_retries(flaky, what="x", policy=policy, is_transient=lambda e: True) == "ok"
    assert len(attempts) == 3
    assert caplog.text.count("retrying") == 2


def test_no_retry_on_permanent_error():
    attempts = []

    def denied():
        attempts.append(1)
        raise PermissionError("denied")

    with pytest.raises(PermissionError):
        call_with_retries(denied, what="x", policy=RetryPolicy(attempts=5), is_transient=lambda e: False)
    assert len(attempts) == 1


def test_wait_hint_is_honoured_and_capped(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr("tenacity.nap.time.sleep", slept.append)
    attempts = []

    def throttled():
        attempts.append(1)
        if len(attempts) < 3:
            raise TimeoutError("slow down")
        return 1

    policy = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=2.0)
    hints = iter([0.5, 9.0])
    call_with_retries(
        throttled, what="x", policy=policy, is_transient=lambda e: True, wait_hint=lambda e: next(hints)
    )
    assert slept == [0.5, 2.0]


def test_backoff_grows_with_jitter_and_is_capped():
    policy = RetryPolicy(attempts=9, initial_wait=1.0, max_wait=5.0)
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (8, 5.0)):
        waits = [policy.backoff(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)


def test_gives_up_after_attempts():
    with pytest.raises(TimeoutError):
        call_with_retries(
            lambda: (_ for _ in ()).throw(TimeoutError("t")),
            what="x",
            policy=RetryPolicy(attempts=2, initial_wait=0.001, max_wait=0.001),
            is_transient=lambda e: True,
        )
