-- A leaner observation row for ingest at census scale. Measured on the store's ingest path
-- (docs/benchmarks.md), PostgreSQL spent most of each row on work no query needed:
--
-- * Two foreign keys, each checked by a trigger that runs a query per inserted row. The store
--   checks the scan once per batch instead (it reads and locks the scan row FOR KEY SHARE in
--   the batch's transaction), scans are never deleted (prune empties them and keeps the row),
--   and a verdict-facts id is only ever one the same transaction just read back from
--   verdict_facts, whose rows are never deleted.
-- * Six B-trees. The natural key (scan, address, port) becomes the primary key; the identity
--   id stays for cursors but needs no index of its own. Every query by scan and id, and by
--   scan and organisation, reads recognised servers only, so those two indexes now cover only
--   rows with a verdict. (ip, port) goes: a scan stores its targets in permuted order, so
--   that index took a random page for every row; a host's history now probes the primary key
--   once per scan.
-- * JSONB parsing of the TLS record, fingerprint, the verdict's host part and attribution.
--   Nothing queries inside them: they are read back whole. `json` keeps them checked as JSON
--   and stored as written.
ALTER TABLE observations
    DROP CONSTRAINT observations_scan_id_fkey,
    DROP CONSTRAINT observations_exchange_facts_id_fkey,
    DROP CONSTRAINT observations_pkey,
    DROP CONSTRAINT observations_scan_id_ip_port_key,
    ADD PRIMARY KEY (scan_id, ip, port),
    ALTER COLUMN tls TYPE json,
    ALTER COLUMN fingerprint TYPE json,
    ALTER COLUMN exchange_verdict TYPE json,
    ALTER COLUMN attribution TYPE json;

DROP INDEX observations_scan_family, observations_scan_id, observations_scan_organisation,
    observations_ip_port;
CREATE INDEX observations_scan_servers ON observations (scan_id, id)
    WHERE exchange_family IS NOT NULL;
CREATE INDEX observations_scan_organisation ON observations (scan_id, organisation)
    WHERE exchange_family IS NOT NULL;
