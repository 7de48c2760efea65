-- The staff console and the customers' privacy center (sqlite).

-- Staff accounts: people of the store who sign in to the console, each with one role.
-- Passwords are stored as PBKDF2-HMAC-SHA256 (see candor-crypto's hash_password).
CREATE TABLE staff_accounts (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    login         TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'marketer', 'reviewer', 'compliance')),
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    disabled_at   INTEGER
);

-- Signed-in browsers: staff in the console, customers in the privacy center. Only the
-- SHA-256-based keyed hash of the cookie's token is stored; the CSRF token is per session.
CREATE TABLE web_sessions (
    token_hash BLOB PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('staff', 'customer')),
    staff_id   TEXT,
    subject_id TEXT,
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX web_sessions_subject ON web_sessions (tenant_id, subject_id);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);

-- One-time sign-in links of the privacy center, emailed to the person's address.
CREATE TABLE signin_links (
    token_hash BLOB PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX signin_links_subject ON signin_links (tenant_id, subject_id, created_at);

-- "Talk to a human": a customer's message to the store's staff, sealed with their data key.
CREATE TABLE contact_requests (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    subject_id  TEXT NOT NULL,
    sealed      BLOB NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    created_at  INTEGER NOT NULL,
    due_at      INTEGER NOT NULL,
    closed_at   INTEGER,
    closed_by   TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX contact_requests_subject ON contact_requests (tenant_id, subject_id);
