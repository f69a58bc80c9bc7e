"""OSS hook for the migration: bucket checks, verified resumable uploads, the JSON-lines ledger, cleanup.

Thin layer over ``oss2``: the hook owns credentials, endpoint, retries and CRC64 verification.
Nothing connects in ``__init__``; the auth object and HTTP session are built on first use.
"""

from __future__ import annotations

import concurrent.futures
import functools
import ipaddress
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import oss2
import oss2.exceptions as oss_exc
from airflow.sdk import BaseHook

from hooks._retry import RetryPolicy, call_with_retries
from rds_migration.ledger import LedgerEntry, format_ledger, parse_ledger

log = logging.getLogger(__name__)

MiB = 1024 * 1024
#: Storage class RDS can import from.
REQUIRED_STORAGE_CLASS = "Standard"
#: Error codes OSS uses when it throttles or is briefly unavailable.
TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeout",
        "TotalQpsLimitExceeded",
        "QpsLimitExceeded",
        "UploadTrafficRateLimitExceeded",
        "DownloadTrafficRateLimitExceeded",
        "SlowDown",
        "Throttling",
    }
)
#: Minimum seconds between two upload progress lines.
PROGRESS_LOG_INTERVAL = 5.0
_CRC_CHUNK = 4 * MiB
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


class OssMigrationError(Exception):
    """An OSS call failed or an upload could not be verified. The message says what to do.

    :param message: what failed and what to do.
    :param code: OSS error code (e.g. ``AccessDenied``), or a local one (``CrcMismatch``).
    :param request_id: OSS request id, for a support ticket.
    """

    def __init__(self, message: str, *, code: str = "", request_id: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id


_ADVICE = {
    "AccessDenied": "the credentials lack permission: grant the RAM user AliyunOSSFullAccess "
    "(or read/write on this bucket)",
    "InvalidAccessKeyId": "the AccessKey id is unknown: check access_key_id of the Airflow connection",
    "SignatureDoesNotMatch": "the AccessKey secret does not match: check access_key_secret of the Airflow "
    "connection (and the region for V4 signing)",
    "NoSuchBucket": "the bucket does not exist in this region: create it (Standard class, no encryption, "
    "same region as the RDS instance) or fix the bucket name/endpoint",
    "NoSuchKey": "the object does not exist: check the key",
    "ObjectNotAppendable": "the ledger object was not written by AppendObject: move it or use another key",
    "InvalidObjectName": "the object key is invalid: derive keys with rds_migration.naming.object_key",
    "EntityTooLarge": "the object is too large for a simple upload: lower multipart_threshold",
    "CrcMismatch": "the CRC64 OSS computed differs from the data sent (corrupted in transit): upload again",
}


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: network errors, 5xx, throttling (429/503); not 4xx (AccessDenied)."""
    if isinstance(exc, oss_exc.RequestError):
        return True
    if isinstance(exc, oss_exc.OssError):
        status = exc.status or 0
        return status >= 500 or status == 429 or exc.code in TRANSIENT_CODES
    return isinstance(exc, ConnectionError | TimeoutError)


def describe(exc: BaseException) -> str:
    """Short, secret-free description of an oss2 error (code, status, request id)."""
    if isinstance(exc, oss_exc.RequestError):
        return f"network error ({type(getattr(exc, 'exception', exc)).__name__})"
    if isinstance(exc, oss_exc.OssError):
        text = f"{exc.code or type(exc).__name__} (HTTP {exc.status})"
        if exc.message:
            text += f": {exc.message}"
        if exc.request_id:
            text += f" [request id {exc.request_id}]"
        return text
    return type(exc).__name__


def map_error(exc: BaseException, action: str) -> OssMigrationError:
    """Wrap an oss2 error in :class:`OssMigrationError` with the action, the code and the fix.

    :param exc: the error raised by oss2.
    :param action: what the hook was doing.
    """
    code = getattr(exc, "code", "") or ""
    if isinstance(exc, oss_exc.InconsistentError):
        code = "CrcMismatch"
    advice = _ADVICE.get(code)
    if advice is None and is_transient(exc):
        advice = "the service or network kept failing after retries: try again later"
    message = f"{action} failed: {describe(exc)}"
    if advice:
        message += f" — {advice}"
    return OssMigrationError(
        message, code=code or type(exc).__name__, request_id=getattr(exc, "request_id", "")
    )


def file_crc64(path: str | os.PathLike[str], chunk_size: int = _CRC_CHUNK) -> int:
    """Return the CRC64-ECMA of a local file (OSS's ``x-oss-hash-crc64ecma``), streamed in chunks.

    :param path: local file.
    :param chunk_size: bytes read at a time.
    """
    crc = oss2.utils.Crc64(0)
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            crc.update(chunk)
    return crc.crc


@dataclass(frozen=True)
class BucketFacts:
    """What the migration needs to know about a bucket."""

    name: str
    location: str
    storage_class: str
    sse_algorithm: str | None
    extranet_endpoint: str
    intranet_endpoint: str

    @property
    def region(self) -> str:
        """Region id from the location, e.g. ``cn-hangzhou`` from ``oss-cn-hangzhou``."""
        return self.location.removeprefix("oss-")


@dataclass(frozen=True)
class ObjectFacts:
    """Size and integrity facts of one object (from HEAD)."""

    key: str
    size: int
    crc64: int | None
    etag: str
    last_modified: int | None = None


@dataclass(frozen=True)
class UploadResult:
    """Outcome of :meth:`OssMigrationHook.upload_file`.

    ``skipped`` is True when the object was already there with the same size and CRC64 (nothing sent).
    """

    key: str
    size: int
    crc64: int
    seconds: float
    mb_per_s: float
    skipped: bool


class _AlibabaDefaultChainProvider(oss2.credentials.CredentialsProvider):
    """oss2 credentials provider backed by alibabacloud-credentials' default chain (env, RAM role, STS)."""

    def __init__(self) -> None:
        from alibabacloud_credentials.client import Client as CredentialClient

        self._client = CredentialClient()

    def get_credentials(self) -> oss2.credentials.Credentials:
        model = self._client.get_credential()
        return oss2.credentials.Credentials(
            model.access_key_id, model.access_key_secret, model.security_token or ""
        )

    def __repr__(self) -> str:
        return "<AlibabaDefaultChainProvider>"


class _Progress:
    """Upload progress to the log (at most every few seconds) and to an optional callback."""

    def __init__(self, key: str, total: int, on_progress: Callable[[int, int], None] | None) -> None:
        self.key = key
        self.total = total
        self.on_progress = on_progress
        self.started = time.monotonic()
        self.last_logged = self.started

    def __call__(self, consumed: int, total: int | None) -> None:
        total = total or self.total
        if self.on_progress is not None:
            self.on_progress(consumed, total)
        now = time.monotonic()
        if now - self.last_logged < PROGRESS_LOG_INTERVAL and consumed < total:
            return
        self.last_logged = now
        elapsed = max(now - self.started, 1e-6)
        rate = consumed / elapsed
        eta = (total - consumed) / rate if rate > 0 else float("inf")
        log.info(
            "Uploading %s: %.1f of %.1f MB (%.0f%%), %.1f MB/s, ETA %.0f s",
            self.key,
            consumed / 1e6,
            total / 1e6,
            100.0 * consumed / total if total else 100.0,
            rate / 1e6,
            eta,
        )


def _is_loopback(endpoint: str) -> bool:
    host = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}").hostname or ""
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OssMigrationHook(BaseHook):
    """OSS access for the migration (conn_type ``oss``).

    Connection extras (the Alibaba provider's shape): ``auth_type`` ``"AK"``, ``access_key_id``,
    ``access_key_secret`` (login/password as fallback), ``region`` (required), optional ``endpoint``
    (e.g. ``http://127.0.0.1:9000`` or an internal endpoint), optional ``signature_version`` ``"v1"``.
    With no key pair, the Alibaba default credential chain is used (env, ECS RAM role, STS).

    :param oss_conn_id: Airflow connection id.
    :param retry: retry policy for transient errors (5xx, throttling, network).
    :param connect_timeout: seconds for connect and each read.
    """

    conn_name_attr = "oss_conn_id"
    default_conn_name = "oss_default"
    conn_type = "oss"
    hook_name = "Alibaba Cloud OSS (RDS migration)"

    def __init__(
        self,
        oss_conn_id: str = default_conn_name,
        *,
        retry: RetryPolicy | None = None,
        connect_timeout: float = 60.0,
    ) -> None:
        super().__init__()
        self.oss_conn_id = oss_conn_id
        self.retry = retry or RetryPolicy()
        self.connect_timeout = connect_timeout

    def __repr__(self) -> str:
        return f"<{type(self).__name__} oss_conn_id={self.oss_conn_id!r}>"

    # ---- client -------------------------------------------------------------------------------

    @functools.cached_property
    def _settings(self) -> dict[str, Any]:
        conn = self.get_connection(self.oss_conn_id)
        extra = conn.extra_dejson
        region = extra.get("region")
        if not region:
            raise OssMigrationError(
                f"connection {self.oss_conn_id!r} has no 'region' extra: set it, e.g. \"cn-hangzhou\""
            )
        endpoint = extra.get("endpoint") or f"https://oss-{region}.aliyuncs.com"
        return {
            "region": region,
            "endpoint": endpoint,
            "access_key_id": extra.get("access_key_id") or conn.login or "",
            "access_key_secret": extra.get("access_key_secret") or conn.password or "",
            "security_token": extra.get("security_token") or "",
            "v1": str(extra.get("signature_version", "v4")).lower() == "v1",
        }

    @property
    def region(self) -> str:
        """Region id of the connection, e.g. ``cn-hangzhou``."""
        return self._settings["region"]

    @property
    def endpoint(self) -> str:
        """Endpoint URL used for requests."""
        return self._settings["endpoint"]

    @functools.cached_property
    def _auth(self) -> Any:
        s = self._settings
        ak, sk, token = s["access_key_id"], s["access_key_secret"], s["security_token"]
        if ak and sk:
            if token:
                version = oss2.AUTH_VERSION_1 if s["v1"] else oss2.AUTH_VERSION_4
                return oss2.StsAuth(ak, sk, token, auth_version=version)
            return oss2.Auth(ak, sk) if s["v1"] else oss2.AuthV4(ak, sk)
        if ak or sk:
            raise OssMigrationError(
                f"connection {self.oss_conn_id!r} has only half of the AccessKey pair: "
                "set both access_key_id and access_key_secret, or neither to use the default credential chain"
            )
        provider = _AlibabaDefaultChainProvider()
        return oss2.ProviderAuth(provider) if s["v1"] else oss2.ProviderAuthV4(provider)

    @functools.cached_property
    def _session(self) -> oss2.Session:
        session = oss2.Session()
        if _is_loopback(self.endpoint):
            # Local endpoints (the sandbox) never go through HTTP(S)_PROXY.
            session.session.trust_env = False
        return session

    def get_bucket(self, bucket: str) -> oss2.Bucket:
        """Return an ``oss2.Bucket`` for ``bucket`` (no request is sent).

        :param bucket: bucket name.
        """
        try:
            return oss2.Bucket(
                self._auth,
                self.endpoint,
                bucket,
                session=self._session,
                connect_timeout=self.connect_timeout,
                region=self.region,
            )
        except oss_exc.ClientError as e:
            raise OssMigrationError(
                f"bucket name {bucket!r} is invalid: {e.message or e}", code="InvalidBucketName"
            ) from e

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return call_with_retries(
                fn, what=what, policy=self.retry, is_transient=is_transient, describe=describe
            )
        except oss_exc.OssError as e:
            raise map_error(e, what) from e

    # ---- bucket -------------------------------------------------------------------------------

    def bucket_facts(self, bucket: str) -> BucketFacts:
        """Return location, storage class and encryption of a bucket.

        :param bucket: bucket name.
        """
        info = self._call(f"reading bucket info of {bucket!r}", self.get_bucket(bucket).get_bucket_info)
        sse = getattr(info, "bucket_encryption_rule", None)
        algorithm = getattr(sse, "sse_algorithm", None) if sse is not None else None
        if algorithm in ("", "None"):
            algorithm = None
        return BucketFacts(
            name=info.name,
            location=info.location or "",
            storage_class=info.storage_class or "",
            sse_algorithm=algorithm,
            extranet_endpoint=info.extranet_endpoint or "",
            intranet_endpoint=info.intranet_endpoint or "",
        )

    def check_bucket(self, bucket: str, rds_region: str) -> list[str]:
        """Return the problems that stop RDS importing from this bucket (empty list: fit).

        :param bucket: bucket name.
        :param rds_region: region id of the RDS instance, e.g. ``cn-hangzhou``.
        """
        try:
            facts = self.bucket_facts(bucket)
        except OssMigrationError as e:
            if e.code == "NoSuchBucket":
                return [
                    f"bucket {bucket!r} does not exist: create it in {rds_region} with storage class "
                    "Standard and no server-side encryption"
                ]
            raise
        problems = []
        if facts.storage_class != REQUIRED_STORAGE_CLASS:
            problems.append(
                f"bucket {bucket!r} has storage class {facts.storage_class}: RDS imports only from Standard; "
                "use a Standard bucket"
            )
        if facts.sse_algorithm:
            problems.append(
                f"bucket {bucket!r} has server-side encryption ({facts.sse_algorithm}): RDS cannot import "
                "encrypted backups; turn encryption off or use another bucket"
            )
        if facts.region != rds_region:
            problems.append(
                f"bucket {bucket!r} is in {facts.region}, the RDS instance in {rds_region}: use a bucket in "
                f"{rds_region}"
            )
        return problems

    # ---- objects ------------------------------------------------------------------------------

    def object_facts(self, bucket: str, key: str) -> ObjectFacts | None:
        """Return size, CRC64 and ETag of an object (HEAD), or None if it does not exist.

        :param bucket: bucket name.
        :param key: object key.
        """
        b = self.get_bucket(bucket)
        try:
            meta = call_with_retries(
                lambda: b.head_object(key),
                what=f"HEAD oss://{bucket}/{key}",
                policy=self.retry,
                is_transient=is_transient,
                describe=describe,
            )
        except oss_exc.NotFound as e:
            if isinstance(e, oss_exc.NoSuchBucket) or e.code == "NoSuchBucket":
                raise map_error(e, f"HEAD oss://{bucket}/{key}") from e
            return None
        except oss_exc.OssError as e:
            raise map_error(e, f"HEAD oss://{bucket}/{key}") from e
        crc = meta.headers.get("x-oss-hash-crc64ecma")
        return ObjectFacts(
            key=key,
            size=int(meta.content_length or 0),
            crc64=int(crc) if crc else None,
            etag=(meta.etag or "").strip('"'),
            last_modified=meta.last_modified,
        )

    def upload_file(
        self,
        bucket: str,
        local_path: str | os.PathLike[str],
        key: str,
        *,
        checkpoint_dir: str | os.PathLike[str],
        multipart_threshold: int = 64 * MiB,
        part_size: int | None = None,
        num_threads: int = 4,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> UploadResult:
        """Upload a file, resumably, and verify the object's CRC64 against the local file.

        An object already there with the same size and CRC64 is not sent again (``skipped``). Above
        ``multipart_threshold`` parts go in parallel; an interrupted upload resumes from the checkpoint in
        ``checkpoint_dir`` and sends only the missing parts. Transient errors are retried with backoff.

        :param bucket: bucket name.
        :param local_path: file on this worker.
        :param key: object key.
        :param checkpoint_dir: folder for resumable-upload checkpoints (keep it across retries).
        :param multipart_threshold: size in bytes from which multipart upload is used.
        :param part_size: part size in bytes (None: oss2 picks one, at most 10,000 parts).
        :param num_threads: parallel part uploads.
        :param on_progress: called with ``(bytes_sent, total_bytes)``.
        :raises OssMigrationError: the upload failed, or the object's CRC64 differs (``code="CrcMismatch"``).
        """
        path = os.fspath(local_path)
        try:
            size = os.path.getsize(path)
        except OSError as e:
            raise OssMigrationError(
                f"cannot read {path!r} on this worker: {e.strerror}; route the task to a worker that sees "
                "the backup folder (queue) and check worker_path",
                code="LocalFileMissing",
            ) from e
        started = time.monotonic()
        existing = self.object_facts(bucket, key)
        # The local CRC64 is needed either to skip (same size: compare now) or to verify the upload:
        # in that case it is computed while the parts are being sent.
        local_crc = file_crc64(path) if existing is not None and existing.size == size else None
        if existing is not None and existing.crc64 == local_crc:
            log.info(
                "oss://%s/%s already holds this file (%d bytes, same CRC64): not sent again",
                bucket,
                key,
                size,
            )
            return UploadResult(key, size, local_crc, time.monotonic() - started, 0.0, skipped=True)
        if existing is not None:
            log.info("oss://%s/%s exists but differs from the local file: uploading it again", bucket, key)
        os.makedirs(checkpoint_dir, exist_ok=True)
        b = self.get_bucket(bucket)
        store = oss2.ResumableStore(root=os.fspath(checkpoint_dir))
        progress = _Progress(key, size, on_progress)
        log.info("Uploading %s (%d bytes) to oss://%s/%s", path, size, bucket, key)
        send_started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as crc_worker:
            pending_crc = crc_worker.submit(file_crc64, path) if local_crc is None else None
            self._call(
                f"upload of {path!r} to oss://{bucket}/{key}",
                lambda: oss2.resumable_upload(
                    b,
                    key,
                    path,
                    store=store,
                    multipart_threshold=multipart_threshold,
                    part_size=part_size,
                    progress_callback=progress,
                    num_threads=num_threads,
                ),
            )
            seconds = time.monotonic() - send_started
            if pending_crc is not None:
                local_crc = pending_crc.result()
        uploaded = self.object_facts(bucket, key)
        if uploaded is None:
            raise OssMigrationError(
                f"oss://{bucket}/{key} is missing right after its upload: upload it again",
                code="ObjectMissing",
            )
        if uploaded.crc64 is None:
            raise OssMigrationError(
                f"oss://{bucket}/{key} has no x-oss-hash-crc64ecma header, so the upload cannot be verified: "
                "check the endpoint is a real OSS endpoint",
                code="CrcMissing",
            )
        if uploaded.size != size or uploaded.crc64 != local_crc:
            raise OssMigrationError(
                f"oss://{bucket}/{key} does not match {path!r}: size {uploaded.size} vs {size}, CRC64 "
                f"{uploaded.crc64} vs {local_crc}; the upload does not count — upload it again",
                code="CrcMismatch",
            )
        rate = size / 1e6 / seconds if seconds > 0 else 0.0
        log.info(
            "Uploaded oss://%s/%s: %d bytes in %.1f s (%.1f MB/s), CRC64 verified",
            bucket,
            key,
            size,
            seconds,
            rate,
        )
        return UploadResult(key, size, local_crc, time.monotonic() - started, rate, skipped=False)

    # ---- ledger -------------------------------------------------------------------------------

    def append_ledger(
        self, bucket: str, key: str, entries: Iterable[LedgerEntry], *, max_races: int = 5
    ) -> int:
        """Append ledger entries (JSON lines) with AppendObject; return the ledger's new length in bytes.

        The position comes from HEAD; if another writer appended meanwhile (PositionNotEqualToLength),
        the position is read again.

        :param bucket: bucket name.
        :param key: ledger object key (e.g. ``<prefix>/ledger.jsonl``).
        :param entries: entries to append, in order.
        :param max_races: how many lost races with another writer are tolerated.
        """
        data = format_ledger(list(entries)).encode("utf-8")
        if not data:
            facts = self.object_facts(bucket, key)
            return facts.size if facts else 0
        b = self.get_bucket(bucket)
        what = f"append to ledger oss://{bucket}/{key}"
        for _ in range(max_races + 1):
            facts = self.object_facts(bucket, key)
            position = facts.size if facts else 0
            try:
                result = call_with_retries(
                    lambda position=position: b.append_object(key, position, data),
                    what=what,
                    policy=self.retry,
                    is_transient=is_transient,
                    describe=describe,
                )
            except oss_exc.PositionNotEqualToLength:
                log.info("Ledger oss://%s/%s grew meanwhile: reading its length again", bucket, key)
                continue
            except oss_exc.OssError as e:
                raise map_error(e, what) from e
            return int(result.next_position)
        raise OssMigrationError(
            f"{what} lost {max_races + 1} races with another writer: make sure one task writes at a time",
            code="PositionNotEqualToLength",
        )

    def read_ledger(self, bucket: str, key: str) -> list[LedgerEntry]:
        """Return the ledger entries (empty list if the ledger does not exist yet).

        :param bucket: bucket name.
        :param key: ledger object key.
        """
        b = self.get_bucket(bucket)
        what = f"reading ledger oss://{bucket}/{key}"
        try:
            text = call_with_retries(
                lambda: b.get_object(key).read(),
                what=what,
                policy=self.retry,
                is_transient=is_transient,
                describe=describe,
            )
        except oss_exc.NoSuchKey:
            return []
        except oss_exc.OssError as e:
            raise map_error(e, what) from e
        return parse_ledger(text.decode("utf-8"), source=f"oss://{bucket}/{key}")

    # ---- cleanup ------------------------------------------------------------------------------

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under ``prefix`` (a folder: it must end with ``/``); return how many.

        :param bucket: bucket name.
        :param prefix: key prefix, e.g. ``backups/Sales/``; an empty prefix is refused.
        """
        if not prefix or not prefix.endswith("/") or prefix.startswith("/"):
            raise ValueError(
                f"refusing to delete under prefix {prefix!r}: give a folder such as 'backups/Sales/' "
                "(not empty, ending with '/')"
            )
        b = self.get_bucket(bucket)
        keys = self._call(
            f"listing oss://{bucket}/{prefix}",
            lambda: [obj.key for obj in oss2.ObjectIteratorV2(b, prefix=prefix)],
        )
        deleted = 0
        for key in keys:
            if not key.startswith(prefix):  # never outside the prefix, whatever the listing says
                log.warning("Listing of %r returned %r outside the prefix: not deleted", prefix, key)
                continue
            self._call(f"deleting oss://{bucket}/{key}", lambda key=key: b.delete_object(key))
            deleted += 1
        log.info("Deleted %d object(s) under oss://%s/%s", deleted, bucket, prefix)
        return deleted
