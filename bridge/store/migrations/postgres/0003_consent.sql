-- Marketing consent decisions (bridge/consent.py): per contact (a fingerprint of the e-mail, never the
-- address) and channel, one row per source: what the source said last, and its latest decision sent.
CREATE TABLE consent (
    contact       text NOT NULL,
    channel       text NOT NULL,
    source        text NOT NULL,
    subscribed    boolean NOT NULL,
    said_event    bigint NOT NULL,
    decided_at    double precision,
    decided_event bigint,
    updated_at    double precision NOT NULL,
    PRIMARY KEY (contact, channel, source)
);
