-- Pages of a scan's servers are read by observation id (cursor pagination, exports), and every
-- export is logged: who took which data, in which form, and how much of it.

CREATE INDEX observations_scan_id ON observations (scan_id, id);

CREATE TABLE export_audit (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ,
    -- No foreign key: the log outlives revoked or deleted tokens; name and role are copied.
    token_id      BIGINT NOT NULL,
    token_name    TEXT NOT NULL,
    role          TEXT NOT NULL,
    scan_id       BIGINT NOT NULL,
    format        TEXT NOT NULL,
    pseudonymised BOOLEAN NOT NULL,
    -- The census filter as JSON, as the request gave it.
    filter        JSONB NOT NULL,
    -- Rows written; NULL until the export ends.
    rows          BIGINT,
    -- running, complete, or aborted (the client went away or the store failed mid-way).
    outcome       TEXT NOT NULL CHECK (outcome IN ('running', 'complete', 'aborted'))
);
CREATE INDEX export_audit_started ON export_audit (started_at);
