"""Every variable with a rule refuses a value that breaks it, naming the variable; defaults pass."""
from __future__ import annotations

from dataclasses import fields

import pytest

from services.settings import ConfigError, Settings

RULED = [f.metadata["env"] for f in fields(Settings) if f.metadata["rule"]]


def test_the_defaults_are_valid():
    Settings.from_env({})


@pytest.mark.parametrize("variable", RULED)
def test_a_value_breaking_the_rule_is_refused_with_the_variables_name(variable):
    broken = " " if variable in ("KAFKA_BOOTSTRAP_SERVERS", "AUDIT_CHECKPOINT_DIR", "AUDIT_SIGNING_KEY_FILE",
                                 "BENCH_RESULTS_DIR") else "-1 x"
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
