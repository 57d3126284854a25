-- PostgreSQL writing the observation row itself: the server inserts 200,000 rows shaped like
-- the store's Exchange rows from generate_series, no client at all, one backend. Run against
-- a fresh database that `surveyor migrate` brought to the newest schema:
--   psql -h 127.0.0.1 -U postgres -d DB -f benches/pg_ceiling.sql
-- Three timed INSERTs: as migrated; without the two secondary (partial) indexes; and also
-- without the TLS and fingerprint JSON. It drops those indexes: use a throwaway database.
\timing on
INSERT INTO scans (started_at, as_of, targets, ports, tool_version)
SELECT now(), '2026-11-23', 'ceiling ' || i, '{443}', 'bench' FROM generate_series(1, 3) i;
CREATE TEMP TABLE j AS SELECT
 (SELECT jsonb_build_object('evidence', jsonb_agg(jsonb_build_object('signal', 'owa-version-header',
   'source', 'GET /owa/', 'value', '15.1.2507.6'))) FROM generate_series(1, 12))::json AS fp,
 jsonb_build_object('version', 'TLSv1_3', 'cipher', 'TLS13_AES_128_GCM_SHA256', 'cert_sha256',
   repeat('a', 64), 'subject', 'CN=mail.example.org', 'issuer', 'CN=CA', 'names',
   jsonb_build_array('mail.example.org', 'autodiscover.example.org'))::json AS tls,
 (SELECT jsonb_build_object('family', '2016', 'build', '15.1.2507.6', 'evidence',
   jsonb_agg(jsonb_build_object('signal', 'owa-version-header', 'source', 'GET /owa/',
   'value', '15.1.2507.6')), 'inconsistencies', '[]'::jsonb) FROM generate_series(1, 12))::json
   AS verdict;

\echo as migrated
INSERT INTO observations (scan_id, ip, port, scheme, observed_at, status, tls, http_server,
  fingerprint, exchange_family, exchange_build, exchange_version_name, exchange_support,
  exchange_verdict, exchange_cu, exchange_patch, organisation, sector, asn, country)
SELECT (SELECT min(id) FROM scans WHERE tool_version = 'bench'), '10.0.0.0'::inet + i, 443,
  'https', now(), 'success', j.tls, 'Microsoft-IIS/10.0', j.fp, '2016', '15.1.2507.6',
  'Exchange Server 2016 CU23 Oct25SU', 'unsupported', j.verdict, 'Exchange Server 2016 CU23',
  'current', 'org' || (i % 1000), 'hospital', 64500 + i % 100, 'DE'
FROM generate_series(1, 200000) i, j;

DROP INDEX observations_scan_servers, observations_scan_organisation;
\echo without the secondary indexes
INSERT INTO observations (scan_id, ip, port, scheme, observed_at, status, tls, http_server,
  fingerprint, exchange_family, exchange_build, exchange_version_name, exchange_support,
  exchange_verdict, exchange_cu, exchange_patch, organisation, sector, asn, country)
SELECT (SELECT min(id) + 1 FROM scans WHERE tool_version = 'bench'), '10.0.0.0'::inet + i, 443,
  'https', now(), 'success', j.tls, 'Microsoft-IIS/10.0', j.fp, '2016', '15.1.2507.6',
  'Exchange Server 2016 CU23 Oct25SU', 'unsupported', j.verdict, 'Exchange Server 2016 CU23',
  'current', 'org' || (i % 1000), 'hospital', 64500 + i % 100, 'DE'
FROM generate_series(1, 200000) i, j;

\echo and without the TLS and fingerprint JSON
INSERT INTO observations (scan_id, ip, port, scheme, observed_at, status, tls, http_server,
  fingerprint, exchange_family, exchange_build, exchange_version_name, exchange_support,
  exchange_verdict, exchange_cu, exchange_patch, organisation, sector, asn, country)
SELECT (SELECT min(id) + 2 FROM scans WHERE tool_version = 'bench'), '10.0.0.0'::inet + i, 443,
  'https', now(), 'success', NULL, 'Microsoft-IIS/10.0', '{}', '2016', '15.1.2507.6',
  'Exchange Server 2016 CU23 Oct25SU', 'unsupported', j.verdict, 'Exchange Server 2016 CU23',
  'current', 'org' || (i % 1000), 'hospital', 64500 + i % 100, 'DE'
FROM generate_series(1, 200000) i, j;
