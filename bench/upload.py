"""Benchmark the OSS upload path (OssMigrationHook.upload_file) against the local OSS stand-in.

Run: ``.venv/bin/python -m bench.upload [--size-mb 256] [--bandwidth-mbps 20] [--latency-ms 10]``

Everything runs on 127.0.0.1: the OSS stand-in (``sandbox.oss.ThreadedOssServer``) in a child process, so
it does not share the GIL with the uploading client, with a per-connection bandwidth cap that mimics a
network link. One run measures, on one incompressible backup-sized file:

1. single PUT (1 connection) vs multipart upload with 1, 2 and 4 threads (the hook's defaults otherwise);
2. CRC64 of the local file (``hooks.oss.file_crc64``, oss2's Crc64 over crcmod) and its share of the
   upload time; whether crcmod's C extension is in use, and what the pure-Python fallback would cost;
3. a resumed upload after the uploading worker is killed half-way: bytes sent on resume vs the file size,
   from the stand-in's request log;
4. the "already uploaded" skip: a re-run that sends no body bytes.

MB = 10**6 bytes throughout (as ``UploadResult.mb_per_s``).
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from importlib.metadata import version
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _entry in (str(ROOT / "plugins"), str(ROOT)):
    if _entry not in sys.path:
        sys.path.insert(0, _entry)

MiB = 1024 * 1024
MB = 1_000_000
CONN_ID = "oss_bench"
KEY_ID = "LTAI5tBenchUpload"
SECRET = "bench-upload-secret"
REGION = "cn-hangzhou"
BUCKET = "bench-bkt"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")


class BenchTimeout(BaseException):
    """The run exceeded ``--timeout`` (a BaseException: the hook's retries must not swallow it)."""


# ---- the stand-in, in a child process ---------------------------------------------------------------


@dataclass(frozen=True)
class Req:
    """What the benchmark needs from one :class:`sandbox.oss.RequestRecord`."""

    operation: str
    key: str
    status: int
    bytes_in: int
    part_number: int | None


def _serve(conn: Connection, data_dir: str, bandwidth_bps: int, latency_ms: float) -> None:
    """Child process: run the OSS stand-in and answer commands on ``conn`` until told to stop."""
    # A killed uploader leaves half-read bodies; the stand-in logs them with a traceback. Keep quiet.
    logging.disable(logging.CRITICAL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    from sandbox.oss import OssConfig, ThreadedOssServer

    config = OssConfig.from_dict(
        {
            "data_dir": data_dir,
            "accounts": {KEY_ID: SECRET},
            "buckets": {BUCKET: {"region": REGION}},
            "faults": {"bandwidth_bps": bandwidth_bps, "latency_ms": latency_ms, "seed": 1},
        }
    )
    with ThreadedOssServer(config) as server:
        conn.send(server.endpoint)
        while True:
            try:
                command = conn.recv()
            except (EOFError, OSError):  # the parent is gone
                return
            if command == "stop":
                conn.send("stopped")
                return
            if isinstance(command, tuple) and command[0] == "bandwidth":
                server.set_faults(bandwidth_bps=command[1])
                conn.send(None)
            elif command == "clear":
                server.faults.clear_log()
                conn.send(None)
            elif command == "log":
                conn.send(
                    [Req(r.operation, r.key, r.status, r.bytes_in, r.part_number) for r in server.requests]
                )
            else:
                conn.send(ValueError(f"unknown command {command!r}"))


class StandIn:
    """Handle on the stand-in child process."""

    def __init__(self, data_dir: Path, bandwidth_bps: int, latency_ms: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child_conn = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve,
            args=(child_conn, str(data_dir), bandwidth_bps, latency_ms),
            name="oss-stand-in",
            daemon=True,
        )
        self._proc.start()
        child_conn.close()
        if not self._conn.poll(60):
            self.stop()
            raise RuntimeError("the OSS stand-in did not start within 60 s")
        self.endpoint: str = self._conn.recv()

    def _ask(self, command: object) -> object:
        self._conn.send(command)
        if not self._conn.poll(30):
            raise RuntimeError(f"the OSS stand-in did not answer {command!r} within 30 s")
        answer = self._conn.recv()
        if isinstance(answer, Exception):
            raise answer
        return answer

    def clear_log(self) -> None:
        self._ask("clear")

    def set_bandwidth(self, bandwidth_bps: int | None) -> None:
        self._ask(("bandwidth", bandwidth_bps))

    def log(self) -> list[Req]:
        return self._ask("log")  # type: ignore[return-value]

    def stop(self, graceful: bool = True) -> None:
        """Stop the stand-in; ``graceful=False`` kills it (uploads may still be streaming after a failure)."""
        if graceful and self._proc.is_alive():
            try:
                self._conn.send("stop")
                if self._conn.poll(30):
                    self._conn.recv()
            except (OSError, EOFError):
                pass
            self._proc.join(30)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(10)
        self._conn.close()


# ---- the uploader that gets killed half-way ------------------------------------------------------------


def _upload_then_die(path: str, key: str, checkpoint_dir: str, num_threads: int) -> None:
    """Child process: a worker uploading a backup (it is SIGKILLed by the parent mid-upload)."""
    logging.disable(logging.CRITICAL)
    from hooks.oss import OssMigrationHook

    OssMigrationHook(CONN_ID).upload_file(
        BUCKET, path, key, checkpoint_dir=checkpoint_dir, num_threads=num_threads
    )


# ---- measurements --------------------------------------------------------------------------------------


def make_file(path: Path, size: int) -> None:
    """``size`` bytes of os.urandom: incompressible, like a compressed backup."""
    with open(path, "wb") as handle:
        left = size
        while left:
            n = min(left, 8 * MiB)
            handle.write(os.urandom(n))
            left -= n


def crc_c_extension() -> bool:
    try:
        import crcmod._crcfunext  # noqa: F401
    except ImportError:
        return False
    return True


def time_crc(path: Path, runs: int) -> float:
    """Median seconds of ``file_crc64`` (the hook's local CRC64 pass) over the file."""
    from hooks.oss import file_crc64

    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        file_crc64(path)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def pure_python_crc_rate(sample_bytes: int = 2 * MiB) -> float:
    """MB/s of crcmod's pure-Python CRC64 (what oss2 falls back to without the C extension)."""
    import crcmod
    import crcmod._crcfunpy as pure
    import oss2.utils

    reference = oss2.utils.Crc64(0).crc64
    table = reference.table
    data = os.urandom(sample_bytes)
    started = time.perf_counter()
    value = pure._crc64r(data, reference.crcValue ^ reference.xorOut, table)
    seconds = time.perf_counter() - started
    check = crcmod.Crc(oss2.utils.Crc64._POLY, initCrc=0, rev=True, xorOut=oss2.utils.Crc64._XOROUT)
    check.update(data)
    assert value ^ reference.xorOut == check.crcValue, "pure-Python CRC64 differs from the one in use"
    return sample_bytes / MB / seconds


@dataclass
class Row:
    label: str
    requests: Counter
    body_bytes: int
    send_s: float
    total_s: float
    skipped: bool = False

    @property
    def send_mbps(self) -> float:
        return 0.0 if self.skipped else self.body_bytes / MB / self.send_s


def body_bytes(log: list[Req], key: str) -> int:
    return sum(r.bytes_in for r in log if r.key == key and r.operation in ("PutObject", "UploadPart"))


def run_upload(hook, oss: StandIn, path: Path, key: str, ckpt: Path, label: str, **kwargs) -> Row:
    oss.clear_log()
    result = hook.upload_file(BUCKET, path, key, checkpoint_dir=ckpt, **kwargs)
    log = oss.log()
    size = path.stat().st_size
    if not result.skipped:
        assert result.size == size and result.mb_per_s > 0, result
    send_s = 0.0 if result.skipped else size / MB / result.mb_per_s
    return Row(
        label,
        Counter(r.operation for r in log),
        body_bytes(log, key),
        send_s,
        result.seconds,
        result.skipped,
    )


@dataclass
class Resume:
    parts: int
    part_size: int
    committed_before_kill: int
    interrupted_bytes: int
    lost_inflight_bytes: int
    resume_bytes: int
    resume_parts: list[int]
    resent_committed: int
    only_missing: bool
    resume_s: float


def run_resume(hook, oss: StandIn, path: Path, key: str, ckpt: Path, threads: int, deadline: float) -> Resume:
    """Kill a worker half-way through a multipart upload, then upload again from the checkpoint."""
    import oss2

    size = path.stat().st_size
    part_size = oss2.determine_part_size(size, oss2.defaults.part_size)
    parts = math.ceil(size / part_size)
    ctx = multiprocessing.get_context("spawn")
    oss.clear_log()
    worker = ctx.Process(
        target=_upload_then_die, args=(str(path), key, str(ckpt), threads), name="upload-worker", daemon=True
    )
    worker.start()
    try:
        while True:
            log = oss.log()
            done = {r.part_number for r in log if r.operation == "UploadPart" and r.status == 200}
            if len(done) >= parts // 2:
                break
            if not worker.is_alive():
                raise RuntimeError(f"the upload worker ended (exit {worker.exitcode}) before half the parts")
            if time.monotonic() > deadline:
                raise BenchTimeout("the upload worker did not reach half the parts in time")
            time.sleep(0.02)
        worker.kill()  # SIGKILL: the worker dies mid-part, like a lost Celery worker
        worker.join(10)
    finally:
        if worker.is_alive():
            worker.kill()
            worker.join(10)
    time.sleep(0.3)  # let the stand-in notice the dropped connections and log them
    log = oss.log()
    committed = {r.part_number for r in log if r.operation == "UploadPart" and r.status == 200}
    interrupted_bytes = body_bytes(log, key)
    lost = sum(r.bytes_in for r in log if r.operation == "UploadPart" and r.status != 200)
    if not any(ckpt.rglob("*")):
        raise RuntimeError("the killed worker left no checkpoint: nothing to resume from")

    oss.clear_log()
    result = hook.upload_file(BUCKET, path, key, checkpoint_dir=ckpt, num_threads=threads)
    log = oss.log()
    sent = sorted(r.part_number for r in log if r.operation == "UploadPart")
    assert not result.skipped and result.size == size
    return Resume(
        parts=parts,
        part_size=part_size,
        committed_before_kill=len(committed),
        interrupted_bytes=interrupted_bytes,
        lost_inflight_bytes=lost,
        resume_bytes=body_bytes(log, key),
        resume_parts=sent,
        resent_committed=len(set(sent) & committed),
        only_missing=sent == sorted(set(range(1, parts + 1)) - committed),
        resume_s=result.seconds,
    )


# ---- main ----------------------------------------------------------------------------------------------


def _ops(counter: Counter) -> str:
    short = {
        "PutObject": "PUT",
        "UploadPart": "part",
        "HeadObject": "HEAD",
        "InitiateMultipartUpload": "init",
        "CompleteMultipartUpload": "complete",
        "ListParts": "list",
    }
    return " ".join(f"{n}x{short.get(op, op)}" for op, n in sorted(counter.items(), key=lambda i: -i[1]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256, help="file size in MiB (default 256)")
    parser.add_argument(
        "--bandwidth-mbps", type=float, default=20.0, help="cap per connection, MB/s (default 20)"
    )
    parser.add_argument("--latency-ms", type=float, default=10.0, help="added to every request (default 10)")
    parser.add_argument("--timeout", type=int, default=600, help="abort the whole run after this many s")
    args = parser.parse_args(argv)

    # Bounded in time: SIGALRM raises in the main thread, the finally blocks clean up.
    def on_alarm(signum, frame):
        raise BenchTimeout(f"bench.upload exceeded --timeout {args.timeout} s")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(args.timeout)
    started = time.monotonic()
    deadline = started + args.timeout

    size = args.size_mb * MiB
    bandwidth_bps = int(args.bandwidth_mbps * MB)
    for name in PROXY_VARS:
        os.environ.pop(name, None)
    logging.basicConfig(level=logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    oss: StandIn | None = None
    failed = True
    try:
        path = tmp / "Sales_FULL_20261124101500.bak"
        make_file(path, size)
        oss = StandIn(tmp / "oss-data", bandwidth_bps, args.latency_ms)
        import json

        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
            {
                "conn_type": "oss",
                "extra": {
                    "auth_type": "AK",
                    "access_key_id": KEY_ID,
                    "access_key_secret": SECRET,
                    "region": REGION,
                    "endpoint": oss.endpoint,
                },
            }
        )
        import oss2

        from hooks.oss import OssMigrationHook

        for name, level in (
            ("hooks", logging.WARNING),
            ("oss2", logging.WARNING),
            ("airflow", logging.ERROR),
        ):
            logging.getLogger(name).setLevel(level)
        hook = OssMigrationHook(CONN_ID)

        # (1) single PUT vs multipart with 1, 2, 4 threads; each object deleted afterwards (disk).
        modes = [
            ("single PUT", {"num_threads": 1, "multipart_threshold": size + 1}),
            ("multipart x1", {"num_threads": 1}),
            ("multipart x2", {"num_threads": 2}),
            ("multipart x4", {"num_threads": 4}),
        ]
        rows = []
        for label, kwargs in modes:
            key = f"bench/{label.replace(' ', '-')}/{path.name}"
            rows.append(run_upload(hook, oss, path, key, tmp / "ckpt", label, **kwargs))
            hook.delete_prefix(BUCKET, key.rsplit("/", 1)[0] + "/")
        # Not a link a worker has: the ceiling of client + stand-in on this machine, for reading the rows above.
        oss.set_bandwidth(None)
        key = f"bench/uncapped/{path.name}"
        rows.append(run_upload(hook, oss, path, key, tmp / "ckpt", "x4 no cap", num_threads=4))
        hook.delete_prefix(BUCKET, "bench/uncapped/")
        oss.set_bandwidth(bandwidth_bps)

        # (2) CRC64 of the local file, hot page cache (measured after the uploads: writeback of the freshly
        # written file is over by then and does not compete with it).
        crc_s = time_crc(path, runs=5)
        crc_rate = size / MB / crc_s
        c_ext = crc_c_extension()
        py_rate = pure_python_crc_rate()

        # (3) resume after the worker is killed half-way (4 threads, the hook's default).
        resume_key = f"bench/resume/{path.name}"
        resume = run_resume(hook, oss, path, resume_key, tmp / "ckpt-resume", 4, deadline)
        leftover = [p for p in (tmp / "ckpt-resume").rglob("*") if p.is_file()]

        # (4) re-run on the uploaded object: skipped after local CRC64 + HEAD.
        skip = run_upload(hook, oss, path, resume_key, tmp / "ckpt-resume", "re-run (skip)", num_threads=4)
        hook.delete_prefix(BUCKET, "bench/")
        failed = False
    finally:
        signal.alarm(0)
        if oss is not None:
            oss.stop(graceful=not failed)
        shutil.rmtree(tmp, ignore_errors=True)

    base = rows[0]
    print(
        f"OSS upload: {size / MB:,.1f} MB ({args.size_mb} MiB, os.urandom) to the OSS stand-in on 127.0.0.1 "
        f"(own process), cap {args.bandwidth_mbps:g} MB/s per connection, latency {args.latency_ms:g} ms; "
        f"oss2 {oss2.__version__}, {os.cpu_count()} CPUs; MB = 10**6 bytes"
    )
    print(
        f"multipart: threshold 64 MiB, part size {resume.part_size / MiB:g} MiB ({resume.parts} parts) — "
        "hook defaults; send = resumable_upload; total = local CRC64 + HEAD + send + HEAD"
    )
    print()
    print(
        f"{'mode':<14} {'send s':>7} {'send MB/s':>10} {'vs PUT':>7} {'total s':>8} {'CRC share':>10}  requests"
    )
    for row in rows:
        print(
            f"{row.label:<14} {row.send_s:7.2f} {row.send_mbps:10.1f} {row.send_mbps / base.send_mbps:6.2f}x "
            f"{row.total_s:8.2f} {crc_s / row.total_s:9.1%}  {_ops(row.requests)}"
        )
    print()
    print(
        f"CRC64 of the local file (hooks.oss.file_crc64, oss2 Crc64 / crcmod {version('crcmod')}): "
        f"{crc_rate:,.0f} MB/s, "
        f"{crc_s:.2f} s for the file (median of 5, page cache warm); crcmod C extension "
        f"(crcmod._crcfunext) importable: {'yes' if c_ext else 'NO'}"
    )
    print(
        f"  pure-Python crcmod fallback: {py_rate:.1f} MB/s -> ~{size / MB / py_rate:,.0f} s for this file "
        "if the C extension were missing"
    )
    print()
    print(
        f"resume:  worker SIGKILLed after {resume.committed_before_kill}/{resume.parts} parts committed; it had "
        f"sent {resume.interrupted_bytes / MB:,.1f} MB ({resume.lost_inflight_bytes / MB:,.1f} MB of in-flight "
        "parts lost)"
    )
    print(
        f"         resume sent {len(resume.resume_parts)} parts, {resume.resume_bytes / MB:,.1f} MB = "
        f"{resume.resume_bytes / size:.1%} of the file; exactly the missing parts: "
        f"{'yes' if resume.only_missing else 'NO'} ({resume.resent_committed} committed part(s) sent again)"
    )
    print(
        f"         resume took {resume.resume_s:.2f} s incl. local CRC64 + verification; "
        f"checkpoint files left: {len(leftover)}"
    )
    print(
        f"skip:    re-run sent {skip.body_bytes} body bytes ({_ops(skip.requests)}) in {skip.total_s:.2f} s "
        f"(local CRC64 {crc_s:.2f} s + HEAD), skipped={skip.skipped}"
    )
    print(f"\nwall clock {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
