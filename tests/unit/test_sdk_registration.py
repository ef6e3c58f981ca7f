import pytest

from events.values import Capability, MemoryProfile
from services.sdk import Agent, InvalidAgent
from services.sdk.registration import SDK_VERSION, declaration
from services.settings import Settings

PYTHON = {"name": "python", "proficiency": 0.8}


async def handler(task):
    raise NotImplementedError


def test_a_declaration_becomes_the_registration_event():
    body = declaration(
        agent_id="coder-1",
        capabilities=[Capability(name="python", proficiency=0.8), {"name": "sql", "proficiency": 0.5}],
        capacity=3,
        capacity_per_capability={"sql": 1},
        cost_per_task=0.2,
        labels={"zone": "eu"},
        memory_profile={"store_kind": "vector", "retention_days": 30},
    )
    assert body.display_name == "coder-1"
    assert [c.name for c in body.capabilities] == ["python", "sql"]
    assert body.memory_profile == MemoryProfile(store_kind="vector", retention_days=30)
    assert body.sdk_version == SDK_VERSION


@pytest.mark.parametrize(
    "change, complaint",
    [
        ({"capacity": -1}, "capacity: Input should be greater than or equal to 1"),
        ({"capabilities": [{"name": "python", "proficiency": 1.5}]}, "capabilities.0.proficiency"),
        ({"capabilities": [PYTHON, PYTHON]}, "duplicate names: python"),
        ({"capabilities": [{**PYTHON, "level": 3}]}, "capabilities.0.level: Extra inputs are not permitted"),
        ({"memory_profile": {"store_kind": "kv", "ttl": 3}}, "memory_profile.ttl: Extra inputs"),
        ({"capacity_per_capability": {"go": 1}}, "undeclared capabilities: go"),
        ({"agent_id": "line\nbreak"}, "agent_id: String should match pattern"),
        ({"capacity": 10_000}, "run more processes"),
        ({"capabilities": 5}, "not iterable"),
    ],
)
def test_an_invalid_declaration_is_refused_before_anything_is_sent(change, complaint):
    arguments = {"agent_id": "coder-1", "capabilities": [PYTHON], "capacity": 2, **change}
    with pytest.raises(InvalidAgent, match=complaint) as refused:
        declaration(**arguments)
    assert isinstance(refused.value, ValueError)


def test_the_agent_checks_its_declaration_and_its_own_settings_when_built():
    settings = Settings.from_env({})
    with pytest.raises(InvalidAgent, match="proficiency"):
        Agent("coder-1", [{"name": "python", "proficiency": -0.1}], 1, handler, settings=settings)
    with pytest.raises(InvalidAgent, match="heartbeat_interval"):
        Agent("coder-1", [PYTHON], 1, handler, heartbeat_interval=0, settings=settings)
    with pytest.raises(InvalidAgent, match="handler"):
        Agent("coder-1", [PYTHON], 1, "not a function", settings=settings)


def test_the_agent_names_its_consumer_group_after_itself():
    agent = Agent("coder-1", [PYTHON], 2, handler, settings=Settings.from_env({}, topic_prefix="acme"))
    assert agent.group_id == "acme.agent.coder-1"
    assert agent.registration.capacity == 2
