"""Several "hosts" on one machine: each Airflow component gets its own host name and view of the disk.

A real deployment runs the backup-host worker on the machine that mounts the backup share, and every
other component (scheduler, api-server, triggerer, default workers) on machines that do not. The
distributed demo makes that real with Linux namespaces (``unshare``, util-linux): each component runs in
its own UTS namespace with its own host name (what Airflow records as the task instance's ``hostname``,
through ``hostname_callable = socket.gethostname``), and every host but the backup host in its own mount
namespace where an empty tmpfs covers the backup share. A task that reads backup files on such a host
finds no file, exactly as on a machine without the mount, and fails.

As root the namespaces are created directly; otherwise in a user namespace that maps us to root
(``--user --map-root-user``), which Debian allows by default.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# Runs inside the new namespaces: name the host, cover the share (when asked), then become the command.
_ENTER_HOST = (
    'set -e; hostname "$1"; '
    'if [ -n "$2" ]; then mount -t tmpfs -o size=1m,mode=0755 no-backup-share "$2"; fi; '
    'shift 2; exec "$@"'
)
_PROBE = "import os, sys; sys.exit(0 if os.path.isdir(sys.argv[1]) else 3)"


class HostError(RuntimeError):
    """The namespaces a host needs could not be created."""


@dataclass(frozen=True)
class Host:
    """A named host; ``hidden_share`` is the folder it must not see (None: it sees everything)."""

    name: str
    hidden_share: Path | None = None

    def command(self, command: list[str]) -> list[str]:
        """``command`` wrapped so that it runs as this host (unshare execs it: the pid stays the same)."""
        unshare = shutil.which("unshare")
        if unshare is None:
            raise HostError("unshare (util-linux) not found: it gives each demo host its own view")
        namespaces = ["--mount", "--uts", "--propagation", "private"]
        if os.geteuid() != 0:
            namespaces = ["--user", "--map-root-user", *namespaces]
        share = "" if self.hidden_share is None else str(self.hidden_share)
        return [unshare, *namespaces, "--", "/bin/sh", "-c", _ENTER_HOST, "host", self.name, share, *command]

    def sees(self, path: Path) -> bool:
        """Whether a process on this host finds the folder ``path`` (run through the same namespaces)."""
        result = subprocess.run(
            self.command([sys.executable, "-c", _PROBE, str(path)]),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode not in (0, 3):
            raise HostError(
                f"cannot create host {self.name!r} (unshare exit {result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        return result.returncode == 0
