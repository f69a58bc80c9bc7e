"""Benchmark the restore-chain validator: plan_restore and check_next on a full + 10,000 logs.

Run: ``.venv/bin/python -m bench.chain_validator [--logs N] [--runs R]``
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from rds_migration.chain import BackupRecord, BackupType, advance, check_next, plan_restore  # noqa: E402

DB_GUID = str(uuid.uuid4())
FORK_GUID = str(uuid.uuid4())
START_LSN = 123_456 * 10**15  # beyond 2**64, like real LSNs


def build_chain(n_logs: int, seed: int = 7) -> tuple[BackupRecord, list[BackupRecord]]:
    """A full and ``n_logs`` contiguous log backups, the first one concurrent with the full."""
    rng = random.Random(seed)
    full = BackupRecord(
        file_name="Sales_FULL_00000000000000.bak", backup_type=BackupType.FULL,
        first_lsn=START_LSN + 10, last_lsn=START_LSN + 500, checkpoint_lsn=START_LSN + 20,
        database_backup_lsn=START_LSN, backup_set_uuid=str(uuid.UUID(int=rng.getrandbits(128))),
        database_guid=DB_GUID, recovery_fork_guid=FORK_GUID,
    )  # fmt: skip
    logs, lsn = [], START_LSN
    for i in range(n_logs):
        end = lsn + rng.randint(10**6, 10**12)
        logs.append(
            BackupRecord(
                file_name=f"Sales_LOG_20261124101500_{i}.trn",
                backup_type=BackupType.LOG,
                first_lsn=lsn,
                last_lsn=end,
                checkpoint_lsn=lsn,
                database_backup_lsn=START_LSN + 20,
                backup_set_uuid=str(uuid.UUID(int=rng.getrandbits(128))),
                database_guid=DB_GUID,
                recovery_fork_guid=FORK_GUID,
            )  # fmt: skip
        )
        lsn = end
    return full, logs


def time_plan(full: BackupRecord, logs: list[BackupRecord], runs: int) -> list[float]:
    timings = []
    for run in range(runs):
        candidates = [full, *logs]
        random.Random(run).shuffle(candidates)
        started = time.perf_counter()
        plan = plan_restore(None, candidates)
        timings.append(time.perf_counter() - started)
        assert len(plan.steps) == len(logs) + 1, "benchmark chain must be fully applicable"
    return timings


def time_check_next(full: BackupRecord, logs: list[BackupRecord]) -> float:
    """Seconds per step for check_next + advance, applying the chain in order."""
    point = advance(None, full)
    started = time.perf_counter()
    for record in logs:
        check_next(point, record)
        point = advance(point, record)
    return (time.perf_counter() - started) / max(1, len(logs))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)

    full, logs = build_chain(args.logs)
    print(f"chain: 1 full + {len(logs):,} logs, LSNs ~{START_LSN:.2e} (> 2**64), shuffled; {args.runs} runs")
    for n in sorted({args.logs // 10, args.logs // 2, args.logs}):
        timings = time_plan(full, logs[:n], args.runs)
        median = statistics.median(timings)
        per_backup_us = median / (n + 1) * 1e6
        print(f"plan_restore  n={n:>7,}: median {median * 1000:8.1f} ms  ({per_backup_us:5.1f} us/backup)")
    per_step = statistics.median(time_check_next(full, logs) for _ in range(3))
    print(f"check_next+advance per step: median {per_step * 1e6:.1f} us")


if __name__ == "__main__":
    main()
