//! An order as text and as JSON, shared by every `order` subcommand so that
//! `place`, `get` and `cancel` show an order the same way.

use microcosm_proto::order::{Order, OrderDetails, OrderStatus, SagaTransition};
use serde_json::{Value, json};

use crate::output::{self, Align, NOT_SET, Table};

/// The order's status without its enum prefix: `CONFIRMED`, not `ORDER_STATUS_CONFIRMED`.
pub(super) fn status_name(status: OrderStatus) -> &'static str {
    status.as_str_name().trim_start_matches("ORDER_STATUS_")
}

/// The status with the reason of a cancelled order: `CANCELLED (insufficient_funds)`.
pub(super) fn status_with_reason(status: OrderStatus, reason: &str) -> String {
    match reason {
        "" => status_name(status).to_owned(),
        reason => format!("{} ({reason})", status_name(status)),
    }
}

/// The public status an order has once its saga reaches `saga_state`, as
/// docs/saga.md defines it: PENDING until the saga is CONFIRMED or CANCELLED.
/// `order watch` needs it for transitions that happened before the latest one.
pub(super) fn status_after(saga_state: &str) -> OrderStatus {
    match saga_state {
        "CONFIRMED" => OrderStatus::Confirmed,
        "CANCELLED" => OrderStatus::Cancelled,
        _ => OrderStatus::Pending,
    }
}

/// The whole order for people: its fields, its lines with prices, and the
/// saga's history (when the server sent it).
pub(super) fn order_text(order: &Order) -> String {
    let status = status_with_reason(order.status(), &order.reason);
    let mut text = output::fields(&[
        ("order", order.order_id.clone()),
        ("customer", order.customer_id.clone()),
        ("status", status),
        ("saga", output::or_not_set(&order.saga_state)),
        ("total", total_text(order.total_minor)),
        ("key", order.idempotency_key.clone()),
        ("created", output::rfc3339_text(order.created_at.as_ref())),
        ("updated", output::rfc3339_text(order.updated_at.as_ref())),
        ("trace", output::or_not_set(&order.trace_id)),
    ]);
    text.push('\n');
    text.push_str(&lines_table(order).to_string());
    if !order.history.is_empty() {
        text.push('\n');
        text.push_str(&history_table(&order.history).to_string());
    }
    text
}

/// A price or total of the order: 0 means "not priced yet" (inventory quotes
/// prices when it reserves the stock, and no product is free), so it shows as
/// [`NOT_SET`] rather than as a misleading `0.00`.
fn price_text(minor: i64) -> String {
    match minor {
        0 => NOT_SET.to_owned(),
        minor => output::money(minor),
    }
}

fn total_text(total_minor: i64) -> String {
    match total_minor {
        0 => format!("{NOT_SET} (not priced yet: stock not reserved)"),
        total_minor => output::money(total_minor),
    }
}

fn lines_table(order: &Order) -> Table {
    let mut table = Table::new(&[
        ("SKU", Align::Left),
        ("QTY", Align::Right),
        ("UNIT PRICE", Align::Right),
        ("AMOUNT", Align::Right),
    ]);
    for line in &order.lines {
        table.push_row(vec![
            line.sku.clone(),
            line.quantity.to_string(),
            price_text(line.unit_price_minor),
            price_text(line.unit_price_minor * i64::from(line.quantity)),
        ]);
    }
    table
}

fn history_table(history: &[SagaTransition]) -> Table {
    let mut table = Table::new(&[
        ("AT", Align::Left),
        ("FROM", Align::Left),
        ("TO", Align::Left),
        ("EVENT", Align::Left),
        ("MESSAGE", Align::Left),
    ]);
    for transition in history {
        table.push_row(vec![
            output::rfc3339_text(transition.at.as_ref()),
            output::or_not_set(&transition.from_state),
            transition.to_state.clone(),
            transition.event.clone(),
            output::or_not_set(&transition.message_id),
        ]);
    }
    table
}

/// What inventory and billing said about the order's products and customer.
pub(super) fn details_text(details: &OrderDetails) -> String {
    let mut products = Table::new(&[
        ("SKU", Align::Left),
        ("NAME", Align::Left),
        ("PRICE NOW", Align::Right),
        ("AVAILABLE", Align::Right),
    ]);
    for product in &details.products {
        products.push_row(vec![
            product.sku.clone(),
            product.name.clone(),
            output::money(product.unit_price_minor),
            product.available.to_string(),
        ]);
    }
    let account = details.account.as_ref().map_or_else(
        || NOT_SET.to_owned(),
        |account| {
            format!(
                "{}, balance {}",
                account.customer_id,
                output::money(account.balance_minor)
            )
        },
    );
    let mut rows = vec![("account", account)];
    rows.extend(details.notes.iter().map(|note| ("note", note.clone())));
    format!("{products}\n{}", output::fields(&rows))
}

/// The order for scripts, with the API's field names and minor units.
pub(super) fn order_json(order: &Order) -> Value {
    let lines: Vec<Value> = order
        .lines
        .iter()
        .map(|line| {
            json!({
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_price_minor": line.unit_price_minor,
            })
        })
        .collect();
    let history: Vec<Value> = order.history.iter().map(transition_json).collect();
    json!({
        "order_id": order.order_id,
        "customer_id": order.customer_id,
        "status": status_name(order.status()),
        "reason": output::string_or_null(&order.reason),
        "lines": lines,
        "total_minor": order.total_minor,
        "idempotency_key": order.idempotency_key,
        "created_at": output::rfc3339(order.created_at.as_ref()),
        "updated_at": output::rfc3339(order.updated_at.as_ref()),
        "saga_state": output::string_or_null(&order.saga_state),
        "trace_id": output::string_or_null(&order.trace_id),
        "history": history,
    })
}

/// One saga transition for scripts.
pub(super) fn transition_json(transition: &SagaTransition) -> Value {
    json!({
        "at": output::rfc3339(transition.at.as_ref()),
        "from_state": output::string_or_null(&transition.from_state),
        "to_state": transition.to_state,
        "event": transition.event,
        "message_id": output::string_or_null(&transition.message_id),
    })
}

/// The details of `order get --details` for scripts.
pub(super) fn details_json(details: &OrderDetails) -> Value {
    let products: Vec<Value> = details
        .products
        .iter()
        .map(|product| {
            json!({
                "sku": product.sku,
                "name": product.name,
                "unit_price_minor": product.unit_price_minor,
                "available": product.available,
            })
        })
        .collect();
    let account = details.account.as_ref().map(|account| {
        json!({
            "customer_id": account.customer_id,
            "balance_minor": account.balance_minor,
        })
    });
    json!({
        "products": products,
        "account": account,
        "notes": details.notes,
    })
}
