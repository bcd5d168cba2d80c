//! `microcosm audit`: prove, or disprove, that the three databases agree.
//!
//! Run it after a chaos run or an outage. It reads the order, inventory and
//! billing databases directly rather than through the services, which may be
//! what is down, runs every check of `microcosm-audit` and prints the report.
//! The exit code is for scripts and CI: 0 clean, 1 violations found, 2 the
//! audit could not run (a URL missing, a database unreachable or unreadable).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use microcosm_audit::{AuditDatabases, AuditError, AuditOptions, AuditReport, Database};
use microcosm_platform::config::DatabaseUrl;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection as _, PgConnection, PgPool};

/// Exit code when a check found a violation.
const VIOLATIONS_FOUND: u8 = 1;
/// Exit code when the audit could not run, so proved nothing either way.
const CANNOT_AUDIT: u8 = 2;
/// How long to wait for a database before calling it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Arguments of `microcosm audit`.
#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// The order service's database, e.g. postgres://microcosm_order:secret@127.0.0.1:5432/microcosm_order.
    #[arg(
        long,
        value_name = "URL",
        env = "MICROCOSM_ORDER_DATABASE_URL",
        hide_env_values = true
    )]
    order_db: Option<DatabaseUrl>,
    /// The inventory service's database.
    #[arg(
        long,
        value_name = "URL",
        env = "MICROCOSM_INVENTORY_DATABASE_URL",
        hide_env_values = true
    )]
    inventory_db: Option<DatabaseUrl>,
    /// The billing service's database.
    #[arg(
        long,
        value_name = "URL",
        env = "MICROCOSM_BILLING_DATABASE_URL",
        hide_env_values = true
    )]
    billing_db: Option<DatabaseUrl>,
    /// Report orders PENDING for longer than this many seconds as stuck.
    #[arg(long, value_name = "SECONDS", default_value_t = microcosm_audit::DEFAULT_STUCK_AFTER.as_secs())]
    stuck_after_secs: u64,
}

/// Where a database's URL comes from, to name in every message about it.
struct UrlSource {
    flag: &'static str,
    env: &'static str,
}

fn url_source(database: Database) -> UrlSource {
    let (flag, env) = match database {
        Database::Order => ("--order-db", "MICROCOSM_ORDER_DATABASE_URL"),
        Database::Inventory => ("--inventory-db", "MICROCOSM_INVENTORY_DATABASE_URL"),
        Database::Billing => ("--billing-db", "MICROCOSM_BILLING_DATABASE_URL"),
    };
    UrlSource { flag, env }
}

/// One pool per database; the audit borrows all three.
struct Pools {
    order: PgPool,
    inventory: PgPool,
    billing: PgPool,
}

impl Pools {
    fn databases(&self) -> AuditDatabases<'_> {
        AuditDatabases {
            order: &self.order,
            inventory: &self.inventory,
            billing: &self.billing,
        }
    }
}

/// Audits the three databases and prints the report, as JSON with the global
/// `--json` flag; the exit code says how it went.
pub(crate) async fn run(args: AuditArgs, json: bool) -> ExitCode {
    let pools = match connect_all(&args).await {
        Ok(pools) => pools,
        Err(problem) => {
            eprintln!("error: {problem:#}");
            return ExitCode::from(CANNOT_AUDIT);
        }
    };
    let options = AuditOptions {
        stuck_after: Duration::from_secs(args.stuck_after_secs),
    };
    let report = match microcosm_audit::audit(pools.databases(), &options).await {
        Ok(report) => report,
        Err(error) => {
            report_audit_error(error);
            return ExitCode::from(CANNOT_AUDIT);
        }
    };
    if json {
        // `{:#}` pretty-prints a JSON value.
        println!("{:#}", report_json(&report));
    } else {
        println!("{report}");
    }
    if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(VIOLATIONS_FOUND)
    }
}

/// Connects to all three databases, or says which URLs are missing (all of
/// them at once) or which database cannot be reached.
async fn connect_all(args: &AuditArgs) -> anyhow::Result<Pools> {
    let (Some(order), Some(inventory), Some(billing)) =
        (&args.order_db, &args.inventory_db, &args.billing_db)
    else {
        anyhow::bail!("{}", missing_urls(args).join("\n       "));
    };
    Ok(Pools {
        order: connect(Database::Order, order).await?,
        inventory: connect(Database::Inventory, inventory).await?,
        billing: connect(Database::Billing, billing).await?,
    })
}

/// One line per database whose URL was given neither as a flag nor in the environment.
fn missing_urls(args: &AuditArgs) -> Vec<String> {
    [
        (Database::Order, &args.order_db),
        (Database::Inventory, &args.inventory_db),
        (Database::Billing, &args.billing_db),
    ]
    .into_iter()
    .filter(|(_, url)| url.is_none())
    .map(|(database, _)| {
        let source = url_source(database);
        format!(
            "no {database} database URL: pass {} or set {}",
            source.flag, source.env
        )
    })
    .collect()
}

/// Opens a pool on one database, after one probe connection: a failed probe
/// says why (refused, wrong password, no such database) where a pool would
/// only say that it timed out waiting.
async fn connect(database: Database, url: &DatabaseUrl) -> anyhow::Result<PgPool> {
    let source = url_source(database);
    let unreachable = || {
        format!(
            "cannot reach the {database} database at {url} (check {} / {}, \
             and that PostgreSQL is running there and accepts this user)",
            source.flag, source.env
        )
    };
    let probe =
        match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(url.expose())).await {
            Ok(connected) => connected.with_context(unreachable)?,
            Err(_elapsed) => {
                let silence = anyhow::anyhow!("no answer within {CONNECT_TIMEOUT:?}");
                return Err(silence.context(unreachable()));
            }
        };
    // The probe has done its job; a failed goodbye changes nothing.
    let _ = probe.close().await;
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_lazy(url.expose())
        .with_context(unreachable)
}

fn report_audit_error(error: AuditError) {
    let source = url_source(error.database());
    let database = error.database();
    eprintln!("error: {:#}", anyhow::Error::from(error));
    eprintln!(
        "hint: check that {} / {} is the {database} service's own database, \
         reachable, and migrated (the service applies its migrations at start)",
        source.flag, source.env
    );
}

/// The report as JSON: the same fields as the text, for scripts.
pub(crate) fn report_json(report: &AuditReport) -> serde_json::Value {
    let violations: Vec<serde_json::Value> = report
        .violations
        .iter()
        .map(|violation| {
            json!({
                "check": violation.check,
                "order_id": violation.order_id.map(|id| id.to_string()),
                "detail": violation.detail,
            })
        })
        .collect();
    json!({
        "clean": report.is_clean(),
        "audited_at": report.audited_at.to_rfc3339(),
        "orders": {
            "total": report.orders.total,
            "pending": report.orders.pending,
            "in_flight": report.orders.in_flight,
            "confirmed": report.orders.confirmed,
            "cancelled": report.orders.cancelled(),
            "cancelled_by_reason": report.orders.cancelled_by_reason,
        },
        "dead_letters": {
            "order": report.dead_letters.order,
            "inventory": report.dead_letters.inventory,
            "billing": report.dead_letters.billing,
        },
        "violations": violations,
    })
}
