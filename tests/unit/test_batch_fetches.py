"""Readers fetch in batches: the routing path waits BATCH_FETCH_MAX_WAIT_MS, readers that batch
their own work anyway wait as long as their batch."""

from services import kafka
from services.settings import Settings


def test_a_batch_reader_waits_the_batch_fetch_wait_by_default():
    settings = Settings().replace(batch_fetch_max_wait_ms=7, batch_fetch_min_bytes=1000)
    assert kafka.batch_fetches(settings) == {
        "fetch_max_wait_ms": 7,
        "fetch_min_bytes": 1000,
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
    }


def test_a_reader_off_the_routing_path_waits_as_long_as_it_was_told_and_at_least_a_millisecond():
    settings = Settings()
    assert kafka.batch_fetches(settings, 200)["fetch_max_wait_ms"] == 200
    assert kafka.batch_fetches(settings, 199.6)["fetch_max_wait_ms"] == 200
    assert kafka.batch_fetches(settings, 0)["fetch_max_wait_ms"] == 1


def test_the_router_view_waits_longer_than_the_routing_hops_by_default():
    settings = Settings()
    assert settings.router.view_fetch_max_wait_ms == 50 > settings.batch_fetch_max_wait_ms


def test_the_routing_decision_readers_are_answered_at_the_first_record():
    settings = Settings().replace(prompt_fetch_max_wait_ms=80)
    assert kafka.prompt_fetches(settings) == {
        "fetch_max_wait_ms": 80,
        "fetch_min_bytes": 1,
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
    }
    assert kafka.prompt_fetches(Settings())["fetch_max_wait_ms"] == 100


async def test_a_prompt_group_consumer_takes_the_prompt_fetches():
    from services.batches import group_consumer

    settings = Settings().replace(prompt_fetch_max_wait_ms=80)
    prompt, batched = group_consumer(settings, "g", prompt=True), group_consumer(settings, "g")
    assert (prompt._fetch_min_bytes, prompt._fetch_max_wait_ms) == (1, 80)
    assert (batched._fetch_min_bytes, batched._fetch_max_wait_ms) == (
        settings.batch_fetch_min_bytes,
        settings.batch_fetch_max_wait_ms,
    )
