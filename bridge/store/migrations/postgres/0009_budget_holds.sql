-- The shared request budget numbers its slots (`taken`: the number of the last one reserved), and a
-- worker whose request reached the destination late holds back the slot `limit` numbers after it:
-- that slot goes no earlier than `not_before` (the database's clock), and the ones after it follow.
ALTER TABLE rate_buckets ADD COLUMN taken bigint NOT NULL DEFAULT 0;

CREATE TABLE rate_holds (
    destination text NOT NULL,
    number      bigint NOT NULL,
    not_before  double precision NOT NULL,
    PRIMARY KEY (destination, number)
);
