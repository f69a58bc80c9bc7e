"""Last good copies of config entries: records, the folder store, planning and remembering."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rds_migration.config import load_config_dir
from rds_migration.last_good import ChainedStore, FolderStore, LastGood, plan_entries, remember

DEFAULTS = """defaults:
  target: {rds_conn_id: rds, instance_id: rm-bp1abc, region: cn-shanghai, mssql_conn_id: rds_tds}
  oss: {oss_conn_id: oss, bucket: my-bucket}
databases:
"""
ENTRY = """  {name}:
    source: {{mssql_conn_id: src, database: "{db}"}}
    backup_folder: {{server_path: 'D:\\B', worker_path: /mnt/b}}
"""


def write(folder: Path, name: str, *entries: tuple[str, str], extra: str = "") -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(DEFAULTS + "".join(ENTRY.format(name=n, db=d) for n, d in entries) + extra)
    return path


class MemoryStore:
    """A second store with the same interface (the DAG file's Variable store stands here)."""

    def __init__(self, fail: bool = False) -> None:
        self.records: dict[str, LastGood] = {}
        self.fail = fail

    def load(self, entry):
        return self.records.get(entry)

    def load_all(self):
        return dict(self.records)

    def save(self, record, *, published):
        if self.fail:
            raise ConnectionError("API server unreachable")
        self.records[record.entry] = record

    def delete(self, entry):
        self.records.pop(entry, None)


def test_record_round_trip_and_foreign_formats_are_ignored(tmp_path):
    spec = load_config_dir(write(tmp_path / "cfg", "prod.yaml", ("sales", "S")).parent).migrations["sales"]
    record = LastGood.of(spec, str(tmp_path / "cfg" / "prod.yaml"))
    assert record.file == "prod.yaml" and record.config_hash == spec.config_hash
    again = LastGood.from_json(record.to_json(published=True))
    assert again == record and again.published and again.spec() == spec
    assert LastGood.from_json("{not json") is None
    assert LastGood.from_json(json.dumps({"format": 99, "entry": "x"})) is None
    assert LastGood.from_json(json.dumps({"format": 1, "entry": "x"})) is None


def test_folder_store_writes_atomically_and_skips_strays(tmp_path):
    spec = load_config_dir(write(tmp_path / "cfg", "prod.yaml", ("sales", "S")).parent).migrations["sales"]
    store = FolderStore(tmp_path / "store")
    assert store.load("sales") is None and store.load_all() == {}
    store.save(LastGood.of(spec, "prod.yaml"), published=False)
    assert sorted(os.listdir(tmp_path / "store")) == ["sales.json"]  # no temp file left behind
    (tmp_path / "store" / "other.json").write_text(LastGood.of(spec, "prod.yaml").to_json())  # wrong name
    (tmp_path / "store" / "junk.json").write_text("{")
    assert list(store.load_all()) == ["sales"] and store.load("sales").published is False
    store.delete("sales")
    assert store.load("sales") is None
    assert store.load("../etc/passwd") is None
    with pytest.raises(ValueError, match="not an entry name"):
        store.delete("../etc/passwd")


def test_remember_publishes_once_and_retries_a_failed_publish(tmp_path):
    folder = write(tmp_path / "cfg", "prod.yaml", ("sales", "S")).parent
    local, shared = FolderStore(tmp_path / "store"), MemoryStore(fail=True)
    result = load_config_dir(folder)
    plan = plan_entries(result, local)
    [problem] = remember(plan, result, local, shared)
    assert "cannot publish the last good config of 'sales'" in problem and "unreachable" in problem
    assert local.load("sales").published is False and shared.records == {}
    shared.fail = False
    assert remember(plan, result, local, shared) == []
    assert local.load("sales").published and shared.records["sales"] == local.load("sales")
    shared.records.clear()  # an unchanged, published record is not written again
    assert remember(plan, result, local, shared) == [] and shared.records == {}


def test_chained_store_reads_in_order(tmp_path):
    folder = write(tmp_path / "cfg", "prod.yaml", ("sales", "S")).parent
    spec = load_config_dir(folder).migrations["sales"]
    first, second = MemoryStore(), MemoryStore()
    older = LastGood.of(spec, "old.yaml")
    second.records = {"sales": older, "hr": older}
    first.records = {"sales": LastGood.of(spec, "prod.yaml")}
    chained = ChainedStore([first, second])
    assert chained.load("sales").file == "prod.yaml" and chained.load("hr") is older
    assert chained.load_all()["sales"].file == "prod.yaml" and chained.load("nope") is None


def test_plan_keeps_broken_entries_from_their_copy_and_new_ones_not(tmp_path):
    folder = tmp_path / "cfg"
    write(folder, "prod.yaml", ("sales", "S"), ("hr", "H"))
    local = FolderStore(tmp_path / "store")
    result = load_config_dir(folder)
    remember(plan_entries(result, local), result, local, None)
    write(folder, "prod.yaml", ("sales", "S"), ("hr", "H"), ("new", "N"), extra="    retries: -1\n")
    result = load_config_dir(folder)
    plan = plan_entries(result, local)
    assert set(plan.entries) == {"sales", "hr"} and not plan.entries["hr"].broken_by
    (folder / "prod.yaml").write_text(DEFAULTS + ENTRY.format(name="sales", db="S") + "    retries: -1\n")
    result = load_config_dir(folder)
    plan = plan_entries(result, local)
    # hr is no longer listed: not broken, just gone (remember() forgets it).
    assert set(plan.entries) == {"sales"} and [e.field for e in plan.entries["sales"].broken_by] == [
        "retries"
    ]
    remember(plan, result, local, None)
    assert set(local.load_all()) == {"sales"}


def test_plan_for_one_entry_reads_only_that_copy(tmp_path):
    folder = tmp_path / "cfg"
    write(folder, "prod.yaml", ("sales", "S"), ("hr", "H"))
    local = FolderStore(tmp_path / "store")
    result = load_config_dir(folder)
    remember(plan_entries(result, local), result, local, None)
    (folder / "prod.yaml").write_text("databases: [unclosed\n")

    class Counting(FolderStore):
        loads: list[str] = []

        def load(self, entry):
            self.loads.append(entry)
            return super().load(entry)

        def load_all(self):
            raise AssertionError("a single-entry parse must not list every copy")

    counting = Counting(tmp_path / "store")
    plan = plan_entries(load_config_dir(folder, only={"hr"}), counting, only={"hr"})
    assert set(plan.entries) == {"hr"} and counting.loads == ["hr"]
    assert "malformed YAML" in str(plan.entries["hr"].broken_by[0])


def test_plan_for_one_entry_uses_its_exact_name_and_skips_healthy_entries(tmp_path):
    folder = tmp_path / "cfg"
    write(folder, "prod.yaml", ("Sales", "S"))
    write(folder, "other.yaml", ("hr", "H"))
    local = FolderStore(tmp_path / "store")
    result = load_config_dir(folder)
    remember(plan_entries(result, local), result, local, None)
    (folder / "prod.yaml").write_text("databases: [unclosed\n")
    plan = plan_entries(load_config_dir(folder, only={"sales"}), local, only={"Sales"})
    assert plan.entries["Sales"].spec.source.database == "S"  # found as Sales.json

    class NoReads(FolderStore):
        def load(self, entry):
            raise AssertionError(f"a healthy entry's parse read the store for {entry!r}")

    healthy = plan_entries(load_config_dir(folder, only={"hr"}), NoReads(tmp_path / "store"), only={"hr"})
    assert set(healthy.entries) == {"hr"} and not healthy.entries["hr"].broken_by
