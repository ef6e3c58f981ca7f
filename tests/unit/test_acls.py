"""infra/acls.toml to Kafka ACL bindings, and what `acl apply` changes: no broker."""

import pytest

from services.security.acls import AclFileError, Binding, bindings, in_scope, load, plan, principals

PREFIX = "orch"


def given(**roles) -> dict:
    return {"principals": roles}


def allowed(document, user):
    return {
        (b.resource_type, b.pattern_type, b.resource_name, b.operation)
        for b in bindings(document, PREFIX)
        if b.principal == f"User:{user}"
    }


def test_a_read_topic_gives_read_and_describe_configs_on_that_topic_only():
    document = given(projector={"read": ["tasks"], "groups": ["{prefix}.projector"]})
    assert allowed(document, "projector") == {
        ("topic", "literal", "orch.tasks", "read"),
        ("topic", "literal", "orch.tasks", "describe_configs"),
        ("group", "literal", "orch.projector", "read"),
    }


def test_internal_topics_and_transactional_ids_are_prefixed_patterns():
    document = given(
        health={"internal_topic_prefixes": ["{prefix}.health-"], "transactional_id_prefixes": ["{prefix}.health-"]}
    )
    assert allowed(document, "health") == {
        ("topic", "prefixed", "orch.health-", "all"),
        ("transactional_id", "prefixed", "orch.health-", "write"),
    }


def test_every_topic_is_the_prefix_itself_as_a_prefixed_pattern():
    assert ("topic", "prefixed", "orch.", "read") in allowed(given(audit={"read": ["*"]}), "audit")


def test_a_role_with_users_grants_each_of_them_and_not_the_role_name():
    document = given(agents={"users": ["agent", "agent-2"], "write": ["heartbeats"]})
    assert allowed(document, "agent") == allowed(document, "agent-2") != set()
    assert allowed(document, "agents") == set()
    assert principals(document) == ["agent", "agent-2"]


def test_the_project_file_gives_agents_no_access_to_tasks_or_outcome_reading():
    document = load()
    agent = allowed(document, "agent")
    assert ("topic", "literal", "orch.task-outcomes", "write") in agent
    assert ("topic", "literal", "orch.assignments", "read") in agent
    assert not any(name == "orch.tasks" for _, _, name, _ in agent)
    assert ("topic", "literal", "orch.task-outcomes", "read") not in agent


def test_the_project_file_lets_only_the_health_monitor_write_verdicts():
    document = load()
    every_principal = principals(document)
    health_topic = ("topic", "literal", "orch.health")
    writers = {user for user in every_principal if (*health_topic, "write") in allowed(document, user)}
    readers = {user for user in every_principal if (*health_topic, "read") in allowed(document, user)}
    assert writers == {"health"}
    # the processors that act on verdicts; audit reads every topic through its prefixed pattern
    assert readers == {"projector", "router", "balancer"}
    assert ("topic", "prefixed", "orch.", "read") in allowed(document, "audit")
    for agent in ("agent", "agent-2"):
        assert not any(name == "orch.health" for _, _, name, _ in allowed(document, agent))


def test_the_project_file_names_every_processor_and_agent_principal():
    assert set(principals(load())) >= {
        "projector",
        "router",
        "balancer",
        "health",
        "learner",
        "audit",
        "agent",
        "agent-2",
        "submitter",
    }


def test_the_project_file_lets_a_submitter_write_tasks_and_read_their_fate_only():
    submitter = allowed(load(), "submitter")
    assert submitter == {
        ("topic", "literal", "orch.tasks", "write"),
        ("topic", "literal", "orch.tasks", "read"),
        ("topic", "literal", "orch.tasks", "describe_configs"),
        ("topic", "literal", "orch.task-outcomes", "read"),
        ("topic", "literal", "orch.task-outcomes", "describe_configs"),
    }


def test_the_project_file_gives_the_health_monitor_only_what_it_judges_and_the_keys():
    topics_read = {name for kind, _, name, op in allowed(load(), "health") if kind == "topic" and op == "read"}
    assert topics_read == {"orch.agents", "orch.heartbeats", "orch.security"}


def test_the_project_file_keeps_each_processor_to_its_own_group_and_internal_topics():
    document = load()
    for processor in ("health", "router", "balancer", "learner", "audit"):
        groups = {name for kind, _, name, _ in allowed(document, processor) if kind == "group"}
        internal = {name for kind, pattern, name, op in allowed(document, processor) if kind == "topic" and op == "all"}
        # the Faust app's group, and those of the batch readers it runs, named after it
        assert f"orch.{processor}" in groups
        assert all(name == f"orch.{processor}" or name.startswith(f"orch.{processor}-") for name in groups), groups
        assert internal == {f"orch.{processor}-"}


@pytest.mark.parametrize(
    "document, complaint",
    [
        ({}, "no [principals"),
        (given(router={"reed": ["tasks"]}), "unknown key(s) reed"),
        (given(router={"read": ["taks"]}), "'taks' is not a topic of the catalog"),
        (given(router={"read": "tasks"}), "must be a list"),
        (given(router={"groups": ["router"]}), "must start with {prefix}"),
        (given(router={"groups": ["{prefix}.{who}"]}), "may only use {prefix}"),
    ],
)
def test_a_bad_file_is_a_clear_error(document, complaint):
    with pytest.raises(
        AclFileError,
        match=complaint.replace("[", r"\[")
        .replace("(", r"\(")
        .replace(")", r"\)")
        .replace("{", r"\{")
        .replace("}", r"\}"),
    ):
        bindings(document, PREFIX)


def test_a_missing_or_broken_file_is_a_clear_error(tmp_path):
    with pytest.raises(AclFileError, match="cannot read the ACL file"):
        load(tmp_path / "absent.toml")
    (tmp_path / "broken.toml").write_text("[principals\n")
    with pytest.raises(AclFileError, match="not valid TOML"):
        load(tmp_path / "broken.toml")


def binding(name, principal="User:router", operation="read", pattern="literal"):
    return Binding(principal, "topic", pattern, name, operation)


def test_apply_adds_what_is_missing_and_removes_what_the_file_does_not_say():
    desired = [binding("orch.tasks"), binding("orch.agents")]
    current = [binding("orch.tasks"), binding("orch.heartbeats")]
    changes = plan(desired, current, PREFIX)
    assert changes.create == [binding("orch.agents")]
    assert changes.delete == [binding("orch.heartbeats")]


def test_apply_twice_changes_nothing():
    desired = bindings(load(), PREFIX)
    assert plan(desired, desired, PREFIX).create == plan(desired, desired, PREFIX).delete == []


def test_apply_leaves_other_prefixes_alone():
    others = [binding("orchestra.tasks"), binding("other.tasks"), binding("orch-2.", pattern="prefixed")]
    assert plan([], others, PREFIX).delete == []
    assert not any(in_scope(b, PREFIX) for b in others)
    assert in_scope(binding("orch.", pattern="prefixed"), PREFIX)
