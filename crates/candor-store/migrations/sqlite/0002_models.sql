-- Model registry and automated decisions (SQLite).

CREATE TABLE models (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    version    INTEGER NOT NULL,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('draft', 'audited', 'approved', 'active', 'retired')),
    digest     TEXT NOT NULL,
    artifact   BLOB NOT NULL,
    card       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, version)
);
-- At most one active model per name and tenant.
CREATE UNIQUE INDEX models_one_active ON models (tenant_id, name) WHERE status = 'active';

CREATE TABLE model_transitions (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   TEXT NOT NULL,
    version     INTEGER NOT NULL,
    from_status TEXT NOT NULL,
    to_status   TEXT NOT NULL,
    actor       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    at          INTEGER NOT NULL,
    FOREIGN KEY (tenant_id, version) REFERENCES models(tenant_id, version)
);
CREATE INDEX model_transitions_model ON model_transitions (tenant_id, version, seq);

-- One row per automated decision about a subject. The outcome and its explanation are
-- personal data: sealed with the subject's data key (crypto-shredding erases them).
CREATE TABLE decisions (
    tenant_id     TEXT NOT NULL,
    id            TEXT NOT NULL,
    subject_id    TEXT NOT NULL,
    purpose       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    model_version INTEGER,
    inputs_digest TEXT NOT NULL,
    sealed        BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects(tenant_id, id)
);
CREATE INDEX decisions_subject ON decisions (tenant_id, subject_id, created_at);
