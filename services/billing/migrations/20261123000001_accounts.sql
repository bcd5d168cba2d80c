-- Customer accounts and the ledger of every movement of money.
--
-- `balance_minor` is kept on the account for a cheap, lockable read; the ledger
-- is the history that explains it (the audit re-adds it). The CHECK makes an
-- overdraft impossible even if a code path is wrong.
CREATE TABLE accounts (
    customer_id   text        PRIMARY KEY CHECK (customer_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    balance_minor bigint      NOT NULL DEFAULT 0 CHECK (balance_minor >= 0),
    opened_at     timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per movement. Deposits only for now; the saga adds charges and refunds.
CREATE TABLE ledger_entries (
    entry_id     uuid        PRIMARY KEY,
    customer_id  text        NOT NULL REFERENCES accounts (customer_id),
    kind         text        NOT NULL CHECK (kind IN ('deposit')),
    amount_minor bigint      NOT NULL CHECK (amount_minor > 0),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_entries_customer_idx ON ledger_entries (customer_id, created_at);
