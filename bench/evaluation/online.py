"""`orchestrator evaluate`: a real outcome log replayed through the running router, balancer and learner.

Every agent in the log attempted every task, so whichever agent the router picks, the log
says how that agent did: a replay fleet answers each assignment with the logged outcome.
Agents register knowing nothing (proficiency 0.5 everywhere); tasks are submitted in the
log's order with a bounded number outstanding, so what is learned from early outcomes
reaches the router before later tasks are decided.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.evaluation.outcome_log import LoggedTask, load
from bench.evaluation.simulator.run import processors
from events.agents import AgentRegistered
from events.codec import decode, encode, type_header
from events.envelope import Envelope, make_event
from events.learning import ModelPublished, SkillEstimated
from events.tasks import TaskAssigned, TaskCompleted, TaskRouted, TaskStarted
from events.topics import topic_for_event, topic_name
from events.values import Capability, MemoryProfile
from services import kafka
from services.identity.keyring import Keyring
from services.learner.metrics import PrequentialMetrics
from services.settings import Settings
from services.success_model.beta import Counts

DECLARED = 0.5
PRODUCER = "evaluation"
PUBLISH_EVERY = 50
# Global settings of the learned policy for this replay, not fitted to the log's outcomes:
# Thompson sampling over the learner's posteriors, drawn with their evidence counted SHARPNESS
# times (less exploration than plain Thompson sampling), among every agent.
SHARPNESS = 4.0
ROUTING = {
    "ROUTER_EXPLORATION": "thompson",
    "ROUTER_THOMPSON_SHARPNESS": str(SHARPNESS),
    "LEARNER_PUBLISH_EVERY": str(PUBLISH_EVERY),
    "BALANCER_START_TIMEOUT_S": "600",
}


@dataclass(frozen=True)
class ColdStart:
    """A newcomer held out of the fleet until `after` tasks were submitted; its first `first` tasks watched."""

    newcomer: str
    after: int
    first: int = 100


def baselines(tasks: list[LoggedTask]) -> dict[str, float]:
    """What simple policies would have achieved on the same tasks, computed from the log."""
    agents = sorted({a for t in tasks for a in t.outcomes})
    n = max(1, len(tasks))
    per_agent = {a: sum(t.outcomes.get(a, False) for t in tasks) for a in agents}
    return {
        "random": round(sum(sum(t.outcomes.values()) / len(t.outcomes) for t in tasks) / n, 4),
        "round_robin": round(sum(t.outcomes.get(agents[i % len(agents)], False) for i, t in enumerate(tasks)) / n, 4),
        "best_single": round(max(per_agent.values(), default=0) / n, 4),
        "oracle": round(sum(any(t.outcomes.values()) for t in tasks) / n, 4),
    }


def best_single_agent(tasks: list[LoggedTask]) -> str:
    agents = sorted({a for t in tasks for a in t.outcomes})
    return max(agents, key=lambda a: (sum(t.outcomes.get(a, False) for t in tasks), a))


class Replay:
    """The replay fleet and the scorekeeper: answers assignments from the log, records decisions."""

    def __init__(self, settings: Settings, tasks: list[LoggedTask], outstanding: int) -> None:
        self.settings = settings
        # with identities verified, the logged agents' enrolled keys (no settings: scoring alone)
        self.keys = Keyring(settings) if settings else None
        self.tasks = {t.task_id: t for t in tasks}
        self.order = [t.task_id for t in tasks]
        self.slots = asyncio.Semaphore(outstanding)
        self.predicted: dict[str, tuple[str, float | None]] = {}  # task -> (chosen agent, predicted success)
        self.outcome: dict[str, tuple[str, bool]] = {}  # task -> (agent, logged outcome)
        self.model: ModelPublished | None = None
        self.done = asyncio.Event()
        self.learner_up = asyncio.Event()  # its first estimate: from then on, outcomes reach the router learned
        self.model_trained_on = 0
        self.learner_read: dict[tuple[str, str], int] = {}  # outcomes read per agent and capability, as estimated
        self.learner_most_behind = 0

    def learner_behind(self) -> int:
        """Outcomes answered that the learner's estimates do not count yet: a learner starved of CPU
        falls behind, and so does what the router knows of it (the report says how far)."""
        behind = max(0, len(self.outcome) - sum(self.learner_read.values()))
        self.learner_most_behind = max(self.learner_most_behind, behind)
        return behind

    def estimated(self, skill: SkillEstimated) -> None:
        self.learner_up.set()
        if skill.outcomes_read is not None:  # an older estimate, read late, takes nothing back
            key = (skill.agent_id, skill.capability)
            self.learner_read[key] = max(self.learner_read.get(key, 0), skill.outcomes_read)

    async def send(self, producer, body, cause: Envelope | None = None) -> None:
        event = make_event(body, producer=PRODUCER, cause=cause)
        value = encode(event)
        await producer.send(
            topic_name(topic_for_event(event.event_type), self.settings.topic_prefix),
            value,
            key=event.key.encode(),
            headers=self.keys.headers(event, value) if self.keys else [type_header(event)],
        )

    async def answer(self, producer) -> None:
        topics = [topic_name(n, self.settings.topic_prefix) for n in ("tasks", "assignments", "models", "skills")]
        consumer = kafka.consumer(self.settings, *topics)
        await kafka.start(consumer, self.settings)
        try:
            async for record in consumer:
                event = decode(record.value)
                body = event.body
                if isinstance(body, TaskRouted) and body.task_id in self.tasks:
                    self.predicted[body.task_id] = (body.chosen_agent_id, body.predicted_success)
                elif isinstance(body, ModelPublished):
                    self.model = body
                    self.model_trained_on = body.trained_on_events
                elif isinstance(body, SkillEstimated):
                    self.estimated(body)
                elif isinstance(body, TaskAssigned) and body.task_id in self.tasks:
                    await self._work(producer, event)
        finally:
            await consumer.stop()

    async def _work(self, producer, assignment: Envelope) -> None:
        body = assignment.body
        success = self.tasks[body.task_id].outcomes.get(body.agent_id, False)
        await self.send(
            producer, TaskStarted(task_id=body.task_id, agent_id=body.agent_id, attempt=body.attempt), assignment
        )
        await self.send(
            producer,
            TaskCompleted(
                task_id=body.task_id, agent_id=body.agent_id, attempt=body.attempt, success=success, duration_ms=1.0
            ),
            assignment,
        )
        if body.task_id not in self.outcome:
            self.slots.release()
        self.outcome[body.task_id] = (body.agent_id, success)
        if len(self.outcome) == len(self.tasks):
            self.done.set()

    def decisions(self, task_ids) -> PrequentialMetrics:
        """The router's predicted success on its own choices, against what the log says came of them."""
        decisions = PrequentialMetrics(window=None)
        for task_id in task_ids:
            agent, success = self.outcome[task_id]
            chosen, predicted = self.predicted.get(task_id, (None, None))
            if chosen == agent and predicted is not None:
                decisions.add(predicted, success)
        return decisions

    def newcomer(self, cold: ColdStart) -> dict:
        after = [t for t in self.order[cold.after :] if t in self.outcome]
        mine = [t for t in after if self.outcome[t][0] == cold.newcomer][: cold.first]
        summary = self.decisions(mine).summary()
        return {
            "newcomer_tasks": len(mine),
            "newcomer_success_rate": _rounded(sum(self.outcome[t][1] for t in mine) / len(mine) if mine else None),
            "newcomer_prediction_accuracy": _rounded(summary.get("accuracy")),
            "newcomer_share_after_joining": round(
                sum(self.outcome[t][0] == cold.newcomer for t in after) / max(1, len(after)), 4
            ),
            "fleet_success_after_joining": round(sum(self.outcome[t][1] for t in after) / max(1, len(after)), 4),
            "routing_success_rate": round(sum(s for _, s in self.outcome.values()) / max(1, len(self.outcome)), 4),
        }

    def score(self) -> dict:
        successes = sum(success for _, success in self.outcome.values())
        summary = self.decisions(self.outcome).summary()
        return {
            "routing_success_rate": round(successes / max(1, len(self.outcome)), 4),
            "prediction_accuracy": _rounded(summary.get("accuracy")),
            "log_loss": _rounded(summary.get("log_loss")),
            "roc_auc": _rounded(summary.get("roc_auc")),
            "brier": _rounded(summary.get("brier")),
            "scored_decisions": int(summary["count"]),
            "running_mean": self.running_mean(),
            "mean_cost": self.mean_cost(),
        }

    def mean_cost(self) -> float | None:
        """What the routed attempts cost on average, where the log says what each agent's attempt cost."""
        costs = [
            cost
            for task_id, (agent, _) in self.outcome.items()
            if (cost := self.tasks[task_id].costs.get(agent)) is not None
        ]
        return round(sum(costs) / len(costs), 6) if costs else None

    def running_mean(self) -> dict:
        """The baseline predictor on the same routed decisions, in submission order: each (agent,
        capability)'s success rate so far, Laplace-smoothed."""
        counts: dict[tuple[str, str], Counts] = {}
        scored = PrequentialMetrics(window=None)
        for task_id in (t for t in self.order if t in self.outcome):
            agent, success = self.outcome[task_id]
            key = (agent, self.tasks[task_id].capability)
            seen = counts.get(key, Counts())
            scored.add((seen.successes + 1.0) / (seen.attempts + 2.0), success)
            counts[key] = seen.plus(success)
        summary = scored.summary()
        return {"prediction_accuracy": _rounded(summary.get("accuracy")), "log_loss": _rounded(summary.get("log_loss"))}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


async def evaluate(
    settings: Settings,
    path: str,
    *,
    limit: int | None = 2000,
    outstanding: int = 50,
    cold_start_after: int | None = None,
    newcomer: str | None = None,
    first: int = 100,
    timeout_s: float = 3600.0,
    log=print,
) -> dict:
    """The log through the system; with `cold_start_after`, twice more with a newcomer joining late:
    once into a fleet that shares its experience, once into one that does not."""
    tasks = load(path, limit)
    cold_start = None
    if cold_start_after is not None:
        cold_start = ColdStart(newcomer or best_single_agent(tasks), cold_start_after, first)
        if cold_start.newcomer not in {a for t in tasks for a in t.outcomes}:
            raise ValueError(f"--newcomer {newcomer!r} is not an agent of the log")
    agents = sorted({a for t in tasks for a in t.outcomes})
    capabilities = sorted({t.capability for t in tasks})
    started = time.monotonic()
    replay = await replay_through_system(settings, tasks, outstanding, timeout_s=timeout_s, log=log)
    seconds = time.monotonic() - started
    result = {
        "data": {"path": path, "tasks": len(tasks), "agents": len(agents), "capabilities": len(capabilities)},
        **replay.score(),
        "baselines": baselines(tasks),
        "learner_model": (
            {"version": replay.model.model_version, "metrics": replay.model.metrics} if replay.model else None
        ),
        "learner_behind": {
            "at_the_end": replay.learner_behind(),
            "at_most": replay.learner_most_behind,
            "unit": "answered outcomes its estimates did not count yet",
        },
        "routing": {
            "exploration": "thompson",
            "sharpness": SHARPNESS,
            "outstanding": outstanding,
            "learner_publish_every": PUBLISH_EVERY,
        },
        "cold_start": None,
        "cold_start_reason": "not asked for (--cold-start-after K)",
        "seconds": round(seconds, 1),
        "tasks_per_second": round(len(tasks) / max(seconds, 1e-9), 1),
    }
    if cold_start is not None:
        result["cold_start"] = {
            "newcomer": cold_start.newcomer,
            "joins_after_tasks": cold_start.after,
            "first_tasks": cold_start.first,
        }
        for variant, share in (("with_sharing", True), ("without_sharing", False)):
            log(
                f"evaluate: cold start {variant.replace('_', ' ')}: {cold_start.newcomer} joins after "
                f"{cold_start.after} tasks"
            )
            run = await replay_through_system(
                settings, tasks, outstanding, share=share, cold_start=cold_start, timeout_s=timeout_s, log=log
            )
            result["cold_start"][variant] = run.newcomer(cold_start)
        result.pop("cold_start_reason")
    return result


async def replay_through_system(
    settings: Settings,
    tasks: list[LoggedTask],
    outstanding: int,
    *,
    share: bool = True,
    cold_start: ColdStart | None = None,
    timeout_s: float = 1800.0,
    log=print,
) -> Replay:
    agents = sorted({a for t in tasks for a in t.outcomes})
    capabilities = sorted({t.capability for t in tasks})
    run = Settings.from_env(
        {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "DATABASE_URL": settings.database_url,
        },
        topic_prefix=f"{settings.topic_prefix}.eval-{uuid.uuid4().hex[:6]}",
    )
    log(f"evaluate: {len(tasks)} tasks, {len(agents)} agents, {len(capabilities)} capabilities on {run.topic_prefix}.*")
    await kafka.ensure_topics(run)
    replay = Replay(run, tasks, outstanding)

    def registration(agent: str) -> AgentRegistered:
        # The log says nothing of capacity (every agent answered every task): no agent is capacity-bound,
        # so the router's load term never pushes a task to a second choice.
        return AgentRegistered(
            agent_id=agent,
            display_name=agent,
            capacity=max(outstanding, len(tasks)),
            capabilities=tuple(Capability(name=c, proficiency=DECLARED) for c in capabilities),
            memory_profile=MemoryProfile(store_kind="none", share_experience=share),
        )

    late = {cold_start.after: registration(cold_start.newcomer)} if cold_start else {}
    await replay.keys.enroll(*agents)
    signing = await replay.keys.orchestrator_env(Path(".local/keys"))
    started = time.monotonic()
    with processors(
        run,
        "orchestrator",
        names=("router", "balancer", "learner"),
        ROUTER_TOP_K=str(len(agents)),
        **ROUTING,
        **signing,
    ):
        producer = kafka.producer(run)
        await kafka.start(producer, run)
        answering = asyncio.create_task(replay.answer(producer))
        try:
            for agent in agents:
                if not cold_start or agent != cold_start.newcomer:
                    await replay.send(producer, registration(agent))
            await asyncio.wait_for(replay.learner_up.wait(), 120.0)
            await asyncio.wait_for(_submit(replay, producer, tasks, started, log, late), timeout_s)
            await asyncio.wait_for(replay.done.wait(), timeout_s)
            await _until_last_model(replay, len(tasks) // PUBLISH_EVERY * PUBLISH_EVERY)
        finally:
            answering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await answering
            await producer.stop()
    return replay


async def _until_last_model(replay: Replay, trained_on: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while replay.model_trained_on < trained_on and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


async def _submit(
    replay: Replay, producer, tasks: list[LoggedTask], started: float, log, late: dict[int, AgentRegistered]
) -> None:
    shown = time.monotonic()
    for n, task in enumerate(tasks, 1):
        if (newcomer := late.get(n - 1)) is not None:
            await replay.send(producer, newcomer)
        await replay.slots.acquire()
        await replay.send(producer, task.submitted())
        if time.monotonic() - shown > 5.0 or n == len(tasks):
            shown = time.monotonic()
            answered = len(replay.outcome)
            rate = sum(s for _, s in replay.outcome.values()) / max(1, answered)
            log(
                f"evaluate: {n}/{len(tasks)} submitted, {answered} answered, success so far {rate:.3f}, "
                f"learner {replay.learner_behind()} behind, {time.monotonic() - started:.0f}s"
            )
    await producer.flush()


def report(result: dict) -> str:
    data = result["data"]
    routing = result["routing"]
    lines = [
        f"Replay through the running system: {data['tasks']} tasks, {data['agents']} agents, "
        f"{data['capabilities']} capabilities ({result['seconds']}s, {result['tasks_per_second']} tasks/s)",
        f"  routing: {routing['exploration']} sampling, sharpness {routing['sharpness']}, "
        f"{routing['outstanding']} tasks outstanding",
        f"  routing success rate   {result['routing_success_rate']:.4f}",
        f"  on {result['scored_decisions']} routed decisions, the router's predicted success:",
        f"    accuracy {result['prediction_accuracy']}, log loss {result['log_loss']}, "
        f"ROC AUC {result['roc_auc']}, Brier {result['brier']}",
        f"    per-(agent, capability) running mean on the same decisions: accuracy "
        f"{result['running_mean']['prediction_accuracy']}, log loss {result['running_mean']['log_loss']}",
        "  baselines on the same tasks, from the log:",
    ]
    lines += [f"    {name:14} {value:.4f}" for name, value in result["baselines"].items()]
    if result.get("mean_cost") is not None:
        lines.append(f"  mean cost of the routed attempts {result['mean_cost']}")
    if model := result["learner_model"]:
        m = model["metrics"]
        lines.append(
            f"  learner model {model['version']}: prequential accuracy {m.get('accuracy', 0):.4f}, "
            f"log loss {m.get('log_loss', 0):.4f}, ROC AUC {m.get('roc_auc', 0):.4f}"
        )
    behind = result["learner_behind"]
    lines.append(
        f"  learner behind the answers: {behind['at_most']} outcomes at most, {behind['at_the_end']} at the end"
    )
    if (cold := result["cold_start"]) is None:
        lines.append(f"  cold start: not measured ({result['cold_start_reason']})")
        return "\n".join(lines)
    lines.append(
        f"  cold start: {cold['newcomer']} joins after {cold['joins_after_tasks']} tasks; "
        f"its first {cold['first_tasks']} tasks:"
    )
    for variant in ("with_sharing", "without_sharing"):
        c = cold[variant]
        lines.append(
            f"    {variant.replace('_', ' '):16} success {c['newcomer_success_rate']} over "
            f"{c['newcomer_tasks']} tasks, prediction accuracy {c['newcomer_prediction_accuracy']}, "
            f"its share after joining {c['newcomer_share_after_joining']:.3f}, "
            f"fleet success after joining {c['fleet_success_after_joining']:.4f}"
        )
    return "\n".join(lines)
