import pytest
from aiokafka.partitioner import DefaultPartitioner, murmur2

from services.sdk.partitions import partition_for


def test_agrees_with_the_producers_default_partitioner():
    partitions = list(range(6))
    for i in range(500):
        key = f"agent-{i}"
        assert partition_for(key, 6) == DefaultPartitioner()(key.encode(), partitions, partitions)


@pytest.mark.parametrize(
    "key, java_murmur2",
    [
        # From the Java client's UtilsTest.testMurmur2.
        ("21", -973932308),
        ("foobar", -790332482),
        ("a-little-bit-long-string", -985981536),
        ("abc", 479470107),
    ],
)
def test_hashes_as_the_java_client_does(key, java_murmur2):
    assert murmur2(key.encode()) == java_murmur2 & 0xFFFFFFFF
    assert partition_for(key, 6) == (java_murmur2 & 0x7FFFFFFF) % 6


def test_every_partition_is_reachable():
    assert {partition_for(f"agent-{i}", 6) for i in range(100)} == set(range(6))


def test_a_topic_without_partitions_is_an_error():
    with pytest.raises(ValueError):
        partition_for("agent-1", 0)
