//! `microcosm order get`: one order with its lines, total and saga history,
//! and with `--details` what inventory and billing say about it now.

use anyhow::Context as _;
use clap::Args;
use microcosm_proto::order::GetOrderRequest;
use serde_json::json;
use uuid::Uuid;

use super::render;
use crate::endpoints::Endpoints;
use crate::output::{self, Format};

/// Arguments of `microcosm order get`.
#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// The order's id, as printed by `order place` or `order list`.
    #[arg(value_name = "ID", value_parser = super::parse_order_id)]
    order_id: Uuid,
    /// Also show the products' and the customer's account's current data,
    /// fetched live from inventory and billing.
    #[arg(long)]
    details: bool,
}

/// Fetches the order and prints it.
pub(super) async fn show_order(
    endpoints: &Endpoints,
    args: GetArgs,
    format: Format,
) -> anyhow::Result<()> {
    let (mut client, orders) = super::connect(endpoints).await?;
    let response = client
        .get_order(GetOrderRequest {
            order_id: args.order_id.to_string(),
            include_details: args.details,
        })
        .await
        .map_err(|status| orders.call_failed(status))?
        .into_inner();
    let order = response
        .order
        .context("the order service answered GetOrder without the order")?;
    match format {
        Format::Json => output::print_json(&json!({
            "order": render::order_json(&order),
            "details": response.details.as_ref().map(render::details_json),
        })),
        Format::Text => {
            print!("{}", render::order_text(&order));
            if let Some(details) = &response.details {
                print!("\n{}", render::details_text(details));
            }
        }
    }
    Ok(())
}
