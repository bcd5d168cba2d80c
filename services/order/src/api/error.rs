//! The order API's errors and their one mapping to gRPC statuses.

use microcosm_platform::grpc::database_status;
use microcosm_platform::validation::FieldViolation;
use tonic::Status;

use crate::domain::{IdempotencyKey, OrderId};

/// Why an order call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A request field is invalid; nothing was read or written.
    #[error(transparent)]
    Invalid(#[from] FieldViolation),
    /// No order has this id.
    #[error("no order {0}")]
    UnknownOrder(OrderId),
    /// The idempotency key was used before for a different order.
    #[error("idempotency key {0:?} was already used for a different order")]
    IdempotencyKeyReused(IdempotencyKey),
    /// The order is confirmed: too late to cancel.
    #[error("order {0} is already confirmed")]
    AlreadyConfirmed(OrderId),
    /// An order seen a moment ago could not be read back (it was deleted meanwhile).
    #[error("order with idempotency key {0:?} vanished while being read")]
    Vanished(String),
    /// The database failed; the cause is logged, not sent to the client.
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Invalid(violation) => violation.into(),
            ApiError::UnknownOrder(order_id) => Status::not_found(format!("no order {order_id}")),
            ApiError::IdempotencyKeyReused(key) => Status::already_exists(format!(
                "idempotency_key {:?} was already used for a different order; use a new key for a new order",
                key.as_str()
            )),
            ApiError::AlreadyConfirmed(order_id) => Status::failed_precondition(format!(
                "order {order_id} is already CONFIRMED and can no longer be cancelled"
            )),
            ApiError::Vanished(key) => {
                tracing::error!(idempotency_key = %key, "order vanished while being read");
                Status::aborted("the order changed while being read; retry")
            }
            ApiError::Database(cause) => database_status(&cause),
        }
    }
}
