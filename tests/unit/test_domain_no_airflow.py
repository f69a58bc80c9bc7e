"""The domain core must not import Airflow (it is read, tested and benchmarked on its own)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"


def test_no_module_imports_airflow():
    import rds_migration

    modules = [f"rds_migration.{m.name}" for m in pkgutil.iter_modules(rds_migration.__path__)]
    assert {"rds_migration.chain", "rds_migration.config", "rds_migration.naming"} <= set(modules)
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "leaked = sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))\n"
        "assert not leaked, leaked\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PLUGINS, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
