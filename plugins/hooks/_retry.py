"""Retries with backoff shared by the OSS and RDS hooks (tenacity; neither SDK retries on its own)."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry transient failures.

    :param attempts: total attempts (1 = no retry).
    :param initial_wait: first wait in seconds; doubled after each failure (with jitter).
    :param max_wait: longest single wait in seconds (a server's retry-after hint is capped by it too).
    """

    attempts: int = 5
    initial_wait: float = 1.0
    max_wait: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"retry attempts must be at least 1, got {self.attempts}")
        if self.initial_wait < 0 or self.max_wait < 0:
            raise ValueError("retry waits must not be negative")

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based): exponential backoff with
        "equal jitter", between half and all of ``min(max_wait, initial_wait * 2^(attempt-1))``."""
        ceiling = min(self.max_wait, self.initial_wait * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


def call_with_retries(
    fn: Callable[[], T],
    *,
    what: str,
    policy: RetryPolicy,
    is_transient: Callable[[BaseException], bool],
    wait_hint: Callable[[BaseException], float | None] | None = None,
    describe: Callable[[BaseException], str] = lambda e: type(e).__name__,
) -> T:
    """Call ``fn`` and retry it on transient errors; the last error is re-raised unchanged.

    :param fn: the call (no arguments).
    :param what: what is being done, for the log line of each retry.
    :param policy: attempts and waits.
    :param is_transient: decides whether an error is worth retrying (5xx, throttling, network).
    :param wait_hint: seconds the server asked to wait (e.g. retry-after), or None.
    :param describe: short, secret-free description of an error for the log.
    """

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hint = wait_hint(exc) if (wait_hint and exc is not None) else None
        if hint is not None:
            return min(max(hint, 0.0), policy.max_wait)
        return policy.backoff(state.attempt_number)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "%s failed (attempt %d of %d): %s; retrying in %.1f s",
            what,
            state.attempt_number,
            policy.attempts,
            describe(exc) if exc is not None else "?",
            state.next_action.sleep if state.next_action else 0.0,
        )

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        stop=tenacity.stop_after_attempt(policy.attempts),
        wait=wait,
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(fn)
