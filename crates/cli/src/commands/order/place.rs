//! `microcosm order place`: place an order, optionally waiting for its saga.
//!
//! Every PlaceOrder carries an idempotency key, so a retried command never
//! places a second order. Without `--key` one is generated and printed: pass it
//! back with `--key` to retry safely after a timeout or a lost connection.

use std::str::FromStr;

use anyhow::Context as _;
use clap::Args;
use microcosm_proto::order::{OrderLineRequest, OrderStatus, PlaceOrderRequest};
use serde_json::json;
use uuid::Uuid;

use super::render;
use crate::endpoints::Endpoints;
use crate::output::{self, Format};

/// How long `--wait` alone waits for the saga, in milliseconds.
const DEFAULT_WAIT_MS: u32 = 10_000;

/// Arguments of `microcosm order place`.
#[derive(Debug, Args)]
pub(crate) struct PlaceArgs {
    /// The paying customer, e.g. alice.
    #[arg(long, value_name = "ID")]
    customer: String,
    /// A product and how many units of it, e.g. KB-01:2; repeat for more lines.
    #[arg(long = "item", value_name = "SKU:QTY", required = true)]
    items: Vec<OrderItem>,
    /// Wait until the order is CONFIRMED or CANCELLED (up to 10 s) before printing it.
    #[arg(long)]
    wait: bool,
    /// Wait up to this many milliseconds instead (implies --wait; the server allows at most 30000).
    #[arg(long, value_name = "N")]
    wait_ms: Option<u32>,
    /// Idempotency key: the same key again returns the first order (default: a new UUID).
    #[arg(long, value_name = "IDEMPOTENCY_KEY")]
    key: Option<String>,
}

impl PlaceArgs {
    /// The `wait_ms` of the request: `--wait-ms`, else the default with
    /// `--wait`, else 0 (answer at once with PENDING).
    fn wait_ms(&self) -> u32 {
        match (self.wait_ms, self.wait) {
            (Some(wait_ms), _) => wait_ms,
            (None, true) => DEFAULT_WAIT_MS,
            (None, false) => 0,
        }
    }
}

/// One `--item SKU:QTY`: a product code and a quantity of at least one.
/// Parsed by clap, so a malformed item is a usage error naming the flag.
#[derive(Debug, Clone)]
struct OrderItem {
    sku: String,
    quantity: i32,
}

/// How every `--item` error ends, so the user sees the expected form.
const ITEM_FORM: &str = "expected SKU:QTY with QTY a whole number of at least 1, e.g. KB-01:2";

impl FromStr for OrderItem {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let Some((sku, quantity)) = text.rsplit_once(':') else {
            return Err(format!("no quantity; {ITEM_FORM}"));
        };
        if sku.is_empty() {
            return Err(format!("no sku; {ITEM_FORM}"));
        }
        let quantity: i32 = quantity
            .parse()
            .map_err(|_| format!("{quantity:?} is not a quantity; {ITEM_FORM}"))?;
        if quantity < 1 {
            return Err(format!("the quantity must be at least 1; {ITEM_FORM}"));
        }
        Ok(Self {
            sku: sku.to_owned(),
            quantity,
        })
    }
}

/// Places the order and prints it, with its idempotency key if one was generated.
pub(super) async fn place_order(
    endpoints: &Endpoints,
    args: PlaceArgs,
    format: Format,
) -> anyhow::Result<()> {
    let wait_ms = args.wait_ms();
    let (key, key_generated) = match args.key {
        Some(key) => (key, false),
        None => (Uuid::new_v4().to_string(), true),
    };
    let request = PlaceOrderRequest {
        customer_id: args.customer,
        lines: args
            .items
            .into_iter()
            .map(|item| OrderLineRequest {
                sku: item.sku,
                quantity: item.quantity,
            })
            .collect(),
        idempotency_key: key.clone(),
        wait_ms,
    };
    let (mut client, orders) = super::connect(endpoints).await?;
    let placed = client
        .place_order(request)
        .await
        .map_err(|status| orders.call_failed(status))?
        .into_inner();
    let order = placed
        .order
        .context("the order service answered PlaceOrder without the order")?;
    match format {
        Format::Json => output::print_json(&json!({
            "created": placed.created,
            "idempotency_key_generated": key_generated,
            "order": render::order_json(&order),
        })),
        Format::Text => {
            if key_generated {
                println!(
                    "idempotency key {key} (generated: to retry this order safely, pass --key {key})"
                );
            }
            if !placed.created {
                println!("an order was already placed with key {key}: this is that order");
            }
            print!("{}", render::order_text(&order));
            if order.status() == OrderStatus::Pending {
                let order_id = &order.order_id;
                println!("\nstill PENDING: follow it with `microcosm order watch {order_id}`");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_is_a_sku_and_a_positive_quantity() {
        let item: OrderItem = "KB-01:2".parse().expect("valid item");
        assert_eq!((item.sku.as_str(), item.quantity), ("KB-01", 2));
    }

    #[test]
    fn a_malformed_item_is_refused_with_the_expected_form() {
        for malformed in ["KB-01", "KB-01:x", "KB-01:0", "KB-01:-1", ":2", "KB-01:"] {
            let error = malformed.parse::<OrderItem>().expect_err(malformed);
            assert!(error.contains("SKU:QTY"), "{malformed}: {error}");
        }
    }
}
