-- API bearer tokens: only a SHA-256 of each token is kept; the token itself is shown once,
-- when it is made.

CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    -- viewer (aggregates), analyst (host-level data), researcher (exports), admin.
    role       TEXT NOT NULL CHECK (role IN ('viewer', 'analyst', 'researcher', 'admin')),
    -- SHA-256 of the token, hex.
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
) STRICT;
