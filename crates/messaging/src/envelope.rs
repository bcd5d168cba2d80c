//! The envelope around every message, and the subject each body travels on.
//!
//! Subjects are owned: commands *to* a participant go to `<participant>.cmd.*`,
//! and everything a service announces (replies and domain events) goes to
//! `<service>.evt.*`. The subject follows from the body, so no caller can send a
//! message to the wrong place.

use chrono::Utc;
use microcosm_proto::messaging::Envelope;
use microcosm_proto::messaging::envelope::Body;
use uuid::Uuid;

use crate::trace::current_trace_context;

/// The subject a body is published on.
pub fn subject_of(body: &Body) -> &'static str {
    match body {
        Body::ReserveStock(_) => "inventory.cmd.reserve_stock",
        Body::CommitStock(_) => "inventory.cmd.commit_stock",
        Body::ReleaseStock(_) => "inventory.cmd.release_stock",
        Body::ChargePayment(_) => "billing.cmd.charge_payment",
        Body::RefundPayment(_) => "billing.cmd.refund_payment",
        Body::StockReserved(_) => "inventory.evt.stock_reserved",
        Body::StockRejected(_) => "inventory.evt.stock_rejected",
        Body::StockCommitted(_) => "inventory.evt.stock_committed",
        Body::StockReleased(_) => "inventory.evt.stock_released",
        Body::ProductRestocked(_) => "inventory.evt.product_restocked",
        Body::PaymentCaptured(_) => "billing.evt.payment_captured",
        Body::PaymentDeclined(_) => "billing.evt.payment_declined",
        Body::PaymentRefunded(_) => "billing.evt.payment_refunded",
        Body::FundsDeposited(_) => "billing.evt.funds_deposited",
        Body::OrderPlaced(_) => "order.evt.placed",
        Body::OrderConfirmed(_) => "order.evt.confirmed",
        Body::OrderCancelled(_) => "order.evt.cancelled",
    }
}

/// A short name of the body's type, for logs and the saga history.
pub fn type_name(body: &Body) -> &'static str {
    subject_of(body).rsplit('.').next().unwrap_or("unknown")
}

/// A new envelope around `body`, with a fresh message id.
///
/// `correlation_id` is the order (saga) the message belongs to; `causation_id`
/// the message whose handling produced this one, if any.
pub fn new_envelope(
    body: Body,
    correlation_id: Uuid,
    causation_id: Option<Uuid>,
    producer: &str,
) -> Envelope {
    let now = Utc::now();
    Envelope {
        message_id: Uuid::now_v7().to_string(),
        correlation_id: correlation_id.to_string(),
        causation_id: causation_id.map(|id| id.to_string()).unwrap_or_default(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: now.timestamp(),
            nanos: i32::try_from(now.timestamp_subsec_nanos()).unwrap_or(0),
        }),
        // The trace of the transaction writing this message: a message published
        // later by the relay still continues it.
        trace_context: Some(current_trace_context()),
        producer: producer.to_owned(),
        body: Some(body),
    }
}

/// Why an envelope cannot be handled, ever: it goes to the dead letters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The bytes are not an Envelope.
    #[error("payload is not a shop.messaging.v1.Envelope: {0}")]
    Undecodable(String),
    /// The envelope's body is missing or of a type this build does not know.
    #[error(
        "envelope {message_id} has no body this service knows (unknown or missing message type)"
    )]
    UnknownBody {
        /// The envelope's message id.
        message_id: String,
    },
    /// The message id is not a UUID.
    #[error("message_id {0:?} is not a UUID")]
    BadMessageId(String),
    /// The correlation id is not a UUID.
    #[error("correlation_id {0:?} is not a UUID")]
    BadCorrelationId(String),
}

/// A decoded envelope whose ids parsed and whose body is known.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedEnvelope {
    /// The message id (the inbox key).
    pub message_id: Uuid,
    /// The order (saga) the message belongs to.
    pub correlation_id: Uuid,
    /// The body.
    pub body: Body,
    /// The rest of the envelope (its body moved to `body`), for its trace
    /// context and producer.
    pub envelope: Envelope,
}

/// Decodes and checks a payload received from NATS.
///
/// # Errors
/// An [`EnvelopeError`] if the message can never be handled.
pub fn decode(payload: &[u8]) -> Result<ReceivedEnvelope, EnvelopeError> {
    use prost::Message;
    let envelope =
        Envelope::decode(payload).map_err(|error| EnvelopeError::Undecodable(error.to_string()))?;
    let message_id = Uuid::parse_str(&envelope.message_id)
        .map_err(|_| EnvelopeError::BadMessageId(envelope.message_id.clone()))?;
    let correlation_id = Uuid::parse_str(&envelope.correlation_id)
        .map_err(|_| EnvelopeError::BadCorrelationId(envelope.correlation_id.clone()))?;
    let mut envelope = envelope;
    let body = envelope
        .body
        .take()
        .ok_or_else(|| EnvelopeError::UnknownBody {
            message_id: envelope.message_id.clone(),
        })?;
    Ok(ReceivedEnvelope {
        message_id,
        correlation_id,
        body,
        envelope,
    })
}

#[cfg(test)]
mod tests {
    use microcosm_proto::messaging::{CommitStock, StockReleased};
    use prost::Message;

    use super::*;

    #[test]
    fn an_envelope_round_trips_and_travels_on_its_owners_subject() {
        let order = Uuid::now_v7();
        let body = Body::CommitStock(CommitStock {
            order_id: order.to_string(),
        });
        let envelope = new_envelope(body.clone(), order, None, "order");
        assert_eq!(subject_of(&body), "inventory.cmd.commit_stock");
        let received = decode(&envelope.encode_to_vec()).expect("decodes");
        assert_eq!(received.correlation_id, order);
        assert_eq!(received.body, body);
        assert_eq!(
            type_name(&Body::StockReleased(StockReleased::default())),
            "stock_released"
        );
    }

    #[test]
    fn garbage_missing_bodies_and_bad_ids_can_never_be_handled() {
        assert!(matches!(
            decode(b"\xff\xff\xff garbage"),
            Err(EnvelopeError::Undecodable(_))
        ));
        let mut envelope = new_envelope(
            Body::CommitStock(CommitStock::default()),
            Uuid::now_v7(),
            None,
            "order",
        );
        envelope.body = None;
        assert!(matches!(
            decode(&envelope.encode_to_vec()),
            Err(EnvelopeError::UnknownBody { .. })
        ));
        envelope.message_id = "42".into();
        assert!(matches!(
            decode(&envelope.encode_to_vec()),
            Err(EnvelopeError::BadMessageId(_))
        ));
    }
}
