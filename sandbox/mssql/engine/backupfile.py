"""The sandbox backup file format (see sandbox/mssql/BACKUP_FORMAT.md): streamed frames + header + trailer."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from sandbox.mssql.engine import errors

MAGIC = b"SBXMSBAK"
VERSION = 2  # 2: media families (striped/mirrored backups); version 1 files are still read
READABLE_VERSIONS = (1, 2)
TRAILER_MAGIC = b"SBXEND\x00\x01"
FILE_HEADER = struct.Struct("<8sHH")  # magic, format version, reserved
FRAME = struct.Struct("<BBI")  # frame type, flags, data length
TRAILER = struct.Struct("<8sQ32s")  # magic, offset of the header frame, SHA-256 of everything before
FRAME_SNAPSHOT, FRAME_LOG, FRAME_PADDING, FRAME_HEADER = 1, 2, 3, 4
FLAG_ZLIB = 1
CHUNK = 1 << 20
_PADDING_BLOCK = os.urandom(CHUNK)  # incompressible filler, repeated


class _FamilyFile:
    """One media family: the same bytes go to each of its mirror files (``<path>.partial`` until done)."""

    def __init__(self, paths: list[Path]):
        self.paths = paths
        self.partials = [p.with_name(p.name + ".partial") for p in paths]
        self.files = []
        try:
            for partial in self.partials:
                self.files.append(open(partial, "wb"))  # noqa: SIM115 - closed in finish/abort
        except OSError:
            self.abort()
            raise
        self.sha = hashlib.sha256()
        self.offset = 0

    def write(self, data: bytes) -> None:
        for f in self.files:
            f.write(data)
        self.sha.update(data)
        self.offset += len(data)

    def finish(self, header_frame: bytes, header_offset: int) -> None:
        self.write(header_frame)
        trailer = TRAILER.pack(TRAILER_MAGIC, header_offset, self.sha.digest())
        for f in self.files:
            f.write(trailer)
            f.close()
        for partial, path in zip(self.partials, self.paths, strict=True):
            os.replace(partial, path)

    def abort(self) -> None:
        for f in self.files:
            f.close()
        for partial in self.partials:
            partial.unlink(missing_ok=True)


class BackupWriter:
    """Writes one backup set striped over media families, each family to one file per mirror.

    :param families: ``families[f][m]`` is the file of family ``f + 1`` in mirror ``m``. Frames go to
        the families in turn (frame ``k`` to family ``k % n``), so a reader interleaves them back.
    """

    def __init__(self, families: list[list[Path]], compress: bool, progress: Callable[[int], None]):
        self.compress = compress
        self.progress = progress
        self.families: list[_FamilyFile] = []
        try:
            for paths in families:
                self.families.append(_FamilyFile(paths))
        except OSError:
            self.abort()
            raise
        self.raw_bytes = 0  # uncompressed payload bytes (BackupSize)
        self.frames = 0
        for family in self.families:
            family.write(FILE_HEADER.pack(MAGIC, VERSION, 0))

    def frame(self, frame_type: int, data: bytes, compressible: bool = True) -> None:
        flags = 0
        stored = data
        if self.compress and compressible:
            stored, flags = zlib.compress(data, 1), FLAG_ZLIB
        self.families[self.frames % len(self.families)].write(
            FRAME.pack(frame_type, flags, len(stored)) + stored
        )
        self.frames += 1
        self.raw_bytes += len(data)
        self.progress(len(data))

    def copy_file(self, frame_type: int, source: Path, cancel) -> None:
        with open(source, "rb") as f:
            while chunk := f.read(CHUNK):
                if cancel.is_set():
                    raise errors.backup_aborted()
                self.frame(frame_type, chunk)

    def padding(self, size: int, cancel) -> None:
        while size > 0:
            if cancel.is_set():
                raise errors.backup_aborted()
            chunk = _PADDING_BLOCK[: min(size, CHUNK)]
            self.frame(FRAME_PADDING, chunk, compressible=False)
            size -= len(chunk)

    def finish(self, header: dict, media: dict) -> int:
        """Write each family's header frame and trailer; returns the bytes of one mirror on disk.

        ``media`` is the media-set identity (``media_set_guid``, ``family_count``, ``mirror_count``,
        ``family_ids``); each family's header gets it under ``Sandbox.media`` with its own number.
        ``CompressedBackupSize`` is the size of all families of one mirror, headers included.
        """
        bodies = [b""] * len(self.families)
        total = 0
        for _ in range(8):  # the total includes the headers that state it: iterate to a fixed point
            total = sum(
                f.offset + FRAME.size + len(body) + TRAILER.size
                for f, body in zip(self.families, bodies, strict=True)
            )
            header["CompressedBackupSize"] = str(total)
            new = [
                json.dumps(_family_header(header, media, number), sort_keys=True).encode()
                for number in range(1, len(self.families) + 1)
            ]
            if new == bodies:
                break
            bodies = new
        for family, body in zip(self.families, bodies, strict=True):
            offset = family.offset
            family.finish(FRAME.pack(FRAME_HEADER, 0, len(body)) + body, offset)
        return total

    def abort(self) -> None:
        for family in self.families:
            family.abort()


def _family_header(header: dict, media: dict, number: int) -> dict:
    family = dict(header)
    family["Sandbox"] = dict(header.get("Sandbox", {}))
    family["Sandbox"]["media"] = {
        "media_set_guid": media["media_set_guid"],
        "family_count": media["family_count"],
        "mirror_count": media["mirror_count"],
        "family_sequence_number": number,
        "media_family_id": media["family_ids"][number - 1],
    }
    return family


def media_of(header: dict) -> dict:
    """The media-set identity stored with a header (format 1 files: a single family)."""
    media = dict(header.get("Sandbox", {}).get("media") or {})
    media.setdefault("media_set_guid", header.get("BackupSetGUID"))
    media.setdefault("family_count", 1)
    media.setdefault("mirror_count", 1)
    media.setdefault("family_sequence_number", 1)
    media.setdefault("media_family_id", header.get("BackupSetGUID"))
    return media


def read_header(path: Path, device: str) -> dict:
    """The stored header dict (values as JSON); raises 3241 when the file is not a complete backup."""
    try:
        with open(path, "rb") as f:
            head = f.read(FILE_HEADER.size)
            size = f.seek(0, os.SEEK_END)
            if len(head) < FILE_HEADER.size or size < FILE_HEADER.size + TRAILER.size:
                raise errors.media_incorrectly_formed(device)
            magic, version, _ = FILE_HEADER.unpack(head)
            if magic != MAGIC or version not in READABLE_VERSIONS:
                raise errors.media_incorrectly_formed(device)
            f.seek(size - TRAILER.size)
            trailer_magic, offset, _ = TRAILER.unpack(f.read(TRAILER.size))
            if trailer_magic != TRAILER_MAGIC or not FILE_HEADER.size <= offset < size - TRAILER.size:
                raise errors.media_incorrectly_formed(device)
            f.seek(offset)
            frame_type, _, length = FRAME.unpack(f.read(FRAME.size))
            if frame_type != FRAME_HEADER or offset + FRAME.size + length != size - TRAILER.size:
                raise errors.media_incorrectly_formed(device)
            return json.loads(f.read(length))
    except (OSError, ValueError, struct.error) as e:
        if isinstance(e, FileNotFoundError):
            raise errors.cannot_open_device(device, 2, "The system cannot find the file specified.") from e
        raise errors.media_incorrectly_formed(device) from e


def read_payload(
    families: list[tuple[Path, str]],
    database: str,
    snapshot_target: Path | None,
    progress: Callable[[int], None],
    cancel,
) -> list[dict]:
    """Verify every family file and extract the payload of one backup set.

    ``families`` are ``(local path, device name)`` in family order. Frames are read back in turn from
    the families, as the writer spread them. The snapshot is streamed to ``snapshot_target``; the log
    records are returned. Nothing is applied before the checksum of every file is verified (3183).
    """
    records: list[dict] = []
    out = open(snapshot_target, "wb") if snapshot_target else None  # noqa: SIM115
    readers: list[_FamilyReader] = []
    try:
        for path, device in families:
            readers.append(_FamilyReader(path, device, database))
        turn = 0
        while True:
            item = readers[turn % len(readers)].next_frame()
            if item is None:
                break
            turn += 1
            frame_type, data = item
            if cancel.is_set():
                raise errors.backup_aborted()
            progress(len(data))
            if frame_type == FRAME_SNAPSHOT and out is not None:
                out.write(data)
            elif frame_type == FRAME_LOG:
                try:
                    records.extend(json.loads(line) for line in data.splitlines() if line)
                except ValueError as e:
                    raise errors.restore_page_error(database) from e
        for reader in readers:
            if reader.next_frame() is not None:  # a family holds frames past the end of the set
                raise errors.restore_page_error(database)
            reader.verify()
        return records
    finally:
        for reader in readers:
            reader.close()
        if out is not None:
            out.close()


class _FamilyReader:
    """Frames of one family file, checksummed as they are read."""

    def __init__(self, path: Path, device: str, database: str):
        self.device, self.database = device, database
        self.sha = hashlib.sha256()
        self.end = path.stat().st_size - TRAILER.size
        self.file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.sha.update(self.file.read(FILE_HEADER.size))
        self.frames = _frames(self.file, self.end, self.sha, device, database)

    def next_frame(self) -> tuple[int, bytes] | None:
        return next(self.frames, None)

    def verify(self) -> None:
        _, _, digest = TRAILER.unpack(self.file.read(TRAILER.size))
        if digest != self.sha.digest():
            raise errors.restore_page_error(self.database)

    def close(self) -> None:
        self.file.close()


def _frames(f, end: int, sha, device: str, database: str) -> Iterator[tuple[int, bytes]]:
    while f.tell() < end:
        raw = f.read(FRAME.size)
        if len(raw) < FRAME.size:
            raise errors.media_incorrectly_formed(device)
        sha.update(raw)
        frame_type, flags, length = FRAME.unpack(raw)
        if f.tell() + length > end:
            raise errors.restore_page_error(database)
        data = f.read(length)
        sha.update(data)
        if frame_type == FRAME_HEADER:
            continue
        if flags & FLAG_ZLIB:
            try:
                data = zlib.decompress(data)
            except zlib.error as e:
                raise errors.restore_page_error(database) from e
        yield frame_type, data
