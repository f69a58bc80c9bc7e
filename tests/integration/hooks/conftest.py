"""Fixtures for the hook tests: sandbox stand-ins started per test, exposed as Airflow connections.

Connections come from ``AIRFLOW_CONN_<ID>`` environment variables (JSON), exactly the shape the DAGs
use: ``mssql_source``, ``mssql_target``, ``oss_migration``, ``rds_migration``.

The RDS stand-in restores into a real target engine (``sandbox.mssql.engine.Instance``, 2019 Standard);
the backups it restores are real ones taken on a real source engine (:func:`source_backups`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from hooks._retry import RetryPolicy
from sandbox.mssql.engine import Instance
from tests.sandbox.rds import engines as rds_engines
from tests.sandbox.rds.engines import BackupChain

OSS_KEY_ID = "LTAI5tHookOssTest"
OSS_SECRET = "oss-Hook-S3cret/+=value"
RDS_KEY_ID = "LTAI5tHookRdsTest"
RDS_SECRET = "rds-Hook-S3cret&/+=value"
SQL_PASSWORD = "Sql-P@ss'w]rd-ü"
REGION = "cn-hangzhou"
BUCKET = "migration-bkt"
IA_BUCKET = "archive-bkt"
SSE_BUCKET = "encrypted-bkt"
FAR_BUCKET = "shanghai-bkt"
INSTANCE_ID = "rm-hooktest0001"
#: Every secret the tests hand out; none may appear in logs, exception texts or reprs.
SECRETS = (OSS_SECRET, RDS_SECRET, SQL_PASSWORD)
#: Fast retries for fault-injection tests.
FAST_RETRY = RetryPolicy(attempts=6, initial_wait=0.01, max_wait=0.05)

PROXY_VARS = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
)


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, conn: dict[str, Any]) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start from no proxy settings; proxy tests set their own."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _capture_everything(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


@pytest.fixture
def assert_no_secrets(caplog: pytest.LogCaptureFixture):
    """Function: fail if a secret appears in the captured log or in the given texts."""

    def check(*texts: object) -> None:
        haystacks = [caplog.text, *(str(t) for t in texts), *(repr(t) for t in texts)]
        for secret in SECRETS:
            for hay in haystacks:
                assert secret not in hay, "a secret leaked into logs or an exception text"

    return check


# ---- OSS ----------------------------------------------------------------------------------------


@pytest.fixture
def oss_server(tmp_path: Path):
    from sandbox.oss import OssConfig, ThreadedOssServer

    config = OssConfig.from_dict(
        {
            "data_dir": "oss-data",
            "accounts": {OSS_KEY_ID: OSS_SECRET},
            "buckets": {
                BUCKET: {"region": REGION},
                IA_BUCKET: {"region": REGION, "storage_class": "IA"},
                SSE_BUCKET: {"region": REGION, "sse": "KMS"},
                FAR_BUCKET: {"region": "cn-shanghai"},
            },
            "faults": {"seed": 11},
        },
        base_dir=tmp_path,
    )
    with ThreadedOssServer(config) as server:
        yield server


def oss_connection(endpoint: str, secret: str = OSS_SECRET, **extra: Any) -> dict[str, Any]:
    return {
        "conn_type": "oss",
        "extra": {
            "auth_type": "AK",
            "access_key_id": OSS_KEY_ID,
            "access_key_secret": secret,
            "region": REGION,
            "endpoint": endpoint,
            **extra,
        },
    }


@pytest.fixture
def oss_hook(oss_server, monkeypatch):
    from hooks.oss import OssMigrationHook

    set_connection(monkeypatch, "oss_migration", oss_connection(oss_server.endpoint))
    return OssMigrationHook("oss_migration", retry=FAST_RETRY)


@pytest.fixture
def make_file(tmp_path: Path):
    """Factory: a local file of ``size`` pseudo-random bytes."""
    import random

    def make(size: int, name: str = "Sales_FULL_20261124101500.bak", seed: int = 1) -> Path:
        path = tmp_path / "worker" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(random.Random(seed).randbytes(size))
        return path

    return make


# ---- RDS ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SourceBackups:
    """Real backups taken on a real source engine (``sandbox.mssql.engine.Instance``) over TDS.

    ``chain``: SalesDB (FULL recovery) full + log1..log3 with inserts between, and the source rows after
    each; ``enterprise_full``: a full backup of a SalesDB using Partitioning, which a Standard target
    cannot open (error 905).
    """

    chain: BackupChain
    enterprise_full: Path


@pytest.fixture(scope="session")
def source_backups(tmp_path_factory: pytest.TempPathFactory) -> SourceBackups:
    """Backup files are read-only inputs: taken once per session, uploaded into each test's OSS."""
    chain = rds_engines.make_backup_chain(tmp_path_factory.mktemp("source-chain"))
    enterprise_full = rds_engines.make_full_backup(
        tmp_path_factory.mktemp("source-enterprise"), sku_features=["Partitioning"]
    )
    return SourceBackups(chain, enterprise_full)


def rds_connection(endpoint: str, secret: str = RDS_SECRET) -> dict[str, Any]:
    return {
        "conn_type": "alibaba_cloud",
        "extra": {
            "auth_type": "AK",
            "access_key_id": RDS_KEY_ID,
            "access_key_secret": secret,
            "region": REGION,
            "endpoint": endpoint,
            "protocol": "http",
        },
    }


@pytest.fixture
def target_engine(tmp_path: Path) -> Instance:
    """The RDS instance's real SQL engine (SQL Server 2019 Standard) that the stand-in restores into."""
    return rds_engines.target_instance(tmp_path / "target")


@pytest.fixture
def rds_settings() -> dict[str, Any]:
    """RdsConfig fields of the stand-in; tests change entries before ``rds_server`` starts."""
    return {
        "instance_id": INSTANCE_ID,
        "region": REGION,
        "accounts": {RDS_KEY_ID: RDS_SECRET},
        "storage_gb": 20,
        "max_databases": 50,
        "timing": {"step_delay_s": 0, "open_delay_s": 0, "checkdb_delay_s": 0},
        "faults": {"seed": 3},
    }


@pytest.fixture
def rds_server(rds_settings, oss_server, target_engine, tmp_path: Path):
    from sandbox.clock import SandboxClock
    from sandbox.rds.config import RdsConfig
    from sandbox.rds.oss_source import StoreObjectSource
    from sandbox.rds.server import ThreadedRdsServer

    with ThreadedRdsServer(
        RdsConfig.from_dict(rds_settings),
        target_engine,
        StoreObjectSource(oss_server.store),
        tmp_path / "rds",
        clock=SandboxClock(),
    ) as server:
        yield server


@pytest.fixture
def rds_hook(rds_server, monkeypatch):
    """The hook on the stand-in, reading the stand-in's clock for its list windows."""
    from hooks.rds import RdsMigrationHook

    set_connection(monkeypatch, "rds_migration", rds_connection(rds_server.endpoint))
    return RdsMigrationHook("rds_migration", retry=FAST_RETRY, clock=rds_server.clock.now)


# ---- SQL Server ---------------------------------------------------------------------------------

#: The backup folder as the SQL Server host sees it (mapped to a local folder by the engine).
SERVER_BACKUP_DIR = "/var/opt/mssql/backup"
HOSTILE_DB = "we]ird 'db' ü"


@pytest.fixture
def mssql_server(tmp_path: Path):
    from sandbox.mssql.server import ThreadedTdsServer

    (tmp_path / "backups").mkdir()
    config = {
        "name": "SRC01",
        "product_version": "15.0.4153.1",
        "edition": "Enterprise Edition (64-bit)",
        "path_map": {SERVER_BACKUP_DIR: "backups"},
        "logins": {
            "sa": {"password": SQL_PASSWORD, "sysadmin": True},
            "backup_svc": {"password": SQL_PASSWORD},  # db_backupoperator only
        },
        "databases": {
            HOSTILE_DB: {
                "tables": [{"name": "orders", "rows": 40}, {"schema": "s]x", "name": "t 'q'", "rows": 3}],
                "users": {"backup_svc": ["db_backupoperator"]},
            },
            "Simple": {"recovery_model": "SIMPLE"},
            "Broken": {"corrupt": True},
            "Secret": {"tde": True, "sku_features": ["Partitioning", "DataCompression"]},
        },
    }
    instance = Instance.from_config(config, tmp_path)
    server = ThreadedTdsServer(instance).start()
    try:
        yield server
    finally:
        server.stop()
        close = getattr(instance, "close", None)
        if close is not None:
            close()


def mssql_connection(port: int, password: str = SQL_PASSWORD, login: str = "sa") -> dict[str, Any]:
    return {
        "conn_type": "mssql",
        "host": "127.0.0.1",
        "port": port,
        "login": login,
        "password": password,
        "schema": "master",
        "extra": {"tds_version": "7.4"},
    }


@pytest.fixture
def mssql_hook(mssql_server, monkeypatch):
    from hooks.mssql import MigrationMsSqlHook

    set_connection(monkeypatch, "mssql_source", mssql_connection(mssql_server.port))
    return MigrationMsSqlHook(mssql_conn_id="mssql_source")
