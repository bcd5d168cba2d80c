-- Platform migrations use versions 2026112310NNNN so they never collide with a
-- service's own (2026112300NNNN); both sets are applied as one ordered list.
-- The messaging tables every service has: outbox, inbox and dead letters.
-- Applied together with the service's own migrations (see db::migrate).
--
-- outbox: messages written in the same transaction as the state change that
-- caused them, published later by the relay (platform::messaging::outbox). A row
-- is marked published only after JetStream acknowledged it; published rows are
-- deleted after a retention period.
CREATE TABLE outbox (
    id           bigserial   PRIMARY KEY,
    message_id   uuid        NOT NULL UNIQUE,
    subject      text        NOT NULL,
    payload      bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;

-- Wake the relay as soon as a transaction that wrote to the outbox commits
-- (NOTIFY is delivered at commit); the relay also polls, in case a wake-up is lost.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- inbox: the id of every message whose effect was committed, written in the
-- same transaction as the effect, so a redelivered message is recognised.
CREATE TABLE inbox (
    message_id  uuid        PRIMARY KEY,
    subject     text        NOT NULL,
    consumer    text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- dead_letters: messages that can never be handled (undecodable, unknown type,
-- or failing past the redelivery budget), parked for a human, never retried.
CREATE TABLE dead_letters (
    id              bigserial   PRIMARY KEY,
    consumer        text        NOT NULL,
    subject         text        NOT NULL,
    stream_sequence bigint,
    delivered       bigint      NOT NULL,
    reason          text        NOT NULL,
    message_id      text,
    payload         bytea       NOT NULL,
    parked_at       timestamptz NOT NULL DEFAULT now()
);
