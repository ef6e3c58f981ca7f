"""The containers the suite starts when a Docker engine is reachable (see tests/conftest.py).

The library's Kafka container runs its KRaft setup through Confluent's start scripts and checks
that the image's tag is a Confluent Platform version of at least 7.0.0, so the image is
Confluent's build of Apache Kafka (7.9 is Kafka 3.9, which has every feature the project uses:
KRaft, transactions, read_committed, the KRaft authorizer), not the apache/kafka image, which it
refuses.
"""

from __future__ import annotations

import warnings

KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"
POSTGRES_IMAGE = "postgres:15"


def kafka_container():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from testcontainers.community.kafka import KafkaContainer
    return KafkaContainer(KAFKA_IMAGE).with_kraft()


def postgres_container():
    from testcontainers.community.postgres import PostgresContainer

    return PostgresContainer(POSTGRES_IMAGE, driver=None)
