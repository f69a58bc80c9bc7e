"""Migration configuration: ``include/migrations/*.yaml`` -> validated :class:`MigrationSpec` objects.

A file has a ``defaults:`` mapping and a ``databases:`` mapping of entry name -> settings. Entry
values override defaults; nested sections are merged key by key. One bad entry does not stop the
others: :func:`load_config` returns the valid migrations *and* one :class:`ConfigError` per problem,
each naming the file, the entry and the field.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import re
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rds_migration.naming import validate_bucket_name, validate_key_prefix

ENTRY_NAME = re.compile(r"[A-Za-z0-9_.-]{1,200}")
#: The log-shipping DAG's dag_id is the migration DAG's plus this: an entry name ending with it would
#: give its migration DAG the dag_id of another entry's log-shipping DAG.
RESERVED_SUFFIX = "__log_shipping"
_REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+)+")
_INSTANCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
_CRON_FIELD = re.compile(r"[0-9A-Za-z*,/?#LW-]+")
SCHEDULE_PRESETS = (
    "@once",
    "@continuous",
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "@quarterly",
    "@yearly",
)


def entry_name_ok(name: str) -> bool:
    """True if ``name`` can be an entry name (it becomes part of dag_ids, pool names, keys)."""
    return bool(ENTRY_NAME.fullmatch(name)) and not name.endswith(RESERVED_SUFFIX)


def _bad_entry_name(name: str) -> str:
    if ENTRY_NAME.fullmatch(name):
        return (
            f"entry name {name!r} must not end with {RESERVED_SUFFIX!r} (reserved for log-shipping dag_ids)"
        )
    return (
        f"entry name {name!r} cannot be used in an Airflow dag_id: use only letters, digits, "
        "'_', '-' and '.' (at most 200 characters)"
    )


class _Section(BaseModel):
    """Base of every config section: immutable, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSettings(_Section):
    """The self-managed SQL Server database to migrate."""

    mssql_conn_id: str = Field(
        min_length=1, description="Airflow connection id (mssql) of the source server."
    )
    database: str = Field(
        min_length=1,
        max_length=128,
        description="Source database name, exactly as in sys.databases (any characters).",
    )

    max_concurrent_backups: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Backups this package runs at once on the source server, all its databases together "
        "(give every entry of one server the same value). Each backup holds a slot: an application lock in "
        "the server's master, owned by the backup's session.",
    )

    @field_validator("database")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("database name contains a NUL character")
        return value


class TargetSettings(_Section):
    """The ApsaraDB RDS for SQL Server instance that receives the database."""

    rds_conn_id: str = Field(
        min_length=1, description="Airflow connection id holding the RDS OpenAPI credentials."
    )
    instance_id: str = Field(description="RDS instance id (DBInstanceId), e.g. rm-bp1xxxxxxxx.")
    region: str = Field(description="Region id of the instance, e.g. cn-hangzhou.")
    database: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Database name on RDS; defaults to source.database.",
    )
    mssql_conn_id: str = Field(
        min_length=1,
        description="Airflow connection (mssql) to the RDS instance over TDS, with an account created in the "
        "RDS console: the cutover validates the data through it and then lets applications in "
        "(READ_WRITE, MULTI_USER).",
    )

    @field_validator("instance_id")
    @classmethod
    def _instance_id(cls, value: str) -> str:
        if not _INSTANCE_ID.fullmatch(value):
            raise ValueError(
                f"{value!r} is not an RDS instance id (letters, digits, '-'; e.g. rm-bp1xxxxxxxx)"
            )
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION.fullmatch(value):
            raise ValueError(f"{value!r} is not a region id (lowercase, e.g. cn-hangzhou, ap-southeast-1)")
        return value


class OssSettings(_Section):
    """The OSS bucket used to stage backup files (Standard class, no encryption, same region)."""

    oss_conn_id: str = Field(min_length=1, description="Airflow connection id holding the OSS credentials.")
    bucket: str = Field(description="Bucket name (3-63 chars: lowercase letters, digits, '-').")
    prefix: str | None = Field(
        default=None,
        description="Key prefix for this database's files; defaults to 'mssql-migration/<entry>/'.",
    )
    endpoint: str | None = Field(
        default=None,
        description="Endpoint used in OssObjectPositions (no scheme); default oss-<region>.aliyuncs.com.",
    )

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        return validate_bucket_name(value)

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        return None if value is None else validate_key_prefix(value)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and ("://" in value or ":" in value or "/" in value):
            raise ValueError(f"{value!r} must be a bare host name such as oss-cn-hangzhou.aliyuncs.com")
        return value


def _absolute_posix(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"{value!r} must be an absolute POSIX path (starting with '/') on the worker")
    return value


class AdoptFolder(_Section):
    """Another backup job's folder: its backups of this database may join the migration's chain."""

    server_path: str = Field(
        min_length=1, description=r"The folder as msdb records it, e.g. D:\Backups\Nightly."
    )
    worker_path: str = Field(min_length=1, description="The same folder as the Airflow worker sees it.")

    @field_validator("worker_path")
    @classmethod
    def _posix_absolute(cls, value: str) -> str:
        return _absolute_posix(value)


class BackupFolderSettings(_Section):
    """Where backups are written: the same folder seen from the SQL Server host and from the worker."""

    server_path: str = Field(
        min_length=1,
        description=r"Folder as the SQL Server host sees it, e.g. D:\Backups\Sales or /var/opt/mssql/bk.",
    )
    worker_path: str = Field(
        min_length=1, description="The same folder as the Airflow worker sees it (absolute POSIX)."
    )
    adopt_from: list[AdoptFolder] = Field(
        default_factory=list,
        description="Folders of other backup jobs whose log backups of this database join the chain, in LSN "
        "order (uploaded from their worker_path): a job that cannot be stopped no longer breaks the migration.",
    )

    @field_validator("worker_path")
    @classmethod
    def _posix_absolute(cls, value: str) -> str:
        return _absolute_posix(value)


class LogShippingSettings(_Section):
    """How often log backups are shipped while the target waits in RESTORING."""

    schedule: str | None = Field(
        default=None,
        description="Schedule of the log-shipping DAG: cron or preset (@hourly); null disables it.",
    )
    interval_minutes: int = Field(
        default=15, gt=0, le=1440, description="Minutes between log backups in the migration DAG's loop."
    )

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is None or value in SCHEDULE_PRESETS:
            return value
        fields = value.split()
        if len(fields) not in (5, 6) or not all(_CRON_FIELD.fullmatch(f) for f in fields):
            raise ValueError(
                f"{value!r} is neither a cron expression (5 fields, e.g. '*/15 * * * *') nor one of "
                f"{', '.join(SCHEDULE_PRESETS)}"
            )
        return value


class ImportQuotaSettings(_Section):
    """RDS's import quotas (real-world.md R2) and the imports kept for the cutover."""

    per_database: int = Field(default=20, gt=1, description="Imports RDS accepts per database per day.")
    per_instance: int = Field(default=500, gt=1, description="Imports RDS accepts per instance per day.")
    cutover_reserve: int = Field(
        default=2, ge=1, description="Imports log shipping never spends: the tail-log import and one retry."
    )
    window_hours: float = Field(
        default=24, gt=0, description="The span the limits count over (a day; change only if Alibaba does)."
    )

    @model_validator(mode="after")
    def _reserve_below_limits(self) -> ImportQuotaSettings:
        if self.cutover_reserve >= min(self.per_database, self.per_instance):
            raise ValueError(
                f"cutover_reserve ({self.cutover_reserve}) must be below per_database ({self.per_database}) "
                f"and per_instance ({self.per_instance}): log shipping would have no import left"
            )
        return self


class NotifierSettings(_Section):
    """One Airflow notifier (any ``BaseNotifier`` subclass, e.g. a provider's Slack or SMTP notifier)."""

    # ``class`` is a Python keyword: the field is ``class_``, read and written as ``class``.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True)

    class_: str = Field(
        alias="class",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$",
        description="Dotted path of the notifier class, e.g. airflow.providers.slack.notifications.slack.SlackNotifier.",
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Arguments of the notifier class.")


class MigrationSpec(_Section):
    """One database migration, fully resolved (defaults merged, derived values filled in)."""

    name: str = Field(description="Entry name (key under databases:); used in dag_ids. Set by the loader.")
    source: SourceSettings = Field(description="Source SQL Server database.")
    target: TargetSettings = Field(description="Target RDS instance.")
    oss: OssSettings = Field(description="OSS staging bucket.")
    backup_folder: BackupFolderSettings = Field(description="Backup folder (server and worker views).")
    log_shipping: LogShippingSettings = Field(
        default_factory=LogShippingSettings, description="Log shipping."
    )
    cutover_threshold_mb: float = Field(
        default=500, gt=0, description="Cut over once the last log backup is smaller than this (MB)."
    )
    check_db_mode: Literal["AsyncExecuteDBCheck", "SyncExecuteDBCheck"] = Field(
        default="AsyncExecuteDBCheck", description="CheckDBMode of CreateOnlineDatabaseTask."
    )
    compression: Literal["auto", "on", "off"] = Field(
        default="auto", description="Backup compression: auto decides from the source edition."
    )
    approval_timeout_hours: float = Field(
        default=24,
        gt=0,
        description="How long the cutover approval waits; without an answer the task fails (and notifies): "
        "nothing on the source changes.",
    )
    approvers: list[str] = Field(
        default_factory=list,
        description="Airflow user ids allowed to approve the cutover (assigned_users); empty: any user with "
        "access to the DAG.",
    )
    max_freeze_minutes: float = Field(
        default=30,
        gt=0,
        le=24 * 60,
        description="If the open has not been requested this long after the source was frozen, the cutover "
        "rolls back by itself (the source becomes writable again, nothing is lost).",
    )
    open_timeout_minutes: float = Field(
        default=60,
        gt=0,
        description="How long the open on RDS may take (SyncExecuteDBCheck runs DBCC CHECKDB first: give it time).",
    )
    validation: Literal["counts", "deep"] = Field(
        default="counts",
        description="counts: prove completeness by LSN and compare row counts from metadata (O(tables), seconds). "
        "deep: also compare every row's content on both sides (O(data): the approval shows its cost).",
    )
    import_quota: ImportQuotaSettings = Field(
        default_factory=ImportQuotaSettings,
        description="RDS import quotas the log-shipping cadence is planned against.",
    )
    notify: list[NotifierSettings] = Field(
        default_factory=list,
        description="Airflow notifiers told when the approval is needed, when a task fails and when the "
        "cutover rolls back; a log-only notifier is always there.",
    )
    deferrable: bool = Field(
        default=True,
        description="Wait for RDS in the triggerer (no worker slot held); false for deployments without one.",
    )
    rds_poll_seconds: float = Field(
        default=15,
        gt=0,
        le=600,
        description="Seconds between two RDS status polls while waiting for a restore (the cutover polls every second).",
    )
    pool: str | None = Field(
        default=None,
        description="Airflow pool serialising work on this database; default mssql_migration_<entry>.",
    )
    queue: str | None = Field(default=None, description="Worker queue for tasks that read backup files.")
    airflow_api_conn_id: str = Field(
        default="airflow_api",
        min_length=1,
        description="http connection to the Airflow API (an account that may read pools): preflight checks the "
        "pool through it; without it the check only warns.",
    )
    tags: list[str] = Field(default_factory=list, description="Extra DAG tags.")
    owner: str = Field(default="airflow", min_length=1, description="DAG owner.")
    retries: int = Field(default=2, ge=0, le=20, description="Task retries.")
    retry_delay_minutes: float = Field(
        default=1,
        ge=0.05,
        le=60,
        description="Wait between a task's tries (the cutover's own, inside the freeze window, stays 10 s).",
    )

    @field_validator("compression", mode="before")
    @classmethod
    def _yaml_booleans(cls, value: Any) -> Any:
        # YAML 1.1 reads bare on/off as booleans.
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _fill_derived(self) -> MigrationSpec:
        if not entry_name_ok(self.name):
            raise ValueError(_bad_entry_name(self.name))
        set_ = object.__setattr__  # frozen model: fill derived defaults once, here
        if self.target.database is None:
            set_(self, "target", self.target.model_copy(update={"database": self.source.database}))
        oss_update: dict[str, str] = {}
        if self.oss.endpoint is None:
            oss_update["endpoint"] = f"oss-{self.target.region}.aliyuncs.com"
        if self.oss.prefix is None:
            oss_update["prefix"] = f"mssql-migration/{self.name}/"
        if oss_update:
            set_(self, "oss", self.oss.model_copy(update=oss_update))
        if self.pool is None:
            set_(self, "pool", f"mssql_migration_{self.name}")
        return self

    @property
    def cutover_threshold_bytes(self) -> int:
        return int(self.cutover_threshold_mb * 1024 * 1024)

    def resolved_settings(self) -> dict[str, Any]:
        """Every setting after defaults and derived values, as plain JSON values (connection ids, no secrets)."""
        return self.model_dump(mode="json")

    @functools.cached_property
    def config_hash(self) -> str:
        """Short fingerprint of :meth:`resolved_settings`: changes exactly when a setting the run uses does.

        Cached on the (frozen) spec; pydantic ignores cached properties in ``==`` and ``model_dump``.
        """
        canonical = json.dumps(self.resolved_settings(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def entry_key(name: str) -> str:
    """The form in which two entry names collide: case-insensitive.

    Names that differ only in case make different dag_ids, but their derived names do not stay apart:
    Airflow's ``slot_pool.pool`` and ``variable.key`` columns carry no binary collation (only ids do,
    ``airflow/models/base.py`` ``get_id_collation_args``), so a MySQL metadata DB with its default
    case-insensitive collation refuses ``mssql_migration_Sales`` next to ``mssql_migration_sales``; and
    task log folders (``dag_id=<id>/``) collide on case-insensitive file systems.
    """
    return name.casefold()


@dataclass(frozen=True)
class ConfigError:
    """One configuration problem, naming the file, the entry and the field."""

    file: str
    entry: str | None
    field: str | None
    message: str
    #: Set when this entry is a duplicate: the file whose definition of the name is used (or came first).
    duplicate_of: str | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.entry is not None:
            parts.append(f"entry {self.entry!r}")
        if self.field:
            parts.append(f"field {self.field!r}")
        return ": ".join(parts) + ": " + self.message


@dataclass
class LoadResult:
    """Valid migrations by entry name, and the problems found."""

    migrations: dict[str, MigrationSpec] = field(default_factory=dict)
    errors: list[ConfigError] = field(default_factory=list)
    #: Entry name -> file it came from (used to report duplicates across files).
    sources: dict[str, str] = field(default_factory=dict)
    #: Entries named in a file but not loaded from it (invalid settings or defaults): entry -> file.
    broken: dict[str, str] = field(default_factory=dict)
    #: Files whose entries cannot be listed (unreadable, malformed YAML, no ``databases:`` mapping).
    unreadable: list[str] = field(default_factory=list)
    #: Every (entry, file) read with a usable name, valid or not, in load order.
    defined: list[tuple[str, str]] = field(default_factory=list)


# libyaml's parser when PyYAML has it (about 8x faster on a 200-entry folder); the constructors stay ours.
class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader that refuses duplicate mapping keys (a silent override hides typos)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node)
        if key in mapping:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into ``base``: nested mappings key by key, other values replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _section_model(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the mapping at ``loc`` (used to list allowed keys)."""
    model: type[BaseModel] = MigrationSpec
    for part in loc:
        info = model.model_fields.get(str(part))
        if info is None:
            return None
        candidates = [info.annotation, *typing.get_args(info.annotation)]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model


def _describe(error: Mapping[str, Any]) -> tuple[str, str]:
    """(field path, message) for one pydantic error, in our words."""
    loc = tuple(error["loc"])
    path = ".".join(str(p) for p in loc)
    if error["type"] == "extra_forbidden":
        model = _section_model(loc[:-1])
        allowed = sorted(model.model_fields) if model else []
        if model is MigrationSpec:
            allowed.remove("name")
        hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
        return path, f"unknown key {loc[-1]!r}{did_you_mean}; allowed: {', '.join(allowed)}"
    if error["type"] == "missing":
        return path, "is required"
    if error["type"] == "value_error":
        return path, str(error["ctx"]["error"])
    return path, f"{error['msg']} (got {error.get('input')!r})"


def _entry_errors(file: str, entry: str | None, exc: ValidationError) -> list[ConfigError]:
    return [ConfigError(file, entry, *_describe(err)) for err in exc.errors()]


def _check_defaults(file: str, defaults: Mapping[str, Any]) -> ConfigError | None:
    """Validate the defaults section alone: report problems in keys it sets (missing keys are fine)."""
    try:
        MigrationSpec.model_validate({**defaults, "name": "defaults"})
    except ValidationError as exc:
        problems = [
            _describe(err)
            for err in exc.errors()
            if err["type"] != "missing" and err["loc"] and err["loc"][0] in defaults
        ]
        if problems:
            details = "; ".join(f"{path}: {message}" for path, message in problems)
            return ConfigError(
                file, None, "defaults", f"{details} (fix the defaults section; no entry loaded)"
            )
    return None


def _read_yaml(file: str, path: Path) -> tuple[Any, ConfigError | None]:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader), None  # noqa: S506
    except OSError as exc:
        return None, ConfigError(file, None, None, f"cannot read the file: {exc}")
    except yaml.YAMLError as exc:
        return None, ConfigError(file, None, None, f"malformed YAML: {' '.join(str(exc).split())}")


def _listed_entries(document: Any) -> list[str] | None:
    """Entry names under ``databases:`` of a parsed document, or None when they cannot be listed."""
    databases = document.get("databases") if isinstance(document, Mapping) else None
    if not isinstance(databases, Mapping) or not databases:
        return None
    return [str(name) for name in databases]


def _file_error(result: LoadResult, error: ConfigError, document: Any, only: Collection[str] | None) -> None:
    """Record a problem that stops the whole file: its entries (if they can be listed) are broken."""
    result.errors.append(error)
    names = _listed_entries(document)
    if names is None:
        result.unreadable.append(error.file)
        return
    for name in names:
        if entry_name_ok(name) and (only is None or entry_key(name) in only):
            result.broken.setdefault(name, error.file)
            result.defined.append((name, error.file))


def load_config(path: str | Path, only: Collection[str] | None = None) -> LoadResult:
    """Load one YAML file; valid entries and one error per problem (see module docstring).

    :param only: entry keys (:func:`entry_key`) to validate; other entries are skipped, unreported.
        File-level problems are always reported.
    """
    file = str(path)
    result = LoadResult()
    document, error = _read_yaml(file, Path(path))
    if error is not None:
        _file_error(result, error, None, only)
        return result
    if not isinstance(document, Mapping):
        _file_error(
            result,
            ConfigError(file, None, None, "expected a mapping with 'defaults:' and 'databases:'"),
            document,
            only,
        )
        return result
    unknown = set(document) - {"defaults", "databases"}
    if unknown:
        message = f"unknown top-level key(s) {sorted(map(str, unknown))}; allowed: defaults, databases"
        _file_error(result, ConfigError(file, None, None, message), document, only)
        return result
    defaults = document.get("defaults") or {}
    databases = document.get("databases")
    if not isinstance(defaults, Mapping):
        _file_error(
            result, ConfigError(file, None, "defaults", "must be a mapping of settings"), document, only
        )
        return result
    if not isinstance(databases, Mapping) or not databases:
        message = "must be a non-empty mapping of entry name -> settings"
        _file_error(result, ConfigError(file, None, "databases", message), document, only)
        return result
    wanted = [
        (str(raw_name), settings)
        for raw_name, settings in databases.items()
        if only is None or entry_key(str(raw_name)) in only
    ]
    if not wanted:
        return result
    if "name" in defaults:
        error = ConfigError(file, None, "defaults.name", "is set from each entry key; remove it")
        _file_error(result, error, document, only)
        return result
    error = _check_defaults(file, defaults)
    if error is not None:
        _file_error(result, error, document, only)
        return result
    for name, settings in wanted:
        _load_entry(file, name, settings, defaults, result)
    return result


def _load_entry(file: str, name: str, settings: Any, defaults: Mapping[str, Any], result: LoadResult) -> None:
    name_ok = entry_name_ok(name)
    errors_before = len(result.errors)
    _validate_entry(file, name, name_ok, settings, defaults, result)
    if not name_ok:
        return
    result.defined.append((name, file))
    if len(result.errors) > errors_before:
        result.broken.setdefault(name, file)


def _validate_entry(
    file: str, name: str, name_ok: bool, settings: Any, defaults: Mapping[str, Any], result: LoadResult
) -> None:
    if settings is None:
        settings = {}
    if not isinstance(settings, Mapping):
        result.errors.append(ConfigError(file, name, None, "must be a mapping of settings"))
        return
    if "name" in settings:
        result.errors.append(ConfigError(file, name, "name", "is set from the entry key; remove it"))
        return
    if not name_ok:
        result.errors.append(ConfigError(file, name, None, _bad_entry_name(name)))
    try:
        # A bad name is reported above; validate the settings anyway so every problem shows at once.
        spec = MigrationSpec.model_validate(
            {**deep_merge(defaults, settings), "name": name if name_ok else "_"}
        )
    except ValidationError as exc:
        result.errors.extend(_entry_errors(file, name, exc))
        return
    if not name_ok:
        return
    result.migrations[name] = spec
    result.sources[name] = file


def _duplicate_error(file: str, name: str, first_name: str, first_file: str, *, used: bool) -> ConfigError:
    other = f"{first_name!r} in {first_file}" if first_name != name else first_file
    role = "which is the definition in use" if used else "which came first"
    return ConfigError(
        file,
        name,
        None,
        f"entry name is already defined as {other} ({role}): entry names must be unique across files, "
        "ignoring case (they become dag_ids, pool names and Variable keys); rename or remove one",
        duplicate_of=first_file,
    )


def load_config_dir(folder: str | Path, only: Collection[str] | None = None) -> LoadResult:
    """Load every ``*.yaml`` file of ``folder`` in name order; duplicate entry names are errors.

    Names collide ignoring case (:func:`entry_key`). The first *valid* definition of a name is used,
    whichever file it is in; every other definition is reported as a duplicate naming that file.

    :param only: entry keys to validate (see :func:`load_config`); duplicates among them are found too.
    """
    combined = LoadResult()
    specs: dict[tuple[str, str], MigrationSpec] = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        result = load_config(path, only)
        combined.errors.extend(result.errors)
        combined.unreadable.extend(result.unreadable)
        combined.defined.extend(result.defined)
        specs.update({(name, result.sources[name]): spec for name, spec in result.migrations.items()})
    by_key: dict[str, list[tuple[str, str]]] = {}
    for definition in combined.defined:
        by_key.setdefault(entry_key(definition[0]), []).append(definition)
    for definitions in by_key.values():
        used = next((d for d in definitions if d in specs), None)
        first = used or definitions[0]
        for name, file in definitions:
            if (name, file) != first:
                combined.errors.append(_duplicate_error(file, name, *first, used=used is not None))
        if used is not None:
            combined.migrations[used[0]] = specs[used]
            combined.sources[used[0]] = used[1]
        else:
            combined.broken[first[0]] = first[1]
    return combined
