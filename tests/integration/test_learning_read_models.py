"""The learner's read models on real PostgreSQL, with the projection contract's guarantees."""

import random

import pytest
from psycopg import sql
from psycopg.rows import dict_row

from events.envelope import make_event
from events.learning import ModelPublished, RelationshipScored, SkillEstimated, SkillShiftDetected
from services.projector.bootstrap import open_view
from tests.factories import at
from tests.projection_contract import at_offsets

pytestmark = pytest.mark.integration


def skill(agent_id: str, proficiency: float, *, t: float, capability: str = "python", attempts: int = 10):
    return make_event(
        SkillEstimated(
            agent_id=agent_id,
            capability=capability,
            proficiency=proficiency,
            confidence=0.5,
            successes=round(proficiency * attempts),
            attempts=attempts,
            model_version="success-10",
        ),
        producer="learner",
        occurred_at=at(t),
    )


def learning_log():
    return [
        skill("agent-1", 0.5, t=1, attempts=0),
        skill("agent-2", 0.5, t=1, attempts=0),
        skill("agent-1", 0.8, t=5),
        skill("agent-2", 0.6, t=6),
        skill("agent-1", 0.4, t=9, attempts=12),
        make_event(
            SkillShiftDetected(
                agent_id="agent-1", capability="python", direction="degraded", before=0.8, after=0.4, attempts=12
            ),
            producer="learner",
            occurred_at=at(9),
        ),
        make_event(
            RelationshipScored(
                agent_id="agent-1",
                other_agent_id="agent-2",
                joint_tasks=3,
                joint_success_rate=0.67,
                lift=1.1,
                confidence=0.5,
            ),
            producer="learner",
            occurred_at=at(7),
        ),
        make_event(
            RelationshipScored(
                agent_id="agent-1",
                other_agent_id="agent-2",
                joint_tasks=4,
                joint_success_rate=0.75,
                lift=1.2,
                confidence=0.55,
            ),
            producer="learner",
            occurred_at=at(8),
        ),
        make_event(
            ModelPublished(
                model_id="success",
                model_version="success-10",
                kind="logistic-regression",
                parameters={"format": "logistic/1", "weights": {"skill_logit": 1.0}},
                metrics={"accuracy": 0.7, "log_loss": 0.6},
                trained_on_events=10,
            ),
            producer="learner",
            occurred_at=at(10),
        ),
    ]


@pytest.fixture
async def schemas(settings):
    made = []

    async def make(suffix: str):
        view = await open_view(settings, f"{settings.db_schema}_{suffix}")
        made.append(view)
        return view

    yield make
    for view in made:
        await view.conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(view.schema)))
        await view.close()


async def rows(view, query: str) -> list[dict]:
    async with view.conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query)
        return await cur.fetchall()


async def test_learned_events_become_estimates_trajectories_shifts_models_and_relationships(schemas):
    view = await schemas("l")
    await view.apply(at_offsets(learning_log()))

    latest = await rows(view, "SELECT agent_id, proficiency, attempts FROM skill_estimates ORDER BY agent_id")
    assert [(r["agent_id"], r["proficiency"], r["attempts"]) for r in latest] == [
        ("agent-1", 0.4, 12),
        ("agent-2", 0.6, 10),
    ]
    trajectory = await rows(
        view, "SELECT proficiency FROM skill_trajectory WHERE agent_id = 'agent-1' ORDER BY estimated_at"
    )
    assert [r["proficiency"] for r in trajectory] == [0.5, 0.8, 0.4]
    [shift] = await rows(view, "SELECT * FROM skill_shifts")
    assert (shift["direction"], shift["before"], shift["after"]) == ("degraded", 0.8, 0.4)
    [model] = await rows(view, "SELECT * FROM model_versions")
    assert model["metrics"] == {"accuracy": 0.7, "log_loss": 0.6} and model["trained_on_events"] == 10
    [pair] = await rows(view, "SELECT * FROM agent_relationships")
    assert (pair["joint_tasks"], pair["lift"]) == (4, 1.2)
    best = await rows(
        view, "SELECT rank, agent_id, confidence FROM insights_best_agents WHERE capability = 'python' ORDER BY rank"
    )
    assert [(r["rank"], r["agent_id"]) for r in best] == [(1, "agent-2"), (2, "agent-1")]


async def test_the_same_learning_log_in_any_order_gives_the_same_rows(schemas):
    events = learning_log()
    shuffled = random.Random(5).sample(events, len(events))
    one, other = await schemas("o1"), await schemas("o2")
    await one.apply(at_offsets(events))
    await other.apply(at_offsets(shuffled))

    for table in ("skill_estimates", "skill_trajectory", "skill_shifts", "model_versions", "agent_relationships"):
        query = f"SELECT * FROM {table} ORDER BY 1, 2"
        assert await rows(one, query) == await rows(other, query), table


async def test_a_learning_event_at_a_position_already_stored_changes_nothing(schemas):
    view = await schemas("p")
    batch = at_offsets(learning_log())
    await view.apply(batch)
    before = await rows(view, "SELECT * FROM skill_trajectory ORDER BY event_id")

    assert await view.apply(batch) == 0
    assert await rows(view, "SELECT * FROM skill_trajectory ORDER BY event_id") == before
