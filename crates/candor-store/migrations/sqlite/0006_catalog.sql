-- The store's catalog state that recommendations filter on (sqlite): no personal data.
CREATE TABLE catalog_items (
    tenant_id  TEXT NOT NULL,
    item_id    TEXT NOT NULL,
    in_stock   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, item_id)
);
