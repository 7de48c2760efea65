-- The store's catalog state that recommendations filter on (postgres): no personal data.
CREATE TABLE catalog_items (
    tenant_id  TEXT NOT NULL,
    item_id    TEXT NOT NULL,
    in_stock   BOOLEAN NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, item_id)
);
