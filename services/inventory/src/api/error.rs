//! The inventory API's errors and their one mapping to gRPC statuses.

use microcosm_platform::grpc::database_status;
use microcosm_platform::validation::FieldViolation;
use tonic::Status;

use crate::domain::Sku;

/// Why an inventory call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A request field is invalid; nothing was read or written.
    #[error(transparent)]
    Invalid(#[from] FieldViolation),
    /// No product has this sku.
    #[error("no product with sku {0}")]
    UnknownSku(Sku),
    /// The database failed; the cause is logged, not sent to the client.
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Invalid(violation) => violation.into(),
            ApiError::UnknownSku(sku) => Status::not_found(format!("no product with sku {sku}")),
            ApiError::Database(cause) => database_status(&cause),
        }
    }
}
