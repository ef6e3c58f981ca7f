"""One contract, two views: the in-memory view (unit) and PostgreSQL (integration).

A subclass provides an async `view` fixture and `rows(view, table)` returning the
table's rows as dicts ordered by primary key.
"""

from __future__ import annotations

import random

from events.envelope import make_event
from events.tasks import TaskTimedOut
from projections.handlers import ops_for
from projections.ops import Position
from tests import factories as f

TOPIC = "t.tasks"


def at_offsets(events, topic: str = TOPIC, partition: int = 0, start: int = 0):
    return [(Position(topic, partition, start + i), ops_for(e)) for i, e in enumerate(events)]


class ProjectionContract:
    async def rows(self, view, table: str) -> list[dict]:
        raise NotImplementedError

    async def test_events_become_rows(self, view):
        await view.apply(at_offsets([f.registered("agent-1", capabilities=(("python", 0.8), ("sql", 0.6)))]))
        await view.apply(at_offsets(f.lifecycle("task-1", "agent-1"), start=1))

        [agent] = await self.rows(view, "agents")
        assert (agent["agent_id"], agent["status"], agent["capacity"]) == ("agent-1", "registered", 2)
        caps = await self.rows(view, "agent_capabilities")
        assert [(c["name"], c["proficiency"]) for c in caps] == [("python", 0.8), ("sql", 0.6)]
        [task] = await self.rows(view, "tasks")
        assert (task["status"], task["assigned_agent_id"], task["attempt"]) == ("completed", "agent-1", 1)
        assert task["requirements"] == [{"name": "python", "min_proficiency": 0.5}]
        [decision] = await self.rows(view, "routing_decisions")
        assert decision["candidates"][0]["agent_id"] == "agent-1"
        [assignment] = await self.rows(view, "task_assignments")
        assert (assignment["outcome"], assignment["success"], assignment["duration_ms"]) == ("completed", True, 1000.0)

    async def test_the_same_position_twice_changes_nothing(self, view):
        batch = at_offsets([f.submitted("task-1"), f.assigned("task-1")])
        assert await view.apply(batch) == 2
        before = await self.rows(view, "tasks")

        assert await view.apply(batch) == 0
        assert await view.apply(batch[:1]) == 0
        assert await self.rows(view, "tasks") == before

    async def test_an_older_position_changes_nothing(self, view):
        await view.apply(at_offsets([f.submitted("task-1")], start=5))
        await view.apply(at_offsets([f.completed("task-1")], start=3))

        [task] = await self.rows(view, "tasks")
        assert task["status"] == "submitted"

    async def test_resume_from_the_stored_position(self, view):
        await view.apply(at_offsets([f.submitted("task-1"), f.submitted("task-2")], partition=2, start=7))

        stored = await view.stored_positions([(TOPIC, 2), (TOPIC, 3)])
        assert stored == {(TOPIC, 2): 8}

    async def test_rows_do_not_depend_on_the_order_topics_are_read(self, view, other_view):
        events = f.lifecycle("task-1") + [f.failed("task-2", t=9), f.submitted("task-2", t=1)]
        shuffled = events[:]
        random.Random(7).shuffle(shuffled)

        await view.apply(at_offsets(events))
        await other_view.apply(at_offsets(shuffled))

        for table in ("tasks", "task_assignments", "routing_decisions"):
            assert await self.rows(view, table) == await self.rows(other_view, table)

    async def test_a_new_registration_replaces_capabilities(self, view):
        await view.apply(
            at_offsets(
                [
                    f.registered(capabilities=(("python", 0.8), ("sql", 0.6))),
                    f.registered(capabilities=(("go", 0.9),), t=5),
                ]
            )
        )

        caps = await self.rows(view, "agent_capabilities")
        assert [c["name"] for c in caps] == ["go"]

    async def test_deregistration_takes_the_agent_out(self, view):
        await view.apply(at_offsets([f.registered(), f.deregistered(t=10)]))

        [agent] = await self.rows(view, "agents")
        assert agent["status"] == "deregistered"

    async def test_memory_profile_and_load_history_are_kept(self, view):
        await view.apply(
            at_offsets(
                [
                    f.registered(share_experience=False),
                    f.load_summarized(t=60),
                    f.load_summarized(t=120, avg_in_flight=0.5),
                ]
            )
        )

        [profile] = await self.rows(view, "agent_memory_profiles")
        assert (profile["store_kind"], profile["share_experience"]) == ("vector", False)
        assert [r["avg_in_flight"] for r in await self.rows(view, "agent_load_history")] == [1.5, 0.5]

    async def test_a_hand_off_is_recorded_with_both_agents(self, view):
        await view.apply(at_offsets([f.submitted(), f.assigned(), f.started(), f.handed_off(t=5)]))

        [handoff] = await self.rows(view, "task_handoffs")
        assert (handoff["from_agent_id"], handoff["to_agent_id"]) == ("agent-1", "agent-2")
        [task] = await self.rows(view, "tasks")
        assert (task["status"], task["assigned_agent_id"]) == ("handed_off", "agent-2")

    async def test_a_task_the_balancer_gave_up_on_ends_expired_with_its_reason(self, view):
        gave_up = make_event(
            TaskTimedOut(
                task_id="task-1",
                agent_id="agent-1",
                attempt=3,
                stage="deadline",
                reason="out of attempts after agent-1 was found unhealthy",
            ),
            producer="balancer",
            occurred_at=f.at(9),
        )
        await view.apply(at_offsets([f.submitted("task-1"), f.assigned("task-1", attempt=3), gave_up]))

        [task] = await self.rows(view, "tasks")
        assert task["status"] == "expired"
        assert task["reason"] == "timed out at deadline: out of attempts after agent-1 was found unhealthy"

    async def test_a_failure_not_to_be_retried_stays_final_whatever_comes_after(self, view):
        final = f.failed("task-1", attempt=1, t=5, retryable=False)
        await view.apply(
            at_offsets([f.submitted("task-1"), f.assigned("task-1", t=3), final, f.routed("task-1", t=8)])
        )  # a router that read the submission again

        [task] = await self.rows(view, "tasks")
        assert task["status"] == "failed"

    async def test_a_retryable_failure_gives_way_to_the_next_attempt(self, view):
        await view.apply(
            at_offsets(
                [
                    f.submitted("task-1"),
                    f.assigned("task-1", t=3),
                    f.failed("task-1", attempt=1, t=5, retryable=True),
                    f.assigned("task-1", "agent-2", attempt=2, t=6),
                ]
            )
        )

        [task] = await self.rows(view, "tasks")
        assert (task["status"], task["attempt"], task["assigned_agent_id"]) == ("assigned", 2, "agent-2")
