"""OSS error responses: the ``<Error>`` XML document, ``x-oss-ec`` and the HEAD variant."""

from __future__ import annotations

import base64
from xml.etree import ElementTree

# code -> (HTTP status, default message, EC). The EC values follow OSS's "xxxx-xxxxxxxx" form; the
# ones for NoSuchKey and SignatureDoesNotMatch match captured OSS answers, the rest are stand-in values.
ERRORS: dict[str, tuple[int, str, str]] = {
    "AccessDenied": (403, "You have no right to access this object.", "0003-00000001"),
    "InvalidAccessKeyId": (
        403,
        "The OSS Access Key Id you provided does not exist in our records.",
        "0002-00000902",
    ),
    "SignatureDoesNotMatch": (
        403,
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
        "0002-00000040",
    ),
    "RequestTimeTooSkewed": (
        403,
        "The difference between the request time and the current time is too large.",
        "0002-00000504",
    ),
    "NoSuchBucket": (404, "The specified bucket does not exist.", "0015-00000101"),
    "NoSuchKey": (404, "The specified key does not exist.", "0026-00000001"),
    "PositionNotEqualToLength": (409, "Position is not equal to file length", "0026-00000016"),
    "ObjectNotAppendable": (409, "The object is not appendable", "0026-00000015"),
    "NoSuchUpload": (
        404,
        "The specified upload does not exist. The upload ID may be invalid, "
        "or the upload may have been aborted or completed.",
        "0042-00000002",
    ),
    "InvalidArgument": (400, "Invalid argument.", "0017-00000000"),
    "InvalidDigest": (400, "The Content-MD5 you specified was invalid.", "0016-00000052"),
    "InvalidObjectName": (400, "The Length of Object name must be in range [1, 1023].", "0016-00000001"),
    "InvalidPart": (
        400,
        "One or more of the specified parts could not be found or the specified entity tag might not "
        "have matched the part's entity tag.",
        "0042-00000306",
    ),
    "InvalidPartOrder": (
        400,
        "The list of parts was not in ascending order. Parts list must specified in order by part number.",
        "0042-00000308",
    ),
    "EntityTooSmall": (
        400,
        "Your proposed upload is smaller than the minimum allowed size.",
        "0042-00000311",
    ),
    "EntityTooLarge": (400, "Your proposed upload exceeds the maximum allowed size.", "0016-00000020"),
    "MalformedXML": (
        400,
        "The XML you provided was not well-formed or did not validate against our published schema.",
        "0042-00000216",
    ),
    "InvalidRange": (416, "The requested range cannot be satisfied.", "0026-00000004"),
    "MethodNotAllowed": (405, "The specified method is not allowed against this resource.", "0001-00000405"),
    "NotImplemented": (501, "This operation is not implemented by the OSS sandbox.", "0001-00000501"),
    "InternalError": (500, "We encountered an internal error. Please try again.", "0001-00000500"),
    "ServiceUnavailable": (503, "Please reduce your request rate.", "0001-00000503"),
}


class OssApiError(Exception):
    """An error answer; raised by handlers and rendered by the server.

    :param code: OSS error code (a key of :data:`ERRORS`, or a throttling code with ``status``).
    :param message: human-readable message; defaults to the standard one for ``code``.
    :param status: HTTP status; defaults to the standard one for ``code``.
    :param details: extra ``<Error>`` children (e.g. ``Key``, ``BucketName``, ``StringToSign``).
    """

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        status: int | None = None,
        details: dict[str, str] | None = None,
    ) -> None:
        default_status, default_message, ec = ERRORS.get(code, (500, code, "0001-00000000"))
        self.code = code
        self.status = status or default_status
        self.message = message or default_message
        self.ec = ec
        self.details = details or {}
        super().__init__(f"{self.status} {code}: {self.message}")

    def to_xml(self, request_id: str, host_id: str) -> bytes:
        root = ElementTree.Element("Error")
        for tag, text in (
            ("Code", self.code),
            ("Message", self.message),
            ("RequestId", request_id),
            ("HostId", host_id),
        ):
            ElementTree.SubElement(root, tag).text = text
        for tag, text in self.details.items():
            ElementTree.SubElement(root, tag).text = text
        ElementTree.SubElement(root, "EC").text = self.ec
        ElementTree.SubElement(root, "RecommendDoc").text = f"https://api.aliyun.com/troubleshoot?q={self.ec}"
        return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding="utf-8")

    def headers(self, request_id: str, host_id: str, *, head: bool) -> dict[str, str]:
        """Headers of the error answer; HEAD answers carry the XML base64-encoded in ``x-oss-err``."""
        headers = {"x-oss-ec": self.ec, "Content-Type": "application/xml"}
        if head:
            headers["x-oss-err"] = base64.b64encode(self.to_xml(request_id, host_id)).decode("ascii")
        return headers
