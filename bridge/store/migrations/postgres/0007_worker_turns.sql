-- The shared request budget becomes a schedule: `next_at` is when (the database's clock) the next
-- request of the destination may go; a worker reserves that slot and moves it on by one interval.
-- `tokens` and `refreshed_at` stay for a version still running during a rolling deploy.
ALTER TABLE rate_buckets ADD COLUMN next_at double precision NOT NULL DEFAULT 0;

-- Which worker maps events now (one at a time: two would map the same events and one would throw
-- its work away), until when (Unix seconds); a worker that stops or dies loses it when it runs out.
CREATE TABLE mapping_turn (
    id     integer PRIMARY KEY CHECK (id = 1),
    holder text NOT NULL,
    until  double precision NOT NULL
);
