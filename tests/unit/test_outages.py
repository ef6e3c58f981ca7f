"""A processor that writes to PostgreSQL starts again after losing it or a broker, but not if it never reached them."""

import asyncio
import logging

import psycopg
import pytest

from services import outages
from services.outages import through_outages

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

    await through_outages(run_once, asyncio.Event(), log, "projector")
    assert len(runs) == 3


async def test_a_database_not_reached_at_the_first_start_is_an_error():
    async def run_once(running):
        raise RuntimeError("cannot reach PostgreSQL") from psycopg.OperationalError("connection refused")

    with pytest.raises(RuntimeError, match="cannot reach"):
        await through_outages(run_once, asyncio.Event(), log, "projector")


async def test_a_database_away_at_the_first_start_is_tried_again_for_the_startup_wait():
    """A processor started again while PostgreSQL restarts waits for it instead of exiting."""
    runs = []

    async def run_once(running):
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("cannot reach PostgreSQL") from psycopg.OperationalError("connection refused")
        running()

    await through_outages(run_once, asyncio.Event(), log, "projector", startup_wait_s=30)
    assert len(runs) == 3

    async def never_there(running):
        runs.append(1)
        raise RuntimeError("cannot reach PostgreSQL") from psycopg.OperationalError("connection refused")

    runs.clear()
    with pytest.raises(RuntimeError, match="cannot reach"):
        await through_outages(never_there, asyncio.Event(), log, "projector", startup_wait_s=0.05)
    assert len(runs) >= 2  # tried again, then gave up when the wait ran out


async def test_credentials_refused_at_the_first_start_are_an_error_at_once():
    runs = []

    async def run_once(running):
        runs.append(1)
        raise RuntimeError("cannot reach PostgreSQL") from psycopg.OperationalError(
            'connection failed: FATAL:  password authentication failed for user "orchestrator"'
        )

    with pytest.raises(RuntimeError, match="cannot reach"):
        await through_outages(run_once, asyncio.Event(), log, "projector", startup_wait_s=30)
    assert runs == [1]


async def test_other_errors_are_not_taken_for_an_outage_and_a_stop_ends_the_waiting():
    async def broken(running):
        running()
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        await through_outages(broken, asyncio.Event(), log, "projector")

    stop = asyncio.Event()

    async def lost(running):
        running()
        stop.set()
        raise psycopg.OperationalError("server closed the connection")

    await through_outages(lost, stop, log, "projector")  # returns: asked to stop


async def test_a_broker_away_while_starting_again_is_an_outage_too():
    from aiokafka.errors import NodeNotReadyError

    from services.kafka import KafkaUnavailable

    away = [
        KafkaUnavailable("the brokers did not describe the topic catalog within 30s"),
        NodeNotReadyError("node 2 is not ready"),
    ]
    runs = []

    async def run_once(running):
        running()
        runs.append(1)
        if away:
            raise away.pop(0)

    await through_outages(run_once, asyncio.Event(), log, "audit")
    assert len(runs) == 3

    async def never_reached(running):
        raise KafkaUnavailable("cannot reach Kafka")

    with pytest.raises(KafkaUnavailable):
        await through_outages(never_reached, asyncio.Event(), log, "audit")


async def test_an_admin_request_is_asked_again_while_a_broker_of_the_cluster_is_away():
    from aiokafka.errors import NodeNotReadyError

    from services.kafka import retrying

    answers = [NodeNotReadyError("node 2 is not ready"), NodeNotReadyError("node 2 is not ready"), ["topic"]]

    async def call():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert await retrying(call, wait_s=0.001) == ["topic"]

    async def refused():
        raise RuntimeError("could not create topic t: error 41")

    with pytest.raises(RuntimeError):
        await retrying(refused, wait_s=0.001)


async def test_a_client_closed_on_the_way_out_raises_nothing_but_a_cancellation_of_the_caller_goes_through():
    from services.outages import closed

    async def cancelled_inside():
        raise asyncio.CancelledError  # what aiokafka's consumer.stop() may raise from its fetch task

    await closed(cancelled_inside)

    started = asyncio.Event()

    async def slow():
        started.set()
        await asyncio.Event().wait()  # until cancelled

    caller = asyncio.create_task(closed(slow))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
