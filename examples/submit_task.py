"""Submit one task and assign it straight to an agent, then print how it ended.

    python examples/submit_task.py --agent-id echo-1 --text hello [--sleep 5]

There is no router or balancer yet, so this script plays both: it publishes TaskSubmitted
and the TaskAssigned the balancer would publish.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from aiokafka import TopicPartition

from events.codec import decode
from events.envelope import make_event
from events.tasks import TaskAssigned, TaskSubmitted
from events.values import CapabilityRequirement
from services import kafka
from services.sdk.partitions import partition_for
from services.settings import Settings

ENDINGS = {"TaskCompleted", "TaskFailed", "TaskRejected", "TaskHandedOff"}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agent-id", required=True)
    parser.add_argument("--task-id", default=None)
    parser.add_argument("--capability", default="echo")
    parser.add_argument("--text", default="hello")
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds the echo agent takes")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the outcome (0: do not wait)")
    args = parser.parse_args()

    settings = Settings.from_env()
    task_id = args.task_id or f"task-{uuid.uuid4().hex[:8]}"
    payload = {"text": args.text, "sleep_s": args.sleep}
    submitted = make_event(
        TaskSubmitted(
            task_id=task_id,
            submitter="submit-task",
            payload=payload,
            requirements=(CapabilityRequirement(name=args.capability),),
        ),
        producer="submit-task",
    )
    assigned = make_event(
        TaskAssigned(task_id=task_id, agent_id=args.agent_id, attempt=1, capability=args.capability, payload=payload),
        producer="submit-task",
        cause=submitted,
    )

    await kafka.ensure_topics(settings)
    producer = kafka.producer(settings)
    await kafka.start(producer, settings)
    try:
        outcomes = await _outcomes_from_now(settings, producer, task_id)
        for event in (submitted, assigned):
            await kafka.publish(producer, settings, event)
    finally:
        await producer.stop()
    print(f"submitted {task_id} and assigned it to {args.agent_id}")
    try:
        if args.timeout > 0:
            await _print_outcomes(outcomes, task_id, args.timeout)
    finally:
        await outcomes.stop()


async def _outcomes_from_now(settings: Settings, producer, task_id: str):
    topic = settings.topic("task-outcomes")
    tp = TopicPartition(topic, partition_for(task_id, len(await producer.partitions_for(topic))))
    consumer = kafka.consumer(settings, isolation_level="read_committed")
    await kafka.start(consumer, settings)
    consumer.assign([tp])
    await consumer.seek_to_end(tp)
    await consumer.position(tp)  # fixes "now" before anything is published
    return consumer


async def _print_outcomes(consumer, task_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for records in (await consumer.getmany(timeout_ms=500)).values():
            for record in records:
                event = decode(record.value)
                if getattr(event.body, "task_id", None) != task_id:
                    continue
                details = event.body.model_dump(exclude={"task_id", "agent_id", "attempt"})
                print(f"{event.event_type} from {event.producer}: {details}")
                if event.event_type in ENDINGS:
                    return
    print(f"no outcome within {timeout:.0f}s; is the agent running?")


if __name__ == "__main__":
    asyncio.run(main())
