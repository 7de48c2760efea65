-- Candor core schema (SQLite). Times are Unix milliseconds. Ids are UUID text.
-- No column holds a plaintext identifier: aliases are keyed hashes (blind index),
-- personal fields are sealed with the subject's data key.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    wrapped_key BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    scope      TEXT NOT NULL CHECK (scope IN ('write', 'server', 'admin')),
    key_hash   BLOB NOT NULL UNIQUE,
    label      TEXT,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE subjects (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    id          TEXT NOT NULL,
    wrapped_key BLOB,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE subject_aliases (
    tenant_id  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    blind      BLOB NOT NULL,
    subject_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, blind), -- the blind index binds the kind: it is in the HMAC input
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects(tenant_id, id)
);
CREATE INDEX subject_aliases_subject ON subject_aliases (tenant_id, subject_id);

CREATE TABLE subject_fields (
    tenant_id  TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    path       TEXT NOT NULL,
    category   TEXT NOT NULL,
    sealed     BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, subject_id, path),
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects(tenant_id, id)
);
CREATE INDEX subject_fields_retention ON subject_fields (tenant_id, category, updated_at);

CREATE TABLE consents (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id      TEXT NOT NULL,
    subject_id     TEXT NOT NULL,
    purpose        TEXT NOT NULL,
    action         TEXT NOT NULL CHECK (action IN ('granted', 'withdrawn')),
    source         TEXT NOT NULL,
    notice_version TEXT,
    notice_hash    TEXT,
    jurisdiction   TEXT,
    at             INTEGER NOT NULL,
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects(tenant_id, id)
);
CREATE INDEX consents_subject ON consents (tenant_id, subject_id, seq);

CREATE TABLE events (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    subject_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    name        TEXT,
    category    TEXT NOT NULL,
    purposes    TEXT NOT NULL,
    parts       TEXT NOT NULL,
    plain       TEXT NOT NULL,
    sealed      TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, message_id)
);
-- Subject ids are globally unique (UUIDv7): the tenant is checked on the row, not indexed here,
-- which keeps this randomly-updated index small.
CREATE INDEX events_subject ON events (subject_id, occurred_at);
CREATE INDEX events_retention ON events (tenant_id, category, occurred_at);

CREATE TABLE audit_log (
    chain     TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT,
    details   TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash      BLOB NOT NULL,
    PRIMARY KEY (chain, seq)
);

CREATE TABLE audit_head (
    chain TEXT PRIMARY KEY,
    seq   INTEGER NOT NULL,
    hash  BLOB NOT NULL
);
