-- Surveyor schema for PostgreSQL: scans and what each scan observed.
-- TIMESTAMPTZ keeps microseconds; the store truncates to microseconds before writing so that
-- both backends give back the same value. JSONB columns hold serde_json text of the
-- surveyor_model types.

CREATE TABLE scans (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    as_of        DATE NOT NULL,
    targets      TEXT NOT NULL,
    ports        INTEGER[] NOT NULL CHECK (0 <= ALL (ports) AND 65535 >= ALL (ports)),
    tool_version TEXT NOT NULL
);

CREATE TABLE observations (
    id                    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scan_id               BIGINT NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    -- INET, not TEXT: one canonical form per address, numeric ordering, and network
    -- operators (<<) for queries by subnet. Only host addresses, never networks.
    ip                    INET NOT NULL
                          CHECK (masklen(ip) = CASE family(ip) WHEN 4 THEN 32 ELSE 128 END),
    port                  INTEGER NOT NULL CHECK (port BETWEEN 0 AND 65535),
    scheme                TEXT NOT NULL,
    observed_at           TIMESTAMPTZ NOT NULL,
    status                TEXT NOT NULL,
    error                 TEXT,
    tls                   JSONB,
    http_server           TEXT,
    fingerprint           JSONB NOT NULL,
    exchange_family       TEXT,
    exchange_build        TEXT,
    exchange_version_name TEXT,
    exchange_support      TEXT,
    exchange_verdict     JSONB,
    UNIQUE (scan_id, ip, port),
    -- The verdict is one value: all of its columns are set, or none is.
    CHECK (
        (exchange_family IS NULL) = (exchange_build IS NULL)
        AND (exchange_family IS NULL) = (exchange_version_name IS NULL)
        AND (exchange_family IS NULL) = (exchange_support IS NULL)
        AND (exchange_family IS NULL) = (exchange_verdict IS NULL)
    )
);

-- The census reads the recognised servers of one scan.
CREATE INDEX observations_scan_family ON observations (scan_id, exchange_family);
