"""Command line of the sandbox SQL Server.

``python -m sandbox.mssql.cli serve --config FILE [--host H] [--port N]``
    Serve one simulated instance (from a YAML config) over TDS until SIGINT/SIGTERM.
    Prints ``sandbox-mssql listening on HOST:PORT`` once ready (``--port 0`` picks a free port).

``python -m sandbox.mssql.cli workload --host H --port N --user U --database DB --rate R
[--duration S] [--payload-bytes N] [--idle-every S --idle-for S] [--journal FILE]``
    Insert/update rows of ``dbo.orders`` at R rows/s; the password comes from ``--password`` or
    the ``SANDBOX_MSSQL_PASSWORD`` environment variable. Prints the counts when stopped; with
    ``--journal`` every acknowledged write is appended to FILE as one JSON object per line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

PASSWORD_ENV = "SANDBOX_MSSQL_PASSWORD"


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return args.handler(args)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sandbox mssql", description="Sandbox SQL Server (TDS) stand-in")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve a simulated instance over TDS")
    serve.add_argument("--config", required=True, type=Path, help="YAML file describing the instance")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=None, help="TCP port; 0 = any free port (default: config or 0)"
    )
    serve.set_defaults(handler=_serve_command)

    workload = commands.add_parser("workload", help="write rows at a steady rate through pymssql")
    workload.add_argument("--host", default="127.0.0.1")
    workload.add_argument("--port", type=int, default=1433)
    workload.add_argument("--user", required=True)
    workload.add_argument("--password", default=None, help=f"default: ${PASSWORD_ENV}")
    workload.add_argument("--database", required=True)
    workload.add_argument("--rate", type=float, default=10.0, help="rows per second (default 10)")
    workload.add_argument("--duration", type=float, default=None, help="seconds (default: until stopped)")
    workload.add_argument("--payload-bytes", type=int, default=0, help="filler characters per row")
    workload.add_argument("--tds-version", default="7.4")
    workload.add_argument("--report-every", type=float, default=5.0, help="seconds between progress lines")
    workload.add_argument("--idle-every", type=float, default=None, help="pause after this many seconds")
    workload.add_argument("--idle-for", type=float, default=0.0, help="length of each pause in seconds")
    workload.add_argument("--journal", type=Path, default=None, help="JSONL file of acknowledged writes")
    workload.set_defaults(handler=_workload_command)
    return parser


# --- serve --------------------------------------------------------------------------------------
def load_instance(config_path: Path):
    """Build an engine ``Instance`` from a YAML config file (paths in it are relative to the file)."""
    import yaml

    from sandbox.mssql.engine import Instance

    with config_path.open(encoding="utf-8") as f:
        config = yaml.safe_load(f) or {}
    if not isinstance(config, dict):
        raise ValueError(f"{config_path}: expected a mapping at the top level")
    return Instance.from_config(config, config_path.resolve().parent), config


def _serve_command(args: argparse.Namespace) -> int:
    try:
        instance, config = load_instance(args.config)
    except (OSError, ValueError) as e:
        print(f"error: cannot load {args.config}: {e}", file=sys.stderr)
        return 2
    port = args.port if args.port is not None else int(config.get("port", 0) or 0)
    try:
        asyncio.run(_serve(instance, args.host, port))
    except OSError as e:
        print(f"error: cannot listen on {args.host}:{port}: {e}", file=sys.stderr)
        return 1
    return 0


async def _serve(instance, host: str, port: int) -> None:
    from sandbox.mssql.server import close_server, serve_instance

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = await serve_instance(instance, host, port)
    bound_host, bound_port = server.sockets[0].getsockname()[:2]
    print(f"sandbox-mssql listening on {bound_host}:{bound_port}", flush=True)
    try:
        await stop.wait()
    finally:
        await close_server(server)
        close = getattr(instance, "close", None)
        if callable(close):
            close()
        print("sandbox-mssql stopped", flush=True)


# --- workload -----------------------------------------------------------------------------------
def _workload_command(args: argparse.Namespace) -> int:
    from sandbox.mssql.workload import run_workload

    password = args.password if args.password is not None else os.environ.get(PASSWORD_ENV)
    if password is None:
        print(f"error: give --password or set {PASSWORD_ENV}", file=sys.stderr)
        return 2
    if args.rate <= 0:
        print("error: --rate must be > 0", file=sys.stderr)
        return 2
    if args.idle_every is not None and (args.idle_every <= 0 or args.idle_for < 0):
        print("error: --idle-every must be > 0 and --idle-for >= 0", file=sys.stderr)
        return 2
    conn_params = {
        "server": args.host,
        "port": args.port,
        "user": args.user,
        "password": password,
        "database": args.database,
        "tds_version": args.tds_version,
    }
    stop_event = threading.Event()
    with _stop_on_signals(stop_event):
        stats = run_workload(
            conn_params,
            rate=args.rate,
            duration=args.duration,
            stop_event=stop_event,
            payload_bytes=args.payload_bytes,
            on_progress=lambda s: print(f"progress {json.dumps(s.as_dict())}", flush=True),
            progress_every_s=args.report_every,
            idle_every_s=args.idle_every,
            idle_for_s=args.idle_for,
            journal_path=args.journal,
        )
    print(f"done {json.dumps(stats.as_dict())}", flush=True)
    return 0


@contextlib.contextmanager
def _stop_on_signals(stop_event: threading.Event):
    """Set ``stop_event`` on SIGINT/SIGTERM (main thread only), restoring the old handlers after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda _signum, _frame: stop_event.set())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
