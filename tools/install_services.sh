#!/usr/bin/env bash
# Installs the Debian packages the distributed demo runs (`make demo-celery`, and the e2e test that runs
# it): PostgreSQL (Airflow's metadata database) and Redis (the Celery broker). Nothing happens when the
# binaries are already there, so `make test` stays offline on a machine that has them.
set -euo pipefail

missing=()
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || missing+=(postgresql)
[[ -x /usr/bin/redis-server ]] || missing+=(redis-server)
((${#missing[@]} == 0)) && exit 0

if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "missing Debian packages: ${missing[*]}; install them as root:" >&2
    echo "  apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi

echo "installing ${missing[*]} (Debian packages) for the distributed demo..."
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
