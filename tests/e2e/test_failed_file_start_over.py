"""A log RDS failed on, on an instance whose migration task takes no more files after a failure
(``rds.reimport_failed_files: false``, one of the two ways the undocumented behaviour may go; the
other, a file imported again, is tests/chaos/test_fault_recovery.py).

The run stops at ship_logs saying the task takes no more files and how to go on; the advice,
``{"start_over": true}``, then migrates from a new full backup with nothing lost. The stand-in's own
records are the evidence.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import DATABASE, make_spec, sandbox_config
from tests.e2e.dag_helpers import states, xcom
from tests.e2e.test_long_migrations import assert_migrated, run, stand_in_files, steps_for

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("keep_defer_kwargs")]


def test_a_task_that_refuses_a_failed_file_again_stops_with_advice_then_start_over(
    airflow_db, sandbox_factory, capfd
):
    config = sandbox_config()
    config["rds"]["reimport_failed_files"] = False
    running = sandbox_factory(config)
    spec = make_spec(running.state_dir, "refused_reimport", retries=0)
    running.sandbox.rds.faults.next_file_failure("download_failed")  # the first log import (not the full)

    first, _ = run(airflow_db, spec, None)

    result = states(first)
    assert str(first.state) == "failed" and result["ship_logs"] == "failed", result
    (old_task,) = {t for t, _, _ in stand_in_files(running)}
    failed = [k for t, k, s in stand_in_files(running) if s == "DownloadFailed"]
    assert len(failed) == 1 and failed[0].endswith(".trn"), stand_in_files(running)
    output = capfd.readouterr().out
    assert "takes no more files after a failed one" in output, output[-3000:]
    assert '{"start_over": true}' in output, output[-3000:]

    second, answered = run(airflow_db, spec, "Approve", conf={"start_over": True})

    result = assert_migrated(second, answered, running)
    assert result["full_backup"] == "success", result
    new_task = xcom(second, "cutover")["migrate_task_id"]
    assert new_task != old_task
    files = [(t, k.split("/")[-1], s) for t, k, s in stand_in_files(running) if t == new_task]
    assert files[0][1].split("_")[1] == "FULL" and all(s != "DownloadFailed" for _, _, s in files), files
    assert "migration_abandoned" in [e.event for e in steps_for(spec).read_ledger()]
    assert running.sandbox.rds.faults.injected.get("download_failed") == 1
    assert DATABASE in {t.db_name for t in running.sandbox.rds.tasks.values()}
