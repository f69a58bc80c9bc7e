"""Server start/stop: free ports, clean shutdown with open connections and running batches."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pymssql
import pytest

from sandbox.mssql import tds
from sandbox.mssql.server import ThreadedTdsServer, close_server, serve_instance
from tests.sandbox.mssql_protocol.conftest import PASSWORD, USER, FakeInstance


def connect(port, **kwargs):
    return pymssql.connect(
        server="127.0.0.1",
        port=port,
        user=USER,
        password=PASSWORD,
        database="shop",
        autocommit=True,
        **kwargs,
    )


def test_stop_closes_connections_and_sessions_and_joins_threads(fake_instance):
    server = ThreadedTdsServer(fake_instance).start()
    assert server.port > 0
    idle = connect(server.port)
    busy = connect(server.port)
    failures = []

    def run_long_batch():
        try:
            busy.cursor().execute("SLEEP 30")
        except pymssql.Error as e:
            failures.append(e)

    worker = threading.Thread(target=run_long_batch)
    worker.start()
    time.sleep(0.3)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5
    worker.join(10)
    assert not worker.is_alive() and failures
    assert fake_instance.sessions == {} and len(fake_instance.closed) == 2
    assert fake_instance.cancelled.is_set()
    assert not [t for t in threading.enumerate() if t.name.startswith(("tds-server", "tds-engine"))]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1)
    idle.close()
    busy.close()


def test_two_servers_get_different_free_ports():
    with ThreadedTdsServer(FakeInstance()) as first, ThreadedTdsServer(FakeInstance()) as second:
        assert first.port != second.port
        for port in (first.port, second.port):
            with connect(port) as conn:
                cursor = conn.cursor()
                cursor.execute("SELECT 1")
                assert cursor.fetchone() == (1,)


def test_serve_instance_in_an_existing_event_loop():
    instance = FakeInstance()

    async def scenario():
        server = await serve_instance(instance, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        def client():
            with connect(port) as conn:
                cursor = conn.cursor()
                cursor.execute("SELECT 1")
                return cursor.fetchall()

        rows = await asyncio.get_running_loop().run_in_executor(None, client)
        await close_server(server)
        return rows

    assert asyncio.run(scenario()) == [(1,)]
    assert instance.sessions == {}


def test_attention_after_the_batch_finished_is_acknowledged(tds_server):
    """A raw client: ATTENTION with no batch running gets a lone DONE(ATTN)."""
    with socket.create_connection(("127.0.0.1", tds_server.port), timeout=5) as sock:
        _raw_login(sock)
        sock.sendall(tds.HEADER.pack(tds.PKT_ATTENTION, tds.STATUS_EOM, 8, 0, 1, 0))
        ptype, payload = _read_message(sock)
    assert ptype == tds.PKT_REPLY
    assert payload[0] == tds.TOKEN_DONE and payload[1] & tds.DONE_ATTN


def test_garbage_instead_of_login_closes_the_connection(tds_server, fake_instance):
    with socket.create_connection(("127.0.0.1", tds_server.port), timeout=5) as sock:
        sock.sendall(tds.HEADER.pack(0x01, tds.STATUS_EOM, 12, 0, 1, 0) + b"abcd")
        assert sock.recv(100) == b""
    assert fake_instance.sessions == {}


def _raw_login(sock: socket.socket) -> None:
    """Minimal LOGIN7 (TDS 7.4) built by hand: user, obfuscated password, database."""
    fields = ["host", USER, None, "raw-test", "server", "", "lib", "", "shop"]
    password = PASSWORD.encode("utf-16-le")
    obfuscated = bytes(((b << 4 & 0xF0) | (b >> 4)) ^ 0xA5 for b in password)
    offset = 94
    table = b""
    data = b""
    for value in fields:
        raw = obfuscated if value is None else value.encode("utf-16-le")
        table += offset.to_bytes(2, "little") + (len(raw) // 2).to_bytes(2, "little")
        data += raw
        offset += len(raw)
    fixed = (
        tds.TDS74.to_bytes(4, "little")
        + (4096).to_bytes(4, "little")
        + bytes(4 + 4 + 4)  # prog version, pid, connection id
        + bytes(4 + 4 + 4)  # flags, time zone, lcid
    )
    body = fixed + table + bytes(6) + bytes(4) + offset.to_bytes(2, "little") + bytes(2) + bytes(8)
    payload = (4 + len(body) + len(data)).to_bytes(4, "little") + body + data
    sock.sendall(tds.HEADER.pack(tds.PKT_LOGIN7, tds.STATUS_EOM, 8 + len(payload), 0, 1, 0) + payload)
    ptype, response = _read_message(sock)
    assert tds.TOKEN_LOGINACK in response


def _read_message(sock: socket.socket) -> tuple[int, bytes]:
    payload = b""
    while True:
        header = tds.PacketHeader.parse(_recv_exactly(sock, 8))
        payload += _recv_exactly(sock, header.length - 8)
        if header.is_last:
            return header.type, payload


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


SERVE_FAKE = """
import asyncio
from sandbox.mssql.cli import _serve
from tests.sandbox.mssql_protocol.conftest import FakeInstance
asyncio.run(_serve(FakeInstance(), "127.0.0.1", 0))
"""


def test_cli_serve_loop_prints_its_port_and_stops_on_sigterm():
    repo = Path(__file__).resolve().parents[3]
    env = dict(os.environ, PYTHONPATH=str(repo))
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE_FAKE],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("sandbox-mssql listening on 127.0.0.1:"), line + proc.stderr.read()
        port = int(line.rsplit(":", 1)[1])
        with connect(port) as conn:
            cursor = conn.cursor()
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)
        proc.terminate()
        out, _err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert "sandbox-mssql stopped" in out
