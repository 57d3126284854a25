-- Notifications to affected organisations: the outbox, the findings each notification carries
-- (for the re-notification window), every delivery attempt, and the suppression list.

-- The outbox: one row per bundle and channel. A row stays 'pending' until a delivery succeeds
-- ('delivered') or fails for good ('failed'); nothing is ever deleted by sending.
CREATE TABLE notifications (
    id              INTEGER PRIMARY KEY,
    scan_id         INTEGER NOT NULL REFERENCES scans (id),
    -- The bundle's recipient: 'organisation:<registry id>' or 'contact:<abuse address>'.
    recipient       TEXT NOT NULL,
    channel         TEXT NOT NULL CHECK (channel IN ('webhook', 'smtp', 'file')),
    -- A URL, a mail address or a directory.
    destination     TEXT NOT NULL,
    -- Sent with every attempt, so a receiver can drop repeats; one per scan, recipient,
    -- channel and destination.
    idempotency_key TEXT NOT NULL UNIQUE,
    language        TEXT NOT NULL,
    -- The rendered bundle: events, CSV, e-mail subject and body.
    payload         TEXT NOT NULL CHECK (json_valid(payload)),
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    delivered_at    TEXT,
    last_error      TEXT
) STRICT;
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
CREATE INDEX notifications_scan ON notifications (scan_id);

-- What each notification told: the re-notification window compares a finding's fingerprint
-- (what was wrong) with the last time it was told to the same recipient.
CREATE TABLE notification_findings (
    notification_id INTEGER NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    ip              TEXT NOT NULL,
    port            INTEGER NOT NULL,
    fingerprint     TEXT NOT NULL,
    PRIMARY KEY (notification_id, ip, port)
) STRICT;
CREATE INDEX notification_findings_host ON notification_findings (ip, port);

-- Every delivery attempt, with our own description of what went wrong.
CREATE TABLE notification_deliveries (
    id              INTEGER PRIMARY KEY,
    notification_id INTEGER NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    attempt         INTEGER NOT NULL,
    attempted_at    TEXT NOT NULL,
    outcome         TEXT NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed')),
    error           TEXT
) STRICT;
CREATE INDEX notification_deliveries_notification ON notification_deliveries (notification_id);

-- Who must not be notified: an organisation id, a contact address, or an address prefix.
CREATE TABLE notification_suppressions (
    target     TEXT PRIMARY KEY,
    reason     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    -- NULL: until removed.
    expires_at TEXT
) STRICT;
