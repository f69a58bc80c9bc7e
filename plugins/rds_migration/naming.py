"""Backup file names, OSS object keys, OssObjectPositions and backup folder paths.

Database names may contain anything SQL Server allows (Unicode, ``]``, ``'``, spaces, symbols), but
RDS refuses backup file names with special characters. File names are therefore derived from a
*stem* that keeps only ``[A-Za-z0-9_]`` and carries a short hash of the exact name whenever the name
had to be changed, so two different databases never share a stem.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath

from rds_migration.errors import MigrationError

#: Longest readable part kept from a database name (the hash and suffixes come on top).
STEM_MAX_CHARS = 64
#: Hex digits of the SHA-256 of the exact name appended to changed stems (40 bits).
STEM_HASH_CHARS = 10
#: Suffix per backup kind; RDS recognises .bak, .diff, .trn and .log (the suffix does not decide the type).
SUFFIX_BY_KIND = {"FULL": "bak", "DIFF": "diff", "LOG": "trn"}
RECOGNISED_SUFFIXES = (".bak", ".diff", ".trn", ".log")
OBJECT_KEY_MAX_BYTES = 1023
#: Room kept for the file name when validating a prefix on its own.
PREFIX_MAX_BYTES = OBJECT_KEY_MAX_BYTES - 200

_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9]+")
_SAFE_STEM = re.compile(r"[A-Za-z0-9_]+")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_FILE_PART = re.compile(r"[A-Za-z0-9_.]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENDPOINT = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")
_BACKUP_NAME = re.compile(
    r"(?P<stem>[A-Za-z0-9_]+?)_(?P<kind>FULL|DIFF|LOG)_(?P<ts>\d{14})"
    r"(?:_(?P<seq>\d+)|_A(?P<adopted>\d+))?\.(?P<suffix>bak|diff|trn|log)",
    re.IGNORECASE,
)
_WINDOWS_PATH = re.compile(r"^([A-Za-z]:[\\/]|\\\\)")


class InvalidNameError(MigrationError, ValueError):
    """A bucket name, object key, endpoint or file name breaks the OSS / RDS rules."""


def backup_stem(database_name: str) -> str:
    """Return a safe, deterministic file-name stem for any database name.

    ASCII letters and digits are kept, every run of other characters becomes one ``_``, the result
    is capped at :data:`STEM_MAX_CHARS`, and whenever anything was changed a short hash of the exact
    name is appended (so ``Sales DB`` and ``SalesDB`` or ``Sales_DB`` never collide).
    """
    if not database_name:
        raise InvalidNameError("database name is empty: give the source database name")
    if _SAFE_STEM.fullmatch(database_name) and len(database_name) <= STEM_MAX_CHARS:
        return database_name
    readable = _UNSAFE_RUN.sub("_", database_name).strip("_")[:STEM_MAX_CHARS].rstrip("_")
    digest = hashlib.sha256(database_name.encode("utf-8")).hexdigest()[:STEM_HASH_CHARS]
    # A name with no ASCII letters or digits (e.g. all Unicode) still gets a readable prefix.
    return f"{readable or 'db'}_{digest}"


def _kind_name(kind: object) -> str:
    """Map a BackupType, msdb code or name to FULL / DIFF / LOG."""
    name = getattr(kind, "name", kind)
    text = str(name).upper()
    aliases = {"D": "FULL", "I": "DIFF", "L": "LOG", "DATABASE": "FULL", "DIFFERENTIAL": "DIFF"}
    text = aliases.get(text, text)
    if text not in SUFFIX_BY_KIND:
        raise InvalidNameError(f"backup kind {kind!r} is not one of FULL, DIFF, LOG")
    return text


def backup_file_name(database: str, kind: object, taken_at: datetime, seq: int | None = None) -> str:
    """Return ``<stem>_<FULL|DIFF|LOG>_<yyyyMMddHHmmss>[_<seq>].<bak|diff|trn>``.

    ``taken_at`` is formatted as given when naive; an aware datetime is converted to UTC first.
    ``seq`` (>= 0) disambiguates two backups taken within the same second.
    """
    kind_name = _kind_name(kind)
    if taken_at.tzinfo is not None:
        taken_at = taken_at.astimezone(UTC)
    name = f"{backup_stem(database)}_{kind_name}_{taken_at:%Y%m%d%H%M%S}"
    if seq is not None:
        if seq < 0:
            raise InvalidNameError(f"sequence number {seq} is negative: use 0 or more")
        name += f"_{seq}"
    return f"{name}.{SUFFIX_BY_KIND[kind_name]}"


@dataclass(frozen=True)
class ParsedBackupName:
    """The parts of a file name produced by :func:`backup_file_name`."""

    stem: str
    kind: str
    taken_at: datetime
    seq: int | None
    suffix: str
    #: msdb ``backup_set_id`` of another job's backup adopted into the chain (see :func:`adopted_file_name`).
    adopted_set_id: int | None = None


def parse_backup_file_name(name: str) -> ParsedBackupName | None:
    """Parse a backup file name (inverse of :func:`backup_file_name`); ``None`` if it is not one.

    Tolerant: a leading folder (``/`` or ``\\``) is ignored, and type and suffix are case-insensitive.
    """
    base = re.split(r"[\\/]", name)[-1]
    match = _BACKUP_NAME.fullmatch(base)
    if match is None:
        return None
    try:
        taken_at = datetime.strptime(match["ts"], "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return ParsedBackupName(
        stem=match["stem"],
        kind=match["kind"].upper(),
        taken_at=taken_at,
        seq=int(match["seq"]) if match["seq"] is not None else None,
        suffix="." + match["suffix"].lower(),
        adopted_set_id=int(match["adopted"]) if match["adopted"] is not None else None,
    )


def adopted_file_name(database: str, kind: object, taken_at: datetime, backup_set_id: int) -> str:
    """The name another job's backup gets in OSS and RDS when it is adopted into the chain.

    Other jobs name files as they like (Ola Hallengren's names contain ``$``), and RDS refuses special
    characters, so the file is uploaded under ``<stem>_<KIND>_<yyyyMMddHHmmss>_A<backup_set_id>.<suffix>``:
    deterministic (a retry finds it), distinct from our own names, and traceable to its msdb backup set.
    """
    if backup_set_id < 0:
        raise InvalidNameError(f"backup_set_id {backup_set_id} is negative")
    name = backup_file_name(database, kind, taken_at)
    stem, dot, suffix = name.rpartition(".")
    return f"{stem}_A{backup_set_id}{dot}{suffix}"


def path_under(path: str, folder: str) -> str | None:
    """The part of ``path`` below ``folder`` (with ``/`` separators), or None if it is not below it.

    Windows folders compare case-insensitively and with either separator, as Windows does.
    """
    if not folder:
        return None
    if is_windows_path(folder):
        norm_path, norm_folder = path.replace("/", "\\"), folder.replace("/", "\\").rstrip("\\") + "\\"
        if not norm_path.casefold().startswith(norm_folder.casefold()):
            return None
        return norm_path[len(norm_folder) :].replace("\\", "/")
    norm_folder = folder.rstrip("/") + "/"
    return path[len(norm_folder) :] if path.startswith(norm_folder) else None


def validate_bucket_name(name: str) -> str:
    """Return ``name`` if it is a valid OSS bucket name, else raise :class:`InvalidNameError`."""
    if not isinstance(name, str) or not _BUCKET.fullmatch(name):
        raise InvalidNameError(
            f"{name!r} is not a valid OSS bucket name (3-63 chars: lowercase letters, digits, '-', "
            "start and end with a letter or digit)"
        )
    return name


def validate_key_prefix(prefix: str) -> str:
    """Return the prefix normalised to end with ``/`` (or ``""``), or raise :class:`InvalidNameError`."""
    if prefix in ("", None):
        return ""
    if prefix[0] in "/\\":
        raise InvalidNameError(f"OSS key prefix {prefix!r} must not start with '/' or '\\': remove it")
    if "\\" in prefix:
        raise InvalidNameError(f"OSS key prefix {prefix!r} contains '\\': OSS folders are separated by '/'")
    if _CONTROL.search(prefix):
        raise InvalidNameError(f"OSS key prefix {prefix!r} contains control characters: remove them")
    if "//" in prefix:
        raise InvalidNameError(f"OSS key prefix {prefix!r} has an empty folder ('//'): remove it")
    if len(prefix.encode("utf-8")) > PREFIX_MAX_BYTES:
        raise InvalidNameError(f"OSS key prefix is longer than {PREFIX_MAX_BYTES} bytes: shorten it")
    return prefix if prefix.endswith("/") else prefix + "/"


def validate_object_key(key: str) -> str:
    """Return ``key`` if it is a valid OSS object key for an RDS backup import, else raise.

    OSS rules: 1-1023 bytes of UTF-8, no leading ``/`` or ``\\``, no control characters. RDS rules on
    the file part: only ``[A-Za-z0-9_.]`` and a recognised suffix (.bak .diff .trn .log).
    """
    if not key:
        raise InvalidNameError("OSS object key is empty")
    if len(key.encode("utf-8")) > OBJECT_KEY_MAX_BYTES:
        raise InvalidNameError(f"OSS object key {key[:60]!r}... is longer than {OBJECT_KEY_MAX_BYTES} bytes")
    if key[0] in "/\\":
        raise InvalidNameError(f"OSS object key {key!r} must not start with '/' or '\\'")
    if _CONTROL.search(key):
        raise InvalidNameError(f"OSS object key {key!r} contains control characters")
    file_part = key.rsplit("/", 1)[-1]
    if not _FILE_PART.fullmatch(file_part):
        raise InvalidNameError(
            f"file name {file_part!r} in OSS key {key!r} has characters RDS refuses: use only letters, "
            "digits, '_' and '.' (derive names with backup_file_name)"
        )
    if not file_part.lower().endswith(RECOGNISED_SUFFIXES):
        raise InvalidNameError(
            f"file name {file_part!r} has no suffix RDS recognises: "
            f"use one of {', '.join(RECOGNISED_SUFFIXES)}"
        )
    return key


def object_key(prefix: str, file_name: str) -> str:
    """Join a key prefix and a backup file name into a validated OSS object key."""
    return validate_object_key(validate_key_prefix(prefix) + file_name)


def _validate_endpoint(endpoint: str) -> str:
    if "://" in endpoint:
        raise InvalidNameError(
            f"OSS endpoint {endpoint!r} must not include a scheme in OssObjectPositions: "
            "use e.g. 'oss-cn-hangzhou.aliyuncs.com'"
        )
    if not _ENDPOINT.fullmatch(endpoint):
        raise InvalidNameError(
            f"OSS endpoint {endpoint!r} is not a host name (a port or path cannot appear in "
            "OssObjectPositions, which is split on ':'): use e.g. 'oss-cn-hangzhou.aliyuncs.com'"
        )
    return endpoint


def oss_object_position(endpoint: str, bucket: str, key: str) -> str:
    """Return the RDS ``OssObjectPositions`` value ``<endpoint>:<bucket>:<key>``."""
    _validate_endpoint(endpoint)
    validate_bucket_name(bucket)
    validate_object_key(key)
    return f"{endpoint}:{bucket}:{key}"


def parse_oss_object_position(position: str) -> tuple[str, str, str]:
    """Split ``<endpoint>:<bucket>:<key>`` on the first two colons; a leading ``/`` on the key is dropped."""
    parts = position.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise InvalidNameError(f"OssObjectPositions {position!r} is not '<endpoint>:<bucket>:<object-key>'")
    endpoint, bucket, key = parts
    return endpoint, bucket, key.lstrip("/")


def is_windows_path(folder: str) -> bool:
    """True if ``folder`` looks like a Windows path (drive letter, UNC, or backslashes only)."""
    return bool(_WINDOWS_PATH.match(folder)) or ("\\" in folder and "/" not in folder)


def server_backup_path(server_folder: str, file_name: str) -> str:
    """Join the backup folder as the SQL Server host sees it with a file name, using its separator."""
    if not server_folder:
        raise InvalidNameError("backup_folder.server_path is empty: give the folder on the SQL Server host")
    if is_windows_path(server_folder):
        return server_folder.rstrip("\\/") + "\\" + file_name
    return server_folder.rstrip("/") + "/" + file_name


def worker_backup_path(worker_folder: str, file_name: str) -> str:
    """Join the backup folder as the Airflow worker sees it (POSIX) with a file name."""
    if not worker_folder:
        raise InvalidNameError("backup_folder.worker_path is empty: give the folder on the Airflow worker")
    return str(PurePosixPath(worker_folder) / file_name)
