"""Likely cause and fix for RDS error codes and migration task/file descriptions (pure Python).

One table, one function: :func:`advice_for` takes an OpenAPI error code (``InvalidDBName``) or a
task/file ``Description`` text (``Failed to open database Sales.``) and returns what to do.
"""

from __future__ import annotations

#: Error codes (exact, or a dotted prefix, or ``Throttling*``) -> cause and fix.
CODE_ADVICE: dict[str, str] = {
    "InvalidDBName.NotFound": (
        "the database does not exist on the RDS instance: check the database name, or "
        "create the migration task first"
    ),
    "InvalidDBName.Duplicate": (
        "a database or unattached database files with this name already exist on the RDS "
        "instance: drop them or migrate under another name"
    ),
    "InvalidDBName": (
        "the database name is refused or already used on the RDS instance (also by "
        "unattached files): drop the existing database or choose another name"
    ),
    "IncorrectDBInstanceState": (
        "the RDS instance is not Running (e.g. being changed or backed up): wait until it "
        "is Running and retry"
    ),
    "IncorrectDBInstanceType": (
        "this instance type does not support backup import: use an RDS SQL Server instance "
        "(2012+, or 2008 R2 with cloud disks)"
    ),
    "IncorrectDBInstanceLockMode": (
        "the instance is locked (e.g. storage full or overdue payment): unlock it (expand "
        "storage, settle the bill) and retry"
    ),
    "IncorrectDBType": ("the instance engine is not SQL Server: use an RDS SQL Server instance"),
    "IncorrectDBState": (
        "the database is not in a state that allows this (e.g. not RESTORING for an "
        "incremental import, or already open): check the migration task and database status"
    ),
    "UploadLimitExceeded": (
        "at most 20 migrations per database per day: wait until tomorrow or take fewer, larger log backups"
    ),
    "ConcurrentTaskExceeded": ("another task is running on the instance: wait for it to finish and retry"),
    "IncorrectFileExtension": (
        "RDS recognises only .bak, .diff, .trn and .log files: rename the backup (keep the "
        "name free of special characters)"
    ),
    "InvalidOssUrl": (
        "the OSS object position is wrong: use '<endpoint>:<bucket>:<key>' with an endpoint"
        " in the instance's region, and check the object exists"
    ),
    "BakFileSizeExceeded": (
        "the backup file is larger than 3 TB: split the migration or compress the backup"
    ),
    "FileSizeExceeded": (
        "the restored data would exceed the instance's storage: expand the RDS storage and retry"
    ),
    "EngineNotSupported": (
        "this engine/version does not support OSS backup import: use SQL Server 2012+ (or "
        "2008 R2 on cloud disks)"
    ),
    "InvalidDBInstanceId.NotFound": (
        "the RDS instance does not exist in this region: check the instance id and the "
        "region of the Airflow connection"
    ),
    "InvalidMigrateTaskId.NotFound": (
        "the migration task does not exist (tasks are listed for one week only): check the "
        "MigrateTaskId or start a new migration"
    ),
    "InvalidAccessKeyId.NotFound": (
        "the AccessKey id is unknown: check access_key_id of the Airflow connection"
    ),
    "InvalidAccessKeyId": (
        "the AccessKey id is unknown or disabled: check access_key_id of the Airflow connection"
    ),
    "SignatureDoesNotMatch": (
        "the AccessKey secret does not match the id: check access_key_secret of the Airflow connection"
    ),
    "IncompleteSignature": (
        "the request signature does not match (usually a wrong secret): check access_key_id and "
        "access_key_secret of the Airflow connection, and the clock of this machine"
    ),
    "Forbidden.RAM": (
        "the RAM user lacks permission: grant AliyunRDSFullAccess and AliyunOSSFullAccess, "
        "and a policy allowing ram:GetRole on role AliyunRDSImportRole"
    ),
    "Forbidden": ("access denied: grant the RAM user AliyunRDSFullAccess and the AliyunRDSImportRole policy"),
    "NoPermission": (
        "the RDS service account cannot read the bucket: authorise it (role "
        "AliyunRDSImportRole) in the console's Migrate OSS Backup Data to RDS wizard"
    ),
    "Throttling": ("the API is throttling requests: calls are retried with backoff; lower the polling rate"),
    "ServiceUnavailable": ("the RDS API is temporarily unavailable: retried with backoff; try again later"),
    "InternalError": ("the RDS API had an internal error: retried with backoff; try again later"),
}

#: Substrings of task/file ``Description`` texts (matched case-insensitively) -> cause and fix.
TEXT_ADVICE: tuple[tuple[str, str], ...] = (
    (
        "failed to open database",
        (
            "the source uses edition features the target edition lacks (e.g. Enterprise "
            "features on a Web/Standard instance): disable them on the source and migrate "
            "again, or use an RDS instance of the same edition"
        ),
    ),
    (
        "too recent to apply",
        (
            "LSN gap: a log backup is missing between the last one applied and this one "
            "(uploaded out of order, or another job took a log backup): import the backups "
            "in strict LSN order; re-take a full if one is lost"
        ),
    ),
    (
        "is a database full backup, we only accept",
        (
            "a FULL backup was sent as an incremental file: import only log or differential"
            " backups into an existing migration task"
        ),
    ),
    (
        "asynchronously dbcc checkdb failed",
        (
            "the background DBCC CHECKDB found consistency errors on the opened database "
            "(corruption from the source): repair the source (DBCC CHECKDB ... "
            "REPAIR_ALLOW_DATA_LOSS, may lose data) and migrate again, or repair the target"
        ),
    ),
    (
        "databases count limitation",
        (
            "the RDS instance reached its maximum number of databases: delete unused "
            "databases or migrate to another instance"
        ),
    ),
    (
        "already exists",
        (
            "a database or unattached files with this name exist on the RDS instance: "
            "remove them or choose another name"
        ),
    ),
    (
        "too early to apply",
        ("this log backup ends before the restore point: it is already applied; skip it"),
    ),
    (
        "no permission",
        (
            "the RDS service account cannot read the OSS bucket: authorise "
            "AliyunRDSImportRole in the import wizard"
        ),
    ),
)


def advice_for(code_or_text: str | None) -> str:
    """Return the likely cause and fix for an RDS error code or a task/file description ("" if unknown).

    Codes match exactly first, then by their dotted prefix (``Forbidden.RAM`` -> ``Forbidden``) and by
    ``Throttling*``; texts match by case-insensitive substring.

    :param code_or_text: an OpenAPI error code, or a ``Description`` text.
    """
    if not code_or_text:
        return ""
    value = str(code_or_text).strip()
    if value in CODE_ADVICE:
        return CODE_ADVICE[value]
    head = value
    while "." in head:
        head = head.rsplit(".", 1)[0]
        if head in CODE_ADVICE:
            return CODE_ADVICE[head]
    if value.startswith("Throttling"):
        return CODE_ADVICE["Throttling"]
    lowered = value.lower()
    for needle, advice in TEXT_ADVICE:
        if needle in lowered:
            return advice
    return ""
