-- The OpenTelemetry trace id of the order's saga (32 hex digits), so an order
-- leads to its trace: `microcosm trace ORDER_ID`, or search it in Jaeger.
ALTER TABLE orders ADD COLUMN trace_id text CHECK (trace_id ~ '^[0-9a-f]{32}$');

-- The W3C traceparent of the span that started the saga. Transitions that do
-- not come from the saga's own messages (a deadline, a cancel request arriving
-- with its own trace) continue the order's trace from here, linking the cause.
ALTER TABLE sagas ADD COLUMN traceparent text;
