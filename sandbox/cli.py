"""``python -m sandbox <command>``: run the local stand-ins.

- ``serve --config FILE [--state-dir DIR] [--port-base N]``: everything in the foreground, one process.
- ``up [--config FILE] [--state-dir DIR] [--port-base N]``: ``serve`` detached; waits until every
  port answers; prints ``export AIRFLOW_CONN_...`` lines.
- ``down [--state-dir DIR]``: stop it (SIGTERM, then SIGKILL) and remove the pid file. The state dir keeps
  everything a clean stop saved (databases and msdb, OSS objects, RDS tasks and the clock): ``up`` with
  it continues there; remove the folder to start fresh.
- ``status [--state-dir DIR]``: whether it runs and its ports answer.
- ``clock [--advance 8d] [--state-dir DIR]``: show (or move forward) the running sandbox's clock.
- ``mssql ...``: the SQL Server stand-in's own CLI (``sandbox.mssql.cli``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from sandbox.stack import (
    CLOCK_FILE,
    CLOCK_REQUEST_FILE,
    CONNECTIONS_FILE,
    DEFAULT_CONFIG,
    Sandbox,
    export_lines,
    load_config,
    parse_duration,
)

PID_FILE = "sandbox.pid"
LOG_FILE = "sandbox.log"
DEFAULT_STATE_DIR = ".sandbox"
STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
REPO_ROOT = Path(__file__).resolve().parent.parent


# --- serve --------------------------------------------------------------------------------------------


async def _serve(config_path: Path, state_dir: Path, port_base: int | None) -> None:
    sandbox = Sandbox(load_config(config_path), state_dir, port_base)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, sandbox.apply_clock_request)  # `python -m sandbox clock`
    ports = await sandbox.start()
    logging.getLogger(__name__).info("sandbox ready: %s", ports)
    try:
        await stop.wait()
    finally:
        logging.getLogger(__name__).info("sandbox stopping")
        await sandbox.stop()


def cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_serve(Path(args.config), Path(args.state_dir), args.port_base))
    return 0


# --- up / down / status -------------------------------------------------------------------------------


def _read_pid(state_dir: Path) -> int | None:
    try:
        return int((state_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def _is_our_server(pid: int) -> bool:
    """True if ``pid`` runs ``sandbox serve`` (guards against a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"sandbox" in cmdline and b"serve" in cmdline


def _running_pid(state_dir: Path) -> int | None:
    pid = _read_pid(state_dir)
    return pid if pid is not None and _is_our_server(pid) else None


def _port_answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def _read_state(state_dir: Path) -> dict | None:
    try:
        return json.loads((state_dir / CONNECTIONS_FILE).read_text())
    except (OSError, ValueError):
        return None


def _print_connections(state: dict) -> None:
    print("# Airflow connections of the local sandbox (throwaway credentials):")
    for line in export_lines(state["connections"]):
        print(line)


def _wait_until_ready(process: subprocess.Popen, state_dir: Path) -> dict:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the sandbox exited with code {process.returncode}; see {state_dir / LOG_FILE}"
            )
        state = _read_state(state_dir)
        if state and state.get("pid") == process.pid and all(map(_port_answers, state["ports"].values())):
            return state
        time.sleep(0.1)
    raise TimeoutError(
        f"the sandbox did not start within {STARTUP_TIMEOUT_S:.0f} s; see {state_dir / LOG_FILE}"
    )


def cmd_up(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    if _running_pid(state_dir) is not None and (state := _read_state(state_dir)):
        print(f"# sandbox already running (pid {state['pid']})")
        _print_connections(state)
        return 0
    (state_dir / CONNECTIONS_FILE).unlink(missing_ok=True)
    command = [sys.executable, "-m", "sandbox", "serve", "--config", str(Path(args.config).resolve())]
    command += ["--state-dir", str(state_dir)]
    if args.port_base is not None:
        command += ["--port-base", str(args.port_base)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    with open(state_dir / LOG_FILE, "ab") as log_file:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=state_dir,
            start_new_session=True,  # survives the shell; `down` stops it
        )
    (state_dir / PID_FILE).write_text(f"{process.pid}\n")
    try:
        state = _wait_until_ready(process, state_dir)
    except (RuntimeError, TimeoutError) as exc:
        _stop_process(process.pid)
        (state_dir / PID_FILE).unlink(missing_ok=True)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"# sandbox running (pid {process.pid}); stop it with: python -m sandbox down --state-dir {state_dir}"
    )
    _print_connections(state)
    return 0


def _stop_process(pid: int) -> None:
    """SIGTERM, wait, then SIGKILL; reaps the process if it is our child."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def cmd_down(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir).resolve()
    pid = _running_pid(state_dir)
    if pid is None:
        print("# sandbox is not running")
    else:
        _stop_process(pid)
        print(f"# sandbox stopped (pid {pid})")
    (state_dir / PID_FILE).unlink(missing_ok=True)
    (state_dir / CONNECTIONS_FILE).unlink(missing_ok=True)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir).resolve()
    pid = _running_pid(state_dir)
    state = _read_state(state_dir)
    if pid is None or state is None:
        print("sandbox: not running")
        return 1
    print(f"sandbox: running (pid {pid})")
    for name, port in state["ports"].items():
        print(f"  {name:<7} 127.0.0.1:{port}  {'answers' if _port_answers(port) else 'NOT ANSWERING'}")
    return 0


def cmd_clock(args: argparse.Namespace) -> int:
    """Ask the running sandbox to move its clock forward (or just to tell the time)."""
    state_dir = Path(args.state_dir).resolve()
    try:
        advance = parse_duration(args.advance) if args.advance else None
    except ValueError as exc:
        print(f"error: --advance {exc}", file=sys.stderr)
        return 2
    pid = _running_pid(state_dir)
    if pid is None:
        print("sandbox: not running", file=sys.stderr)
        return 1
    answer = state_dir / CLOCK_FILE
    answer.unlink(missing_ok=True)
    request = {"advance_s": advance.total_seconds() if advance else 0}
    (state_dir / CLOCK_REQUEST_FILE).write_text(json.dumps(request) + "\n", encoding="utf-8")
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while not answer.exists():
        if time.monotonic() > deadline:
            print(f"error: the sandbox did not answer; see {state_dir / LOG_FILE}", file=sys.stderr)
            return 1
        time.sleep(0.05)
    state = json.loads(answer.read_text())
    print(f"sandbox time: {state['now']} (ahead of real time by {timedelta(seconds=state['offset_s'])})")
    return 0


def run_mssql_cli(argv: list[str]) -> int:
    from sandbox.mssql.cli import main as mssql_main

    return mssql_main(argv) or 0


# --- parser -------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler, help_text: str, *, config: bool = False) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.set_defaults(handler=handler)
        if config:
            sub.add_argument("--config", default=str(DEFAULT_CONFIG), help="sandbox YAML config")
            sub.add_argument(
                "--port-base", type=int, default=None, help="listen on N, N+1, ... (default: config)"
            )
        sub.add_argument(
            "--state-dir", default=DEFAULT_STATE_DIR, help="data, logs, pid and connection files"
        )
        return sub

    add("serve", cmd_serve, "run every stand-in in the foreground", config=True)
    add("up", cmd_up, "start the sandbox in the background and print the connections", config=True)
    add("down", cmd_down, "stop the background sandbox")
    add("status", cmd_status, "show whether the sandbox runs")
    clock = add("clock", cmd_clock, "show or move forward the running sandbox's clock")
    clock.add_argument("--advance", default=None, help="e.g. 8d, 36h, 1d12h, 90m")
    # `mssql ...` is passed through untouched in main(); listed here for --help.
    commands.add_parser("mssql", help="SQL Server stand-in tools (python -m sandbox mssql --help)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["mssql"]:
        return run_mssql_cli(argv[1:])
    args = build_parser().parse_args(argv)
    return args.handler(args)
