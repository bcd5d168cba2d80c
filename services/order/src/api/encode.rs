//! Domain types into responses.

use microcosm_platform::grpc::timestamp;
use microcosm_proto::order as pb;

use crate::db::sagas::HistoryEntry;
use crate::domain::{Order, OrderStatus};

/// The order as the API shows it, with its saga history (empty where not read).
pub(super) fn encode_order(order: Order, history: Vec<HistoryEntry>) -> pb::Order {
    let status = match order.status {
        OrderStatus::Pending => pb::OrderStatus::Pending,
        OrderStatus::Confirmed => pb::OrderStatus::Confirmed,
        OrderStatus::Cancelled => pb::OrderStatus::Cancelled,
    };
    pb::Order {
        order_id: order.order_id.to_string(),
        customer_id: order.customer_id,
        status: status.into(),
        reason: order.reason.unwrap_or_default(),
        lines: order
            .lines
            .into_iter()
            .map(|line| pb::OrderLine {
                sku: line.sku,
                quantity: line.quantity,
                unit_price_minor: line.unit_price_minor,
            })
            .collect(),
        total_minor: order.total_minor,
        idempotency_key: order.idempotency_key,
        created_at: Some(timestamp(order.created_at)),
        updated_at: Some(timestamp(order.updated_at)),
        saga_state: order.saga_state.unwrap_or_default(),
        trace_id: order.trace_id.unwrap_or_default(),
        history: history
            .into_iter()
            .map(|entry| pb::SagaTransition {
                from_state: entry.from_state.unwrap_or_default(),
                to_state: entry.to_state,
                event: entry.event,
                message_id: entry
                    .message_id
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
                at: Some(timestamp(entry.at)),
            })
            .collect(),
    }
}
