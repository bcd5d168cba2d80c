//! `microcosm inventory`: the product catalogue and its stock, through the
//! inventory service's public gRPC API.
//!
//! Exit codes: 0 done, 1 the service refused the request (its message is
//! printed, e.g. an unknown sku), 2 usage error, 3 the inventory service is
//! unreachable — see [`crate::endpoints`].

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use microcosm_proto::inventory::inventory_service_client::InventoryServiceClient;
use microcosm_proto::inventory::{ListProductsRequest, Product, RestockProductRequest};
use serde_json::{Value, json};

use crate::endpoints::{EXIT_CODES_HELP, Endpoints, ServiceName};
use crate::output::{self, Align, Format, Table};

/// Products per ListProducts call: the most the service allows, so the demo
/// catalogue comes in one call and a large one in few.
const PAGE_SIZE: i32 = 500;

/// Subcommands of `microcosm inventory`.
#[derive(Debug, Subcommand)]
#[command(after_help = EXIT_CODES_HELP)]
pub(crate) enum InventoryCommand {
    /// List every product with its price and stock (all pages).
    List,
    /// Add units to a product's available stock.
    Restock {
        /// The product code, e.g. KB-01.
        sku: String,
        /// Units to add (the service accepts 1 to 1,000,000).
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        quantity: i64,
    },
}

/// Runs one `inventory` subcommand; the exit code says how it went.
pub(crate) async fn run(
    endpoints: &Endpoints,
    command: InventoryCommand,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let outcome = match command {
        InventoryCommand::List => list_products(endpoints, format).await,
        InventoryCommand::Restock { sku, quantity } => {
            restock_product(endpoints, sku, quantity, format).await
        }
    };
    Ok(output::finish(outcome))
}

/// Reads the whole catalogue, page by page, and prints it in sku order.
async fn list_products(endpoints: &Endpoints, format: Format) -> anyhow::Result<()> {
    let inventory = endpoints.connect(ServiceName::Inventory).await?;
    let mut client = InventoryServiceClient::new(inventory.channel());
    let mut products = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_products(ListProductsRequest {
                page_size: PAGE_SIZE,
                page_token,
            })
            .await
            .map_err(|status| inventory.call_failed(status))?
            .into_inner();
        products.extend(page.products);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    match format {
        Format::Json => {
            let listed: Vec<Value> = products.iter().map(product_json).collect();
            output::print_json(&json!({ "products": listed }));
        }
        Format::Text => print!("{}", products_table(&products)),
    }
    Ok(())
}

/// Restocks one product and prints it as it is afterwards.
async fn restock_product(
    endpoints: &Endpoints,
    sku: String,
    quantity: i64,
    format: Format,
) -> anyhow::Result<()> {
    let inventory = endpoints.connect(ServiceName::Inventory).await?;
    let product = InventoryServiceClient::new(inventory.channel())
        .restock_product(RestockProductRequest { sku, quantity })
        .await
        .map_err(|status| inventory.call_failed(status))?
        .into_inner()
        .product
        .context("the inventory service answered RestockProduct without the product")?;
    match format {
        Format::Json => output::print_json(&json!({ "product": product_json(&product) })),
        Format::Text => {
            println!("restocked {} by {quantity}", product.sku);
            print!("{}", products_table(std::slice::from_ref(&product)));
        }
    }
    Ok(())
}

fn products_table(products: &[Product]) -> Table {
    let mut table = Table::new(&[
        ("SKU", Align::Left),
        ("NAME", Align::Left),
        ("PRICE", Align::Right),
        ("AVAILABLE", Align::Right),
        ("RESERVED", Align::Right),
    ]);
    for product in products {
        table.push_row(vec![
            product.sku.clone(),
            product.name.clone(),
            output::money(product.unit_price_minor),
            product.available.to_string(),
            product.reserved.to_string(),
        ]);
    }
    table
}

fn product_json(product: &Product) -> Value {
    json!({
        "sku": product.sku,
        "name": product.name,
        "unit_price_minor": product.unit_price_minor,
        "available": product.available,
        "reserved": product.reserved,
    })
}
