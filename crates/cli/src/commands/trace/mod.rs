//! `microcosm trace ORDER_ID`: the order's whole trace as a terminal waterfall.
//!
//! The order service stores each order's trace id. The spans come from Jaeger's
//! query API (`--jaeger http://host:16686`, as in docker compose) or, by
//! default, from the file the local stack's collector writes
//! (`.microcosm/traces.jsonl`, see `microcosm up`).

mod jaeger;
mod waterfall;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use microcosm_proto::order::GetOrderRequest;
use microcosm_proto::order::order_service_client::OrderServiceClient;
use tonic::transport::Endpoint;

use crate::endpoints::Endpoints;
pub(crate) use waterfall::Span;

/// Arguments of `microcosm trace`.
#[derive(Debug, Args)]
pub(crate) struct TraceArgs {
    /// The order whose trace to show.
    order_id: String,
    /// Read the trace from this Jaeger (its query API), e.g. http://127.0.0.1:16686.
    #[arg(long, env = "MICROCOSM_JAEGER_URL")]
    jaeger: Option<String>,
    /// Read the trace from this file of spans written by `microcosm up`'s collector.
    #[arg(long, default_value = ".microcosm/traces.jsonl")]
    traces_file: PathBuf,
}

/// Looks the order's trace id up and prints its waterfall.
pub(crate) async fn run(endpoints: &Endpoints, args: TraceArgs) -> anyhow::Result<ExitCode> {
    let trace_id = order_trace_id(endpoints, &args.order_id).await?;
    let spans = match &args.jaeger {
        Some(url) => jaeger::fetch_trace(url, &trace_id).await?,
        None => read_traces_file(&args.traces_file, &trace_id)?,
    };
    if spans.is_empty() {
        anyhow::bail!(
            "no spans of trace {trace_id} yet (spans are exported in batches: try again in a second, \
             and check that the services export to the collector you read from)"
        );
    }
    print!(
        "{}",
        waterfall::render(
            &trace_id,
            &args.order_id,
            &spans,
            std::io::stdout().is_terminal()
        )
    );
    Ok(ExitCode::SUCCESS)
}

async fn order_trace_id(endpoints: &Endpoints, order_id: &str) -> anyhow::Result<String> {
    let channel = Endpoint::from_shared(endpoints.order_url.clone())
        .context("invalid order URL")?
        .connect()
        .await
        .with_context(|| {
            format!(
                "cannot reach the order service at {}: is it running? Start the local stack with `microcosm up`",
                endpoints.order_url
            )
        })?;
    let order = OrderServiceClient::new(channel)
        .get_order(GetOrderRequest {
            order_id: order_id.to_owned(),
            include_details: false,
        })
        .await
        .map_err(|status| anyhow::anyhow!("the order service answered: {}", status.message()))?
        .into_inner()
        .order
        .context("the order service returned no order")?;
    if order.trace_id.is_empty() {
        anyhow::bail!("order {order_id} has no trace id (it was placed before tracing was on)");
    }
    Ok(order.trace_id)
}

/// Spans of `trace_id` from the collector's JSON-lines file.
fn read_traces_file(path: &std::path::Path, trace_id: &str) -> anyhow::Result<Vec<Span>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {} (it is written by `microcosm up`; pass --traces-file, or --jaeger URL for a Jaeger)",
            path.display()
        )
    })?;
    let mut spans = Vec::new();
    for line in text.lines().filter(|line| line.contains(trace_id)) {
        let value: serde_json::Value =
            serde_json::from_str(line).context("a malformed span line")?;
        if value["trace_id"] == trace_id {
            spans.push(Span::from_collector_json(&value));
        }
    }
    Ok(spans)
}
