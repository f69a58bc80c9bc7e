"""Downtime of the cutover under real Airflow: ``make demo`` N times, the freeze → open split of each.

    .venv/bin/python -m bench.downtime [--runs 3]

Each run is a whole ``python -m tools.demo`` (sandbox, scheduler, dag-processor, triggerer, api-server,
LocalExecutor) in its own folder. From each run's summary it takes the measured window (source frozen →
database open on RDS, from the ledger) and its split: the work itself (freeze, tail-log backup, upload,
RDS restore wait, RDS open wait) and the rest, Airflow's orchestration and the package's bookkeeping.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WINDOW = re.compile(r"MEASURED DOWNTIME \(source frozen -> database open on RDS\): ([\d.]+) s")
WORK = re.compile(
    r"work ([\d.]+) s = freeze ([\d.]+) \+ tail backup ([\d.]+) \+ upload ([\d.]+) "
    r"\+ RDS restore wait ([\d.]+) \+ RDS open wait ([\d.]+)"
)
ORCHESTRATION = re.compile(r"orchestration \(Airflow hand-offs, bookkeeping\) (-?[\d.]+) s")
FIELDS = (
    "window",
    "work",
    "freeze",
    "tail backup",
    "upload",
    "RDS restore wait",
    "RDS open wait",
    "orchestration",
)


def one_run(folder: Path) -> dict[str, float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "tools.demo", "--demo-dir", str(folder)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    (folder.parent / f"{folder.name}.log").write_text(result.stdout + result.stderr)
    window, work, orchestration = (p.search(result.stdout) for p in (WINDOW, WORK, ORCHESTRATION))
    if result.returncode != 0 or not (window and work and orchestration):
        raise RuntimeError(f"the demo in {folder} failed (exit {result.returncode}); see {folder}.log")
    values = [float(window[1]), *map(float, work.groups()), float(orchestration[1])]
    return {**dict(zip(FIELDS, values, strict=True)), "demo_s": time.monotonic() - started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.downtime", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-downtime-"))
    runs = []
    for index in range(args.runs):
        run = one_run(root / f"run{index + 1}")
        runs.append(run)
        print(
            f"run {index + 1}: window {run['window']:.1f} s = work {run['work']:.1f} s + orchestration "
            f"{run['orchestration']:.1f} s (demo {run['demo_s']:.0f} s)",
            flush=True,
        )
    print()
    print(f"{'':<20} {'median':>8} {'min':>8} {'max':>8}   (seconds, {len(runs)} runs)")
    for field in FIELDS:
        values = [r[field] for r in runs]
        print(f"{field:<20} {statistics.median(values):8.1f} {min(values):8.1f} {max(values):8.1f}")
    print(f"\nlogs: {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
