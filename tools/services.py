"""PostgreSQL and Redis for the distributed demo: Debian's binaries, run as local unprivileged processes.

Both live in the demo's folder (``<demo dir>/services/``), listen on free loopback ports and require a
password (generated per demo, never on a command line or in a log). PostgreSQL refuses to run as root
("root" execution of the PostgreSQL server is not permitted), so when the demo runs as root both run
as the ``postgres`` system user that Debian's ``postgresql`` package creates, owning their folders.

``tools/install_services.sh`` (``make services``) installs the packages when they are missing.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

SERVICE_USER = "postgres"  # created by Debian's postgresql-common
PG_DATABASE = "airflow"
PG_USER = "airflow"
REDIS_BINARY = Path("/usr/bin/redis-server")
START_TIMEOUT_S = 60


class ServiceError(RuntimeError):
    """A service could not be found, started or stopped; the message says what to do."""


def postgres_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin`` (Debian keeps the server binaries off PATH)."""
    found = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "pg_ctl").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not found:
        raise ServiceError("PostgreSQL server binaries not found in /usr/lib/postgresql: run `make services`")
    return found[-1]


def redis_binary() -> Path:
    if not REDIS_BINARY.exists():
        raise ServiceError(f"{REDIS_BINARY} not found: run `make services` (Debian package redis-server)")
    return REDIS_BINARY


@dataclass(frozen=True)
class RunAs:
    """Who the services run as: ourselves, or the service user when we are root."""

    user: str | None
    uid: int
    gid: int

    @classmethod
    def for_current_user(cls) -> RunAs:
        if os.geteuid() != 0:
            return cls(None, os.geteuid(), os.getegid())
        try:
            entry = pwd.getpwnam(SERVICE_USER)
        except KeyError as exc:
            raise ServiceError(
                f"running as root, and PostgreSQL will not: the {SERVICE_USER!r} user (Debian package "
                "postgresql) is missing; run `make services`"
            ) from exc
        return cls(SERVICE_USER, entry.pw_uid, entry.pw_gid)

    def popen_kwargs(self) -> dict:
        if self.user is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def own(self, path: Path) -> None:
        """Make ``path`` ours (the service user's) and reachable: its parents must be traversable."""
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o700)
        if self.user is not None:
            os.chown(path, self.uid, self.gid)
        for parent in path.parents:
            if not os.access(parent, os.X_OK) or (self.user and not parent.stat().st_mode & 0o001):
                raise ServiceError(
                    f"{parent} is not traversable by {self.user or 'this user'}: choose a demo folder "
                    "whose parents are world-searchable (chmod o+x), e.g. under the repo or /tmp"
                )


def _run(command: list[str], run_as: RunAs, log_path: Path, what: str, env: dict | None = None) -> None:
    with open(log_path, "ab") as log:
        log.write(f"$ {' '.join(command)}\n".encode())
        log.flush()
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd="/",
            check=False,
            **run_as.popen_kwargs(),
        )
    if result.returncode != 0:
        raise ServiceError(f"{what} failed (exit {result.returncode}); see {log_path}")


def _wait_for_port(port: int, what: str, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not alive():
            raise ServiceError(f"{what} exited while starting")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise ServiceError(f"{what} did not listen on 127.0.0.1:{port} within {START_TIMEOUT_S} s")


# --------------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------------


@dataclass
class Postgres:
    """A PostgreSQL cluster in ``folder`` (initdb), started and stopped with ``pg_ctl``."""

    folder: Path
    port: int
    run_as: RunAs
    log_dir: Path
    password: str = ""

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    def sqlalchemy_url(self, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{PG_USER}:{quote(self.password, safe='')}@127.0.0.1:{self.port}/{PG_DATABASE}"

    def _pg(self, tool: str) -> str:
        return str(postgres_bin_dir() / tool)

    def init(self) -> None:
        """initdb (password auth only, no trust) and an ``airflow`` database owned by ``airflow``."""
        self.password = secrets.token_urlsafe(18)
        self.run_as.own(self.folder)
        pwfile = self.folder / "initdb.pw"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if self.run_as.user is not None:
            os.chown(pwfile, self.run_as.uid, self.run_as.gid)
        command = [self._pg("initdb"), "-D", str(self.data_dir), "-U", PG_USER, f"--pwfile={pwfile}"]
        command += ["--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions"]
        try:
            _run(command, self.run_as, self.log_dir / "postgres-initdb.log", "initdb")
        finally:
            pwfile.unlink(missing_ok=True)

    def start(self) -> None:
        # Unix socket in our own folder (the default /var/run/postgresql may not exist or be ours).
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.folder}"
        )
        command = [self._pg("pg_ctl"), "start", "-D", str(self.data_dir), "-w", "-t", str(START_TIMEOUT_S)]
        command += ["-l", str(self.folder / "postgres.log"), "-o", options]
        _run(command, self.run_as, self.log_dir / "postgres-ctl.log", "pg_ctl start")
        env = {**os.environ, "PGPASSWORD": self.password}
        createdb = [self._pg("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_USER, PG_DATABASE]
        _run(createdb, self.run_as, self.log_dir / "postgres-ctl.log", "createdb", env=env)

    def running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists()

    def stop(self) -> None:
        """``pg_ctl stop`` (fast: disconnects clients, rolls back their transactions); idempotent."""
        if not self.running():
            return
        command = [self._pg("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w"]
        command += ["-t", str(START_TIMEOUT_S)]
        _run(command, self.run_as, self.log_dir / "postgres-ctl.log", "pg_ctl stop")


def stop_leftover_postgres(folder: Path, log_dir: Path) -> None:
    """Stop a cluster an earlier, killed demo left running in ``folder`` (before its folder is wiped)."""
    data_dir = folder / "data"
    if not (data_dir / "postmaster.pid").exists():
        return
    log_dir.mkdir(parents=True, exist_ok=True)
    command = [str(postgres_bin_dir() / "pg_ctl"), "stop", "-D", str(data_dir), "-m", "immediate", "-w"]
    owner = data_dir.stat().st_uid
    run_as = RunAs(pwd.getpwuid(owner).pw_name, owner, data_dir.stat().st_gid)
    if os.geteuid() != 0:
        run_as = RunAs(None, os.geteuid(), os.getegid())
    with contextlib.suppress(ServiceError):
        _run(command, run_as, log_dir / "postgres-ctl.log", "pg_ctl stop (leftover)")


# --------------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------------


@dataclass
class Redis:
    """A Redis server in ``folder``: config file with the password (0600), no persistence."""

    folder: Path
    port: int
    run_as: RunAs
    password: str = ""

    def broker_url(self) -> str:
        return f"redis://:{quote(self.password, safe='')}@127.0.0.1:{self.port}/0"

    def write_config(self) -> Path:
        self.password = secrets.token_urlsafe(18)
        self.run_as.own(self.folder)
        config = self.folder / "redis.conf"
        config.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {self.port}",
                    f"dir {self.folder}",
                    "daemonize no",
                    'logfile ""',  # to stdout: the demo's log file
                    'save ""',  # a broker for one demo: nothing to keep
                    "appendonly no",
                    f"requirepass {self.password}",
                    "",
                ]
            )
        )
        config.chmod(0o600)
        if self.run_as.user is not None:
            os.chown(config, self.run_as.uid, self.run_as.gid)
        return config

    def command(self) -> list[str]:
        return [str(redis_binary()), str(self.folder / "redis.conf")]

    def wait_ready(self, alive: Callable[[], bool]) -> None:
        _wait_for_port(self.port, "redis-server", alive)
