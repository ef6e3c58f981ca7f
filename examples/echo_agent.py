"""A runnable agent that echoes its task's payload back.

    python examples/echo_agent.py --agent-id echo-1
    python examples/submit_task.py --agent-id echo-1 --text hello

A payload with "sleep_s" makes the task take that long; "fail" makes it fail.
SIGTERM or Ctrl-C drains the running tasks, deregisters and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from services import kafka
from services.sdk import Agent, Capability, Completed, Failed, Task
from services.settings import Settings


async def echo(task: Task) -> Completed:
    await asyncio.sleep(float(task.payload.get("sleep_s", 0)))
    if task.payload.get("fail"):
        raise Failed(str(task.payload["fail"]), retryable=False)
    text = str(task.payload.get("text", ""))
    return Completed(result_summary=f"echo: {text}", metrics={"chars": float(len(text))})


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agent-id", required=True)
    parser.add_argument("--capability", default="echo")
    parser.add_argument("--capacity", type=int, default=4)
    parser.add_argument("--heartbeat-interval", type=float, default=5.0)
    parser.add_argument("--drain-timeout", type=float, default=30.0)
    args = parser.parse_args()

    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    await kafka.ensure_topics(settings)  # a fresh local stack has no topics yet
    agent = Agent(
        args.agent_id,
        [Capability(name=args.capability, proficiency=0.9)],
        args.capacity,
        echo,
        labels={"example": "echo"},
        version="echo-1.0",
        settings=settings,
        heartbeat_interval=args.heartbeat_interval,
        drain_timeout=args.drain_timeout,
    )
    await agent.run(install_signal_handlers=True)


if __name__ == "__main__":
    asyncio.run(main())
