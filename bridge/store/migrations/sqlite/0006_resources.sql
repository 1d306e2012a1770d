-- Lookups: the latest state of a resource a later event names but does not carry. A Shopify
-- refund names its order (`order_id`) and carries no email, total or date: the order's latest
-- event (orders/create, paid, ...) is kept here, its body as stored in events, so the refund's
-- rules can read it after that event's own body is pruned. Written with the event's mapping;
-- kept for BRIDGE_LOOKUP_DAYS (bridge/ops/prune.py).
CREATE TABLE IF NOT EXISTS resources (
    source     TEXT    NOT NULL,
    kind       TEXT    NOT NULL,             -- 'order'
    ref        TEXT    NOT NULL,             -- its id at the source
    event_id   INTEGER NOT NULL,             -- the latest event that carried it (by id: ingest order)
    seen_at    REAL    NOT NULL,             -- when that event was received
    body       BLOB    NOT NULL,             -- that event's body, packed as in events
    body_codec TEXT,
    PRIMARY KEY (source, kind, ref)
);
CREATE INDEX IF NOT EXISTS resources_seen ON resources (seen_at);
-- Events that wait for a resource (status 'waiting'), read again until it comes or they give up.
CREATE INDEX IF NOT EXISTS events_lookup_waiting ON events (id) WHERE status = 'waiting';
