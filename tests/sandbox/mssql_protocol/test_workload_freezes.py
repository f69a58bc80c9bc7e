"""The write workload as a privileged login against the engine: RESTRICTED_USER does not stop a db_owner,
READ_ONLY stops everyone; every acknowledged write before the freeze reaches the target, none comes after."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pymssql
import pytest

from sandbox.mssql.engine import Instance
from sandbox.mssql.server import ThreadedTdsServer
from sandbox.mssql.workload import WorkloadStats, read_journal, run_workload
from tests.sandbox.mssql_engine.security_config import DB, PW, q, secure_instance

GRACE = dt.timedelta(seconds=0.5)  # an ack read by the client just after the ALTER returned


@pytest.fixture
def served(tmp_path):
    instance = secure_instance(tmp_path, seed_tables=False)
    with ThreadedTdsServer(instance) as server:
        yield instance, server


class Workload:
    """run_workload in a thread, as ``login``, journaling to ``journal``."""

    def __init__(self, server, login: str, journal):
        self.stop = threading.Event()
        self.result: dict[str, WorkloadStats] = {}
        params = dict(server="127.0.0.1", port=server.port, user=login, password=PW, database=DB)
        self.thread = threading.Thread(
            target=lambda: self.result.setdefault(
                "stats", run_workload(params, 40, None, self.stop, update_ratio=0.4, journal_path=journal)
            )
        )

    def __enter__(self) -> Workload:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(15)
        assert not self.thread.is_alive()

    @property
    def stats(self) -> WorkloadStats:
        return self.result["stats"]


def admin(server):
    return pymssql.connect(
        server="127.0.0.1", port=server.port, user="sa", password=PW, database="master", autocommit=True
    )


def run(conn, sql: str) -> dt.datetime:
    """Run a statement to the end (5060 from ROLLBACK IMMEDIATE is a warning pymssql raises); its end time."""
    cursor = conn.cursor()
    try:
        cursor.execute(sql)
        while cursor.nextset():
            pass
    except pymssql.OperationalError as e:
        if e.args[0] != 5060:
            raise
    return dt.datetime.now(dt.UTC)


def latest_values(stats: WorkloadStats) -> dict:
    latest = {}
    for write in stats.acknowledged:
        latest[write.id] = write.value
    return latest


def test_restricted_user_does_not_stop_a_db_owner_workload(served, tmp_path):
    _instance, server = served
    journal = tmp_path / "journal.jsonl"
    with Workload(server, "app_owner", journal) as workload, admin(server) as conn:
        time.sleep(0.8)
        frozen_at = run(conn, f"ALTER DATABASE {q(DB)} SET RESTRICTED_USER WITH ROLLBACK IMMEDIATE")
        time.sleep(1.5)
    stats = workload.stats
    after = [w for w in stats.acknowledged if w.acked_at > frozen_at + GRACE]
    assert after, "the db_owner workload reconnects and keeps writing under RESTRICTED_USER"
    assert stats.connects >= 2 and stats.refused == 0
    assert read_journal(journal) == stats.acknowledged
    with admin(server) as conn:
        cursor = conn.cursor()
        cursor.execute(f"SELECT id, amount FROM {q(DB)}.dbo.orders")
        assert dict(cursor.fetchall()) == latest_values(stats)


def test_read_only_freeze_every_acknowledged_write_reaches_the_target_and_none_comes_after(served, tmp_path):
    _instance, server = served
    with Workload(server, "sa", tmp_path / "journal.jsonl") as workload, admin(server) as conn:
        time.sleep(0.6)
        run(conn, f"BACKUP DATABASE {q(DB)} TO DISK = 'D:\\Backups\\full.bak' WITH INIT, CHECKSUM")
        time.sleep(0.6)
        frozen_at = run(conn, f"ALTER DATABASE {q(DB)} SET READ_ONLY WITH ROLLBACK IMMEDIATE")
        time.sleep(1.2)  # the sysadmin workload reconnects and is refused (3906)
        run(conn, f"BACKUP LOG {q(DB)} TO DISK = 'D:\\Backups\\tail.trn' WITH INIT, CHECKSUM")
    stats = workload.stats
    assert stats.refused >= 1 and "3906" in (stats.last_error or "")
    assert not [w for w in stats.acknowledged if w.acked_at > frozen_at + GRACE]
    assert stats.inserted > 10 and stats.updated > 0

    target = Instance.from_config(
        {"name": "TGT", "logins": {"sa": {"password": PW, "sysadmin": True}}, "data_dir": "tgt"}, tmp_path
    )
    target.restore_file(DB, tmp_path / "backups" / "full.bak", recovery=False)
    target.restore_file(DB, tmp_path / "backups" / "tail.trn", recovery=True)
    assert target.database_info(DB)["is_read_only"] is True  # the option travelled with the tail
    with ThreadedTdsServer(target) as target_server, admin(target_server) as conn:
        cursor = conn.cursor()
        cursor.execute(f"SELECT id, amount FROM {q(DB)}.dbo.orders")
        assert dict(cursor.fetchall()) == latest_values(stats)
