-- Orders and their lines.
--
-- An order is written once as PENDING and then moved by its saga to CONFIRMED
-- or CANCELLED (with a reason). The idempotency key is UNIQUE: two concurrent
-- PlaceOrder calls with one key cannot both insert, the second one waits for the
-- first and then finds its order. order_id is a UUIDv7, so ids sort by creation
-- time and "newest first" pages are a plain index scan on the primary key.
CREATE TABLE orders (
    order_id        uuid        PRIMARY KEY,
    customer_id     text        NOT NULL CHECK (customer_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    status          text        NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'CANCELLED')),
    reason          text        CHECK (reason ~ '^[a-z_]{1,64}$'),
    idempotency_key text        NOT NULL UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 128),
    total_minor     bigint      NOT NULL DEFAULT 0 CHECK (total_minor >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- A reason exactly when the order was cancelled.
    CHECK ((status = 'CANCELLED') = (reason IS NOT NULL))
);
CREATE INDEX orders_customer_idx ON orders (customer_id, order_id DESC);

CREATE TABLE order_lines (
    order_id         uuid    NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    line_no          integer NOT NULL CHECK (line_no >= 0),
    sku              text    NOT NULL CHECK (sku ~ '^[A-Za-z0-9_-]{1,32}$'),
    quantity         integer NOT NULL CHECK (quantity > 0),
    -- Set from inventory's quote when the stock is reserved; 0 until then.
    unit_price_minor bigint  NOT NULL DEFAULT 0 CHECK (unit_price_minor >= 0),
    PRIMARY KEY (order_id, line_no),
    UNIQUE (order_id, sku)
);
