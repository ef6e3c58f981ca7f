"""Health and load of one agent, decided from the events about it and the time.

Plain state, plain functions; the clock is an argument. The Faust shell keeps one
`AgentState` per agent in a table and calls `on_event` for every event about the
agent and `on_tick` on a timer.

Liveness is measured by when the broker wrote a heartbeat (the heartbeats topic stamps
each record with its append time), never by the agent's clock, so an agent whose clock is
off is still judged fairly, nor by when the monitor read it: a backlog the monitor works
through after a restart, or while it is behind, says when each agent was alive, not that
it is alive now. Silence is judged up to the time the monitor has read the agent's
partition to (see `read_until`), so the monitor's own lag never counts as an agent's
silence. Load windows follow the agent's own clock (when a heartbeat occurred), so a
replayed backlog of heartbeats is summarized into the windows it came from, not lumped
into the present one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict

from events.agents import (
    AgentDeregistered,
    AgentHealthChanged,
    AgentHeartbeat,
    AgentLoadSummarized,
    AgentRegistered,
    Health,
)
from events.envelope import Envelope, EventBody

# Redelivery after a crash repeats what came since the last commit, a few seconds' worth.
RECENT_HEARTBEATS = 32
_RANK: dict[Health, int] = {"unknown": -1, "healthy": 0, "degraded": 1, "unhealthy": 2}


@dataclass(frozen=True)
class Policy:
    heartbeat_interval: timedelta = timedelta(seconds=5)
    degraded_after_missed: int = 2
    unhealthy_after_missed: int = 4
    load_window: timedelta = timedelta(seconds=60)

    def __post_init__(self) -> None:
        if not 1 <= self.degraded_after_missed < self.unhealthy_after_missed:
            raise ValueError("need 1 <= degraded_after_missed < unhealthy_after_missed")
        if self.heartbeat_interval <= timedelta(0) or self.load_window <= timedelta(0):
            raise ValueError("heartbeat interval and load window must be positive")


class _State(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LoadWindow(_State):
    start: datetime
    heartbeats: int = 0
    recent_heartbeat_ids: tuple[str, ...] = ()
    in_flight_total: int = 0
    max_in_flight: int = 0
    queue_depth_total: int = 0
    cpu_total: float = 0.0
    cpu_samples: int = 0
    max_memory_mb: float | None = None


class AgentState(_State):
    # Ignored, not refused: states stored by an older monitor also held the tasks in flight.
    model_config = ConfigDict(frozen=True, extra="ignore")

    agent_id: str
    registered: bool = False
    health: Health = "unknown"
    last_heartbeat_at: datetime | None = None  # when the broker wrote its latest heartbeat
    window: LoadWindow | None = None
    summarized_until: datetime | None = None
    # The time the current `health` was judged at: evidence read from before it (a backlog
    # the monitor works through again after a restart) never revises it.
    verdict_at: datetime | None = None
    # Verdicts decided but perhaps not announced yet, as the encoded events that announce them:
    # kept with the state, on the changelog, until they are on the health topic (see `remember`).
    unannounced: tuple[str, ...] = ()


class Step(NamedTuple):
    state: AgentState | None  # None: nothing left worth remembering about the agent
    emitted: list[EventBody]


def new_state(agent_id: str) -> AgentState:
    return AgentState(agent_id=agent_id)


def encode_state(state: AgentState) -> bytes:
    return state.model_dump_json().encode()


def decode_state(raw: bytes) -> AgentState:
    return AgentState.model_validate_json(raw)


# What the monitor reads. Tasks in flight are the balancer's to know: it reassigns an agent's
# tasks on an unhealthy verdict, so the monitor reads no per-task event at all.
WATCHED = frozenset({"AgentRegistered", "AgentDeregistered", "AgentHeartbeat"})


def agent_of(body: EventBody) -> str | None:
    """The agent whose state an event changes, or None if it concerns no agent's health."""
    match body:
        case AgentRegistered() | AgentDeregistered() | AgentHeartbeat():
            return body.agent_id
    return None


def on_event(state: AgentState, event: Envelope, *, now: datetime, policy: Policy) -> Step:
    """The state after `event`, which the broker wrote at `now` (a heartbeat is alive then)."""
    body = event.body
    match body:
        case AgentRegistered():
            return Step(state.model_copy(update={"registered": True}), [])
        case AgentDeregistered():
            # It left: no verdicts any more, and a later return starts from "unknown".
            return Step(
                state.model_copy(update={"registered": False, "health": "unknown", "last_heartbeat_at": None}), []
            )
        case AgentHeartbeat():
            return _heard(state, event, now, policy)
    return Step(state, [])


def on_tick(state: AgentState, *, now: datetime, policy: Policy, watching_since: datetime | None = None) -> Step:
    """Verdicts and closed load windows due at `now`, the time up to which every heartbeat
    of the agent's partition has been read (`read_until`).

    `watching_since` is when this monitor could first judge the agent's partition after a
    start or rebalance: silence before it may be the monitor's own absence, so it delays a worse
    verdict but never causes a better one. A verdict is never revised at a time before the
    one it was judged at: after a restart the monitor reads again what it had read already.
    """
    emitted: list[EventBody] = []
    verdict = _verdict(state, now, policy, watching_since)
    if verdict is not None and verdict != state.health:
        emitted.append(_health_changed(state, verdict, now, policy))
        state = state.model_copy(update={"health": verdict, "verdict_at": now})
    window = state.window
    if window is not None and now >= window.start + policy.load_window + policy.heartbeat_interval:
        # One heartbeat interval of grace, so a beat sent just before the end still counts.
        emitted.append(_summary(state.agent_id, window, policy))
        state = state.model_copy(update={"window": None, "summarized_until": window.start + policy.load_window})
    if not state.registered and state.window is None and not state.unannounced:
        return Step(None, emitted)
    return Step(state, emitted)


def remember(state: AgentState, announcements: Iterable[str]) -> AgentState:
    """The state holding verdicts it has yet to announce (their encoded events).

    The shell stores it, waits until it is on the changelog, and only then announces them:
    a monitor killed in between finds them in its restored state and announces them (the
    same events again, which readers take once), and one killed before has announced
    nothing. Either way, the state a restarted monitor starts from is the one it last
    announced, and its next verdict names that one as previous.
    """
    return state.model_copy(update={"unannounced": (*state.unannounced, *announcements)})


def announced(state: AgentState, announcements: Iterable[str]) -> AgentState:
    """The state once these verdicts are on the health topic."""
    done = set(announcements)
    return state.model_copy(update={"unannounced": tuple(a for a in state.unannounced if a not in done)})


def missed_heartbeats(since: datetime | None, now: datetime, policy: Policy) -> int:
    if since is None:
        return 0
    return max(0, int((now - since) / policy.heartbeat_interval))


# --- heartbeats and load ------------------------------------------------------------


def _heard(state: AgentState, event: Envelope, now: datetime, policy: Policy) -> Step:
    window = state.window
    if window is not None and event.event_id in window.recent_heartbeat_ids:
        return Step(state, [])  # delivered twice
    last = state.last_heartbeat_at
    state = state.model_copy(update={"last_heartbeat_at": now if last is None else max(last, now)})
    start = window_start(event.occurred_at, policy)
    if state.summarized_until is not None and start < state.summarized_until:
        return Step(state, [])  # its window is already summarized: alive, but too late for the load
    emitted = []
    if window is not None and start > window.start:
        emitted.append(_summary(state.agent_id, window, policy))
        state = state.model_copy(update={"summarized_until": window.start + policy.load_window})
        window = None
    elif window is not None and start < window.start:
        return Step(state, [])  # older than the open window: too late for the load
    window = _add(window or LoadWindow(start=start), event.event_id, event.body)
    return Step(state.model_copy(update={"window": window}), emitted)


def window_start(moment: datetime, policy: Policy) -> datetime:
    width = policy.load_window.total_seconds()
    seconds = moment.timestamp()
    return datetime.fromtimestamp(seconds - seconds % width, tz=timezone.utc)


def _add(window: LoadWindow, event_id: str, beat: AgentHeartbeat) -> LoadWindow:
    memory = window.max_memory_mb
    if beat.memory_mb is not None:
        memory = beat.memory_mb if memory is None else max(memory, beat.memory_mb)
    return window.model_copy(
        update={
            "heartbeats": window.heartbeats + 1,
            "recent_heartbeat_ids": (*window.recent_heartbeat_ids, event_id)[-RECENT_HEARTBEATS:],
            "in_flight_total": window.in_flight_total + beat.in_flight,
            "max_in_flight": max(window.max_in_flight, beat.in_flight),
            "queue_depth_total": window.queue_depth_total + beat.queue_depth,
            "cpu_total": window.cpu_total + (beat.cpu_percent or 0.0),
            "cpu_samples": window.cpu_samples + (beat.cpu_percent is not None),
            "max_memory_mb": memory,
        }
    )


def _summary(agent_id: str, window: LoadWindow, policy: Policy) -> AgentLoadSummarized:
    count = window.heartbeats
    return AgentLoadSummarized(
        agent_id=agent_id,
        window_start=window.start,
        window_end=window.start + policy.load_window,
        heartbeats=count,
        avg_in_flight=window.in_flight_total / count,
        max_in_flight=window.max_in_flight,
        avg_queue_depth=window.queue_depth_total / count,
        avg_cpu_percent=window.cpu_total / window.cpu_samples if window.cpu_samples else None,
        max_memory_mb=window.max_memory_mb,
    )


# --- verdicts -----------------------------------------------------------------------


def _verdict(state: AgentState, now: datetime, policy: Policy, watching_since: datetime | None) -> Health | None:
    if not state.registered:
        return None
    last = state.last_heartbeat_at
    if last is None:
        return None
    if state.verdict_at is not None and now < state.verdict_at:
        return None  # what has been read so far is older than the verdict in force
    observed = _level(missed_heartbeats(last, now, policy), policy)
    if _RANK[observed] < _RANK[state.health]:
        return observed
    watched_from = last if watching_since is None else max(last, watching_since)
    watched = _level(missed_heartbeats(watched_from, now, policy), policy)
    return max(state.health, watched, key=_RANK.__getitem__)


def _level(missed: int, policy: Policy) -> Health:
    if missed >= policy.unhealthy_after_missed:
        return "unhealthy"
    if missed >= policy.degraded_after_missed:
        return "degraded"
    return "healthy"


def _health_changed(state: AgentState, verdict: Health, now: datetime, policy: Policy) -> AgentHealthChanged:
    missed = missed_heartbeats(state.last_heartbeat_at, now, policy)
    interval = policy.heartbeat_interval.total_seconds()
    if verdict == "healthy":
        reason = "first heartbeat" if state.health == "unknown" else "heartbeats resumed"
        return AgentHealthChanged(agent_id=state.agent_id, previous=state.health, current=verdict, reason=reason)
    reason = f"no heartbeat for {missed} intervals of {interval:g}s"
    if verdict == "unhealthy":
        reason += "; its tasks in flight are reassigned"
    return AgentHealthChanged(
        agent_id=state.agent_id, previous=state.health, current=verdict, reason=reason, missed_heartbeats=missed
    )


# --- how far the monitor has read ---------------------------------------------------
#
# Silence is judged up to the time the monitor has read an agent's partition to, never
# further: while it works through a backlog (after a restart, a rebalance, or while it is
# behind), that is when the broker wrote the newest record it has processed there, and an
# agent that kept beating is heard at the same pace as that time advances. Only once every
# record of the partition has been processed is it judged up to the present. Holding the
# verdicts until the monitor has caught up would do for a restart, but not for a monitor
# that falls behind while it runs; judging in the log's time does for both, and still
# condemns an agent that stopped, as soon as the log shows it silent long enough.


@dataclass
class Reading:
    """How far the monitor has read one partition: offsets only grow, a partition read again
    (after a rebalance) counts from where its reading had got to.

    The consumer hands records over in numbered handings (every fetch it passes on), and the
    monitor takes them in that order: one stream, fed one record after another. Not every
    record handed over reaches it, though: Faust drops what it has fetched when its flow stops
    or a seek runs at the end of a recovery, and where the partition has no committed offset
    to seek back to, it fetches them no more. What is known of the latest handing tells a
    record still on its way from one dropped (see `read_to_end`)."""

    handed: int | None = None  # offset of the last record the consumer handed over to be processed
    handing: int = 0  # number of the latest handing that had records of the partition
    handing_from: int | None = None  # offset of its first record of the partition
    done: int | None = None  # offset of the last record processed
    written_until: datetime | None = None  # when the broker wrote the newest record processed

    def hand(self, first: int, last: int, handing: int) -> None:
        self.handed = last if self.handed is None else max(self.handed, last)
        self.handing, self.handing_from = handing, first

    def finish(self, offset: int, written_at: datetime) -> int:
        """Note a record processed; the number of the handing it came in (0: an earlier one)."""
        self.done = offset if self.done is None else max(self.done, offset)
        self.written_until = written_at if self.written_until is None else max(self.written_until, written_at)
        return self.handing if self.handing_from is not None and offset >= self.handing_from else 0


def read_to_end(
    reading: Reading, *, end: int | None, position: int | None = None, processed_in: int = 0
) -> bool | None:
    """Whether every record of the partition below `end` (its end offset, just asked of the
    broker) has been processed; None when that depends on the consumer's `position`, not given.

    Agents write in transactions: the consumer skips their markers (and aborted records),
    which are never handed over. So when records are missing below the end, the partition
    is read to it only if the consumer has fetched past them and everything it handed over
    is processed, or will never be: `processed_in` is the latest handing a record processed
    came in, and records are taken in the order they are handed over, so what is left of an
    earlier handing was dropped on the way. Waiting for it would leave a partition that gets
    no new record (the agents topic, once the agents have registered) behind for good, and
    the silence of every agent beside it never judged.
    """
    if end is None:
        return False  # not known: not read to it
    if reading.done is not None and reading.done + 1 >= end:
        return True
    pending = reading.handed is not None and (reading.done is None or reading.done < reading.handed)
    if pending and reading.handing >= processed_in:
        return False  # handed over, not processed yet
    if position is None:
        return None
    return position >= end


def read_until(reading: Reading, *, at_end: bool, now: datetime, before: datetime | None = None) -> datetime | None:
    """The time up to which every heartbeat of the partition has been read.

    `now` once it is read to the end; otherwise when the broker wrote the newest record
    processed (None: nothing read yet, so nothing is judged). Never earlier than `before`,
    what it was at the previous tick: judging goes forward only.
    """
    until = now if at_end else reading.written_until
    if before is not None and (until is None or until < before):
        return before
    return until
