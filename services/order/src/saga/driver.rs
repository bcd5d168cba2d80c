//! The saga's driver: the thin layer of I/O around the pure state machine.
//!
//! [`SagaDriver::apply`] locks the saga's row, asks [`transition`] what to do,
//! and writes the answer — new state, deadline, history, commands in the
//! outbox, the order's final status and its domain event — in the caller's
//! transaction. The caller commits that transaction together with its inbox
//! row, so a reply is applied exactly once however often it is delivered, and a
//! crash at any point leaves either all of it or none of it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use microcosm_messaging::envelope::new_envelope;
use microcosm_messaging::outbox::{self, Outgoing};
use microcosm_platform::telemetry::propagation::context_of;
use microcosm_proto::messaging as msg;
use microcosm_proto::messaging::TraceContext;
use microcosm_proto::messaging::envelope::Body;
use opentelemetry::trace::TraceContextExt;
use sqlx::{Postgres, Transaction};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use super::machine::{RetryPolicy, SagaCommand, SagaEvent, SagaState, Transition, transition};
use crate::db::{orders, sagas};
use crate::domain::{NewOrder, OrderId, OrderStatus, PricedLine};

/// What caused a transition, for the history and the messages' causation ids.
#[derive(Debug, Clone, Copy)]
pub struct Cause<'a> {
    /// A short name: the reply type, `cancel_requested`, `deadline_passed`...
    pub name: &'a str,
    /// The message that caused it, if a message did.
    pub message_id: Option<Uuid>,
}

/// What [`SagaDriver::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The saga moved.
    Moved {
        /// From this state.
        from: SagaState,
        /// To this one.
        to: SagaState,
        /// How long the saga had been in `from` (since its last move or re-send).
        step_millis: i64,
    },
    /// The event did not fit; nothing changed.
    Ignored {
        /// The state the saga is in.
        state: SagaState,
        /// Why it was ignored.
        why: &'static str,
    },
    /// There is no saga for this order (a reply for an order this service never placed).
    UnknownSaga,
}

impl Applied {
    /// The saga ended with this move: (`confirmed` or `cancelled`, reason).
    /// A move *within* a terminal state (a late capture refunded after the
    /// order was cancelled) ends nothing: the saga was counted when it ended.
    pub fn completion(&self) -> Option<(&'static str, &'static str)> {
        match self {
            Applied::Moved { from, .. } if from.is_terminal() => None,
            Applied::Moved {
                to: SagaState::Confirmed,
                ..
            } => Some(("confirmed", "")),
            Applied::Moved {
                to: SagaState::Cancelled { reason },
                ..
            } => Some(("cancelled", reason.as_str())),
            _ => None,
        }
    }

    /// Records the step the saga left (`microcosm.saga.step.duration`) and, if
    /// it ended, its outcome (`microcosm.saga.completed`). Call once the
    /// transaction that applied it has committed.
    pub fn record_metrics(&self) {
        if let Applied::Moved {
            from,
            to,
            step_millis,
        } = self
            && from.name() != to.name()
        {
            microcosm_platform::metrics::saga_step_finished(
                from.name(),
                Duration::from_millis(u64::try_from(*step_millis).unwrap_or(0)),
            );
        }
        if let Some((outcome, reason)) = self.completion() {
            microcosm_platform::metrics::saga_completed(outcome, reason);
        }
    }
}

/// One event applied: what it did, the messages it stored (to dispatch once
/// the caller's transaction commits), and the order's lines as they were read.
#[derive(Debug)]
pub struct Step {
    /// What happened to the saga.
    pub applied: Applied,
    /// Commands and events stored in the outbox.
    pub outgoing: Vec<Outgoing>,
    /// The order's lines (empty if there is no saga).
    pub lines: Vec<PricedLine>,
}

/// Drives sagas with the configured deadlines and retry budget.
#[derive(Debug, Clone, Copy)]
pub struct SagaDriver {
    /// How long a step may wait for its reply.
    pub step_timeout: Duration,
    /// Sends of a step before compensating.
    pub retry: RetryPolicy,
}

impl SagaDriver {
    /// Starts the saga of a newly stored order: RESERVING, with ReserveStock and
    /// the `order.evt.placed` event in the outbox, in the order's own
    /// transaction. Returns when the saga started and the messages to dispatch
    /// once that transaction commits.
    ///
    /// # Errors
    /// If the database fails.
    #[tracing::instrument(name = "saga.start", skip_all, fields(order_id = %order.order_id))]
    pub async fn start(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        order: &NewOrder,
    ) -> Result<(DateTime<Utc>, Vec<Outgoing>), sqlx::Error> {
        let order_id = order.order_id;
        let record = sagas::TransitionRecord {
            from: None,
            to: SagaState::START,
            event: "order_placed",
            message_id: None,
        };
        let started = sagas::save_saga(tx, order_id.as_uuid(), record, self.step_timeout).await?;
        let lines: Vec<msg::StockLine> = order
            .lines
            .as_slice()
            .iter()
            .map(|line| msg::StockLine {
                sku: line.sku.to_string(),
                quantity: line.quantity.units(),
            })
            .collect();
        let placed = Body::OrderPlaced(msg::OrderPlaced {
            order_id: order_id.to_string(),
            customer_id: order.customer_id.to_string(),
            lines: lines.clone(),
        });
        let reserve = Body::ReserveStock(msg::ReserveStock {
            order_id: order_id.to_string(),
            lines,
        });
        let envelopes = [placed, reserve]
            .into_iter()
            .map(|body| new_envelope(body, order_id.as_uuid(), None, "order"))
            .collect();
        let outgoing = outbox::enqueue(tx, envelopes).await?;
        Ok((started, outgoing))
    }

    /// Applies `event` to the saga of `order_id`, in `tx`.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn apply(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        order_id: OrderId,
        event: &SagaEvent,
        cause: Cause<'_>,
    ) -> Result<Step, sqlx::Error> {
        let Some(locked) = sagas::lock_saga(tx, order_id.as_uuid()).await? else {
            return Ok(Step {
                applied: Applied::UnknownSaga,
                outgoing: Vec::new(),
                lines: Vec::new(),
            });
        };
        let span = saga_span(order_id, &cause, locked.traceparent.as_deref());
        let (applied, outgoing) = self
            .apply_locked(tx, order_id, &locked, event, cause)
            .instrument(span)
            .await?;
        Ok(Step {
            applied,
            outgoing,
            lines: locked.lines,
        })
    }

    async fn apply_locked(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        order_id: OrderId,
        locked: &sagas::LockedSaga,
        event: &SagaEvent,
        cause: Cause<'_>,
    ) -> Result<(Applied, Vec<Outgoing>), sqlx::Error> {
        let state = locked.state;
        let span = tracing::Span::current();
        span.record("saga.from", state.name());
        let (next, commands) = match transition(state, event, self.retry) {
            Transition::Ignored { why } => {
                return Ok((Applied::Ignored { state, why }, Vec::new()));
            }
            Transition::Moved { state, commands } => (state, commands),
        };
        span.record("saga.to", next.name());
        let record = sagas::TransitionRecord {
            from: Some(state),
            to: next,
            event: cause.name,
            message_id: cause.message_id,
        };
        sagas::save_saga(tx, order_id.as_uuid(), record, self.step_timeout).await?;

        let (customer_id, lines) = (&locked.customer_id, &locked.lines);
        let mut bodies: Vec<Body> = commands
            .iter()
            .map(|command| command_body(*command, order_id, customer_id, lines))
            .collect();
        match next {
            SagaState::Confirmed => {
                orders::finish_order(tx, order_id, OrderStatus::Confirmed, None).await?;
                bodies.push(Body::OrderConfirmed(msg::OrderConfirmed {
                    order_id: order_id.to_string(),
                    total_minor: locked.amount_minor.unwrap_or_else(|| {
                        lines
                            .iter()
                            .map(|line| i64::from(line.quantity) * line.unit_price_minor)
                            .sum()
                    }),
                }));
            }
            SagaState::Cancelled { reason } => {
                orders::finish_order(tx, order_id, OrderStatus::Cancelled, Some(reason.as_str()))
                    .await?;
                bodies.push(Body::OrderCancelled(msg::OrderCancelled {
                    order_id: order_id.to_string(),
                    reason: reason.as_str().to_owned(),
                }));
            }
            _ => {}
        }
        let envelopes = bodies
            .into_iter()
            .map(|body| new_envelope(body, order_id.as_uuid(), cause.message_id, "order"))
            .collect();
        let outgoing = outbox::enqueue(tx, envelopes).await?;
        tracing::debug!(
            event = cause.name,
            from = state.name(),
            to = next.name(),
            commands = commands.len(),
            "saga moved"
        );
        let applied = Applied::Moved {
            from: state,
            to: next,
            step_millis: locked.step_millis,
        };
        Ok((applied, outgoing))
    }
}

/// The span of one saga transition. A transition caused by the saga's own
/// messages is already inside the order's trace and continues it. One that
/// comes from elsewhere (the deadline sweeper, a CancelOrder call with its own
/// trace) is placed in the order's trace too, under the span that started the
/// saga, with a link to the caller's span: one order stays one trace.
fn saga_span(
    order_id: OrderId,
    cause: &Cause<'_>,
    saga_traceparent: Option<&str>,
) -> tracing::Span {
    let span = tracing::info_span!(
        "saga.apply",
        otel.name = %format!("saga {}", cause.name),
        order_id = %order_id,
        saga.event = cause.name,
        saga.from = tracing::field::Empty,
        saga.to = tracing::field::Empty,
    );
    let saga_context = context_of(
        saga_traceparent
            .map(|traceparent| TraceContext {
                traceparent: traceparent.to_owned(),
                tracestate: String::new(),
            })
            .as_ref(),
    );
    let saga_trace = saga_context.span().span_context().trace_id();
    let caller = tracing::Span::current().context();
    let caller_span = caller.span().span_context().clone();
    if saga_context.span().span_context().is_valid() && caller_span.trace_id() != saga_trace {
        let _ = span.set_parent(saga_context);
        if caller_span.is_valid() {
            span.add_link(caller_span);
        }
    }
    span
}

/// The message a saga command becomes.
fn command_body(
    command: SagaCommand,
    order_id: OrderId,
    customer_id: &str,
    lines: &[PricedLine],
) -> Body {
    let order = order_id.to_string();
    match command {
        SagaCommand::ReserveStock => Body::ReserveStock(msg::ReserveStock {
            order_id: order,
            lines: lines
                .iter()
                .map(|line| msg::StockLine {
                    sku: line.sku.clone(),
                    quantity: line.quantity,
                })
                .collect(),
        }),
        SagaCommand::ChargePayment { amount_minor } => Body::ChargePayment(msg::ChargePayment {
            order_id: order,
            customer_id: customer_id.to_owned(),
            amount_minor,
        }),
        SagaCommand::CommitStock => Body::CommitStock(msg::CommitStock { order_id: order }),
        SagaCommand::ReleaseStock => Body::ReleaseStock(msg::ReleaseStock { order_id: order }),
        SagaCommand::RefundPayment => Body::RefundPayment(msg::RefundPayment {
            order_id: order,
            customer_id: customer_id.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saga::machine::CancelReason;

    fn moved(from: SagaState, to: SagaState) -> Applied {
        Applied::Moved {
            from,
            to,
            step_millis: 5,
        }
    }

    #[test]
    fn a_saga_is_counted_once_when_it_ends_and_never_again() {
        let charging = SagaState::Charging {
            amount_minor: 100,
            attempt: 1,
        };
        let committing = SagaState::Committing { attempt: 1 };
        let cancelled = SagaState::Cancelled {
            reason: CancelReason::StepTimeout,
        };
        assert_eq!(moved(charging, committing).completion(), None);
        assert_eq!(
            moved(committing, SagaState::Confirmed).completion(),
            Some(("confirmed", ""))
        );
        assert_eq!(
            moved(charging, cancelled).completion(),
            Some(("cancelled", "step_timeout"))
        );
        // A late PaymentCaptured after the step timed out: the refund it sends
        // is a move within CANCELLED, not a second cancellation.
        assert_eq!(moved(cancelled, cancelled).completion(), None);
        assert_eq!(
            moved(SagaState::Confirmed, SagaState::Confirmed).completion(),
            None
        );
        assert_eq!(Applied::UnknownSaga.completion(), None);
    }
}
