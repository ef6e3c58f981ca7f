"""The testcontainers path is configured as the library accepts it, checked without a Docker engine."""

from __future__ import annotations

import pytest

from tests.containers import KAFKA_IMAGE, POSTGRES_IMAGE, kafka_container, postgres_container


class NoEngine:
    """Stands in for the Docker client: building a container's configuration needs no engine."""

    def __init__(self, **_kwargs) -> None:
        pass


@pytest.fixture(autouse=True)
def no_engine(monkeypatch):
    monkeypatch.setattr("testcontainers.core.container.DockerClient", NoEngine)


def test_kafka_runs_in_kraft_mode_as_broker_and_controller():
    kafka = kafka_container()
    kafka.configure()
    assert kafka.image == KAFKA_IMAGE and kafka.kraft_enabled
    assert kafka.env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka.env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    assert "kafka-storage format" in kafka.boot_command


def test_the_library_refuses_an_image_it_cannot_start_in_kraft_mode():
    from testcontainers.community.kafka import KafkaContainer

    with pytest.raises(ValueError, match="not supported in Kraft mode"):
        KafkaContainer("apache/kafka:4.1.1").with_kraft()


def test_postgres_is_version_15_with_a_plain_postgresql_url():
    postgres = postgres_container()
    assert postgres.image == POSTGRES_IMAGE
    assert postgres.username and postgres.dbname
    assert postgres.driver == ""  # postgresql://, as psycopg 3 takes it, not postgresql+psycopg2://
