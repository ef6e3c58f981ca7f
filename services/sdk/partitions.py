"""Which partition a key lands on, the way Kafka's default partitioner puts it there."""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def partition_for(key: str, partitions: int) -> int:
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, got {partitions}")
    # Same arithmetic as the Java client's and aiokafka's DefaultPartitioner for non-null keys.
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions
