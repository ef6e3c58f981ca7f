"""`orchestrator whatif` over decisions written to the real Kafka, its run landing in the real PostgreSQL."""

import asyncio
import io
import json
import os
import random
import sys
from datetime import timedelta

import pytest

from bench.evaluation.whatif.command import whatif
from events.envelope import make_event
from events.tasks import TaskAssigned, TaskCompleted, TaskSubmitted
from events.values import CapabilityRequirement
from projections.ops import Position
from projections.task_handlers import task_assigned
from services import kafka
from services.projector.bootstrap import open_view
from services.router.logic import AgentState, RouterState, Weights, route
from tests.e2e.helpers import drop_schema, fetch, publish_all
from tests.factories import at

pytestmark = pytest.mark.integration

SKILL = {"a1": 0.9, "a2": 0.5, "a3": 0.2}


def logged_decisions(tasks: int = 60) -> list:
    """The router's real decisions over a small fleet, each assignment with its probability and an
    outcome drawn from the agent's skill; every fifth task's events are delivered twice."""
    state, rng, outcomes = RouterState(), random.Random(5), random.Random(6)
    for agent, skill in SKILL.items():
        state.agents[agent] = AgentState(agent_id=agent, capabilities={"python": skill}, capacity=10)
    weights = Weights(temperature=0.3, top_k=3)
    events = []
    for n in range(tasks):
        task = TaskSubmitted(task_id=f"t{n}", submitter="s", requirements=(CapabilityRequirement(name="python"),))
        decision = route(task, state, weights, rng)
        agent = decision.chosen_agent_id
        these = [
            make_event(body, producer="test", occurred_at=at(n) + timedelta(milliseconds=i))
            for i, body in enumerate(
                (
                    task,
                    decision,
                    TaskAssigned(
                        agent_id=agent,
                        task_id=task.task_id,
                        attempt=1,
                        capability="python",
                        propensity=decision.propensity,
                    ),
                    TaskCompleted(
                        task_id=task.task_id, agent_id=agent, attempt=1, success=outcomes.random() < SKILL[agent]
                    ),
                )
            )
        ]
        events += these + (these[1:] if n % 5 == 0 else [])
    return events


async def test_whatif_reads_the_log_and_stores_its_run(settings):
    await kafka.ensure_topics(settings)
    await publish_all(settings, logged_decisions())
    progress = io.StringIO()
    try:
        run = await whatif(settings, ["router:temperature=0.3", "agent:a1", "random"], resamples=200, out=progress)
        stored = await fetch(settings, "SELECT * FROM whatif_runs WHERE run_id = %s ORDER BY policy", (run.run_id,))
    finally:
        await drop_schema(settings, settings.db_schema)

    assert len(run.decisions) == 60 and run.skipped["events delivered twice"] == 12 * 3
    assert "whatif:" in progress.getvalue() and "(100%)" in progress.getvalue()
    by_policy = {r["policy"]: r for r in stored}
    assert set(by_policy) == {"router:temperature=0.3", "agent:a1", "random"}
    logged = sum(d.reward for d in run.decisions) / 60
    same = by_policy["router:temperature=0.3"]
    # The logging policy itself: every weight is 1, so every estimate is the logged success.
    assert same["ips"] == pytest.approx(logged, abs=1e-4) and same["snips"] == pytest.approx(logged, abs=1e-4)
    assert same["effective_sample_size"] == pytest.approx(60, abs=0.1)
    for row in stored:
        assert row["decisions"] == 60 and row["logged_success"] == pytest.approx(logged)
        assert row["ips_low"] <= row["ips"] <= row["ips_high"] and row["dr_low"] <= row["dr"] <= row["dr_high"]
    assert by_policy["agent:a1"]["snips"] > by_policy["random"]["snips"]


async def test_the_command_prints_json_and_says_how_far_it_has_read(settings):
    await kafka.ensure_topics(settings)
    await publish_all(settings, logged_decisions(20))
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DATABASE_URL": settings.database_url,
        "ORCHESTRATOR_TOPIC_PREFIX": settings.topic_prefix,
        "ORCHESTRATOR_DB_SCHEMA": settings.db_schema,
    }
    try:
        command = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.cli",
            "whatif",
            "--policy",
            "greedy",
            "--policy",
            "best-single",
            "--since",
            at(10).isoformat(),
            "--resamples",
            "100",
            "--json",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(command.communicate(), 120)
        stored = await fetch(settings, "SELECT policy, decisions, since FROM whatif_runs ORDER BY policy")
    finally:
        await drop_schema(settings, settings.db_schema)

    assert command.returncode == 0, err.decode()
    result = json.loads(out)
    assert result["decisions"] == 10  # tasks 10 to 19: the window begins at the 10th decision
    assert [p["policy"] for p in result["policies"]][0] == "greedy"
    assert result["policies"][1]["policy"].startswith("best-single (")
    assert "records read (100%)" in err.decode()
    assert [(r["decisions"], r["since"]) for r in stored] == [(10, at(10))] * 2


async def test_the_assignments_propensity_is_projected_for_analysts(settings):
    event = make_event(
        TaskAssigned(agent_id="a1", task_id="t1", attempt=1, capability="python", propensity=0.25), producer="balancer"
    )
    view = await open_view(settings)
    try:
        await view.apply([(Position("assignments", 0, 0), task_assigned(event))])
        [row] = await fetch(settings, "SELECT agent_id, propensity FROM task_assignments WHERE task_id = 't1'")
    finally:
        await view.close()
        await drop_schema(settings, settings.db_schema)
    assert row == {"agent_id": "a1", "propensity": 0.25}
