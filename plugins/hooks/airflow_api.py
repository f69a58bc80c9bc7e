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
        base = (conn.host or "").rstrip("/")
        if conn.port and base.count(":") < 2:
            base = f"{base}:{conn.port}"
        if not base.startswith(("http://", "https://")):
            base = f"{conn.schema or 'http'}://{base}"
        with httpx.Client(base_url=base, timeout=15.0, transport=self._transport) as client:
            try:
                token = client.post("/auth/token", json={"username": conn.login, "password": conn.password})
                if token.status_code >= 400:
                    raise AirflowApiError(
                        f"the Airflow API at {base} refused the login of connection "
                        f"{self.airflow_api_conn_id!r} (HTTP {token.status_code}): check its login and password"
                    )
                headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
                response = client.get(f"/api/v2/pools/{name}", headers=headers)
            except httpx.HTTPError as error:
                raise AirflowApiError(
                    f"cannot reach the Airflow API at {base} (connection {self.airflow_api_conn_id!r}): "
                    f"{type(error).__name__}"
                ) from error
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise AirflowApiError(
                f"the Airflow API answered HTTP {response.status_code} for pool {name!r}: the user of connection "
                f"{self.airflow_api_conn_id!r} may not read pools"
            )
        body = response.json()
        return PoolFacts(str(body["name"]), int(body["slots"]), bool(body.get("include_deferred")))
