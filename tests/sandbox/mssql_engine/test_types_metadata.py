"""LOB types and what BINARY_CHECKSUM ignores; row counts and file sizes from metadata; config errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sandbox.mssql.engine import ConfigError, Instance
from tests.sandbox.mssql_engine.conftest import Runner, make_instance
from tests.sandbox.mssql_engine.security_config import DB, PW, lit, q, secure_instance

SECRET = "Tr0ub4dor&3"
INCLUDE_SQL = Path(__file__).resolve().parents[3] / "include" / "sql"
COUNTS = """SELECT s.name, t.name, SUM(ps.row_count)
FROM sys.tables AS t
JOIN sys.schemas AS s ON s.schema_id = t.schema_id
JOIN sys.dm_db_partition_stats AS ps ON ps.object_id = t.object_id AND ps.index_id IN (0, 1)
WHERE t.is_ms_shipped = 0
GROUP BY s.name, t.name
ORDER BY s.name, t.name"""


def in_db(sql: str) -> str:
    return f"EXEC {q(DB)}.sys.sp_executesql N'{sql.replace(chr(39), chr(39) * 2)}'"


@pytest.fixture
def inst(tmp_path):
    return secure_instance(tmp_path)


def test_lob_columns_round_trip_and_binary_checksum_ignores_them(inst):
    r = Runner(inst, "sa", PW, DB)
    r.run(
        "CREATE TABLE dbo.docs (id int PRIMARY KEY, t text, nt ntext, img image, x xml, "
        "vb varbinary(max), nv nvarchar(max))"
    )
    big = "é" * 6000
    r.run(f"INSERT INTO dbo.docs VALUES (1, 'plain', N'{big}', 0x00FF10, N'<a b=\"1\"/>', 0xCAFE, N'{big}')")
    result = r.result("SELECT id, t, nt, img, x, vb, nv FROM dbo.docs")
    assert [(c.type, c.size) for c in result.columns[1:]] == [
        ("nvarchar", -1),
        ("nvarchar", -1),
        ("varbinary", -1),
        ("nvarchar", -1),
        ("varbinary", -1),
        ("nvarchar", -1),
    ]
    assert result.rows == [(1, "plain", big, b"\x00\xff\x10", '<a b="1"/>', b"\xca\xfe", big)]
    assert r.rows(
        "SELECT DATALENGTH(t), DATALENGTH(nt), DATALENGTH(img), DATALENGTH(vb), DATALENGTH(nv) FROM dbo.docs"
    ) == [(5, 12000, 3, 2, 12000)]

    def checksums() -> tuple:
        return r.rows("SELECT BINARY_CHECKSUM(*), CHECKSUM(*) FROM dbo.docs")[0]

    before = checksums()
    for change in (
        "x = N'<a b=\"2\"/>'",  # xml, text, ntext, image: ignored
        "t = 'changed'",
        "nt = N'changed'",
        "img = 0x01",
    ):
        r.run(f"UPDATE dbo.docs SET {change}")
        assert checksums() == before, change
    for change in ("vb = 0xBEEF", "nv = N'changed'", "id = 2"):  # comparable columns count
        r.run(f"UPDATE dbo.docs SET {change}")
        assert checksums() != before, change
        before = checksums()


def test_checksum_agg_is_order_insensitive_and_identical_rows_cancel(inst):
    r = Runner(inst, "sa", PW, DB)
    r.run("CREATE TABLE dbo.h (v int, s nvarchar(10))")
    r.run("INSERT INTO dbo.h VALUES (1, N'a'), (2, N'b')")
    forward = r.rows("SELECT CHECKSUM_AGG(BINARY_CHECKSUM(*)) FROM dbo.h")
    r.run("DELETE FROM dbo.h; INSERT INTO dbo.h VALUES (2, N'b'), (1, N'a')")
    assert r.rows("SELECT CHECKSUM_AGG(BINARY_CHECKSUM(*)) FROM dbo.h") == forward
    r.run("INSERT INTO dbo.h VALUES (3, N'c'), (3, N'c')")  # a pair of identical rows changes nothing
    assert r.rows("SELECT CHECKSUM_AGG(BINARY_CHECKSUM(*)) FROM dbo.h") == forward


def test_hashbytes(inst):
    r = Runner(inst, "sa", PW)
    assert r.rows(
        "SELECT HASHBYTES('SHA2_256', 0xCAFE), HASHBYTES('MD5', N'ab'), HASHBYTES('NOPE', 0x00)"
    ) == [(hashlib.sha256(b"\xca\xfe").digest(), hashlib.md5("ab".encode("utf-16-le")).digest(), None)]
    r.run(f"USE {q(DB)}; CREATE TABLE dbo.b (id int PRIMARY KEY, data varbinary(max))")
    r.run("INSERT INTO dbo.b VALUES (1, 0x0102030405)")
    assert r.rows("SELECT HASHBYTES('SHA2_256', data) FROM dbo.b") == [
        (hashlib.sha256(bytes([1, 2, 3, 4, 5])).digest(),)
    ]


def test_partition_stats_follow_inserts_deletes_and_restores(inst, tmp_path):
    r = Runner(inst, "sa", PW, DB)
    r.run("CREATE TABLE dbo.heap (v int, note nvarchar(200))")
    r.run("CREATE INDEX ix_v ON dbo.heap (v)")
    values = ", ".join(f"({i}, N'{'n' * 150}')" for i in range(300))
    r.run(f"INSERT INTO dbo.heap VALUES {values}")
    assert r.rows(in_db(COUNTS)) == [("dbo", "heap", 300), ("dbo", "orders", 20)]
    r.run("DELETE FROM dbo.heap WHERE v < 100; DELETE FROM dbo.orders WHERE id <= 5")
    assert r.rows(in_db(COUNTS)) == [("dbo", "heap", 200), ("dbo", "orders", 15)]
    stats = r.rows(
        "SELECT ps.index_id, i.type_desc, ps.row_count, ps.in_row_data_page_count, ps.used_page_count, "
        "ps.reserved_page_count, p.rows FROM sys.dm_db_partition_stats ps "
        "JOIN sys.indexes i ON i.object_id = ps.object_id AND i.index_id = ps.index_id "
        "JOIN sys.partitions p ON p.partition_id = ps.partition_id "
        "WHERE ps.object_id = OBJECT_ID(N'dbo.heap') ORDER BY ps.index_id"
    )
    assert [row[:3] for row in stats] == [
        (0, "HEAP", 200),
        (2, "NONCLUSTERED", 200),
    ]  # no filter: counted twice
    heap = stats[0]
    assert heap[3] >= 200 * 300 // 8060 and heap[4] == heap[3] + 1 and heap[5] >= heap[4] and heap[6] == 200
    clustered = r.rows(
        "SELECT index_id, row_count FROM sys.dm_db_partition_stats WHERE object_id = OBJECT_ID(N'dbo.orders')"
    )
    assert clustered == [(1, 15)]

    r.run(f"BACKUP DATABASE {q(DB)} TO DISK = 'D:\\Backups\\ps.bak' WITH INIT")
    r.run("INSERT INTO dbo.orders (id, customer) VALUES (900, N'after the full')")
    r.run(f"BACKUP LOG {q(DB)} TO DISK = 'D:\\Backups\\ps.trn' WITH INIT")
    target = make_instance(tmp_path, "TGT")
    target.restore_file(DB, tmp_path / "backups" / "ps.bak", recovery=False)
    target.restore_file(DB, tmp_path / "backups" / "ps.trn", recovery=True)
    assert Runner(target).rows(in_db(COUNTS)) == [("dbo", "heap", 200), ("dbo", "orders", 16)]
    empty = Runner(target, database=DB)
    empty.run("DELETE FROM dbo.heap")
    assert empty.rows(
        "SELECT row_count, in_row_data_page_count, used_page_count, reserved_page_count "
        "FROM sys.dm_db_partition_stats WHERE object_id = OBJECT_ID(N'dbo.heap') AND index_id = 0"
    ) == [(0, 0, 0, 0)]


def test_master_files_list_every_file_restore_creates(tmp_path):
    inst = make_instance(
        tmp_path,
        "FILES",
        databases={DB: {"files": {"data_mb": 64, "log_mb": 512, "filestream_mb": 100, "fulltext_mb": 10}}},
    )
    sql = (INCLUDE_SQL / "database_size.sql").read_text() % {"database": lit(DB)}
    sizes = dict(Runner(inst).rows(sql))
    mb = 1024 * 1024
    assert sizes == {"ROWS": 64 * mb, "LOG": 512 * mb, "FILESTREAM": 100 * mb, "FULLTEXT": 10 * mb}
    files = Runner(inst).rows(
        f"SELECT file_id, type, type_desc FROM sys.master_files WHERE database_id = DB_ID({lit(DB)}) ORDER BY file_id"
    )
    assert files == [(1, 0, "ROWS"), (2, 1, "LOG"), (65537, 2, "FILESTREAM"), (65538, 4, "FULLTEXT")]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {"logins": {"sa": {"password": SECRET, "sysadmin": True, "colour": "red"}}},
            "logins.sa: unknown field",
        ),
        ({"logins": {"sa": {"password": SECRET, "server_roles": ["root"]}}}, "logins.sa.server_roles"),
        (
            {"logins": {"sa": {"password": SECRET, "default_language": "Klingon"}}},
            "logins.sa.default_language",
        ),
        ({"logins": {"sa": {"password": SECRET, "sid": "0xZZ"}}}, "logins.sa.sid"),
        ({"logins": {"sa": {"password": 5}}}, "logins.sa.password"),
        ({"databases": {"d": {"owner": "nobody"}}}, "databases.d.owner"),
        ({"databases": {"d": {"users": {"nobody": []}}}}, "databases.d.users.nobody"),
        ({"databases": {"d": {"users": {"sa": ["db_god"]}}}}, "databases.d.users.sa"),
        ({"databases": {"d": {"files": {"log_mb": -1}}}}, "databases.d.files.log_mb"),
        ({"databases": {"d": {"files": {"logs": 1}}}}, "databases.d.files"),
    ],
)
def test_bad_security_config_names_the_field(tmp_path, change, field):
    cfg = {"name": "BAD", "logins": {"sa": {"password": SECRET, "sysadmin": True}}} | change
    with pytest.raises(ConfigError) as info:
        Instance.from_config(cfg, tmp_path)
    assert field in str(info.value)
    assert "x" not in str(info.value).split(":", 1)[-1].split() or "password" in field  # no secrets
