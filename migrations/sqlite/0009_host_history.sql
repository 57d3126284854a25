-- A scan stores its targets in permuted order, so the (ip, port) index took a random page for
-- every observation, which halved ingest (docs/benchmarks.md). A host's history now probes
-- UNIQUE (scan_id, ip, port) once per scan instead.
DROP INDEX observations_ip_port;
