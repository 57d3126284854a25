-- The organisations registry and each observation's attribution to an organisation and sector.

-- The registry as last imported: replaced whole, in one transaction, by each import.
CREATE TABLE organisations (
    id     TEXT PRIMARY KEY,
    name   TEXT NOT NULL,
    sector TEXT NOT NULL,
    -- The whole surveyor_model::Organisation (prefixes, domains, ASNs, contact, language).
    body   TEXT NOT NULL CHECK (json_valid(body))
) STRICT;

-- Every import: when, from where, how many organisations.
CREATE TABLE registry_imports (
    id            INTEGER PRIMARY KEY,
    imported_at   TEXT NOT NULL,
    source        TEXT NOT NULL,
    organisations INTEGER NOT NULL
) STRICT;

-- As the scan attributed the server (the registry may change later; the observation keeps
-- what was decided then). No foreign key: an organisation may leave the registry.
ALTER TABLE observations ADD COLUMN organisation TEXT;
ALTER TABLE observations ADD COLUMN sector TEXT;
ALTER TABLE observations ADD COLUMN attribution TEXT CHECK (attribution IS NULL OR json_valid(attribution));
CREATE INDEX observations_scan_organisation ON observations (scan_id, organisation);

-- The census by sector; '' for servers no rule attributed.
ALTER TABLE census_rollup ADD COLUMN sector TEXT NOT NULL DEFAULT '';
