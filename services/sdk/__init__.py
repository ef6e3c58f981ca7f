"""The Python agent SDK: `Agent(agent_id, capabilities, capacity, handler).run()`."""

from events.values import Capability, CapabilityRequirement, MemoryProfile
from services.sdk.agent import Agent, NotDeregistered
from services.sdk.registration import SDK_VERSION, InvalidAgent
from services.sdk.results import Completed, Failed, Rejected
from services.sdk.task import Task
from services.sdk.transport import Fenced, MissingTopic

__all__ = [
    "SDK_VERSION",
    "Agent",
    "Capability",
    "CapabilityRequirement",
    "Completed",
    "Failed",
    "Fenced",
    "InvalidAgent",
    "MemoryProfile",
    "MissingTopic",
    "NotDeregistered",
    "Rejected",
    "Task",
]
