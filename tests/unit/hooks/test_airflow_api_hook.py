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


@pytest.mark.parametrize(
    ("host", "port", "base"),
    [
        ("airflow:8080", 8080, "http://airflow:8080"),  # the port in the host is not added twice
        ("airflow", 8080, "http://airflow:8080"),
        ("https://airflow.example/", None, "https://airflow.example"),
    ],
)
def test_the_base_url_comes_from_host_and_port_as_people_write_them(host, port, base):
    from hooks.airflow_api import api_base_url

    assert api_base_url(host, port, None)[0] == base


def test_credentials_written_into_the_host_never_reach_a_message(monkeypatch):
    conn = {"conn_type": "http", "host": "http://reader:s3cret-pw@airflow.example:8080", "login": "reader"}
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", json.dumps(conn))

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(AirflowApiError) as error:
        AirflowApiHook(transport=httpx.MockTransport(unreachable)).get_pool("mssql_migration_sales")
    assert "http://airflow.example:8080" in str(error.value) and "s3cret-pw" not in str(error.value)


def test_an_answer_that_is_not_the_apis_json_is_a_clear_error_not_a_traceback():
    def not_airflow(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>a proxy's login page</html>")

    with pytest.raises(AirflowApiError, match="did not answer as the Airflow API does"):
        AirflowApiHook(transport=httpx.MockTransport(not_airflow)).get_pool("mssql_migration_sales")
