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
VERSION = 1
TRAILER_MAGIC = b"SBXEND\x00\x01"
FILE_HEADER = struct.Struct("<8sHH")  # magic, format version, reserved
FRAME = struct.Struct("<BBI")  # frame type, flags, data length
TRAILER = struct.Struct("<8sQ32s")  # magic, offset of the header frame, SHA-256 of everything before
FRAME_SNAPSHOT, FRAME_LOG, FRAME_PADDING, FRAME_HEADER = 1, 2, 3, 4
FLAG_ZLIB = 1
CHUNK = 1 << 20
_PADDING_BLOCK = os.urandom(CHUNK)  # incompressible filler, repeated


class BackupWriter:
    """Writes one backup set to ``<path>.partial`` and renames it into place on ``finish``."""

    def __init__(self, path: Path, compress: bool, progress: Callable[[int], None]):
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        self.compress = compress
        self.progress = progress
        self.file = open(self.partial, "wb")  # noqa: SIM115 - closed in finish/abort
        self.sha = hashlib.sha256()
        self.raw_bytes = 0  # uncompressed payload bytes (BackupSize)
        self._write(FILE_HEADER.pack(MAGIC, VERSION, 0))

    def _write(self, data: bytes) -> None:
        self.file.write(data)
        self.sha.update(data)

    def frame(self, frame_type: int, data: bytes, compressible: bool = True) -> None:
        flags = 0
        stored = data
        if self.compress and compressible:
            stored, flags = zlib.compress(data, 1), FLAG_ZLIB
        self._write(FRAME.pack(frame_type, flags, len(stored)) + stored)
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

    def finish(self, header: dict) -> int:
        """Write the header frame and trailer; returns the file size on disk."""
        offset = self.file.tell()
        body = b""
        for _ in range(5):  # CompressedBackupSize is the file size, which includes the header itself
            size = offset + FRAME.size + len(body) + TRAILER.size
            header["CompressedBackupSize"] = str(size)
            body = json.dumps(header, sort_keys=True).encode()
            if offset + FRAME.size + len(body) + TRAILER.size == size:
                break
        self._write(FRAME.pack(FRAME_HEADER, 0, len(body)) + body)
        self.file.write(TRAILER.pack(TRAILER_MAGIC, offset, self.sha.digest()))
        self.file.close()
        os.replace(self.partial, self.path)
        return self.path.stat().st_size

    def abort(self) -> None:
        self.file.close()
        self.partial.unlink(missing_ok=True)


def read_header(path: Path, device: str) -> dict:
    """The stored header dict (values as JSON); raises 3241 when the file is not a complete backup."""
    try:
        with open(path, "rb") as f:
            head = f.read(FILE_HEADER.size)
            size = f.seek(0, os.SEEK_END)
            if len(head) < FILE_HEADER.size or size < FILE_HEADER.size + TRAILER.size:
                raise errors.media_incorrectly_formed(device)
            magic, version, _ = FILE_HEADER.unpack(head)
            if magic != MAGIC or version != VERSION:
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
    path: Path,
    device: str,
    database: str,
    snapshot_target: Path | None,
    progress: Callable[[int], None],
    cancel,
) -> list[dict]:
    """Verify the whole file and extract its payload.

    The snapshot is streamed to ``snapshot_target``; the log records are returned. Nothing is applied
    before the checksum over the whole file is verified (3183 on a mismatch).
    """
    records: list[dict] = []
    sha = hashlib.sha256()
    size = path.stat().st_size
    end = size - TRAILER.size
    out = open(snapshot_target, "wb") if snapshot_target else None  # noqa: SIM115
    try:
        with open(path, "rb") as f:
            head = f.read(FILE_HEADER.size)
            sha.update(head)
            for frame_type, data in _frames(f, end, sha, device, database):
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
            _, _, digest = TRAILER.unpack(f.read(TRAILER.size))
        if digest != sha.digest():
            raise errors.restore_page_error(database)
        return records
    finally:
        if out is not None:
            out.close()


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
