"""Reliability in figures: many seeded chaos scenarios, each a whole migration under injected faults.

Run: ``.venv/bin/python -m bench.chaos --seeds 50 [--first-seed 1] [--baselines 3] [--parallel 2] [--out DIR]``

Each scenario is ``python -m tools.chaos --seed N`` in a process of its own (a whole migration under real
Airflow, the faults of its seed; see tools/chaos/), one after the other or ``--parallel N`` at a time
(their times then include sharing the machine; the baselines run the same way). Fault-free baselines
(the same scenario without faults) run first and give the time to compare with. Passed scenarios keep
only their ``result.json`` and ``logs/chaos.log``; a failed one keeps its whole folder and prints the
command that reproduces it. The figures go to stdout and ``<out>/summary.json``; a run can be continued with
``--first-seed`` (results already in ``<out>`` are read, not run again, with ``--resume``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCENARIO_TIMEOUT_S = 30 * 60


def migrated_airflow_db(out: Path) -> Path:
    """``airflow db migrate`` once, into ``<out>/template``; each scenario starts from a copy."""
    home = out / "template"
    home.mkdir(parents=True, exist_ok=True)
    database = home / "airflow.db"
    if not database.exists():
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(
            AIRFLOW_HOME=str(home),
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'migrating.db'}",
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
        )
        command = [sys.executable, "-m", "airflow", "db", "migrate"]
        subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
        (home / "migrating.db").replace(database)
    return database


def run_one(
    seed: int,
    out: Path,
    *,
    baseline: bool,
    kills: int,
    keep: str,
    resume: bool,
    airflow_db: Path | None = None,
) -> dict[str, Any]:
    """One scenario in its own process; its result.json (or an error record if it has none)."""
    name = f"baseline-{seed}" if baseline else f"seed-{seed}"
    result_path = out / name / "result.json"
    if resume and result_path.exists():
        return json.loads(result_path.read_text())
    command = [sys.executable, "-m", "tools.chaos", "--seed", str(seed), "--out", str(out), "--keep", keep]
    command += ["--baseline"] if baseline else ["--kills", str(kills)]
    command += ["--airflow-db", str(airflow_db)] if airflow_db else []
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    started = time.monotonic()
    with open(out / f"{name}.out", "w") as output:
        try:
            code = subprocess.run(
                command,
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=SCENARIO_TIMEOUT_S,
            ).returncode
        except subprocess.TimeoutExpired:
            code = None
    if result_path.exists():
        return json.loads(result_path.read_text())
    return {
        "seed": seed,
        "baseline": baseline,
        "outcome": "error",
        "ok": False,
        "problems": [f"no result (exit {code}, {time.monotonic() - started:.0f} s): see {out / name}.out"],
        "faults": {},
        "kills": [],
        "missed_kills": [],
    }


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def _p90(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 1)


def summarize(results: list[dict[str, Any]], baselines: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of a long run (pure: from the scenarios' result.json)."""
    outcomes = Counter(r["outcome"] for r in results)
    faults: Counter[str] = Counter()
    for r in results:
        faults.update(r.get("faults") or {})
    by_point: dict[str, Counter[str]] = {}
    for r in results:
        for kill in r.get("kills") or []:
            label = f"{kill['mode']}{' (late)' if kill.get('effect') == 'late' else ''} -> {r['outcome']}"
            by_point.setdefault(kill["point"], Counter())[label] += 1
        for point in r.get("missed_kills") or []:
            by_point.setdefault(point, Counter())["missed"] += 1
    effects = Counter(kill.get("effect", "?") for r in results for kill in r.get("kills") or [])
    missed = sum(len(r.get("missed_kills") or []) for r in results)
    chaos_times = [r["run_seconds"] for r in results if r.get("run_seconds")]
    downtimes = [r["downtime_seconds"] for r in results if r.get("downtime_seconds")]
    base_downtimes = [r["downtime_seconds"] for r in baselines if r.get("downtime_seconds")]
    base_times = [r["run_seconds"] for r in baselines if r.get("run_seconds")]
    base = _median(base_times)
    return {
        "scenarios": len(results),
        "ok": sum(1 for r in results if r.get("ok")),
        "completed": outcomes.get("completed", 0),
        "rolled_back": outcomes.get("rolled_back", 0),
        "failed": outcomes.get("failed", 0) + outcomes.get("error", 0),
        "failed_seeds": [r["seed"] for r in results if not r.get("ok")],
        "duplicate_imports": sum(r.get("duplicate_imports", 0) for r in results),
        "rows_lost": sum(r.get("rows_lost", 0) for r in results),
        "acknowledged_writes": sum(r.get("acknowledged_writes", 0) for r in results),
        "resent_parts": sum(r.get("resent_parts", 0) for r in results),
        "objects_sent_twice": sum(r.get("objects_sent_twice", 0) for r in results),
        "secrets_found": sum(len(r.get("secrets_found") or []) for r in results),
        "target_differs": sum(1 for r in results if r.get("table_differences")),
        "faults": dict(sorted(faults.items())),
        "kill_points": {p: dict(sorted(c.items())) for p, c in sorted(by_point.items())},
        "kills_retried": effects.get("retried", 0),
        "kills_late": effects.get("late", 0),
        "kills_missed": missed,
        "baseline_runs": len(baselines),
        "baseline_ok": sum(1 for r in baselines if r.get("ok")),
        "baseline_median_s": base,
        "chaos_median_s": _median(chaos_times),
        "chaos_p90_s": _p90(chaos_times),
        "chaos_max_s": max(chaos_times) if chaos_times else None,
        "chaos_vs_baseline": round(_median(chaos_times) / base, 2) if base and chaos_times else None,
        "baseline_downtime_median_s": _median(base_downtimes),
        "downtime_median_s": _median(downtimes),
        "downtime_max_s": round(max(downtimes), 1) if downtimes else None,
    }


def report(summary: dict[str, Any], command: str, results: list[dict[str, Any]]) -> str:
    s = summary
    lines = [
        f"chaos: {s['scenarios']} scenarios + {s['baseline_runs']} fault-free baselines; "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; Python {platform.python_version()}, {os.cpu_count()} CPUs",
        f"command: {command}",
        "",
        f"scenarios run                        {s['scenarios']:>6}   passed every check: {s['ok']}",
        f"migrations completed                 {s['completed']:>6}",
        f"rolled back, nothing lost            {s['rolled_back']:>6}",
        f"failed (neither)                     {s['failed']:>6}   seeds: {s['failed_seeds'] or '-'}",
        f"duplicate imports (must be 0)        {s['duplicate_imports']:>6}   (RDS stand-in's own import records)",
        f"rows lost (must be 0)                {s['rows_lost']:>6}   of {s['acknowledged_writes']} acknowledged writes",
        f"committed parts re-sent (must be 0)  {s['resent_parts']:>6}   (OSS stand-in's request log)",
        f"objects uploaded again in full       {s['objects_sent_twice']:>6}",
        f"secrets found in logs (must be 0)    {s['secrets_found']:>6}",
        f"target differs from source           {s['target_differs']:>6}",
        "",
        "faults injected, by kind (all scenarios):",
        *(f"  {kind:<40} {count:>6}" for kind, count in s["faults"].items()),
        "",
        f"kills: {s['kills_retried']} made the task run again, {s['kills_late']} came after the task's work was "
        f"done (late), {s['kills_missed']} found no moment (missed)",
        "kills by point (mode -> outcome of the scenario):",
        *(
            f"  {point:<34} " + ", ".join(f"{k}: {v}" for k, v in outcomes.items())
            for point, outcomes in s["kill_points"].items()
        ),
        "",
        f"DAG run time: fault-free median {s['baseline_median_s']} s ({s['baseline_ok']}/{s['baseline_runs']} ok); "
        f"with faults median {s['chaos_median_s']} s, p90 {s['chaos_p90_s']} s, max {s['chaos_max_s']} s "
        f"-> {s['chaos_vs_baseline']}x the fault-free run",
        f"downtime (source frozen -> open on RDS): fault-free median {s['baseline_downtime_median_s']} s; "
        f"with faults median {s['downtime_median_s']} s, max {s['downtime_max_s']} s",
        "",
        "per scenario: seed, outcome, DAG run s (x fault-free), downtime s, kill, tasks tried again, faults",
    ]
    base = s["baseline_median_s"]
    for r in results:
        retried = ", ".join(
            f"{t} {v.split()[-1]}"
            for t, v in (r.get("tasks") or {}).items()
            if v.split()[-1] not in ("(1)", "(0)")
        )
        run_s = r.get("run_seconds")
        ratio = f"x{run_s / base:.1f}" if run_s and base else "-"
        kills = ", ".join(
            f"{k['point']} {k['mode']}{' late' if k.get('effect') == 'late' else ''}"
            for k in r.get("kills") or []
        )
        lines.append(
            f"  {r['seed']:>4} {r['outcome']:<11} {run_s or '-':>6} {ratio:>5} {r.get('downtime_seconds') or '-':>5}"
            f"  {kills or 'no kill'}; {retried or '-'}; {sum((r.get('faults') or {}).values())} faults"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50, help="number of seeded scenarios (default 50)")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument(
        "--baselines", type=int, default=3, help="fault-free runs to compare with (default 3)"
    )
    parser.add_argument("--kills", type=int, default=1, help="SIGKILLs per scenario (default 1)")
    parser.add_argument(
        "--parallel",
        type=int,
        default=1,
        help="scenarios at a time (default 1; each is a whole Airflow: on 2 cores, 2 slow every one down)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "chaos-output")
    parser.add_argument("--keep", choices=("always", "failed", "never"), default="failed")
    parser.add_argument("--resume", action="store_true", help="reuse results already in --out")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m bench.chaos " + " ".join(argv if argv is not None else sys.argv[1:])
    airflow_db = migrated_airflow_db(out)

    def one(seed: int, baseline: bool) -> dict[str, Any]:
        kills = 0 if baseline else args.kills
        return run_one(
            seed,
            out,
            baseline=baseline,
            kills=kills,
            keep=args.keep,
            resume=args.resume,
            airflow_db=airflow_db,
        )

    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        baselines = list(pool.map(lambda n: one(n, True), range(args.baselines)))
        for n, result in enumerate(baselines):
            print(f"baseline {n}: {result['outcome']}, DAG run {result.get('run_seconds')} s", flush=True)
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        futures = {pool.submit(one, seed, False): seed for seed in seeds}
        by_seed = {}
        for future in as_completed(futures):
            seed, result = futures[future], future.result()
            by_seed[seed] = result
            verdict = "ok" if result.get("ok") else "FAILED"
            print(
                f"seed {seed}: {verdict} {result['outcome']}, DAG run {result.get('run_seconds')} s, "
                f"{sum((result.get('faults') or {}).values())} faults, "
                f"kills {[k['point'] for k in result.get('kills') or []]}",
                flush=True,
            )
            if not result.get("ok"):
                for problem in result.get("problems") or []:
                    print(f"    {problem}", flush=True)
                print(f"    reproduce: python -m tools.chaos --seed {seed} --kills {args.kills}", flush=True)
    results = [by_seed[seed] for seed in seeds]
    summary = summarize(results, baselines)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print()
    print(report(summary, command, results))
    return 0 if summary["ok"] == summary["scenarios"] else 1


if __name__ == "__main__":
    sys.exit(main())
