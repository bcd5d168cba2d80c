-- Payments: billing's side of the saga, one row per order.
--
-- CAPTURED  the amount left the customer's balance (a 'charge' ledger entry)
-- DECLINED  nothing was taken (decline_reason says why)
-- REFUNDED  the captured amount went back (a 'refund' ledger entry)
-- VOIDED    a tombstone: a RefundPayment arrived before its ChargePayment, so a
--           late ChargePayment is declined instead of taking money
--
-- One row per order makes every command idempotent, and the unique index on
-- the ledger makes a second charge or refund for one order impossible even if a
-- code path were wrong. customer_id has no foreign key: a charge for an unknown
-- customer is recorded as DECLINED.
CREATE TABLE payments (
    order_id       uuid        PRIMARY KEY,
    customer_id    text        NOT NULL,
    status         text        NOT NULL CHECK (status IN ('CAPTURED', 'DECLINED', 'REFUNDED', 'VOIDED')),
    amount_minor   bigint      NOT NULL CHECK (amount_minor >= 0),
    decline_reason text        CHECK (decline_reason IN ('insufficient_funds', 'unknown_customer', 'payment_declined', 'cancelled')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'DECLINED') = (decline_reason IS NOT NULL))
);

ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check CHECK (kind IN ('deposit', 'charge', 'refund'));
ALTER TABLE ledger_entries ADD COLUMN order_id uuid;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_order_check CHECK ((kind = 'deposit') = (order_id IS NULL));
-- At most one charge and one refund per order, whatever the code does.
CREATE UNIQUE INDEX ledger_entries_once_per_order ON ledger_entries (order_id, kind) WHERE order_id IS NOT NULL;
