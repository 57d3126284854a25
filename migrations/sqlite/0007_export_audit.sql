-- Pages of a scan's servers are read by observation id (cursor pagination, exports), and every
-- export is logged: who took which data, in which form, and how much of it.

CREATE INDEX observations_scan_id ON observations (scan_id, id);

CREATE TABLE export_audit (
    id            INTEGER PRIMARY KEY,
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    -- No foreign key: the log outlives revoked or deleted tokens; name and role are copied.
    token_id      INTEGER NOT NULL,
    token_name    TEXT NOT NULL,
    role          TEXT NOT NULL,
    scan_id       INTEGER NOT NULL,
    format        TEXT NOT NULL,
    pseudonymised INTEGER NOT NULL CHECK (pseudonymised IN (0, 1)),
    -- The census filter as JSON, as the request gave it.
    filter        TEXT NOT NULL,
    -- Rows written; NULL until the export ends.
    rows          INTEGER,
    -- running, complete, or aborted (the client went away or the store failed mid-way).
    outcome       TEXT NOT NULL CHECK (outcome IN ('running', 'complete', 'aborted'))
) STRICT;
CREATE INDEX export_audit_started ON export_audit (started_at);
