# syntax=docker/dockerfile:1
# Airflow image with the migration package: DAGs, plugins (hooks, operators, triggers, domain core)
# and include/ (T-SQL files, migration configs). Build: docker build -t mssql-rds-migration .
#
# Only our direct requirements (requirements.in) are installed, under the image's own constraints
# (${HOME}/constraints.txt, the file the official image was built with): installing our full lock
# instead would move packages under the image's preinstalled providers, which pip only warns about.
# tests/dags/test_dockerfile.py keeps this file and the pins from drifting apart.
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11

# --- Stage 1: wheels. crcmod (OSS CRC64 checks) ships as source: without a compiler it silently falls
# back to a pure-Python CRC that is ~100x slower on multi-GB backups, so its C extension is built here.
FROM ${AIRFLOW_IMAGE} AS wheels
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*
USER airflow
COPY --chown=airflow:root requirements.in /tmp/requirements.in
RUN pip wheel --no-cache-dir --wheel-dir /tmp/wheels \
        -r /tmp/requirements.in --constraint "${HOME}/constraints.txt"

# --- Stage 2: the image. No compiler: it installs the wheels built above and nothing else.
FROM ${AIRFLOW_IMAGE}
COPY --chown=airflow:root requirements.in /opt/airflow/requirements.in
RUN --mount=type=bind,from=wheels,source=/tmp/wheels,target=/tmp/wheels \
    pip install --no-cache-dir --no-index --find-links /tmp/wheels --only-binary=:all: \
        -r /opt/airflow/requirements.in --constraint "${HOME}/constraints.txt" \
    && pip check \
    && python -c "import crcmod.crcmod as c; assert c._usingExtension, 'crcmod C extension missing'"

COPY --chown=airflow:root dags/ /opt/airflow/dags/
COPY --chown=airflow:root plugins/ /opt/airflow/plugins/
COPY --chown=airflow:root include/ /opt/airflow/include/
