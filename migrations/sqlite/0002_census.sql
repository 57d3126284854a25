-- Census history: query columns for CU and patch band, per-scan aggregates that outlive
-- pruned observations, the latest state of every host, and the prune mark on scans.

ALTER TABLE scans ADD COLUMN pruned_at TEXT;
-- Kept by the store as batches go in, so that listing scans does not count millions of rows.
ALTER TABLE scans ADD COLUMN observation_count INTEGER NOT NULL DEFAULT 0;
UPDATE scans SET observation_count = (SELECT count(*) FROM observations o WHERE o.scan_id = scans.id);

-- NULL in rows stored before these columns existed; the census counts them as unknown.
ALTER TABLE observations ADD COLUMN exchange_cu TEXT;
ALTER TABLE observations ADD COLUMN exchange_patch TEXT;

-- Host history: every observation of one address, across scans.
CREATE INDEX observations_ip_port ON observations (ip, port);

-- One row per combination of census dimensions per finished scan, counting servers (one per
-- address, as the census counts them). Written when a scan finishes; prune keeps it, so
-- trends reach back past the observations that were deleted.
CREATE TABLE census_rollup (
    scan_id      INTEGER NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    family       TEXT NOT NULL,
    cu           TEXT NOT NULL,   -- '' when the CU is unknown
    version_name TEXT NOT NULL,
    support      TEXT NOT NULL,
    patch        TEXT NOT NULL,
    servers      INTEGER NOT NULL CHECK (servers > 0)
) STRICT;
CREATE INDEX census_rollup_scan ON census_rollup (scan_id);

-- The latest state of every address and port any finished scan stored, with first and last
-- sighting. Updated when a scan finishes.
CREATE TABLE hosts (
    ip                    TEXT NOT NULL,
    port                  INTEGER NOT NULL CHECK (port BETWEEN 0 AND 65535),
    first_seen            TEXT NOT NULL,
    last_seen             TEXT NOT NULL,
    last_scan_id          INTEGER NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    status                TEXT NOT NULL,
    exchange_family       TEXT,
    exchange_build        TEXT,
    exchange_version_name TEXT,
    exchange_support      TEXT,
    PRIMARY KEY (ip, port)
) STRICT;
CREATE INDEX hosts_family ON hosts (exchange_family, exchange_support);

-- Backfill from scans finished before this migration: their CU and patch band are unknown.
INSERT INTO census_rollup (scan_id, family, cu, version_name, support, patch, servers)
SELECT scan_id, exchange_family, '', exchange_version_name, exchange_support, 'unknown', count(*)
FROM (SELECT o.scan_id, o.exchange_family, o.exchange_version_name, o.exchange_support,
             row_number() OVER (PARTITION BY o.scan_id, o.ip
                                ORDER BY o.exchange_family DESC, o.port) AS pick
      FROM observations o JOIN scans s ON s.id = o.scan_id
      WHERE s.finished_at IS NOT NULL AND o.exchange_family IS NOT NULL) ranked
WHERE pick = 1
GROUP BY scan_id, exchange_family, exchange_version_name, exchange_support;

INSERT INTO hosts (ip, port, first_seen, last_seen, last_scan_id, status, exchange_family,
                   exchange_build, exchange_version_name, exchange_support)
SELECT ip, port, first_seen, observed_at, scan_id, status, exchange_family, exchange_build,
       exchange_version_name, exchange_support
FROM (SELECT o.*, min(o.observed_at) OVER (PARTITION BY o.ip, o.port) AS first_seen,
             row_number() OVER (PARTITION BY o.ip, o.port
                                ORDER BY o.observed_at DESC, o.scan_id DESC) AS pick
      FROM observations o JOIN scans s ON s.id = o.scan_id
      WHERE s.finished_at IS NOT NULL) latest
WHERE pick = 1;
