"""Server-side checks of Alibaba Cloud request signatures, as the Tea SDK computes them.

- V3 (``ACS3-HMAC-SHA256``, the SDK default): ``Authorization`` header over a canonical request of
  method, path, sorted query, the signed headers and the body's SHA-256.
- V2 (legacy RPC, ``Config(signature_algorithm='v2')``): HMAC-SHA1 over the sorted query, sent as the
  ``Signature`` query parameter.

Both also reject stale timestamps and reused nonces, like the real gateway. Secrets never appear in
error messages; the server's string to sign does (Alibaba echoes it too, and it holds no secret).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote, quote_plus

from sandbox.rds.errors import ApiError

V3_ALGORITHM = "ACS3-HMAC-SHA256"
# The gateway accepts requests whose timestamp is within 15 minutes of its clock.
MAX_CLOCK_SKEW_S = 15 * 60
# Query parameters of the V2 form that are not operation parameters.
V2_SYSTEM_PARAMS = frozenset(
    {
        "Action",
        "Version",
        "Format",
        "Timestamp",
        "SignatureNonce",
        "SignatureMethod",
        "SignatureVersion",
        "AccessKeyId",
        "Signature",
        "SecurityToken",
        "RegionId",
    }
)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _incomplete(message: str) -> ApiError:
    return ApiError(400, "IncompleteSignature", message)


def _unknown_access_key() -> ApiError:
    return ApiError(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")


def canonical_query(query: Mapping[str, str]) -> str:
    """Sorted ``k=quote(v)`` pairs joined by ``&`` (the V3 canonical query string)."""
    return "&".join(f"{key}={quote(query[key], safe='~')}" for key in sorted(query))


def v3_canonical_request(
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    signed: list[str],
    body: bytes,
) -> str:
    header_lines = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in signed)
    return "\n".join(
        [method, path or "/", canonical_query(query), header_lines, ";".join(signed), sha256_hex(body)]
    )


def v3_signature(secret: str, canonical_request: str) -> tuple[str, str]:
    """Return ``(string_to_sign, hex_signature)`` for a canonical request."""
    string_to_sign = f"{V3_ALGORITHM}\n{sha256_hex(canonical_request.encode())}"
    signature = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
    return string_to_sign, signature


def v2_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    pairs = "&".join(f"{quote(k, safe='~')}={quote(params[k], safe='~')}" for k in sorted(params))
    return f"{method}&%2F&{quote_plus(pairs, safe='~')}"


def v2_signature(secret: str, string_to_sign: str) -> str:
    digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _parse_authorization(value: str) -> tuple[str, str, list[str], str]:
    algorithm, _, rest = value.strip().partition(" ")
    fields = {}
    for part in rest.split(","):
        name, _, field_value = part.strip().partition("=")
        fields[name] = field_value
    try:
        signed = [h for h in fields["SignedHeaders"].split(";") if h]
        return algorithm, fields["Credential"], signed, fields["Signature"]
    except KeyError as missing:
        raise _incomplete(f"The Authorization header lacks {missing.args[0]}.") from None


def _parse_timestamp(value: str) -> float:
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise ApiError(
            400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted."
        ) from None


class SignatureVerifier:
    """Checks signatures against the configured access keys; remembers nonces to refuse replays.

    :param accounts: ``{access_key_id: access_key_secret}``; read at every call, so it may be changed.
    """

    def __init__(self, accounts: Mapping[str, str]):
        self.accounts = accounts
        self._nonces: dict[str, float] = {}
        self._lock = threading.Lock()

    def verify(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> str:
        """Verify a request (V3 header or V2 query form) and return the caller's access key id."""
        if "Signature" in query and "authorization" not in headers:
            return self._verify_v2(method, query)
        return self._verify_v3(method, path, query, headers, body)

    def _verify_v3(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> str:
        authorization = headers.get("authorization")
        if not authorization:
            raise _incomplete("The request is not signed: the Authorization header is missing.")
        algorithm, access_key_id, signed, signature = _parse_authorization(authorization)
        if algorithm != V3_ALGORITHM:
            raise _incomplete(f"The signature algorithm {algorithm} is not supported; use {V3_ALGORITHM}.")
        secret = self.accounts.get(access_key_id)
        if secret is None:
            raise _unknown_access_key()
        required = {"host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce"}
        missing = sorted(required - set(signed))
        if missing:
            raise _incomplete(f"The headers {', '.join(missing)} must be signed.")
        if headers.get("x-acs-content-sha256", sha256_hex(body)) != sha256_hex(body):
            raise _incomplete("The x-acs-content-sha256 header does not match the request body.")
        self._check_fresh(headers["x-acs-date"], headers["x-acs-signature-nonce"])
        canonical = v3_canonical_request(method, path, query, headers, signed, body)
        string_to_sign, expected = v3_signature(secret, canonical)
        if not hmac.compare_digest(expected, signature):
            raise _incomplete(
                "The request signature does not conform to Aliyun standards. "
                f"server string to sign is:{string_to_sign}"
            )
        return access_key_id

    def _verify_v2(self, method: str, query: Mapping[str, str]) -> str:
        access_key_id = query.get("AccessKeyId", "")
        secret = self.accounts.get(access_key_id)
        if secret is None:
            raise _unknown_access_key()
        if query.get("SignatureMethod") != "HMAC-SHA1":
            raise ApiError(400, "InvalidSignatureMethod", "Specified signature method is not valid.")
        self._check_fresh(query.get("Timestamp", ""), query.get("SignatureNonce", ""))
        params = {k: v for k, v in query.items() if k != "Signature"}
        string_to_sign = v2_string_to_sign(method, params)
        if not hmac.compare_digest(v2_signature(secret, string_to_sign), query["Signature"]):
            raise ApiError(
                400,
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation. "
                f"server string to sign is:{string_to_sign}",
            )
        return access_key_id

    def _check_fresh(self, timestamp: str, nonce: str) -> None:
        now = time.time()
        if abs(now - _parse_timestamp(timestamp)) > MAX_CLOCK_SKEW_S:
            raise ApiError(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
        if not nonce:
            raise ApiError(400, "MissingSignatureNonce", "SignatureNonce is mandatory for this action.")
        with self._lock:
            self._nonces = {n: t for n, t in self._nonces.items() if now - t <= MAX_CLOCK_SKEW_S}
            if nonce in self._nonces:
                raise ApiError(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
            self._nonces[nonce] = now
