//! `microcosm order cancel`: ask the saga to stop an order and undo its steps.
//!
//! The answer comes before the compensation has finished: the order is then
//! still PENDING with its saga COMPENSATING, and `order watch` follows it to
//! CANCELLED. A CONFIRMED order cannot be cancelled: the service answers
//! FAILED_PRECONDITION, printed as it is, and the command exits 1.

use anyhow::Context as _;
use clap::Args;
use microcosm_proto::order::{CancelOrderRequest, OrderStatus};
use serde_json::json;
use uuid::Uuid;

use super::render;
use crate::endpoints::Endpoints;
use crate::output::{self, Format};

/// Arguments of `microcosm order cancel`.
#[derive(Debug, Args)]
pub(crate) struct CancelArgs {
    /// The order to cancel.
    #[arg(value_name = "ID", value_parser = super::parse_order_id)]
    order_id: Uuid,
}

/// Requests the cancel and prints the order as it is right after.
pub(super) async fn cancel_order(
    endpoints: &Endpoints,
    args: CancelArgs,
    format: Format,
) -> anyhow::Result<()> {
    let (mut client, orders) = super::connect(endpoints).await?;
    let order = client
        .cancel_order(CancelOrderRequest {
            order_id: args.order_id.to_string(),
        })
        .await
        .map_err(|status| orders.call_failed(status))?
        .into_inner()
        .order
        .context("the order service answered CancelOrder without the order")?;
    match format {
        Format::Json => output::print_json(&json!({ "order": render::order_json(&order) })),
        Format::Text => {
            print!("{}", render::order_text(&order));
            if order.status() == OrderStatus::Pending {
                let order_id = &order.order_id;
                println!(
                    "\ncancelling: follow the compensation with `microcosm order watch {order_id}`"
                );
            }
        }
    }
    Ok(())
}
