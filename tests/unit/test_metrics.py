from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from services.balancer.logic import Slot, Task
from services.metrics import ProcessorMetrics
from services.router.logic import AgentState


@dataclass
class FakeClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeMessage:
    topic: str = "orchestrator.tasks"
    partition: int = 2
    offset: int = 9
    tp: tuple = field(default=("orchestrator.tasks", 2))


class FakeConsumer:
    def __init__(self, highwater: int | None) -> None:
        self._highwater = highwater

    def highwater(self, tp):
        if self._highwater is None:
            raise KeyError(tp)
        return self._highwater


def sample(metrics: ProcessorMetrics, name: str, **labels) -> float | None:
    return metrics.registry.get_sample_value(name, {"service": metrics.service, **labels})


def test_lag_is_the_records_after_the_one_handled():
    metrics = ProcessorMetrics("projector")
    metrics.consumed("orchestrator.tasks", 3, offset=41, highwater=50)
    assert sample(metrics, "orchestrator_consumer_lag", topic="orchestrator.tasks", partition="3") == 8
    metrics.consumed("orchestrator.tasks", 3, offset=49, highwater=50)
    assert sample(metrics, "orchestrator_consumer_lag", topic="orchestrator.tasks", partition="3") == 0


def test_lag_of_a_faust_message_is_best_effort():
    metrics = ProcessorMetrics("router")
    metrics.consumed_message(FakeConsumer(highwater=20), FakeMessage())
    assert sample(metrics, "orchestrator_consumer_lag", topic="orchestrator.tasks", partition="2") == 10
    metrics.consumed_message(FakeConsumer(highwater=None), FakeMessage(offset=19))
    assert sample(metrics, "orchestrator_consumer_lag", topic="orchestrator.tasks", partition="2") == 10


def test_a_batch_from_a_partition_a_rebalance_took_away_reports_no_lag_and_raises_nothing():
    class Revoked:
        def highwater(self, tp):
            raise AssertionError("Partition is not assigned")  # what aiokafka does

    @dataclass(frozen=True)
    class TP:
        topic: str
        partition: int

    metrics = ProcessorMetrics("projector")
    metrics.consumed_batch(FakeConsumer(highwater=20), {TP("orchestrator.tasks", 1): [FakeMessage(offset=14)]})
    assert sample(metrics, "orchestrator_consumer_lag", topic="orchestrator.tasks", partition="1") == 5
    metrics.consumed_batch(Revoked(), {TP("orchestrator.tasks", 1): [FakeMessage(offset=19)], TP("x", 0): []})
    assert sample(metrics, "orchestrator_consumer_lag", topic="orchestrator.tasks", partition="1") == 5


def test_balancer_state_gives_in_flight_per_agent_and_queue_per_capability():
    metrics = ProcessorMetrics("balancer")
    queued_at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    slots = {"a1": Slot(capacity=2, in_flight={"t1": "python"}), "a2": Slot(capacity=1)}
    tasks = [
        Task("t1", capability="python", agent_id="a1"),
        Task("t2", capability="python", queued_at=queued_at),
        Task("t3", capability="python", queued_at=queued_at),
        Task("t4", capability="sql", queued_at=queued_at),
    ]
    metrics.balancer_state(slots, tasks)
    assert sample(metrics, "orchestrator_in_flight", agent="a1") == 1
    assert sample(metrics, "orchestrator_in_flight", agent="a2") == 0
    assert sample(metrics, "orchestrator_queue_length", capability="python") == 2
    assert sample(metrics, "orchestrator_queue_length", capability="sql") == 1

    metrics.balancer_state({"a2": Slot(capacity=1)}, [])
    assert sample(metrics, "orchestrator_queue_length", capability="python") == 0
    assert sample(metrics, "orchestrator_in_flight", agent="a1") == 0


def test_routable_agents_count_per_capability_and_drop_to_zero():
    metrics = ProcessorMetrics("router")
    agents = [
        AgentState("a1", {"python": 0.9, "sql": 0.5}, capacity=2, health="healthy"),
        AgentState("a2", {"python": 0.7}, capacity=3, health="unhealthy"),
        AgentState("a3", {"python": 0.7}, capacity=4, status="draining"),
    ]
    metrics.routable_agents(agents)
    assert sample(metrics, "orchestrator_healthy_agents", capability="python") == 1
    assert sample(metrics, "orchestrator_capability_capacity", capability="python") == 2
    assert sample(metrics, "orchestrator_healthy_agents", capability="sql") == 1

    metrics.routable_agents([AgentState("a1", {"python": 0.9}, capacity=2, health="unhealthy")])
    assert sample(metrics, "orchestrator_healthy_agents", capability="python") == 0
    assert sample(metrics, "orchestrator_healthy_agents", capability="sql") == 0


def test_state_refresh_is_due_once_per_interval_of_the_clock():
    clock = FakeClock()
    metrics = ProcessorMetrics("balancer", clock=clock)
    assert metrics.due("state", 1.0)
    clock.now = 0.5
    assert not metrics.due("state", 1.0)
    clock.now = 1.0
    assert metrics.due("state", 1.0)


def test_a_labelled_child_is_looked_up_once_and_every_increment_reaches_the_registry():
    metrics = ProcessorMetrics("router")
    first = metrics.events_in.labels("router", "orchestrator.tasks")
    for _ in range(3):
        metrics.events_in.labels("router", "orchestrator.tasks").inc()
    metrics.events_in.labels("router", "orchestrator.agents").inc(2)

    assert metrics.events_in.labels("router", "orchestrator.tasks") is first
    assert sample(metrics, "orchestrator_events_in_total", topic="orchestrator.tasks") == 3
    assert sample(metrics, "orchestrator_events_in_total", topic="orchestrator.agents") == 2
