"""Benchmark how long the DAG file takes to parse for a fleet of configured databases.

Run: ``.venv/bin/python -m bench.parse [--databases 200] [--files 10] [--runs 7]``

It writes ``--databases`` entries over ``--files`` YAML files in a temp folder (realistic variety:
defaults per team file, overrides, log-shipping schedules on most entries, hostile database names),
then measures, each run in a **fresh interpreter** (a new ``python`` process, as the dag-processor's
parsing child and a worker's task runner start cold for this file):

1. **full parse + serialize** (what the dag-processor does per parse): ``DagBag`` of
   ``dags/mssql_to_rds.py``, then ``DagSerialization.to_dict`` of every DAG; the last good copies are
   already recorded (the steady state), so nothing is written.
2. **single-DAG parse** (what a worker does before each task): the same with
   ``_AIRFLOW_PARSING_CONTEXT_DAG_ID`` set to one migration DAG; no serialization.
3. **full parse, one file broken**: one file made malformed YAML, so its entries are rebuilt from their
   last good copies (plus its error DAG).

Airflow itself is imported before the clock starts (the dag-processor and the task runner have it loaded
when they parse); the project's plugins, the config and everything they import are inside the timing.
Each child also reports whether a driver/SDK module was imported (it must not be).

Bytecode: production interpreters cache ``.pyc`` files; this machine sets ``PYTHONDONTWRITEBYTECODE``, so
the children use ``PYTHONPYCACHEPREFIX`` in the temp folder, one warm-up run fills it, and the measured
runs are warm. The first run (compiling the plugins, recording every last good copy) is reported too. Medians over ``--runs``, wall clock and
the child's CPU time (on a shared machine the wall clock also counts time other processes held the CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAG_FILE = ROOT / "dags" / "mssql_to_rds.py"
HEAVY = ("pymssql", "oss2", "Tea", "darabonba", "requests", "aliyunsdkcore", "crcmod")
HEAVY_PREFIXES = ("alibabacloud",)

# ---- the child: one measurement in a fresh interpreter ---------------------------------------------

CHILD = r"""
import json, sys, time
t_start = time.perf_counter()
# What the dag-processor / task runner already has loaded when it parses a file.
import airflow.sdk
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
import airflow.providers.standard.operators.empty
t_airflow = time.perf_counter()
before = set(sys.modules)
t0, c0 = time.perf_counter(), time.process_time()
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
t1 = time.perf_counter()
serialized = [DagSerialization.to_dict(dag) for dag in bag.dags.values()] if sys.argv[2] == "1" else []
t2, c2 = time.perf_counter(), time.process_time()
loaded = sorted({m.split(".")[0] for m in set(sys.modules) - before})
print(json.dumps({
    "airflow_import": t_airflow - t_start,
    "parse": t1 - t0,
    "serialize": t2 - t1,
    "cpu": c2 - c0,
    "dags": len(bag.dags),
    "tasks": sum(len(d.tasks) for d in bag.dags.values()),
    "error_dags": sum(1 for d in bag.dags.values() if "config-error" in d.tags),
    "last_good_dags": sum(1 for d in bag.dags.values() if (d.description or "").startswith("LAST GOOD")),
    "import_errors": list(bag.import_errors),
    "loaded": loaded,
    "bytes": sum(len(json.dumps(s)) for s in serialized),
}))
"""


def run_child(env: dict[str, str], serialize: bool, dag_id: str | None = None) -> dict:
    child_env = dict(env)
    if dag_id:
        child_env["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = dag_id
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(DAG_FILE), "1" if serialize else "0"],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"parse child failed:\n{result.stderr[-3000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if report["import_errors"]:
        raise RuntimeError(f"the DAG file did not import: {report['import_errors']}")
    leaked = [m for m in report["loaded"] if m in HEAVY or m.startswith(HEAVY_PREFIXES)]
    if leaked:
        raise RuntimeError(f"imported at parse time: {leaked}")
    return report


# ---- the config ------------------------------------------------------------------------------------


def write_config(folder: Path, databases: int, files: int) -> list[str]:
    """``databases`` entries over ``files`` team files; returns the entry names."""
    folder.mkdir(parents=True)
    names: list[str] = []
    per_file = -(-databases // files)
    for f in range(files):
        team = f"team{f:02d}"
        lines = [
            "defaults:",
            f"  target: {{rds_conn_id: rds_{team}, instance_id: rm-bp1{team}x{f:04d}, region: cn-hangzhou, mssql_conn_id: rds_tds_{team}}}",
            f"  oss: {{oss_conn_id: oss_{team}, bucket: acme-{team}-migration}}",
            "  log_shipping: {schedule: '*/15 * * * *', interval_minutes: 10}",
            f"  owner: dba-{team}",
            "  retries: 3",
            f"  tags: [mssql-migration, {team}]",
            f"  queue: backup_host_{team}",
            "databases:",
        ]
        for i in range(per_file):
            k = f * per_file + i
            if k >= databases:
                break
            name = f"{team}-db{k:03d}"
            names.append(name)
            lines += [
                f"  {name}:",
                f'    source: {{mssql_conn_id: mssql_{team}, database: "Sales ]{k}\' (prod)"}}',
                f"    backup_folder: {{server_path: 'D:\\Backups\\{name}', worker_path: /mnt/{team}/{name}}}",
            ]
            if k % 5 == 0:
                lines.append(f"    target: {{database: Sales{k}}}")
            if k % 7 == 0:
                lines.append("    log_shipping: {schedule: null}")
            elif k % 3 == 0:
                lines.append("    log_shipping: {schedule: '@hourly'}")
            if k % 4 == 0:
                lines += ["    check_db_mode: SyncExecuteDBCheck", "    cutover_threshold_mb: 200"]
        (folder / f"{team}.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return names


# ---- the parent ----------------------------------------------------------------------------------


def _stats(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):6.3f} s  (min {min(values):.3f}, max {max(values):.3f}, "
        f"n={len(values)})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.parse", description=__doc__.splitlines()[0])
    parser.add_argument("--databases", type=int, default=200)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-parse-"))
    try:
        config = work / "migrations"
        names = write_config(config, args.databases, args.files)
        env = {
            k: v
            for k, v in os.environ.items()
            if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("AIRFLOW")
        }
        env.update(
            {
                "AIRFLOW_HOME": str(work / "airflow-home"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "MSSQL_RDS_MIGRATIONS_DIR": str(config),
                "MSSQL_RDS_LAST_GOOD_DIR": str(work / "last-good"),
                "PYTHONPYCACHEPREFIX": str(work / "pycache"),
                "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)]),
            }
        )
        one = f"mssql_to_rds__{names[len(names) // 2]}"
        load_before = os.getloadavg()[0]
        started = time.monotonic()
        cold = run_child(env, serialize=True)  # compiles every module; records every entry's last good copy
        full = [run_child(env, serialize=True) for _ in range(args.runs)]
        single = [run_child(env, serialize=False, dag_id=one) for _ in range(args.runs)]
        broken_file = sorted(config.glob("*.yaml"))[0]
        broken_file.write_text("databases: [unclosed\n", encoding="utf-8")
        broken = [run_child(env, serialize=True) for _ in range(args.runs)]

        ref = full[0]
        print(
            f"DAG file parse: {args.databases} databases in {args.files} files -> {ref['dags']} DAGs, "
            f"{ref['tasks']} tasks, {ref['bytes'] / 1e6:.1f} MB serialized; Python "
            f"{platform.python_version()}, {os.cpu_count()} CPUs; fresh interpreter per run, Airflow "
            f"preloaded (its import: median {statistics.median(r['airflow_import'] for r in full):.2f} s, "
            "not counted)"
        )
        print()
        print(f"full parse + serialize       {_stats([r['parse'] + r['serialize'] for r in full])}")
        print(f"  of which parse             {_stats([r['parse'] for r in full])}")
        print(f"  of which serialize         {_stats([r['serialize'] for r in full])}")
        print(f"  CPU time of the process    {_stats([r['cpu'] for r in full])}")
        print(f"single-DAG parse ({one})")
        print(f"                             {_stats([r['parse'] for r in single])}")
        print(f"  CPU time of the process    {_stats([r['cpu'] for r in single])}")
        print(
            f"full parse + serialize, {broken_file.name} malformed: "
            f"{broken[0]['last_good_dags']} DAGs from last good copies, {broken[0]['error_dags']} error DAG(s)"
        )
        print(f"                             {_stats([r['parse'] + r['serialize'] for r in broken])}")
        print(
            f"first run (the plugins' bytecode not cached yet; writes {len(names)} last good copies): parse "
            f"{cold['parse']:.3f} s + serialize {cold['serialize']:.3f} s"
        )
        print(
            f"no driver/SDK imported at parse time ({', '.join(HEAVY)}, alibabacloud_*): checked in every run"
        )
        print(
            f"\nwall clock {time.monotonic() - started:.0f} s; 1-minute load average {load_before:.2f} before, "
            f"{os.getloadavg()[0]:.2f} after (other processes share the {os.cpu_count()} CPUs: compare CPU time)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
