"""YAML edits while migrations run: last good config, duplicates, errors only where they belong, versions.

Every test parses the real DAG file through a real ``DagBag``, as the dag-processor (full parse) or a
worker (``_AIRFLOW_PARSING_CONTEXT_DAG_ID`` set, single-DAG parse) does.
"""

from __future__ import annotations

import logging
import re
import shutil

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.models.serialized_dag import SerializedDagModel
from airflow.serialization.serialized_objects import DagSerialization

from tests.dags.conftest import EXAMPLE, REPO

SALES = "mssql_to_rds__sales"
HR = "mssql_to_rds__hr-payroll"
PROD_ERRORS = "mssql_to_rds_config_error__prod"
NEW_ENTRY = """
  {name}:
    source: {{mssql_conn_id: mssql_sql_prod_01, database: {name}}}
    backup_folder: {{server_path: 'D:\\B\\{name}', worker_path: /mnt/b/{name}}}
    oss: {{bucket: {bucket}}}
"""


def parse(monkeypatch: pytest.MonkeyPatch, dag_id: str | None = None) -> DagBag:
    """A full parse (the dag-processor's), or a worker's parse for ``dag_id``."""
    if dag_id is None:
        monkeypatch.delenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", raising=False)
    else:
        monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", dag_id)
    bag = DagBag(dag_folder=str(REPO / "dags"), safe_mode=False)
    assert bag.import_errors == {}
    return bag


def spec_of(bag: DagBag, dag_id: str = SALES):
    return bag.dags[dag_id].get_task("preflight").migration


def edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def dag_hash(dag) -> str:
    """The hash Airflow compares to decide whether a parse is a new DAG version."""
    return SerializedDagModel.hash(DagSerialization.to_dict(dag))


# ---- last good config ---------------------------------------------------------------------------


def test_malformed_yaml_keeps_last_good_dags_and_shows_the_error(config_dir, no_network, monkeypatch):
    before = parse(monkeypatch)
    good = spec_of(before)
    (config_dir / "prod.yaml").write_text("defaults: [unclosed\ndatabases:\n  sales: {}\n")
    bag = parse(monkeypatch)
    assert set(bag.dag_ids) == set(before.dag_ids) | {PROD_ERRORS}
    kept = bag.dags[SALES]
    assert spec_of(bag) == good and kept.task_ids == before.dags[SALES].task_ids
    assert kept.description.startswith(f"LAST GOOD CONFIG {good.config_hash} from prod.yaml: ")
    assert "malformed YAML" in kept.description and "Running on the last good config" in kept.doc_md
    assert "LAST GOOD CONFIG" in bag.dags[f"{HR}__log_shipping"].description
    error_dag = bag.dags[PROD_ERRORS]
    assert "config-error" in error_dag.tags and "prod.yaml: malformed YAML" in error_dag.doc_md
    assert f"sales (config {good.config_hash})" in error_dag.doc_md
    # Fixed: the DAGs follow the file again and the error DAG goes.
    shutil.copy(EXAMPLE, config_dir / "prod.yaml")
    fixed = parse(monkeypatch)
    assert set(fixed.dag_ids) == set(before.dag_ids)
    assert fixed.dags[SALES].description == f"Config {good.config_hash} from prod.yaml"


def test_invalid_entry_keeps_its_last_good_copy_the_others_follow_the_file(
    config_dir, no_network, monkeypatch
):
    good = spec_of(parse(monkeypatch))
    prod = config_dir / "prod.yaml"
    edit(prod, "      prefix: prod/sales/", "      prefix: prod/sales/\n      bucket: Bad_Bucket")
    edit(prod, "    cutover_threshold_mb: 200", "    cutover_threshold_mb: 150")
    bag = parse(monkeypatch)
    assert spec_of(bag) == good and spec_of(bag).oss.bucket == "acme-sqlserver-migration"
    assert "field 'oss.bucket': 'Bad_Bucket' is not a valid OSS bucket name" in bag.dags[SALES].description
    assert spec_of(bag, HR).cutover_threshold_mb == 150 and bag.dags[HR].description.startswith("Config ")
    # The error is shown in the file's error DAG: the entry's own dag_id belongs to the kept DAG.
    assert "'oss.bucket'" in bag.dags[PROD_ERRORS].doc_md
    assert "config-error" not in bag.dags[SALES].tags


def test_the_latest_valid_version_is_the_one_kept(config_dir, no_network, monkeypatch):
    prod = config_dir / "prod.yaml"
    parse(monkeypatch)
    edit(prod, "  retries: 3", "  retries: 4")
    v2 = spec_of(parse(monkeypatch))
    edit(prod, "  retries: 4", "  retries: many")
    bag = parse(monkeypatch)
    assert spec_of(bag).retries == 4 and spec_of(bag) == v2
    assert "field 'defaults': retries: " in bag.dags[PROD_ERRORS].doc_md


def test_brand_new_broken_entry_gets_only_its_error_dag(config_dir, no_network, monkeypatch):
    parse(monkeypatch)
    with (config_dir / "prod.yaml").open("a") as out:
        out.write(NEW_ENTRY.format(name="inventory", bucket="Bad_Bucket"))
    bag = parse(monkeypatch)
    assert {d for d in bag.dag_ids if "inventory" in d} == {"mssql_to_rds__inventory"}
    assert PROD_ERRORS not in bag.dag_ids
    error_dag = bag.dags["mssql_to_rds__inventory"]
    assert "config-error" in error_dag.tags and "'oss.bucket'" in error_dag.description


def test_a_removed_entry_is_forgotten_not_resurrected_by_a_later_break(config_dir, no_network, monkeypatch):
    prod = config_dir / "prod.yaml"
    parse(monkeypatch)
    text = prod.read_text()
    prod.write_text(text[: text.index("  hr-payroll:")])
    assert HR not in parse(monkeypatch).dag_ids
    prod.write_text("databases: [unclosed\n")
    bag = parse(monkeypatch)
    assert SALES in bag.dag_ids and HR not in bag.dag_ids


def test_a_deleted_config_folder_keeps_the_dags_with_an_error(config_dir, no_network, monkeypatch):
    parse(monkeypatch)
    shutil.rmtree(config_dir)
    bag = parse(monkeypatch)
    assert {SALES, HR} <= set(bag.dag_ids)
    [error_dag] = [d for d in bag.dags.values() if "config-error" in d.tags]
    assert (
        "config folder does not exist" in error_dag.doc_md
        and "Kept on their last good config" in error_dag.doc_md
    )
    assert "config folder does not exist" in bag.dags[SALES].description


def test_a_last_good_copy_the_schema_now_refuses_is_reported_not_used(config_dir, no_network, monkeypatch):
    import json

    parse(monkeypatch)
    record_path = config_dir.parent / "last-good" / "sales.json"
    record = json.loads(record_path.read_text())
    record["settings"]["retries"] = 99  # as if a new release narrowed the allowed range
    record_path.write_text(json.dumps(record))
    edit(config_dir / "prod.yaml", "      prefix: prod/sales/", "      prefix: /abs/")
    bag = parse(monkeypatch)
    error_dag = bag.dags[SALES]  # no usable copy: like a brand-new broken entry
    assert "config-error" in error_dag.tags
    assert "last good copy" in error_dag.doc_md and "no longer validates" in error_dag.doc_md
    assert "'oss.prefix'" in error_dag.doc_md


def test_a_worker_finds_the_kept_dag_in_its_own_parse(config_dir, no_network, monkeypatch):
    """Same machine as the dag-processor (the folder copy); another machine: see test_last_good_distributed."""
    good = spec_of(parse(monkeypatch))
    (config_dir / "prod.yaml").write_text("databases: [unclosed\n")
    bag = parse(monkeypatch, SALES)
    assert set(bag.dag_ids) == {SALES} and spec_of(bag) == good
    assert set(parse(monkeypatch, f"{HR}__log_shipping").dag_ids) == {f"{HR}__log_shipping"}
    assert set(parse(monkeypatch, PROD_ERRORS).dag_ids) == {PROD_ERRORS}


# ---- duplicates ---------------------------------------------------------------------------------


def test_duplicate_entry_keeps_the_first_valid_dag_and_errors_in_the_files_dag(
    config_dir, no_network, monkeypatch
):
    before = parse(monkeypatch)
    shutil.copy(EXAMPLE, config_dir / "team-b.yaml")
    edit(config_dir / "team-b.yaml", "  sales:", "  SALES:")
    edit(config_dir / "team-b.yaml", "      database: Sales", "      database: Other")
    bag = parse(monkeypatch)
    assert spec_of(bag) == spec_of(before) and "mssql_to_rds__SALES" not in bag.dag_ids
    error_dag = bag.dags["mssql_to_rds_config_error__team-b"]
    assert error_dag.doc_md.count("already defined") == 2  # SALES and hr-payroll
    assert "team-b.yaml: entry 'SALES': entry name is already defined as 'sales' in" in error_dag.doc_md
    assert bag.dags[SALES].description.startswith("Config ")  # not replaced, not marked


def test_a_valid_duplicate_in_a_later_file_replaces_an_invalid_first(config_dir, no_network, monkeypatch):
    (config_dir / "a.yaml").write_text("databases:" + NEW_ENTRY.format(name="inventory", bucket="Bad_Bucket"))
    edit(
        config_dir / "prod.yaml",
        "databases:\n",
        "databases:" + NEW_ENTRY.format(name="inventory", bucket="b-1b"),
    )
    bag = parse(monkeypatch)
    assert spec_of(bag, "mssql_to_rds__inventory").oss.bucket == "b-1b"
    doc = bag.dags["mssql_to_rds_config_error__a"].doc_md
    assert "'oss.bucket'" in doc and "which is the definition in use" in doc


def test_files_whose_names_normalise_alike_get_separate_error_dags(config_dir, no_network, monkeypatch):
    (config_dir / "team db.yaml").write_text("databases: [unclosed\n")
    (config_dir / "team_db.yaml").write_text("defaults: 3\ndatabases: {x: {}}\n")
    bag = parse(monkeypatch)
    error_ids = sorted(d for d in bag.dag_ids if d.startswith("mssql_to_rds_config_error__team"))
    assert error_ids[0] == "mssql_to_rds_config_error__team_db"
    assert re.fullmatch(r"mssql_to_rds_config_error__team_db__[0-9a-f]{8}", error_ids[1])
    assert "team db.yaml: malformed" in bag.dags[error_ids[0]].doc_md
    assert "team_db.yaml: field 'defaults'" in bag.dags[error_ids[1]].doc_md


# ---- errors appear only in their error DAG ------------------------------------------------------


def test_config_errors_are_not_logged_when_parsing(config_dir, no_network, monkeypatch, caplog, capfd):
    with (config_dir / "prod.yaml").open("a") as out:
        out.write(NEW_ENTRY.format(name="inventory", bucket="Bad_Bucket"))
    (config_dir / "garbled.yaml").write_text("databases: [unclosed\n")
    caplog.set_level(logging.DEBUG)
    worker = parse(monkeypatch, SALES)  # what a healthy task's log gets
    full = parse(monkeypatch)
    assert set(worker.dag_ids) == {SALES} and "mssql_to_rds__inventory" in full.dag_ids
    out, err = capfd.readouterr()
    for text in (caplog.text, out, err):
        for fragment in ("Bad_Bucket", "malformed", "garbled", "oss.bucket"):
            assert fragment not in text
    # ...but in the error DAG's task, which fails with them (its log shows the exception).
    task = full.dags["mssql_to_rds__inventory"].get_task("config_error")
    with pytest.raises(Exception, match="Bad_Bucket"):
        task.python_callable(*task.op_args)


# ---- settings are visible per version -----------------------------------------------------------


def test_settings_are_in_the_dag_and_a_change_is_a_new_version(config_dir, no_network, monkeypatch):
    bag = parse(monkeypatch)
    dag = bag.dags[SALES]
    spec = spec_of(bag)
    assert dag.description == f"Config {spec.config_hash} from prod.yaml"
    assert f"config:{spec.config_hash}" in dag.tags and "config-error" not in dag.tags
    assert '"bucket": "acme-sqlserver-migration"' in dag.doc_md and '"prefix": "prod/sales/"' in dag.doc_md
    hashes = {dag_id: dag_hash(d) for dag_id, d in bag.dags.items()}
    # Same files: same serialized hash, so no new version.
    assert {dag_id: dag_hash(d) for dag_id, d in parse(monkeypatch).dags.items()} == hashes
    edit(config_dir / "prod.yaml", "    cutover_threshold_mb: 200", "    cutover_threshold_mb: 150")
    changed = parse(monkeypatch)
    new = {dag_id: dag_hash(d) for dag_id, d in changed.dags.items()}
    assert new[SALES] == hashes[SALES] and new[f"{SALES}__log_shipping"] == hashes[f"{SALES}__log_shipping"]
    assert new[HR] != hashes[HR] and new[f"{HR}__log_shipping"] != hashes[f"{HR}__log_shipping"]
    assert f"config:{spec_of(changed, HR).config_hash}" in changed.dags[HR].tags
    assert f"config:{spec_of(bag, HR).config_hash}" not in changed.dags[HR].tags


def test_only_the_dag_processors_parse_writes_last_good_copies(config_dir, no_network, monkeypatch):
    (config_dir / "broken.yaml").write_text("databases: [unclosed\n")
    store = config_dir.parent / "last-good"
    # A worker running a healthy task, then the error DAG's task (a full load of the folder).
    assert set(parse(monkeypatch, SALES).dag_ids) == {SALES}
    assert set(parse(monkeypatch, "mssql_to_rds_config_error__broken").dag_ids) == {
        "mssql_to_rds_config_error__broken"
    }
    assert not store.exists()
    parse(monkeypatch)
    assert sorted(p.name for p in store.iterdir()) == ["hr-payroll.json", "sales.json"]


def test_an_unwritable_store_is_one_warning_and_the_dags_still_load(
    config_dir, no_network, monkeypatch, caplog
):
    blocker = config_dir.parent / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("MSSQL_RDS_LAST_GOOD_DIR", str(blocker))
    caplog.set_level(logging.WARNING)
    bag = parse(monkeypatch)
    assert {SALES, HR} <= set(bag.dag_ids)
    warnings = [r.getMessage() for r in caplog.records if "last good" in r.getMessage()]
    assert len(warnings) == 1 and "2 problem(s) keeping last good configs" in warnings[0]
