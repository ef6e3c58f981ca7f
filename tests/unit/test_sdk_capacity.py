import pytest

from services.sdk.capacity import MAX_OPEN, Slots, read_ahead_window


def test_no_more_than_capacity_tasks_run_at_once():
    slots = Slots(2)
    slots.take("python")
    slots.take("sql")
    assert not slots.free("python")
    with pytest.raises(RuntimeError):
        slots.take("python")
    slots.give_back("sql")
    assert slots.free("python")
    assert slots.in_flight == 1


def test_a_capability_limit_holds_back_only_that_capability():
    slots = Slots(4, {"gpu": 1})
    slots.take("gpu")
    assert not slots.free("gpu")
    assert slots.free("python")
    slots.take("python")
    assert slots.running("gpu") == 1 and slots.in_flight == 2


def test_the_overall_capacity_also_binds_a_capability_with_its_own_limit():
    slots = Slots(1, {"gpu": 3})
    slots.take("python")
    assert not slots.free("gpu")


def test_giving_back_a_slot_never_taken_is_a_bug():
    with pytest.raises(RuntimeError):
        Slots(1).give_back("python")


def test_the_read_ahead_window_doubles_capacity_up_to_what_a_commit_can_name():
    assert read_ahead_window(1) == 2
    assert read_ahead_window(8) == 16
    assert read_ahead_window(MAX_OPEN) == MAX_OPEN
