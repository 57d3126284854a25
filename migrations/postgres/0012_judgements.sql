-- Which knowledge base judged a scan, and judgements of a stored scan made again later
-- (`surveyor rejudge`). A re-judgement is a scan row of its own that holds the source scan's
-- observations with new verdicts, so every census query reads it as it reads any scan; the
-- columns below say whose observations it holds and whether it replaces earlier judgements.

-- NULL in scans stored before this migration: which knowledge base judged them is not known.
ALTER TABLE scans ADD COLUMN kb_digest TEXT CHECK (kb_digest ~ '^[0-9a-f]{64}$');
ALTER TABLE scans ADD COLUMN kb_newest_release DATE;
-- When the verdicts were made: the scan's start for a scan, the re-judging for a judgement.
ALTER TABLE scans ADD COLUMN judged_at TIMESTAMPTZ;
-- The scan whose observations a re-judgement judged again; NULL for a scan.
ALTER TABLE scans ADD COLUMN judged_from BIGINT REFERENCES scans (id);
-- A re-judgement for another day than its source's (a projection): never the default.
ALTER TABLE scans ADD COLUMN projection BOOLEAN NOT NULL DEFAULT false;
-- The newer judgement of the same observations that replaced this one as the default.
ALTER TABLE scans ADD COLUMN superseded_by BIGINT REFERENCES scans (id);
CREATE INDEX scans_judged_from ON scans (judged_from) WHERE judged_from IS NOT NULL;
