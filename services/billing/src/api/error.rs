//! The billing API's errors and their one mapping to gRPC statuses.

use microcosm_platform::grpc::database_status;
use microcosm_platform::validation::FieldViolation;
use tonic::Status;

use crate::domain::CustomerId;

/// Why a billing call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A request field is invalid; nothing was read or written.
    #[error(transparent)]
    Invalid(#[from] FieldViolation),
    /// The customer already has an account.
    #[error("customer {0} already has an account")]
    AccountExists(CustomerId),
    /// The customer has no account.
    #[error("customer {0} has no account")]
    UnknownAccount(CustomerId),
    /// The database failed; the cause is logged, not sent to the client.
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Invalid(violation) => violation.into(),
            ApiError::AccountExists(customer) => {
                Status::already_exists(format!("customer {customer} already has an account"))
            }
            ApiError::UnknownAccount(customer) => Status::not_found(format!(
                "customer {customer} has no account; open one with OpenAccount"
            )),
            ApiError::Database(cause) => database_status(&cause),
        }
    }
}
