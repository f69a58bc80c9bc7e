# Airflow image with the migration package: DAGs, plugins (hooks, operators, triggers, domain core)
# and include/ (T-SQL files, migration configs). Build: docker build -t mssql-rds-migration .
FROM apache/airflow:3.3.2-python3.11

# crcmod (OSS CRC64 checks) ships as source: without a compiler it silently falls back to a pure-Python
# CRC that is ~100x slower on multi-GB backups, so build its C extension.
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*
USER airflow

COPY --chown=airflow:root requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir -r /opt/airflow/requirements.txt \
    && python -c "import crcmod.crcmod as c; assert c._usingExtension, 'crcmod C extension missing'"

COPY --chown=airflow:root dags/ /opt/airflow/dags/
COPY --chown=airflow:root plugins/ /opt/airflow/plugins/
COPY --chown=airflow:root include/ /opt/airflow/include/
