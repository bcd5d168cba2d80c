-- The catalogue and its stock.
--
-- `available` is what a new order can still reserve; `reserved` is held for
-- orders whose saga has not finished (the saga moves units from one to the
-- other, and a commit removes them from `reserved`). The CHECKs make negative
-- stock impossible even if a code path is wrong: the database is the last guard.
CREATE TABLE products (
    sku              text        PRIMARY KEY CHECK (sku ~ '^[A-Za-z0-9_-]{1,32}$'),
    name             text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    unit_price_minor bigint      NOT NULL CHECK (unit_price_minor > 0),
    available        bigint      NOT NULL CHECK (available >= 0),
    reserved         bigint      NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
