"""The waiting queue decides exactly as scanning every task did, at a cost that does not grow with it."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from events.agents import AgentDeregistered, AgentHealthChanged
from events.tasks import TaskAssigned, TaskCompleted, TaskFailed, TaskHandedOff, TaskQueued, TaskRejected, TaskStarted
from services.balancer import logic
from services.balancer.logic import BalancerState, Limits, decide, tick
from services.balancer.queue import WaitingQueue
from services.balancer.state import decode_state, encode_state
from tests.unit.test_balancer_logic import agent, routed, submitted

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


# --- the queue on its own -----------------------------------------------------------


def queue_of(*tasks) -> WaitingQueue:
    queue = WaitingQueue()
    for n, (task_id, priority, submitter, agents) in enumerate(tasks):
        queue.add(
            task_id,
            priority=priority,
            queued_at=T0 + timedelta(seconds=n),
            submitter=submitter,
            capability="python",
            agents=agents,
        )
    return queue


def test_order_is_priority_then_least_served_submitter_then_age():
    queue = queue_of(("old", 5, "busy", ("a1",)), ("urgent", 1, "busy", ("a1",)), ("new", 5, "quiet", ("a1",)))
    assert list(queue.in_order({"a1"}, {"busy": 3})) == ["urgent", "new", "old"]
    assert list(queue.in_order({"a1"}, {})) == ["urgent", "old", "new"]
    assert [queue.position(t, {"busy": 3}) for t in ("urgent", "new", "old")] == [1, 2, 3]
    assert [queue.position(t, {}) for t in ("urgent", "old", "new")] == [1, 2, 3]


def test_only_tasks_an_open_agent_may_take_are_visited_each_once():
    queue = queue_of(("t1", 5, "c", ("a1", "a2")), ("t2", 5, "c", ("a2",)), ("t3", 5, "c", ("a3",)))
    assert list(queue.in_order({"a1", "a2"}, {})) == ["t1", "t2"]
    assert list(queue.in_order(set(), {})) == []


def test_an_agent_that_fills_up_during_the_drain_is_passed_over():
    queue = queue_of(("t1", 5, "c", ("a1",)), ("t2", 5, "c", ("a1",)), ("t3", 5, "c", ("a2",)))
    open_, visited = {"a1", "a2"}, []
    for task_id in queue.in_order(open_, {}):
        visited.append(task_id)
        open_.discard("a1")  # t1 took a1's last slot
    assert visited == ["t1", "t3"]


def test_a_removed_task_leaves_no_trace():
    queue = queue_of(("t1", 5, "c", ("a1",)), ("t2", 5, "c", ("a1",)))
    queue.remove("t1")
    queue.remove("t1")
    assert "t1" not in queue and len(queue) == 1
    assert list(queue.in_order({"a1"}, {})) == ["t2"] and queue.position("t2", {}) == 1
    queue.remove("t2")
    assert list(queue.in_order({"a1"}, {})) == [] and not queue._by_agent and not queue._by_capability


# --- the same decisions as a scan of every task -------------------------------------


def scanning_drain(state: BalancerState, now, limits) -> list:
    """The balancer's drain before the queue existed: sort every waiting task an open agent may take."""
    out = []
    open_ = {a for a, slot in state.slots.items() if slot.available and len(slot.in_flight) < slot.capacity}
    placeable = [
        t
        for t in state.tasks.values()
        if t.queued_at
        and (
            any(c[0] in open_ for c in t.candidates)
            or t.requirements
            and any(t.capability in state.slots[a].capabilities for a in open_)
        )
    ]
    for task in sorted(placeable, key=lambda t: scanning_key(state, t)):
        if not open_:
            break
        if (agent_id := logic._pick(state, task, limits)) is not None:
            out += logic._assign(state, task, agent_id, now, limits)
            if len(state.slots[agent_id].in_flight) >= state.slots[agent_id].capacity:
                open_.discard(agent_id)
    for task in state.tasks.values():  # keep the queue in step, so later events see the same state
        if not task.queued_at:
            state.waiting.remove(task.task_id)
    return out


def scanning_key(state: BalancerState, task):
    return task.priority, state.served.get(task.submitter, 0), task.queued_at, task.task_id


def scanning_position(state: BalancerState, task) -> int:
    mine = scanning_key(state, task)
    return 1 + sum(
        1
        for t in state.tasks.values()
        if t.queued_at and t.capability == task.capability and scanning_key(state, t) < mine
    )


def storm(seed: int, steps: int = 1500) -> list[list]:
    """Decisions over a random mix of every event the balancer acts on; returns what each led to."""
    rng = random.Random(seed)
    agents = [f"a{i}" for i in range(6)]
    state, now, limits = BalancerState(), T0, Limits(max_attempts=3, start_timeout=timedelta(seconds=90))
    live: dict[str, tuple[str, int]] = {}
    decided = []

    def apply(event):
        nonlocal now
        now += timedelta(seconds=1)
        out = decide(state, event, now, limits) if event is not None else tick(state, now, limits)
        for e in out:
            if isinstance(e, TaskAssigned):
                live[e.task_id] = (e.agent_id, e.attempt)
        decided.append(out)

    for a in agents:
        apply(agent(a, capacity=rng.randint(1, 3), **({"sql": 1} if rng.random() < 0.5 else {})))
    for n in range(steps):
        roll = rng.random()
        if roll < 0.45:
            task_id = f"t{n}"
            apply(
                submitted(
                    task_id,
                    priority=rng.randint(1, 4),
                    submitter=rng.choice("xyz"),
                    capability=rng.choice(("python", "sql")),
                    deadline=now + timedelta(seconds=rng.randint(5, 400)) if rng.random() < 0.2 else None,
                )
            )
            apply(routed(task_id, *rng.sample(agents, rng.randint(1, 4))))
        elif roll < 0.85 and live:
            task_id, (agent_id, attempt) = rng.choice(sorted(live.items()))
            live.pop(task_id)
            apply(
                rng.choice(
                    [
                        TaskCompleted(task_id=task_id, agent_id=agent_id, attempt=attempt),
                        TaskFailed(task_id=task_id, agent_id=agent_id, attempt=attempt, error="e", retryable=True),
                        TaskRejected(task_id=task_id, agent_id=agent_id, attempt=attempt, reason="r"),
                        TaskHandedOff(
                            task_id=task_id,
                            from_agent_id=agent_id,
                            attempt=attempt,
                            reason="h",
                            to_agent_id=rng.choice(agents + [None]),
                        ),
                    ]
                )
            )
        elif roll < 0.9 and live:
            task_id, (agent_id, attempt) = rng.choice(sorted(live.items()))
            apply(TaskStarted(task_id=task_id, agent_id=agent_id, attempt=attempt))
        elif roll < 0.95:
            a = rng.choice(agents)
            apply(
                rng.choice(
                    [
                        AgentHealthChanged(
                            agent_id=a,
                            previous="healthy",
                            current="unhealthy",
                            in_flight_task_ids=tuple(sorted(state.slots[a].in_flight)),
                        ),
                        AgentHealthChanged(agent_id=a, previous="unhealthy", current="healthy"),
                        AgentDeregistered(agent_id=a, reason="r"),
                        agent(a, capacity=rng.randint(1, 3)),
                    ]
                )
            )
        else:
            apply(None)  # the clock: start timeouts and deadlines
        if rng.random() < 0.02:  # a restart from a snapshot rebuilds the queue from the tasks
            state = decode_state(encode_state(state))
    return decided


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_random_storm_decides_exactly_as_scanning_every_task(seed, monkeypatch):
    indexed = storm(seed)
    queued = sum(isinstance(e, TaskQueued) for out in indexed for e in out)
    assigned_from_queue = sum(1 for out in indexed if len([e for e in out if isinstance(e, TaskAssigned)]) > 1)
    assert queued > 300 and assigned_from_queue >= 10  # the queue was long, and at times several left at once
    with monkeypatch.context() as patch:
        patch.setattr(logic, "_drain_queue", scanning_drain)
        patch.setattr(logic, "_position", scanning_position)
        scanned = storm(seed)
    assert indexed == scanned
