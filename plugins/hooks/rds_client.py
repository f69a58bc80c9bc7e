"""How the RDS hook talks to the Tea SDK: its errors mapped to one exception with advice, which of them
are worth a retry (or leave a call's outcome unknown), and the proxy bypass darabonba needs.

Pure transport concerns, kept apart from :mod:`hooks.rds` (the hook); everything is re-exported there.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from typing import Any
from urllib.parse import urlsplit

from hooks.rds_errors import advice_for

# The Tea SDK and requests are imported where they are used, never at import time: operators import
# the hook, and the DAG file imports the operators (parse time must stay free of SDKs).

log = logging.getLogger(__name__)


# ---- errors -------------------------------------------------------------------------------------


class RdsApiError(Exception):
    """An RDS API call, migration task or backup file failed.

    :param code: error code (``InvalidDBName``...), or the task/file status (``Failed``, ``RestoreFailed``).
    :param message: what failed, as the service said it.
    :param advice: likely cause and fix (see :func:`hooks.rds_errors.advice_for`).
    :param request_id: RDS request id, for a support ticket.
    :param status_code: HTTP status of the API error (0 for task/file failures and network errors).
    """

    def __init__(
        self, code: str, message: str, advice: str = "", request_id: str = "", status_code: int = 0
    ) -> None:
        text = f"{code}: {message}" if code else message
        if advice:
            text += f" — {advice}"
        if request_id:
            text += f" [request id {request_id}]"
        super().__init__(text)
        self.code = code
        self.message = message
        self.advice = advice
        self.request_id = request_id
        self.status_code = status_code


class RdsWaitTimeoutError(RdsApiError, TimeoutError):
    """A wait for a task or file state ran out of time (the task may still finish)."""


def _inner(exc: BaseException) -> BaseException:
    return getattr(exc, "inner_exception", None) or exc


def is_throttling(exc: BaseException) -> bool:
    """Throttling: refused before any work was done, so always safe to repeat."""
    from alibabacloud_tea_openapi.exceptions import ThrottlingException

    return isinstance(exc, ThrottlingException) or str(getattr(exc, "code", "") or "").startswith(
        "Throttling"
    )


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: throttling, 5xx and network failures; never other 4xx."""
    import requests
    from alibabacloud_tea_openapi.exceptions import ServerException
    from darabonba.exceptions import RetryError
    from Tea.exceptions import RetryError as TeaRetryError
    from Tea.exceptions import UnretryableException

    if is_throttling(exc) or isinstance(exc, ServerException):
        return True
    code = str(getattr(exc, "code", "") or "")
    if code in ("ServiceUnavailable", "InternalError"):
        return True
    status = _status_of(exc)
    if status is not None and status >= 500:
        return True
    if isinstance(exc, UnretryableException):
        exc = _inner(exc)
    return isinstance(
        exc, RetryError | TeaRetryError | ConnectionError | TimeoutError | requests.RequestException
    )


def is_ambiguous(exc: BaseException) -> bool:
    """A failure after which a call may or may not have been carried out: 5xx, timeout, lost connection.

    For ``CreateMigrateTask`` (no ClientToken, R5) such a failure must not be retried blindly.
    """
    return is_transient(exc) and not is_throttling(exc)


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None) or getattr(exc, "statusCode", None)
    return int(status) if isinstance(status, int) or (isinstance(status, str) and status.isdigit()) else None


def retry_after_seconds(exc: BaseException) -> float | None:
    """Seconds a throttling error asked to wait (``x-acs-retry-after`` is in milliseconds), or None."""
    value = getattr(exc, "retry_after", None)
    if value is None:
        return None
    try:
        return max(float(value) / 1000.0, 0.0)
    except (TypeError, ValueError):
        return None


def describe(exc: BaseException) -> str:
    """Short, secret-free description of an SDK error for the log."""
    code = getattr(exc, "code", None)
    status = _status_of(exc)
    if code:
        return f"{code}" + (f" (HTTP {status})" if status else "")
    inner = _inner(exc)
    return f"network error ({type(inner).__name__})"


def map_error(exc: BaseException, action: str) -> RdsApiError:
    """Turn a Tea/darabonba exception into one :class:`RdsApiError` with advice.

    :param exc: the exception raised by the SDK.
    :param action: what the hook was doing, e.g. ``"CreateMigrateTask for 'Sales'"``.
    """
    data = getattr(exc, "data", None)
    data = data if isinstance(data, dict) else {}
    code = str(getattr(exc, "code", "") or data.get("Code") or "")
    if code == "None":
        code = ""
    message = str(data.get("Message") or getattr(exc, "message", "") or "")
    request_id = str(data.get("RequestId") or getattr(exc, "request_id", "") or "")
    if request_id == "None":
        request_id = ""
    status = _status_of(exc) or 0
    if not code:
        inner = _inner(exc)
        reason = getattr(inner, "message", None) or type(inner).__name__
        return RdsApiError(
            "NetworkError",
            f"{action} failed: cannot reach the RDS API ({reason})",
            "check the endpoint/protocol of the Airflow connection, the network and HTTP(S)_PROXY",
        )
    advice = advice_for(code) or advice_for(message)
    if not advice and is_transient(exc):
        advice = "the API kept failing after retries: try again later"
    return RdsApiError(code, f"{action} failed: {message}", advice, request_id, status)


@functools.cache
def sdk_errors() -> tuple[type[BaseException], ...]:
    """What the SDK raises (wrapped by :func:`map_error`)."""
    import requests
    from darabonba.exceptions import RetryError
    from Tea.exceptions import RetryError as TeaRetryError
    from Tea.exceptions import TeaException

    return (TeaException, RetryError, TeaRetryError, ConnectionError, TimeoutError, requests.RequestException)


# ---- proxy bypass --------------------------------------------------------------------------------


@functools.cache
def _direct_adapter_class() -> type:
    """A requests adapter that never uses a proxy (darabonba passes HTTP(S)_PROXY and ignores NO_PROXY)."""
    import requests

    class DirectAdapter(requests.adapters.HTTPAdapter):
        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            kwargs["proxies"] = {}
            return super().send(request, *args, **kwargs)

    return DirectAdapter


def _is_direct_host(protocol: str, host: str) -> bool:
    """True if ``host`` (``name[:port]``) must bypass proxies: loopback, or listed in NO_PROXY."""
    import requests

    hostname = urlsplit(f"//{host}").hostname or ""
    try:
        if ipaddress.ip_address(hostname).is_loopback:
            return True
    except ValueError:
        if hostname in ("localhost", "localhost.localdomain"):
            return True
    return requests.utils.should_bypass_proxies(f"{protocol}://{host}/", no_proxy=None)


def _bypass_env_proxy(protocol: str, host: str, max_idle_conns: int | None) -> bool:
    """Make darabonba's pooled session for ``protocol://host`` ignore HTTP(S)_PROXY; True if done.

    darabonba (1.0.x) reads HTTP(S)_PROXY itself, passes them to ``requests`` explicitly and ignores
    NO_PROXY, so calls to a local or NO_PROXY endpoint would go through the proxy. Its session pool is
    keyed by ``<protocol>://<host>:<port>:pool=<n>`` (the request port is always 80); mounting an adapter
    for this exact host on that session removes the proxy for it and for nothing else.
    """
    try:
        from darabonba.core import DaraCore

        pool = DaraCore._resolve_pool_maxsize({"maxIdleConns": max_idle_conns})
        key = f"{protocol.lower()}://{host.rstrip('/')}:80:pool={pool}"
        session = DaraCore._get_session(
            session_key=key, protocol=protocol, tls_min_version=None, verify=True, pool_size=pool
        )
    except (ImportError, AttributeError, TypeError) as e:
        log.warning(
            "Cannot bypass HTTP(S)_PROXY for %s (darabonba changed: %s); unset the proxy variables", host, e
        )
        return False
    session.mount(
        f"{protocol.lower()}://{host.rstrip('/')}",
        _direct_adapter_class()(pool_connections=1, pool_maxsize=pool),
    )
    return True
