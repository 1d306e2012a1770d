-- The bridge's store on PostgreSQL: the tables of the SQLite store (times are Unix seconds, as there),
-- plus one row per ordering lane (per-key order across workers) and one token bucket per destination.

CREATE TABLE events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source      text             NOT NULL,
    topic       text             NOT NULL,
    dedupe_key  text             NOT NULL,
    received_at double precision NOT NULL,
    headers     text             NOT NULL,   -- JSON object of the headers worth keeping
    body        bytea,                       -- the bytes as signed, packed by body_codec; NULL once pruned
    body_codec  text,                        -- NULL: as received; 'lz4': an LZ4 block with its size
    status      text             NOT NULL,   -- received | invalid_json | mapped | partial | mapping_error | no_rule | ignored
    rules       text,                        -- JSON list of the rules that matched
    errors      text,                        -- JSON list of mapping errors
    mapped_at   double precision,
    duplicates  integer          NOT NULL DEFAULT 0
);
-- The dedupe guard: a resend hits this index (INSERT ... ON CONFLICT DO NOTHING), on any instance.
CREATE UNIQUE INDEX events_dedupe ON events (source, dedupe_key);
CREATE INDEX events_waiting  ON events (id) WHERE status = 'received';
CREATE INDEX events_received ON events (received_at);

CREATE TABLE messages (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- also the order within a lane
    event_id        bigint           NOT NULL,
    destination     text             NOT NULL,
    kind            text             NOT NULL,
    action          text             NOT NULL,
    rule            text             NOT NULL,
    ordering_key    text             NOT NULL,  -- '' = unordered
    idempotency_key text             NOT NULL,
    record          text             NOT NULL,  -- JSON
    areas           text             NOT NULL DEFAULT '',
    state           text             NOT NULL
                    CHECK (state IN ('pending', 'inflight', 'submitted', 'delivered', 'dead')),
    attempts        integer          NOT NULL DEFAULT 0,
    next_at         double precision NOT NULL,
    lease_until     double precision,
    claim           text,                       -- token of the current claim; NULL when not in flight
    batch_ref       text,                       -- the destination's batch id while its result is awaited
    submitted_at    double precision,
    created_at      double precision NOT NULL,
    updated_at      double precision NOT NULL,
    last_status     integer,
    last_detail     text
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02);
CREATE INDEX messages_pending_unordered ON messages (destination, id) WHERE state = 'pending' AND ordering_key = '';
CREATE INDEX messages_open_by_key ON messages (destination, ordering_key, id)
    WHERE state IN ('pending', 'inflight', 'submitted');
CREATE INDEX messages_inflight  ON messages (lease_until) WHERE state = 'inflight';
CREATE INDEX messages_event     ON messages (event_id);
CREATE INDEX messages_submitted ON messages (destination, next_at) WHERE state = 'submitted';
CREATE INDEX messages_batch     ON messages (batch_ref) WHERE batch_ref IS NOT NULL;
CREATE INDEX messages_dead      ON messages (destination, updated_at) WHERE state = 'dead';
CREATE INDEX messages_delivered ON messages (updated_at) WHERE state = 'delivered';

-- One row per (destination, ordering key): whoever changes a keyed message locks its lane first
-- (sorted), so producers of one key commit in id order and a claimer that holds the lane sees
-- every change to its messages. ready_at: when its head (oldest open message) is due to be
-- claimed; NULL when there is nothing to claim (empty, head in flight or submitted).
CREATE TABLE lanes (
    destination  text NOT NULL,
    ordering_key text NOT NULL,
    ready_at     double precision,
    PRIMARY KEY (destination, ordering_key)
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0);
CREATE INDEX lanes_ready ON lanes (destination, ready_at) WHERE ready_at IS NOT NULL;

CREATE TABLE attempts (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id bigint           NOT NULL,
    at         double precision NOT NULL,
    outcome    text             NOT NULL,    -- delivered | retry | dead | pause | submitted
    status     integer,
    detail     text
);
CREATE INDEX attempts_message ON attempts (message_id);
CREATE INDEX attempts_at ON attempts (at);

CREATE TABLE destination_state (
    name            text PRIMARY KEY,
    paused          boolean NOT NULL DEFAULT false,
    reason          text,
    changed_at      double precision,
    key_fingerprint text
);

-- A destination's request budget shared by every worker: a token bucket, taken a few tokens at a time.
CREATE TABLE rate_buckets (
    destination text PRIMARY KEY,
    tokens      double precision NOT NULL,
    refreshed_at double precision NOT NULL
);
