-- Distributed census (PostgreSQL only): a census job split into shards that workers on any
-- machine lease with FOR UPDATE SKIP LOCKED, heartbeat, checkpoint and complete. Every
-- comparison with a lease's expiry uses the server's clock (now()), never a worker's.

CREATE TABLE census_jobs (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE CHECK (name <> ''),
    -- All shards record into this one scan; it is finished once, when the last shard is done.
    scan_id        BIGINT NOT NULL REFERENCES scans (id),
    -- running: shards are handed out; paused and cancelled: they are not (workers holding
    -- one stop at their next heartbeat); finishing: every shard is done and one worker holds
    -- the finish lease to mark the scan finished; finished: it did.
    state          TEXT NOT NULL
                   CHECK (state IN ('running', 'paused', 'cancelled', 'finishing', 'finished')),
    -- The scan parameters as the binary wrote them (targets, ports, seed, rates, deadlines);
    -- the store does not read them.
    params         JSONB NOT NULL,
    shard_count    INTEGER NOT NULL CHECK (shard_count > 0),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at    TIMESTAMPTZ,
    -- Who is finishing the scan, until when: a finisher that dies lets another take over.
    finish_owner   TEXT,
    finish_expires TIMESTAMPTZ,
    CHECK ((state = 'finishing') = (finish_owner IS NOT NULL AND finish_expires IS NOT NULL))
);

CREATE TABLE census_shards (
    job_id        BIGINT NOT NULL REFERENCES census_jobs (id) ON DELETE CASCADE,
    shard         INTEGER NOT NULL CHECK (shard >= 0),
    state         TEXT NOT NULL CHECK (state IN ('pending', 'leased', 'done')),
    lease_owner   TEXT,
    lease_expires TIMESTAMPTZ,
    heartbeat_at  TIMESTAMPTZ,
    -- The scan's checkpoint for this shard (positions done and pending), as the binary wrote
    -- it; a worker that takes the shard over resumes from it.
    checkpoint    JSONB,
    targets_total BIGINT NOT NULL CHECK (targets_total >= 0),
    targets_done  BIGINT NOT NULL DEFAULT 0 CHECK (targets_done >= 0),
    -- How often the shard was leased: more than once means a takeover or a pause.
    leases        INTEGER NOT NULL DEFAULT 0,
    started_at    TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ,
    PRIMARY KEY (job_id, shard),
    CHECK ((state = 'leased') = (lease_owner IS NOT NULL AND lease_expires IS NOT NULL))
);
-- Claiming looks for pending shards and expired leases.
CREATE INDEX census_shards_claimable ON census_shards (state, lease_expires);
