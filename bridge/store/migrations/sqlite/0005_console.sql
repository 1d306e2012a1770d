-- The console (bridge/console): what operators did through it or the admin API, and the fingerprints
-- of each event's e-mail addresses and order numbers, so an event is found by them without storing
-- them in clear a second time. Numbered 0003: 0002 is the rule store's.

CREATE TABLE IF NOT EXISTS console_actions (
    id     INTEGER PRIMARY KEY,
    at     REAL NOT NULL,
    actor  TEXT NOT NULL,                    -- the token's name
    role   TEXT NOT NULL,                    -- viewer | operator | rules_editor
    action TEXT NOT NULL,                    -- sign_in, retry_dead, replay, pause, resume, reveal, ...
    target TEXT NOT NULL DEFAULT '',         -- what it acted on ("event 12", "omnisend")
    detail TEXT NOT NULL DEFAULT ''          -- its outcome, without personal data
);
CREATE INDEX IF NOT EXISTS console_actions_at ON console_actions (at);

-- bridge.search's fingerprint of each lowercased e-mail and each order number in an event's payload
-- (written when the event is mapped), so a search by either reads one index entry per event.
CREATE TABLE IF NOT EXISTS event_lookup (
    fingerprint TEXT    NOT NULL,
    event_id    INTEGER NOT NULL,
    PRIMARY KEY (fingerprint, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS event_lookup_event ON event_lookup (event_id);

-- The overview's "delivered in the last hour" and its 24-hour charts read delivered messages by when.
CREATE INDEX IF NOT EXISTS messages_delivered ON messages (updated_at, destination) WHERE state = 'delivered';

-- Reads of the console that must stay fast on a store of millions of messages (bench/console.py):
-- the events received per hour and source (covering, so the rows and their bodies are not read;
-- it replaces events_received, which it serves as well), the oldest waiting message per destination,
-- and the counts ("N of M") of a search by topic or by status.
CREATE INDEX IF NOT EXISTS events_received_by ON events (received_at, source);
DROP INDEX IF EXISTS events_received;
CREATE INDEX IF NOT EXISTS messages_pending_age ON messages (destination, created_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS events_by_topic ON events (topic, source);
CREATE INDEX IF NOT EXISTS events_status ON events (status);
