"""Processors that write to PostgreSQL keep running through a database or broker restart.

The projector and the audit projector commit their Kafka positions with their effects in the
database, so after losing the connection they start again from what the database says was
done: nothing is lost or applied twice. Starting again also meets the brokers again, and a
broker may be away just then (a cluster losing a broker while the database restarts), which is
the same kind of outage. At the very first start they try for STARTUP_WAIT_S (a process started
again while the database restarts is not misconfigured), then stop with the error saying where
they looked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import psycopg
from aiokafka.errors import KafkaError

from services.kafka import KafkaUnavailable

FIRST_WAIT_S, LONGEST_WAIT_S = 0.5, 5.0


async def through_outages(
    run_once: Callable[[Callable[[], None]], Awaitable[None]],
    stop: asyncio.Event,
    log: logging.Logger,
    what: str,
    startup_wait_s: float = 0.0,
) -> None:
    """`run_once(running)` until it returns; once it has called `running()`, a lost connection starts it
    again after a growing wait (the database or a broker restarting) instead of ending the process.
    Before that, a database or broker not reached is tried again for `startup_wait_s`, then raised."""
    started = False

    def running() -> None:
        nonlocal started
        started = True

    wait = FIRST_WAIT_S
    first_try = time.monotonic()
    while True:
        try:
            await run_once(running)
            return
        except Exception as error:
            if not lost_connection(error):
                raise
            if not started:
                left = startup_wait_s - (time.monotonic() - first_try)
                if left <= 0 or refused(error):
                    raise
                log.warning("%s cannot start yet (%s); trying again for %.0fs more", what, _first_line(error), left)
            if stop.is_set():
                return
            if started:
                log.warning("%s lost a connection (%s); starting again in %.1fs", what, _first_line(error), wait)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
        if stop.is_set():
            return
        wait = min(LONGEST_WAIT_S, wait * 2)


def lost_connection(error: BaseException | None) -> bool:
    """Whether the database or a broker went away (or could not be reached again), anywhere in the
    cause chain."""
    return any(
        isinstance(e, (psycopg.OperationalError, KafkaUnavailable)) or (isinstance(e, KafkaError) and e.retriable)
        for e in _chain(error)
    )


# What a server that answered says when it will never let this process in as configured: no
# point waiting for it (a database or broker restarting refuses connections, or says it is starting).
REFUSALS = (
    "authentication failed",
    "does not exist",
    "no pg_hba.conf entry",
    "permission denied",
    "certificate verify",
)


def refused(error: BaseException | None) -> bool:
    """Whether the database or a broker refused this process's credentials or names, anywhere in the cause chain."""
    return any(refusal in str(e).lower() for e in _chain(error) for refusal in REFUSALS)


def _chain(error: BaseException | None):
    """The error and what caused it, outermost first."""
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


async def closed(close: Callable[[], Awaitable[None]]) -> None:
    """Close a client on the way out, whatever it raises: aiokafka's consumer, stopped while a fetch
    retries against a broker that went away, raises CancelledError from its own task. A cancellation
    of the caller itself still goes through."""
    try:
        await close()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    except Exception:  # noqa: BLE001 - on the way out: the error that got us here is the one to report
        pass
