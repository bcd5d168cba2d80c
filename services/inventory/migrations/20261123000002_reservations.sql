-- Reservations: inventory's side of the saga, one row per order.
--
-- RESERVED   the order's units moved from products.available to products.reserved
-- COMMITTED  the units are sold: they left products.reserved
-- RELEASED   the units went back to products.available (from RESERVED or
--            COMMITTED); also a tombstone with no lines when a ReleaseStock
--            arrived before its ReserveStock, so a late ReserveStock is refused
-- REJECTED   nothing was held (reason says why)
--
-- One row per order makes every command idempotent: a repeated command finds
-- the row and replies with the same outcome, never a second effect.
CREATE TABLE reservations (
    order_id     uuid        PRIMARY KEY,
    status       text        NOT NULL CHECK (status IN ('RESERVED', 'COMMITTED', 'RELEASED', 'REJECTED')),
    reason       text        CHECK (reason IN ('out_of_stock', 'unknown_sku')),
    rejected_sku text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'REJECTED') = (reason IS NOT NULL))
);

CREATE TABLE reservation_lines (
    order_id         uuid    NOT NULL REFERENCES reservations (order_id),
    sku              text    NOT NULL REFERENCES products (sku),
    quantity         integer NOT NULL CHECK (quantity > 0),
    unit_price_minor bigint  NOT NULL CHECK (unit_price_minor > 0),
    PRIMARY KEY (order_id, sku)
);
