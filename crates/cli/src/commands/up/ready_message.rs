//! What `microcosm up` prints once everything is SERVING: where each part listens,
//! where the logs are, and what to try next.
//!
//! Everything a newcomer needs to go on is on one screen, with commands that can be
//! copied as they are: the `export` lines point `microcosm audit` (and, on ports
//! other than the default, every other command) at this stack.

use microcosm_testkit::{OtlpCollector, ServiceKind, Stack};

use super::data_dir::DataDir;
use super::ports::ServicePorts;

/// The order the services are listed in: the way a request travels.
const LISTED: [ServiceKind; 3] = [
    ServiceKind::Order,
    ServiceKind::Inventory,
    ServiceKind::Billing,
];

/// Prints the endpoints, logs and next steps of a running stack.
pub(crate) fn print_ready_message(
    stack: &Stack,
    ports: ServicePorts,
    data_dir: &DataDir,
    collector: &OtlpCollector,
) {
    println!();
    println!("Microcosm is up.");
    println!();
    println!("gRPC (health, reflection: try `grpcurl -plaintext 127.0.0.1:PORT list`):");
    for kind in LISTED {
        println!("  {:<10} {}", kind.name(), ports.url(kind));
    }
    println!("PostgreSQL (one database per service; its runtime role, rows only):");
    for kind in LISTED {
        let url = stack.postgres(kind).service_url(&kind.database());
        println!("  {:<10} {url}", kind.name());
    }
    println!("NATS JetStream (as an admin user; each service has its own, restricted one):");
    println!(
        "  {:<10} {}   (monitoring: http://127.0.0.1:{})",
        "nats",
        stack.nats.url(),
        stack.nats.monitor_port()
    );

    println!("Traces and metrics (OTLP collector; `microcosm trace ORDER_ID` draws a trace,");
    println!("`microcosm top` shows the metrics live):");
    println!(
        "  {:<10} {}   (spans in {}, metrics in {})",
        "otlp",
        collector.endpoint(),
        data_dir.traces_file().display(),
        data_dir.metrics_file().display()
    );

    println!();
    println!("Logs (services write JSON lines):");
    for kind in LISTED {
        println!("  {}", stack.service(kind).log_path().display());
    }
    println!(
        "  {}",
        stack.postgres(ServiceKind::Order).log_path().display()
    );
    println!("  {}", stack.nats.log_path().display());

    println!();
    println!("In another terminal, point the CLI at this stack:");
    if !ports.are_defaults() {
        for kind in LISTED {
            println!(
                "  export MICROCOSM_{}_URL={}",
                kind.name().to_uppercase(),
                ports.url(kind)
            );
        }
    }
    for kind in LISTED {
        println!(
            "  export MICROCOSM_{}_DATABASE_URL={}",
            kind.name().to_uppercase(),
            stack.postgres(kind).service_url(&kind.database())
        );
    }

    println!();
    println!("Then try:");
    println!("  microcosm order place --customer alice --item KB-01:1 --wait");
    println!("      alice buys a keyboard: CONFIRMED");
    println!("  microcosm order place --customer carol --item MON-27:1 --wait");
    println!("      carol cannot afford a monitor: CANCELLED (insufficient funds), stock released");
    println!("  microcosm trace ORDER_ID");
    println!("      the order's trace across the three services, as a waterfall");
    println!("  microcosm inventory list");
    println!("      the catalogue and its stock; `microcosm audit` checks the databases agree");

    println!();
    println!(
        "Data is kept in {} between runs (`--fresh` starts empty).",
        data_dir.root().display()
    );
    println!("Ctrl-C to stop.");
}
