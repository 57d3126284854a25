-- The secondary indexes PostgreSQL's 0011_lean_observations left, for the same reason: every
-- query by scan and id (server pages) and by scan and organisation reads recognised servers
-- only, so those two indexes cover only rows with a verdict; every other query by scan uses
-- UNIQUE (scan_id, ip, port). (scan_id, exchange_family) goes: the census reads aggregates,
-- and the queries that filter by family within a scan start from the servers index. One
-- B-tree insert fewer per observation and two fewer per observation without a verdict
-- (docs/benchmarks.md, "Session 7").
DROP INDEX observations_scan_family;
DROP INDEX observations_scan_id;
DROP INDEX observations_scan_organisation;
CREATE INDEX observations_scan_servers ON observations (scan_id, id)
    WHERE exchange_family IS NOT NULL;
CREATE INDEX observations_scan_organisation ON observations (scan_id, organisation)
    WHERE exchange_family IS NOT NULL;
