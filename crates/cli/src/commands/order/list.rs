//! `microcosm order list`: one page of orders, newest first.
//!
//! Paging is explicit (`--page-token`) rather than automatic: a busy system
//! holds more orders than a terminal shows, and the token printed under the
//! table fetches the next page.

use clap::Args;
use microcosm_proto::order::ListOrdersRequest;
use serde_json::{Value, json};

use super::render;
use crate::endpoints::Endpoints;
use crate::output::{self, Align, Format, Table};

/// Arguments of `microcosm order list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only this customer's orders.
    #[arg(long, value_name = "ID")]
    customer: Option<String>,
    /// Orders per page (1-500; the server's default is 50).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..=500))]
    limit: Option<i32>,
    /// The token printed under the previous page, to get the next one.
    #[arg(long, value_name = "T")]
    page_token: Option<String>,
}

/// Fetches one page and prints it as a table, or as JSON.
pub(super) async fn list_orders(
    endpoints: &Endpoints,
    args: ListArgs,
    format: Format,
) -> anyhow::Result<()> {
    let (mut client, orders) = super::connect(endpoints).await?;
    let page = client
        .list_orders(ListOrdersRequest {
            customer_id: args.customer.unwrap_or_default(),
            page_size: args.limit.unwrap_or(0),
            page_token: args.page_token.unwrap_or_default(),
        })
        .await
        .map_err(|status| orders.call_failed(status))?
        .into_inner();
    match format {
        Format::Json => {
            let listed: Vec<Value> = page.orders.iter().map(render::order_json).collect();
            output::print_json(&json!({
                "orders": listed,
                "next_page_token": output::string_or_null(&page.next_page_token),
            }));
        }
        Format::Text => {
            let mut table = Table::new(&[
                ("ORDER", Align::Left),
                ("CUSTOMER", Align::Left),
                ("STATUS", Align::Left),
                ("TOTAL", Align::Right),
                ("CREATED", Align::Left),
            ]);
            for order in &page.orders {
                table.push_row(vec![
                    order.order_id.clone(),
                    order.customer_id.clone(),
                    render::status_with_reason(order.status(), &order.reason),
                    output::money(order.total_minor),
                    output::rfc3339_text(order.created_at.as_ref()),
                ]);
            }
            print!("{table}");
            if !page.next_page_token.is_empty() {
                println!("\nnext page: --page-token {}", page.next_page_token);
            }
        }
    }
    Ok(())
}
