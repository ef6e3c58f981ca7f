"""The tasks waiting for room, kept in queue order, so an overloaded balancer does not slow down.

Queue order is most urgent first, then the least-served submitter, then the oldest:
(priority, served[submitter], queued_at, task_id). The served count changes whenever a
submitter is served, which would reorder every task of theirs in a single sorted list. So the
queue keeps one list per submitter, ordered by (priority, queued_at, task_id), in which a
submitter's own tasks never change places; the served count is merged in only when the lists
are read. Lists are kept twice: per candidate agent, to find the first task a freed slot can
take, and per capability, to tell a newcomer its place in line. Each costs log(queue) per
change instead of a scan of every task the balancer knows.

This is derived state: it holds nothing the tasks do not, and is rebuilt from them.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
from datetime import datetime

from sortedcontainers import SortedList

Entry = tuple[int, datetime, str]  # (priority, queued_at, task_id): a submitter's own order


class WaitingQueue:
    def __init__(self) -> None:
        self._by_agent: dict[str, dict[str, SortedList]] = {}
        self._by_capability: dict[str, dict[str, SortedList]] = {}
        # task -> its entry, and the submitter, capability and agents whose lists hold it
        self._where: dict[str, tuple[Entry, str, str, tuple[str, ...]]] = {}

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, task_id: str) -> bool:
        return task_id in self._where

    def add(
        self,
        task_id: str,
        *,
        priority: int,
        queued_at: datetime,
        submitter: str,
        capability: str,
        agents: tuple[str, ...],
    ) -> None:
        """Queue a task under each agent that may still take it."""
        if task_id in self._where:
            return
        entry = (priority, queued_at, task_id)
        agents = tuple(dict.fromkeys(agents))
        for agent in agents:
            self._by_agent.setdefault(agent, {}).setdefault(submitter, SortedList()).add(entry)
        self._by_capability.setdefault(capability, {}).setdefault(submitter, SortedList()).add(entry)
        self._where[task_id] = (entry, submitter, capability, agents)

    def remove(self, task_id: str) -> None:
        if (where := self._where.pop(task_id, None)) is None:
            return
        entry, submitter, capability, agents = where
        for agent in agents:
            _discard(self._by_agent, agent, submitter, entry)
        _discard(self._by_capability, capability, submitter, entry)

    def position(self, task_id: str, served: Mapping[str, int]) -> int:
        """1 for the first in line among the tasks waiting for the same capability."""
        (priority, queued_at, _), submitter, capability, _agents = self._where[task_id]
        mine = served.get(submitter, 0)
        ahead = 0
        for other, entries in self._by_capability[capability].items():
            theirs = served.get(other, 0)
            if theirs < mine:  # every one of theirs at my priority or more urgent is ahead
                ahead += entries.bisect_left((priority + 1,))
            elif theirs > mine:  # only the more urgent
                ahead += entries.bisect_left((priority,))
            else:
                ahead += entries.bisect_left((priority, queued_at, task_id))
        return 1 + ahead

    def in_order(self, open_agents: set[str], served: Mapping[str, int]) -> Iterator[str]:
        """Ids of the waiting tasks that an agent in `open_agents` may take, in queue order.

        `open_agents` is read as the caller changes it: once an agent is full, the tasks only
        it could take are passed over. The queue must not change until iteration ends.
        """
        heap = []
        for agent in open_agents:
            for submitter, entries in self._by_agent.get(agent, {}).items():
                rest = iter(entries)
                if (entry := next(rest, None)) is not None:
                    heap.append((_key(entry, served, submitter), agent, submitter, rest))
        heapq.heapify(heap)
        seen: set[str] = set()
        while heap:
            key, agent, submitter, rest = heap[0]
            if agent not in open_agents:
                heapq.heappop(heap)
                continue
            if (task_id := key[-1]) not in seen:
                seen.add(task_id)
                yield task_id
            if (entry := next(rest, None)) is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (_key(entry, served, submitter), agent, submitter, rest))


def _key(entry: Entry, served: Mapping[str, int], submitter: str) -> tuple:
    priority, queued_at, task_id = entry
    return priority, served.get(submitter, 0), queued_at, task_id


def _discard(lists: dict[str, dict[str, SortedList]], outer: str, submitter: str, entry: Entry) -> None:
    entries = lists[outer][submitter]
    entries.discard(entry)
    if not entries:
        del lists[outer][submitter]
        if not lists[outer]:
            del lists[outer]
