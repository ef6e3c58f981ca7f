"""The balancer's clock waits for its forwarder: no tick judges inputs that are not copied yet."""

from types import SimpleNamespace

from aiokafka import TopicPartition

from services.balancer.history import ForwarderProgress, forwarded

A, B = TopicPartition("p.tasks", 0), TopicPartition("p.task-outcomes", 0)


def test_forwarded_when_every_partition_with_records_is_committed_up_to_its_mark():
    assert forwarded({A: 10, B: 3}, {A: 10, B: 3})
    assert forwarded({A: 12}, {A: 10, B: 0})  # nothing was ever on B
    assert not forwarded({A: 9, B: 3}, {A: 10, B: 3})
    assert not forwarded({A: 10}, {A: 10, B: 3})  # B has records the forwarder never committed


class FakeAdmin:
    def __init__(self) -> None:
        self.committed: dict = {}

    async def list_consumer_group_offsets(self, group):
        return {tp: SimpleNamespace(offset=offset) for tp, offset in self.committed.items()}


class FakeProbe:
    def __init__(self) -> None:
        self.ends: dict = {}

    async def end_offsets(self, partitions):
        return dict(self.ends)


async def test_a_tick_waits_until_what_was_there_at_the_last_tick_is_copied():
    progress = ForwarderProgress.__new__(ForwarderProgress)
    progress.group, progress.partitions, progress.marks = "g", [A, B], None
    progress.admin, progress.probe = FakeAdmin(), FakeProbe()

    progress.probe.ends = {A: 5, B: 2}
    assert not await progress.caught_up()  # the first time: the marks are what is there, 5 and 2
    progress.admin.committed = {A: 5, B: 2}
    assert await progress.caught_up()
    progress.probe.ends = {A: 9, B: 2}
    progress.admin.committed = {A: 4, B: 2}
    assert not await progress.caught_up()  # the forwarder is behind what was there
    assert not await progress.caught_up()
    progress.admin.committed = {A: 5, B: 2}
    assert await progress.caught_up()  # caught up with the marks; they move to 9 and 2
    assert progress.marks == {A: 9, B: 2}
