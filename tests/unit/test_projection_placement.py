"""The projector and a rebuild take an event only from the topic the catalog gives it."""

from __future__ import annotations

from events.agents import AgentHealthChanged
from events.codec import encode, type_header
from events.envelope import make_event
from events.errors import MisplacedEvent
from projections.batch import prepare
from projections.folded_log import FoldedLog
from tests import factories as f
from tests.unit.test_projection_fold import Record


def verdict(agent_id: str = "agent-1", current: str = "unhealthy"):
    return make_event(
        AgentHealthChanged(agent_id=agent_id, previous="healthy", current=current, missed_heartbeats=4),
        producer="health",
        occurred_at=f.at(5),
    )


def on(topic: str, event, offset: int = 0) -> Record:
    return Record(topic, 0, offset, encode(event), [type_header(event)])


def test_a_verdict_on_the_agents_topic_is_set_aside_with_where_it_belongs():
    forged = on("p.agents", verdict())

    prepared = prepare([on("p.agents", f.registered("agent-1")), forged])

    assert [position.offset for position, _ in prepared.batch] == [0]
    [(record, error)] = prepared.rejected
    assert record is forged and isinstance(error, MisplacedEvent)
    assert str(error) == "AgentHealthChanged is not accepted on p.agents: only p.health carries it"


def test_a_verdict_on_the_health_topic_is_projected():
    prepared = prepare([on("p.health", verdict())])

    assert prepared.rejected == []
    [(_, ops)] = prepared.batch
    assert ops


def test_a_rebuild_refuses_the_forgery_as_the_live_projector_does():
    folded = FoldedLog()
    folded.take([on("p.agents", f.registered("agent-1")), on("p.agents", verdict(), offset=1)], refused=[])

    assert folded.rejected == 1
    assert folded.fold.rows("agent_health_changes") == []
    assert folded.positions == {("p.agents", 0): 1}
