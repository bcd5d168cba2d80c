//! `microcosm`: the command line for the Microcosm stack.
//!
//! Each subcommand lives in its own module under `commands/`. Service addresses
//! default to the local stack's ports (order 50051, inventory 50052, billing
//! 50053) and can be changed with flags or `MICROCOSM_*_URL` variables.

mod commands;
mod endpoints;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run, drive and inspect Microcosm: three services, one saga.
#[derive(Debug, Parser)]
#[command(name = "microcosm", version, about, propagate_version = true)]
struct Cli {
    /// Where the services are.
    #[command(flatten)]
    endpoints: endpoints::Endpoints,
    /// Print machine-readable JSON instead of text (one document per command,
    /// one object per line for streams such as `order watch`).
    #[arg(long, global = true)]
    json: bool,
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole system on this machine, no Docker: PostgreSQL, NATS and the
    /// three services, until Ctrl-C.
    Up(commands::up::UpArgs),
    /// Place, inspect, follow and cancel orders.
    #[command(subcommand)]
    Order(commands::order::OrderCommand),
    /// List products and restock them.
    #[command(subcommand)]
    Inventory(commands::inventory::InventoryCommand),
    /// Look at and fund customer accounts.
    #[command(subcommand)]
    Billing(commands::billing::BillingCommand),
    /// Flip fault flags on the running services (decline payments, add latency, ...).
    #[command(subcommand)]
    Fault(commands::fault::FaultCommand),
    /// Show an order's trace as a waterfall (from Jaeger, or the local stack's collector).
    Trace(commands::trace::TraceArgs),
    /// The system's key figures, live: orders, latency, outbox and consumer lag,
    /// dead letters, memory (from the local stack's metrics, refreshed every second).
    Top(commands::top::TopArgs),
    /// Check the gRPC health of services (exit 0 only if all are SERVING).
    Health(commands::health::HealthArgs),
    /// Check that the order, inventory and billing databases agree (exit 0 clean,
    /// 1 violations found, 2 the audit could not run: a URL missing or a database unreadable).
    Audit(commands::audit::AuditArgs),
    /// Measure the saga against a one-transaction monolith on the same PostgreSQL.
    Bench(commands::bench::BenchArgs),
    /// Place N orders while services, NATS and a database are SIGKILLed and
    /// restarted at random; exit 0 only if nothing was lost, doubled or stuck and
    /// the audit is clean.
    Chaos(commands::chaos::ChaosArgs),
    /// Place orders at a steady rate on the running system (the demo mix, with
    /// retries), until stopped or --orders are placed.
    Load(commands::load::LoadArgs),
    /// Write a development CA and certificates for gRPC TLS and mutual TLS.
    Certs(commands::certs::CertsArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = output::Format::from_json_flag(cli.json);
    let result = match cli.command {
        Command::Up(args) => commands::up::run(args).await,
        Command::Order(command) => commands::order::run(&cli.endpoints, command, format).await,
        Command::Inventory(command) => {
            commands::inventory::run(&cli.endpoints, command, format).await
        }
        Command::Billing(command) => commands::billing::run(&cli.endpoints, command, format).await,
        Command::Fault(command) => commands::fault::run(&cli.endpoints, command).await,
        Command::Trace(args) => commands::trace::run(&cli.endpoints, args).await,
        Command::Top(args) => commands::top::run(args, cli.json).await,
        Command::Health(args) => commands::health::run(&cli.endpoints, args).await,
        Command::Audit(args) => Ok(commands::audit::run(args, cli.json).await),
        Command::Bench(args) => commands::bench::run(args).await,
        Command::Chaos(args) => commands::chaos::run(args, cli.json).await,
        Command::Load(args) => commands::load::run(&cli.endpoints, args).await,
        Command::Certs(args) => commands::certs::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
