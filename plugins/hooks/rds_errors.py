"""Likely cause and fix for RDS error codes and migration task/file descriptions (pure Python).

One table, one function: :func:`advice_for` takes an OpenAPI error code (``InvalidDBName``) or a
task/file ``Description`` text (``Failed to open database Sales.``) and returns what to do.
"""

from __future__ import annotations

#: Advice for a terminated task (the same words wherever a wait ends on one).
TERMINATED_ADVICE = (
    "the migration task was terminated (TerminateMigrateTask/console): start over from a new full backup"
)

#: Error codes (exact, or a dotted prefix, or ``Throttling*``) -> cause and fix. Every code of R6 and
#: the quota codes (R2) is here, with what it means for *this* migration ([INST] error table, [META]).
CODE_ADVICE: dict[str, str] = {
    # -- names ([INST]: on SQL Server 2012+ the database must NOT exist before a full import) --
    "InvalidDBName.NotFound": (
        "RDS says the name 'does not exist or DB status does not support': on CreateMigrateTask this "
        "means a database of that name already exists on the instance (an earlier migration, or one "
        "left RESTORING by a terminated task) or is in a state that does not allow it: drop or rename it "
        "on RDS (DeleteDatabase), or set target.database to another name"
    ),
    "InvalidDBName.Forbid": "the name is reserved by RDS: choose another database name (target.database)",
    "InvalidDBName.Duplicate": (
        "a database or unattached database files with this name already exist on the RDS "
        "instance: drop them or migrate under another name"
    ),
    "InvalidDBName": (
        "the database name is not allowed (system or reserved names such as master, model, msdb, "
        "tempdb): set target.database to another name"
    ),
    # -- the caller and the instance --
    "Forbidden.RAM": (
        "the RAM user of the Airflow connection lacks RDS permissions for this action: grant it "
        "AliyunRDSFullAccess (or a policy allowing rds:CreateMigrateTask, rds:CreateOnlineDatabaseTask, "
        "rds:TerminateMigrateTask, rds:DeleteDatabase and rds:Describe*)"
    ),
    "Forbidden": "access denied: grant the RAM user AliyunRDSFullAccess and the AliyunRDSImportRole policy",
    "EntityNotExist.Role": (
        "RDS may not read your OSS buckets: the role AliyunRDSImportRole does not exist. Authorise the RDS "
        "service account once in the console (Backup and Restoration > Migrate OSS Backup Data to RDS > "
        "Import Guide, 'Authorization URL'); the RAM user also needs ram:GetRole on that role"
    ),
    "NoPermission": (
        "the RDS service account cannot read the bucket: authorise it (role AliyunRDSImportRole) in the "
        "console's Migrate OSS Backup Data to RDS wizard"
    ),
    "InvalidInstanceState": (
        "the RDS instance is not Running (being created, changed, restarted or restored): wait until "
        "DBInstanceStatus is Running and retry"
    ),
    "IncorrectDBInstanceState": (
        "the RDS instance is not Running (e.g. being changed or backed up): wait until it is Running and retry"
    ),
    "IncorrectDBInstanceType": (
        "this instance type or edition does not offer the API (SQL Server 2017/2019 cluster editions lack "
        "DescribeOssDownloads, 2017 cluster also DescribeMigrateTasks): migrate to a High-availability "
        "instance"
    ),
    "IncorrectDBInstanceLockMode": (
        "the instance is locked (e.g. storage full or overdue payment): unlock it (expand "
        "storage, settle the bill) and retry"
    ),
    "IncorrectDBType": "the instance engine is not SQL Server: use an RDS SQL Server instance",
    "IncorrectDBState": (
        "the database is busy or in a state that does not allow this (a file of the migration is still "
        "being restored, the database is being opened or created): wait for the migration task to be "
        "Waiting and retry"
    ),
    "InvalidDBInstanceId.NotFound": (
        "the RDS instance does not exist in this region: check the instance id and the "
        "region of the Airflow connection"
    ),
    # -- migration tasks --
    "InvalidMigrateTask": (
        "RDS does not know this MigrateTaskId on this instance: check the recorded id and the instance; "
        "if the migration is gone, start over from a new full backup"
    ),
    "InvalidMigrateTaskId.NotFound": (
        "the migration task does not exist: check the MigrateTaskId or start a new migration"
    ),
    "InvalideStatus": (
        "the migration task can take no more files or be opened no more: it was terminated, already "
        "opened, its full backup failed to restore, or its database is gone. Use the task id of the full "
        "import (not an incremental one); otherwise start over from a new full backup"
    ),
    "InvalidTask.NotFound": "RDS does not know this MigrateTaskId: check the recorded id and the instance",
    "InvalidTaskType.Invalid": (
        "RDS terminates only some task types (not incremental or Access Pending ones): to abandon the "
        "migration, delete its RESTORING database instead (DeleteDatabase or the console)"
    ),
    "InvalidTaskStatus": (
        "the task cannot be terminated in its status (already Terminated, Failed or opened): nothing to "
        "stop; delete the database if the migration is to be abandoned"
    ),
    "InvalidStartTimeAndEndTime.Malformed": "the query window is wrong: EndTime must be after StartTime",
    # -- quotas (R2) --
    "UploadLimitExceeded": (
        "RDS accepts at most 20 imports per database per day: wait until the next day (the quota resets), "
        "and take fewer, larger log backups (a longer log backup interval)"
    ),
    "ExceedUploadTime": (
        "RDS accepts at most 20 imports per database per day: wait until the next day (the quota resets), "
        "and take fewer, larger log backups (a longer log backup interval)"
    ),
    "ConcurrentTaskExceeded": (
        "RDS accepts at most 500 imports per instance per day (all databases together): wait until the "
        "next day, or spread the migrations over several days"
    ),
    # -- the backup file --
    "BakFilesNeeded": "no backup file was named: pass OssObjectPositions '<endpoint>:<bucket>:<key>'",
    "InvalidOssObjectPositions.Format": (
        "OssObjectPositions must be '<endpoint>:<bucket>:<key>' without a scheme, e.g. "
        "'oss-cn-hangzhou.aliyuncs.com:my-bucket:backups/Sales_FULL_20260101.bak'"
    ),
    "InvalidOSSURL": (
        "RDS cannot read the backup on OSS: the bucket must be in the instance's region and the object "
        "must exist (check the key and that the upload finished)"
    ),
    "InvalidOssUrl": (
        "RDS cannot read the backup on OSS: the bucket must be in the instance's region and the object "
        "must exist (check the key and that the upload finished)"
    ),
    "InvalidOssObjectStorageClassType": (
        "the bucket's storage class is not Standard: use a Standard bucket (not IA/Archive)"
    ),
    "IncorrectFileExtension": (
        "RDS recognises only .bak, .diff, .trn and .log files: rename the backup (keep the "
        "name to letters, digits and '_')"
    ),
    "InvalidFile": "RDS does not take this kind of file (empty, or not a file): upload the backup file again",
    "BakFileSizeExceeded": "the backup file is larger than 3 TB: compress the backup or split the migration",
    "ExceedDiskSize": "the backup file is larger than the instance's whole disk: expand the RDS storage first",
    "FileSizeExceeded": (
        "the restored data would exceed the instance's free storage: expand the RDS storage and retry"
    ),
    "EngineNotSupported": (
        "this engine/version does not support OSS backup import: use SQL Server 2012+ (or "
        "2008 R2 on cloud disks)"
    ),
    # -- credentials --
    "InvalidAccessKeyId.NotFound": "the AccessKey id is unknown: check access_key_id of the Airflow connection",
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
    # -- transient --
    "ExternalFailure": (
        "RDS failed on its side; for CreateMigrateTask the import may exist all the same (no ClientToken): "
        "the hook looked before retrying. Check the migration task list before importing the file again"
    ),
    "ImportOutcomeUnknown": (
        "RDS may or may not have accepted the import (CreateMigrateTask has no ClientToken) and the check "
        "failed: look at the instance's migration tasks (console or DescribeMigrateTasks) for this file "
        "before importing it again; then run the task again"
    ),
    "Throttling": "the API is throttling requests: calls are retried with backoff; lower the polling rate",
    "ServiceUnavailable": "the RDS API is temporarily unavailable: retried with backoff; try again later",
    "InternalError": "the RDS API had an internal error: retried with backoff; try again later",
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
    ("was terminated", TERMINATED_ADVICE),
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
