"""Backup media sets: a backup striped over several files (media families) and mirrored copies.

``BACKUP ... TO DISK = @a, DISK = @b`` writes one backup set striped over two media families;
``... MIRROR TO DISK = @c, DISK = @d WITH FORMAT`` writes the same families again (Enterprise and
Developer only). RESTORE needs one copy of every family. Error numbers and texts are SQL Server's
(Microsoft's "Database engine events and errors" 3000-3999 list; BACKUP reference for the limits:
64 devices, three MIRROR TO clauses).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.mssql.engine.backupfile import media_of
from sandbox.mssql.results import SqlError

MAX_DEVICES = 64
MAX_MIRRORS = 4  # the original plus three MIRROR TO clauses


@dataclass
class BackupMedia:
    """Where one backup set goes: ``devices[m][f]`` is family ``f + 1`` of mirror ``m`` (``files`` alike)."""

    devices: list[list[str]]
    files: list[list[Path]]
    media_set_guid: str = field(default_factory=lambda: str(uuid.uuid4()).upper())
    family_ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.family_ids:
            self.family_ids = [str(uuid.uuid4()).upper() for _ in self.devices[0]]

    @property
    def family_count(self) -> int:
        return len(self.devices[0])

    @property
    def mirror_count(self) -> int:
        return len(self.devices)

    def family_paths(self) -> list[list[Path]]:
        """``[family][mirror]``: the files one family is written to."""
        return [[mirror[f] for mirror in self.files] for f in range(self.family_count)]

    def identity(self) -> dict:
        return {
            "media_set_guid": self.media_set_guid,
            "family_count": self.family_count,
            "mirror_count": self.mirror_count,
            "family_ids": self.family_ids,
        }


def check_backup_devices(device_sets: list[list[str]], engine_edition: int, options: dict) -> None:
    """BACKUP's checks on the TO / MIRROR TO device lists (each list: one mirror's families)."""
    if len(device_sets) > 1 and engine_edition != 3:
        raise SqlError(
            3218,
            16,
            1,
            "Backup mirroring is not available in this edition of SQL Server. See Books Online for more "
            "details on feature support in different SQL Server editions.",
        )
    if len(device_sets) > MAX_MIRRORS:
        raise SqlError(3214, 16, 1, f"Too many backup mirrors are specified. Only {MAX_MIRRORS} are allowed.")
    if any(len(devices) != len(device_sets[0]) for devices in device_sets):
        raise SqlError(
            3010,
            16,
            1,
            "Invalid backup mirror specification. All mirrors must have the same number of members.",
        )
    if len(device_sets[0]) > MAX_DEVICES:
        raise SqlError(
            3205,
            16,
            1,
            f"Too many backup devices specified for backup or restore; only {MAX_DEVICES} are allowed.",
        )
    if len(device_sets) > 1 and "FORMAT" not in options:
        raise SqlError(3215, 16, 1, "Use WITH FORMAT to create a new mirrored backup set.")


def order_families(devices: list[str], headers: list[dict]) -> list[int]:
    """Indexes of ``devices`` in family order, checking that they are one complete media set.

    Each device must hold a different family of the same media set, and every family must be there
    (3132: "All members must be provided"). Either mirror of a family will do.
    """
    first = media_of(headers[0])
    expected = first["family_count"]
    by_family: dict[int, int] = {}
    for index, (device, header) in enumerate(zip(devices, headers, strict=True)):
        media = media_of(header)
        if media["family_count"] < len(devices):
            raise SqlError(
                3231,
                16,
                1,
                f'The media loaded on "{device}" is formatted to support {media["family_count"]} media '
                f"families, but {len(devices)} media families are expected according to the backup device "
                "specification.",
            )
        number = media["family_sequence_number"]
        if media["media_set_guid"] != first["media_set_guid"]:
            raise SqlError(
                3232,
                16,
                1,
                f'The volume mounted on "{device}" does not have the expected backup set identity. The '
                "volume may be obsolete due to a more recent overwrite of this media family. In that case, "
                f"locate the correct volume with sequence number 1 of media family {number}.",
            )
        if number in by_family:
            raise SqlError(
                3227,
                16,
                1,
                f'The backup media on "{device}" is part of media family {number} which has already been '
                f'processed on "{devices[by_family[number]]}". Ensure that backup devices are correctly '
                "specified. For tape devices, ensure that the correct volumes are loaded.",
            )
        by_family[number] = index
    if len(by_family) < expected:
        raise SqlError(
            3132,
            16,
            1,
            f"The media set has {expected} media families but only {len(by_family)} are provided. All "
            "members must be provided.",
        )
    return [by_family[number] for number in sorted(by_family)]
