"""``make demo-celery``: the same rehearsal as ``make demo``, on a distributed Airflow.

``python -m tools.demo --executor celery`` runs the migration on the CeleryExecutor:

- **PostgreSQL** (metadata database and Celery result backend) and **Redis** (broker): Debian's
  binaries, started as unprivileged processes on free loopback ports in ``<demo dir>/services``
  (``tools/services.py``; ``make services`` installs the packages when missing).
- Scheduler, dag-processor, triggerer and api-server, and **two Celery workers**, each on its own
  "host" (``tools/hosts.py``: own host name, own view of the disk):

  ========================  =====================  =====================================
  host                      consumes               sees the backup share
  ========================  =====================  =====================================
  ``backup-host``           the entry's ``queue``  yes (``backup_folder.worker_path``)
  ``worker-1``              ``default``            no: an empty tmpfs covers the share
  ``airflow-<component>``   -                      no
  ========================  =====================  =====================================

  The migration entry routes its backup-reading tasks with ``queue: salesdb-backups``. A task that
  reads backup files on ``worker-1`` finds nothing and fails, so the run only succeeds when routing works.
- After the summary, a routing section lists every task with the queue it was sent to and the host
  that ran it, and checks that each task the DAG routes to the backup queue ran on ``backup-host`` and
  every other task on ``worker-1``. It is also written to ``<demo dir>/routing.json``.

Everything it started is stopped at the end, on failure and on Ctrl-C (process groups for Airflow and
Redis, ``pg_ctl stop`` for PostgreSQL).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from tools import demo
from tools.hosts import Host
from tools.services import Postgres, Redis, RunAs, stop_leftover_postgres

QUEUE = f"{demo.ENTRY}-backups"
DEFAULT_QUEUE = "default"
BACKUP_HOST = "backup-host"
DEFAULT_WORKER_HOST = "worker-1"
WORKER_CONCURRENCY = 2
ROUTING_FILE = "routing.json"


def share_root(demo_dir: Path) -> Path:
    """The backup share: where the sandbox's SQL Server writes ``D:\\Backups`` (worker_path is inside)."""
    return demo_dir / "sandbox" / "source-backups"


def worker_path(demo_dir: Path) -> Path:
    return share_root(demo_dir) / demo.DATABASE


def stop_leftovers(demo_dir: Path) -> None:
    """Before the folder is wiped: stop a PostgreSQL that a killed demo left running there.

    Not when a demo still runs in that folder (``prepare_demo_dir`` then refuses to start)."""
    if (demo_dir / demo.MARKER).exists() and not demo.sandbox_running(demo_dir):
        stop_leftover_postgres(demo_dir / "services" / "postgres", demo_dir / "logs")


# --------------------------------------------------------------------------------------------------
# Services and environment
# --------------------------------------------------------------------------------------------------


def start_services(demo_dir: Path, processes: demo.Processes, cleanup: list) -> tuple[Postgres, Redis]:
    run_as = RunAs.for_current_user()
    folder = demo_dir / "services"
    folder.mkdir(parents=True, exist_ok=True)
    postgres = Postgres(folder / "postgres", demo.free_port(), run_as, processes.log_dir)
    cleanup.append(postgres.stop)  # after the Airflow processes (cleanup runs in order)
    postgres.init()
    postgres.start()
    redis = Redis(folder / "redis", demo.free_port(), run_as)
    redis.write_config()
    process = processes.start(
        "redis", redis.command(), {"PATH": os.environ.get("PATH", "")}, **run_as.popen_kwargs()
    )
    redis.wait_ready(lambda: process.poll() is None)
    return postgres, redis


def celery_env(setup: demo.AirflowSetup, postgres: Postgres, redis: Redis) -> dict[str, str]:
    """The embedded demo's environment, moved onto PostgreSQL, Redis and the CeleryExecutor."""
    env = dict(setup.env)
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres.sqlalchemy_url(),
            "AIRFLOW__CELERY__BROKER_URL": redis.broker_url(),
            # Celery's database result backend: "db+" and an SQLAlchemy URL.
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + postgres.sqlalchemy_url(),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": DEFAULT_QUEUE,
            # The task instance's `hostname` is the host's own name (its UTS namespace), not a DNS
            # lookup that an unresolvable demo host name would stall.
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "socket.gethostname",
        }
    )
    return env


def start_workers(processes: demo.Processes, setup: demo.AirflowSetup, hosts: dict[str, Host]) -> None:
    """Two Celery workers: the backup host consumes only the entry's queue, worker-1 only ``default``."""
    for name, queue in ((BACKUP_HOST, QUEUE), (DEFAULT_WORKER_HOST, DEFAULT_QUEUE)):
        # Each worker serves its task logs on its own port (two on one machine would collide on 8793).
        env = {**setup.env, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(demo.free_port())}
        command = demo.airflow_command("celery", "worker", "--queues", queue)
        command += ["--concurrency", str(WORKER_CONCURRENCY)]
        processes.start(f"celery-worker-{name}", hosts[name].command(command), env)


def check_views(hosts: dict[str, Host], folder: Path) -> dict[str, bool]:
    """Prove the hosts' views before anything runs: only the backup host sees the backup folder."""
    views = {name: host.sees(folder) for name, host in hosts.items()}
    for name, sees in views.items():
        demo.say(f"  {name:<26} {'sees' if sees else 'does NOT see'} {folder}")
    if not views[BACKUP_HOST] or any(sees for name, sees in views.items() if name != BACKUP_HOST):
        raise RuntimeError(f"host views are wrong: only {BACKUP_HOST} may see {folder}: {views}")
    return views


# --------------------------------------------------------------------------------------------------
# Routing: which host ran each task
# --------------------------------------------------------------------------------------------------


def routing_rows(api: demo.AirflowApi, run_id: str) -> list[dict[str, Any]]:
    """For each task: the queue the DAG gives it, the queue and host of its task instance, its state."""
    declared = {t["task_id"]: t.get("queue") for t in api.get(f"/dags/{demo.DAG_ID}/tasks")["tasks"]}
    tis = demo.task_instances(api, run_id)
    rows = []
    for task_id, queue in declared.items():
        ti = tis.get(task_id, {})
        rows.append(
            {
                "task_id": task_id,
                "dag_queue": queue,
                "queue": ti.get("queue"),
                "hostname": ti.get("hostname") or None,
                "state": ti.get("state"),
                "try_number": ti.get("try_number"),
                "reads_backup_folder": queue == QUEUE,
            }
        )
    return sorted(rows, key=lambda r: (tis.get(r["task_id"], {}).get("start_date") or "~", r["task_id"]))


def routing_problems(rows: list[dict[str, Any]]) -> list[str]:
    """Every routed task that ran did so on the backup host; every other on the default worker."""
    problems = []
    routed_ran = [r for r in rows if r["reads_backup_folder"] and r["hostname"]]
    if not routed_ran:
        problems.append(f"no task routed to queue {QUEUE!r} ran: the DAG did not route anything")
    for row in rows:
        if not row["hostname"]:
            continue  # never ran (skipped, or not reached)
        expected = BACKUP_HOST if row["reads_backup_folder"] else DEFAULT_WORKER_HOST
        if row["hostname"] != expected:
            problems.append(f"{row['task_id']} ran on {row['hostname']!r}, expected {expected!r}")
    return problems


def print_routing(api: demo.AirflowApi, run_id: str, demo_dir: Path, views: dict[str, bool]) -> bool:
    rows = routing_rows(api, run_id)
    problems = routing_problems(rows)
    demo.say("")
    demo.say(f"Workers (queue -> host that ran the task; {BACKUP_HOST} alone sees the backup folder):")
    demo.say(f"  {'task':<24} {'queue':<18} {'host':<14} {'state':<14} reads backup folder")
    for row in rows:
        demo.say(
            f"  {row['task_id']:<24} {row['queue'] or '-':<18} {row['hostname'] or '-':<14} "
            f"{row['state'] or '-':<14} {'yes' if row['reads_backup_folder'] else 'no'}"
        )
    ran = [r for r in rows if r["reads_backup_folder"] and r["hostname"]]
    if problems:
        demo.say("  ROUTING WRONG:")
        for problem in problems:
            demo.say(f"    {problem}")
    else:
        demo.say(
            f"  ROUTING OK: all {len(ran)} task(s) that read the backup folder ran on {BACKUP_HOST}, "
            f"every other task on {DEFAULT_WORKER_HOST}"
        )
    record = {"queue": QUEUE, "backup_host": BACKUP_HOST, "views": views, "tasks": rows, "problems": problems}
    (demo_dir / ROUTING_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return not problems


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------


def run_demo(args: argparse.Namespace, processes: demo.Processes, cleanup: list) -> int:
    demo_dir = args.demo_dir.resolve()
    base_env = dict(os.environ)
    demo.say(f"Demo folder: {demo_dir} (distributed: CeleryExecutor, PostgreSQL, Redis)")
    demo.say("Starting PostgreSQL (metadata DB, result backend) and Redis (broker) from Debian's packages...")
    postgres, redis = start_services(demo_dir, processes, cleanup)
    demo.say(
        f"  PostgreSQL on 127.0.0.1:{postgres.port}, Redis on 127.0.0.1:{redis.port} (passwords: generated)"
    )
    demo.say("Starting the sandbox (source SQL Server with a live write workload, target, OSS, RDS API)...")
    cleanup.append(lambda: demo.stop_sandbox(demo_dir, base_env))
    connections = demo.start_sandbox(demo_dir, base_env)["connections"]
    schedule = (
        None if args.log_shipping_schedule.lower() in ("none", "null", "") else args.log_shipping_schedule
    )
    config_path = demo.write_migration_config(demo_dir, schedule, queue=QUEUE)
    demo.say(f"Migration config: {config_path} (queue: {QUEUE})")

    share = share_root(demo_dir)
    hosts = {BACKUP_HOST: Host(BACKUP_HOST)}
    hosts.update({name: Host(name, share) for name in (DEFAULT_WORKER_HOST, *host_names())})
    demo.say("Hosts and their view of the backup folder:")
    views = check_views(hosts, worker_path(demo_dir))

    setup = demo.airflow_env(demo_dir, connections, demo.free_port())
    setup = demo.AirflowSetup(
        env=celery_env(setup, postgres, redis), api_url=setup.api_url, password=setup.password
    )
    demo.say("Initialising Airflow (PostgreSQL metadata DB, pool)...")
    demo.init_airflow(setup, demo_dir / "logs")
    demo.say(
        f"Starting airflow {', '.join(demo.COMPONENTS)} and Celery workers {BACKUP_HOST} ({QUEUE}), "
        f"{DEFAULT_WORKER_HOST} ({DEFAULT_QUEUE})..."
    )
    demo.start_airflow(
        processes, setup, wrap=lambda component, command: hosts[host_name(component)].command(command)
    )
    start_workers(processes, setup, hosts)
    return demo.run_migration(
        args,
        processes,
        cleanup,
        setup,
        config_path,
        after_summary=lambda api, run_id: print_routing(api, run_id, demo_dir, views),
    )


def host_name(component: str) -> str:
    return f"airflow-{component}"


def host_names() -> list[str]:
    return [host_name(component) for component in demo.COMPONENTS]


if __name__ == "__main__":
    sys.exit(demo.main(["--executor", "celery", *sys.argv[1:]]))
