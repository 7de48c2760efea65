-- Email journeys (postgres). Each step a person is due for is a row: the scheduler claims due
-- rows (a lease, so a crashed node's claims expire), checks consent, caps and quiet hours at
-- send time, and finishes the row together with its email record in one transaction. The
-- unique key (subject, journey, trigger, step) is the idempotency key: the same trigger never
-- enrols twice. Both tables are personal data: erasure deletes them, which stops every
-- pending step.
CREATE TABLE journey_steps (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    subject_id    TEXT NOT NULL,
    journey       TEXT NOT NULL,
    step          BIGINT NOT NULL,
    email         TEXT NOT NULL,
    trigger_id    TEXT NOT NULL,
    triggered_at  BIGINT NOT NULL,
    due_at        BIGINT NOT NULL,
    -- pending | sent | skipped | exited | holdout
    status        TEXT NOT NULL,
    reason        TEXT,
    claimed_until BIGINT NOT NULL DEFAULT 0,
    finished_at   BIGINT,
    UNIQUE (tenant_id, subject_id, journey, trigger_id, step),
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects(tenant_id, id)
);
CREATE INDEX journey_steps_due ON journey_steps (due_at) WHERE status = 'pending';
CREATE INDEX journey_steps_subject ON journey_steps (tenant_id, subject_id, journey, status);
CREATE INDEX journey_steps_journey ON journey_steps (tenant_id, journey);

-- One row per email handed to the SMTP relay. The unsubscribe token is stored only as its
-- SHA-256; the message id is derived from the step, so a resend after a crash carries the
-- same Message-ID.
CREATE TABLE emails (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    subject_id       TEXT NOT NULL,
    step_id          TEXT NOT NULL UNIQUE,
    journey          TEXT NOT NULL,
    message_id       TEXT NOT NULL,
    token_hash       BYTEA NOT NULL UNIQUE,
    sent_at          BIGINT NOT NULL,
    ai_content       BIGINT NOT NULL,
    tracking         BIGINT NOT NULL,
    opened_at        BIGINT,
    clicked_at       BIGINT,
    bounced_at       BIGINT,
    complained_at    BIGINT,
    unsubscribed_at  BIGINT,
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects(tenant_id, id)
);
CREATE INDEX emails_subject ON emails (tenant_id, subject_id, sent_at);
CREATE INDEX emails_journey ON emails (tenant_id, journey);
