"""``python -m rds_migration.check <folder>``: exit codes and one line per problem, run as CI runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "include" / "migrations" / "examples" / "example.yaml"
ENTRY = """
  {name}:
    source: {{mssql_conn_id: src, database: {name}}}
    target: {{rds_conn_id: rds, instance_id: rm-bp1abc, region: cn-hangzhou, mssql_conn_id: rds_tds}}
    oss: {{oss_conn_id: oss, bucket: {bucket}}}
    backup_folder: {{server_path: 'D:\\B', worker_path: /mnt/b}}
"""


def run_check(folder: Path | str) -> subprocess.CompletedProcess[str]:
    """The documented command, from the repository root."""
    env = {**os.environ, "PYTHONPATH": "plugins"}
    return subprocess.run(
        [sys.executable, "-m", "rds_migration.check", str(folder)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_valid_folder_exits_0(tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "prod.yaml")
    result = run_check(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and "OK: 2 entries in 1 file(s)" in result.stdout


def test_every_problem_one_line_each_with_file_entry_and_field(tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text(
        "databases:"
        + ENTRY.format(name="Sales", bucket="other-bucket")
        + ENTRY.format(name="bad", bucket="Bad_Bucket")
        + "    retries: 99\n"
    )
    (tmp_path / "c.yaml").write_text("databases: [unclosed\n  sales: 1\n")
    result = run_check(tmp_path)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    b, c = tmp_path / "b.yaml", tmp_path / "c.yaml"
    assert len(lines) == 4, lines
    assert f"{b}: entry 'bad': field 'oss.bucket': 'Bad_Bucket' is not a valid OSS bucket name" in lines[0]
    assert lines[1].startswith(f"{b}: entry 'bad': field 'retries': ")
    assert lines[2].startswith(f"{c}: malformed YAML: ")
    assert lines[3].startswith(
        f"{b}: entry 'Sales': entry name is already defined as 'sales' in {tmp_path / 'a.yaml'}"
    )
    assert "4 problem(s); 2 valid entries" in result.stdout


def test_missing_folder_is_a_problem_and_an_empty_one_is_not(tmp_path):
    missing = run_check(tmp_path / "nope")
    assert missing.returncode == 1 and missing.stderr.strip() == f"{tmp_path / 'nope'}: is not a folder"
    # The repository's own folder holds only README.md and examples/: valid, and it says so.
    empty = run_check("include/migrations")
    assert empty.returncode == 0 and "no *.yaml file" in empty.stdout and empty.stderr == ""


def test_no_folder_argument_is_a_usage_error():
    usage = subprocess.run(
        [sys.executable, "-m", "rds_migration.check"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": "plugins"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert usage.returncode == 2 and "folder" in usage.stderr
