//! The handler of the participants' replies.
//!
//! A reply becomes a [`SagaEvent`] and is applied by the driver in one
//! transaction with its inbox row. Replies that do not fit the saga's state
//! (duplicates, late or out-of-order) are recorded in the inbox and change
//! nothing. Events that are not replies (`product_restocked`,
//! `funds_deposited`) are acknowledged and skipped.

use std::collections::BTreeMap;

use microcosm_messaging::consumer::{Delivery, Handled, HandlingError, MessageHandler};
use microcosm_messaging::envelope::type_name;
use microcosm_messaging::inbox::{Begun, begin_unless_applied};
use microcosm_proto::messaging as msg;
use microcosm_proto::messaging::envelope::Body;
use sqlx::{PgPool, Postgres, Transaction};

use crate::db::orders;
use crate::domain::{OrderId, PricedLine};
use crate::saga::driver::{Applied, Cause, SagaDriver};
use crate::saga::machine::{CancelReason, SagaEvent, SagaState};
use crate::saga::updates::OrderUpdates;

/// Applies participants' replies to sagas.
#[derive(Debug, Clone)]
pub struct SagaReplies {
    pool: PgPool,
    driver: SagaDriver,
    updates: OrderUpdates,
}

impl SagaReplies {
    /// A handler over the service's database, announcing each move on `updates`.
    pub fn new(pool: PgPool, driver: SagaDriver, updates: OrderUpdates) -> Self {
        Self {
            pool,
            driver,
            updates,
        }
    }
}

impl MessageHandler for SagaReplies {
    #[tracing::instrument(name = "order.handle_reply", skip_all, fields(
        subject = %delivery.subject,
        message_id = %delivery.message.message_id,
        order_id = %delivery.message.correlation_id,
        attempt = delivery.attempt,
    ))]
    async fn handle(&self, delivery: &Delivery) -> Result<Handled, HandlingError> {
        let message = &delivery.message;
        let Some(event) = saga_event(&message.body)? else {
            return Ok(Handled::nothing()); // an event for other watchers, not a reply
        };
        let order_id = OrderId::from(message.correlation_id);
        let mut tx = match begin_unless_applied(&self.pool, delivery).await? {
            Begun::New(tx) => tx,
            // Applied before: the commands it caused go out again.
            Begun::Applied(caused) => return Ok(Handled::dispatch(caused)),
        };
        let cause = Cause {
            name: type_name(&message.body),
            message_id: Some(message.message_id),
        };
        let step = self.driver.apply(&mut tx, order_id, &event, cause).await?;
        match step.applied {
            Applied::Moved {
                from: SagaState::Reserving { .. },
                to: SagaState::Charging { .. },
                ..
            } => {
                if let Body::StockReserved(reserved) = &message.body {
                    record_prices(&mut tx, order_id, &step.lines, reserved).await?;
                }
            }
            Applied::Moved { .. } => {}
            Applied::Ignored { state, why } => {
                tracing::debug!(state = state.name(), why, "reply changes nothing")
            }
            Applied::UnknownSaga => tracing::warn!("reply for an order with no saga; ignored"),
        }
        tx.commit().await?;
        step.applied.record_metrics();
        if matches!(step.applied, Applied::Moved { .. }) {
            self.updates.moved(order_id.as_uuid());
        }
        Ok(Handled::dispatch(step.outgoing))
    }
}

/// The saga event a reply stands for; `None` for events that are not replies.
fn saga_event(body: &Body) -> Result<Option<SagaEvent>, HandlingError> {
    Ok(Some(match body {
        Body::StockReserved(reserved) => SagaEvent::StockReserved {
            total_minor: total_of(reserved)?,
        },
        Body::StockRejected(rejected) => SagaEvent::StockRejected {
            reason: match rejected.reason() {
                msg::StockRejectionReason::UnknownSku => CancelReason::UnknownSku,
                msg::StockRejectionReason::Cancelled => CancelReason::CancelledByCustomer,
                msg::StockRejectionReason::OutOfStock | msg::StockRejectionReason::Unspecified => {
                    CancelReason::OutOfStock
                }
            },
        },
        Body::StockCommitted(_) => SagaEvent::StockCommitted,
        Body::StockReleased(_) => SagaEvent::StockReleased,
        Body::PaymentCaptured(_) => SagaEvent::PaymentCaptured,
        Body::PaymentDeclined(declined) => SagaEvent::PaymentDeclined {
            reason: match declined.reason() {
                msg::PaymentDeclineReason::InsufficientFunds => CancelReason::InsufficientFunds,
                msg::PaymentDeclineReason::UnknownCustomer => CancelReason::UnknownCustomer,
                msg::PaymentDeclineReason::Cancelled => CancelReason::CancelledByCustomer,
                msg::PaymentDeclineReason::Injected | msg::PaymentDeclineReason::Unspecified => {
                    CancelReason::PaymentDeclined
                }
            },
        },
        Body::PaymentRefunded(_) => SagaEvent::PaymentRefunded,
        Body::ProductRestocked(_) | Body::FundsDeposited(_) => return Ok(None),
        other => {
            return Err(HandlingError::Permanent(format!(
                "{:?} is not a reply the order saga understands",
                type_name(other)
            )));
        }
    }))
}

fn total_of(reserved: &msg::StockReserved) -> Result<i64, HandlingError> {
    reserved.lines.iter().try_fold(0_i64, |total, line| {
        if line.quantity < 1 || line.unit_price_minor < 1 {
            return Err(HandlingError::Permanent(format!(
                "StockReserved has an invalid line {line:?}"
            )));
        }
        total
            .checked_add(i64::from(line.quantity) * line.unit_price_minor)
            .ok_or_else(|| HandlingError::Permanent("StockReserved total overflows".into()))
    })
}

/// Stores inventory's prices on the order, after checking that inventory
/// reserved exactly what was ordered.
async fn record_prices(
    tx: &mut Transaction<'_, Postgres>,
    order_id: OrderId,
    ordered: &[PricedLine],
    reserved: &msg::StockReserved,
) -> Result<(), HandlingError> {
    let ordered: BTreeMap<&str, i32> = ordered
        .iter()
        .map(|line| (line.sku.as_str(), line.quantity))
        .collect();
    let got: BTreeMap<&str, i32> = reserved
        .lines
        .iter()
        .map(|line| (line.sku.as_str(), line.quantity))
        .collect();
    if ordered != got {
        return Err(HandlingError::Permanent(format!(
            "StockReserved lines {got:?} do not match the order's {ordered:?}"
        )));
    }
    let prices: Vec<(String, i64)> = reserved
        .lines
        .iter()
        .map(|line| (line.sku.clone(), line.unit_price_minor))
        .collect();
    orders::set_order_prices(tx, order_id, &prices, total_of(reserved)?).await?;
    Ok(())
}
