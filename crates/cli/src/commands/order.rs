//! `microcosm order`: place, inspect, list, cancel and follow orders through
//! the order service's public gRPC API.
//!
//! Each subcommand is one file below `order/`; `render` shows an order the
//! same way for all of them. Exit codes: 0 the request succeeded (an order
//! that ends CANCELLED is a successful request: read its status), 1 the
//! service refused it (its message is printed), 2 usage error, 3 the order
//! service is unreachable — see [`crate::endpoints`].

mod cancel;
mod get;
mod list;
mod place;
mod render;
mod watch;

use std::process::ExitCode;

use clap::Subcommand;
use microcosm_proto::order::order_service_client::OrderServiceClient;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::endpoints::{Connection, EXIT_CODES_HELP, Endpoints, ServiceCallError, ServiceName};
use crate::output::{self, Format};

/// Subcommands of `microcosm order`.
#[derive(Debug, Subcommand)]
#[command(after_help = EXIT_CODES_HELP)]
pub(crate) enum OrderCommand {
    /// Place an order and print it (with --wait, once its saga has finished).
    Place(place::PlaceArgs),
    /// Show one order: status, lines with prices, total and the saga's history.
    Get(get::GetArgs),
    /// List orders, newest first, one page at a time.
    List(list::ListArgs),
    /// Cancel an order that is not confirmed yet; its saga undoes what it did.
    Cancel(cancel::CancelArgs),
    /// Follow an order live: one line per saga transition, until it is final.
    Watch(watch::WatchArgs),
}

/// Runs one `order` subcommand; the exit code says how it went.
pub(crate) async fn run(
    endpoints: &Endpoints,
    command: OrderCommand,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let outcome = match command {
        OrderCommand::Place(args) => place::place_order(endpoints, args, format).await,
        OrderCommand::Get(args) => get::show_order(endpoints, args, format).await,
        OrderCommand::List(args) => list::list_orders(endpoints, args, format).await,
        OrderCommand::Cancel(args) => cancel::cancel_order(endpoints, args, format).await,
        OrderCommand::Watch(args) => watch::watch_order(endpoints, args, format).await,
    };
    Ok(output::finish(outcome))
}

/// A client of the order service, with its connection to explain failed calls.
async fn connect(
    endpoints: &Endpoints,
) -> Result<(OrderServiceClient<Channel>, Connection), ServiceCallError> {
    let connection = endpoints.connect(ServiceName::Order).await?;
    Ok((OrderServiceClient::new(connection.channel()), connection))
}

/// Parses an order id argument, so that a mistyped id is a usage error that
/// says what an order id looks like rather than a round trip to the service.
fn parse_order_id(text: &str) -> Result<Uuid, String> {
    Uuid::parse_str(text).map_err(|_| {
        "expected an order id: a UUID as printed by `order place` or `order list`".to_owned()
    })
}
