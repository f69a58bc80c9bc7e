"""The whole sandbox on an asyncio loop in a daemon thread of the calling process.

For tests and tools that need the stand-ins' Python side while the product talks to their ports: the
OSS request log, the RDS service's records and faults, the SQL Server engines' fault injectors, the
shared clock. ``python -m sandbox up`` runs the same stack in a process of its own instead.

    running = start_sandbox(config, state_dir)
    running.sandbox.rds.faults.next_create("accept_then_500")
    ...
    running.stop()
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.stack import Sandbox


@dataclass
class RunningSandbox:
    """A started :class:`Sandbox` and the loop thread it runs on."""

    sandbox: Sandbox
    state_dir: Path
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    def connections(self) -> dict[str, dict[str, Any]]:
        return self.sandbox.connections()

    def call(self, coroutine: Any, timeout: float = 60) -> Any:
        """Run a coroutine on the sandbox's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        try:
            self.call(self.sandbox.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


def start_sandbox(config: dict[str, Any], state_dir: Path) -> RunningSandbox:
    """Start every stand-in of ``config`` (see ``sandbox/sandbox.yaml``) with its state in ``state_dir``."""
    sandbox = Sandbox(config, state_dir)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=lambda: (asyncio.set_event_loop(loop), loop.run_forever()), name="sandbox-loop", daemon=True
    )
    thread.start()
    running = RunningSandbox(sandbox, Path(state_dir), loop, thread)
    try:
        running.call(sandbox.start())
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        raise
    return running
