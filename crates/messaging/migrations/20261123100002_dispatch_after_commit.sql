-- Dispatch after commit (crates/messaging/src/outbox.rs): a message is published
-- right after the transaction that stored it commits, by the code that stored
-- it, so the relay no longer needs waking. It only sweeps up what was not
-- dispatched (a crash between commit and publish), by polling.
DROP TRIGGER outbox_notify ON outbox;
DROP FUNCTION outbox_notify();

-- The message whose handling stored this one. A redelivered message whose
-- effect was already applied publishes these again: its replies may have been
-- lost after JetStream acknowledged them.
ALTER TABLE outbox ADD COLUMN causation_id uuid;
CREATE INDEX outbox_causation_idx ON outbox (causation_id) WHERE causation_id IS NOT NULL;
