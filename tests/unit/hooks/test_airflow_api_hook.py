"""The pool check's reading of the Airflow API: token, then the pool; each answer becomes a clear outcome.

The real API answers in ``make demo`` (preflight's "Airflow pool" check passes there); these narrow
tests pin each answer with an httpx transport."""

from __future__ import annotations

import json

import httpx
import pytest

from hooks.airflow_api import AirflowApiError, AirflowApiHook, PoolFacts


@pytest.fixture(autouse=True)
def connection(monkeypatch):
    conn = {"conn_type": "http", "host": "http://airflow.example:8080", "login": "reader", "password": "pw"}
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", json.dumps(conn))


def api(pool_status: int = 200, pool: dict | None = None, token_status: int = 200) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/token":
            assert json.loads(request.content) == {"username": "reader", "password": "pw"}
            return httpx.Response(token_status, json={"access_token": "t0k"})
        assert request.url.path == "/api/v2/pools/mssql_migration_sales"
        assert request.headers["Authorization"] == "Bearer t0k"
        return httpx.Response(pool_status, json=pool or {"detail": "not found"})

    return httpx.MockTransport(handle)


def test_a_pool_is_read_with_its_slots_and_deferred_setting():
    body = {"name": "mssql_migration_sales", "slots": 1, "include_deferred": True}
    found = AirflowApiHook(transport=api(pool=body)).get_pool("mssql_migration_sales")
    assert found == PoolFacts("mssql_migration_sales", 1, True)


def test_a_missing_pool_is_none_and_refusals_name_the_connection():
    assert AirflowApiHook(transport=api(pool_status=404)).get_pool("mssql_migration_sales") is None
    with pytest.raises(AirflowApiError, match="refused the login of connection 'airflow_api'"):
        AirflowApiHook(transport=api(token_status=401)).get_pool("mssql_migration_sales")
    with pytest.raises(AirflowApiError, match="may not read pools"):
        AirflowApiHook(transport=api(pool_status=403)).get_pool("mssql_migration_sales")
    assert "pw" not in str(AirflowApiError)
