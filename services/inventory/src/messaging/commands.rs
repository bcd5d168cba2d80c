//! The handler of `inventory.cmd.*`.

use microcosm_messaging::consumer::{Delivery, Handled, HandlingError, MessageHandler};
use microcosm_messaging::inbox::{Begun, begin_unless_applied, commit_with_reply, not_a_command};
use microcosm_platform::ids::Sku;
use microcosm_proto::messaging as msg;
use microcosm_proto::messaging::envelope::Body;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::db::reservations::{self, StoredReservation};
use crate::domain::{RejectionReason, RequestedLine, ReservationStatus, price_reservation};

/// Applies inventory's saga commands.
#[derive(Debug, Clone)]
pub struct InventoryCommands {
    pool: PgPool,
}

impl InventoryCommands {
    /// A handler over the service's database.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

impl MessageHandler for InventoryCommands {
    #[tracing::instrument(name = "inventory.handle_command", skip_all, fields(
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
            Body::ReserveStock(command) => {
                let lines = parse_lines(&command.lines)?;
                reserve_stock(&mut tx, parse_order_id(&command.order_id)?, &lines).await?
            }
            Body::CommitStock(command) => {
                commit_stock(&mut tx, parse_order_id(&command.order_id)?).await?
            }
            Body::ReleaseStock(command) => {
                release_stock(&mut tx, parse_order_id(&command.order_id)?).await?
            }
            other => return Err(not_a_command("inventory", other)),
        };
        commit_with_reply(tx, delivery, reply, "inventory").await
    }
}

/// Holds every line, or none; a repeat returns the first outcome.
async fn reserve_stock(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
    lines: &[RequestedLine],
) -> Result<Body, sqlx::Error> {
    if let Some(existing) = reservations::lock_reservation(tx, order_id).await? {
        return Ok(match existing.status {
            ReservationStatus::Reserved | ReservationStatus::Committed => {
                stock_reserved(order_id, &existing)
            }
            ReservationStatus::Rejected => {
                let rejection = existing.rejection.unwrap_or(crate::domain::Rejection {
                    reason: RejectionReason::OutOfStock,
                    sku: String::new(),
                });
                stock_rejected(order_id, rejection_reason(rejection.reason), rejection.sku)
            }
            ReservationStatus::Released => stock_rejected(
                order_id,
                msg::StockRejectionReason::Cancelled,
                String::new(),
            ),
        });
    }
    let skus: Vec<&str> = lines.iter().map(|line| line.sku.as_str()).collect();
    let stock = reservations::lock_stock(tx, &skus).await?;
    match price_reservation(lines, &stock) {
        Ok(priced) => {
            reservations::insert_reserved(tx, order_id, &priced).await?;
            Ok(Body::StockReserved(msg::StockReserved {
                order_id: order_id.to_string(),
                lines: priced.into_iter().map(encode_line).collect(),
            }))
        }
        Err(rejection) => {
            reservations::insert_rejected(tx, order_id, &rejection).await?;
            Ok(stock_rejected(
                order_id,
                rejection_reason(rejection.reason),
                rejection.sku,
            ))
        }
    }
}

/// Sells the held units. Anything but a held reservation has nothing to sell:
/// the reply says the stock is not held.
async fn commit_stock(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
) -> Result<Body, sqlx::Error> {
    let existing = reservations::lock_reservation(tx, order_id).await?;
    let order = order_id.to_string();
    Ok(match existing {
        Some(reservation) if reservation.status == ReservationStatus::Reserved => {
            reservations::commit_reserved(tx, order_id, &reservation.lines).await?;
            Body::StockCommitted(msg::StockCommitted { order_id: order })
        }
        Some(reservation) if reservation.status == ReservationStatus::Committed => {
            Body::StockCommitted(msg::StockCommitted { order_id: order })
        }
        _ => {
            tracing::warn!("CommitStock for an order with no held stock");
            Body::StockReleased(msg::StockReleased { order_id: order })
        }
    })
}

/// Gives held or sold units back; for an order with no reservation yet, leaves
/// a tombstone so a late ReserveStock is refused.
async fn release_stock(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
) -> Result<Body, sqlx::Error> {
    match reservations::lock_reservation(tx, order_id).await? {
        Some(reservation)
            if matches!(
                reservation.status,
                ReservationStatus::Reserved | ReservationStatus::Committed
            ) =>
        {
            reservations::release_held(tx, order_id, &reservation).await?;
        }
        Some(_) => {}
        None => reservations::insert_release_tombstone(tx, order_id).await?,
    }
    Ok(Body::StockReleased(msg::StockReleased {
        order_id: order_id.to_string(),
    }))
}

fn stock_reserved(order_id: Uuid, reservation: &StoredReservation) -> Body {
    Body::StockReserved(msg::StockReserved {
        order_id: order_id.to_string(),
        lines: reservation.lines.iter().cloned().map(encode_line).collect(),
    })
}

fn stock_rejected(order_id: Uuid, reason: msg::StockRejectionReason, sku: String) -> Body {
    Body::StockRejected(msg::StockRejected {
        order_id: order_id.to_string(),
        reason: reason.into(),
        sku,
    })
}

fn rejection_reason(reason: RejectionReason) -> msg::StockRejectionReason {
    match reason {
        RejectionReason::OutOfStock => msg::StockRejectionReason::OutOfStock,
        RejectionReason::UnknownSku => msg::StockRejectionReason::UnknownSku,
    }
}

fn encode_line(line: crate::domain::PricedLine) -> msg::PricedLine {
    msg::PricedLine {
        sku: line.sku,
        quantity: line.quantity,
        unit_price_minor: line.unit_price_minor,
    }
}

fn parse_order_id(raw: &str) -> Result<Uuid, HandlingError> {
    Uuid::parse_str(raw)
        .map_err(|_| HandlingError::Permanent(format!("order_id {raw:?} is not a UUID")))
}

fn parse_lines(lines: &[msg::StockLine]) -> Result<Vec<RequestedLine>, HandlingError> {
    if lines.is_empty() {
        return Err(HandlingError::Permanent("ReserveStock has no lines".into()));
    }
    lines
        .iter()
        .enumerate()
        .map(|(index, line)| {
            let sku = Sku::parse(&format!("lines[{index}].sku"), &line.sku)
                .map_err(|violation| HandlingError::Permanent(violation.to_string()))?;
            if line.quantity < 1 {
                return Err(HandlingError::Permanent(format!(
                    "lines[{index}].quantity is {}",
                    line.quantity
                )));
            }
            Ok(RequestedLine {
                sku,
                quantity: line.quantity,
            })
        })
        .collect()
}
