"""Asyncio TDS server in front of a simulated SQL Server instance.

One ``TdsConnection`` per client socket. A reader task keeps reading packets while a batch
runs, so an ATTENTION (cancel) is seen immediately; the synchronous engine runs in a worker
thread and streams its results back to the event loop, which writes them as they come
(progress messages reach the client while a BACKUP is still running).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import threading
import weakref
from collections.abc import Callable

from sandbox.mssql import tds
from sandbox.mssql.results import Message, SqlError

log = logging.getLogger(__name__)

LOGIN_TIMEOUT_S = 30.0
SERVER_NAME_FALLBACK = "SANDBOX"


class _ConnectionClosed(Exception):
    """The client went away."""


class TdsService:
    """Accepts TDS connections for one engine ``Instance`` and can shut them all down."""

    def __init__(self, instance: object, max_workers: int = 64):
        self.instance = instance
        self.server: asyncio.AbstractServer | None = None
        self._connections: set[TdsConnection] = set()
        self._tasks: set[asyncio.Task] = set()
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="tds-engine"
        )

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> asyncio.AbstractServer:
        self.server = await asyncio.start_server(self._handle, host, port)
        log.info("TDS server for %s listening on %s", _server_name(self.instance), self.address)
        return self.server

    @property
    def address(self) -> tuple[str, int]:
        if self.server is None or not self.server.sockets:
            raise RuntimeError("the TDS server is not listening")
        host, port = self.server.sockets[0].getsockname()[:2]
        return host, port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = TdsConnection(self, reader, writer)
        self._connections.add(connection)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)
            if task is not None:
                self._tasks.discard(task)

    async def aclose(self, timeout: float = 10.0) -> None:
        """Stop listening, cancel running batches, close every client connection and session."""
        if self.server is not None:
            self.server.close()
        for connection in list(self._connections):
            connection.abort()
        tasks = list(self._tasks)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        if self.server is not None:
            await self.server.wait_closed()

    def shutdown_executor(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


_SERVICES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def serve_instance(instance: object, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    """Start serving ``instance`` over TDS on ``host:port`` (port 0 = a free port).

    ``server.close()`` only stops accepting; ``await close_server(server)`` also ends the client
    connections and their sessions.
    """
    service = TdsService(instance)
    server = await service.start(host, port)
    _SERVICES[server] = service
    return server


async def close_server(server: asyncio.AbstractServer, timeout: float = 10.0) -> None:
    """Fully stop a server started by ``serve_instance``: connections, sessions, worker threads."""
    service = _SERVICES.pop(server, None)
    if service is None:
        server.close()
        await server.wait_closed()
        return
    await service.aclose(timeout)
    await asyncio.get_running_loop().run_in_executor(None, service.shutdown_executor)


class TdsConnection:
    """One client connection: handshake, then requests until the client disconnects."""

    def __init__(self, service: TdsService, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.service = service
        self.instance = service.instance
        self.reader = reader
        self.writer = writer
        self.loop = asyncio.get_running_loop()
        self.session = None
        self.tds_version = tds.TDS74
        self.packet_size = tds.DEFAULT_PACKET_SIZE
        self.encoder = tds.TokenEncoder(tds.TDS74, _server_name(self.instance))
        self.requests: asyncio.Queue = asyncio.Queue()
        self.running_cancel: threading.Event | None = None  # set while a batch runs
        self.broken = False
        self.transaction_descriptor = 0
        self._next_descriptor = 1
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"

    # --- lifecycle ----------------------------------------------------------------------------
    async def run(self) -> None:
        reader_task = None
        try:
            if not await asyncio.wait_for(self._handshake(), LOGIN_TIMEOUT_S):
                return
            reader_task = asyncio.create_task(self._read_requests())
            await self._serve_requests()
        except (_ConnectionClosed, ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            log.debug("connection %s closed", self.peer)
        except tds.TdsProtocolError as e:
            log.warning("protocol error from %s: %s", self.peer, e)
        finally:
            if reader_task is not None:
                reader_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader_task
            await self._close_session()
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    def abort(self) -> None:
        """Server shutdown or session KILL: cancel the running batch and drop the socket."""
        if self.running_cancel is not None:
            self.running_cancel.set()
        self.broken = True
        self.writer.transport.abort()

    async def _close_session(self) -> None:
        if self.session is None:
            return
        session, self.session = self.session, None
        try:
            await self.loop.run_in_executor(self.service.executor, self.instance.close_session, session)
        except Exception:
            log.exception("closing session of %s failed", self.peer)

    # --- packets ------------------------------------------------------------------------------
    async def _read_message(self) -> tuple[int, bytes]:
        """Read packets up to the one with end-of-message; returns (packet type, payload)."""
        payload = bytearray()
        while True:
            header = tds.PacketHeader.parse(await self.reader.readexactly(tds.HEADER_SIZE))
            payload += await self.reader.readexactly(header.length - tds.HEADER_SIZE)
            if header.is_last:
                return header.type, bytes(payload)

    async def _write(self, data: bytes) -> None:
        if self.broken or not data:
            return
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, RuntimeError, OSError):
            self.broken = True
            if self.running_cancel is not None:
                self.running_cancel.set()

    def _write_from_thread(self, data: bytes) -> None:
        """Write from an engine thread and wait until it is written (back-pressure)."""
        try:
            asyncio.run_coroutine_threadsafe(self._write(data), self.loop).result()
        except RuntimeError:  # the event loop is gone: the server is shutting down
            self.broken = True

    async def _send_response(self, tokens: bytes) -> None:
        await self._write(self._packet_writer().packets(tokens, final=True))

    def _packet_writer(self) -> tds.PacketWriter:
        spid = getattr(self.session, "spid", 0) or 0
        return tds.PacketWriter(tds.PKT_REPLY, self.packet_size, spid)

    # --- handshake ----------------------------------------------------------------------------
    async def _handshake(self) -> bool:
        ptype, payload = await self._read_message()
        if ptype == tds.PKT_PRELOGIN:
            tds.parse_prelogin(payload)
            response = tds.build_prelogin_response(_product_version(self.instance))
            await self._write(tds.PacketWriter(tds.PKT_REPLY).packets(response, final=True))
            ptype, payload = await self._read_message()
        if ptype != tds.PKT_LOGIN7:
            raise tds.TdsProtocolError(f"expected LOGIN7, got packet type 0x{ptype:02X}")
        login = tds.parse_login7(payload)
        self.tds_version = tds.negotiated_version(login.tds_version)
        self.encoder = tds.TokenEncoder(self.tds_version, _server_name(self.instance))
        try:
            self.session = await self.loop.run_in_executor(
                self.service.executor,
                lambda: self.instance.login(
                    login.user,
                    login.password,
                    login.database or None,
                    login.app_name,
                    login.host_name,
                    login.language or None,
                ),
            )
        except SqlError as e:
            log.info("login failed for user %r from %s: %s", login.user, self.peer, e.number)
            await self._send_response(tds.login_failure(self.encoder, e, login.user))
            return False
        self.packet_size = tds.negotiated_packet_size(login.packet_size)
        if hasattr(self.session, "on_kill"):
            # KILL / ALTER DATABASE ... WITH ROLLBACK IMMEDIATE: SQL Server drops the victim's connection.
            self.session.on_kill = lambda: self.loop.call_soon_threadsafe(self.abort)
        if hasattr(self.session, "on_drop"):
            # An injected network fault (sandbox.mssql.engine.faults): the connection drops, nothing more.
            self.session.on_drop = lambda: self.loop.call_soon_threadsafe(self.abort)
        database = getattr(self.session, "database", None) or login.database or "master"
        log.info(
            "login %r to %r from %s (TDS %s, app %r, language %r)",
            login.user,
            database,
            self.peer,
            tds.version_name(self.tds_version),
            login.app_name,
            login.language,
        )
        language = getattr(self.session, "language", None) or "us_english"
        tokens = tds.login_response(
            self.encoder, database, _product_version(self.instance), self.packet_size, language
        )
        await self._write(
            tds.PacketWriter(tds.PKT_REPLY, tds.DEFAULT_PACKET_SIZE).packets(tokens, final=True)
        )
        return True

    # --- requests -----------------------------------------------------------------------------
    async def _read_requests(self) -> None:
        """Read requests forever; an ATTENTION during a batch cancels it right away."""
        try:
            while True:
                message = await self._read_message()
                if message[0] == tds.PKT_ATTENTION and self.running_cancel is not None:
                    self.running_cancel.set()
                    continue
                await self.requests.put(message)
        except (asyncio.IncompleteReadError, ConnectionError, OSError, tds.TdsProtocolError) as e:
            log.debug("reader of %s stopped: %s", self.peer, e)
        finally:
            if self.running_cancel is not None:
                self.running_cancel.set()
            self.requests.put_nowait(None)

    async def _serve_requests(self) -> None:
        while True:
            message = await self.requests.get()
            if message is None or self.broken:
                return
            ptype, payload = message
            if ptype == tds.PKT_ATTENTION:
                # The batch had already finished: acknowledge with a lone DONE(ATTN).
                await self._send_response(self.encoder.done(tds.DONE_ATTN, 0))
            elif ptype == tds.PKT_SQL_BATCH:
                await self._run_sql(
                    functools.partial(tds.parse_sql_batch, payload, self.tds_version), in_proc=False
                )
            elif ptype == tds.PKT_RPC:
                await self._run_sql(functools.partial(_rpc_as_batch, payload, self.tds_version), in_proc=True)
            elif ptype == tds.PKT_TRANSACTION:
                await self._run_transaction_request(payload)
            else:
                error = SqlError(4002, 16, 1, f"The incoming TDS packet type 0x{ptype:02X} is not supported.")
                await self._send_response(tds.error_response(self.encoder, error))

    async def _run_sql(self, make_sql: Callable[[], str], in_proc: bool) -> None:
        """Run one batch in a worker thread, streaming its results to the client."""
        builder = tds.ResponseBuilder(self.encoder, in_proc=in_proc)
        try:
            sql = make_sql()
        except SqlError as e:
            await self._send_response(builder.finish_with_error(e))
            return
        except tds.TdsProtocolError as e:
            error = SqlError(8009, 16, 1, f"The incoming TDS request is incorrect: {e}")
            await self._send_response(builder.finish_with_error(error))
            return
        await self._stream(
            builder, lambda emit, cancel: self.instance.execute(self.session, sql, emit, cancel)
        )

    async def _stream(self, builder: tds.ResponseBuilder, work: Callable) -> None:
        """Run ``work(emit, cancel)`` in a thread; write tokens as they are emitted."""
        cancel = threading.Event()
        packets = self._packet_writer()
        pending = bytearray()
        lock = threading.Lock()  # one emit at a time, even if the engine emits from several threads
        encode_errors: list[tds.TdsEncodeError] = []

        def emit(item: object) -> None:
            with lock:
                if cancel.is_set() or encode_errors or self.broken:
                    return  # cancelled (the client discards all until DONE(ATTN)), failed or disconnected
                try:
                    pending.extend(builder.add(item))
                except tds.TdsEncodeError as e:
                    encode_errors.append(e)  # reported when the engine returns; nothing half-written
                    return
                # Whole packets go out as soon as they are full; a message goes out at once, so
                # progress reaches the client while the statement is still running.
                force = isinstance(item, Message)
                size = len(pending) if force else packets.full_packets_size(len(pending))
                if size:
                    data = packets.packets(bytes(pending[:size]), final=False)
                    del pending[:size]
                    self._write_from_thread(data)

        self.running_cancel = cancel
        error: SqlError | None = None
        try:
            await self.loop.run_in_executor(self.service.executor, work, emit, cancel)
        except SqlError as e:
            error = e
        except Exception as e:
            log.exception("engine failed on a request from %s", self.peer)
            error = SqlError(50000, 16, 1, f"Sandbox engine internal error: {type(e).__name__}: {e}")
        finally:
            self.running_cancel = None
        if encode_errors and error is None:
            error = SqlError(50000, 16, 1, f"Sandbox server could not encode a result: {encode_errors[0]}")
        if cancel.is_set():
            tail = builder.finish_cancelled()
        elif error is not None:
            tail = builder.finish_with_error(error)
        else:
            tail = builder.finish()
        with lock:
            data = packets.packets(bytes(pending) + tail, final=True)
            pending.clear()
        await self._write(data)

    async def _run_transaction_request(self, payload: bytes) -> None:
        """Transaction-manager request (python-tds and ODBC use it when autocommit is off)."""
        request = tds.parse_transaction_request(payload, self.tds_version)
        if request.kind == "other":
            error = SqlError(
                4002, 16, 1, f"Transaction manager request type {request.request_type} is not supported."
            )
            await self._send_response(tds.error_response(self.encoder, error))
            return
        steps = {"begin": ["begin"], "commit": ["commit"], "rollback": ["rollback"], "save": []}[request.kind]
        if request.begin_next:
            steps.append("begin")
        tokens = bytearray()
        try:
            for step in steps:
                await self.loop.run_in_executor(
                    self.service.executor, self._transaction_call(step), self.session
                )
                tokens += self._transaction_envchange(step)
        except SqlError as e:
            await self._send_response(bytes(tokens) + tds.error_response(self.encoder, e))
            return
        await self._send_response(bytes(tokens) + self.encoder.done(tds.DONE_FINAL, 0))

    def _transaction_call(self, step: str) -> Callable:
        return {
            "begin": self.instance.begin_transaction,
            "commit": self.instance.commit,
            "rollback": self.instance.rollback,
        }[step]

    def _transaction_envchange(self, step: str) -> bytes:
        """ENVCHANGE for a finished begin/commit/rollback; tracks the transaction descriptor."""
        if step == "begin":
            self.transaction_descriptor = self._next_descriptor
            self._next_descriptor += 1
            return self.encoder.begin_tran(self.transaction_descriptor)
        descriptor, self.transaction_descriptor = self.transaction_descriptor, 0
        return self.encoder.end_tran(step == "commit", descriptor)


def _rpc_as_batch(payload: bytes, tds_version: int) -> str:
    return tds.rpc_to_batch(tds.parse_rpc(payload, tds_version))


def _server_name(instance: object) -> str:
    return getattr(instance, "server_name", "") or getattr(instance, "name", "") or SERVER_NAME_FALLBACK


def _product_version(instance: object) -> str:
    return getattr(instance, "product_version", "") or "16.0.4135.4"


class ThreadedTdsServer:
    """A TDS server running its event loop in a background thread (for tests and other stand-ins).

    Usage::

        with ThreadedTdsServer(instance) as server:
            pymssql.connect(server="127.0.0.1", port=server.port, ...)
    """

    def __init__(self, instance: object, host: str = "127.0.0.1", port: int = 0):
        self.instance = instance
        self.host = host
        self.port = port
        self._requested_port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._service: TdsService | None = None

    def start(self) -> ThreadedTdsServer:
        if self._thread is not None:
            return self
        ready = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="tds-server", daemon=True)
        self._thread.start()
        try:
            self.host, self.port = ready.result(timeout=30)
        except BaseException:
            self._thread.join(timeout=5)
            self._thread = None
            raise
        return self

    def _run(self, ready: concurrent.futures.Future) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._service = TdsService(self.instance)
        try:
            loop.run_until_complete(self._service.start(self.host, self._requested_port))
        except BaseException as e:
            ready.set_exception(e)
            loop.close()
            return
        ready.set_result(self._service.address)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Close client connections and sessions, stop the loop and join the threads."""
        if self._thread is None or self._loop is None or self._service is None:
            return
        loop, service = self._loop, self._service
        try:
            asyncio.run_coroutine_threadsafe(service.aclose(timeout), loop).result(timeout + 5)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout)
            service.shutdown_executor()
            self._thread = None
            self._loop = None
            self._service = None

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def __enter__(self) -> ThreadedTdsServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
