"""Backup compression: editions that cannot compress, and SQL Server 2022's ALGORITHM clause and default."""

from __future__ import annotations

import pytest

from sandbox.mssql.engine.instance import ConfigError
from tests.sandbox.mssql_engine.conftest import Runner, make_instance

DB = "SalesDB"
FULL = f"BACKUP DATABASE [{DB}] TO DISK = N'D:\\Backups\\{{name}}' WITH INIT, {{compression}}"
ALGORITHMS = f"SELECT compression_algorithm FROM msdb.dbo.backupset WHERE database_name = N'{DB}' ORDER BY backup_set_id"


def instance(tmp_path, version: str, **extra):
    return make_instance(
        tmp_path,
        "SRC",
        product_version=version,
        edition="Enterprise Edition (64-bit)",
        databases={DB: {"tables": [{"name": "t", "rows": 3}]}},
        **extra,
    )


def test_2022_records_the_algorithm_named_or_the_servers_default(tmp_path):
    runner = Runner(instance(tmp_path, "16.0.4135.4", backup_compression_algorithm="QAT_DEFLATE"))
    runner.run(FULL.format(name="a.bak", compression="COMPRESSION (ALGORITHM = MS_XPRESS)"))
    runner.run(FULL.format(name="b.bak", compression="COMPRESSION"))  # the server's default: QAT here
    runner.run(FULL.format(name="c.bak", compression="COMPRESSION (ALGORITHM = qat_deflate)"))
    runner.run(FULL.format(name="d.bak", compression="NO_COMPRESSION"))
    assert runner.rows(ALGORITHMS) == [("MS_XPRESS",), ("QAT_DEFLATE",), ("QAT_DEFLATE",), (None,)]
    header = runner.result("RESTORE HEADERONLY FROM DISK = N'D:\\Backups\\a.bak'")
    assert header.rows[0][[c.name for c in header.columns].index("CompressionAlgorithm")] == "MS_XPRESS"


def test_before_2022_the_algorithm_clause_does_not_parse(tmp_path):
    runner = Runner(instance(tmp_path, "15.0.4236.7"))
    error, _ = runner.error(FULL.format(name="a.bak", compression="COMPRESSION (ALGORITHM = MS_XPRESS)"))
    assert (error.number, error.message) == (102, "Incorrect syntax near '('.")
    runner.run(FULL.format(name="b.bak", compression="COMPRESSION"))
    assert runner.rows(ALGORITHMS) == [("MS_XPRESS",)]


@pytest.mark.parametrize(
    ("version", "algorithm", "words"),
    [("15.0.4236.7", "QAT_DEFLATE", "needs SQL Server 2022"), ("16.0.4135.4", "ZIP", "expected one of")],
)
def test_config_names_the_field(tmp_path, version, algorithm, words):
    with pytest.raises(ConfigError, match=f"backup_compression_algorithm: .*{words}"):
        instance(tmp_path, version, backup_compression_algorithm=algorithm)
