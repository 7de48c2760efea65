-- The shopping assistant (sqlite): the catalog it searches (no personal data), conversations,
-- their messages (stored redacted; sealed with the person's data key when the conversation
-- names a person) and hand-offs to a human.
CREATE TABLE catalog_products (
    tenant_id   TEXT NOT NULL,
    product_id  TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    category    TEXT,
    price       INTEGER,
    currency    TEXT,
    url         TEXT,
    source      TEXT NOT NULL CHECK (source IN ('event', 'import')),
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, product_id)
);

CREATE TABLE assistant_conversations (
    tenant_id          TEXT NOT NULL,
    id                 TEXT NOT NULL,
    subject_id         TEXT,
    verified           INTEGER NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('open', 'handoff', 'closed')),
    misunderstandings  INTEGER NOT NULL,
    next_seq           INTEGER NOT NULL,
    disclosure_version TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX assistant_conversations_subject ON assistant_conversations (tenant_id, subject_id);
CREATE INDEX assistant_conversations_updated ON assistant_conversations (tenant_id, updated_at);

CREATE TABLE assistant_messages (
    tenant_id       TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    id              TEXT NOT NULL,
    subject_id      TEXT,
    role            TEXT NOT NULL CHECK (role IN ('customer', 'assistant', 'staff')),
    body            BLOB NOT NULL,
    sealed          INTEGER NOT NULL,
    meta            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id, seq)
);
CREATE INDEX assistant_messages_subject ON assistant_messages (tenant_id, subject_id);

CREATE TABLE assistant_tickets (
    tenant_id       TEXT NOT NULL,
    id              TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    subject_id      TEXT,
    reason          TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('open', 'answered', 'closed')),
    created_at      INTEGER NOT NULL,
    answered_at     INTEGER,
    answered_by     TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX assistant_tickets_status ON assistant_tickets (tenant_id, status, created_at);
CREATE INDEX assistant_tickets_subject ON assistant_tickets (tenant_id, subject_id);
CREATE INDEX assistant_tickets_conversation ON assistant_tickets (tenant_id, conversation_id);
