-- Recommendation factors per person (sqlite). A person's latent factors and purchase history
-- are personal data: sealed with their data key, deleted when they withdraw personalization
-- consent or are erased. Only people who allow personalization have a row.
CREATE TABLE rec_factors (
    tenant_id     TEXT NOT NULL,
    model_version INTEGER NOT NULL,
    subject_id    TEXT NOT NULL,
    sealed        BLOB NOT NULL,
    PRIMARY KEY (tenant_id, model_version, subject_id),
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects(tenant_id, id)
);
CREATE INDEX rec_factors_subject ON rec_factors (tenant_id, subject_id);
