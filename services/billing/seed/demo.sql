-- Demo customers for the local stack, docker compose and tests (SEED_DEMO_DATA=true).
-- Amounts are in cents. Idempotent: an existing account is left as it is, and its
-- opening deposit is recorded once (fixed entry ids), so restarts change nothing.
--   alice: well funded          bob: enough for a few orders
--   carol: almost broke, so her orders are declined for insufficient funds
--   (any other customer id has no account: orders are declined as unknown_customer)
WITH opening (entry_id, customer_id, amount_minor) AS (
    VALUES ('00000000-0000-4000-8000-00000000a11c'::uuid, 'alice', 500000::bigint),
           ('00000000-0000-4000-8000-000000000b0b'::uuid, 'bob',    50000::bigint),
           ('00000000-0000-4000-8000-00000000ca01'::uuid, 'carol',    500::bigint)
), opened AS (
    INSERT INTO accounts (customer_id, balance_minor)
    SELECT customer_id, amount_minor FROM opening
    ON CONFLICT (customer_id) DO NOTHING
    RETURNING customer_id
)
INSERT INTO ledger_entries (entry_id, customer_id, kind, amount_minor)
SELECT o.entry_id, o.customer_id, 'deposit', o.amount_minor
  FROM opening o JOIN opened USING (customer_id)
ON CONFLICT (entry_id) DO NOTHING;
