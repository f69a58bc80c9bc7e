"""XML bodies of OSS answers (element names and order as OSS sends them)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from urllib.parse import quote
from xml.etree import ElementTree

from .config import BucketConfig
from .store import ObjectMeta, PartMeta, UploadMeta

XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def iso8601(timestamp: float) -> str:
    """``2024-05-01T10:00:00.000Z`` (what OSS puts in listings)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(timestamp))


def url_encode(text: str) -> str:
    """``encoding-type=url`` form of a key or prefix."""
    return quote(text, safe="", errors="surrogateescape")


def render(root: ElementTree.Element) -> bytes:
    return XML_DECLARATION + ElementTree.tostring(root, encoding="utf-8")


def add(parent: ElementTree.Element, tag: str, text: str | int | None = None) -> ElementTree.Element:
    child = ElementTree.SubElement(parent, tag)
    if text is not None:
        child.text = str(text)
    return child


def bucket_info(name: str, bucket: BucketConfig, created: float, owner_id: str) -> bytes:
    """GetBucketInfo: everything oss2's parser requires, plus the optional fields it reads."""
    root = ElementTree.Element("BucketInfo")
    node = add(root, "Bucket")
    add(node, "AccessMonitor", "Disabled")
    add(node, "CreationDate", iso8601(created))
    add(node, "CrossRegionReplication", "Disabled")
    add(node, "DataRedundancyType", "LRS")
    add(node, "ExtranetEndpoint", f"oss-{bucket.region}.aliyuncs.com")
    add(node, "IntranetEndpoint", f"oss-{bucket.region}-internal.aliyuncs.com")
    add(node, "Location", f"oss-{bucket.region}")
    add(node, "Name", name)
    add(node, "ResourceGroupId", "rg-default")
    add(node, "StorageClass", bucket.storage_class)
    add(node, "TransferAcceleration", "Disabled")
    owner = add(node, "Owner")
    add(owner, "DisplayName", owner_id)
    add(owner, "ID", owner_id)
    acl = add(node, "AccessControlList")
    add(acl, "Grant", "private")
    add(node, "Comment", "")
    sse = add(node, "ServerSideEncryptionRule")
    add(sse, "SSEAlgorithm", bucket.sse or "None")
    if bucket.sse == "KMS":
        add(sse, "KMSMasterKeyID", "")
    policy = add(node, "BucketPolicy")
    add(policy, "LogBucket", "")
    add(policy, "LogPrefix", "")
    return render(root)


def bucket_location(bucket: BucketConfig) -> bytes:
    root = ElementTree.Element("LocationConstraint")
    root.text = f"oss-{bucket.region}"
    return render(root)


def list_buckets(buckets: dict[str, BucketConfig], created: float, owner_id: str, prefix: str) -> bytes:
    root = ElementTree.Element("ListAllMyBucketsResult")
    owner = add(root, "Owner")
    add(owner, "ID", owner_id)
    add(owner, "DisplayName", owner_id)
    container = add(root, "Buckets")
    for name in sorted(buckets):
        if not name.startswith(prefix):
            continue
        bucket = buckets[name]
        node = add(container, "Bucket")
        add(node, "CreationDate", iso8601(created))
        add(node, "ExtranetEndpoint", f"oss-{bucket.region}.aliyuncs.com")
        add(node, "IntranetEndpoint", f"oss-{bucket.region}-internal.aliyuncs.com")
        add(node, "Location", f"oss-{bucket.region}")
        add(node, "Name", name)
        add(node, "Region", bucket.region)
        add(node, "StorageClass", bucket.storage_class)
    return render(root)


def _contents(root: ElementTree.Element, meta: ObjectMeta, encode: bool, owner_id: str | None) -> None:
    node = add(root, "Contents")
    add(node, "Key", url_encode(meta.key) if encode else meta.key)
    add(node, "LastModified", iso8601(meta.last_modified))
    add(node, "ETag", f'"{meta.etag}"')
    add(node, "Type", meta.object_type)
    add(node, "Size", meta.size)
    add(node, "StorageClass", meta.storage_class)
    if owner_id is not None:
        owner = add(node, "Owner")
        add(owner, "ID", owner_id)
        add(owner, "DisplayName", owner_id)


def list_objects(
    *,
    bucket: str,
    params: dict[str, str],
    version: int,
    contents: Iterable[ObjectMeta],
    prefixes: Iterable[str],
    truncated: bool,
    next_marker: str | None,
    max_keys: int,
    owner_id: str | None,
) -> bytes:
    """ListObjects (``version=1``) or ListObjectsV2 (``version=2``) answer."""
    encode = params.get("encoding-type") == "url"

    def text(value: str) -> str:
        return url_encode(value) if encode else value

    root = ElementTree.Element("ListBucketResult")
    add(root, "Name", bucket)
    add(root, "Prefix", text(params.get("prefix", "")))
    if version == 1:
        add(root, "Marker", text(params.get("marker", "")))
    else:
        if params.get("continuation-token"):
            add(root, "ContinuationToken", text(params["continuation-token"]))
        if params.get("start-after"):
            add(root, "StartAfter", text(params["start-after"]))
    add(root, "MaxKeys", max_keys)
    add(root, "Delimiter", text(params.get("delimiter", "")))
    if encode:
        add(root, "EncodingType", "url")
    add(root, "IsTruncated", "true" if truncated else "false")
    contents = list(contents)
    prefixes = list(prefixes)
    if truncated and next_marker is not None:
        add(root, "NextMarker" if version == 1 else "NextContinuationToken", text(next_marker))
    if version == 2:
        add(root, "KeyCount", len(contents) + len(prefixes))
    for meta in contents:
        _contents(root, meta, encode, owner_id)
    for prefix in prefixes:
        add(add(root, "CommonPrefixes"), "Prefix", text(prefix))
    return render(root)


def initiate_upload(bucket: str, upload: UploadMeta, encode: bool) -> bytes:
    root = ElementTree.Element("InitiateMultipartUploadResult")
    add(root, "Bucket", bucket)
    add(root, "Key", url_encode(upload.key) if encode else upload.key)
    add(root, "UploadId", upload.upload_id)
    if encode:
        add(root, "EncodingType", "url")
    return render(root)


def list_parts(
    *,
    bucket: str,
    upload: UploadMeta,
    parts: list[PartMeta],
    marker: int,
    max_parts: int,
    truncated: bool,
    encode: bool,
) -> bytes:
    root = ElementTree.Element("ListPartsResult")
    add(root, "Bucket", bucket)
    add(root, "Key", url_encode(upload.key) if encode else upload.key)
    add(root, "UploadId", upload.upload_id)
    add(root, "PartNumberMarker", marker)
    add(root, "NextPartNumberMarker", parts[-1].part_number if parts else marker)
    add(root, "MaxParts", max_parts)
    add(root, "IsTruncated", "true" if truncated else "false")
    if encode:
        add(root, "EncodingType", "url")
    for part in parts:
        node = add(root, "Part")
        add(node, "PartNumber", part.part_number)
        add(node, "LastModified", iso8601(part.last_modified))
        add(node, "ETag", f'"{part.etag}"')
        add(node, "HashCrc64ecma", part.crc64)
        add(node, "Size", part.size)
    return render(root)


def list_uploads(
    *,
    bucket: str,
    params: dict[str, str],
    uploads: list[UploadMeta],
    prefixes: list[str],
    truncated: bool,
    max_uploads: int,
) -> bytes:
    encode = params.get("encoding-type") == "url"

    def text(value: str) -> str:
        return url_encode(value) if encode else value

    last_key = uploads[-1].key if uploads else ""
    last_id = uploads[-1].upload_id if uploads else ""
    if prefixes and (not uploads or prefixes[-1] > last_key):
        last_key, last_id = prefixes[-1], ""
    root = ElementTree.Element("ListMultipartUploadsResult")
    add(root, "Bucket", bucket)
    add(root, "KeyMarker", text(params.get("key-marker", "")))
    add(root, "UploadIdMarker", params.get("upload-id-marker", ""))
    add(root, "NextKeyMarker", text(last_key))
    add(root, "NextUploadIdMarker", last_id)
    add(root, "Delimiter", text(params.get("delimiter", "")))
    add(root, "Prefix", text(params.get("prefix", "")))
    add(root, "MaxUploads", max_uploads)
    add(root, "IsTruncated", "true" if truncated else "false")
    if encode:
        add(root, "EncodingType", "url")
    for upload in uploads:
        node = add(root, "Upload")
        add(node, "Key", text(upload.key))
        add(node, "UploadId", upload.upload_id)
        add(node, "StorageClass", "Standard")
        add(node, "Initiated", iso8601(upload.initiated))
    for prefix in prefixes:
        add(add(root, "CommonPrefixes"), "Prefix", text(prefix))
    return render(root)


def complete_upload(bucket: str, key: str, etag: str, host: str, encode: bool) -> bytes:
    root = ElementTree.Element("CompleteMultipartUploadResult")
    if encode:
        add(root, "EncodingType", "url")
    encoded_key = url_encode(key) if encode else key
    add(root, "Location", f"http://{host}/{bucket}/{url_encode(key)}")
    add(root, "Bucket", bucket)
    add(root, "Key", encoded_key)
    add(root, "ETag", f'"{etag}"')
    return render(root)
