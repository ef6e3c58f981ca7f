"""Every variable with a rule refuses a value that breaks it, naming the variable; defaults pass."""

from __future__ import annotations

import pytest

from services.settings import ConfigError, Settings, _text, variables

# Free text (a name, a path, a password) has no rule beyond being text.
RULED = [f.metadata["env"] for _, f in variables() if f.metadata["rule"] is not _text]


def test_the_defaults_are_valid():
    Settings.from_env({})


@pytest.mark.parametrize("variable", RULED)
def test_a_value_breaking_the_rule_is_refused_with_the_variables_name(variable):
    broken = (
        " "
        if variable
        in ("KAFKA_BOOTSTRAP_SERVERS", "AUDIT_CHECKPOINT_DIR", "AUDIT_SIGNING_KEY_FILE", "BENCH_RESULTS_DIR")
        else "-1 x"
    )
    with pytest.raises(ConfigError, match=f"^{variable} "):
        Settings.from_env({variable: broken})


def test_a_password_in_a_refused_url_is_not_repeated():
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"DATABASE_URL": "mysql://user:s3cret@db/x"})
    assert "s3cret" not in str(refused.value)


def test_checks_across_variables_still_hold():
    with pytest.raises(ConfigError, match="HEALTH_DEGRADED_AFTER_MISSED must be less than"):
        Settings.from_env({"HEALTH_DEGRADED_AFTER_MISSED": "4", "HEALTH_UNHEALTHY_AFTER_MISSED": "4"})
    with pytest.raises(ConfigError, match="AUDIT_DB_SCHEMA must differ"):
        Settings.from_env({"AUDIT_DB_SCHEMA": "orchestrator"})


def test_each_value_has_its_fields_type_from_the_environment_and_from_an_override():
    read = Settings.from_env({"METRICS_PORT": "9100", "HEALTH_HEARTBEAT_INTERVAL_S": "2.5"})
    assert (read.metrics_port, read.health.heartbeat_interval_s) == (9100, 2.5)
    assert read.replace(metrics_port="9200", health_heartbeat_interval_s="3").health.heartbeat_interval_s == 3.0
    for owner, f in variables(read):
        assert isinstance(getattr(owner, f.name), eval(f.type)), f.name  # the annotation is the truth


def test_the_environment_of_a_child_process_reads_back_to_the_same_settings():
    from services.settings import as_environ

    given = Settings.from_env({"METRICS_PORT": "9100", "ROUTER_TEMPERATURE": "0.5"})
    assert Settings.from_env(as_environ(given)) == given


def test_each_processor_has_a_section_of_its_own_and_overrides_reach_it_by_flat_name():
    settings = Settings.from_env({"ROUTER_SEED": "5"}, balancer_max_attempts="4")
    assert (settings.router.seed, settings.balancer.max_attempts) == (5, 4)
    assert not hasattr(settings, "router_seed")
    with pytest.raises(TypeError, match="unknown setting"):
        Settings.from_env({}, router_no_such_thing="1")
