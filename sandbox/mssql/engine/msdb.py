"""msdb backup and restore history, written as SQL Server writes it.

BACKUP adds one ``backupmediaset`` row, one ``backupmediafamily`` row per file (per family and per
mirror: ``family_sequence_number`` 1..n, ``mirror`` 0..m-1) and one ``backupset`` row. RESTORE, on the
restoring server, adds the same three describing the backup it read (with the backup's own server,
database and user names), then one ``restorehistory`` row. Column meanings from Microsoft's msdb
reference (backupset, backupmediafamily, backupmediaset, restorehistory); dates are server local time.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING

from sandbox.mssql.engine import admin
from sandbox.mssql.engine.backupfile import media_of

if TYPE_CHECKING:
    from sandbox.mssql.engine.instance import Instance

RESTORE_TYPES = {1: "D", 5: "I", 2: "L"}


def _date(value) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value).replace(tzinfo=None)


def _lsn(value) -> Decimal | None:
    return None if value is None else Decimal(value)


def record_backup(inst: Instance, header: dict, devices: list[list[str]], family_ids: list[str]) -> int:
    """History rows for one backup set on ``devices[mirror][family]``; returns its backup_set_id."""
    media = media_of(header)
    media_set_id = admin.insert_row(
        inst,
        "msdb",
        "dbo",
        "backupmediaset",
        {
            "media_uuid": uuid.UUID(media["media_set_guid"]),
            "media_family_count": len(devices[0]),
            "software_name": "Microsoft SQL Server",
            "software_vendor_id": 4608,
            "MTF_major_version": 1,
            "mirror_count": len(devices),
            "is_password_protected": False,
            "is_compressed": bool(header["Compressed"]),
            "is_encrypted": False,
        },
    )
    for mirror, family_devices in enumerate(devices):
        for number, device in enumerate(family_devices, start=1):
            admin.insert_row(
                inst,
                "msdb",
                "dbo",
                "backupmediafamily",
                {
                    "media_set_id": media_set_id,
                    "family_sequence_number": number,
                    "media_family_id": uuid.UUID(family_ids[number - 1]),
                    "media_count": 1,
                    "logical_device_name": None,
                    "physical_device_name": device,
                    "device_type": 2,  # disk
                    "physical_block_size": 512,
                    "mirror": mirror,
                },
            )
    return admin.insert_row(
        inst, "msdb", "dbo", "backupset", _backupset_row(header, media_set_id, len(devices[0]))
    )


def _backupset_row(header: dict, media_set_id: int, families: int) -> dict:
    return {
        "backup_set_uuid": header["BackupSetGUID"],
        "media_set_id": media_set_id,
        "first_family_number": 1,
        "first_media_number": 1,
        "last_family_number": families,
        "last_media_number": 1,
        "position": 1,
        "software_vendor_id": 4608,
        "name": header["BackupName"],
        "description": header["BackupDescription"],
        "user_name": header["UserName"],
        "software_major_version": header["SoftwareVersionMajor"],
        "software_minor_version": header["SoftwareVersionMinor"],
        "software_build_version": header["SoftwareVersionBuild"],
        "time_zone": header.get("Sandbox", {}).get("time_zone_quarters", 0),
        "first_lsn": _lsn(header["FirstLSN"]),
        "last_lsn": _lsn(header["LastLSN"]),
        "checkpoint_lsn": _lsn(header["CheckpointLSN"]),
        "database_backup_lsn": _lsn(header["DatabaseBackupLSN"]),
        "database_creation_date": _date(header["DatabaseCreationDate"]),
        "backup_start_date": _date(header["BackupStartDate"]),
        "backup_finish_date": _date(header["BackupFinishDate"]),
        "type": RESTORE_TYPES[header["BackupType"]],
        "sort_order": 52,
        "code_page": 0,
        "compatibility_level": header["CompatibilityLevel"],
        "database_version": header["DatabaseVersion"],
        "backup_size": Decimal(header["BackupSize"]),
        "database_name": header["DatabaseName"],
        "server_name": header["ServerName"],
        "machine_name": header["MachineName"],
        "flags": header["Flags"],
        "unicode_locale": 1033,
        "unicode_compare_style": 196609,
        "collation_name": header["Collation"],
        "is_password_protected": False,
        "recovery_model": header["RecoveryModel"],
        "has_bulk_logged_data": False,
        "is_snapshot": bool(header.get("IsSnapshot", False)),
        "is_readonly": header["IsReadOnly"],
        "is_single_user": header["IsSingleUser"],
        "has_backup_checksums": header["HasBackupChecksums"],
        "is_damaged": False,
        "begins_log_chain": header["BeginsLogChain"],
        "has_incomplete_metadata": False,
        "is_force_offline": header["IsForceOffline"],
        "is_copy_only": header["IsCopyOnly"],
        "first_recovery_fork_guid": header.get("FirstRecoveryForkID") or header["RecoveryForkID"],
        "last_recovery_fork_guid": header["RecoveryForkID"],
        "fork_point_lsn": _lsn(header.get("ForkPointLSN")),
        "database_guid": header["BindingID"],
        "family_guid": header["FamilyGUID"],
        "differential_base_lsn": _lsn(header["DifferentialBaseLSN"]),
        "differential_base_guid": header["DifferentialBaseGUID"],
        "compressed_backup_size": Decimal(header["CompressedBackupSize"]),
        "compression_algorithm": header.get("CompressionAlgorithm"),
    }


def record_restore(
    inst: Instance,
    headers: list[dict],
    devices: list[str],
    destination: str,
    login: str,
    *,
    replace: bool,
    recovery: bool,
) -> int:
    """The restored backup's rows on this server plus its ``restorehistory`` row; returns the latter's id.

    ``devices`` and ``headers`` are in family order (one device per family).
    """
    header = headers[0]
    family_ids = [media_of(h)["media_family_id"] for h in headers]
    backup_set_id = record_backup(inst, header, [devices], family_ids)
    return admin.insert_row(
        inst,
        "msdb",
        "dbo",
        "restorehistory",
        {
            "restore_date": inst.local_now(),
            "destination_database_name": destination,
            "user_name": login,
            "backup_set_id": backup_set_id,
            "restore_type": RESTORE_TYPES[header["BackupType"]],
            "replace": replace,
            "recovery": recovery,
            "restart": False,
            "stop_at": None,
            "device_count": len(devices),
            "stop_at_mark_name": None,
            "stop_before": False,
        },
    )
