//! `microcosm order watch`: follow an order live, one line per saga transition.
//!
//! WatchOrder streams the whole order each time its saga moves, starting with
//! where it stands now, and ends once the order is CONFIRMED or CANCELLED. The
//! first update can hold several transitions already made (all of them, for a
//! finished order), so each update prints only the transitions not printed yet.
//! A line's status is the one the order had right after that transition, as
//! docs/saga.md derives it from the saga state. Times are UTC.

use anyhow::{Context as _, bail};
use clap::Args;
use microcosm_proto::order::{Order, OrderStatus, SagaTransition, WatchOrderRequest};
use serde_json::{Value, json};
use uuid::Uuid;

use super::render;
use crate::endpoints::Endpoints;
use crate::output::{self, Format};

/// Arguments of `microcosm order watch`.
#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// The order to follow.
    #[arg(value_name = "ID", value_parser = super::parse_order_id)]
    order_id: Uuid,
}

/// Prints each transition as the stream reports it; returns once the order is final.
pub(super) async fn watch_order(
    endpoints: &Endpoints,
    args: WatchArgs,
    format: Format,
) -> anyhow::Result<()> {
    let (mut client, orders) = super::connect(endpoints).await?;
    let mut updates = client
        .watch_order(WatchOrderRequest {
            order_id: args.order_id.to_string(),
        })
        .await
        .map_err(|status| orders.call_failed(status))?
        .into_inner();
    let mut printed = 0;
    let mut last_status = OrderStatus::Pending;
    while let Some(update) = updates
        .message()
        .await
        .map_err(|status| orders.call_failed(status))?
    {
        let order = update
            .order
            .context("the order service sent a WatchOrder update without the order")?;
        for transition in order.history.iter().skip(printed) {
            print_transition(&order, transition, format);
        }
        printed = printed.max(order.history.len());
        last_status = order.status();
    }
    if last_status == OrderStatus::Pending {
        bail!(
            "the order service ended the watch while order {} was still PENDING; \
             run the command again to keep following it",
            args.order_id
        );
    }
    Ok(())
}

fn print_transition(order: &Order, transition: &SagaTransition, format: Format) {
    let status = render::status_after(&transition.to_state);
    let reason = match status {
        OrderStatus::Cancelled => order.reason.as_str(),
        _ => "",
    };
    match format {
        Format::Json => {
            output::print_json_line(&transition_line_json(order, transition, status, reason))
        }
        Format::Text => {
            // The reason goes last, so that the columns before it stay aligned.
            let reason = match reason {
                "" => String::new(),
                reason => format!("  reason {reason}"),
            };
            println!(
                "{}  {:<12}  {:<9}  {}{reason}",
                output::time_of_day(transition.at.as_ref()),
                transition.to_state,
                render::status_name(status),
                transition.event,
            );
        }
    }
}

/// One line of `order watch --json`: the transition, the order it belongs to,
/// and the status it left the order in.
fn transition_line_json(
    order: &Order,
    transition: &SagaTransition,
    status: OrderStatus,
    reason: &str,
) -> Value {
    json!({
        "order_id": order.order_id,
        "at": output::rfc3339(transition.at.as_ref()),
        "from_state": output::string_or_null(&transition.from_state),
        "to_state": transition.to_state,
        "event": transition.event,
        "message_id": output::string_or_null(&transition.message_id),
        "status": render::status_name(status),
        "reason": output::string_or_null(reason),
    })
}
