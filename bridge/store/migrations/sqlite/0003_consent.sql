-- Marketing consent decisions (bridge/consent.py): per contact (a fingerprint of the e-mail, never the
-- address) and channel, one row per source: what the source said last, and its latest decision sent.
CREATE TABLE IF NOT EXISTS consent (
    contact       TEXT NOT NULL,
    channel       TEXT NOT NULL,
    source        TEXT NOT NULL,
    subscribed    INTEGER NOT NULL,
    said_event    INTEGER NOT NULL,
    decided_at    REAL,
    decided_event INTEGER,
    updated_at    REAL NOT NULL,
    PRIMARY KEY (contact, channel, source)
);
