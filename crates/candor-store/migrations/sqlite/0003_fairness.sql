-- Fairness audits of models and the alerts of monitoring (sqlite).

-- One audit of a model version: `validation` (before it may decide about people; the latest
-- one gates approval and activation) or `monitoring` (over live decisions with known
-- outcomes, for one period). The report holds group metrics and counts, never personal values.
-- A failed validation audit may carry an admin's override with its reason.
CREATE TABLE model_audits (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id       TEXT NOT NULL,
    version         INTEGER NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('validation', 'monitoring')),
    passed          INTEGER NOT NULL CHECK (passed IN (0, 1)),
    report          TEXT NOT NULL,
    actor           TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    period_start    INTEGER,
    period_end      INTEGER,
    override_actor  TEXT,
    override_reason TEXT,
    override_at     INTEGER,
    FOREIGN KEY (tenant_id, version) REFERENCES models(tenant_id, version)
);
CREATE INDEX model_audits_model ON model_audits (tenant_id, version, kind, seq);

-- A gate breached by a monitoring audit.
CREATE TABLE fairness_alerts (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   TEXT NOT NULL,
    version     INTEGER NOT NULL,
    audit_seq   INTEGER NOT NULL REFERENCES model_audits(seq),
    gate        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    value       REAL,
    limit_value REAL NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX fairness_alerts_tenant ON fairness_alerts (tenant_id, seq);
