//! The gRPC API: decode the request into domain types, run the queries, encode
//! the answer. Validation happens in the parsing calls at the top of each
//! handler and nowhere else.

mod error;

use microcosm_messaging::envelope::new_envelope;
use microcosm_messaging::outbox::{self, Dispatcher, Outgoing};
use microcosm_platform::grpc::timestamp;
use microcosm_proto::billing as pb;
use microcosm_proto::billing::billing_service_server::BillingService;
use microcosm_proto::messaging as msg;
use microcosm_proto::messaging::envelope::Body;
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::db::ledger::EntryKind;
use crate::db::{accounts, ledger};
use crate::domain::{Account, CustomerId, DepositAmount};

pub use error::ApiError;

/// The `shop.billing.v1.BillingService` implementation.
#[derive(Debug, Clone)]
pub struct BillingApi {
    pool: PgPool,
    dispatcher: Dispatcher,
}

impl BillingApi {
    /// An API over the service's database, publishing its events with `dispatcher`.
    pub fn new(pool: PgPool, dispatcher: Dispatcher) -> Self {
        Self { pool, dispatcher }
    }
}

#[tonic::async_trait]
impl BillingService for BillingApi {
    #[tracing::instrument(name = "OpenAccount", skip_all)]
    async fn open_account(
        &self,
        request: Request<pb::OpenAccountRequest>,
    ) -> Result<Response<pb::OpenAccountResponse>, Status> {
        let customer_id = CustomerId::parse("customer_id", &request.into_inner().customer_id)
            .map_err(ApiError::from)?;
        let account = accounts::open_account(&self.pool, &customer_id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::AccountExists(customer_id))?;
        tracing::info!(customer_id = %account.customer_id, "account opened");
        Ok(Response::new(pb::OpenAccountResponse {
            account: Some(encode_account(account)),
        }))
    }

    #[tracing::instrument(name = "Deposit", skip_all)]
    async fn deposit(
        &self,
        request: Request<pb::DepositRequest>,
    ) -> Result<Response<pb::DepositResponse>, Status> {
        let request = request.into_inner();
        let customer_id =
            CustomerId::parse("customer_id", &request.customer_id).map_err(ApiError::from)?;
        let amount =
            DepositAmount::parse("amount_minor", request.amount_minor).map_err(ApiError::from)?;
        let (account, announced) = deposit(&self.pool, &customer_id, amount).await?;
        self.dispatcher.dispatch_in_background(announced);
        tracing::info!(customer_id = %account.customer_id, amount = amount.minor_units(), balance = account.balance_minor, "deposited");
        Ok(Response::new(pb::DepositResponse {
            account: Some(encode_account(account)),
        }))
    }

    #[tracing::instrument(name = "GetAccount", skip_all)]
    async fn get_account(
        &self,
        request: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::GetAccountResponse>, Status> {
        let customer_id = CustomerId::parse("customer_id", &request.into_inner().customer_id)
            .map_err(ApiError::from)?;
        let account = accounts::get_account(&self.pool, &customer_id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::UnknownAccount(customer_id))?;
        Ok(Response::new(pb::GetAccountResponse {
            account: Some(encode_account(account)),
        }))
    }
}

/// Credits the account, records the ledger entry and announces the deposit
/// (`billing.evt.funds_deposited`) through the outbox, in one transaction;
/// returns the event for dispatch.
async fn deposit(
    pool: &PgPool,
    customer_id: &CustomerId,
    amount: DepositAmount,
) -> Result<(Account, Vec<Outgoing>), ApiError> {
    let mut tx = pool.begin().await?;
    let account = accounts::credit_account(&mut tx, customer_id, amount)
        .await?
        .ok_or_else(|| ApiError::UnknownAccount(customer_id.clone()))?;
    ledger::record_entry(
        &mut tx,
        customer_id.as_str(),
        EntryKind::Deposit,
        amount.minor_units(),
        None,
    )
    .await?;
    let event = Body::FundsDeposited(msg::FundsDeposited {
        customer_id: customer_id.to_string(),
        amount_minor: amount.minor_units(),
        balance_minor: account.balance_minor,
    });
    let announced = outbox::enqueue(
        &mut tx,
        vec![new_envelope(event, Uuid::now_v7(), None, "billing")],
    )
    .await?;
    tx.commit().await?;
    Ok((account, announced))
}

fn encode_account(account: Account) -> pb::Account {
    pb::Account {
        customer_id: account.customer_id,
        balance_minor: account.balance_minor,
        opened_at: Some(timestamp(account.opened_at)),
    }
}
