"""HTTP front of the RDS stand-in: the Tea RPC protocol as ``alibabacloud_rds20140815`` sends it.

``POST /?<params>`` with ``x-acs-action`` / ``x-acs-version`` headers and an ACS3-HMAC-SHA256
``Authorization`` (or the legacy V2 query form), answered with PascalCase JSON. Errors are JSON
``{RequestId, HostId, Code, Message, Recommend}`` with Alibaba's HTTP status, so the SDK raises its
typed exceptions.

The port serves the OpenAPI and nothing else: faults and the clock are changed through Python
(``server.faults``, ``server.clock``), never through a sandbox-only endpoint the product could call.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

from sandbox.clock import SandboxClock
from sandbox.rds import errors
from sandbox.rds.config import RdsConfig
from sandbox.rds.errors import ApiError
from sandbox.rds.oss_source import ObjectSource
from sandbox.rds.service import RdsService
from sandbox.rds.signing import V2_SYSTEM_PARAMS, SignatureVerifier

log = logging.getLogger(__name__)

API_VERSION = "2014-08-15"
HOST_ID = "rds.aliyuncs.com"
SERVICE_KEY = web.AppKey("rds_service", RdsService)
VERIFIER_KEY = web.AppKey("rds_verifier", SignatureVerifier)


def new_request_id() -> str:
    return str(uuid.uuid4()).upper()


def error_response(error: ApiError, request_id: str) -> web.Response:
    body = {
        "RequestId": request_id,
        "HostId": HOST_ID,
        "Code": error.code,
        "Message": error.message,
        "Recommend": f"https://api.aliyun.com/troubleshoot?q={error.code}&product=Rds&requestId={request_id}",
    }
    headers = {"x-acs-request-id": request_id}
    if error.retry_after_ms is not None:
        headers["x-acs-retry-after"] = str(error.retry_after_ms)
    return web.json_response(body, status=error.status, headers=headers)


class FaultInjector:
    """Draws latency, throttling and 5xx answers from the (run-time changeable) fault config."""

    def __init__(self, config: RdsConfig):
        self.faults = config.faults

    async def apply(self, action: str) -> None:
        """Faults that refuse a call before any work is done (the call is not accepted)."""
        faults = self.faults
        if not faults.applies_to(action):
            return
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.draw(faults.throttle_rate, "throttling"):
            raise errors.throttling(faults.retry_after_ms)
        if faults.draw(faults.error_5xx_rate, f"http_{faults.error_5xx_status}"):
            raise errors.server_error(faults.error_5xx_status)

    async def after_accept(
        self, request: web.Request, request_id: str, response: web.Response
    ) -> tuple[web.Response, str]:
        """R5: CreateMigrateTask has no ClientToken; an accepted import may still look failed.

        Returns the response and the fault injected into it ("" for none)."""
        kind = self.faults.take_create_fault()
        if kind is None:
            return response, ""
        log.info("CreateMigrateTask %s accepted, answered as %s (injected)", request_id, kind)
        if kind == "accept_then_500":
            return error_response(errors.external_failure(), request_id), kind
        if kind == "accept_then_drop":
            if request.transport is not None:
                request.transport.abort()  # the client sees the connection closed without a response
            return response, kind
        await asyncio.sleep(self.faults.slow_answer_s)  # accept_then_slow: later than the read timeout
        return response, kind


FAULTS_KEY = web.AppKey("rds_faults", FaultInjector)


def _operation_params(query: dict[str, str], form: dict[str, str]) -> dict[str, str]:
    params = {k: v for k, v in query.items() if k not in V2_SYSTEM_PARAMS}
    params.update({k: v for k, v in form.items() if k not in V2_SYSTEM_PARAMS})
    return params


async def handle_api(request: web.Request) -> web.Response:
    """One OpenAPI call: verify, inject faults, dispatch to the service."""
    service = request.app[SERVICE_KEY]
    request_id = new_request_id()
    action, params = request.headers.get("x-acs-action", "?"), {}
    try:
        body = await request.read()
        query = dict(request.query)
        form = {}
        if request.content_type == "application/x-www-form-urlencoded" and body:
            form = dict((await request.post()).items())
        action = request.headers.get("x-acs-action") or query.get("Action", "")
        version = request.headers.get("x-acs-version") or query.get("Version", "")
        access_key_id = request.app[VERIFIER_KEY].verify(
            request.method, request.path, query, request.headers, body
        )
        if version != API_VERSION:
            raise ApiError(400, "InvalidVersion", f"Specified parameter Version ({version}) is not valid.")
        params = _operation_params(query, form)
        service.authorize(access_key_id, action)
        await request.app[FAULTS_KEY].apply(action)
        result = await service.call(action, params, request_id)
    except ApiError as error:
        log.info("%s %s -> %s %s", action, request_id, error.status, error.code)
        service.record_answer(action, params, error.status, error.code)
        return error_response(error, request_id)
    except Exception:  # answer JSON even for bugs: the SDK turns non-JSON errors into opaque exceptions
        log.exception("RDS stand-in failed on request %s", request_id)
        error = errors.server_error(500)
        service.record_answer(action, params, error.status, error.code)
        return error_response(error, request_id)
    body = {"RequestId": request_id, **result}
    response = web.json_response(body, headers={"x-acs-request-id": body["RequestId"]})
    injected = ""
    if action == "CreateMigrateTask":
        response, injected = await request.app[FAULTS_KEY].after_accept(request, request_id, response)
    code = "ExternalFailure" if response.status >= 500 else ""
    service.record_answer(action, params, response.status, code, injected=injected)
    return response


def create_app(service: RdsService) -> web.Application:
    """The aiohttp application for one RDS service (background work is cancelled on cleanup)."""
    app = web.Application(client_max_size=1024 * 1024)
    app[SERVICE_KEY] = service
    app[VERIFIER_KEY] = SignatureVerifier(service.config.accounts)
    app[FAULTS_KEY] = FaultInjector(service.config)
    app.router.add_route("*", "/", handle_api)

    async def resume_service(_app: web.Application) -> None:
        await service.resume()

    async def close_service(_app: web.Application) -> None:
        await service.aclose()

    app.on_startup.append(resume_service)
    app.on_cleanup.append(close_service)
    return app


async def serve(service: RdsService, host: str = "127.0.0.1", port: int = 0) -> web.AppRunner:
    """Start the API on ``host:port`` in the running loop; returns the runner (``await runner.cleanup()``)."""
    # A stop does not wait long for answers still pending (an injected slow answer).
    runner = web.AppRunner(create_app(service), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner


def runner_port(runner: web.AppRunner) -> int:
    return runner.addresses[0][1]


class ThreadedRdsServer:
    """The RDS stand-in on its own event loop thread (tests; ``with ThreadedRdsServer(...) as rds:``).

    :param config: instance configuration.
    :param engine: the target engine instance.
    :param objects: the OSS object source (e.g. ``StoreObjectSource(oss_server.store)``).
    :param work_dir: folder for downloaded backup files and the state file.
    :param clock: the sandbox clock (a new one if not given): ``server.clock.advance(...)``.
    """

    def __init__(
        self,
        config: RdsConfig,
        engine: Any,
        objects: ObjectSource,
        work_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: SandboxClock | None = None,
    ):
        self.service = RdsService(config, engine, objects, Path(work_dir), clock)
        self.config = config
        self.host = host
        self._requested_port = port
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="rds-stand-in", daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def endpoint(self) -> str:
        """What the Tea SDK's ``Config(endpoint=...)`` takes (with ``protocol='http'``)."""
        return f"{self.host}:{self.port}"

    @property
    def faults(self):
        """Fault settings (``update(...)``, ``next_create(kind)``), changeable while running."""
        return self.config.faults

    @property
    def clock(self) -> SandboxClock:
        return self.service.clock

    def start(self) -> ThreadedRdsServer:
        self._thread.start()
        self._runner = self.run(serve(self.service, self.host, self._requested_port))
        self.port = runner_port(self._runner)
        return self

    def run(self, coroutine):
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Block until every background restore/open has finished."""
        asyncio.run_coroutine_threadsafe(
            asyncio.wait_for(self.service.wait_idle(), timeout), self._loop
        ).result()

    def stop(self) -> None:
        if self._runner is not None:
            self.run(self._runner.cleanup())
            self._runner = None
        if self._thread.is_alive():
            # Engine calls run in the default executor: let a restore in progress finish first.
            self.run(self._loop.shutdown_default_executor())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> ThreadedRdsServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
