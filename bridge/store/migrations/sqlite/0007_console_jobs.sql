-- The console's replays of a whole search (bridge/console/jobs.py), kept here so every instance shows
-- them: the instance that runs one writes its progress at most every half second and at least every
-- 10 seconds (heartbeat_at); one unfinished with no heartbeat for 30 seconds lost its instance.
-- The newest 50 are kept, and any still running (Store.prune_jobs, when a job starts).
CREATE TABLE IF NOT EXISTS console_jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: an old job's address never shows a new one
    actor        TEXT    NOT NULL,                   -- the token's name
    what         TEXT    NOT NULL,                   -- the search replayed ("source shopify, since ...")
    instance     TEXT    NOT NULL,                   -- the process running it (host:pid)
    started_at   REAL    NOT NULL,
    heartbeat_at REAL    NOT NULL,                   -- its instance's last write
    done         INTEGER NOT NULL DEFAULT 0,         -- events replayed
    total        INTEGER NOT NULL DEFAULT 0,         -- events to replay
    finished_at  REAL,
    summary      TEXT,                               -- JSON: the replay's summary, once finished
    error        TEXT                                -- why it failed, once it did
);
