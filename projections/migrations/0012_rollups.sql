-- Rollups of tasks and assignments per minute or hour, for the dashboard's wide time ranges:
-- a week of a million tasks is ten thousand minutes, not a million rows. The projector keeps them
-- in the transaction that writes the rows they count (projections/rollups.py), a rebuild computes
-- them from its rows, so they equal the tables and a replay row for row. Times are in UTC. Counts
-- are int: no minute or hour holds two billion tasks, and sums of int are summed in bigint, where
-- those of bigint are summed in numeric, several times slower.

-- Tasks by submission minute and capability (the first requirement): submitted, and of those
-- completed and failed (failed, rejected, timed out or expired) now.
CREATE TABLE task_minutes (
    minute      timestamptz NOT NULL,
    capability  text,
    submitted   int NOT NULL,
    completed   int NOT NULL,
    failed      int NOT NULL,
    UNIQUE NULLS NOT DISTINCT (minute, capability)
);

-- Attempts by assignment minute and capability: assigned, finished (success known), succeeded.
CREATE TABLE assignment_minutes (
    minute      timestamptz NOT NULL,
    capability  text,
    assigned    int NOT NULL,
    finished    int NOT NULL,
    succeeded   int NOT NULL,
    UNIQUE NULLS NOT DISTINCT (minute, capability)
);

-- The same by assignment hour, agent and capability (attempts naming both).
CREATE TABLE assignment_hours (
    hour        timestamptz NOT NULL,
    agent_id    text NOT NULL,
    capability  text NOT NULL,
    assigned    int NOT NULL,
    finished    int NOT NULL,
    succeeded   int NOT NULL,
    PRIMARY KEY (hour, agent_id, capability)
);

-- A histogram of `task_waits` by submission hour and capability: the tasks whose wait rounds to
-- `wait_ms` (three significant figures, so within 0.5 %), and the sum of their exact waits; and
-- the same by day, a twenty-fourth of the rows for a week (waits of many values fill up to a
-- thousand rows per hour and capability).
CREATE TABLE task_wait_days (
    day            timestamptz NOT NULL,
    capability     text,
    wait_ms        numeric NOT NULL,
    tasks          int NOT NULL,
    total_wait_ms  numeric NOT NULL,
    UNIQUE NULLS NOT DISTINCT (day, capability, wait_ms)
);

CREATE TABLE task_wait_hours (
    hour           timestamptz NOT NULL,
    capability     text,
    wait_ms        numeric NOT NULL,
    tasks          int NOT NULL,
    total_wait_ms  numeric NOT NULL,
    UNIQUE NULLS NOT DISTINCT (hour, capability, wait_ms)
);
