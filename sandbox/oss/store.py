"""Objects and multipart uploads on disk, with JSON metadata sidecars.

Layout under ``data_dir``::

    <bucket>/objects/<sha1(key)>.json              metadata sidecar (holds the key and the data file name)
    <bucket>/objects/<sha1(key)>.<version>.data    object bytes (a new version file per write)
    <bucket>/uploads/<upload_id>/upload.json       multipart upload (key, initiation time, headers)
    <bucket>/uploads/<upload_id>/<n>.json          part sidecar; <n>.<version>.data holds the part bytes
    <bucket>/tmp/                                  bodies being received

Every write lands in ``tmp/`` and becomes visible by ``os.replace`` of a sidecar, so a reader sees the
old or the new object, never a mix. A lock guards the in-memory index; other threads (e.g. the RDS
stand-in in the same process) may call :meth:`OssStore.head` and :meth:`OssStore.object_path`.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import pathlib
import threading
import time
import uuid
from collections.abc import Iterable
from typing import IO, Any

from oss2.utils import Crc64

from .config import BucketConfig
from .errors import OssApiError

MIN_PART_SIZE = 100 * 1024
MAX_PART_NUMBER = 10_000
COPY_CHUNK = 1024 * 1024


@dataclasses.dataclass
class ObjectMeta:
    """Metadata of a stored object (what HEAD reports)."""

    key: str
    size: int
    etag: str  # upper-case hex without quotes, "<HEX>-<n>" for multipart objects
    crc64: int
    last_modified: float
    content_type: str
    object_type: str  # "Normal" or "Multipart"
    storage_class: str
    user_meta: dict[str, str]
    data_file: str


class AppendConflict(Exception):
    """AppendObject refused: wrong position, or the object was not created by AppendObject."""

    def __init__(self, code: str, length: int) -> None:
        super().__init__(code)
        self.code = code
        self.length = length


@dataclasses.dataclass
class PartMeta:
    part_number: int
    size: int
    etag: str
    crc64: int
    md5: str  # hex digest, used for the multipart ETag
    last_modified: float
    data_file: str


@dataclasses.dataclass
class UploadMeta:
    upload_id: str
    key: str
    initiated: float
    content_type: str
    user_meta: dict[str, str]
    parts: dict[int, PartMeta] = dataclasses.field(default_factory=dict)


class BodyWriter:
    """Receives a body chunk by chunk into a temp file while computing size, MD5 and CRC64."""

    def __init__(self, tmp_dir: pathlib.Path) -> None:
        self.path = tmp_dir / f"{uuid.uuid4().hex}.tmp"
        self._file: IO[bytes] = open(self.path, "wb")  # noqa: SIM115  (closed by finish/discard)
        self._md5 = hashlib.md5()
        self._crc = Crc64()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._md5.update(chunk)
        self._crc.update(chunk)
        self.size += len(chunk)

    def finish(self) -> None:
        # No fsync: the sandbox needs atomic visibility (rename), not crash durability.
        self._file.close()

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)

    @property
    def md5_hex(self) -> str:
        return self._md5.hexdigest()

    @property
    def md5_base64(self) -> str:
        return base64.b64encode(self._md5.digest()).decode()

    @property
    def crc64(self) -> int:
        return self._crc.crc


class OssStore:
    """Buckets, objects and multipart uploads kept on disk under ``data_dir``."""

    def __init__(self, data_dir: str | os.PathLike[str], buckets: dict[str, BucketConfig]) -> None:
        self.data_dir = pathlib.Path(data_dir)
        self.buckets = dict(buckets)
        self.created_at = time.time()
        self._lock = threading.RLock()
        self._append_lock = threading.Lock()  # one append at a time: position checks stay exact
        self._objects: dict[str, dict[str, ObjectMeta]] = {}
        self._uploads: dict[str, dict[str, UploadMeta]] = {}
        for bucket in self.buckets:
            for sub in ("objects", "uploads", "tmp"):
                (self.data_dir / bucket / sub).mkdir(parents=True, exist_ok=True)
            self._objects[bucket] = self._load_objects(bucket)
            self._uploads[bucket] = self._load_uploads(bucket)

    # --- public read API (also used by other stand-ins) ---------------------------------------------

    def bucket_exists(self, bucket: str) -> bool:
        return bucket in self.buckets

    def head(self, bucket: str, key: str) -> dict[str, Any] | None:
        """``{"size", "crc64", "etag", "last_modified", ...}`` of an object, or ``None`` if absent."""
        meta = self.object_meta(bucket, key)
        if meta is None:
            return None
        return {
            "size": meta.size,
            "crc64": meta.crc64,
            "etag": meta.etag,
            "last_modified": meta.last_modified,
            "content_type": meta.content_type,
            "object_type": meta.object_type,
            "storage_class": meta.storage_class,
        }

    def object_path(self, bucket: str, key: str) -> pathlib.Path | None:
        """Path of the object's current data file (stays readable if the object is replaced later)."""
        meta = self.object_meta(bucket, key)
        return None if meta is None else self._objects_dir(bucket) / meta.data_file

    def object_meta(self, bucket: str, key: str) -> ObjectMeta | None:
        with self._lock:
            return self._objects.get(bucket, {}).get(key)

    def open_object(self, bucket: str, key: str) -> tuple[ObjectMeta, IO[bytes]] | None:
        """Open the object's data for reading; the handle survives a concurrent overwrite or delete."""
        with self._lock:
            meta = self._objects.get(bucket, {}).get(key)
            if meta is None:
                return None
            return meta, open(self._objects_dir(bucket) / meta.data_file, "rb")  # noqa: SIM115

    def list_objects(self, bucket: str) -> list[ObjectMeta]:
        with self._lock:
            return sorted(self._objects[bucket].values(), key=lambda m: m.key)

    # --- object writes ------------------------------------------------------------------------------

    def new_writer(self, bucket: str) -> BodyWriter:
        return BodyWriter(self.data_dir / bucket / "tmp")

    def commit_object(
        self,
        bucket: str,
        key: str,
        writer: BodyWriter,
        *,
        content_type: str = "application/octet-stream",
        user_meta: dict[str, str] | None = None,
    ) -> ObjectMeta:
        """Make a fully received body the current version of ``key`` (atomic)."""
        writer.finish()
        return self._install(
            bucket,
            key,
            writer.path,
            size=writer.size,
            etag=writer.md5_hex.upper(),
            crc64=writer.crc64,
            content_type=content_type,
            object_type="Normal",
            user_meta=user_meta or {},
        )

    def append_object(
        self, bucket: str, key: str, position: int, writer: BodyWriter, *, content_type: str
    ) -> ObjectMeta:
        """AppendObject: the new body goes after the current bytes when ``position`` is their length.

        The object is rewritten whole (old bytes then new): appendable objects here are small ledgers.
        """
        writer.finish()
        with self._append_lock:
            current = self.object_meta(bucket, key)
            length = current.size if current else 0
            if current is not None and current.object_type != "Appendable":
                writer.discard()
                raise AppendConflict("ObjectNotAppendable", length)
            if position != length:
                writer.discard()
                raise AppendConflict("PositionNotEqualToLength", length)
            combined = self.new_writer(bucket)
            try:
                sources = ([self._objects_dir(bucket) / current.data_file] if current else []) + [writer.path]
                for source in sources:
                    with open(source, "rb") as handle:
                        while chunk := handle.read(COPY_CHUNK):
                            combined.write(chunk)
            except BaseException:
                combined.discard()
                raise
            finally:
                writer.discard()
            combined.finish()
            return self._install(
                bucket,
                key,
                combined.path,
                size=combined.size,
                etag=combined.md5_hex.upper(),
                crc64=combined.crc64,
                content_type=current.content_type if current else content_type,
                object_type="Appendable",
                user_meta=current.user_meta if current else {},
            )

    def put_file(self, bucket: str, key: str, source: str | os.PathLike[str]) -> ObjectMeta:
        """Store a local file as an object (seeding helper for tests and other stand-ins)."""
        writer = self.new_writer(bucket)
        try:
            with open(source, "rb") as src:
                while chunk := src.read(COPY_CHUNK):
                    writer.write(chunk)
        except BaseException:
            writer.discard()
            raise
        return self.commit_object(bucket, key, writer)

    def delete_object(self, bucket: str, key: str) -> bool:
        with self._lock:
            meta = self._objects[bucket].pop(key, None)
            if meta is None:
                return False
            self._sidecar(bucket, key).unlink(missing_ok=True)
            (self._objects_dir(bucket) / meta.data_file).unlink(missing_ok=True)
            return True

    def corrupt_object(self, bucket: str, key: str, offset: int = 0) -> None:
        """Flip one byte of the stored data but keep the metadata (simulates silent corruption)."""
        path = self.object_path(bucket, key)
        if path is None:
            raise KeyError(f"no object {key!r} in bucket {bucket!r}")
        with open(path, "r+b") as f:
            f.seek(offset)
            byte = f.read(1)
            if not byte:
                raise ValueError(f"offset {offset} is beyond the end of {key!r}")
            f.seek(offset)
            f.write(bytes([byte[0] ^ 0xFF]))

    # --- multipart ----------------------------------------------------------------------------------

    def create_upload(
        self, bucket: str, key: str, *, content_type: str, user_meta: dict[str, str] | None = None
    ) -> UploadMeta:
        upload = UploadMeta(
            upload_id=uuid.uuid4().hex.upper(),
            key=key,
            initiated=time.time(),
            content_type=content_type,
            user_meta=user_meta or {},
        )
        upload_dir = self._upload_dir(bucket, upload.upload_id)
        upload_dir.mkdir(parents=True)
        fields = {k: v for k, v in dataclasses.asdict(upload).items() if k != "parts"}
        _write_json_atomic(upload_dir / "upload.json", fields)
        with self._lock:
            self._uploads[bucket][upload.upload_id] = upload
        return upload

    def get_upload(self, bucket: str, upload_id: str, key: str | None = None) -> UploadMeta:
        """The upload, or ``NoSuchUpload`` if unknown or (when ``key`` is given) for another key."""
        with self._lock:
            upload = self._uploads[bucket].get(upload_id)
        if upload is None or (key is not None and upload.key != key):
            raise OssApiError("NoSuchUpload", details={"UploadId": upload_id})
        return upload

    def list_uploads(self, bucket: str) -> list[UploadMeta]:
        with self._lock:
            return sorted(self._uploads[bucket].values(), key=lambda u: (u.key, u.initiated, u.upload_id))

    def list_parts(self, bucket: str, upload_id: str) -> list[PartMeta]:
        upload = self.get_upload(bucket, upload_id)
        with self._lock:
            return sorted(upload.parts.values(), key=lambda p: p.part_number)

    def commit_part(self, bucket: str, upload_id: str, part_number: int, writer: BodyWriter) -> PartMeta:
        """Store a received part, replacing an earlier upload of the same part number."""
        upload = self.get_upload(bucket, upload_id)
        writer.finish()
        upload_dir = self._upload_dir(bucket, upload_id)
        data_file = f"{part_number}.{uuid.uuid4().hex}.data"
        part = PartMeta(
            part_number=part_number,
            size=writer.size,
            etag=writer.md5_hex.upper(),
            crc64=writer.crc64,
            md5=writer.md5_hex,
            last_modified=time.time(),
            data_file=data_file,
        )
        with self._lock:
            if upload_id not in self._uploads[bucket]:  # aborted or completed meanwhile
                writer.discard()
                raise OssApiError("NoSuchUpload", details={"UploadId": upload_id})
            os.replace(writer.path, upload_dir / data_file)
            _write_json_atomic(upload_dir / f"{part_number}.json", dataclasses.asdict(part))
            previous = upload.parts.get(part_number)
            upload.parts[part_number] = part
        if previous is not None:
            (upload_dir / previous.data_file).unlink(missing_ok=True)
        return part

    def complete_upload(
        self, bucket: str, upload_id: str, key: str, requested: list[tuple[int, str]] | None
    ) -> ObjectMeta:
        """Assemble the listed parts (``None`` = all parts) into the object; blocking, run in a thread.

        Validates as OSS does: ascending part numbers, known parts with matching ETags, every part but
        the last at least 100 KB.
        """
        upload = self.get_upload(bucket, upload_id, key)
        with self._lock:
            parts_by_number = dict(upload.parts)
        if requested is None:
            requested = [(n, parts_by_number[n].etag) for n in sorted(parts_by_number)]
        if not requested:
            raise OssApiError("MalformedXML", "The CompleteMultipartUpload request lists no parts.")
        chosen = _validate_part_list(requested, parts_by_number)
        upload_dir = self._upload_dir(bucket, upload_id)
        assembled = self.data_dir / bucket / "tmp" / f"{uuid.uuid4().hex}.tmp"
        try:
            _concatenate([upload_dir / part.data_file for part in chosen], assembled)
        except BaseException:
            assembled.unlink(missing_ok=True)
            raise
        # The object's CRC and ETag derive from the parts' (as OSS does), without re-reading the data.
        combiner = Crc64()
        object_crc = 0
        md5_concat = hashlib.md5()
        for part in chosen:
            if part.size:
                object_crc = combiner.combine(object_crc, part.crc64, part.size)
            md5_concat.update(bytes.fromhex(part.md5))
        with self._lock:
            if self._uploads[bucket].pop(upload_id, None) is None:
                assembled.unlink(missing_ok=True)
                raise OssApiError("NoSuchUpload", details={"UploadId": upload_id})
        meta = self._install(
            bucket,
            key,
            assembled,
            size=sum(part.size for part in chosen),
            etag=f"{md5_concat.hexdigest().upper()}-{len(chosen)}",
            crc64=object_crc,
            content_type=upload.content_type,
            object_type="Multipart",
            user_meta=upload.user_meta,
        )
        _remove_tree(upload_dir)
        return meta

    def abort_upload(self, bucket: str, upload_id: str, key: str) -> None:
        self.get_upload(bucket, upload_id, key)
        with self._lock:
            self._uploads[bucket].pop(upload_id, None)
        _remove_tree(self._upload_dir(bucket, upload_id))

    # --- internals ----------------------------------------------------------------------------------

    def _objects_dir(self, bucket: str) -> pathlib.Path:
        return self.data_dir / bucket / "objects"

    def _upload_dir(self, bucket: str, upload_id: str) -> pathlib.Path:
        return self.data_dir / bucket / "uploads" / upload_id

    def _sidecar(self, bucket: str, key: str) -> pathlib.Path:
        # Keys may hold any character: the file name is a digest, the key lives inside the sidecar.
        return (
            self._objects_dir(bucket)
            / f"{hashlib.sha1(key.encode('utf-8', 'surrogatepass')).hexdigest()}.json"
        )

    def _install(self, bucket: str, key: str, tmp_path: pathlib.Path, **fields: Any) -> ObjectMeta:
        sidecar = self._sidecar(bucket, key)
        data_file = f"{sidecar.stem}.{uuid.uuid4().hex}.data"
        meta = ObjectMeta(
            key=key,
            last_modified=time.time(),
            storage_class=self.buckets[bucket].storage_class,
            data_file=data_file,
            **fields,
        )
        with self._lock:
            os.replace(tmp_path, self._objects_dir(bucket) / data_file)
            _write_json_atomic(sidecar, dataclasses.asdict(meta))
            previous = self._objects[bucket].get(key)
            self._objects[bucket][key] = meta
        if previous is not None and previous.data_file != data_file:
            # Open handles keep reading the old bytes (POSIX unlink semantics).
            (self._objects_dir(bucket) / previous.data_file).unlink(missing_ok=True)
        return meta

    def _load_objects(self, bucket: str) -> dict[str, ObjectMeta]:
        objects = {}
        for sidecar in self._objects_dir(bucket).glob("*.json"):
            meta = ObjectMeta(**json.loads(sidecar.read_text()))
            objects[meta.key] = meta
        _clear_dir(self.data_dir / bucket / "tmp")
        return objects

    def _load_uploads(self, bucket: str) -> dict[str, UploadMeta]:
        uploads = {}
        for upload_json in (self.data_dir / bucket / "uploads").glob("*/upload.json"):
            upload = UploadMeta(**json.loads(upload_json.read_text()))
            for part_json in upload_json.parent.glob("[0-9]*.json"):
                part = PartMeta(**json.loads(part_json.read_text()))
                upload.parts[part.part_number] = part
            uploads[upload.upload_id] = upload
        return uploads


def _validate_part_list(requested: list[tuple[int, str]], parts: dict[int, PartMeta]) -> list[PartMeta]:
    numbers = [n for n, _ in requested]
    if numbers != sorted(set(numbers)):
        raise OssApiError("InvalidPartOrder")
    chosen = []
    for number, etag in requested:
        part = parts.get(number)
        if part is None or part.etag.upper() != etag.strip().strip('"').upper():
            raise OssApiError("InvalidPart", details={"PartNumber": str(number), "ETag": etag})
        chosen.append(part)
    for part in chosen[:-1]:
        if part.size < MIN_PART_SIZE:
            raise OssApiError(
                "EntityTooSmall",
                details={
                    "PartNumber": str(part.part_number),
                    "ProposedSize": str(part.size),
                    "MinSizeAllowed": str(MIN_PART_SIZE),
                },
            )
    return chosen


def _concatenate(sources: list[pathlib.Path], target: pathlib.Path) -> None:
    """Stream the source files one after the other into ``target``."""
    with open(target, "wb") as out:
        for source in sources:
            with open(source, "rb") as src:
                while chunk := src.read(COPY_CHUNK):
                    out.write(chunk)


def _write_json_atomic(path: pathlib.Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=True)
    os.replace(tmp, path)


def _clear_dir(directory: pathlib.Path) -> None:
    for leftover in directory.iterdir():
        leftover.unlink(missing_ok=True)


def _remove_tree(directory: pathlib.Path) -> None:
    """Remove an upload folder (it holds only files)."""
    if not directory.exists():
        return
    for path in directory.iterdir():
        path.unlink(missing_ok=True)
    directory.rmdir()


def iter_file(handle: IO[bytes], start: int, length: int, chunk_size: int) -> Iterable[bytes]:
    """Yield ``length`` bytes of ``handle`` from ``start`` in chunks."""
    handle.seek(start)
    remaining = length
    while remaining > 0:
        chunk = handle.read(min(chunk_size, remaining))
        if not chunk:
            break
        remaining -= len(chunk)
        yield chunk
