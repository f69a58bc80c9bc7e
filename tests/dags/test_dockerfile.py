"""The Dockerfile against the pins, checked statically (no Docker engine runs where the suite runs).

The image installs exactly ``requirements.in`` under the official image's own constraints
(``${HOME}/constraints.txt``), builds crcmod's C extension in a builder stage, keeps no compiler in the
final stage and ends with ``pip check``; its base image is the Airflow and Python the pins name; and
every direct requirement agrees with the lock the tests run on (``requirements.txt``).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
CONSTRAINT = '--constraint "${HOME}/constraints.txt"'


def logical_lines(text: str) -> list[str]:
    """Dockerfile instructions: comments dropped, backslash continuations joined."""
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(" ".join((current + stripped).split()))
        current = ""
    return lines


def stages(text: str) -> list[list[str]]:
    found: list[list[str]] = []
    for line in logical_lines(text):
        if line.upper().startswith("FROM "):
            found.append([])
        if found:
            found[-1].append(line)
    return found


def requirements(path: Path) -> dict[str, Requirement]:
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            found[requirement.name.lower().replace("_", "-")] = requirement
    return found


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (REPO / "Dockerfile").read_text()


def pip_lines(stage: list[str]) -> list[str]:
    return [line for line in stage if re.search(r"\bpip (install|wheel)\b", line)]


def test_base_image_is_the_pinned_airflow_and_python(dockerfile):
    airflow = requirements(REPO / "requirements.in")["apache-airflow"]
    (version,) = [s.version for s in airflow.specifier if s.operator == "=="]
    python = re.search(
        r"<(\d+)\.(\d+)", tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    )
    python_version = f"{python.group(1)}.{int(python.group(2)) - 1}"
    (arg,) = [line for line in logical_lines(dockerfile) if line.startswith("ARG AIRFLOW_IMAGE=")]
    assert arg == f"ARG AIRFLOW_IMAGE=apache/airflow:{version}-python{python_version}"
    assert [line.split()[1] for line in logical_lines(dockerfile) if line.startswith("FROM ")] == [
        "${AIRFLOW_IMAGE}",
        "${AIRFLOW_IMAGE}",
    ]


def test_every_install_is_exactly_requirements_in_under_the_image_constraints(dockerfile):
    lines = [line for stage in stages(dockerfile) for line in pip_lines(stage)]
    assert len(lines) == 2  # pip wheel in the builder, pip install in the image
    for line in lines:
        assert CONSTRAINT in line, line
        assert re.findall(r"-r (\S+)", line) in (
            ["/tmp/requirements.in"],
            ["/opt/airflow/requirements.in"],
        ), line
        assert "requirements.txt" not in line  # the full lock would move the image's own providers
        assert not re.search(r"\bpip install\b.*\s[A-Za-z][\w.-]*[=<>]=", line), (
            "no package outside requirements.in"
        )
    copies = [
        line for line in logical_lines(dockerfile) if line.startswith("COPY") and "requirements" in line
    ]
    assert {line.split()[-2] for line in copies} == {"requirements.in"}


def test_the_final_stage_installs_only_prebuilt_wheels_and_checks(dockerfile):
    builder, final = stages(dockerfile)
    assert builder[0].endswith(" AS wheels")
    assert any("build-essential" in line for line in builder)  # crcmod's C extension is compiled here
    assert not any(re.search(r"apt-get|build-essential|gcc", line) for line in final)
    (install,) = pip_lines(final)
    assert "--no-index" in install and "--only-binary=:all:" in install
    assert "--mount=type=bind,from=wheels" in install  # the wheels never become a layer
    after = install.split(CONSTRAINT, 1)[1]
    assert "&& pip check" in after
    assert "_usingExtension" in after  # crcmod's C extension, not the slow pure-Python fallback
    assert [line.split()[-1] for line in final if line.startswith("COPY --chown")][-3:] == [
        "/opt/airflow/dags/",
        "/opt/airflow/plugins/",
        "/opt/airflow/include/",
    ]


def test_direct_requirements_agree_with_the_lock():
    direct = requirements(REPO / "requirements.in")
    locked = requirements(REPO / "requirements.txt")
    for name, requirement in direct.items():
        assert name in locked, f"{name} is in requirements.in but not in requirements.txt: run make pins"
        (pin,) = [s.version for s in locked[name].specifier if s.operator == "=="]
        assert requirement.specifier.contains(pin, prereleases=True), f"{name}: {pin} outside {requirement}"
    assert {"apache-airflow-providers-celery", "apache-airflow-providers-postgres", "celery"} <= set(direct)


def test_dockerignore_sends_only_what_the_image_copies():
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert {"tests", "sandbox", "tools", "bench", ".venv", ".git", "deploy", "demo-output"} <= ignored
    assert not ignored & {"dags", "plugins", "include", "requirements.in"}


class ComposeLoader(yaml.SafeLoader):
    """Compose's ``!override`` tag (replace the base file's list instead of merging into it)."""


ComposeLoader.add_constructor("!override", lambda loader, node: loader.construct_sequence(node))


def test_compose_overlay_runs_a_backup_host_worker_on_its_queue():
    overlay = yaml.load((REPO / "deploy" / "docker-compose.override.yaml").read_text(), Loader=ComposeLoader)
    services = overlay["services"]
    worker = services["airflow-worker-backup-host"]
    assert worker["extends"] == {"file": "docker-compose.yaml", "service": "airflow-worker"}
    assert worker["command"] == ["celery", "worker", "--queues", "${MIGRATION_QUEUE:?set MIGRATION_QUEUE}"]
    share = [v for v in worker["volumes"] if v.endswith(":${BACKUP_SHARE_IN_CONTAINER:-/mnt/sql-backups}")]
    assert share, worker["volumes"]
    for name in ("airflow-worker", "airflow-scheduler", "airflow-triggerer", "airflow-apiserver"):
        mounts = " ".join(services.get(name, {}).get("volumes", []))
        assert "BACKUP_SHARE" not in mounts, f"{name} must not see the backup share"
    assert "airflow-triggerer" in services  # deferrable waits on RDS run there
    for name, service in services.items():
        if name == "airflow-init":
            continue
        # DAGs and plugins come from the image: nothing may be mounted over them.
        assert not any("/opt/airflow/dags" in v or "/opt/airflow/plugins" in v for v in service["volumes"]), (
            name
        )
        assert any(v.endswith(":/opt/airflow/migrations:ro") for v in service["volumes"]), name
        assert service["environment"]["MSSQL_RDS_MIGRATIONS_DIR"] == "/opt/airflow/migrations", name
