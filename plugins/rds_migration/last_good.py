"""The last good version of each config entry, so that breaking an entry's YAML does not pull its DAGs.

An entry's DAGs can only exist while the DAG file produces them: Airflow marks a DAG that a parse no
longer produces as stale, under any run in progress. So each time an entry is valid the DAG factory
records its resolved settings here, and when the entry (or its whole file) later breaks it rebuilds the
DAGs from this copy and shows the error beside them.

:class:`FolderStore` keeps one JSON file per entry in a folder outside the (possibly read-only) config
folder. The DAG file mirrors these records to Airflow Variables so that a worker on another machine,
without this folder, finds them too (see ``dags/mssql_to_rds.py``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from rds_migration.config import ConfigError, LoadResult, MigrationSpec, entry_key, entry_name_ok

#: Version of the record layout; a record of another version is ignored (as if there were none).
RECORD_FORMAT = 1


@dataclass(frozen=True)
class LastGood:
    """One entry's settings as they were the last time the entry was valid."""

    entry: str
    #: Name of the config file inside the config folder (not a path: mounts differ between machines).
    file: str
    config_hash: str
    #: :meth:`MigrationSpec.resolved_settings` (connection ids only, never connections or secrets).
    settings: dict[str, Any]
    #: Whether this copy was also published to the shared store (local copies only; not compared).
    published: bool = field(default=False, compare=False)

    @classmethod
    def of(cls, spec: MigrationSpec, file: str) -> LastGood:
        return cls(spec.name, Path(file).name, spec.config_hash, spec.resolved_settings())

    def to_json(self, *, published: bool | None = None) -> str:
        record = {
            "format": RECORD_FORMAT,
            "entry": self.entry,
            "file": self.file,
            "config_hash": self.config_hash,
            "settings": self.settings,
            "published": self.published if published is None else published,
        }
        return json.dumps(record, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LastGood | None:
        """The record in ``text``, or None if it is not a record this version can use."""
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
            return None
        try:
            return cls(
                str(data["entry"]),
                str(data["file"]),
                str(data["config_hash"]),
                dict(data["settings"]),
                bool(data.get("published", False)),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def spec(self) -> MigrationSpec:
        """Rebuild the spec (raises pydantic's ``ValidationError`` if the schema no longer accepts it)."""
        return MigrationSpec.model_validate(self.settings)


class FolderStore:
    """Records as ``<root>/<entry>.json``, written atomically (a reader never sees half a record).

    Entry names are letters, digits, ``_ - .`` (see :func:`rds_migration.config.entry_name_ok`), so they
    are safe file names; names equal ignoring case are refused by the loader, so case-insensitive file
    systems do not mix two entries up.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, entry: str) -> Path:
        if not entry_name_ok(entry):
            raise ValueError(f"not an entry name: {entry!r}")
        return self.root / f"{entry}.json"

    def load(self, entry: str) -> LastGood | None:
        try:
            return LastGood.from_json(self._path(entry).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def load_all(self) -> dict[str, LastGood]:
        records: dict[str, LastGood] = {}
        try:
            paths = sorted(self.root.glob("*.json"))
        except OSError:
            return records
        for path in paths:
            try:
                record = LastGood.from_json(path.read_text(encoding="utf-8"))
            except OSError:
                continue
            if record is not None and path.name == f"{record.entry}.json":
                records[record.entry] = record
        return records

    def save(self, record: LastGood, *, published: bool) -> None:
        """Write ``record`` (raises ``OSError`` if the folder cannot be written)."""
        path = self._path(record.entry)
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{record.entry}.", suffix=".tmp", dir=self.root)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(record.to_json(published=published))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def delete(self, entry: str) -> None:
        self._path(entry).unlink(missing_ok=True)


class Store(Protocol):
    """Where records live: :class:`FolderStore`, or the DAG file's Airflow Variable mirror."""

    def load(self, entry: str) -> LastGood | None: ...

    def load_all(self) -> dict[str, LastGood]: ...

    def save(self, record: LastGood, *, published: bool) -> None: ...

    def delete(self, entry: str) -> None: ...


class ChainedStore:
    """Read from several stores in order (the first that has a record wins); never writes."""

    def __init__(self, stores: Sequence[Store]) -> None:
        self.stores = list(stores)

    def load(self, entry: str) -> LastGood | None:
        for store in self.stores:
            record = store.load(entry)
            if record is not None:
                return record
        return None

    def load_all(self) -> dict[str, LastGood]:
        records: dict[str, LastGood] = {}
        for store in reversed(self.stores):
            records.update(store.load_all())
        return records


# ---- planning: which entries get DAGs, from which settings -----------------------------------------


@dataclass(frozen=True)
class Planned:
    """An entry whose DAGs are built.

    :param spec: the settings the DAGs use.
    :param file: name of the config file the settings come from.
    :param broken_by: empty when ``spec`` is the current config; otherwise ``spec`` is the last good copy
        and these are the errors that make the current config unusable.
    """

    spec: MigrationSpec
    file: str
    broken_by: tuple[ConfigError, ...] = ()


@dataclass
class Plan:
    """Entries to build, and every error to show (the loader's and the last good copies')."""

    entries: dict[str, Planned] = field(default_factory=dict)
    errors: list[ConfigError] = field(default_factory=list)


def _errors_of(errors: Sequence[ConfigError], file: str, entry: str | None) -> tuple[ConfigError, ...]:
    """Errors of ``file`` that stop ``entry``: its own, and the file's own (bad defaults, bad YAML)."""
    return tuple(
        e
        for e in errors
        if Path(e.file).name == file
        and e.duplicate_of is None
        and (e.entry is None or (entry is not None and entry_key(e.entry) == entry_key(entry)))
    )


def plan_entries(
    result: LoadResult,
    last_good: Store | ChainedStore,
    *,
    only: Collection[str] | None = None,
    folder_missing: bool = False,
    folder: str | Path = "",
) -> Plan:
    """Valid entries from the current config; broken ones from their last good copy when there is one.

    An entry is rebuilt from its copy when it is still listed but invalid (``result.broken``), when the
    file its copy came from cannot be read at all (``result.unreadable``), or when the whole config folder
    is missing. A copy the current schema refuses is reported, not used.

    :param only: names of the entries being built (a worker's single-DAG parse); None for all.
    :param folder: the config folder (to name a record's file in errors as the loader does).
    """
    keys = None if only is None else {entry_key(name) for name in only}
    plan = Plan(errors=list(result.errors))
    for name, spec in result.migrations.items():
        plan.entries[name] = Planned(spec, Path(result.sources[name]).name)
    taken = {entry_key(name) for name in plan.entries}
    candidates: list[tuple[LastGood, tuple[ConfigError, ...]]] = []
    for name, file in result.broken.items():
        record = last_good.load(name) if entry_key(name) not in taken else None
        if record is not None:
            candidates.append((record, _errors_of(result.errors, Path(file).name, name)))
    unreadable = {Path(f).name for f in result.unreadable}
    if unreadable or folder_missing:
        if only is not None:
            wanted = sorted(name for name in only if entry_key(name) not in taken)
            records = [r for r in map(last_good.load, wanted) if r is not None]
        else:
            records = list(last_good.load_all().values())
        for record in sorted(records, key=lambda r: (r.file, r.entry)):
            if folder_missing or record.file in unreadable:
                candidates.append((record, _errors_of(result.errors, record.file, None)))
    for record, errors in candidates:
        key = entry_key(record.entry)
        if key in taken or (keys is not None and key not in keys):
            continue
        taken.add(key)
        try:
            spec = record.spec()
        except ValidationError as exc:
            problem = " ".join(str(exc).split())
            plan.errors.append(
                ConfigError(
                    str(Path(folder) / record.file),
                    record.entry,
                    None,
                    f"its last good copy (config {record.config_hash}) no longer validates, so its DAGs "
                    f"cannot be kept until the config is fixed: {problem}",
                )
            )
            continue
        plan.entries[record.entry] = Planned(spec, record.file, errors or _folder_error(result.errors))
    return plan


def _folder_error(errors: Sequence[ConfigError]) -> tuple[ConfigError, ...]:
    return tuple(e for e in errors if e.entry is None)[:1]


def remember(
    plan: Plan, result: LoadResult, local: Store, shared: Store | None, *, folder_missing: bool = False
) -> list[str]:
    """Record every entry built from the current config; forget entries no longer configured.

    Called by a full parse (the dag-processor). A record is written when it changed, or when it was
    never published and ``shared`` is now there. Records are forgotten when their entry is no longer
    listed in any file, unless their file cannot be read (then the entry may still be in it).

    :returns: problems writing the stores (for a warning; the DAGs are built anyway).
    """
    problems: list[str] = []
    stored = local.load_all()
    for name, planned in plan.entries.items():
        if planned.broken_by:
            continue
        record = LastGood.of(planned.spec, planned.file)
        old = stored.get(name)
        if old == record and (old.published or shared is None):
            continue
        published = False
        if shared is not None:
            try:
                shared.save(record, published=True)
                published = True
            except Exception as exc:  # the API may be down: keep the local copy, publish next time
                problems.append(f"cannot publish the last good config of {name!r}: {exc}")
        try:
            local.save(record, published=published)
        except OSError as exc:
            problems.append(f"cannot write the last good config of {name!r}: {exc}")
    if folder_missing:
        return problems
    listed = {entry_key(name) for name, _ in result.defined}
    unreadable = {Path(f).name for f in result.unreadable}
    for name, old in stored.items():
        if entry_key(name) in listed or old.file in unreadable or name in plan.entries:
            continue
        for store in (local, shared):
            if store is None:
                continue
            try:
                store.delete(name)
            except Exception as exc:
                problems.append(f"cannot forget the last good config of {name!r}: {exc}")
    return problems
