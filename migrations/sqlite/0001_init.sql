-- Surveyor schema for SQLite: scans and what each scan observed.
-- Timestamps are UTC RFC 3339 text with exactly six fractional digits
-- (2025-10-14T09:30:01.123456Z), so text order is time order. JSON columns hold
-- serde_json text of the surveyor_model types. STRICT makes SQLite enforce column types.

CREATE TABLE scans (
    -- AUTOINCREMENT: ids are never reused, even after the newest scan is deleted.
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    as_of        TEXT NOT NULL,                        -- YYYY-MM-DD
    targets      TEXT NOT NULL,
    ports        TEXT NOT NULL CHECK (json_valid(ports)), -- JSON array of port numbers
    tool_version TEXT NOT NULL
) STRICT;

CREATE TABLE observations (
    id                    INTEGER PRIMARY KEY,
    scan_id               INTEGER NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    ip                    TEXT NOT NULL,               -- std::net::IpAddr's canonical text
    port                  INTEGER NOT NULL CHECK (port BETWEEN 0 AND 65535),
    scheme                TEXT NOT NULL,
    observed_at           TEXT NOT NULL,
    status                TEXT NOT NULL,
    error                 TEXT,
    tls                   TEXT CHECK (tls IS NULL OR json_valid(tls)),
    http_server           TEXT,
    fingerprint           TEXT NOT NULL CHECK (json_valid(fingerprint)),
    exchange_family       TEXT,
    exchange_build        TEXT,
    exchange_version_name TEXT,
    exchange_support      TEXT,
    exchange_verdict     TEXT CHECK (exchange_verdict IS NULL OR json_valid(exchange_verdict)),
    UNIQUE (scan_id, ip, port),
    -- The verdict is one value: all of its columns are set, or none is.
    CHECK (
        (exchange_family IS NULL) = (exchange_build IS NULL)
        AND (exchange_family IS NULL) = (exchange_version_name IS NULL)
        AND (exchange_family IS NULL) = (exchange_support IS NULL)
        AND (exchange_family IS NULL) = (exchange_verdict IS NULL)
    )
) STRICT;

-- The census reads the recognised servers of one scan.
CREATE INDEX observations_scan_family ON observations (scan_id, exchange_family);
