import pytest

from services.sdk.ledger import MAX_METADATA, Ledger, LedgerMetadataError, Position, decode, encode


def received(ledger: Ledger, *offsets: int) -> list[int]:
    return [o for o in offsets if ledger.receive(o)]


def test_a_new_ledger_commits_where_it_starts():
    assert Ledger(7).position() == Position(7, "")


def test_in_order_completion_moves_the_position_past_each_record():
    ledger = Ledger(0)
    received(ledger, 0, 1, 2)
    for offset in (0, 1, 2):
        ledger.finish(offset)
    assert ledger.position() == Position(3, "")


def test_the_position_stays_on_the_oldest_open_record_and_names_the_later_open_ones():
    ledger = Ledger(10)
    received(ledger, 10, 11, 12, 13, 14)
    ledger.finish(11)
    ledger.finish(13)
    position = ledger.position()
    assert position.offset == 10
    assert decode(position.offset, position.metadata) == (15, {10, 12, 14})


def test_a_restart_skips_what_was_finished_and_runs_what_was_open():
    before = Ledger(10)
    received(before, 10, 11, 12, 13, 14)
    for offset in (11, 13, 14):
        before.finish(offset)

    after = Ledger.resume(*astuple(before.position()))

    assert received(after, 10, 11, 12, 13, 14, 15) == [10, 12, 15]


def test_a_restart_remembers_the_open_records_until_they_are_read_again():
    before = Ledger(0)
    received(before, 0, 1, 2, 3)
    before.finish(1)
    before.finish(3)
    after = Ledger.resume(*astuple(before.position()))
    received(after, 0)
    after.finish(0)
    # offset 2 is still open though not yet read again; 3 is still known to be finished.
    assert after.position().offset == 2
    assert received(after, 1, 2, 3) == [2]


def test_offsets_that_never_arrive_do_not_hold_the_position_back():
    # Transaction markers take offsets but are never delivered as records.
    ledger = Ledger(0)
    received(ledger, 0, 2, 5)
    for offset in (0, 2, 5):
        ledger.finish(offset)
    assert ledger.position() == Position(6, "")


def test_gaps_below_an_open_record_are_not_replayed_after_a_restart():
    before = Ledger(0)
    received(before, 0, 3, 7)
    before.finish(3)
    before.finish(7)
    after = Ledger.resume(*astuple(before.position()))
    assert received(after, 0, 3, 7, 8) == [0, 8]


def test_records_of_other_agents_are_finished_as_soon_as_they_are_read():
    ledger = Ledger(0)
    received(ledger, 0, 1)
    ledger.finish(1)  # not ours
    assert ledger.position().offset == 0
    ledger.finish(0)
    assert ledger.position() == Position(2, "")


def test_the_open_count_is_what_the_read_ahead_window_limits():
    ledger = Ledger(0)
    received(ledger, 0, 1, 2)
    ledger.finish(1)
    assert ledger.open_count == 2


def test_the_widest_window_fits_in_a_commits_metadata_even_far_behind():
    # 256 open records scattered over a billion offsets.
    offset = 5_000_000_000
    still_open = [offset + i * 4_000_000 for i in range(256)]
    assert len(encode(offset, offset + 1_100_000_000, still_open).encode()) < MAX_METADATA


def test_metadata_round_trips():
    assert decode(100, encode(100, 110, {100, 103, 109})) == (110, {100, 103, 109})
    assert decode(100, "") == (100, set())


@pytest.mark.parametrize("metadata", ["garbage", "2:10:1", "1:x:"])
def test_metadata_this_sdk_did_not_write_is_refused_clearly(metadata):
    with pytest.raises(LedgerMetadataError, match="cannot read"):
        Ledger.resume(5, metadata)


def astuple(position: Position) -> tuple[int, str]:
    return position.offset, position.metadata
