//! `microcosm billing`: customer accounts and deposits, through the billing
//! service's public gRPC API. Amounts are given and returned in minor units
//! (cents) and printed in major units: a deposit of 1000 prints as `10.00`.
//!
//! Exit codes: 0 done, 1 the service refused the request (its message is
//! printed, e.g. no such account), 2 usage error, 3 the billing service is
//! unreachable — see [`crate::endpoints`].

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use microcosm_proto::billing::billing_service_client::BillingServiceClient;
use microcosm_proto::billing::{Account, DepositRequest, GetAccountRequest};
use serde_json::{Value, json};

use crate::endpoints::{EXIT_CODES_HELP, Endpoints, ServiceName};
use crate::output::{self, Format};

/// Subcommands of `microcosm billing`.
#[derive(Debug, Subcommand)]
#[command(after_help = EXIT_CODES_HELP)]
pub(crate) enum BillingCommand {
    /// Show a customer's account and balance.
    Account {
        /// The customer, e.g. alice.
        customer: String,
    },
    /// Add money to a customer's account.
    Deposit {
        /// The customer, e.g. alice.
        customer: String,
        /// The amount in minor units (cents): 1000 deposits 10.00.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        amount_minor: i64,
    },
}

/// Runs one `billing` subcommand; the exit code says how it went.
pub(crate) async fn run(
    endpoints: &Endpoints,
    command: BillingCommand,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let outcome = match command {
        BillingCommand::Account { customer } => show_account(endpoints, customer, format).await,
        BillingCommand::Deposit {
            customer,
            amount_minor,
        } => deposit(endpoints, customer, amount_minor, format).await,
    };
    Ok(output::finish(outcome))
}

/// Prints one account.
async fn show_account(
    endpoints: &Endpoints,
    customer: String,
    format: Format,
) -> anyhow::Result<()> {
    let billing = endpoints.connect(ServiceName::Billing).await?;
    let account = BillingServiceClient::new(billing.channel())
        .get_account(GetAccountRequest {
            customer_id: customer,
        })
        .await
        .map_err(|status| billing.call_failed(status))?
        .into_inner()
        .account
        .context("the billing service answered GetAccount without the account")?;
    match format {
        Format::Json => output::print_json(&json!({ "account": account_json(&account) })),
        Format::Text => print!("{}", account_text(&account)),
    }
    Ok(())
}

/// Deposits the amount and prints the account as it is afterwards.
async fn deposit(
    endpoints: &Endpoints,
    customer: String,
    amount_minor: i64,
    format: Format,
) -> anyhow::Result<()> {
    let billing = endpoints.connect(ServiceName::Billing).await?;
    let account = BillingServiceClient::new(billing.channel())
        .deposit(DepositRequest {
            customer_id: customer,
            amount_minor,
        })
        .await
        .map_err(|status| billing.call_failed(status))?
        .into_inner()
        .account
        .context("the billing service answered Deposit without the account")?;
    match format {
        Format::Json => output::print_json(&json!({
            "deposited_minor": amount_minor,
            "account": account_json(&account),
        })),
        Format::Text => {
            println!("deposited {}", output::money(amount_minor));
            print!("{}", account_text(&account));
        }
    }
    Ok(())
}

fn account_text(account: &Account) -> String {
    output::fields(&[
        ("customer", account.customer_id.clone()),
        ("balance", output::money(account.balance_minor)),
        ("opened", output::rfc3339_text(account.opened_at.as_ref())),
    ])
}

fn account_json(account: &Account) -> Value {
    json!({
        "customer_id": account.customer_id,
        "balance_minor": account.balance_minor,
        "opened_at": output::rfc3339(account.opened_at.as_ref()),
    })
}
