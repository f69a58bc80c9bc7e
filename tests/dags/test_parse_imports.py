"""Parsing the DAG file imports no driver or SDK: they load when a task first uses a hook."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "include" / "migrations" / "examples" / "example.yaml"
#: Top-level modules a parse must not import: the SQL Server driver, oss2, the Tea SDK and requests.
HEAVY = ("pymssql", "oss2", "Tea", "darabonba", "requests", "aliyunsdkcore", "crcmod")

CHILD = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
before = set(sys.modules)
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
assert not bag.import_errors, bag.import_errors
loaded = sorted({m.split(".")[0] for m in set(sys.modules) - before})
steps = __import__("operators.steps", fromlist=["MigrationSteps"])
spec = bag.dags["mssql_to_rds__sales"].get_task("preflight").migration
hook_type = type(steps.MigrationSteps(spec).oss).__module__  # first use of a hook imports its SDK
print(json.dumps({"dags": sorted(bag.dag_ids), "loaded": loaded, "after_hook": "oss2" in sys.modules,
                  "hook_module": hook_type}))
"""


def test_parse_imports_no_sdk_and_first_hook_use_does(tmp_path):
    folder = tmp_path / "migrations"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder / "prod.yaml")
    env = {
        **os.environ,
        "MSSQL_RDS_MIGRATIONS_DIR": str(folder),
        "MSSQL_RDS_LAST_GOOD_DIR": str(tmp_path / "last-good"),
        "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO)]),
    }
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO / "dags" / "mssql_to_rds.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "mssql_to_rds__sales" in report["dags"]
    leaked = sorted(m for m in report["loaded"] if m in HEAVY or m.startswith("alibabacloud"))
    assert leaked == [], f"imported at parse time: {leaked}"
    assert report["after_hook"] and report["hook_module"] == "hooks.oss"
