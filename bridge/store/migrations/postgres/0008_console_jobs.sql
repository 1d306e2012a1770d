-- The console's replays of a whole search (bridge/console/jobs.py), kept here so every instance shows
-- them: the instance that runs one writes its progress at most every half second and at least every
-- 10 seconds (heartbeat_at); one unfinished with no heartbeat for 30 seconds lost its instance.
-- The newest 50 are kept, and any still running (Store.prune_jobs, when a job starts).
CREATE TABLE console_jobs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor        text    NOT NULL,                   -- the token's name
    what         text    NOT NULL,                   -- the search replayed ("source shopify, since ...")
    instance     text    NOT NULL,                   -- the process running it (host:pid)
    started_at   double precision NOT NULL,
    heartbeat_at double precision NOT NULL,          -- its instance's last write
    done         bigint  NOT NULL DEFAULT 0,         -- events replayed
    total        bigint  NOT NULL DEFAULT 0,         -- events to replay
    finished_at  double precision,
    summary      text,                               -- JSON: the replay's summary, once finished
    error        text                                -- why it failed, once it did
);
