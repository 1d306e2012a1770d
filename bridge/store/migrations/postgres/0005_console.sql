-- The console (bridge/console): what operators did through it or the admin API, and the fingerprints
-- of each event's e-mail addresses and order numbers, so an event is found by them without storing
-- them in clear a second time. Numbered 0003: 0002 is the rule store's.

CREATE TABLE console_actions (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at     double precision NOT NULL,
    actor  text NOT NULL,                    -- the token's name
    role   text NOT NULL,                    -- viewer | operator | rules_editor
    action text NOT NULL,                    -- sign_in, retry_dead, replay, pause, resume, reveal, ...
    target text NOT NULL DEFAULT '',         -- what it acted on ("event 12", "omnisend")
    detail text NOT NULL DEFAULT ''          -- its outcome, without personal data
);
CREATE INDEX console_actions_at ON console_actions (at);

-- bridge.search's fingerprint of each lowercased e-mail and each order number in an event's payload
-- (written when the event is mapped), so a search by either reads one index entry per event.
CREATE TABLE event_lookup (
    fingerprint text   NOT NULL,
    event_id    bigint NOT NULL,
    PRIMARY KEY (fingerprint, event_id)
);
CREATE INDEX event_lookup_event ON event_lookup (event_id);

-- The overview's charts count delivered messages per destination and hour (messages_delivered has the
-- time only).
CREATE INDEX messages_delivered_by ON messages (updated_at, destination) WHERE state = 'delivered';

-- Reads of the console that must stay fast on a store of millions of messages (bench/console.py):
-- the events received per hour and source (covering, so the rows and their bodies are not read;
-- it replaces events_received, which it serves as well), the oldest waiting message per destination,
-- and the counts ("N of M") of a search by topic or by status.
CREATE INDEX events_received_by ON events (received_at, source);
DROP INDEX IF EXISTS events_received;
CREATE INDEX messages_pending_age ON messages (destination, created_at) WHERE state = 'pending';
CREATE INDEX events_by_topic ON events (topic, source);
CREATE INDEX events_status ON events (status);
