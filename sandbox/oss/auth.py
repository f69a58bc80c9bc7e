"""Server-side checks of OSS request signatures (V1 ``OSS AK:sig`` and V4 ``OSS4-HMAC-SHA256``).

The canonical strings are rebuilt exactly as oss2 2.19 (``oss2/auth.py``) and alibabacloud-oss-v2
(``signer/v4.py``) build them, so the real clients validate against this stand-in.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import email.utils
import hashlib
import hmac
from collections.abc import Mapping, Sequence

from multidict import CIMultiDictProxy
from oss2.auth import ProviderAuth

from .errors import OssApiError

# The query parameters that V1 signs ("sub-resources"): oss2's own list, so both sides agree.
V1_SUBRESOURCES = ProviderAuth._subresource_key_set
V4_ALGORITHM = "OSS4-HMAC-SHA256"
V4_DEFAULT_SIGNED = ("content-type", "content-md5")
MAX_CLOCK_SKEW = datetime.timedelta(minutes=15)
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-~.")
_HIDDEN_HEADERS = ("x-oss-security-token",)


@dataclasses.dataclass(frozen=True)
class SignedRequest:
    """The parts of an HTTP request that signatures cover (key and query values already decoded)."""

    method: str
    bucket: str | None
    key: str
    query: Sequence[tuple[str, str]]
    headers: CIMultiDictProxy[str] | Mapping[str, str]


def verify(request: SignedRequest, accounts: Mapping[str, str], now: datetime.datetime | None = None) -> str:
    """Check the ``Authorization`` header; return the access key id or raise :class:`OssApiError`."""
    authorization = request.headers.get("Authorization", "")
    if not authorization:
        raise OssApiError("AccessDenied", "You have no right to access this resource: anonymous access.")
    now = now or datetime.datetime.now(datetime.UTC)
    if authorization.startswith(V4_ALGORITHM + " "):
        return _verify_v4(request, authorization, accounts, now)
    if authorization.startswith("OSS "):
        return _verify_v1(request, authorization, accounts, now)
    raise OssApiError(
        "InvalidArgument",
        "Authorization header is invalid: the sandbox accepts 'OSS <AK>:<sig>' (V1) "
        "and OSS4-HMAC-SHA256 (V4).",
    )


# --- V1 ---------------------------------------------------------------------------------------------


def _verify_v1(
    request: SignedRequest, authorization: str, accounts: Mapping[str, str], now: datetime.datetime
) -> str:
    credential = authorization[len("OSS ") :]
    access_key_id, sep, signature = credential.rpartition(":")
    if not sep or not access_key_id:
        raise OssApiError("InvalidArgument", "Authorization header is invalid: expected 'OSS AK:signature'.")
    secret = _secret_for(access_key_id, accounts)
    date = request.headers.get("x-oss-date", "") or request.headers.get("Date", "")
    _check_clock(_parse_http_date(date), now)
    string_to_sign = v1_string_to_sign(request)
    expected = base64.b64encode(
        hmac.new(secret.encode(), string_to_sign.encode("utf-8", "surrogateescape"), hashlib.sha1).digest()
    ).decode()
    if not hmac.compare_digest(expected, signature):
        raise OssApiError(
            "SignatureDoesNotMatch",
            details={"StringToSign": _redact(string_to_sign, request), "OSSAccessKeyId": access_key_id},
        )
    return access_key_id


def v1_string_to_sign(request: SignedRequest) -> str:
    """METHOD, Content-MD5, Content-Type, Date, canonical x-oss- headers and resource (oss2's order)."""
    headers = request.headers
    date = headers.get("x-oss-date", "") or headers.get("Date", "")
    oss_headers = "".join(f"{name}:{value}\n" for name, value in _oss_headers(headers))
    subresources = sorted((k, v) for k, v in request.query if k in V1_SUBRESOURCES)
    resource = "/" if request.bucket is None else f"/{request.bucket}/{request.key}"
    if subresources:
        resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in subresources)
    return "\n".join(
        [
            request.method,
            headers.get("Content-MD5", ""),
            headers.get("Content-Type", ""),
            date,
            oss_headers + resource,
        ]
    )


# --- V4 ---------------------------------------------------------------------------------------------


def _verify_v4(
    request: SignedRequest, authorization: str, accounts: Mapping[str, str], now: datetime.datetime
) -> str:
    fields = _parse_v4_authorization(authorization)
    try:
        access_key_id, date, region, product, terminator = fields["Credential"].split("/")
    except (KeyError, ValueError):
        raise OssApiError(
            "InvalidArgument",
            "Authorization header is invalid: Credential must be AK/date/region/product/aliyun_v4_request.",
        ) from None
    signature = fields.get("Signature", "")
    if terminator != "aliyun_v4_request" or not signature:
        raise OssApiError("InvalidArgument", "Authorization header is invalid: malformed V4 scope.")
    secret = _secret_for(access_key_id, accounts)
    timestamp = request.headers.get("x-oss-date", "")
    try:
        signed_at = datetime.datetime.strptime(timestamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        raise OssApiError("AccessDenied", "x-oss-date is missing or not in ISO 8601 basic format.") from None
    _check_clock(signed_at, now)
    if timestamp[:8] != date:
        raise OssApiError("SignatureDoesNotMatch", "Invalid signing date in Authorization header.")
    additional = [h.strip().lower() for h in fields.get("AdditionalHeaders", "").split(";") if h.strip()]
    canonical_request = v4_canonical_request(request, additional)
    scope = f"{date}/{region}/{product}/aliyun_v4_request"
    string_to_sign = "\n".join(
        [
            V4_ALGORITHM,
            timestamp,
            scope,
            hashlib.sha256(canonical_request.encode("utf-8", "surrogateescape")).hexdigest(),
        ]
    )
    expected = hmac.new(
        v4_signing_key(secret, date, region, product), string_to_sign.encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise OssApiError(
            "SignatureDoesNotMatch",
            details={
                "CanonicalRequest": _redact(canonical_request, request),
                "StringToSign": string_to_sign,
                "OSSAccessKeyId": access_key_id,
            },
        )
    return access_key_id


def _parse_v4_authorization(authorization: str) -> dict[str, str]:
    """``OSS4-HMAC-SHA256 Credential=..., AdditionalHeaders=..., Signature=...`` (any order, any spacing)."""
    fields = {}
    for item in authorization[len(V4_ALGORITHM) :].split(","):
        name, sep, value = item.strip().partition("=")
        if sep:
            fields[name.strip()] = value.strip()
    return fields


def v4_canonical_request(request: SignedRequest, additional_headers: Sequence[str]) -> str:
    """Method, URI, query, headers, additional header names and payload hash, one per line."""
    uri = "/" if request.bucket is None else f"/{request.bucket}/{request.key}"
    query = sorted((v4_uri_encode(k), v4_uri_encode(v)) for k, v in request.query)
    canonical_query = "&".join(f"{k}={v}" if v else k for k, v in query)
    signed = set(additional_headers)
    headers = sorted(
        (name.lower(), value)
        for name, value in request.headers.items()
        if name.lower().startswith("x-oss-") or name.lower() in V4_DEFAULT_SIGNED or name.lower() in signed
    )
    canonical_headers = "".join(f"{name}:{value}\n" for name, value in headers)
    payload = request.headers.get("x-oss-content-sha256", "UNSIGNED-PAYLOAD")
    return "\n".join(
        [
            request.method,
            v4_uri_encode(uri, keep_slash=True),
            canonical_query,
            canonical_headers,
            ";".join(sorted(signed)),
            payload,
        ]
    )


def v4_signing_key(secret: str, date: str, region: str, product: str) -> bytes:
    key = hmac.new(("aliyun_v4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, product, "aliyun_v4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def v4_uri_encode(text: str, keep_slash: bool = False) -> str:
    """Percent-encode every byte except unreserved characters (and ``/`` in paths), upper-case hex."""
    out = []
    for byte in text.encode("utf-8", "surrogateescape"):
        if byte in _UNRESERVED or (keep_slash and byte == ord("/")):
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


# --- shared -----------------------------------------------------------------------------------------


def _secret_for(access_key_id: str, accounts: Mapping[str, str]) -> str:
    secret = accounts.get(access_key_id)
    if secret is None:
        raise OssApiError("InvalidAccessKeyId", details={"OSSAccessKeyId": access_key_id})
    return secret


def _oss_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    return sorted(
        (name.lower(), value) for name, value in headers.items() if name.lower().startswith("x-oss-")
    )


def _parse_http_date(value: str) -> datetime.datetime:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise OssApiError("AccessDenied", "The Date header is missing or not an RFC 1123 date.") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed


def _check_clock(signed_at: datetime.datetime, now: datetime.datetime) -> None:
    if abs(now - signed_at) > MAX_CLOCK_SKEW:
        raise OssApiError(
            "RequestTimeTooSkewed",
            details={"RequestTime": signed_at.isoformat(), "ServerTime": now.isoformat()},
        )


def _redact(text: str, request: SignedRequest) -> str:
    """Hide session tokens that a canonical string may carry before echoing it in an error."""
    for name in _HIDDEN_HEADERS:
        value = request.headers.get(name)
        if value:
            text = text.replace(value, "******")
    return text
