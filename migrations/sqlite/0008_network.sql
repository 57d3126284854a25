-- Where each server is on the network: the AS announcing its address and the country the
-- address is registered in, for the census by ASN and by country.

-- NULL when the scan had no routing table (or country table and registry country).
ALTER TABLE observations ADD COLUMN asn INTEGER CHECK (asn BETWEEN 0 AND 4294967295);
ALTER TABLE observations ADD COLUMN country TEXT CHECK (country GLOB '[A-Z][A-Z]');

-- The census by ASN (decimal) and country; '' for unknown, as sector. Scans finished before
-- this migration count every server as unknown: their observations never recorded either.
ALTER TABLE census_rollup ADD COLUMN asn TEXT NOT NULL DEFAULT '';
ALTER TABLE census_rollup ADD COLUMN country TEXT NOT NULL DEFAULT '';
