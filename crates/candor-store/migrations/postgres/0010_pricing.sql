-- Pricing guardrails (postgres). Nothing here names a person: prices shaped by personal data are
-- decisions (sealed with the person's key, in `decisions`); these tables hold prices shown
-- to everyone, order lines without their buyer, and aggregate audits.

-- Price history per product: the prices checks showed when they changed (the check of the
-- same id explains it), order lines (from Order Completed events, without the buyer;
-- `order_ref` is a keyed hash of the order id) and imported prices. Amounts are minor units
-- of `currency`. A cancelled order's lines do not count. One B-tree, in the order the
-- prior-period lowest price reads it (product, currency, time); an id is the same row
-- replayed.
CREATE TABLE price_history (
    tenant_id    TEXT NOT NULL,
    product      TEXT NOT NULL,
    currency     TEXT NOT NULL,
    at           BIGINT NOT NULL,
    id           TEXT NOT NULL,
    -- check | order | import
    kind         TEXT NOT NULL,
    price        BIGINT NOT NULL,
    quantity     DOUBLE PRECISION,
    country      TEXT,
    segment      TEXT,
    order_ref    BYTEA,
    cancelled_at BIGINT,
    PRIMARY KEY (tenant_id, product, currency, at, id)
);
CREATE INDEX price_history_order ON price_history (tenant_id, order_ref) WHERE order_ref IS NOT NULL;

-- Every check no personal data shaped, with its explanation (reasons, signals by class,
-- discount): the guard's own record. One row per group commit or batch, its checks a JSON
-- array, so recording costs one row however many prices a batch checks. Checks shaped by
-- personal data are decisions instead.
CREATE TABLE price_check_log (
    tenant_id  TEXT NOT NULL,
    id         TEXT NOT NULL,
    -- checks (single checks of one group commit) | batch
    kind       TEXT NOT NULL,
    checks     BIGINT NOT NULL,
    allowed    BIGINT NOT NULL,
    adjusted   BIGINT NOT NULL,
    refused    BIGINT NOT NULL,
    entries    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX price_check_log_created ON price_check_log (tenant_id, created_at);

-- Cancelled orders, kept so that a cancellation that arrives before its order still counts.
CREATE TABLE price_cancellations (
    tenant_id TEXT NOT NULL,
    order_ref BYTEA NOT NULL,
    at        BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, order_ref)
);

-- The price a segment is shown for a product within one window (first shown wins).
CREATE TABLE price_pins (
    tenant_id    TEXT NOT NULL,
    product      TEXT NOT NULL,
    currency     TEXT NOT NULL,
    segment      TEXT NOT NULL,
    list_price   BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    price        BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, product, currency, segment, list_price, window_start)
);

-- How much each pricing signal reveals a protected attribute (proxy detection on a sample
-- the store provided); flagged signals are refused by every price check.
CREATE TABLE price_proxies (
    tenant_id          TEXT NOT NULL,
    signal             TEXT NOT NULL,
    attribute          TEXT NOT NULL,
    cramers_v          DOUBLE PRECISION NOT NULL,
    mutual_information DOUBLE PRECISION NOT NULL,
    auc                DOUBLE PRECISION NOT NULL,
    flagged            BIGINT NOT NULL,
    audit_id           TEXT NOT NULL,
    audited_at         BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, signal, attribute)
);

-- Price dispersion audits (group prices and counts, no person's values) and their alerts.
CREATE TABLE price_audits (
    tenant_id        TEXT NOT NULL,
    id               TEXT NOT NULL,
    -- file | monitoring | proxies
    kind             TEXT NOT NULL,
    attribute        TEXT NOT NULL,
    period_start     BIGINT,
    period_end       BIGINT,
    flagged_products BIGINT NOT NULL,
    report           TEXT NOT NULL,
    actor            TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX price_audits_created ON price_audits (tenant_id, created_at);

CREATE TABLE price_alerts (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    audit_id    TEXT NOT NULL,
    attribute   TEXT NOT NULL,
    product     TEXT NOT NULL,
    period      TEXT NOT NULL,
    group_label TEXT NOT NULL,
    ratio       DOUBLE PRECISION NOT NULL,
    max_ratio   DOUBLE PRECISION NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX price_alerts_created ON price_alerts (tenant_id, created_at);
