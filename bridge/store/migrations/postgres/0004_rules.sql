-- Rule sets kept in the store (bridge/rules): published versions, drafts, and the rules' audit log.

-- Every published set, never changed. The highest version is the one every instance runs;
-- publishing inserts head + 1, so two publishes at once cannot both win.
CREATE TABLE rule_versions (
    version    bigint           PRIMARY KEY,
    created_at double precision NOT NULL,
    author     text             NOT NULL,
    message    text             NOT NULL,
    origin     text             NOT NULL,   -- folder | publish | rollback | import
    based_on   bigint,                      -- the draft's base version, or the version a rollback restored
    digest     text             NOT NULL,   -- names the files' texts
    files      text             NOT NULL    -- JSON object: file name -> text
);
CREATE INDEX rule_versions_origin ON rule_versions (origin, version);

CREATE TABLE rule_drafts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at   double precision NOT NULL,
    updated_at   double precision NOT NULL,
    author       text             NOT NULL,
    base_version bigint,
    files        text             NOT NULL
);

CREATE TABLE rule_actions (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      double precision NOT NULL,
    actor   text             NOT NULL,
    action  text             NOT NULL,
    version bigint,
    draft   bigint,
    detail  text             NOT NULL DEFAULT ''
);

-- A preview reads the newest events of a source's topics.
CREATE INDEX events_topic ON events (source, topic, id);
