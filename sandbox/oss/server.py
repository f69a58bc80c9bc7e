"""The OSS stand-in: an aiohttp server that answers the subset of the OSS API the migration uses.

Run it in-process with :class:`ThreadedOssServer` (tests), or on a shared event loop with
:func:`start_server` / :func:`serve` (one process hosting several stand-ins).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import email.utils
import ipaddress
import logging
import socket
import struct
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, unquote
from xml.etree import ElementTree

from aiohttp import web

from . import auth, xmlgen
from .config import OssConfig
from .errors import OssApiError
from .faults import ConnectionResetFault, FaultInjector, Pacer, RequestRecord
from .store import MAX_PART_NUMBER, AppendConflict, BodyWriter, OssStore, iter_file

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
MAX_PUT_SIZE = 5 * 1024**3
MAX_KEY_BYTES = 1023
MAX_XML_BODY = 8 * 1024 * 1024
# Query parameters that select another API than plain object/bucket access; unknown ones -> 501.
_HANDLED_SUBRESOURCES = frozenset(
    {
        "uploads",
        "uploadId",
        "partNumber",
        "bucketInfo",
        "location",
        "continuation-token",
        "append",
        "position",
    }
)
_IGNORED_SUBRESOURCES = frozenset(
    {
        "response-content-type",
        "response-content-language",
        "response-cache-control",
        "response-content-encoding",
        "response-expires",
        "response-content-disposition",
        "security-token",
        "x-oss-request-payer",
        "x-oss-traffic-limit",
    }
)


@dataclasses.dataclass
class OssState:
    """What the handlers share: config, store, faults."""

    config: OssConfig
    store: OssStore
    faults: FaultInjector


STATE_KEY = web.AppKey("oss_state", OssState)


@dataclasses.dataclass
class Call:
    """One request, parsed: who handles it and what it addresses."""

    request: web.Request
    state: OssState
    record: RequestRecord
    request_id: str
    operation: str
    bucket: str | None
    key: str
    params: dict[str, str]
    reset_mid_body: bool = False

    @property
    def store(self) -> OssStore:
        return self.state.store

    @property
    def faults(self) -> FaultInjector:
        return self.state.faults


Handler = Callable[[Call], Awaitable[web.StreamResponse]]


# --- app ----------------------------------------------------------------------------------------------


async def create_app(config: OssConfig) -> web.Application:
    """The aiohttp application serving ``config``; its state is ``app[STATE_KEY]``."""
    app = web.Application(client_max_size=MAX_XML_BODY)
    app[STATE_KEY] = OssState(
        config=config,
        store=OssStore(config.data_dir, config.buckets),
        faults=FaultInjector(config.faults),
    )
    app.router.add_route("*", "/{tail:.*}", _dispatch)
    return app


async def _dispatch(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    request_id = uuid.uuid4().hex[:24].upper()
    raw_path, _, raw_query = request.raw_path.partition("?")
    query = parse_qsl(raw_query, keep_blank_values=True, errors="surrogateescape")
    params = dict(query)
    record = RequestRecord(
        method=request.method, path=raw_path, query=params, operation="", bucket=None, key=""
    )
    response: web.StreamResponse | None = None
    try:
        bucket, key = _address(request, raw_path, state)
        record.bucket, record.key = bucket, key
        call = Call(
            request,
            state,
            record,
            request_id,
            _operation(request.method, bucket, key, params),
            bucket,
            key,
            params,
        )
        record.operation = call.operation
        response = await _handle(call, query)
    except OssApiError as error:
        await _drain(request, record)
        response = _error_response(request, error, request_id, record)
    except ConnectionResetFault:
        response = web.Response(status=500)  # never reaches the client: the transport is gone
    except (ConnectionResetError, asyncio.CancelledError) as error:
        # The client went away mid-request (a killed worker): not a stand-in failure. Status 0 in the
        # request log means "cut before an answer", as for injected resets.
        log.info("OSS sandbox: client left during %s %s (%s)", request.method, raw_path, type(error).__name__)
        record.fault = record.fault or "client_disconnect"
        response = web.Response(status=400)  # never reaches the client: the transport is gone
    except Exception as error:  # a stand-in bug must still answer like OSS, and be visible in the log
        log.exception("OSS sandbox failed on %s %s", request.method, raw_path)
        response = _error_response(request, OssApiError("InternalError", str(error)), request_id, record)
    finally:
        if response is not None and record.fault not in ("reset", "client_disconnect"):
            record.status = response.status
        state.faults.log(record)
    response.headers["x-oss-request-id"] = request_id
    response.headers["Server"] = "AliyunOSS"
    return response


async def _handle(call: Call, query: list[tuple[str, str]]) -> web.StreamResponse:
    latency = call.faults.latency_seconds()
    if latency:
        await asyncio.sleep(latency)
    fault = call.faults.draw_request_fault(call.operation)
    if isinstance(fault, OssApiError):
        call.record.fault = fault.code
        raise fault
    if fault == "reset":
        await _reset_connection(call)
    signed = auth.SignedRequest(call.request.method, call.bucket, call.key, query, call.request.headers)
    auth.verify(signed, call.state.config.accounts)
    if call.bucket is not None and not call.store.bucket_exists(call.bucket):
        raise OssApiError("NoSuchBucket", details={"BucketName": call.bucket})
    if call.key and len(call.key.encode("utf-8", "surrogateescape")) > MAX_KEY_BYTES:
        raise OssApiError("InvalidObjectName")
    handler = HANDLERS.get(call.operation)
    if handler is None:
        raise OssApiError("NotImplemented", f"The OSS sandbox does not implement {call.operation}.")
    return await handler(call)


def _address(request: web.Request, raw_path: str, state: OssState) -> tuple[str | None, str]:
    """(bucket, key) from a path-style or virtual-host-style request."""
    path = unquote(raw_path, errors="surrogateescape")
    host = (request.host or "").rsplit(":", 1)[0]
    first_label = host.split(".", 1)[0]
    if "." in host and not _is_ip(host) and first_label in state.config.buckets:
        return first_label, path[1:]
    # Path style: oss2 percent-encodes '/' in keys, so split on the decoded path's first '/'.
    bucket, _, key = path[1:].partition("/")
    return (bucket or None), key


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _operation(method: str, bucket: str | None, key: str, params: dict[str, str]) -> str:
    """The OSS API name of a request (also what the request log and fault filters use)."""
    if bucket is None:
        return "ListBuckets" if method == "GET" else f"Unsupported:{method} /"
    extra = set(params) - _HANDLED_SUBRESOURCES - _IGNORED_SUBRESOURCES
    subresources = extra & auth.V1_SUBRESOURCES
    if subresources:
        return f"Unsupported:{method}?{','.join(sorted(subresources))}"
    if not key:
        if method != "GET":
            return f"Unsupported:{method} bucket"
        if "bucketInfo" in params:
            return "GetBucketInfo"
        if "location" in params:
            return "GetBucketLocation"
        if "uploads" in params:
            return "ListMultipartUploads"
        return "ListObjectsV2" if params.get("list-type") == "2" else "ListObjects"
    if "uploadId" in params:
        by_method = {"PUT": "UploadPart", "GET": "ListParts", "POST": "CompleteMultipartUpload"}
        return by_method.get(
            method, "AbortMultipartUpload" if method == "DELETE" else f"Unsupported:{method}"
        )
    if method == "POST" and "uploads" in params:
        return "InitiateMultipartUpload"
    if method == "POST" and "append" in params:
        return "AppendObject"
    by_method = {"PUT": "PutObject", "GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}
    return by_method.get(method, f"Unsupported:{method}")


# --- body streaming, faults -------------------------------------------------------------------------


async def _receive_body(call: Call, writer: BodyWriter) -> None:
    """Stream the request body into ``writer`` under the bandwidth cap; honour a pending reset."""
    request = call.request
    pacer = Pacer(call.faults.bandwidth())
    cut_at = (request.content_length or 0) // 2 if call.reset_mid_body else None
    try:
        while chunk := await request.content.read(pacer.chunk_size(CHUNK)):
            writer.write(chunk)
            call.record.bytes_in += len(chunk)
            if cut_at is not None and call.record.bytes_in >= cut_at:
                _abort_transport(call)
            await pacer.account(len(chunk))
        if call.reset_mid_body:  # empty body: nothing to cut in the middle of
            _abort_transport(call)
    except BaseException:
        writer.discard()
        raise


async def _send_file(call: Call, response: web.StreamResponse, handle: Any, start: int, length: int) -> None:
    pacer = Pacer(call.faults.bandwidth())
    cut_at = length // 2 if call.reset_mid_body else None
    for chunk in iter_file(handle, start, length, pacer.chunk_size(CHUNK)):
        await response.write(chunk)
        call.record.bytes_out += len(chunk)
        if cut_at is not None and call.record.bytes_out >= cut_at:
            _abort_transport(call)
        await pacer.account(len(chunk))


async def _reset_connection(call: Call) -> None:
    """Injected reset: cut uploads and downloads mid-body, other requests before any answer."""
    call.record.fault = "reset"
    streams_body = call.operation == "GetObject" or (
        call.operation in ("PutObject", "UploadPart") and call.request.can_read_body
    )
    if streams_body:
        call.reset_mid_body = True  # the body streamers cut the connection half-way
        return
    _abort_transport(call)


def _abort_transport(call: Call) -> None:
    """Close the connection abruptly (RST, not FIN) and stop the handler."""
    transport = call.request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    raise ConnectionResetFault()


async def _drain(request: web.Request, record: RequestRecord) -> None:
    """Read and drop an unread request body so the client gets the error answer, not a broken pipe."""
    with contextlib.suppress(Exception):
        while chunk := await request.content.read(CHUNK):
            record.bytes_in += len(chunk)


def _error_response(
    request: web.Request, error: OssApiError, request_id: str, record: RequestRecord
) -> web.Response:
    host = request.host or "oss"
    head = request.method == "HEAD"
    headers = error.headers(request_id, host, head=head)
    if "NextAppendPosition" in error.details:
        headers["x-oss-next-append-position"] = error.details["NextAppendPosition"]
    if error.code == "InvalidRange" and "ObjectSize" in error.details:
        headers["Content-Range"] = f"bytes */{error.details['ObjectSize']}"
    if error.code != "SignatureDoesNotMatch":
        log.info("OSS sandbox %s %s -> %s %s", request.method, record.path, error.status, error.code)
    body = None if head else error.to_xml(request_id, host)
    return web.Response(status=error.status, body=body, headers=headers)


def _crc_header(call: Call, crc: int) -> str:
    if call.faults.take_crc_corruption():
        call.record.fault = "corrupt_crc"
        crc ^= 0x5A5A  # a different, still valid, 64-bit value
    return str(crc)


def _sse_headers(call: Call) -> dict[str, str]:
    sse = call.state.config.buckets[call.bucket].sse if call.bucket else None
    return {"x-oss-server-side-encryption": sse} if sse else {}


def _user_meta(call: Call) -> dict[str, str]:
    return {k.lower(): v for k, v in call.request.headers.items() if k.lower().startswith("x-oss-meta-")}


def _xml_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/xml", headers=headers)


def _int_param(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    value = params.get(name, "")
    if value == "":
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise OssApiError(
            "InvalidArgument",
            f"{name} must be an integer between {low} and {high}.",
            details={"ArgumentName": name, "ArgumentValue": value},
        )
    return int(value)


# --- objects ------------------------------------------------------------------------------------------


async def put_object(call: Call) -> web.StreamResponse:
    request = call.request
    if (request.content_length or 0) > MAX_PUT_SIZE:
        raise OssApiError("EntityTooLarge", details={"MaxSizeAllowed": str(MAX_PUT_SIZE)})
    writer = call.store.new_writer(call.bucket)
    await _receive_body(call, writer)
    _check_content_md5(request, writer)
    meta = call.store.commit_object(
        call.bucket,
        call.key,
        writer,
        content_type=request.headers.get("Content-Type") or "application/octet-stream",
        user_meta=_user_meta(call),
    )
    headers = {
        "ETag": f'"{meta.etag}"',
        "Content-MD5": writer.md5_base64,
        "x-oss-hash-crc64ecma": _crc_header(call, meta.crc64),
        **_sse_headers(call),
    }
    return web.Response(status=200, headers=headers)


async def append_object(call: Call) -> web.StreamResponse:
    """AppendObject: add to an Appendable object at ``position`` (its current length)."""
    try:
        position = int(call.request.query.get("position", ""))
    except ValueError:
        raise OssApiError("InvalidArgument", "position must be a non-negative integer.") from None
    writer = call.store.new_writer(call.bucket)
    await _receive_body(call, writer)
    try:
        meta = call.store.append_object(
            call.bucket,
            call.key,
            position,
            writer,
            content_type=call.request.headers.get("Content-Type") or "application/octet-stream",
        )
    except AppendConflict as conflict:
        raise OssApiError(conflict.code, details={"NextAppendPosition": str(conflict.length)}) from None
    return web.Response(
        status=200,
        headers={
            "x-oss-next-append-position": str(meta.size),
            "x-oss-hash-crc64ecma": _crc_header(call, meta.crc64),
            "ETag": f'"{meta.etag}"',
        },
    )


def _check_content_md5(request: web.Request, writer: BodyWriter) -> None:
    claimed = request.headers.get("Content-MD5")
    if claimed is None:
        return
    try:
        valid = base64.b64decode(claimed, validate=True).hex() == writer.md5_hex
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        writer.discard()
        raise OssApiError("InvalidDigest", details={"Content-MD5": claimed})


def _object_headers(call: Call, meta: Any) -> dict[str, str]:
    headers = {
        "Content-Type": meta.content_type,
        "ETag": f'"{meta.etag}"',
        "Last-Modified": email.utils.formatdate(meta.last_modified, usegmt=True),
        "Accept-Ranges": "bytes",
        "x-oss-object-type": meta.object_type,
        "x-oss-storage-class": meta.storage_class,
        "x-oss-hash-crc64ecma": _crc_header(call, meta.crc64),
        **meta.user_meta,
        **_sse_headers(call),
    }
    overrides = {
        "response-content-type": "Content-Type",
        "response-content-disposition": "Content-Disposition",
        "response-cache-control": "Cache-Control",
        "response-content-encoding": "Content-Encoding",
        "response-content-language": "Content-Language",
        "response-expires": "Expires",
    }
    for param, header in overrides.items():
        if call.params.get(param):
            headers[header] = call.params[param]
    return headers


async def head_object(call: Call) -> web.StreamResponse:
    meta = call.store.object_meta(call.bucket, call.key)
    if meta is None:
        raise OssApiError("NoSuchKey", details={"Key": call.key})
    headers = _object_headers(call, meta)
    headers["Content-Length"] = str(meta.size)
    return web.Response(status=200, headers=headers)


async def get_object(call: Call) -> web.StreamResponse:
    opened = call.store.open_object(call.bucket, call.key)
    if opened is None:
        raise OssApiError("NoSuchKey", details={"Key": call.key})
    meta, handle = opened
    with handle:
        byte_range = _parse_range(call, meta.size)
        headers = _object_headers(call, meta)
        if byte_range is None:
            start, length, status = 0, meta.size, 200
        else:
            start, end = byte_range
            start, length, status = start, end - start + 1, 206
            headers["Content-Range"] = f"bytes {start}-{end}/{meta.size}"
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = length
        await response.prepare(call.request)
        await _send_file(call, response, handle, start, length)
        await response.write_eof()
    return response


def _parse_range(call: Call, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive, or ``None`` for the whole object.

    OSS ignores an invalid range (answers 200 with everything) unless the request sets
    ``x-oss-range-behavior: standard``, then it answers 416 InvalidRange.
    """
    header = call.request.headers.get("Range", "").strip()
    if not header.startswith("bytes=") or "," in header:
        return None
    first, sep, last = header[len("bytes=") :].partition("-")
    parsed = _range_bounds(first, last, size) if sep else None
    if parsed is None and call.request.headers.get("x-oss-range-behavior", "").lower() == "standard":
        raise OssApiError("InvalidRange", details={"ObjectSize": str(size), "Range": header})
    return parsed


def _range_bounds(first: str, last: str, size: int) -> tuple[int, int] | None:
    """Bounds of ``first-last``, ``first-`` or ``-suffix`` within ``size`` bytes; ``None`` if invalid."""
    if (first and not first.isdigit()) or (last and not last.isdigit()) or not (first or last):
        return None
    if not first:  # suffix: the last N bytes
        return (max(0, size - int(last)), size - 1) if int(last) > 0 and size > 0 else None
    start = int(first)
    if start >= size or (last and int(last) < start):
        return None
    return start, (min(int(last), size - 1) if last else size - 1)


async def delete_object(call: Call) -> web.StreamResponse:
    call.store.delete_object(call.bucket, call.key)  # deleting a missing key is not an error in OSS
    return web.Response(status=204)


# --- listings and bucket info -----------------------------------------------------------------------


def _page(
    items: list[tuple[str, Any]], prefix: str, delimiter: str, after: str, limit: int
) -> tuple[list[Any], list[str], bool, str | None]:
    """One listing page: (items, common prefixes, truncated, marker to continue after).

    A common prefix counts as one entry; a key or prefix not greater than ``after`` is skipped, so
    continuing after a common prefix skips every key rolled up into it.
    """
    found: list[Any] = []
    prefixes: list[str] = []
    last: str | None = None
    for name, item in items:
        if not name.startswith(prefix) or name <= after:
            continue
        rolled = None
        if delimiter:
            cut = name.find(delimiter, len(prefix))
            if cut >= 0:
                rolled = name[: cut + len(delimiter)]
                if rolled <= after or (prefixes and prefixes[-1] == rolled):
                    continue
        if len(found) + len(prefixes) >= limit:
            return found, prefixes, True, last
        if rolled is not None:
            prefixes.append(rolled)
            last = rolled
        else:
            found.append(item)
            last = name
    return found, prefixes, False, last


async def list_objects(call: Call) -> web.StreamResponse:
    version = 2 if call.operation == "ListObjectsV2" else 1
    params = call.params
    max_keys = _int_param(params, "max-keys", 100, 0, 1000)
    if version == 2:
        after = max(params.get("start-after", ""), _decode_token(params.get("continuation-token", "")))
    else:
        after = params.get("marker", "")
    items = [(meta.key, meta) for meta in call.store.list_objects(call.bucket)]
    contents, prefixes, truncated, last = _page(
        items, params.get("prefix", ""), params.get("delimiter", ""), after, max_keys
    )
    next_marker = None
    if truncated and last is not None:
        next_marker = last if version == 1 else _encode_token(last)
    owner = call.state.config.owner_id if version == 1 or params.get("fetch-owner") == "true" else None
    body = xmlgen.list_objects(
        bucket=call.bucket,
        params=params,
        version=version,
        contents=contents,
        prefixes=prefixes,
        truncated=truncated,
        next_marker=next_marker,
        max_keys=max_keys,
        owner_id=owner,
    )
    return _xml_response(body)


def _encode_token(after: str) -> str:
    return base64.urlsafe_b64encode(after.encode("utf-8", "surrogateescape")).decode()


def _decode_token(token: str) -> str:
    if not token:
        return ""
    try:
        return base64.urlsafe_b64decode(token.encode()).decode("utf-8", "surrogateescape")
    except (binascii.Error, ValueError):
        raise OssApiError(
            "InvalidArgument",
            "The continuation token is not valid.",
            details={"ArgumentName": "continuation-token", "ArgumentValue": token},
        ) from None


async def get_bucket_info(call: Call) -> web.StreamResponse:
    bucket = call.state.config.buckets[call.bucket]
    body = xmlgen.bucket_info(call.bucket, bucket, call.store.created_at, call.state.config.owner_id)
    return _xml_response(body)


async def get_bucket_location(call: Call) -> web.StreamResponse:
    return _xml_response(xmlgen.bucket_location(call.state.config.buckets[call.bucket]))


async def list_buckets(call: Call) -> web.StreamResponse:
    config = call.state.config
    body = xmlgen.list_buckets(
        config.buckets, call.store.created_at, config.owner_id, call.params.get("prefix", "")
    )
    return _xml_response(body)


# --- multipart ----------------------------------------------------------------------------------------


async def initiate_multipart_upload(call: Call) -> web.StreamResponse:
    await _drain(call.request, call.record)
    upload = call.store.create_upload(
        call.bucket,
        call.key,
        content_type=call.request.headers.get("Content-Type") or "application/octet-stream",
        user_meta=_user_meta(call),
    )
    body = xmlgen.initiate_upload(call.bucket, upload, call.params.get("encoding-type") == "url")
    return _xml_response(body, headers=_sse_headers(call))


async def upload_part(call: Call) -> web.StreamResponse:
    part_number = _int_param(call.params, "partNumber", 0, 1, MAX_PART_NUMBER)
    upload_id = call.params["uploadId"]
    call.store.get_upload(call.bucket, upload_id, call.key)
    if (call.request.content_length or 0) > MAX_PUT_SIZE:
        raise OssApiError("EntityTooLarge", details={"MaxSizeAllowed": str(MAX_PUT_SIZE)})
    writer = call.store.new_writer(call.bucket)
    await _receive_body(call, writer)
    if call.faults.take_part_failure(part_number):
        writer.discard()
        call.record.fault = f"fail_part:{part_number}"
        raise OssApiError("InternalError")
    _check_content_md5(call.request, writer)
    part = call.store.commit_part(call.bucket, upload_id, part_number, writer)
    headers = {
        "ETag": f'"{part.etag}"',
        "Content-MD5": writer.md5_base64,
        "x-oss-hash-crc64ecma": _crc_header(call, part.crc64),
        **_sse_headers(call),
    }
    return web.Response(status=200, headers=headers)


async def list_parts(call: Call) -> web.StreamResponse:
    upload = call.store.get_upload(call.bucket, call.params["uploadId"], call.key)
    marker = _int_param(call.params, "part-number-marker", 0, 0, MAX_PART_NUMBER)
    max_parts = _int_param(call.params, "max-parts", 1000, 1, 1000)
    parts = [p for p in call.store.list_parts(call.bucket, upload.upload_id) if p.part_number > marker]
    body = xmlgen.list_parts(
        bucket=call.bucket,
        upload=upload,
        parts=parts[:max_parts],
        marker=marker,
        max_parts=max_parts,
        truncated=len(parts) > max_parts,
        encode=call.params.get("encoding-type") == "url",
    )
    return _xml_response(body)


async def complete_multipart_upload(call: Call) -> web.StreamResponse:
    upload_id = call.params["uploadId"]
    call.store.get_upload(call.bucket, upload_id, call.key)
    body = await call.request.read()
    complete_all = call.request.headers.get("x-oss-complete-all", "").lower() == "yes"
    requested = None if complete_all else _parse_complete_body(body)
    meta = await asyncio.to_thread(call.store.complete_upload, call.bucket, upload_id, call.key, requested)
    encode = call.params.get("encoding-type") == "url"
    headers = {
        "ETag": f'"{meta.etag}"',
        "x-oss-hash-crc64ecma": _crc_header(call, meta.crc64),
        **_sse_headers(call),
    }
    return _xml_response(
        xmlgen.complete_upload(call.bucket, call.key, meta.etag, call.request.host or "oss", encode),
        headers=headers,
    )


def _parse_complete_body(body: bytes) -> list[tuple[int, str]]:
    try:
        root = ElementTree.fromstring(body)
        if root.tag != "CompleteMultipartUpload":
            raise ValueError(root.tag)
        parts = []
        for node in root.findall("Part"):
            number = int((node.findtext("PartNumber") or "").strip())
            parts.append((number, (node.findtext("ETag") or "").strip()))
    except (ElementTree.ParseError, ValueError):
        raise OssApiError("MalformedXML") from None
    if not parts:
        raise OssApiError("MalformedXML", "The CompleteMultipartUpload request lists no parts.")
    return parts


async def abort_multipart_upload(call: Call) -> web.StreamResponse:
    call.store.abort_upload(call.bucket, call.params["uploadId"], call.key)
    return web.Response(status=204)


async def list_multipart_uploads(call: Call) -> web.StreamResponse:
    params = call.params
    max_uploads = _int_param(params, "max-uploads", 1000, 1, 1000)
    key_marker = params.get("key-marker", "")
    delimiter = params.get("delimiter", "")
    uploads = _uploads_after(
        call.store.list_uploads(call.bucket), key_marker, params.get("upload-id-marker", "")
    )
    if delimiter and key_marker.endswith(delimiter):
        # key_marker was a common prefix on the previous page: do not roll it up again.
        uploads = [u for u in uploads if not u.key.startswith(key_marker)]
    items = [(u.key, u) for u in uploads]
    found, prefixes, truncated, _ = _page(items, params.get("prefix", ""), delimiter, "", max_uploads)
    body = xmlgen.list_uploads(
        bucket=call.bucket,
        params=params,
        uploads=found,
        prefixes=prefixes,
        truncated=truncated,
        max_uploads=max_uploads,
    )
    return _xml_response(body)


def _uploads_after(uploads: list[Any], key_marker: str, id_marker: str) -> list[Any]:
    """Uploads listed after (key_marker, id_marker), in (key, initiation) order."""
    if not key_marker:
        return uploads
    if id_marker:
        same_key = [u for u in uploads if u.key == key_marker]
        ids = [u.upload_id for u in same_key]
        rest_of_key = same_key[ids.index(id_marker) + 1 :] if id_marker in ids else []
        return rest_of_key + [u for u in uploads if u.key > key_marker]
    return [u for u in uploads if u.key > key_marker]


HANDLERS: dict[str, Handler] = {
    "PutObject": put_object,
    "AppendObject": append_object,
    "GetObject": get_object,
    "HeadObject": head_object,
    "DeleteObject": delete_object,
    "ListObjects": list_objects,
    "ListObjectsV2": list_objects,
    "GetBucketInfo": get_bucket_info,
    "GetBucketLocation": get_bucket_location,
    "ListBuckets": list_buckets,
    "InitiateMultipartUpload": initiate_multipart_upload,
    "UploadPart": upload_part,
    "ListParts": list_parts,
    "CompleteMultipartUpload": complete_multipart_upload,
    "AbortMultipartUpload": abort_multipart_upload,
    "ListMultipartUploads": list_multipart_uploads,
}


# --- running the server -----------------------------------------------------------------------------


@dataclasses.dataclass
class RunningOssServer:
    """A started stand-in on some event loop: where it listens and what it holds."""

    runner: web.AppRunner
    host: str
    port: int
    state: OssState

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def store(self) -> OssStore:
        return self.state.store

    @property
    def faults(self) -> FaultInjector:
        return self.state.faults

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_server(config: OssConfig, host: str = "127.0.0.1", port: int = 0) -> RunningOssServer:
    """Start serving on the current loop (``port=0`` picks a free port) and return at once."""
    app = await create_app(config)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    bound_port = runner.addresses[0][1]
    log.info("OSS sandbox listening on http://%s:%s (data in %s)", host, bound_port, config.data_dir)
    return RunningOssServer(runner=runner, host=host, port=bound_port, state=app[STATE_KEY])


async def serve(
    config: OssConfig,
    host: str = "127.0.0.1",
    port: int = 0,
    ready: Callable[[RunningOssServer], None] | None = None,
) -> None:
    """Serve until cancelled (for a process that gathers several stand-ins on one loop)."""
    server = await start_server(config, host, port)
    try:
        if ready is not None:
            ready(server)
        await asyncio.Event().wait()
    finally:
        await server.close()


class ThreadedOssServer:
    """The stand-in on its own event loop in a background thread (for tests and tools).

    ``with ThreadedOssServer(config) as oss: oss2.Bucket(auth, oss.endpoint, "bkt", region=...)``
    """

    def __init__(self, config: OssConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.host = host
        self._requested_port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: RunningOssServer | None = None

    def start(self) -> ThreadedOssServer:
        if self._thread is not None:
            raise RuntimeError("ThreadedOssServer is already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="oss-sandbox", daemon=True)
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            start_server(self.config, self.host, self._requested_port), loop
        )
        try:
            self._server = future.result(timeout=30)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Close the listener and connections, stop the loop and join the thread (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._server is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._server.close(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
        self._loop = self._thread = self._server = None

    def __enter__(self) -> ThreadedOssServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _running(self) -> RunningOssServer:
        if self._server is None:
            raise RuntimeError("ThreadedOssServer is not running; use start() or a with-block")
        return self._server

    @property
    def port(self) -> int:
        return self._running().port

    @property
    def endpoint(self) -> str:
        return self._running().endpoint

    @property
    def store(self) -> OssStore:
        return self._running().store

    @property
    def faults(self) -> FaultInjector:
        return self._running().faults

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the request log."""
        return list(self.faults.requests)

    def set_faults(self, **changes: Any) -> None:
        """Change fault settings at run time, e.g. ``set_faults(error_503_rate=1.0)``."""
        self.faults.update(**changes)
