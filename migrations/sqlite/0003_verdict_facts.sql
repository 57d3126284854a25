-- The part of an Exchange verdict that follows from the build and the as-of date alone
-- (name, CU, support, patch level, upgrade path, CVE exposure: most of its bytes) is stored
-- once per distinct value and referenced, instead of once per host. A national census has a
-- few hundred distinct builds, so a few hundred rows here stand for millions of observations.

CREATE TABLE verdict_facts (
    id     INTEGER PRIMARY KEY,
    -- SHA-256 (hex) of body's text as the store wrote it.
    digest TEXT NOT NULL UNIQUE,
    body   TEXT NOT NULL CHECK (json_valid(body))
) STRICT;

-- NULL: exchange_verdict holds the whole verdict (rows stored before this migration).
ALTER TABLE observations ADD COLUMN exchange_facts_id INTEGER REFERENCES verdict_facts (id);
