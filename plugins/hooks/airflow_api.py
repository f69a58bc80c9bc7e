"""Read Airflow's own settings through its public REST API (Airflow 3 tasks have no metadata-DB access).

Preflight uses it to check the pool that serialises a database's log chain: it must exist, have one slot
and count deferred tasks (``include_deferred``), or a deferred wait frees the slot and the log-shipping DAG
runs in between. Connection (conn_type ``http``): host = the API server's base URL (``https://airflow.example``),
login/password = an Airflow user allowed to read pools. The token comes from ``POST /auth/token``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow.sdk import BaseHook


class AirflowApiError(Exception):
    """The API answered something else than the pool (unreachable, refused, unexpected)."""


@dataclass(frozen=True)
class PoolFacts:
    name: str
    slots: int
    include_deferred: bool


class AirflowApiHook(BaseHook):
    """:param airflow_api_conn_id: Airflow connection to the API server (conn_type ``http``)."""

    conn_name_attr = "airflow_api_conn_id"
    default_conn_name = "airflow_api"
    conn_type = "http"
    hook_name = "Airflow REST API (RDS migration)"

    def __init__(self, airflow_api_conn_id: str = default_conn_name, *, transport: Any = None) -> None:
        super().__init__()
        self.airflow_api_conn_id = airflow_api_conn_id
        self._transport = transport  # tests pass an httpx transport

    def get_pool(self, name: str) -> PoolFacts | None:
        """The pool ``name``, or None when it does not exist."""
        import httpx

        conn = self.get_connection(self.airflow_api_conn_id)
        base, shown = api_base_url(conn.host or "", conn.port, conn.schema)
        try:
            with httpx.Client(base_url=base, timeout=15.0, transport=self._transport) as client:
                token = client.post("/auth/token", json={"username": conn.login, "password": conn.password})
                if token.status_code >= 400:
                    raise AirflowApiError(
                        f"the Airflow API at {shown} refused the login of connection "
                        f"{self.airflow_api_conn_id!r} (HTTP {token.status_code}): check its login and password"
                    )
                headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
                response = client.get(f"/api/v2/pools/{name}", headers=headers)
                if response.status_code == 404:
                    return None
                if response.status_code >= 400:
                    raise AirflowApiError(
                        f"the Airflow API answered HTTP {response.status_code} for pool {name!r}: the user of "
                        f"connection {self.airflow_api_conn_id!r} may not read pools"
                    )
                body = response.json()
                return PoolFacts(str(body["name"]), int(body["slots"]), bool(body.get("include_deferred")))
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            raise AirflowApiError(
                f"cannot reach the Airflow API at {shown} (connection {self.airflow_api_conn_id!r}): "
                f"{type(error).__name__}"
            ) from error
        except (ValueError, KeyError, TypeError) as error:  # not the API's JSON: another service answered
            raise AirflowApiError(
                f"{shown} (connection {self.airflow_api_conn_id!r}) did not answer as the Airflow API does "
                f"({type(error).__name__}): check the connection's host"
            ) from error


def api_base_url(host: str, port: int | None, schema: str | None) -> tuple[str, str]:
    """The API's base URL from an http connection (host with or without scheme and port), and the same
    without any user:password@ part, for messages."""
    from urllib.parse import urlsplit, urlunsplit

    raw = host.strip().rstrip("/")
    if not raw.startswith(("http://", "https://")):
        raw = f"{schema or 'http'}://{raw}"
    parts = urlsplit(raw)
    try:
        has_port = parts.port is not None
    except ValueError:  # a port that is not a number: left for httpx to refuse
        has_port = True
    netloc = parts.netloc if has_port or not port else f"{parts.netloc}:{port}"
    base = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    shown = urlunsplit((parts.scheme, netloc.rpartition("@")[2], parts.path, "", ""))
    return base, shown
