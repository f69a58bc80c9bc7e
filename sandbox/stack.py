"""All stand-ins of the sandbox in one process and one event loop, built from one YAML config.

- the source SQL Server (engine ``Instance`` over TDS), with an optional write workload,
- the target SQL Server: the RDS instance's engine, also over TDS (read-only use by validations),
- the OSS stand-in (objects on disk),
- the RDS OpenAPI stand-in, restoring from the OSS store into the target engine.

``Sandbox.start()`` writes ``<state-dir>/connections.json`` (ports + Airflow connections) and
``<state-dir>/env`` (``export AIRFLOW_CONN_...`` lines) once every port listens.

Every stand-in reads one :class:`~sandbox.clock.SandboxClock` (``Sandbox.clock``). A running sandbox
moves it when ``python -m sandbox clock --advance 8d`` leaves ``clock-request.json`` in the state dir
and signals the process (SIGUSR1); the answer is ``clock.json``. No network endpoint does this: the
product could call one by mistake, and the real services have none.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shlex
import threading
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from sandbox.clock import SandboxClock
from sandbox.rds.config import RdsConfig
from sandbox.rds.oss_source import StoreObjectSource
from sandbox.rds.server import runner_port
from sandbox.rds.server import serve as serve_rds
from sandbox.rds.service import RdsService

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
DEFAULT_CONFIG = Path(__file__).with_name("sandbox.yaml")
CONNECTIONS_FILE = "connections.json"
ENV_FILE = "env"
CLOCK_REQUEST_FILE = "clock-request.json"
CLOCK_FILE = "clock.json"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
SECTIONS = ("source", "target", "oss", "rds", "workload")
# Port offsets from --port-base, in this order.
PORT_ORDER = ("source", "target", "oss", "rds")


class SandboxConfigError(ValueError):
    """The sandbox config is invalid; the message names the field."""


def parse_duration(text: str) -> timedelta:
    """``8d``, ``36h``, ``1d12h30m``, ``90s`` -> timedelta (positive; ValueError names the text)."""
    value = text.strip().lower()
    parts = _DURATION.findall(value)
    if not value or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"{text!r} is not a duration like 8d, 36h, 1d12h or 90m")
    delta = sum((timedelta(**{_UNITS[unit]: float(number)}) for number, unit in parts), timedelta())
    if delta <= timedelta(0):
        raise ValueError(f"{text!r}: the clock only moves forward")
    return delta


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a sandbox YAML config and check its top-level shape."""
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, Mapping):
        raise SandboxConfigError(f"{path}: the config must be a mapping")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise SandboxConfigError(f"{path}: unknown section(s) {unknown}; known: {list(SECTIONS)}")
    for section in ("source", "target", "oss", "rds"):
        if not isinstance(data.get(section), Mapping):
            raise SandboxConfigError(f"{path}: section {section!r} is required")
    return dict(data)


def _first_account(section: Mapping[str, Any], name: str) -> tuple[str, str]:
    accounts = section.get("accounts") or {}
    if not accounts:
        raise SandboxConfigError(f"{name}.accounts: at least one access key is required")
    access_key_id, secret = next(iter(accounts.items()))
    return str(access_key_id), str(secret)


def airflow_connections(config: Mapping[str, Any], ports: Mapping[str, int]) -> dict[str, dict[str, Any]]:
    """The Airflow connections the DAGs use, by connection id (the one place their shape is defined)."""
    oss_key, oss_secret = _first_account(config["oss"], "oss")
    rds_key, rds_secret = _first_account(config["rds"], "rds")
    region = str(config["rds"].get("region", "cn-hangzhou"))

    def mssql(section: str) -> dict[str, Any]:
        return {
            "conn_type": "mssql",
            "host": HOST,
            "port": ports[section],
            "login": str(config[section].get("login", "sa")),
            "password": str(config[section]["password"]),
            "schema": "master",
            "extra": {"tds_version": "7.4"},
        }

    return {
        "mssql_source": mssql("source"),
        "mssql_target": mssql("target"),
        "oss_migration": {
            "conn_type": "oss",
            "extra": {
                "auth_type": "AK",
                "access_key_id": oss_key,
                "access_key_secret": oss_secret,
                "region": region,
                "endpoint": f"http://{HOST}:{ports['oss']}",
            },
        },
        "rds_migration": {
            "conn_type": "alibaba_cloud",
            "extra": {
                "auth_type": "AK",
                "access_key_id": rds_key,
                "access_key_secret": rds_secret,
                "region": region,
                "endpoint": f"{HOST}:{ports['rds']}",
                "protocol": "http",
            },
        },
    }


def export_lines(connections: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """``export AIRFLOW_CONN_<ID>='<json>'`` lines (shell-quoted)."""
    return [
        f"export AIRFLOW_CONN_{conn_id.upper()}={shlex.quote(json.dumps(conn, separators=(',', ':')))}"
        for conn_id, conn in connections.items()
    ]


def _write_private(path: Path, text: str) -> None:
    """Write a file only the owner can read (it holds the sandbox's throwaway keys)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


class Sandbox:
    """Builds and runs every stand-in on the running event loop.

    :param config: the parsed YAML config (see ``sandbox/sandbox.yaml``).
    :param state_dir: where data, logs, ``connections.json`` and ``env`` go.
    :param port_base: if set, listen on ``port_base + i`` in :data:`PORT_ORDER` instead of config ports.
    :param clock: the time every stand-in reads (``sandbox.clock.advance(timedelta(days=8))`` in tests).
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        state_dir: str | os.PathLike[str],
        port_base: int | None = None,
        clock: SandboxClock | None = None,
    ):
        self.config = config
        # One clock for every stand-in: a test moves all of them forward together (clock.advance).
        self.clock = clock or SandboxClock()
        self.state_dir = Path(state_dir).resolve()
        self.port_base = port_base
        self.ports: dict[str, int] = {}
        self.source = None
        self.target = None
        self.oss_store = None
        self.oss_faults = None  # the OSS stand-in's FaultInjector: faults and the request log
        self.rds: RdsService | None = None
        self._tds_servers: list[asyncio.AbstractServer] = []
        self._runners: list[web.AppRunner] = []
        self._workload_stop = threading.Event()
        self._workload_thread: threading.Thread | None = None

    def _port(self, name: str) -> int:
        if self.port_base is not None:
            return self.port_base + PORT_ORDER.index(name)
        return int(self.config[name].get("port", 0))

    async def start(self) -> dict[str, int]:
        """Start everything; returns the ports. On failure, whatever started is stopped again."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            await self._start_sql_servers()
            await self._start_oss()
            await self._start_rds()
            self._start_workload()
        except BaseException:
            await self.stop()
            raise
        self.write_state_files()
        return dict(self.ports)

    async def _start_sql_servers(self) -> None:
        from sandbox.mssql.engine import Instance
        from sandbox.mssql.server import serve_instance

        for name in ("source", "target"):
            instance_config = dict(self.config[name].get("instance") or {})
            instance = await asyncio.to_thread(
                Instance.from_config, instance_config, self.state_dir, self.clock
            )
            setattr(self, name, instance)
            server = await serve_instance(instance, HOST, self._port(name))
            self._tds_servers.append(server)
            self.ports[name] = server.sockets[0].getsockname()[1]

    async def _start_oss(self) -> None:
        from sandbox.oss.config import OssConfig
        from sandbox.oss.server import STATE_KEY, create_app

        section = {k: v for k, v in self.config["oss"].items() if k != "port"}
        app = await create_app(OssConfig.from_dict(section, self.state_dir))
        self.oss_store = app[STATE_KEY].store
        self.oss_faults = app[STATE_KEY].faults
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, HOST, self._port("oss")).start()
        self._runners.append(runner)
        self.ports["oss"] = runner_port(runner)

    async def _start_rds(self) -> None:
        section = {k: v for k, v in self.config["rds"].items() if k != "port"}
        self.rds = RdsService(
            RdsConfig.from_dict(section),
            self.target,
            StoreObjectSource(self.oss_store),
            self.state_dir / "rds",
            self.clock,  # the RDS state may move it forward to the time it was saved at
        )
        runner = await serve_rds(self.rds, HOST, self._port("rds"))
        self._runners.append(runner)
        self.ports["rds"] = runner_port(runner)

    def _start_workload(self) -> None:
        workload = self.config.get("workload") or {}
        if not workload or not workload.get("enabled", True):
            return
        from sandbox.mssql.workload import run_workload

        source = self.config["source"]
        conn_params = {
            "server": HOST,
            "port": self.ports["source"],
            "user": str(workload.get("login") or source.get("login", "sa")),
            "password": str(workload.get("password") or source["password"]),
            "database": str(workload["database"]),
            "tds_version": "7.4",
        }
        self._workload_thread = threading.Thread(
            target=run_workload,
            kwargs={
                "conn_params": conn_params,
                "rate": float(workload.get("rate", 5)),
                "duration": None,
                "stop_event": self._workload_stop,
                "payload_bytes": int(workload.get("payload_bytes", 0)),
                "idle_every_s": workload.get("idle_every_s"),
                "idle_for_s": float(workload.get("idle_for_s", 0)),
                "journal_path": self.state_dir / workload["journal"] if workload.get("journal") else None,
            },
            name="sandbox-workload",
            daemon=True,
        )
        self._workload_thread.start()

    def connections(self) -> dict[str, dict[str, Any]]:
        return airflow_connections(self.config, self.ports)

    def apply_clock_request(self) -> None:
        """Move the shared clock as ``clock-request.json`` asks (``{"advance_s": N}``); answer in
        ``clock.json``. Called on SIGUSR1 by ``python -m sandbox serve``."""
        request_path = self.state_dir / CLOCK_REQUEST_FILE
        try:
            request = json.loads(request_path.read_text(encoding="utf-8"))
            request_path.unlink()
            seconds = float(request.get("advance_s", 0))
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.warning("clock request %s ignored: %s", request_path, exc)
            return
        if seconds > 0:
            self.clock.advance(timedelta(seconds=seconds))
            log.info("sandbox clock advanced by %s: now %s", timedelta(seconds=seconds), self.clock.now())
        if self.rds is not None:
            self.rds.save()  # the offset is part of the RDS state: time never runs backwards
        answer = {"now": self.clock.now().isoformat(), "offset_s": self.clock.offset.total_seconds()}
        _write_private(self.state_dir / CLOCK_FILE, json.dumps(answer) + "\n")

    def write_state_files(self) -> None:
        connections = self.connections()
        state = {"pid": os.getpid(), "host": HOST, "ports": self.ports, "connections": connections}
        _write_private(self.state_dir / ENV_FILE, "\n".join(export_lines(connections)) + "\n")
        # connections.json last: its presence tells `up` that everything listens.
        _write_private(self.state_dir / CONNECTIONS_FILE, json.dumps(state, indent=2) + "\n")

    def stop_workload(self, timeout: float = 10) -> None:
        """Stop the write workload and wait for it (its journal is then final; idempotent)."""
        self._workload_stop.set()
        if self._workload_thread is not None:
            self._workload_thread.join(timeout)
            self._workload_thread = None

    async def stop(self) -> None:
        """Stop the workload, the HTTP stand-ins and the TDS servers (idempotent)."""
        (self.state_dir / CONNECTIONS_FILE).unlink(missing_ok=True)
        await asyncio.to_thread(self.stop_workload)
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        from sandbox.mssql.server import close_server

        for server in self._tds_servers:
            await close_server(server)
        self._tds_servers.clear()
        for instance in (self.source, self.target):
            close = getattr(instance, "close", None)
            if close is not None:
                await asyncio.to_thread(close)
