"""Errors of the RDS OpenAPI stand-in, answered as Alibaba Cloud's JSON error documents.

The Tea SDK only turns a JSON error body into a typed exception (``ClientException`` for 4xx,
``ServerException`` for 5xx, ``ThrottlingException`` when ``x-acs-retry-after`` is present), so every
error this stand-in produces goes through :class:`ApiError`.

Codes, HTTP statuses and messages come from two public sources (see real-world.md):
[META] the OpenAPI metadata of RDS 2014-08-15 (``errorCodes`` of each API, e.g. as mirrored in
``dew-serverless/acs-sdk-php`` ``data/rds/2014-08-15/api-docs.json``) and [INST] the "OpenAPI error
codes" table of Alibaba's guide "Migrate data from a self-managed SQL Server instance to an ApsaraDB
RDS for SQL Server instance". Messages are theirs, verbatim (typos such as ``InvalideStatus``
included); where a message names a value, ours names it the same way.
"""

from __future__ import annotations


class ApiError(Exception):
    """An OpenAPI error: HTTP status, error code and message exactly as the service answers them.

    :param status: HTTP status code.
    :param code: Alibaba error code, e.g. ``InvalidDBName``.
    :param message: human-readable message (never contains secrets).
    :param retry_after_ms: when set, answered as the ``x-acs-retry-after`` header (throttling).
    """

    def __init__(self, status: int, code: str, message: str, *, retry_after_ms: int | None = None):
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms


# --- request shape ------------------------------------------------------------------------------


def missing_parameter(name: str) -> ApiError:
    return ApiError(400, f"Missing{name}", f"{name} is mandatory for this action.")


def invalid_parameter(name: str, value: str) -> ApiError:
    return ApiError(400, "InvalidParameter", f"The specified parameter {name} ({value!r}) is not valid.")


def malformed(name: str) -> ApiError:
    return ApiError(400, f"Invalid{name}.Malformed", f"Specified parameter {name} is not valid.")


def window_malformed() -> ApiError:
    # [META] DescribeMigrateTasks.
    return ApiError(
        400, "InvalidStartTimeAndEndTime.Malformed", "The end time must be greater than the start time"
    )


# --- caller and instance ------------------------------------------------------------------------


def instance_not_found() -> ApiError:
    return ApiError(404, "InvalidDBInstanceId.NotFound", "Specified instance does not exist or not support.")


def forbidden_ram() -> ApiError:
    # [INST] troubleshooting: "Error:Forbidden.RAM The user is not authorized to operate the specified
    # resource, or this operation does not support RAM."
    return ApiError(
        403,
        "Forbidden.RAM",
        "The user is not authorized to operate the specified resource, or this operation does not "
        "support RAM.",
    )


def invalid_instance_state() -> ApiError:
    # [META] CreateMigrateTask, DescribeMigrateTasks, DescribeMigrateTaskById.
    return ApiError(403, "InvalidInstanceState", "The DB instance state does not support this operation.")


def incorrect_instance_state() -> ApiError:
    # [INST]; [META] CreateOnlineDatabaseTask, DeleteDatabase.
    return ApiError(
        403, "IncorrectDBInstanceState", "Current DB instance state does not support this operation."
    )


def incorrect_instance_type() -> ApiError:
    # The answer for APIs [META] says an edition does not support (R8): the exact error is UNKNOWN;
    # this code and text are what RDS answers elsewhere for an unsupported instance type ([INST]).
    return ApiError(
        400, "IncorrectDBInstanceType", "Current DB instance type does not support this operation."
    )


# --- CreateMigrateTask ----------------------------------------------------------------------------


def bak_files_needed() -> ApiError:
    return ApiError(404, "BakFilesNeeded", "Backup file does not supply.")  # [META]


def invalid_oss_object_positions() -> ApiError:
    return ApiError(
        403, "InvalidOssObjectPositions.Format", "The specified params OssObjectPositions is not valid."
    )  # [META]


def invalid_oss_url() -> ApiError:
    # [META] spells it InvalidOSSURL ([INST]: InvalidOssUrl "Specified oss url is not valid.").
    return ApiError(400, "InvalidOSSURL", "The Specified OSS URL is not valid")


def incorrect_file_extension() -> ApiError:
    return ApiError(400, "IncorrectFileExtension", "The file extension does not support.")  # [INST]


def invalid_file() -> ApiError:
    return ApiError(400, "InvalidFile", "The operation does not support this kind of file")  # [META]


def role_not_exists() -> ApiError:
    # [META]: AliyunRDSImportRole missing, i.e. the RDS service account was never authorised on OSS.
    return ApiError(400, "EntityNotExist.Role", "The role not exists")


def bak_file_size_exceeded() -> ApiError:
    return ApiError(400, "BakFileSizeExceeded", "Exceeding the allowed bak file size.")  # [INST]


def exceed_disk_size() -> ApiError:
    # [META]: the file is larger than the instance's whole disk.
    return ApiError(400, "ExceedDiskSize", "The file size exceeding the disk size")


def file_size_exceeded() -> ApiError:
    # [INST]: the restored file would not fit into the free storage.
    return ApiError(400, "FileSizeExceeded", "Exceeding the allowed file size of DB instance.")


def system_db_name() -> ApiError:
    # [INST]: 403 InvalidDBName for system database names.
    return ApiError(403, "InvalidDBName", "The specified database name is not allowed.")


def db_name_not_found() -> ApiError:
    # [INST]: on SQL Server 2012+ a database of that name must NOT exist; RDS still says "not found".
    return ApiError(
        400,
        "InvalidDBName.NotFound",
        "Specified one or more DB name does not exist or DB status does not support.",
    )


def db_name_not_found_404() -> ApiError:
    return ApiError(
        404,
        "InvalidDBName.NotFound",
        "Specified one or more DB name does not exist or DB status does not support.",
    )  # [META] DeleteDatabase


def incorrect_db_state() -> ApiError:
    # [INST]: "the database is being created or a migration task is in progress".
    return ApiError(400, "IncorrectDBState", "Current DB state does not support this operation.")


def parent_status_invalid() -> ApiError:
    return ApiError(400, "InvalideStatus", "Parent migrate task status is invalid.")  # [META], sic


def migrate_task_not_found(task_id: str) -> ApiError:
    return ApiError(
        400,
        "InvalidMigrateTask",
        f"The specified MigrateTaskId {task_id} does not exist. Please check again.",
    )  # [META] DescribeMigrateTaskById


def daily_db_quota(code: str) -> ApiError:
    if code == "ExceedUploadTime":
        return ApiError(400, "ExceedUploadTime", "Exceeding the daily upload times of this DB.")  # [META]
    return ApiError(
        400, "UploadLimitExceeded", "UploadTimesQuotaExceeded: Exceeding the daily upload times of this DB."
    )  # [INST]


def daily_instance_quota() -> ApiError:
    return ApiError(400, "ConcurrentTaskExceeded", "Concurrent task exceeding the allowed amount.")  # [INST]


def external_failure() -> ApiError:
    return ApiError(
        500, "ExternalFailure", "The request processing has failed due to external service failure."
    )  # [META]


# --- CreateOnlineDatabaseTask ---------------------------------------------------------------------


def idempotent_mismatch() -> ApiError:
    return ApiError(
        400,
        "IdempotentParameterMismatch",
        "The request uses the same client token as a previous, but non-identical request.",
    )


# --- TerminateMigrateTask ([META]) ----------------------------------------------------------------


def terminate_not_found() -> ApiError:
    return ApiError(400, "InvalidTask.NotFound", "Specified MigrateTaskId could not be found on RDS.")


def terminate_task_type() -> ApiError:
    return ApiError(
        400,
        "InvalidTaskType.Invalid",
        "Migrate task type Incremental is not supported, only support FULL backup migrate task.",
    )


def terminate_task_status(status: str) -> ApiError:
    if status in ("Terminated", "Failed"):
        return ApiError(400, "InvalidTaskStatus", "Current task status (Terminated/Failed) does not support.")
    return ApiError(400, "InvalidTaskStatus", f"Current task status ({status}) does not support.")


# --- DeleteDatabase ([META]) ----------------------------------------------------------------------


def db_name_forbidden() -> ApiError:
    return ApiError(400, "InvalidDBName.Forbid", "Specified DB name is a keyword in RDS.")


def db_state_forbids_delete() -> ApiError:
    return ApiError(403, "IncorrectDBState", "The current DB state does not support this operation.")


def delete_failed() -> ApiError:
    return ApiError(
        400,
        "Database.DelError",
        "Failed to delete the database. Check the specified parameters and the instance state.",
    )


# --- transient ------------------------------------------------------------------------------------


def throttling(retry_after_ms: int) -> ApiError:
    return ApiError(
        400, "Throttling.User", "Request was denied due to user flow control.", retry_after_ms=retry_after_ms
    )


def server_error(status: int) -> ApiError:
    if status == 503:
        return ApiError(
            503, "ServiceUnavailable", "The request has failed due to a temporary failure of the server."
        )
    return ApiError(
        status,
        "InternalError",
        "The request processing has failed due to some unknown error, exception or failure.",
    )
