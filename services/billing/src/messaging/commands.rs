//! The handler of `billing.cmd.*`.

use microcosm_messaging::consumer::{Delivery, Handled, HandlingError, MessageHandler};
use microcosm_messaging::inbox::{Begun, begin_unless_applied, commit_with_reply, not_a_command};
use microcosm_platform::faults::Faults;
use microcosm_proto::messaging as msg;
use microcosm_proto::messaging::envelope::Body;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::db::payments::{self, StoredPayment};
use crate::domain::{CustomerId, DeclineReason, PaymentStatus, decide_charge};

/// Applies billing's saga commands.
#[derive(Debug, Clone)]
pub struct BillingCommands {
    pool: PgPool,
    faults: Faults,
}

impl BillingCommands {
    /// A handler over the service's database, declining on purpose as the
    /// `decline_rate_percent` fault flag says.
    pub fn new(pool: PgPool, faults: Faults) -> Self {
        Self { pool, faults }
    }
}

impl MessageHandler for BillingCommands {
    #[tracing::instrument(name = "billing.handle_command", skip_all, fields(
        subject = %delivery.subject,
        message_id = %delivery.message.message_id,
        order_id = %delivery.message.correlation_id,
        attempt = delivery.attempt,
    ))]
    async fn handle(&self, delivery: &Delivery) -> Result<Handled, HandlingError> {
        let message = &delivery.message;
        let mut tx = match begin_unless_applied(&self.pool, delivery).await? {
            Begun::New(tx) => tx,
            // Applied before: its reply may have been lost, so it goes out again.
            Begun::Applied(reply) => return Ok(Handled::dispatch(reply)),
        };
        let reply = match &message.body {
            Body::ChargePayment(command) => {
                let order_id = parse_order_id(&command.order_id)?;
                let customer = parse_customer(&command.customer_id)?;
                if command.amount_minor <= 0 {
                    return Err(HandlingError::Permanent(format!(
                        "amount_minor is {}",
                        command.amount_minor
                    )));
                }
                charge_payment(
                    &mut tx,
                    order_id,
                    &customer,
                    command.amount_minor,
                    self.faults.should_decline(order_id),
                )
                .await?
            }
            Body::RefundPayment(command) => {
                let order_id = parse_order_id(&command.order_id)?;
                refund_payment(&mut tx, order_id, &parse_customer(&command.customer_id)?).await?
            }
            other => return Err(not_a_command("billing", other)),
        };
        commit_with_reply(tx, delivery, reply, "billing").await
    }
}

/// Takes the money once; a repeat returns the first outcome.
async fn charge_payment(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
    customer: &CustomerId,
    amount_minor: i64,
    inject_decline: bool,
) -> Result<Body, sqlx::Error> {
    if let Some(existing) = payments::lock_payment(tx, order_id).await? {
        return Ok(match existing.status {
            // A refunded payment was captured once; the orchestrator has moved on
            // and ignores this late reply.
            PaymentStatus::Captured | PaymentStatus::Refunded => {
                payment_captured(order_id, &existing)
            }
            PaymentStatus::Declined => payment_declined(
                order_id,
                existing
                    .decline_reason
                    .unwrap_or(DeclineReason::PaymentDeclined),
            ),
            PaymentStatus::Voided => payment_declined(order_id, DeclineReason::Cancelled),
        });
    }
    let balance = payments::lock_balance(tx, customer.as_str()).await?;
    let decision = if inject_decline {
        Err(DeclineReason::PaymentDeclined)
    } else {
        decide_charge(balance, amount_minor)
    };
    match decision {
        Ok(()) => {
            payments::capture_payment(tx, order_id, customer.as_str(), amount_minor).await?;
            Ok(Body::PaymentCaptured(msg::PaymentCaptured {
                order_id: order_id.to_string(),
                payment_id: order_id.to_string(),
                amount_minor,
            }))
        }
        Err(reason) => {
            payments::insert_unpaid(
                tx,
                order_id,
                customer.as_str(),
                PaymentStatus::Declined,
                amount_minor,
                Some(reason),
            )
            .await?;
            Ok(payment_declined(order_id, reason))
        }
    }
}

/// Gives a captured payment back once; with nothing captured yet, leaves a
/// VOIDED tombstone so a late charge is declined.
async fn refund_payment(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
    customer: &CustomerId,
) -> Result<Body, sqlx::Error> {
    let refunded_minor = match payments::lock_payment(tx, order_id).await? {
        Some(payment) if payment.status == PaymentStatus::Captured => {
            payments::refund_captured(tx, order_id, &payment).await?;
            payment.amount_minor
        }
        Some(payment) if payment.status == PaymentStatus::Refunded => payment.amount_minor,
        Some(_) => 0,
        None => {
            payments::insert_unpaid(
                tx,
                order_id,
                customer.as_str(),
                PaymentStatus::Voided,
                0,
                None,
            )
            .await?;
            0
        }
    };
    Ok(Body::PaymentRefunded(msg::PaymentRefunded {
        order_id: order_id.to_string(),
        amount_minor: refunded_minor,
    }))
}

fn payment_captured(order_id: Uuid, payment: &StoredPayment) -> Body {
    Body::PaymentCaptured(msg::PaymentCaptured {
        order_id: order_id.to_string(),
        payment_id: order_id.to_string(),
        amount_minor: payment.amount_minor,
    })
}

fn payment_declined(order_id: Uuid, reason: DeclineReason) -> Body {
    let reason = match reason {
        DeclineReason::InsufficientFunds => msg::PaymentDeclineReason::InsufficientFunds,
        DeclineReason::UnknownCustomer => msg::PaymentDeclineReason::UnknownCustomer,
        DeclineReason::PaymentDeclined => msg::PaymentDeclineReason::Injected,
        DeclineReason::Cancelled => msg::PaymentDeclineReason::Cancelled,
    };
    Body::PaymentDeclined(msg::PaymentDeclined {
        order_id: order_id.to_string(),
        reason: reason.into(),
    })
}

fn parse_order_id(raw: &str) -> Result<Uuid, HandlingError> {
    Uuid::parse_str(raw)
        .map_err(|_| HandlingError::Permanent(format!("order_id {raw:?} is not a UUID")))
}

fn parse_customer(raw: &str) -> Result<CustomerId, HandlingError> {
    CustomerId::parse("customer_id", raw)
        .map_err(|violation| HandlingError::Permanent(violation.to_string()))
}
