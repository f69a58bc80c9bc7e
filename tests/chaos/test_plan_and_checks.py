"""The chaos scenarios' fault plans (drawn from a seed) and their verdicts (from the stand-ins' records)."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from types import SimpleNamespace

import pytest

from tools.chaos import checks
from tools.chaos.plan import KILL_POINT_NAMES, KILL_POINTS, SQL_FAULT_TASK, draw_plan, fault_free_plan


def test_a_seed_reproduces_its_plan_and_consecutive_seeds_visit_every_kill_point():
    assert draw_plan(17) == draw_plan(17)
    assert draw_plan(17) != draw_plan(18)
    assert len(KILL_POINTS) == 10
    assert {draw_plan(seed).kills[0].point for seed in range(10)} == set(KILL_POINT_NAMES)
    tasks = {task for _name, task, _what in KILL_POINTS}
    assert "cutover" in tasks, "the downtime window is killed too"
    cutover_points = [name for name, task, _what in KILL_POINTS if task == "cutover"]
    assert cutover_points == ["cutover.frozen", "cutover.tail_imported", "cutover.open_requested"]


def test_rates_stay_near_five_percent_and_carry_the_seed():
    plan = draw_plan(3)
    oss = plan.oss_faults
    assert sum(oss[k] for k in ("error_500_rate", "error_503_rate", "throttle_rate", "reset_rate")) == 0.05
    assert oss["throttle_code"] in ("TotalQpsLimitExceeded", "QpsLimitExceeded") and oss["seed"] == 3
    assert plan.rds_faults["throttle_rate"] + plan.rds_faults["error_5xx_rate"] == 0.05
    assert plan.rds_faults["ambiguous_create_kinds"] == ["accept_then_500", "accept_then_drop"]


def test_a_kill_and_the_sql_fault_never_spend_the_same_tasks_retries():
    for seed in range(200):
        plan = draw_plan(seed, kills_per_run=2)
        killed = {k.task_id for k in plan.kills}
        assert len(killed) == 2 or plan.kills[0].point.startswith("cutover")
        if plan.sql_fault:
            assert SQL_FAULT_TASK[plan.sql_fault[1]] not in killed, seed


def test_plan_arguments_are_checked():
    with pytest.raises(ValueError, match="kills_per_run"):
        draw_plan(1, kills_per_run=11)
    with pytest.raises(ValueError, match="unknown kill point"):
        draw_plan(1, kill_points=("nowhere",))
    assert draw_plan(5, kill_points=("cutover.frozen",)).kills[0].point == "cutover.frozen"
    assert fault_free_plan().fault_free and "baseline" in fault_free_plan().describe()


def _import(key: str, status: str) -> dict:
    return {"key": key, "status": status}


def test_an_import_after_a_failed_one_is_a_retry_and_after_any_other_a_duplicate():
    records = [
        _import("full.bak", "Restored"),
        _import("log1.trn", "DownloadFailed"),
        _import("log1.trn", "Restored"),
        _import("log2.trn", "Restoring"),
        _import("log2.trn", "Restored"),
        _import("full.bak", "NoStart"),
    ]
    assert checks.duplicate_imports(records) == ["log2.trn", "full.bak"]


def _request(operation: str, status: int, part: int | None = None, upload: str = "u1", key: str = "k"):
    query = {"uploadId": upload, "partNumber": str(part)} if part else {}
    return SimpleNamespace(operation=operation, status=status, key=key, query=query, part_number=part)


def test_a_part_sent_again_after_it_was_committed_is_found_and_one_that_failed_is_not():
    requests = [
        _request("UploadPart", 200, 1),
        _request("UploadPart", 503, 2),
        _request("UploadPart", 0, 3),  # reset mid-body
        _request("UploadPart", 200, 2),
        _request("UploadPart", 200, 3),
        _request("UploadPart", 200, 1, upload="u2"),  # another upload of the same key
        _request("UploadPart", 200, 3),
    ]
    assert checks.resent_parts(requests) == [("k", "u1", 3)]


def test_objects_written_twice_ignore_the_rewritten_keys():
    requests = [
        _request("PutObject", 200, key="a.trn"),
        _request("PutObject", 500, key="a.trn"),
        _request("CompleteMultipartUpload", 200, key="full.bak"),
        _request("PutObject", 200, key="full.bak"),
        _request("PutObject", 200, key="reports/r.html"),
        _request("PutObject", 200, key="reports/r.html"),
    ]
    assert checks.objects_sent_twice(requests, ignore=("reports/",)) == ["full.bak"]


def test_lost_writes_compare_the_last_acknowledged_value():
    write = SimpleNamespace
    acked = [
        write(id=1, value=Decimal("1.00")),
        write(id=1, value=Decimal("2.00")),
        write(id=2, value=Decimal("5")),
    ]
    assert checks.lost_writes(acked, {1: Decimal("2.00"), 2: Decimal("5")}) == []
    assert checks.lost_writes(acked, {1: Decimal("1.00")}) == [1, 2]


def test_table_differences_name_the_table():
    source = {"orders": [(1, "a"), (2, "b")], "customers": [(1,)]}
    assert checks.table_differences(source, dict(source)) == []
    problems = checks.table_differences(source, {"orders": [(1, "a")]})
    assert problems == [
        "customers: missing on the target",
        "orders: 2 rows on the source, 1 on the target, 1 differ",
    ]


def test_secrets_in_logs_name_the_file_and_never_print_the_secret(tmp_path):
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "a.log").write_text("connecting with password Sandbox!Source1 ...")
    (tmp_path / "b.log").write_text("nothing here")
    found = checks.secrets_in_logs(tmp_path, ["Sandbox!Source1", "sandboxRdsSecret0001", ""])
    assert found == [("tasks/a.log", "Sa…")]
    assert Counter(f for f, _ in found) == {"tasks/a.log": 1}


def test_the_task_process_is_found_by_its_title_only_below_the_root(tmp_path):
    import os
    import subprocess
    import sys
    import time

    from tools.chaos.controller import ProcessTree

    title = "airflow worker -- 0192abcd-test-ti"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", title])
    try:
        # /proc/<pid>/cmdline is empty until the new program has been loaded: wait for it, as a
        # controller polling a starting task would.
        deadline = time.monotonic() + 10
        while "sleep" not in ProcessTree.cmdline(child.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ProcessTree(os.getpid()).task_process("0192abcd-test-ti") == child.pid
        assert ProcessTree(os.getpid()).task_process("another-ti") is None
        assert ProcessTree(child.pid + 10_000_000).task_process("0192abcd-test-ti") is None  # not ours
        assert ProcessTree(os.getpid()).parent(child.pid) == os.getpid()
    finally:
        child.kill()
        child.wait()


def test_the_long_runs_figures_add_up():
    from bench.chaos import summarize

    def result(seed, outcome, run_s, kills=(), **extra):
        return {
            "seed": seed,
            "outcome": outcome,
            "ok": outcome != "failed",
            "run_seconds": run_s,
            "downtime_seconds": 8.0,
            "faults": {"oss reset": 2, "kill task": len(kills)},
            "kills": list(kills),
            "missed_kills": [],
            "acknowledged_writes": 100,
            **extra,
        }

    kill = {"point": "cutover.frozen", "mode": "task", "effect": "retried"}
    results = [
        result(1, "completed", 200.0, [kill]),
        result(2, "rolled_back", 300.0, [{**kill, "effect": "late"}]),
        result(3, "failed", 100.0, rows_lost=2, duplicate_imports=1),
    ]
    summary = summarize(results, [result(0, "completed", 100.0)])
    assert (summary["scenarios"], summary["completed"], summary["rolled_back"], summary["failed"]) == (
        3,
        1,
        1,
        1,
    )
    assert summary["failed_seeds"] == [3] and summary["rows_lost"] == 2 and summary["duplicate_imports"] == 1
    assert summary["faults"] == {"kill task": 2, "oss reset": 6}
    assert summary["kill_points"] == {
        "cutover.frozen": {"task (late) -> rolled_back": 1, "task -> completed": 1}
    }
    assert (summary["kills_retried"], summary["kills_late"]) == (1, 1)
    assert summary["baseline_median_s"] == 100.0 and summary["chaos_median_s"] == 200.0
    assert summary["chaos_vs_baseline"] == 2.0 and summary["acknowledged_writes"] == 300
