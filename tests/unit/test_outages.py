"""A processor that writes to PostgreSQL starts again after losing it, but not if it never reached it."""

import asyncio
import logging

import psycopg
import pytest

from services import outages
from services.outages import through_database_outages

log = logging.getLogger("test")


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(outages, "FIRST_WAIT_S", 0.001)


async def test_a_connection_lost_after_the_start_starts_the_processor_again():
    runs = []

    async def run_once(running):
        running()
        runs.append(1)
        if len(runs) < 3:
            raise psycopg.errors.AdminShutdown("terminating connection due to administrator command")

    await through_database_outages(run_once, asyncio.Event(), log, "projector")
    assert len(runs) == 3


async def test_a_database_not_reached_at_the_first_start_is_an_error():
    async def run_once(running):
        raise RuntimeError("cannot reach PostgreSQL") from psycopg.OperationalError("connection refused")

    with pytest.raises(RuntimeError, match="cannot reach"):
        await through_database_outages(run_once, asyncio.Event(), log, "projector")


async def test_other_errors_are_not_taken_for_an_outage_and_a_stop_ends_the_waiting():
    async def broken(running):
        running()
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        await through_database_outages(broken, asyncio.Event(), log, "projector")

    stop = asyncio.Event()

    async def lost(running):
        running()
        stop.set()
        raise psycopg.OperationalError("server closed the connection")

    await through_database_outages(lost, stop, log, "projector")  # returns: asked to stop
