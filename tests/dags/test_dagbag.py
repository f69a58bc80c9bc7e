"""The DAG folder loads cleanly, builds the expected DAGs, and touches nothing at parse time."""

from __future__ import annotations

from pathlib import Path

from airflow.dag_processing.dagbag import DagBag

REPO = Path(__file__).resolve().parents[2]


def load(config_dir) -> DagBag:
    return DagBag(dag_folder=str(REPO / "dags"), safe_mode=False)


def test_no_import_errors_and_expected_dags(config_dir, no_network):
    bag = load(config_dir)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {
        "mssql_to_rds__sales",
        "mssql_to_rds__sales__log_shipping",
        "mssql_to_rds__hr-payroll",
        "mssql_to_rds__hr-payroll__log_shipping",
    }


def test_every_dag_has_tags_owner_and_retries(config_dir, no_network):
    bag = load(config_dir)
    for dag in bag.dags.values():
        assert dag.tags, dag.dag_id
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", (dag.dag_id, task.task_id)
            assert task.retries >= 1, (dag.dag_id, task.task_id)


def test_retry_delay_comes_from_the_config_but_the_cutover_keeps_its_own(config_dir, no_network):
    from datetime import timedelta

    dag = load(config_dir).dags["mssql_to_rds__sales"]
    assert dag.get_task("ship_logs").retry_delay == timedelta(minutes=2)  # example.yaml's defaults
    assert dag.get_task("cutover").retry_delay == timedelta(seconds=10)  # inside the freeze window


def test_migration_dag_shape(config_dir, no_network):
    dag = load(config_dir).dags["mssql_to_rds__sales"]
    assert dag.max_active_runs == 1
    task = dag.get_task
    assert task("choose_start").downstream_task_ids == {"full_backup", "resume"}
    assert task("ship_logs").upstream_task_ids == {"wait_full_restored", "resume"}
    assert task("approve_cutover").downstream_task_ids == {"catch_up"}
    assert task("catch_up").downstream_task_ids == {"cutover"}
    assert task("cutover").downstream_task_ids == {"validate", "rollback"}
    assert task("validate").downstream_task_ids == {"release_target"}
    assert task("rollback").trigger_rule == "one_failed"
    assert task("rollback").upstream_task_ids == {"cutover"}
    # The downtime window is one task, bounded: the freeze by max_freeze_minutes (checked in the task),
    # the whole by its timeout (max_freeze_minutes + open_timeout_minutes + 1 as a backstop).
    assert task("cutover").execution_timeout.total_seconds() == (30 + 60 + 1) * 60
    for task_id in ("validate", "release_target", "rollback"):
        assert task(task_id).execution_timeout is not None, task_id

    assert task("report").trigger_rule == "all_done"
    # The log chain is serialised by the entry's pool; backup-file readers go to the entry's queue.
    assert task("ship_logs").pool == "mssql_migration_sales"
    assert task("upload_full").queue == "backup_host_sql_prod_01"


def test_template_fields_are_attributes(config_dir, no_network):
    for dag in load(config_dir).dags.values():
        for task in dag.tasks:
            for name in task.template_fields:
                assert hasattr(task, name), (dag.dag_id, task.task_id, name)


def test_broken_entry_is_isolated_and_named(config_dir, no_network):
    (config_dir / "broken.yaml").write_text(
        "databases:\n"
        "  good:\n"
        "    source: {mssql_conn_id: a, database: Good}\n"
        "    target: {rds_conn_id: r, instance_id: rm-1, region: cn-hangzhou, mssql_conn_id: t}\n"
        "    oss: {oss_conn_id: o, bucket: good-bucket}\n"
        "    backup_folder: {server_path: 'D:\\B', worker_path: /mnt/b}\n"
        "    owner: dba\n"
        "  bad:\n"
        "    source: {mssql_conn_id: a, database: Bad}\n"
        "    target: {rds_conn_id: r, instance_id: rm-1, region: cn-hangzhou, mssql_conn_id: t}\n"
        "    oss: {oss_conn_id: o, bucket: Bad_Bucket}\n"
        "    backup_folder: {server_path: 'D:\\B', worker_path: /mnt/b}\n"
    )
    bag = load(config_dir)
    assert bag.import_errors == {}
    assert "mssql_to_rds__good" in bag.dag_ids
    assert "mssql_to_rds__sales" in bag.dag_ids
    error_dag = bag.dags["mssql_to_rds__bad"]
    assert "config-error" in error_dag.tags
    assert "broken.yaml" in error_dag.doc_md and "oss.bucket" in error_dag.doc_md


def test_malformed_yaml_names_the_file(config_dir, no_network):
    (config_dir / "garbled.yaml").write_text("databases: [unclosed\n")
    bag = load(config_dir)
    assert bag.import_errors == {}
    error_dags = [d for d in bag.dags.values() if "config-error" in d.tags]
    assert any("garbled.yaml" in d.doc_md for d in error_dags)


def test_dags_serialize_for_the_scheduler(config_dir, no_network):
    """What the dag-processor stores and the scheduler and UI read back, extra links included."""
    from airflow.serialization.serialized_objects import DagSerialization

    for dag in load(config_dir).dags.values():
        restored = DagSerialization.from_dict(DagSerialization.to_dict(dag))
        assert set(restored.task_ids) == set(dag.task_ids)
        ship = restored.task_dict.get("ship_logs")
        if ship is not None:
            assert set(ship.extra_links) >= {"RDS migration records", "OSS backup files"}
