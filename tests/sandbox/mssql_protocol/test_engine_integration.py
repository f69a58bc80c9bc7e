"""The TDS server in front of the real sandbox engine, through pymssql and python-tds."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pymssql
import pytds
import pytest
import yaml

from sandbox.mssql.server import ThreadedTdsServer
from sandbox.mssql.workload import run_workload
from tests.sandbox.mssql_protocol.conftest import connect_error_in_fresh_process

engine = pytest.importorskip("sandbox.mssql.engine")

REPO = Path(__file__).resolve().parents[3]
PASSWORD = "P@ss'w]rd ü"
CONFIG = {
    "name": "SRC01",
    "logins": {"sa": {"password": PASSWORD, "sysadmin": True}},
    "databases": {"shop": {}, "Sales ]'ü": {}},
}


@pytest.fixture
def engine_server(tmp_path):
    instance = engine.Instance.from_config(CONFIG, tmp_path)
    with ThreadedTdsServer(instance) as server:
        yield instance, server


def pymssql_connect(server, database="shop", tds_version="7.4", **kwargs):
    return pymssql.connect(
        server="127.0.0.1",
        port=server.port,
        user="sa",
        password=PASSWORD,
        database=database,
        tds_version=tds_version,
        autocommit=True,
        login_timeout=10,
        **kwargs,
    )


@pytest.mark.parametrize("tds_version", ["7.4", "7.1"])
def test_pymssql_create_insert_select(engine_server, tds_version):
    _instance, server = engine_server
    now = dt.datetime(2024, 3, 4, 5, 6, 7, 123000)
    with pymssql_connect(server, tds_version=tds_version) as conn:
        cursor = conn.cursor()
        cursor.execute(
            "CREATE TABLE dbo.orders (id int PRIMARY KEY, customer nvarchar(100), amount decimal(12,2), "
            "updated_at datetime2)"
        )
        cursor.execute(
            "INSERT INTO dbo.orders (id, customer, amount, updated_at) VALUES (%d, %s, %s, %s)",
            (1, "O'Brien ]ü 漢字", Decimal("12.34"), now),
        )
        assert cursor.rowcount == 1
        cursor.execute("SELECT id, customer, amount FROM dbo.orders WHERE id = %d", (1,))
        assert cursor.fetchall() == [(1, "O'Brien ]ü 漢字", Decimal("12.34"))]
        cursor.execute("SELECT COUNT(*) FROM dbo.orders; SELECT DB_NAME()")
        assert cursor.fetchall() == [(1,)]
        assert cursor.nextset()
        assert cursor.fetchall() == [("shop",)]


def test_pymssql_database_with_awkward_name(engine_server):
    _instance, server = engine_server
    with pymssql_connect(server, database="Sales ]'ü") as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT DB_NAME()")
        assert cursor.fetchone() == ("Sales ]'ü",)


def test_engine_errors_reach_pymssql(engine_server):
    _instance, server = engine_server
    with pymssql_connect(server) as conn:
        cursor = conn.cursor()
        with pytest.raises(pymssql.ProgrammingError) as excinfo:
            cursor.execute("SELECT * FROM dbo.does_not_exist")
        assert excinfo.value.args[0] == 208
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_engine_bad_password(engine_server):
    _instance, server = engine_server
    number, text = connect_error_in_fresh_process(server.port, user="sa", password="nope")
    assert number == 18456 and "nope" not in text


def test_pytds_parameters_and_transactions(engine_server):
    instance, server = engine_server
    with pymssql_connect(server) as setup:
        setup.cursor().execute(
            "CREATE TABLE dbo.t (id int PRIMARY KEY, name nvarchar(50), lsn numeric(25,0))"
        )
    big_lsn = Decimal("98765432109876543210987")
    with pytds.connect(
        dsn="127.0.0.1", port=server.port, user="sa", password=PASSWORD, database="shop", autocommit=False
    ) as conn:
        with conn.cursor() as cursor:
            cursor.execute("INSERT INTO dbo.t (id, name, lsn) VALUES (%s, %s, %s)", (1, "it's ]", big_lsn))
        conn.rollback()
        with conn.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM dbo.t")
            assert cursor.fetchone() == (0,)
            cursor.execute("INSERT INTO dbo.t (id, name, lsn) VALUES (%s, %s, %s)", (2, "kept ü", big_lsn))
        conn.commit()
        with conn.cursor() as cursor:
            cursor.execute("SELECT id, name, lsn FROM dbo.t")
            assert cursor.fetchall() == [(2, "kept ü", big_lsn)]


def test_workload_survives_read_only_with_rollback_immediate(engine_server):
    _instance, server = engine_server
    params = dict(server="127.0.0.1", port=server.port, user="sa", password=PASSWORD, database="shop")
    stop = threading.Event()
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("stats", run_workload(params, 40, None, stop)))
    worker.start()
    try:
        time.sleep(0.8)
        with pymssql_connect(server, database="master") as admin:
            cursor = admin.cursor()
            try:
                cursor.execute("ALTER DATABASE [shop] SET READ_ONLY WITH ROLLBACK IMMEDIATE")
            except pymssql.OperationalError as e:  # 5060 (severity 10) names the rolled-back sessions:
                assert e.args[0] == 5060  # pymssql raises on severity > 6; the change is made
            time.sleep(0.8)
            cursor.execute("ALTER DATABASE [shop] SET READ_WRITE WITH ROLLBACK IMMEDIATE")
            cursor.execute("SELECT COUNT(*) FROM [shop].dbo.orders")
            count_after_freeze = cursor.fetchone()[0]
        time.sleep(2.5)
    finally:
        stop.set()
        worker.join(10)
    stats = result["stats"]
    assert stats.refused + stats.disconnects >= 1
    with pymssql_connect(server) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT COUNT(*) FROM dbo.orders")
        final_count = cursor.fetchone()[0]
    assert final_count == stats.inserted and final_count > count_after_freeze


def test_cli_serve_with_a_yaml_config(tmp_path):
    config_file = tmp_path / "instance.yaml"
    config_file.write_text(yaml.safe_dump(CONFIG | {"data_dir": "data"}), encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.mssql.cli", "serve", "--port", "0", "--config", str(config_file)],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("sandbox-mssql listening on "), line + proc.stderr.read()
        port = int(line.rsplit(":", 1)[1])
        with pymssql.connect(
            server="127.0.0.1", port=port, user="sa", password=PASSWORD, database="shop", autocommit=True
        ) as conn:
            cursor = conn.cursor()
            cursor.execute("SELECT @@SERVERNAME")
            assert cursor.fetchone() == ("SRC01",)
        proc.terminate()
        _out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert PASSWORD not in err
