"""YAML configuration: merging, derived defaults, and errors naming file, entry and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rds_migration.config import ConfigError, MigrationSpec, deep_merge, load_config, load_config_dir

REPO = Path(__file__).resolve().parents[2]

GOOD_DEFAULTS = """
defaults:
  target: {rds_conn_id: rds, instance_id: rm-bp1abc, region: cn-shanghai, mssql_conn_id: rds_tds}
  oss: {oss_conn_id: oss, bucket: my-bucket}
"""
ENTRY = """
  {name}:
    source: {{mssql_conn_id: src, database: "{db}"}}
    backup_folder: {{server_path: 'D:\\Backups', worker_path: /mnt/b}}
"""


def write(tmp_path: Path, text: str, name: str = "prod.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def good_file(tmp_path: Path, *entries: tuple[str, str], extra: str = "", name: str = "prod.yaml") -> Path:
    body = "".join(ENTRY.format(name=n, db=db) for n, db in entries)
    return write(tmp_path, GOOD_DEFAULTS + "databases:" + body + extra, name)


def test_example_config_loads_two_databases():
    result = load_config(REPO / "include" / "migrations" / "examples" / "example.yaml")
    assert result.errors == []
    assert set(result.migrations) == {"sales", "hr-payroll"}
    hr = result.migrations["hr-payroll"]
    assert hr.source.database == "HR Payroll (2019)" and hr.target.database == "HRPayroll"
    assert hr.check_db_mode == "SyncExecuteDBCheck" and hr.log_shipping.interval_minutes == 10


def test_defaults_merge_and_derived_values(tmp_path):
    result = load_config(good_file(tmp_path, ("sales", "Sales ]DB'")))
    assert result.errors == []
    spec = result.migrations["sales"]
    assert spec.target.database == "Sales ]DB'"
    assert spec.oss.endpoint == "oss-cn-shanghai.aliyuncs.com"
    assert spec.oss.prefix == "mssql-migration/sales/"
    assert spec.pool == "mssql_migration_sales"
    assert spec.cutover_threshold_mb == 500 and spec.check_db_mode == "AsyncExecuteDBCheck"
    assert spec.compression == "auto" and spec.approval_timeout_hours == 24
    assert spec.cutover_threshold_bytes == 500 * 1024 * 1024


def test_entry_overrides_nested_keys_only(tmp_path):
    text = GOOD_DEFAULTS + "databases:" + ENTRY.format(name="a", db="A") + "    oss: {bucket: other-bucket}\n"
    spec = load_config(write(tmp_path, text)).migrations["a"]
    assert spec.oss.bucket == "other-bucket" and spec.oss.oss_conn_id == "oss"


def test_yaml_on_off_booleans_are_compression_values(tmp_path):
    text = GOOD_DEFAULTS + "  compression: off\ndatabases:" + ENTRY.format(name="a", db="A")
    assert load_config(write(tmp_path, text)).migrations["a"].compression == "off"


def test_bad_bucket_message_names_file_entry_and_field(tmp_path):
    text = (
        GOOD_DEFAULTS + "databases:" + ENTRY.format(name="sales", db="S") + "    oss: {bucket: My_Bucket}\n"
    )
    path = write(tmp_path, text)
    result = load_config(path)
    assert result.migrations == {}
    assert str(result.errors[0]) == (
        f"{path}: entry 'sales': field 'oss.bucket': 'My_Bucket' is not a valid OSS bucket name "
        "(3-63 chars: lowercase letters, digits, '-', start and end with a letter or digit)"
    )


def test_one_bad_entry_does_not_stop_the_others(tmp_path):
    text = (
        GOOD_DEFAULTS
        + "databases:"
        + ENTRY.format(name="good", db="G")
        + ENTRY.format(name="bad", db="B")
        + "    cutover_threshold_mb: 0\n    check_db_mode: Fast\n"
    )
    result = load_config(write(tmp_path, text))
    assert set(result.migrations) == {"good"}
    fields = {(e.entry, e.field) for e in result.errors}
    assert fields == {("bad", "cutover_threshold_mb"), ("bad", "check_db_mode")}


def test_unknown_keys_are_named_with_suggestion(tmp_path):
    text = (
        GOOD_DEFAULTS + "databases:" + ENTRY.format(name="a", db="A") + "    oss: {bukcet: x}\n    pol: p\n"
    )
    errors = {e.field: e.message for e in load_config(write(tmp_path, text)).errors}
    assert "did you mean 'bucket'" in errors["oss.bukcet"] and "oss_conn_id" in errors["oss.bukcet"]
    assert "did you mean 'pool'" in errors["pol"] and "name" not in errors["pol"].split("allowed: ")[1].split(
        ", "
    )


def test_missing_required_fields(tmp_path):
    text = GOOD_DEFAULTS + "databases:\n  a:\n    source: {mssql_conn_id: src}\n"
    errors = {e.field: e.message for e in load_config(write(tmp_path, text)).errors}
    assert errors["source.database"] == "is required" and "backup_folder" in errors


@pytest.mark.parametrize(
    ("snippet", "field", "fragment"),
    [
        ("    target: {region: CN_Hangzhou}\n", "target.region", "region id"),
        ("    target: {instance_id: 'rm bad'}\n", "target.instance_id", "instance id"),
        ("    oss: {prefix: /abs}\n", "oss.prefix", "must not start"),
        ("    oss: {endpoint: 'https://x'}\n", "oss.endpoint", "bare host"),
        ("    log_shipping: {schedule: every hour}\n", "log_shipping.schedule", "cron"),
        ("    log_shipping: {interval_minutes: 0}\n", "log_shipping.interval_minutes", "greater than 0"),
        ("    approval_timeout_hours: -1\n", "approval_timeout_hours", "greater than 0"),
        ("    compression: maybe\n", "compression", "auto"),
    ],
)
def test_field_validation(tmp_path, snippet, field, fragment):
    text = GOOD_DEFAULTS + "databases:" + ENTRY.format(name="a", db="A") + snippet
    errors = load_config(write(tmp_path, text)).errors
    assert [e.field for e in errors] == [field]
    assert fragment in errors[0].message


def test_worker_path_must_be_absolute_posix(tmp_path):
    text = GOOD_DEFAULTS + "databases:" + ENTRY.format(name="a", db="A").replace("/mnt/b", "'C:\\x'")
    errors = load_config(write(tmp_path, text)).errors
    assert [e.field for e in errors] == ["backup_folder.worker_path"] and "absolute POSIX" in errors[
        0
    ].message


def test_long_database_name_is_refused(tmp_path):
    errors = load_config(good_file(tmp_path, ("a", "x" * 129))).errors
    assert errors[0].field == "source.database" and "128" in errors[0].message


def test_entry_name_must_fit_a_dag_id(tmp_path):
    errors = load_config(good_file(tmp_path, ("sales db", "S"))).errors
    assert len(errors) == 1 and "dag_id" in str(errors[0]) and "'sales db'" in str(errors[0])


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("defaults: [1\n", "malformed YAML"),
        ("- a\n- b\n", "expected a mapping"),
        ("defaults: {}\n", "databases"),
        ("defaults: {}\ndatabases: {}\nextra: 1\n", "unknown top-level"),
        ("defaults: {}\ndatabases: {a: {}, a: {}}\n", "duplicate key"),
        ("defaults: 3\ndatabases: {a: {}}\n", "must be a mapping"),
    ],
)
def test_file_level_errors(tmp_path, text, fragment):
    result = load_config(write(tmp_path, text))
    assert result.migrations == {} and len(result.errors) == 1
    assert result.errors[0].entry is None and fragment in str(result.errors[0])


def test_bad_defaults_is_one_error_for_the_file(tmp_path):
    text = (
        GOOD_DEFAULTS.replace("my-bucket", "Bad_Bucket")
        + "  tpyo: 1\ndatabases:"
        + ENTRY.format(name="a", db="A")
    )
    text += ENTRY.format(name="b", db="B")
    result = load_config(write(tmp_path, text))
    assert result.migrations == {} and len(result.errors) == 1
    error = result.errors[0]
    assert error.entry is None and error.field == "defaults"
    assert "oss.bucket" in error.message and "tpyo" in error.message


def test_missing_file_is_an_error(tmp_path):
    result = load_config(tmp_path / "nope.yaml")
    assert "cannot read" in str(result.errors[0])


def test_load_dir_reports_duplicates_naming_both_files(tmp_path):
    first = good_file(tmp_path, ("sales", "S"), name="a.yaml")
    second = good_file(tmp_path, ("sales", "S2"), ("hr", "HR"), name="b.yaml")
    (tmp_path / "notes.txt").write_text("ignored")
    result = load_config_dir(tmp_path)
    assert set(result.migrations) == {"sales", "hr"}
    assert result.migrations["sales"].source.database == "S"
    [error] = result.errors
    assert error.file == str(second) and str(first) in error.message and error.entry == "sales"


def test_config_error_str_without_entry():
    assert str(ConfigError("f.yaml", None, None, "bad")) == "f.yaml: bad"


def test_deep_merge_replaces_lists_and_merges_mappings():
    merged = deep_merge({"a": {"x": 1, "y": 2}, "t": [1]}, {"a": {"y": 3}, "t": [2]})
    assert merged == {"a": {"x": 1, "y": 3}, "t": [2]}


def test_every_field_has_a_description():
    def walk(model):
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} has no description"
            nested = getattr(info.annotation, "model_fields", None)
            if nested:
                walk(info.annotation)

    walk(MigrationSpec)


def test_duplicates_compare_ignoring_case_and_name_the_file_in_use(tmp_path):
    good_file(tmp_path, ("Sales", "S"), name="a.yaml")
    second = good_file(tmp_path, ("sales", "S2"), name="b.yaml")
    result = load_config_dir(tmp_path)
    assert set(result.migrations) == {"Sales"} and result.sources["Sales"] == str(tmp_path / "a.yaml")
    [error] = result.errors
    assert (error.file, error.entry, error.duplicate_of) == (str(second), "sales", str(tmp_path / "a.yaml"))
    assert "'Sales' in " in error.message and "ignoring case" in error.message


def test_first_valid_definition_wins_even_in_a_later_file(tmp_path):
    first = write(
        tmp_path, GOOD_DEFAULTS + "databases:" + ENTRY.format(name="sales", db="S") + "    pol: x\n", "a.yaml"
    )
    second = good_file(tmp_path, ("sales", "S2"), name="b.yaml")
    result = load_config_dir(tmp_path)
    assert result.migrations["sales"].source.database == "S2" and result.sources["sales"] == str(second)
    assert result.broken == {}
    by_kind = {(e.file, e.field, e.duplicate_of) for e in result.errors}
    assert by_kind == {(str(first), "pol", None), (str(first), None, str(second))}


def test_broken_entries_and_unreadable_files_are_listed(tmp_path):
    good_file(tmp_path, ("ok", "O"), name="a.yaml")
    bad_entry = write(
        tmp_path,
        GOOD_DEFAULTS + "databases:" + ENTRY.format(name="fine", db="F") + ENTRY.format(name="bad", db="B")
        + "    retries: 99\n",
        "b.yaml",
    )  # fmt: skip
    bad_defaults = write(
        tmp_path, GOOD_DEFAULTS + "  tpyo: 1\ndatabases:" + ENTRY.format(name="d1", db="D"), "c.yaml"
    )
    garbled = write(tmp_path, "databases: [unclosed\n", "d.yaml")
    write(tmp_path, "defaults: {}\ndatabases: {'sales db': {}}\nextra: 1\n", "e.yaml")
    result = load_config_dir(tmp_path)
    assert set(result.migrations) == {"ok", "fine"}
    # An entry with an unusable name never had a DAG: it is not "broken", only reported.
    assert result.broken == {"bad": str(bad_entry), "d1": str(bad_defaults)}
    assert result.unreadable == [str(garbled)]


def test_only_validates_the_named_entries_but_reports_file_problems(tmp_path):
    good_file(tmp_path, ("sales", "S"), ("hr", "H"), name="a.yaml")
    write(tmp_path, GOOD_DEFAULTS + "databases:" + ENTRY.format(name="x", db="X") + "    pol: 1\n", "b.yaml")
    write(tmp_path, "databases: [unclosed\n", "c.yaml")
    good_file(tmp_path, ("SALES", "S3"), name="d.yaml")
    result = load_config_dir(tmp_path, only={"sales"})
    assert set(result.migrations) == {"sales"}
    assert sorted((Path(e.file).name, e.entry) for e in result.errors) == [
        ("c.yaml", None),
        ("d.yaml", "SALES"),
    ]


def test_config_hash_follows_resolved_settings(tmp_path):
    spec = load_config(good_file(tmp_path, ("sales", "S"))).migrations["sales"]
    again = load_config(good_file(tmp_path, ("sales", "S"), name="copy.yaml")).migrations["sales"]
    assert spec.config_hash == again.config_hash and len(spec.config_hash) == 12
    changed = load_config(good_file(tmp_path, ("sales", "S"), extra="    retries: 5\n", name="c.yaml"))
    assert changed.migrations["sales"].config_hash != spec.config_hash
    # The resolved settings rebuild the same spec (derived values included).
    settings = spec.resolved_settings()
    assert (
        settings["oss"]["prefix"] == "mssql-migration/sales/" and settings["pool"] == "mssql_migration_sales"
    )
    rebuilt = MigrationSpec.model_validate(settings)
    assert rebuilt == spec and rebuilt.config_hash == spec.config_hash


def test_entry_name_must_not_end_with_the_log_shipping_suffix(tmp_path):
    # "a__log_shipping"'s migration DAG would take the dag_id of entry "a"'s log-shipping DAG.
    errors = load_config(good_file(tmp_path, ("a__log_shipping", "S"))).errors
    assert len(errors) == 1 and "must not end with '__log_shipping'" in str(errors[0])
