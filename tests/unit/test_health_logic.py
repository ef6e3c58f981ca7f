from datetime import timedelta

from events.agents import AgentHealthChanged, AgentHeartbeat, AgentLoadSummarized
from events.envelope import make_event
from events.tasks import TaskReassigned, TaskSubmitted
from events.values import CapabilityRequirement
from services.health.logic import (
    WATCHED,
    Policy,
    Reading,
    agent_of,
    announced,
    decode_state,
    encode_state,
    new_state,
    on_event,
    on_tick,
    read_to_end,
    read_until,
    remember,
)
from tests.factories import T0, assigned, at, completed, deregistered, registered

POLICY = Policy(
    heartbeat_interval=timedelta(seconds=5),
    degraded_after_missed=2,
    unhealthy_after_missed=4,
    load_window=timedelta(seconds=60),
)


def heartbeat(agent_id="agent-1", *, t: float, in_flight=0, queue_depth=0, cpu=None, memory=None):
    return make_event(
        AgentHeartbeat(
            agent_id=agent_id,
            in_flight=in_flight,
            queue_depth=queue_depth,
            cpu_percent=cpu,
            memory_mb=memory,
            agent_version="1.0",
        ),
        producer=agent_id,
        occurred_at=at(t),
    )


def reassigned(task_id="task-1", from_agent_id="agent-1", *, attempt=2, t: float = 30):
    return make_event(
        TaskReassigned(task_id=task_id, from_agent_id=from_agent_id, attempt=attempt, reason="agent unhealthy"),
        producer="balancer",
        occurred_at=at(t),
    )


class Monitored:
    """One agent's state, driven the way the Faust shell drives it."""

    def __init__(self, agent_id="agent-1"):
        self.state = new_state(agent_id)
        self.forgotten = False

    def when(self, *events, received_at: float | None = None) -> list:
        emitted = []
        for event in events:
            now = event.occurred_at if received_at is None else at(received_at)
            step = on_event(self.state, event, now=now, policy=POLICY)
            self.state = step.state
            emitted += step.emitted
        return emitted

    def tick(self, t: float, watching_since: float | None = None) -> list:
        return self.tick_at(at(t), None if watching_since is None else at(watching_since))

    def tick_at(self, now, watching_since=None) -> list:
        step = on_tick(self.state, now=now, policy=POLICY, watching_since=watching_since)
        self.forgotten = step.state is None
        self.state = step.state or new_state(self.state.agent_id)
        return step.emitted


def given(*events, ticks=()) -> Monitored:
    agent = Monitored()
    agent.when(*events)
    for t in ticks:
        agent.tick(t)
    return agent


def changes(emitted) -> list[tuple[str, str]]:
    return [(e.previous, e.current) for e in emitted if isinstance(e, AgentHealthChanged)]


def summaries(emitted) -> list[AgentLoadSummarized]:
    return [e for e in emitted if isinstance(e, AgentLoadSummarized)]


# --- verdicts -----------------------------------------------------------------------


def test_the_first_heartbeat_of_a_registered_agent_makes_it_healthy():
    agent = given(registered(t=0), heartbeat(t=1))

    emitted = agent.tick(2)

    assert changes(emitted) == [("unknown", "healthy")]
    assert emitted[0].reason == "first heartbeat"


def test_a_registered_agent_never_heard_from_gets_no_verdict():
    agent = given(registered(t=0))

    assert agent.tick(100) == []


def test_an_agent_silent_for_two_intervals_is_degraded():
    agent = given(registered(t=0), heartbeat(t=1), ticks=[2])

    assert agent.tick(10.9) == []
    emitted = agent.tick(11)

    assert changes(emitted) == [("healthy", "degraded")]
    assert emitted[0].missed_heartbeats == 2 and emitted[0].in_flight_task_ids == ()


def test_an_agent_silent_for_four_intervals_is_unhealthy_and_its_tasks_are_left_to_the_balancer():
    agent = given(registered(t=0), heartbeat(t=1), ticks=[6, 11])

    emitted = agent.tick(21)

    assert changes(emitted) == [("degraded", "unhealthy")]
    assert emitted[0].in_flight_task_ids == ()
    assert emitted[0].missed_heartbeats == 4
    assert "its tasks in flight are reassigned" in emitted[0].reason


def test_a_late_tick_goes_straight_from_healthy_to_unhealthy():
    agent = given(registered(t=0), heartbeat(t=1), ticks=[2])

    assert changes(agent.tick(30)) == [("healthy", "unhealthy")]


def test_a_verdict_is_announced_once():
    agent = given(registered(t=0), heartbeat(t=1), ticks=[2, 11])

    assert changes(agent.tick(12)) == []


def test_an_agent_recovers_when_heartbeats_resume():
    agent = given(registered(t=0), heartbeat(t=1), ticks=[2, 30])

    agent.when(heartbeat(t=31))
    emitted = agent.tick(32)

    assert changes(emitted) == [("unhealthy", "healthy")]
    assert emitted[0].reason == "heartbeats resumed"


def test_a_deregistered_agent_is_no_longer_judged_and_is_forgotten():
    agent = given(registered(t=0), heartbeat(t=1), ticks=[2])
    agent.when(deregistered(t=3))

    emitted = agent.tick(65)

    assert changes(emitted) == [] and len(summaries(emitted)) == 1
    assert agent.forgotten


def test_a_deregistered_agent_gets_no_verdict_even_before_its_load_is_summarized():
    agent = given(registered(t=0), heartbeat(t=1), ticks=[2])
    agent.when(deregistered(t=3))

    emitted = agent.tick(30)

    assert changes(emitted) == [] and summaries(emitted) == []
    assert not agent.forgotten  # its open load window is still owed


def test_an_agent_that_registers_again_starts_from_unknown():
    agent = given(registered(t=0), heartbeat(t=1), ticks=[2])
    agent.when(deregistered(t=3), registered(t=4), heartbeat(t=5))

    assert changes(agent.tick(6)) == [("unknown", "healthy")]


def test_an_agent_heard_from_but_not_registered_gets_no_verdict():
    agent = given(heartbeat(t=1))

    assert changes(agent.tick(30)) == []


def test_after_a_restart_silence_is_counted_from_when_watching_began():
    agent = given(registered(t=0), heartbeat(t=1), ticks=[2])

    assert changes(agent.tick(100, watching_since=99)) == []
    assert changes(agent.tick(109, watching_since=99)) == [("healthy", "degraded")]


def test_a_restart_never_makes_a_silent_agent_look_healthy():
    agent = given(registered(t=0), heartbeat(t=1), ticks=[2, 30])

    assert changes(agent.tick(100, watching_since=99)) == []
    assert agent.state.health == "unhealthy"


def test_a_monitor_reading_again_what_it_had_read_keeps_the_verdict_it_announced():
    # Degraded at 13, two intervals after its last beat at 3; the monitor dies and, back,
    # reads its partition again from before that: up to 5, the agent was still healthy.
    beat = heartbeat(t=3)
    agent = given(registered(t=0), heartbeat(t=1), beat, ticks=[4, 13])
    assert agent.state.health == "degraded"

    agent.when(beat)
    assert changes(agent.tick(5, watching_since=20)) == []
    assert changes(agent.tick(12.9, watching_since=20)) == []

    assert agent.state.health == "degraded"
    assert changes(agent.tick(39.9, watching_since=20)) == []
    assert changes(agent.tick(40, watching_since=20)) == [("degraded", "unhealthy")]


def test_a_verdict_remembers_the_time_it_was_judged_at():
    agent = given(registered(t=0), heartbeat(t=1), ticks=[2])

    agent.tick(11)

    assert agent.state.verdict_at == at(11)
    assert decode_state(encode_state(agent.state)).verdict_at == at(11)


def test_an_agent_that_kept_beating_while_the_monitor_was_down_is_not_condemned_by_the_backlog():
    # Healthy when the monitor died at 3; it beat every 4 s until the monitor came back at 60
    # and read that backlog, a tick after each record, judging up to where it had read.
    agent = given(registered(t=0), heartbeat(t=1), ticks=[2])
    reading = Reading()
    until = None
    for offset, t in enumerate(range(5, 60, 4)):
        beat = heartbeat(t=t)
        agent.when(beat)  # heard when the broker wrote it
        reading.finish(offset, beat.occurred_at)
        until = read_until(reading, at_end=False, now=at(60 + offset * 0.01), before=until)
        assert until == at(t)
        assert changes(agent.tick_at(until, watching_since=at(60))) == []

    until = read_until(reading, at_end=True, now=at(62), before=until)
    assert changes(agent.tick_at(until, watching_since=at(60))) == []
    assert agent.state.health == "healthy"


def test_an_agent_that_stopped_while_the_monitor_was_down_is_degraded_then_unhealthy_once_it_is_back():
    agent = given(registered(t=0), heartbeat(t=1), ticks=[2])
    reading = Reading()
    for offset, t in enumerate((5, 9, 13)):  # then silent
        agent.when(heartbeat(t=t))
        reading.finish(offset, at(t))
    behind = read_until(reading, at_end=False, now=at(60))

    assert changes(agent.tick_at(behind, watching_since=at(60))) == []
    assert changes(agent.tick(69.9, watching_since=60)) == []
    assert changes(agent.tick(70, watching_since=60)) == [("healthy", "degraded")]
    assert changes(agent.tick(80, watching_since=60)) == [("degraded", "unhealthy")]


# --- how far the monitor has read -----------------------------------------------------


def read(handed=None, done=None) -> Reading:
    reading = Reading()
    if handed is not None:
        reading.hand(0, handed, handing=1)
    if done is not None:
        reading.finish(done, at(done))
    return reading


def test_a_partition_is_read_to_its_end_once_the_record_before_the_end_is_processed():
    assert read_to_end(read(handed=9, done=9), end=10) is True
    assert read_to_end(read(), end=0, position=0) is True  # nothing there
    assert read_to_end(read(handed=9, done=9), end=None) is False  # end not known


def test_records_handed_over_but_not_processed_keep_it_behind_wherever_the_consumer_is():
    assert read_to_end(read(handed=9, done=4), end=12) is False
    assert read_to_end(read(handed=9, done=4), end=12, position=12) is False
    assert read_to_end(read(handed=9), end=12, position=12) is False


def test_records_handed_over_are_waited_for_while_none_handed_over_later_is_processed():
    agents, heartbeats = Reading(), Reading()
    agents.hand(0, 0, handing=1)  # a registration
    heartbeats.hand(40, 49, handing=1)
    assert heartbeats.finish(40, at(40)) == 1

    # A record of the same handing processed: the registration may be right behind it.
    assert read_to_end(agents, end=1, position=1, processed_in=1) is False


def test_records_handed_over_before_one_processed_since_were_dropped_and_are_waited_for_no_more():
    # After a restart Faust hands over a registration, then drops it when it seeks the
    # partitions to their committed offsets; with none committed, it never fetches it again.
    agents, heartbeats = Reading(), Reading()
    agents.hand(0, 0, handing=1)
    heartbeats.hand(50, 59, handing=2)
    processed_in = heartbeats.finish(50, at(50))

    assert processed_in == 2
    assert read_to_end(agents, end=1, processed_in=processed_in) is None
    assert read_to_end(agents, end=1, position=1, processed_in=processed_in) is True
    # Sought back to before it: it is handed over again, and waited for again.
    assert read_to_end(agents, end=1, position=0, processed_in=processed_in) is False
    agents.hand(0, 0, handing=3)
    assert read_to_end(agents, end=1, position=1, processed_in=processed_in) is False
    assert agents.finish(0, at(60)) == 3
    assert read_to_end(agents, end=1, processed_in=3) is True


def test_a_record_from_an_earlier_handing_of_its_partition_says_nothing_of_the_later_ones():
    reading = Reading()
    reading.hand(0, 9, handing=1)
    reading.hand(10, 19, handing=4)

    assert reading.finish(5, at(5)) == 0
    assert reading.finish(10, at(10)) == 4


def test_what_lies_between_the_last_record_and_the_end_depends_on_the_consumer_s_position():
    # Records 10 and 11 are either not fetched yet, or transaction markers the consumer skipped.
    reading = read(handed=9, done=9)

    assert read_to_end(reading, end=12) is None
    assert read_to_end(reading, end=12, position=10) is False
    assert read_to_end(reading, end=12, position=12) is True
    # Nothing handed over yet (only markers since the committed offset), fetched past them.
    assert read_to_end(read(), end=3, position=3) is True
    assert read_to_end(read(), end=3, position=0) is False


def test_a_partition_behind_is_read_up_to_when_the_newest_record_processed_was_written():
    reading = read(handed=9, done=4)

    assert read_until(reading, at_end=False, now=at(100)) == at(4)
    assert read_until(read(handed=9, done=9), at_end=True, now=at(100)) == at(100)


def test_nothing_processed_of_a_partition_behind_leaves_nothing_to_judge_it_by():
    assert read_until(Reading(), at_end=False, now=at(100)) is None
    assert read_until(Reading(), at_end=True, now=at(100)) == at(100)


def test_judging_never_goes_back_in_time():
    # Read to the end at 100; at the next tick, a burst of records arrived and is being read.
    assert read_until(read(handed=20, done=12), at_end=False, now=at(101), before=at(100)) == at(100)
    assert read_until(Reading(), at_end=False, now=at(101), before=at(100)) == at(100)


# --- announcing verdicts ------------------------------------------------------------------


def test_verdicts_are_remembered_with_the_state_until_announced():
    state = remember(new_state("agent-1"), ["v1", "v2"])
    state = remember(state, ["v3"])

    assert decode_state(encode_state(state)).unannounced == ("v1", "v2", "v3")
    assert announced(state, ["v1", "v2"]).unannounced == ("v3",)
    assert announced(state, ["v1", "v2", "v3"]) == new_state("agent-1")


def test_an_agent_with_a_verdict_not_yet_announced_is_not_forgotten():
    agent = given(registered(t=0), heartbeat(t=1), ticks=[2])
    agent.when(deregistered(t=3))
    agent.tick(65)
    assert agent.forgotten

    unannounced = given(registered(t=0), heartbeat(t=1), ticks=[2])
    unannounced.state = remember(unannounced.state, ["v1"])
    unannounced.when(deregistered(t=3))
    unannounced.tick(65)
    assert not unannounced.forgotten and unannounced.state.unannounced == ("v1",)


# --- what the monitor reads ----------------------------------------------------------


def test_only_agent_events_concern_the_monitor():
    assert agent_of(registered("agent-7").body) == "agent-7"
    assert agent_of(heartbeat("agent-7", t=1).body) == "agent-7"
    assert agent_of(assigned("task-1", "agent-7").body) is None
    assert agent_of(completed("task-1", "agent-7").body) is None
    assert agent_of(reassigned("task-1", "agent-7", attempt=3).body) is None
    submitted = TaskSubmitted(task_id="task-1", submitter="me", requirements=(CapabilityRequirement(name="python"),))
    assert agent_of(submitted) is None
    assert WATCHED == {"AgentRegistered", "AgentDeregistered", "AgentHeartbeat"}


def test_a_state_stored_by_a_monitor_that_tracked_tasks_still_reads():
    stored = (
        b'{"agent_id": "agent-1", "registered": true, "health": "healthy", "in_flight": {"task-1": 1}, '
        b'"ended_early": {}}'
    )

    assert decode_state(stored) == new_state("agent-1").model_copy(update={"registered": True, "health": "healthy"})


# --- load -----------------------------------------------------------------------------


def test_a_window_of_heartbeats_is_summarized_once_it_is_over():
    agent = given(
        heartbeat(t=1, in_flight=1, queue_depth=0, cpu=10.0, memory=100.0),
        heartbeat(t=6, in_flight=3, queue_depth=2, cpu=20.0, memory=300.0),
        heartbeat(t=11, in_flight=2, queue_depth=4, memory=200.0),
    )

    assert agent.tick(62) == []  # a beat sent just before the end may still be on its way
    [summary] = summaries(agent.tick(65))

    assert (summary.window_start, summary.window_end) == (T0, T0 + timedelta(seconds=60))
    assert summary.heartbeats == 3
    assert (summary.avg_in_flight, summary.max_in_flight, summary.avg_queue_depth) == (2.0, 3, 2.0)
    assert (summary.avg_cpu_percent, summary.max_memory_mb) == (15.0, 300.0)
    assert summaries(agent.tick(200)) == []


def test_a_heartbeat_of_the_next_window_closes_the_previous_one():
    agent = given(heartbeat(t=58, in_flight=4))

    [summary] = summaries(agent.when(heartbeat(t=61, in_flight=1)))

    assert summary.heartbeats == 1 and summary.max_in_flight == 4 and summary.avg_cpu_percent is None
    assert agent.state.window.heartbeats == 1 and agent.state.window.start == at(60)


def test_a_heartbeat_delivered_twice_changes_nothing():
    beat = heartbeat(t=1, in_flight=2)
    agent = given(registered(t=0), beat)
    before = agent.state

    assert agent.when(beat, received_at=3) == []
    assert agent.state == before
    assert summaries(agent.tick(65))[0].heartbeats == 1


def test_a_heartbeat_too_late_for_its_window_still_shows_the_agent_is_alive():
    agent = given(registered(t=0), heartbeat(t=1), ticks=[2, 65])

    agent.when(heartbeat(t=59), received_at=70)

    assert agent.state.window is None
    assert changes(agent.tick(71)) == [("unhealthy", "healthy")]


def test_state_survives_the_table_round_trip():
    agent = given(registered(t=0), heartbeat(t=1, cpu=3.5), assigned("task-1", t=2), ticks=[2])

    assert decode_state(encode_state(agent.state)) == agent.state
