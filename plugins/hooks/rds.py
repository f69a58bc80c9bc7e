"""ApsaraDB RDS hook for the migration: instance facts, the UPDF migration task, file states, open database.

Thin layer over the Tea SDK (``alibabacloud_rds20140815``). The client is built on first use from the
Airflow connection; retries (throttling with retry-after, 5xx, network) are done here with tenacity,
because the SDK's ``RuntimeOptions(autoretry=...)`` is ignored.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from airflow.sdk import BaseHook

from hooks._retry import RetryPolicy, call_with_retries
from hooks.rds_errors import advice_for

T = TypeVar("T")
log = logging.getLogger(__name__)

# ---- states as data -----------------------------------------------------------------------------

#: Migration task ``Status`` values.
TASK_SUCCESS_STATES = frozenset({"Success"})
TASK_FAILURE_STATES = frozenset({"Failed"})
#: Restored and waiting for the next incremental file (Access Pending).
TASK_WAITING_STATES = frozenset({"Waiting"})
TASK_INTERMEDIATE_STATES = frozenset({"NoStart", "Running"})

#: Backup file (``DescribeOssDownloads``) ``Status`` values.
FILE_SUCCESS_STATES = frozenset({"Restored"})
FILE_FAILURE_STATES = frozenset(
    {"DownloadFailed", "VerifyFailed", "CheckFailed", "RestoreFailed", "DeleteFailed"}
)
FILE_INTERMEDIATE_STATES = frozenset({"NoStart", "Downloading", "Finished", "CheckSuccess", "Restoring"})
#: The local copy on the RDS host was removed (after a restore, or by a cleanup).
FILE_DELETED_STATES = frozenset({"Deleted"})

CHECK_DB_MODES = ("AsyncExecuteDBCheck", "SyncExecuteDBCheck")
#: ``EngineVersion`` suffix -> edition.
EDITION_BY_SUFFIX = {"ent": "ent", "ent_ha": "ent", "std": "std", "std_ha": "std", "web": "web", "exp": "exp"}
_TIME_FORMATS = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%MZ", "%Y-%m-%dT%H:%M:%S.%fZ")


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


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: throttling, 5xx and network failures; never other 4xx."""
    # The Tea SDK is imported where it is used, not at DAG parse time (operators import this module).
    import requests
    from alibabacloud_tea_openapi.exceptions import ServerException, ThrottlingException
    from darabonba.exceptions import RetryError
    from Tea.exceptions import RetryError as TeaRetryError
    from Tea.exceptions import UnretryableException

    if isinstance(exc, ThrottlingException | ServerException):
        return True
    code = str(getattr(exc, "code", "") or "")
    if code.startswith("Throttling") or code in ("ServiceUnavailable", "InternalError"):
        return True
    status = _status_of(exc)
    if status is not None and status >= 500:
        return True
    if isinstance(exc, UnretryableException):
        exc = _inner(exc)
    return isinstance(
        exc, RetryError | TeaRetryError | ConnectionError | TimeoutError | requests.RequestException
    )


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


# ---- values ------------------------------------------------------------------------------------


def parse_time(value: str | None) -> datetime | None:
    """Parse an RDS UTC time (``yyyy-MM-ddTHH:mm:ssZ`` or ``yyyy-MM-ddTHH:mmZ``); None if empty."""
    if not value:
        return None
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class InstanceFacts:
    """What preflight needs to know about the target RDS instance."""

    instance_id: str
    engine: str
    engine_version: str
    version_year: int | None  # 2019 for EngineVersion 2019_std_ha
    major_version: int | None  # SQL Server's own major version (15 for 2019), comparable with the source's
    edition: str
    storage_gb: int
    disk_used_bytes: int
    status: str
    region: str
    category: str
    lock_mode: str


@dataclass(frozen=True)
class MigrateTask:
    """One migration task (``DescribeMigrateTasks`` item or ``DescribeMigrateTaskById``)."""

    migrate_task_id: str
    db_name: str
    backup_mode: str
    status: str
    description: str
    create_time: datetime | None
    end_time: datetime | None
    is_db_replaced: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status in TASK_SUCCESS_STATES

    @property
    def failed(self) -> bool:
        return self.status in TASK_FAILURE_STATES

    @property
    def waiting(self) -> bool:
        return self.status in TASK_WAITING_STATES


@dataclass(frozen=True)
class OssDownload:
    """One backup file of a migration task (``DescribeOssDownloads`` item)."""

    file_name: str
    file_size_mb: str
    backup_mode: str
    is_available: str
    status: str
    description: str
    create_time: datetime | None
    end_time: datetime | None

    @property
    def failed(self) -> bool:
        return self.status in FILE_FAILURE_STATES


def _task_from_map(item: dict[str, Any]) -> MigrateTask:
    return MigrateTask(
        migrate_task_id=str(item.get("MigrateTaskId") or ""),
        db_name=str(item.get("DBName") or ""),
        backup_mode=str(item.get("BackupMode") or ""),
        status=str(item.get("Status") or ""),
        description=str(item.get("Description") or ""),
        create_time=parse_time(item.get("CreateTime")),
        end_time=parse_time(item.get("EndTime")),
        is_db_replaced=str(item.get("IsDBReplaced") or ""),
    )


def _download_from_map(item: dict[str, Any]) -> OssDownload:
    return OssDownload(
        file_name=str(item.get("FileName") or ""),
        file_size_mb=str(item.get("FileSize") or ""),
        backup_mode=str(item.get("BackupMode") or ""),
        is_available=str(item.get("IsAvailable") or ""),
        status=str(item.get("Status") or ""),
        description=str(item.get("Description") or ""),
        create_time=parse_time(item.get("CreateTime")),
        end_time=parse_time(item.get("EndTime")),
    )


def _items(body: dict[str, Any], outer: str, inner: str) -> list[dict[str, Any]]:
    wrapper = body.get(outer) or {}
    items = wrapper.get(inner) if isinstance(wrapper, dict) else wrapper
    return list(items or [])


# RDS names versions by year (EngineVersion 2019_std_ha); SQL Server reports its major version.
SQL_SERVER_MAJOR_BY_YEAR = {2008: 10, 2012: 11, 2014: 12, 2016: 13, 2017: 14, 2019: 15, 2022: 16, 2025: 17}


def parse_engine_version(engine_version: str) -> tuple[int | None, str]:
    """Split ``2019_std_ha`` into (2019, ``std``); edition is ``ent``, ``std``, ``web``, ``exp`` or ``""``."""
    head, _, suffix = engine_version.partition("_")
    year = int(head) if head.isdigit() else None
    if head == "2008r2" or head.lower() == "2008r2":
        year = 2008
    return year, EDITION_BY_SUFFIX.get(suffix.lower(), suffix.lower())


# ---- proxy bypass --------------------------------------------------------------------------------


@functools.cache
def _direct_adapter_class() -> type:
    """The requests adapter class, defined on first use (requests is not imported at DAG parse time)."""
    import requests.adapters

    class _DirectAdapter(requests.adapters.HTTPAdapter):
        """A requests adapter that never uses a proxy (darabonba passes HTTP(S)_PROXY, ignores NO_PROXY)."""

        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            kwargs["proxies"] = {}
            return super().send(request, *args, **kwargs)

    return _DirectAdapter


def _is_direct_host(protocol: str, host: str) -> bool:
    """True if ``host`` (``name[:port]``) must bypass proxies: loopback, or listed in NO_PROXY."""
    import requests.utils

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


# ---- hook ---------------------------------------------------------------------------------------


class RdsMigrationHook(BaseHook):
    """ApsaraDB RDS OpenAPI access for the migration (conn_type ``alibaba_cloud``).

    Connection extras: ``auth_type`` ``"AK"``, ``access_key_id``, ``access_key_secret`` (login/password as
    fallback), ``region`` (required), optional ``endpoint`` (VPC endpoint or ``127.0.0.1:PORT``) and
    ``protocol`` (``https`` default, ``http`` for the sandbox). With no key pair the Alibaba default
    credential chain is used (env, ECS RAM role, STS).

    :param rds_conn_id: Airflow connection id.
    :param retry: retry policy for throttling, 5xx and network errors.
    :param read_timeout: seconds to wait for a response.
    :param connect_timeout: seconds to wait for a connection.
    """

    conn_name_attr = "rds_conn_id"
    default_conn_name = "alibaba_cloud_default"
    conn_type = "alibaba_cloud"
    hook_name = "ApsaraDB RDS (RDS migration)"

    def __init__(
        self,
        rds_conn_id: str = default_conn_name,
        *,
        retry: RetryPolicy | None = None,
        read_timeout: float = 30.0,
        connect_timeout: float = 10.0,
    ) -> None:
        super().__init__()
        self.rds_conn_id = rds_conn_id
        self.retry = retry or RetryPolicy()
        self.read_timeout = read_timeout
        self.connect_timeout = connect_timeout

    def __repr__(self) -> str:
        return f"<{type(self).__name__} rds_conn_id={self.rds_conn_id!r}>"

    @functools.cached_property
    def region(self) -> str:
        """Region id of the connection, e.g. ``cn-hangzhou``."""
        region = self.get_connection(self.rds_conn_id).extra_dejson.get("region")
        if not region:
            raise RdsApiError(
                "MissingRegion",
                f"connection {self.rds_conn_id!r} has no 'region' extra",
                "set it, e.g. cn-hangzhou",
            )
        return str(region)

    @functools.cached_property
    def client(self) -> Any:
        """The SDK client, built on first use."""
        from alibabacloud_rds20140815.client import Client
        from alibabacloud_tea_openapi.models import Config

        conn = self.get_connection(self.rds_conn_id)
        extra = conn.extra_dejson
        ak = extra.get("access_key_id") or conn.login or ""
        sk = extra.get("access_key_secret") or conn.password or ""
        protocol = str(extra.get("protocol") or "https").lower()
        if protocol not in ("http", "https"):
            raise RdsApiError(
                "InvalidProtocol", f"protocol {protocol!r} of {self.rds_conn_id!r}", "use https or http"
            )
        config = Config(
            region_id=self.region,
            endpoint=extra.get("endpoint") or None,
            protocol=protocol,
            read_timeout=int(self.read_timeout * 1000),
            connect_timeout=int(self.connect_timeout * 1000),
        )
        if ak and sk:
            config.access_key_id = ak
            config.access_key_secret = sk
            if extra.get("security_token"):
                config.security_token = extra["security_token"]
        elif ak or sk:
            raise RdsApiError(
                "IncompleteAccessKey",
                f"connection {self.rds_conn_id!r} has only half of the AccessKey pair",
                "set both access_key_id and access_key_secret, or neither (default credential chain)",
            )
        else:
            from alibabacloud_credentials.client import Client as CredentialClient

            config.credential = CredentialClient()
        client = Client(config)
        if _is_direct_host(protocol, client._endpoint):
            _bypass_env_proxy(protocol, client._endpoint, config.max_idle_conns)
        return client

    def _call(self, action: str, method: str, request: Any) -> dict[str, Any]:
        """Call ``client.<method>(request)`` with retries; return the response body as a PascalCase dict."""
        import requests
        from darabonba.exceptions import RetryError
        from Tea.exceptions import RetryError as TeaRetryError
        from Tea.exceptions import TeaException

        fn = getattr(self.client, method)
        try:
            response = call_with_retries(
                lambda: fn(request),
                what=action,
                policy=self.retry,
                is_transient=is_transient,
                wait_hint=retry_after_seconds,
                describe=describe,
            )
        except (
            TeaException,
            RetryError,
            TeaRetryError,
            ConnectionError,
            TimeoutError,
            requests.RequestException,
        ) as e:
            raise map_error(e, action) from e
        return response.body.to_map() if response.body is not None else {}

    # ---- preflight ----------------------------------------------------------------------------

    def instance_facts(self, instance_id: str) -> InstanceFacts:
        """Return engine, version, edition, storage and status of an instance.

        :param instance_id: RDS instance id (``rm-...``).
        """
        from alibabacloud_rds20140815 import models

        body = self._call(
            f"DescribeDBInstanceAttribute {instance_id}",
            "describe_dbinstance_attribute",
            models.DescribeDBInstanceAttributeRequest(dbinstance_id=instance_id),
        )
        items = _items(body, "Items", "DBInstanceAttribute")
        if not items:
            raise RdsApiError(
                "InvalidDBInstanceId.NotFound",
                f"instance {instance_id} not found",
                advice_for("InvalidDBInstanceId.NotFound"),
            )
        item = items[0]
        engine_version = str(item.get("EngineVersion") or "")
        year, edition = parse_engine_version(engine_version)
        return InstanceFacts(
            instance_id=str(item.get("DBInstanceId") or instance_id),
            engine=str(item.get("Engine") or ""),
            engine_version=engine_version,
            version_year=year,
            major_version=SQL_SERVER_MAJOR_BY_YEAR.get(year) if year is not None else None,
            edition=edition,
            storage_gb=int(item.get("DBInstanceStorage") or 0),
            disk_used_bytes=int(float(item.get("DBInstanceDiskUsed") or 0)),
            status=str(item.get("DBInstanceStatus") or ""),
            region=str(item.get("RegionId") or ""),
            category=str(item.get("Category") or ""),
            lock_mode=str(item.get("LockMode") or ""),
        )

    def database_names(self, instance_id: str) -> list[str]:
        """Return the names of the databases on an instance.

        :param instance_id: RDS instance id.
        """
        from alibabacloud_rds20140815 import models

        names: list[str] = []
        page = 1
        while True:
            body = self._call(
                f"DescribeDatabases {instance_id}",
                "describe_databases",
                models.DescribeDatabasesRequest(dbinstance_id=instance_id, page_number=page, page_size=100),
            )
            items = _items(body, "Databases", "Database")
            names.extend(str(item.get("DBName")) for item in items)
            if len(items) < 100:
                return names
            page += 1

    # ---- migration tasks ----------------------------------------------------------------------

    def list_migration_tasks(self, instance_id: str, *, days: int = 7) -> list[MigrateTask]:
        """Return the migration tasks of the last ``days`` days (the API keeps one week), all pages.

        :param instance_id: RDS instance id.
        :param days: how far back to look (at most 7).
        """
        from alibabacloud_rds20140815 import models

        end = datetime.now(UTC) + timedelta(minutes=1)
        start = end - timedelta(days=min(days, 7))
        tasks: list[MigrateTask] = []
        page = 1
        while True:
            body = self._call(
                f"DescribeMigrateTasks {instance_id}",
                "describe_migrate_tasks",
                models.DescribeMigrateTasksRequest(
                    dbinstance_id=instance_id,
                    start_time=start.strftime("%Y-%m-%dT%H:%MZ"),
                    end_time=end.strftime("%Y-%m-%dT%H:%MZ"),
                    page_number=page,
                    page_size=100,
                ),
            )
            items = _items(body, "Items", "MigrateTask")
            tasks.extend(_task_from_map(item) for item in items)
            total = int(body.get("TotalRecordCount") or 0)
            if len(items) < 100 or (total and len(tasks) >= total):
                return tasks
            page += 1

    def find_migration_task(self, instance_id: str, db_name: str) -> MigrateTask | None:
        """Return the most recent UPDF task for ``db_name`` in the last week that has not failed, or None.

        Used to resume a migration instead of creating a second task.

        :param instance_id: RDS instance id.
        :param db_name: database name on the instance.
        """
        candidates = [
            task
            for task in self.list_migration_tasks(instance_id)
            if task.db_name == db_name and task.backup_mode.upper() == "UPDF" and not task.failed
        ]
        if not candidates:
            return None
        oldest = datetime.min.replace(tzinfo=UTC)
        return max(candidates, key=lambda t: (t.create_time or oldest, t.migrate_task_id))

    def _create_updf_task(
        self, instance_id: str, db_name: str, oss_position: str, migrate_task_id: str | None
    ) -> str:
        """The one place that builds ``CreateMigrateTask`` (BackupMode UPDF, IsOnlineDB False)."""
        from alibabacloud_rds20140815 import models

        request = models.CreateMigrateTaskRequest(
            dbinstance_id=instance_id,
            dbname=db_name,
            backup_mode="UPDF",
            is_online_db="False",
            oss_object_positions=oss_position,
            migrate_task_id=migrate_task_id,
        )
        what = "incremental import" if migrate_task_id else "full import"
        body = self._call(
            f"CreateMigrateTask ({what}) of {db_name!r} from {oss_position}", "create_migrate_task", request
        )
        task_id = str(body.get("MigrateTaskId") or migrate_task_id or "")
        if not task_id:
            raise RdsApiError(
                "MissingMigrateTaskId", f"CreateMigrateTask for {db_name!r} returned no MigrateTaskId"
            )
        log.info("CreateMigrateTask (%s) of %r accepted: MigrateTaskId %s", what, db_name, task_id)
        return task_id

    def create_migration_task(self, instance_id: str, db_name: str, oss_position: str) -> str:
        """Start an "Access Pending" migration from a full backup; return the MigrateTaskId.

        :param instance_id: RDS instance id.
        :param db_name: database name to create on the instance.
        :param oss_position: ``<oss-endpoint>:<bucket>:<key>`` of the full backup.
        """
        return self._create_updf_task(instance_id, db_name, oss_position, None)

    def import_incremental(
        self, instance_id: str, db_name: str, migrate_task_id: str, oss_position: str
    ) -> str:
        """Import a log or differential backup into an existing migration task; return its MigrateTaskId.

        :param instance_id: RDS instance id.
        :param db_name: database name on the instance.
        :param migrate_task_id: the task created by :meth:`create_migration_task`.
        :param oss_position: ``<oss-endpoint>:<bucket>:<key>`` of the backup.
        """
        if not migrate_task_id:
            raise ValueError("migrate_task_id is required for an incremental import")
        return self._create_updf_task(instance_id, db_name, oss_position, migrate_task_id)

    def open_database(
        self, instance_id: str, db_name: str, migrate_task_id: str, check_db_mode: str, client_token: str
    ) -> None:
        """Open the migrated database (``CreateOnlineDatabaseTask``), idempotent through ``client_token``.

        :param instance_id: RDS instance id.
        :param db_name: database name on the instance.
        :param migrate_task_id: the migration task.
        :param check_db_mode: ``AsyncExecuteDBCheck`` or ``SyncExecuteDBCheck``.
        :param client_token: idempotency token (<= 64 ASCII characters), the same on every retry.
        """
        from alibabacloud_rds20140815 import models

        if check_db_mode not in CHECK_DB_MODES:
            raise ValueError(f"check_db_mode {check_db_mode!r} is not one of {', '.join(CHECK_DB_MODES)}")
        if not client_token or len(client_token) > 64 or not client_token.isascii():
            raise ValueError("client_token must be 1-64 ASCII characters (the same on every retry)")
        self._call(
            f"CreateOnlineDatabaseTask of {db_name!r} (task {migrate_task_id}, {check_db_mode})",
            "create_online_database_task",
            models.CreateOnlineDatabaseTaskRequest(
                dbinstance_id=instance_id,
                dbname=db_name,
                migrate_task_id=migrate_task_id,
                check_dbmode=check_db_mode,
                client_token=client_token,
            ),
        )
        log.info("CreateOnlineDatabaseTask of %r accepted (%s)", db_name, check_db_mode)

    # ---- states -------------------------------------------------------------------------------

    def get_task_state(self, instance_id: str, migrate_task_id: str) -> MigrateTask:
        """Return a migration task (``DescribeMigrateTaskById``).

        :param instance_id: RDS instance id.
        :param migrate_task_id: the migration task.
        """
        from alibabacloud_rds20140815 import models

        body = self._call(
            f"DescribeMigrateTaskById {migrate_task_id}",
            "describe_migrate_task_by_id",
            models.DescribeMigrateTaskByIdRequest(dbinstance_id=instance_id, migrate_task_id=migrate_task_id),
        )
        return _task_from_map(body)

    def get_file_states(self, instance_id: str, migrate_task_id: str) -> list[OssDownload]:
        """Return the backup files of a migration task and their states (``DescribeOssDownloads``).

        :param instance_id: RDS instance id.
        :param migrate_task_id: the migration task.
        """
        from alibabacloud_rds20140815 import models

        body = self._call(
            f"DescribeOssDownloads {migrate_task_id}",
            "describe_oss_downloads",
            models.DescribeOssDownloadsRequest(dbinstance_id=instance_id, migrate_task_id=migrate_task_id),
        )
        return [_download_from_map(item) for item in _items(body, "Items", "OssDownload")]

    async def aget_task_state(self, instance_id: str, migrate_task_id: str) -> MigrateTask:
        """Async twin of :meth:`get_task_state` (runs in a thread, with the same retries and proxy rules).

        :param instance_id: RDS instance id.
        :param migrate_task_id: the migration task.
        """
        return await asyncio.to_thread(self.get_task_state, instance_id, migrate_task_id)

    async def aget_file_states(self, instance_id: str, migrate_task_id: str) -> list[OssDownload]:
        """Async twin of :meth:`get_file_states`.

        :param instance_id: RDS instance id.
        :param migrate_task_id: the migration task.
        """
        return await asyncio.to_thread(self.get_file_states, instance_id, migrate_task_id)

    @staticmethod
    def task_failure(task: MigrateTask) -> RdsApiError:
        """The error for a failed task, with advice from its description."""
        return RdsApiError(
            task.status,
            f"migration task {task.migrate_task_id} of {task.db_name!r} failed: "
            f"{task.description or '(no description)'}",
            advice_for(task.description),
        )

    @staticmethod
    def file_failure(migrate_task_id: str, download: OssDownload) -> RdsApiError:
        """The error for a failed backup file, with advice from its description."""
        return RdsApiError(
            download.status,
            f"backup file {download.file_name} of task {migrate_task_id} is {download.status}: "
            f"{download.description or '(no description)'}",
            advice_for(download.description),
        )

    def _wait(
        self, what: str, poll: Callable[[], T], done: Callable[[T], bool], timeout: float, interval: float
    ) -> T:
        deadline = time.monotonic() + timeout
        while True:
            value = poll()
            if done(value):
                return value
            if time.monotonic() + interval > deadline:
                raise RdsWaitTimeoutError(
                    "Timeout",
                    f"{what}: not reached after {timeout:.0f} s",
                    "the task may still finish: wait again",
                )
            time.sleep(interval)

    def wait_for_task_state(
        self,
        instance_id: str,
        migrate_task_id: str,
        targets: Collection[str] = TASK_SUCCESS_STATES | TASK_WAITING_STATES,
        *,
        timeout: float = 3600.0,
        poll: float = 15.0,
    ) -> MigrateTask:
        """Block until the task reaches one of ``targets``; fail fast on a failure state.

        :param instance_id: RDS instance id.
        :param migrate_task_id: the migration task.
        :param targets: task states to wait for.
        :param timeout: seconds before :class:`RdsWaitTimeoutError`.
        :param poll: seconds between two polls (one status line each).
        """

        def check() -> MigrateTask:
            task = self.get_task_state(instance_id, migrate_task_id)
            log.info(
                "Migration task %s (%s): %s %s", migrate_task_id, task.db_name, task.status, task.description
            )
            if task.status not in targets and task.status in TASK_FAILURE_STATES:
                raise self.task_failure(task)
            return task

        return self._wait(
            f"migration task {migrate_task_id} reaching {sorted(targets)}",
            check,
            lambda task: task.status in targets,
            timeout,
            poll,
        )

    def wait_for_file_state(
        self,
        instance_id: str,
        migrate_task_id: str,
        file_name: str,
        targets: Collection[str] = FILE_SUCCESS_STATES,
        *,
        timeout: float = 3600.0,
        poll: float = 15.0,
    ) -> OssDownload:
        """Block until a backup file of the task reaches one of ``targets``; fail fast on a failure state.

        A file the task does not list yet is waited for. The task failing also fails the wait.

        :param instance_id: RDS instance id.
        :param migrate_task_id: the migration task.
        :param file_name: the file's name (the last part of its OSS key).
        :param targets: file states to wait for.
        :param timeout: seconds before :class:`RdsWaitTimeoutError`.
        :param poll: seconds between two polls (one status line each).
        """
        base = file_name.rsplit("/", 1)[-1]

        def check() -> OssDownload | None:
            files = [
                f
                for f in self.get_file_states(instance_id, migrate_task_id)
                if f.file_name.rsplit("/", 1)[-1] == base
            ]
            if not files:
                task = self.get_task_state(instance_id, migrate_task_id)
                log.info(
                    "Backup file %s not listed yet by task %s (task %s)", base, migrate_task_id, task.status
                )
                if task.status in TASK_FAILURE_STATES:
                    raise self.task_failure(task)
                return None
            current = files[-1]
            log.info(
                "Backup file %s of task %s: %s %s", base, migrate_task_id, current.status, current.description
            )
            if current.status not in targets and current.status in FILE_FAILURE_STATES:
                raise self.file_failure(migrate_task_id, current)
            return current

        result: OssDownload = self._wait(  # type: ignore[assignment]
            f"backup file {base} of task {migrate_task_id} reaching {sorted(targets)}",
            check,
            lambda f: f is not None and f.status in targets,
            timeout,
            poll,
        )
        return result
