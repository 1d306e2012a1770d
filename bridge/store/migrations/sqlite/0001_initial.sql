-- The bridge's store as it was before numbered migrations. Every statement is idempotent
-- (IF NOT EXISTS), so a database made before then is recorded as at 0001 unchanged.

CREATE TABLE IF NOT EXISTS events (
    id          INTEGER PRIMARY KEY,
    source      TEXT    NOT NULL,
    topic       TEXT    NOT NULL,
    dedupe_key  TEXT    NOT NULL,
    received_at REAL    NOT NULL,
    headers     TEXT    NOT NULL,            -- JSON object of the headers worth keeping
    body        BLOB,                        -- the bytes as signed, packed by body_codec; NULL once pruned
    body_codec  TEXT,                        -- NULL: as received; 'lz4': an LZ4 block with its size
    status      TEXT    NOT NULL,            -- received | invalid_json | mapped | partial | mapping_error | no_rule | ignored
    rules       TEXT,                        -- JSON list of the rules that matched
    errors      TEXT,                        -- JSON list of mapping errors
    mapped_at   REAL,
    duplicates  INTEGER NOT NULL DEFAULT 0   -- resends answered 2xx and dropped
);
CREATE INDEX IF NOT EXISTS events_waiting  ON events (id) WHERE status = 'received';
CREATE INDEX IF NOT EXISTS events_received ON events (received_at);
-- The dedupe guard: a provider's resend hits this index and is dropped. An
-- event row (not its body) is kept for the whole dedupe window, so pruning
-- bodies never forgets a key early.
CREATE UNIQUE INDEX IF NOT EXISTS events_dedupe ON events (source, dedupe_key);
CREATE VIEW IF NOT EXISTS dedupe AS
    SELECT source, dedupe_key AS key, id AS event_id, received_at AS seen_at FROM events;

CREATE TABLE IF NOT EXISTS messages (
    id              INTEGER PRIMARY KEY,     -- also the delivery order within an ordering key
    event_id        INTEGER NOT NULL,
    destination     TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    action          TEXT    NOT NULL,
    rule            TEXT    NOT NULL,
    ordering_key    TEXT    NOT NULL,        -- '' = unordered
    idempotency_key TEXT    NOT NULL,
    record          TEXT    NOT NULL,        -- JSON
    areas           TEXT    NOT NULL DEFAULT '',  -- comma-separated: events,contacts,consent,orders,carts,products,deletions
    state           TEXT    NOT NULL,        -- pending | inflight | submitted | delivered | dead
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_at         REAL    NOT NULL,
    lease_until     REAL,
    claim           TEXT,                    -- token of the current claim; NULL when not in flight
    batch_ref       TEXT,                    -- the destination's batch id while its result is awaited
    submitted_at    REAL,                    -- when its batch was accepted, while it is submitted
    created_at      REAL    NOT NULL,
    updated_at      REAL    NOT NULL,
    last_status     INTEGER,
    last_detail     TEXT
);
CREATE INDEX IF NOT EXISTS messages_pending  ON messages (destination, id) WHERE state = 'pending';
-- Messages that hold back later ones with their key.
CREATE INDEX IF NOT EXISTS messages_open_by_key ON messages (destination, ordering_key, id)
    WHERE state IN ('pending', 'inflight', 'submitted');
CREATE INDEX IF NOT EXISTS messages_inflight ON messages (lease_until) WHERE state = 'inflight';
CREATE INDEX IF NOT EXISTS messages_event    ON messages (event_id);
-- No index on idempotency_key: a key is a UUID of the event's source and dedupe key, so the
-- messages sharing one are the messages of one event, found by messages_event. An index of
-- random UUIDs puts every new message on a random page, whose write grows with the table.
CREATE INDEX IF NOT EXISTS messages_submitted ON messages (destination, next_at) WHERE state = 'submitted';
CREATE INDEX IF NOT EXISTS messages_batch ON messages (batch_ref) WHERE batch_ref IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_dead     ON messages (destination, updated_at) WHERE state = 'dead';

-- One row per outbound attempt: the audit trail of every call the bridge made.
CREATE TABLE IF NOT EXISTS attempts (
    id         INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL,
    at         REAL    NOT NULL,
    outcome    TEXT    NOT NULL,             -- delivered | retry | dead | pause
    status     INTEGER,
    detail     TEXT
);
CREATE INDEX IF NOT EXISTS attempts_message ON attempts (message_id);
CREATE INDEX IF NOT EXISTS attempts_at ON attempts (at);

CREATE TABLE IF NOT EXISTS destination_state (
    name            TEXT PRIMARY KEY,
    paused          INTEGER NOT NULL DEFAULT 0,
    reason          TEXT,
    changed_at      REAL,
    key_fingerprint TEXT                     -- which credentials were refused; a new key resumes
);
