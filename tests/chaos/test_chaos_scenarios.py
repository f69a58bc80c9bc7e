"""The bounded chaos suite: a few seeded scenarios, each a whole migration under real Airflow with faults.

Each seed runs ``python -m tools.chaos --seed N`` for real (sandbox in that process, scheduler,
dag-processor, triggerer and api-server as processes; a few minutes on 2 cores) and checks what it
records in ``result.json``: the migration completed (or, for a kill inside the cutover, rolled back with
nothing lost), the target equals the source, every backup file was imported once, no committed part was
sent again, no secret reached a log, and the planned faults really happened. The long run over many
seeds is ``python -m bench.chaos --seeds 50`` (figures in bench/RESULTS.md).

The seeds are chosen so that together they cover retry paths that need a whole deployment, at a cost
CI can pay (about 2–3 minutes each on 2 cores):

- seed 17 kills the cutover right after RDS accepted the tail-log import (its retry must not import the
  tail again), drops a log backup's connection after msdb recorded it, fails the tail's restore once;
- seed 88 kills the cutover right after RDS accepted the open (its retry must wait for the open, not
  ask again), KILLs the full backup's session, fails the tail's download once.

A kill in the middle of the full's multipart upload (seed 71 and others of the long run) is also
tests/e2e/test_retry_safety.py's, at the operator level.
Each restarts the triggerer while a task is deferred. A failing seed keeps its folder and names the
command that reproduces it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.chaos.plan import draw_plan

REPO = Path(__file__).resolve().parents[2]
SCENARIO_TIMEOUT_S = 15 * 60
SEEDS = {
    17: "cutover.tail_imported",
    88: "cutover.open_requested",
}
pytestmark = [pytest.mark.slow, pytest.mark.timeout(SCENARIO_TIMEOUT_S + 120)]


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_a_whole_migration_survives_its_seeded_faults(seed, tmp_path_factory):
    plan = draw_plan(seed)
    assert [k.point for k in plan.kills] == [SEEDS[seed]], "the seed's plan changed: pick seeds again"
    out = tmp_path_factory.mktemp(f"chaos-{seed}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    command = [
        sys.executable,
        "-m",
        "tools.chaos",
        "--seed",
        str(seed),
        "--out",
        str(out),
        "--keep",
        "failed",
    ]
    completed = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=SCENARIO_TIMEOUT_S, check=False
    )
    result_file = out / f"seed-{seed}" / "result.json"
    assert result_file.exists(), completed.stdout[-4000:] + completed.stderr[-4000:]
    result = json.loads(result_file.read_text())
    assert completed.returncode == 0 and result["ok"], (
        f"seed {seed} failed: {result['problems']}; folder kept: {out / f'seed-{seed}'}; "
        f"reproduce: python -m tools.chaos --seed {seed}"
    )
    assert result["outcome"] in ("completed", "rolled_back")
    assert result["duplicate_imports"] == result["resent_parts"] == result["rows_lost"] == 0
    assert result["secrets_found"] == [] and result["table_differences"] == []
    assert result["acknowledged_writes"] > 0, "the workload wrote during the migration"
    assert [k["point"] for k in result["kills"]] == [SEEDS[seed]], (
        f"the kill did not land: {result['events']}"
    )
    faults = result["faults"]
    assert any(kind.startswith("oss ") for kind in faults), faults
    assert any(kind.startswith("triggerer restart") for kind in faults), faults
    kind, target = plan.sql_fault
    if target != "tail" or result["outcome"] == "completed":
        assert any(k.startswith(f"sql {kind} ") for k in faults), faults
    assert f"rds {plan.file_fault[0]}" in faults, faults
