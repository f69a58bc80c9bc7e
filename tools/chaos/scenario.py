"""One chaos scenario: a whole migration under real Airflow while the plan's faults happen.

The machinery is ``tools/demo.py``'s (Airflow environment, components as processes, REST client,
approval); the sandbox runs in this process (``sandbox.background``) so that the controller and the
checks read the stand-ins' own records. Folder layout (``<out>/seed-<n>``) is the demo's: ``sandbox/``,
``airflow/``, ``migrations/``, ``logs/`` (components, task logs, ``chaos.log``), plus ``result.json``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pymssql
import yaml

from sandbox.background import RunningSandbox, start_sandbox
from sandbox.stack import DEFAULT_CONFIG
from tools import demo
from tools.chaos import checks
from tools.chaos.controller import Controller
from tools.chaos.plan import FaultPlan

log = logging.getLogger(__name__)

RUN_TIMEOUT_S = 20 * 60
FULL_PADDING_BYTES = 72_000_000  # the full is above the hook's 64 MiB multipart threshold: 7 parts
# RDS restores at 10 MB/s (the demo: 100): the full's restore takes about 7 s, long enough for the task
# waiting on it to be seen deferred, and the triggerer to be restarted under it.
RDS_RESTORE_MB_PER_S = 10
APPROVAL_DELAY_S = demo.APPROVAL_DELAY_S
# Faster than Airflow's defaults, as every sandbox timing is: a lost worker is noticed after 30 s instead
# of 5 minutes, the triggers of a killed triggerer are taken over after 15 s instead of 30.
CHAOS_AIRFLOW_ENV = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
}
# A task killed or failed is tried again after 15 s, not the default minute: the faults then cost the
# scenario their recovery, not mostly waiting (the cutover keeps its own 10 s).
RETRY_DELAY_MINUTES = 0.25
# Objects rewritten on purpose: the ledger is appended to, each report run writes the HTML report.
REWRITTEN_KEYS = ("demo/salesdb/SalesDB_ledger.jsonl", "demo/salesdb/reports/")


@dataclass
class ScenarioResult:
    """What one scenario did and showed (``result.json``)."""

    seed: int
    plan: dict[str, Any]
    baseline: bool
    outcome: str = "error"  # completed | rolled_back | failed | error
    ok: bool = False
    problems: list[str] = field(default_factory=list)
    run_state: str | None = None
    run_seconds: float | None = None
    downtime_seconds: float | None = None  # source frozen -> database open on RDS (the report's figure)
    wall_seconds: float = 0.0
    tasks: dict[str, str] = field(default_factory=dict)  # task id -> "state (tries)"
    faults: dict[str, int] = field(default_factory=dict)  # injected, by kind
    kills: list[dict[str, Any]] = field(default_factory=list)
    missed_kills: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    duplicate_imports: int = 0
    resent_parts: int = 0
    objects_sent_twice: int = 0
    rows_lost: int = 0
    acknowledged_writes: int = 0
    table_differences: list[str] = field(default_factory=list)
    secrets_found: list[list[str]] = field(default_factory=list)
    folder: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)


def sandbox_config(plan: FaultPlan) -> dict[str, Any]:
    """The demo sandbox (unfriendly defaults) with free ports, a full above the multipart threshold and
    the plan's OSS and RDS fault rates."""
    config = yaml.safe_load(Path(DEFAULT_CONFIG).read_text())
    for section in ("source", "target", "oss", "rds"):
        config[section].pop("port", None)
    salesdb = config["source"]["instance"]["databases"]["SalesDB"]
    salesdb["backup_padding_bytes"] = {"full": FULL_PADDING_BYTES}
    config["rds"]["timing"]["restore_mb_per_s"] = RDS_RESTORE_MB_PER_S
    if plan.oss_faults:
        config["oss"]["faults"] = dict(plan.oss_faults)
    if plan.rds_faults:
        config["rds"]["faults"] = dict(plan.rds_faults)
    return config


def secrets_of(config: dict[str, Any], setup: demo.AirflowSetup) -> list[str]:
    """Every password and access-key secret of the sandbox, and the Airflow deployment's own secrets."""
    found = [
        setup.password,
        setup.env["AIRFLOW__API_AUTH__JWT_SECRET"],
        setup.env["AIRFLOW__API__SECRET_KEY"],
    ]
    for section in ("source", "target"):
        found.append(config[section].get("password"))
        found += [login.get("password") for login in config[section]["instance"]["logins"].values()]
    found.append((config.get("workload") or {}).get("password"))
    for section in ("oss", "rds"):
        found += list((config[section].get("accounts") or {}).values())
    return [str(s) for s in found if s]


class Scenario:
    """Runs one scenario in ``folder`` (wiped first) and returns its :class:`ScenarioResult`."""

    def __init__(
        self, plan: FaultPlan, folder: Path, baseline: bool = False, airflow_db: Path | None = None
    ) -> None:
        self.plan = plan
        self.airflow_db = airflow_db  # a migrated metadata DB to start from (saves `airflow db migrate`)
        self.folder = folder.resolve()
        self.result = ScenarioResult(
            seed=plan.seed, plan=plan.to_dict(), baseline=baseline, folder=str(folder)
        )
        self.config = sandbox_config(plan)
        self.running: RunningSandbox | None = None
        self.processes: demo.Processes | None = None
        self.setup: demo.AirflowSetup | None = None
        self.lock = threading.Lock()  # a component restart and the liveness check do not interleave

    # ---- the run ------------------------------------------------------------------------------

    def run(self) -> ScenarioResult:
        started = time.monotonic()
        demo.prepare_demo_dir(self.folder)
        handler = self._log_to_file()
        try:
            self._run()
        except Exception as error:  # the result says what happened; the folder is kept for post-mortem
            log.exception("scenario %s: %s", self.plan.seed, error)
            self.result.outcome = "error"
            self.result.problems.append(f"{type(error).__name__}: {error}")
        finally:
            self._stop()
            self.result.wall_seconds = round(time.monotonic() - started, 1)
            logging.getLogger().removeHandler(handler)
            handler.close()
            if self.setup is not None:  # also after an error: whatever was logged must hold no secret
                self._check_secrets()
            self.result.ok = self.result.outcome in ("completed", "rolled_back") and not self.result.problems
            (self.folder / "result.json").write_text(self.result.to_json())
        return self.result

    def _log_to_file(self) -> logging.Handler:
        handler = logging.FileHandler(self.folder / "logs" / "chaos.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        for noisy in ("httpx", "sandbox.mssql.server"):  # a line per REST poll, per TDS login
            logging.getLogger(noisy).setLevel(logging.WARNING)
        return handler

    def _run(self) -> None:
        log.info("scenario %s, plan:\n%s", self.plan.seed, self.plan.describe())
        self.running = start_sandbox(copy.deepcopy(self.config), self.folder / "sandbox")
        config_path = demo.write_migration_config(self.folder, None)
        migration = yaml.safe_load(config_path.read_text())
        migration["defaults"]["retry_delay_minutes"] = RETRY_DELAY_MINUTES
        config_path.write_text(yaml.safe_dump(migration, sort_keys=False))
        setup = demo.airflow_env(self.folder, self.running.connections(), demo.free_port())
        setup.env.update(CHAOS_AIRFLOW_ENV)
        self.setup = setup
        self._init_airflow(setup)
        self.processes = demo.Processes(self.folder / "logs")
        demo.start_airflow(self.processes, setup)
        api = demo.AirflowApi(setup.api_url, demo.UI_USER, setup.password)
        watcher = demo.AirflowApi(setup.api_url, demo.UI_USER, setup.password)  # the controller's own client
        try:
            demo.wait_for_api(api, self.processes)
            watcher.login()
            demo.wait_for_dag(api, self.processes)
            run_id = demo.trigger_run(api)
            controller = Controller(
                self.plan,
                lambda: demo.task_instances(watcher, run_id),
                self.running,
                self.folder / "sandbox" / "source-backups" / demo.DATABASE,
                self._restart_triggerer,
                dict(self.processes.started)["scheduler"].pid,
                Path(setup.env["AIRFLOW_HOME"]) / "airflow.db",
            )
            controller.start()
            try:
                state = self._follow(api, run_id)
            finally:
                controller.stop()
            self._collect(api, run_id, state, controller, config_path)
        finally:
            api.close()
            watcher.close()

    def _init_airflow(self, setup: demo.AirflowSetup) -> None:
        if self.airflow_db is None:
            demo.init_airflow(setup, self.folder / "logs")
            return
        shutil.copyfile(self.airflow_db, Path(setup.env["AIRFLOW_HOME"]) / "airflow.db")
        command = demo.airflow_command(
            "pools", "set", demo.POOL, "1", f"log chain of {demo.DATABASE}", "--include-deferred"
        )
        demo.run_checked(command, setup.env, self.folder / "logs" / "airflow-cli.log", "airflow pools set")

    def _restart_triggerer(self, signum: int) -> None:
        with self.lock:
            self.processes.restart("triggerer", signum)

    def _follow(self, api: demo.AirflowApi, run_id: str) -> str:
        """Poll the run until it ends; approve each attempt of the approval once, as a person would."""
        deadline = time.monotonic() + RUN_TIMEOUT_S
        answered: set[int] = set()
        asked_at: dict[int, float] = {}
        while time.monotonic() < deadline:
            with self.lock:
                self.processes.check_alive()
            tis = demo.task_instances(api, run_id)
            approval = tis.get("approve_cutover", {})
            attempt = approval.get("try_number")
            if approval.get("state") == "awaiting_input" and attempt not in answered:
                waited = time.monotonic() - asked_at.setdefault(attempt, time.monotonic())
                if waited >= APPROVAL_DELAY_S and demo.approve_if_asked(api, run_id, approval["state"]):
                    answered.add(attempt)
            run = api.get(f"/dags/{demo.DAG_ID}/dagRuns/{run_id}")
            if run["state"] in demo.FINAL_RUN_STATES:
                start, end = demo._time(run.get("start_date")), demo._time(run.get("end_date"))
                if start and end:
                    self.result.run_seconds = round((end - start).total_seconds(), 1)
                return str(run["state"])
            time.sleep(1)
        raise TimeoutError(f"the run did not end within {RUN_TIMEOUT_S // 60} minutes")

    # ---- after the run ------------------------------------------------------------------------

    def _collect(self, api: demo.AirflowApi, run_id: str, state: str, controller: Controller, config_path):
        result = self.result
        sandbox = self.running.sandbox
        result.run_state = state
        tis = demo.task_instances(api, run_id)
        result.tasks = {t: f"{ti['state']} ({ti['try_number']})" for t, ti in sorted(tis.items())}
        result.events = [asdict(e) for e in controller.events]
        result.kills = [
            {**e.detail, "effect": _kill_effect(e.detail, tis)} for e in controller.events if e.what == "kill"
        ]
        result.missed_kills = controller.missed_kills() + [
            e.detail["point"] for e in controller.events if e.what == "kill_missed"
        ]
        result.problems += [f"controller: {e}" for e in controller.errors]
        # Faults stop here: the checks read through the same stand-ins.
        requests = list(sandbox.oss_faults.requests)
        sandbox.oss_faults.reset()
        sandbox.rds.faults.update(throttle_rate=0, error_5xx_rate=0, ambiguous_create_rate=0)
        sandbox.stop_workload()
        result.faults = self._fault_counts(requests, controller)
        records = sandbox.rds.import_records()
        result.duplicate_imports = len(checks.duplicate_imports(records))
        result.resent_parts = len(checks.resent_parts(requests))
        result.objects_sent_twice = len(checks.objects_sent_twice(requests, REWRITTEN_KEYS))
        result.outcome = self._outcome(api, run_id, tis, state)
        self._check_rows()
        for name, value in (
            ("duplicate imports", result.duplicate_imports),
            ("UploadParts re-sent for committed parts", result.resent_parts),
            ("objects uploaded again in full", result.objects_sent_twice),
            ("acknowledged writes lost", result.rows_lost),
        ):
            if value:
                result.problems.append(f"{value} {name}")
        result.problems += [f"target differs: {d}" for d in result.table_differences]
        if result.outcome == "failed":
            result.problems.append(f"the migration neither completed nor rolled back: {result.tasks}")

    def _fault_counts(self, requests: list[Any], controller: Controller) -> dict[str, int]:
        sandbox = self.running.sandbox
        counts: Counter[str] = Counter()
        for request in requests:
            if request.fault and request.fault != "client_disconnect":
                counts[f"oss {request.fault}"] += 1
        for kind, count in sandbox.rds.faults.injected.items():
            counts[f"rds {kind}"] += count
        for fault in sandbox.source.faults.injected:
            counts[f"sql {fault['kind']} ({fault['statement']})"] += 1
        for event in controller.events:
            if event.what == "kill":
                counts[f"kill {event.detail['mode']}"] += 1
            elif event.what == "triggerer_restart":
                counts[f"triggerer restart ({event.detail['signal']})"] += 1
        return dict(sorted(counts.items()))

    def _outcome(self, api: demo.AirflowApi, run_id: str, tis: dict[str, Any], state: str) -> str:
        states = {t: ti["state"] for t, ti in tis.items()}
        report = api.xcom(run_id, "report") or {}
        self.result.downtime_seconds = report.get("downtime_s")
        if (
            state == "success"
            and states.get("validate") == "success"
            and states.get("release_target") == "success"
        ):
            if "migrated and validated" not in str(report.get("outcome", "")):
                self.result.problems.append(f"report outcome: {report.get('outcome')!r}")
            return "completed"
        if states.get("rollback") == "success":
            return "rolled_back"
        return "failed"

    def _connect(self, side: str):
        section = self.config[side]
        return pymssql.connect(
            server="127.0.0.1",
            port=self.running.sandbox.ports[side],
            user=section.get("login", "sa"),
            password=section["password"],
            database=demo.DATABASE,
            tds_version="7.4",
            login_timeout=10,
        )

    def _rows(self, side: str) -> dict[str, list[tuple]]:
        with self._connect(side) as conn:
            cursor = conn.cursor()
            cursor.execute("SELECT name FROM sys.tables ORDER BY name")
            tables = [row[0] for row in cursor.fetchall()]
            rows = {}
            for table in tables:
                cursor.execute(f"SELECT * FROM [dbo].[{table.replace(']', ']]')}] ORDER BY 1")
                rows[table] = [tuple(row) for row in cursor.fetchall()]
            return rows

    def _check_rows(self) -> None:
        """Completed: the target holds the source's rows and every acknowledged write. Rolled back: the
        source holds every acknowledged write."""
        from sandbox.mssql.workload import read_journal

        journal = self.folder / "sandbox" / self.config["workload"]["journal"]
        writes = read_journal(journal) if journal.exists() else []
        self.result.acknowledged_writes = len(writes)
        if self.result.outcome == "completed":
            source, target = self._rows("source"), self._rows("target")
            self.result.table_differences = checks.table_differences(source, target)
            holder = target
        elif self.result.outcome == "rolled_back":
            holder = self._rows("source")
        else:
            return
        orders = {int(row[0]): row[2] for row in holder.get("orders", [])}
        self.result.rows_lost = len(checks.lost_writes(writes, orders))

    def _check_secrets(self) -> None:
        found = checks.secrets_in_logs(self.folder / "logs", secrets_of(self.config, self.setup))
        self.result.secrets_found = [list(f) for f in found]
        if found:
            self.result.problems.append(f"secrets in {len(found)} log file(s): {found[:3]}")

    def _stop(self) -> None:
        if self.processes is not None:
            with contextlib.suppress(Exception):
                self.processes.stop_all()
        if self.running is not None:
            with contextlib.suppress(Exception):
                self.running.stop()


def _kill_effect(kill: dict[str, Any], tis: dict[str, dict[str, Any]]) -> str:
    """``retried``: the killed try failed and the task ran again; ``late``: the try had done its work
    (the supervisor had its result) when the kill came."""
    ti = tis.get(kill["task_id"], {})
    return "retried" if (ti.get("try_number") or 0) > (kill.get("try_number") or 0) else "late"


def run_scenario(
    plan: FaultPlan,
    folder: Path,
    *,
    baseline: bool = False,
    keep: str = "failed",
    airflow_db: Path | None = None,
) -> ScenarioResult:
    """Run one scenario; ``keep``: ``always``, ``failed`` (default) or ``never`` keeps its folder (the
    ``result.json`` and ``logs/chaos.log`` of a passed scenario are kept either way).

    :param airflow_db: a metadata DB already migrated (``airflow db migrate``) to copy instead.
    """
    result = Scenario(plan, folder, baseline, airflow_db).run()
    if keep == "never" or (keep == "failed" and result.ok):
        _prune(folder)
    return result


def _prune(folder: Path) -> None:
    """Remove a scenario's folder but its result and its controller log."""
    for child in folder.iterdir():
        if child.name in ("result.json", "logs"):
            continue
        shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
    for child in (folder / "logs").iterdir():
        if child.name != "chaos.log":
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """``python -m tools.chaos --seed N``: one scenario (``--baseline``: without faults)."""
    import argparse

    from tools.chaos.plan import KILL_POINT_NAMES, draw_plan, fault_free_plan

    parser = argparse.ArgumentParser(prog="python -m tools.chaos", description=main.__doc__)
    parser.add_argument("--seed", type=int, required=True, help="the scenario's seed (reproduces its plan)")
    parser.add_argument("--out", type=Path, default=demo.REPO / "chaos-output", help="parent of seed-<n>/")
    parser.add_argument("--baseline", action="store_true", help="the same scenario with no fault")
    parser.add_argument("--kills", type=int, default=1, help="SIGKILLs per scenario (default 1)")
    parser.add_argument(
        "--kill-point", action="append", choices=KILL_POINT_NAMES, help="draw only from these"
    )
    parser.add_argument("--keep", choices=("always", "failed", "never"), default="failed")
    parser.add_argument(
        "--airflow-db", type=Path, default=None, help="a migrated Airflow metadata DB (SQLite) to start from"
    )
    args = parser.parse_args(argv)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(name, None)  # darabonba ignores NO_PROXY: the stand-ins are on 127.0.0.1
    if args.baseline:
        plan = fault_free_plan(args.seed)
    else:
        plan = draw_plan(args.seed, args.kills, tuple(args.kill_point or KILL_POINT_NAMES))
    folder = args.out.resolve() / (f"baseline-{args.seed}" if args.baseline else f"seed-{args.seed}")
    signal.signal(signal.SIGTERM, _interrupt)  # stopped by the long run or a CI timeout: clean up first
    print(f"chaos scenario seed {args.seed}: {folder}\n{plan.describe()}", flush=True)
    result = run_scenario(plan, folder, baseline=args.baseline, keep=args.keep, airflow_db=args.airflow_db)
    verdict = "OK" if result.ok else "FAILED"
    print(
        f"seed {args.seed}: {verdict} — {result.outcome}, run {result.run_seconds} s, faults {result.faults}",
        flush=True,
    )
    for problem in result.problems:
        print(f"  problem: {problem}", flush=True)
    if not result.ok:
        print(f"  folder kept: {folder}\n  reproduce: python -m tools.chaos --seed {args.seed}", flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
