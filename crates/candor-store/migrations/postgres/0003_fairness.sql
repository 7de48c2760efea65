-- Fairness audits of models and the alerts of monitoring (postgres).

-- One audit of a model version: `validation` (before it may decide about people; the latest
-- one gates approval and activation) or `monitoring` (over live decisions with known
-- outcomes, for one period). The report holds group metrics and counts, never personal values.
-- A failed validation audit may carry an admin's override with its reason.
CREATE TABLE model_audits (
    seq             BIGSERIAL PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    version         BIGINT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('validation', 'monitoring')),
    passed          BOOLEAN NOT NULL,
    report          TEXT NOT NULL,
    actor           TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    period_start    BIGINT,
    period_end      BIGINT,
    override_actor  TEXT,
    override_reason TEXT,
    override_at     BIGINT,
    FOREIGN KEY (tenant_id, version) REFERENCES models(tenant_id, version)
);
CREATE INDEX model_audits_model ON model_audits (tenant_id, version, kind, seq);

-- A gate breached by a monitoring audit.
CREATE TABLE fairness_alerts (
    seq         BIGSERIAL PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    version     BIGINT NOT NULL,
    audit_seq   BIGINT NOT NULL REFERENCES model_audits(seq),
    gate        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    value       DOUBLE PRECISION,
    limit_value DOUBLE PRECISION NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX fairness_alerts_tenant ON fairness_alerts (tenant_id, seq);
