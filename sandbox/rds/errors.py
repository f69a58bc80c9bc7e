"""Errors of the RDS OpenAPI stand-in, answered as Alibaba Cloud's JSON error documents.

The Tea SDK only turns a JSON error body into a typed exception (``ClientException`` for 4xx,
``ServerException`` for 5xx, ``ThrottlingException`` when ``x-acs-retry-after`` is present), so every
error this stand-in produces goes through :class:`ApiError`.
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


def missing_parameter(name: str) -> ApiError:
    return ApiError(400, f"Missing{name}", f"{name} is mandatory for this action.")


def invalid_parameter(name: str, value: str) -> ApiError:
    return ApiError(400, "InvalidParameter", f"The specified parameter {name} ({value!r}) is not valid.")


def instance_not_found() -> ApiError:
    return ApiError(404, "InvalidDBInstanceId.NotFound", "Specified instance does not exist or not support.")


def migrate_task_not_found(task_id: str) -> ApiError:
    return ApiError(
        404, "InvalidMigrateTaskId.NotFound", f"The specified migrate task {task_id} does not exist."
    )


def db_name_not_found(db_name: str) -> ApiError:
    return ApiError(400, "InvalidDBName.NotFound", f"Specified database name {db_name} does not exist.")


def db_name_exists(db_name: str) -> ApiError:
    return ApiError(
        400,
        "InvalidDBName",
        f"Specified DB name {db_name} already exists on the instance or is used by an unattached "
        "database file; choose another name or remove the existing database.",
    )


def incorrect_db_state(detail: str) -> ApiError:
    return ApiError(400, "IncorrectDBState", f"Current DB state does not support this operation. {detail}")


def concurrent_task(detail: str) -> ApiError:
    return ApiError(400, "ConcurrentTaskExceeded", f"Concurrent task exceeding the allowed amount. {detail}")


def upload_limit_exceeded(db_name: str, limit: int) -> ApiError:
    return ApiError(
        400,
        "UploadLimitExceeded",
        f"The number of migrations of database {db_name} reached the daily limit ({limit} per day).",
    )


def incorrect_file_extension(file_name: str) -> ApiError:
    return ApiError(
        400,
        "IncorrectFileExtension",
        f"The file extension of {file_name} is not supported: use .bak, .diff, .trn or .log.",
    )


def invalid_oss_url(detail: str) -> ApiError:
    return ApiError(400, "InvalidOssUrl", f"The specified OSS URL is invalid. {detail}")


def bak_file_size_exceeded() -> ApiError:
    return ApiError(400, "BakFileSizeExceeded", "The backup file size exceeds the limit of 3 TB.")


def file_size_exceeded(file_mb: float, free_mb: float) -> ApiError:
    return ApiError(
        400,
        "FileSizeExceeded",
        f"The backup file ({file_mb:.2f} MB) is larger than the free storage of the instance "
        f"({free_mb:.2f} MB). Expand the storage capacity first.",
    )


def oss_not_authorized() -> ApiError:
    return ApiError(
        403,
        "Forbidden.RAM",
        "The RDS service account is not authorized to access your OSS bucket: the role "
        "AliyunRDSImportRole does not exist or was modified. Grant the authorization in the Import "
        "Guide wizard (Migrate OSS Backup Data to RDS) and retry.",
    )


def idempotent_mismatch() -> ApiError:
    return ApiError(
        400,
        "IdempotentParameterMismatch",
        "The request uses the same client token as a previous, but non-identical request.",
    )


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
