-- What the bridge last wrote to each Omneo profile (bridge.echo): a hash of the compared fields under a
-- hash of the profile's e-mail or identity. One row per key, replaced by each write.
CREATE TABLE IF NOT EXISTS sent_prints (
    key     TEXT PRIMARY KEY,
    fields  TEXT NOT NULL,
    digest  TEXT NOT NULL,
    sent_at REAL NOT NULL
);
