"""Application locks (sp_getapplock / sp_releaseapplock) owned by sessions, as the migration's backup
slots use them: the documented status codes, and a lock that ends with its session."""

from __future__ import annotations

import threading
import time

from tests.sandbox.mssql_engine.conftest import Runner

GET = (
    "DECLARE @r int; EXEC @r = sp_getapplock @Resource = N'slot 1', @LockMode = N'{mode}', "
    "@LockOwner = N'Session', @LockTimeout = {timeout}; SELECT @r"
)
RELEASE = (
    "DECLARE @r int; EXEC @r = sp_releaseapplock @Resource = N'SLOT 1', @LockOwner = N'Session'; SELECT @r"
)


def status(runner: Runner, mode: str = "Exclusive", timeout: int = 0) -> int:
    return runner.rows(GET.format(mode=mode, timeout=timeout))[0][0]


def test_status_codes_and_release(source):
    first, second = Runner(source), Runner(source)
    assert status(first) == 0
    assert status(first) == 0, "the owner may take it again (counted)"
    assert status(second) == -1, "held by another session: timed out at once"
    assert second.rows(RELEASE)[0][0] == -999, "not held by this session"
    assert first.rows(RELEASE)[0][0] == 0 and status(second) == -1, "still held once more"
    assert first.rows(RELEASE)[0][0] == 0 and status(second) == 0, "resource names ignore case"


def test_shared_locks_share_and_a_waiter_gets_the_lock_when_the_session_ends(source):
    a, b, c = Runner(source), Runner(source), Runner(source)
    assert status(a, "Shared") == 0 and status(b, "Shared") == 0
    assert status(c, "Exclusive") == -1
    source.close_session(a.session)
    source.close_session(b.session)
    assert status(c, "Exclusive") == 0

    waiter = Runner(source)
    results: list[int] = []
    thread = threading.Thread(target=lambda: results.append(status(waiter, timeout=5000)))
    thread.start()
    time.sleep(0.2)
    assert results == [], "waiting"
    source.close_session(c.session)  # the worker died: its session, and so its lock, end
    thread.join(5)
    assert results == [1], "granted after waiting"
