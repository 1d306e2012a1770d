-- Rule sets kept in the store (bridge/rules): published versions, drafts, and the rules' audit log.

-- Every published set, never changed. The highest version is the one every instance runs;
-- publishing inserts head + 1, so two publishes at once cannot both win.
CREATE TABLE IF NOT EXISTS rule_versions (
    version    INTEGER PRIMARY KEY,
    created_at REAL    NOT NULL,
    author     TEXT    NOT NULL,
    message    TEXT    NOT NULL,
    origin     TEXT    NOT NULL,             -- folder | publish | rollback | import
    based_on   INTEGER,                      -- the draft's base version, or the version a rollback restored
    digest     TEXT    NOT NULL,             -- names the files' texts
    files      TEXT    NOT NULL              -- JSON object: file name -> text
);
CREATE INDEX IF NOT EXISTS rule_versions_origin ON rule_versions (origin, version);

CREATE TABLE IF NOT EXISTS rule_drafts (
    id           INTEGER PRIMARY KEY,
    created_at   REAL    NOT NULL,
    updated_at   REAL    NOT NULL,
    author       TEXT    NOT NULL,
    base_version INTEGER,
    files        TEXT    NOT NULL            -- JSON object: file name -> text
);

CREATE TABLE IF NOT EXISTS rule_actions (
    id      INTEGER PRIMARY KEY,
    at      REAL    NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    version INTEGER,
    draft   INTEGER,
    detail  TEXT    NOT NULL DEFAULT ''
);

-- A preview reads the newest events of a source's topics.
CREATE INDEX IF NOT EXISTS events_topic ON events (source, topic, id);
