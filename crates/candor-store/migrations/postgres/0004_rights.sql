-- Data-subject rights (postgres): erasure tombstones, restriction, requests with deadlines,
-- contested decisions.

-- An erased subject keeps a tombstone row (no key, no data) so that ingestion racing the
-- erasure sees it erased; its aliases move to the tenant's suppression subject (the nil id,
-- never holding a key): a keyed hash that stops the person being silently re-created.
ALTER TABLE subjects ADD COLUMN erased_at BIGINT;
-- Restricted processing (GDPR Art. 18): every purpose is denied while set.
ALTER TABLE subjects ADD COLUMN restricted_at BIGINT;

-- Requests under GDPR Arts. 15-22 and CCPA. Personal details of a request (a rectification's
-- new values, the one-time token's hash aside) are sealed with the subject's data key.
CREATE TABLE dsr_requests (
    tenant_id         TEXT NOT NULL,
    id                TEXT NOT NULL,
    subject_id        TEXT NOT NULL,
    kind              TEXT NOT NULL,
    regime            TEXT NOT NULL CHECK (regime IN ('gdpr', 'ccpa')),
    status            TEXT NOT NULL CHECK (status IN ('received', 'verified', 'in_progress', 'completed', 'rejected')),
    received_at       BIGINT NOT NULL,
    acknowledge_by    BIGINT,
    acknowledged_at   BIGINT,
    due_at            BIGINT NOT NULL,
    extended          BOOLEAN NOT NULL DEFAULT FALSE,
    extension_notice  TEXT,
    token_hash        BYTEA,
    token_expires_at  BIGINT,
    verified_at       BIGINT,
    verified_by       TEXT,
    completed_at      BIGINT,
    rejection_reason  TEXT,
    sealed            BYTEA,
    result            TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX dsr_requests_due ON dsr_requests (tenant_id, status, due_at);
CREATE INDEX dsr_requests_subject ON dsr_requests (tenant_id, subject_id);

-- A subject's contest of an automated decision (GDPR Art. 22(3)). The statement and the
-- reviewer's note are sealed with the subject's data key.
CREATE TABLE decision_contests (
    tenant_id     TEXT NOT NULL,
    id            TEXT NOT NULL,
    decision_id   TEXT NOT NULL,
    subject_id    TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('open', 'upheld', 'overridden')),
    sealed        BYTEA NOT NULL,
    created_at    BIGINT NOT NULL,
    due_at        BIGINT NOT NULL,
    reviewer      TEXT,
    note_sealed   BYTEA,
    outcome_label BIGINT,
    resolved_at   BIGINT,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, decision_id) REFERENCES decisions(tenant_id, id)
);
CREATE INDEX decision_contests_queue ON decision_contests (tenant_id, status, due_at);
CREATE INDEX decision_contests_subject ON decision_contests (tenant_id, subject_id);
