"""What a chaos scenario must show after the run, each computed from the stand-ins' own records.

Pure functions over plain values (the RDS service's import records, the OSS request log, the workload's
journal, table rows, log files), so each rule is unit-tested on its own (tests/chaos/test_plan_and_checks.py).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

#: RDS file statuses after which the file was not imported (another import of it is not a duplicate).
FILE_FAILED = ("DownloadFailed", "VerifyFailed", "CheckFailed", "RestoreFailed")
#: OSS operations that complete an object (a second one for the same key sends it again).
OBJECT_WRITES = ("PutObject", "CompleteMultipartUpload")


def duplicate_imports(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Object keys RDS accepted again although an earlier import of them had not failed.

    ``records``: ``RdsService.import_records()`` (oldest first). A file imported again after RDS failed
    on it is a legitimate retry; a second import of a file that was restored, or still in progress, is
    a duplicate.
    """
    seen: dict[str, list[str]] = defaultdict(list)
    duplicates = []
    for record in records:
        earlier = seen[record["key"]]
        if any(status not in FILE_FAILED for status in earlier):
            duplicates.append(record["key"])
        earlier.append(record["status"])
    return duplicates


def resent_parts(requests: Iterable[Any]) -> list[tuple[str, str, int]]:
    """UploadParts sent for a part number that was already committed in the same upload.

    ``requests``: the OSS stand-in's request log (``RequestRecord``: operation, key, query, status). A
    part that failed (5xx, throttled, reset) is sent again, rightly; one that was answered 200 must never
    be, not even by a resumed upload after the worker was killed.
    """
    committed: set[tuple[str, int]] = set()
    resent = []
    for request in requests:
        if request.operation != "UploadPart" or request.part_number is None:
            continue
        part = (request.query.get("uploadId", ""), request.part_number)
        if part in committed:
            resent.append((request.key, part[0], part[1]))
        if request.status == 200:
            committed.add(part)
    return resent


def objects_sent_twice(requests: Iterable[Any], ignore: Iterable[str] = ()) -> list[str]:
    """Object keys written completely more than once (a whole upload repeated instead of skipped).

    :param ignore: key prefixes or keys whose rewrites are expected (the ledger, the HTML reports).
    """
    ignored = tuple(ignore)
    written = Counter(
        r.key
        for r in requests
        if r.operation in OBJECT_WRITES and r.status == 200 and not r.key.startswith(ignored)
    )
    return sorted(key for key, count in written.items() if count > 1)


def lost_writes(acknowledged: Iterable[Any], rows: Mapping[int, Decimal | None]) -> list[int]:
    """Ids whose last acknowledged write is not what the database holds (missing, or an older value).

    ``acknowledged``: the workload's journal (``AckedWrite``: id, value), in order; ``rows``: id -> amount
    of ``dbo.orders`` in the database that must hold them.
    """
    latest: dict[int, Decimal] = {}
    for write in acknowledged:
        latest[write.id] = write.value
    return sorted(i for i, value in latest.items() if rows.get(i) != value)


def table_differences(source: Mapping[str, list[tuple]], target: Mapping[str, list[tuple]]) -> list[str]:
    """Tables whose rows differ between source and target (rows ordered by key on both sides)."""
    problems = []
    for table in sorted(set(source) | set(target)):
        if table not in target:
            problems.append(f"{table}: missing on the target")
        elif table not in source:
            problems.append(f"{table}: only on the target")
        elif source[table] != target[table]:
            a, b = source[table], target[table]
            differing = sum(1 for x, y in zip(a, b, strict=False) if x != y) + abs(len(a) - len(b))
            problems.append(
                f"{table}: {len(a)} rows on the source, {len(b)} on the target, {differing} differ"
            )
    return problems


def secrets_in_logs(folder: Path, secrets: Iterable[str]) -> list[tuple[str, str]]:
    """(file, which secret) for every file under ``folder`` that contains one of ``secrets``.

    The secret itself is never returned: only a masked hint of it (its first two characters).
    """
    needles = [(s, s.encode()) for s in {str(s) for s in secrets if s and len(str(s)) >= 6}]
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        for secret, needle in needles:
            if needle in data:
                found.append((str(path.relative_to(folder)), f"{secret[:2]}…"))
    return found
