-- How long each census was paused, so that its observed rate and ETA count working time only.
-- paused_at: when the current pause began (NULL while not paused); paused_seconds: the pauses
-- that ended.
ALTER TABLE census_jobs ADD COLUMN paused_at TIMESTAMPTZ;
ALTER TABLE census_jobs ADD COLUMN paused_seconds DOUBLE PRECISION NOT NULL DEFAULT 0
    CHECK (paused_seconds >= 0);
UPDATE census_jobs SET paused_at = now() WHERE state = 'paused';
