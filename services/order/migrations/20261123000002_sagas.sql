-- The order saga's durable state, one row per order, and its history.
--
-- The state machine (src/saga/machine.rs) decides; these rows remember, so an
-- orchestrator that crashes resumes every saga from its last committed state.
-- deadline_at is when the current step is overdue (NULL once finished): the
-- deadline sweeper re-sends or compensates what passed it.
CREATE TABLE sagas (
    order_id        uuid        PRIMARY KEY REFERENCES orders (order_id),
    state           text        NOT NULL CHECK (state IN ('RESERVING', 'CHARGING', 'COMMITTING', 'COMPENSATING', 'CONFIRMED', 'CANCELLED')),
    attempt         integer     NOT NULL CHECK (attempt >= 1),
    amount_minor    bigint      CHECK (amount_minor >= 0),
    reason          text,
    release_pending boolean     NOT NULL DEFAULT false,
    refund_pending  boolean     NOT NULL DEFAULT false,
    deadline_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((state IN ('CONFIRMED', 'CANCELLED')) = (deadline_at IS NULL))
);
CREATE INDEX sagas_deadline_idx ON sagas (deadline_at) WHERE deadline_at IS NOT NULL;

-- Every transition with its time, for GetOrder's saga history.
CREATE TABLE saga_history (
    id         bigserial   PRIMARY KEY,
    order_id   uuid        NOT NULL REFERENCES orders (order_id),
    from_state text,
    to_state   text        NOT NULL,
    event      text        NOT NULL,
    message_id uuid,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX saga_history_order_idx ON saga_history (order_id, id);
