//! 500 concurrent orders over 20 products with scarce stock and scarce money:
//! every order finishes, the audit is clean, and every stock count and balance
//! is exactly what the confirmed orders imply.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use integration_tests::wait_until_no_order_pending;
use microcosm_testkit::{ServiceKind, Stack};

use crate::support::{assert_audit_clean, audit, order_request, orders, patient_stack};

const PRODUCTS: usize = 20;
const CUSTOMERS: usize = 25;
const ORDERS: usize = 500;
const STOCK_EACH: i64 = 40;
const FUNDS_EACH: i64 = 20_000;

fn sku(index: usize) -> String {
    format!("LOAD-{index:02}")
}

fn customer(index: usize) -> String {
    format!("load-customer-{index:02}")
}

/// A small deterministic generator, so a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % bound as u64) as usize
    }
}

async fn seed_scarce_catalogue_and_customers(stack: &Stack) {
    let inventory = stack
        .superuser_pool(ServiceKind::Inventory)
        .await
        .expect("pool");
    for index in 0..PRODUCTS {
        sqlx::query(
            "INSERT INTO products (sku, name, unit_price_minor, available) VALUES ($1, $2, $3, $4)",
        )
        .bind(sku(index))
        .bind(format!("Load product {index}"))
        .bind(((index + 1) * 150) as i64)
        .bind(STOCK_EACH)
        .execute(&inventory)
        .await
        .expect("insert product");
    }
    let billing = stack
        .superuser_pool(ServiceKind::Billing)
        .await
        .expect("pool");
    for index in 0..CUSTOMERS {
        sqlx::query("INSERT INTO accounts (customer_id, balance_minor) VALUES ($1, $2)")
            .bind(customer(index))
            .bind(FUNDS_EACH)
            .execute(&billing)
            .await
            .expect("insert account");
        sqlx::query(
            "INSERT INTO ledger_entries (entry_id, customer_id, kind, amount_minor) VALUES (gen_random_uuid(), $1, 'deposit', $2)",
        )
        .bind(customer(index))
        .bind(FUNDS_EACH)
        .execute(&billing)
        .await
        .expect("insert deposit");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_orders_over_scarce_stock_and_money_add_up_exactly() {
    let stack = patient_stack().await;
    seed_scarce_catalogue_and_customers(&stack).await;

    let mut random = Lcg(42);
    let requests: Vec<_> = (0..ORDERS)
        .map(|number| {
            let mut skus: Vec<usize> = (0..1 + random.below(3))
                .map(|_| random.below(PRODUCTS))
                .collect();
            skus.sort_unstable();
            skus.dedup();
            let lines: Vec<(String, i32)> = skus
                .into_iter()
                .map(|index| (sku(index), 1 + random.below(3) as i32))
                .collect();
            (
                customer(random.below(CUSTOMERS)),
                lines,
                format!("load-{number}"),
            )
        })
        .collect();
    let client = orders(&stack).await;
    let placed: Vec<_> = futures::stream::iter(requests)
        .map(|(customer, lines, key)| {
            let mut client = client.clone();
            async move {
                let lines: Vec<(&str, i32)> = lines
                    .iter()
                    .map(|(sku, quantity)| (sku.as_str(), *quantity))
                    .collect();
                // A service short of database connections under this burst answers
                // UNAVAILABLE; a client retries that with the same key, as here.
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    match client
                        .place_order(order_request(&customer, &lines, &key, 0))
                        .await
                    {
                        Err(status)
                            if status.code() == tonic::Code::Unavailable && attempts < 20 =>
                        {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        result => break result,
                    }
                }
            }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    let refused: Vec<_> = placed
        .iter()
        .filter_map(|result| result.as_ref().err())
        .collect();
    assert!(
        refused.is_empty(),
        "every PlaceOrder was accepted: {refused:?}"
    );

    let order_db = stack
        .superuser_pool(ServiceKind::Order)
        .await
        .expect("pool");
    wait_until_no_order_pending(&stack, Duration::from_secs(180)).await;

    let report = audit(&stack).await;
    assert_eq!(report.orders.total as usize, ORDERS);
    assert!(
        report.orders.confirmed > 0,
        "some orders confirmed: {report}"
    );
    for reason in ["out_of_stock", "insufficient_funds"] {
        assert!(
            report
                .orders
                .cancelled_by_reason
                .get(reason)
                .copied()
                .unwrap_or(0)
                > 0,
            "scarcity of {reason} was exercised: {report}"
        );
    }
    assert_audit_clean(&stack).await;

    // Arithmetic, independent of the audit: what the confirmed orders imply.
    let sold: Vec<(String, String, i32, i64)> = sqlx::query_as(
        "SELECT o.customer_id, l.sku, l.quantity, l.unit_price_minor
           FROM orders o JOIN order_lines l USING (order_id) WHERE o.status = 'CONFIRMED'",
    )
    .fetch_all(&order_db)
    .await
    .expect("confirmed lines");
    let mut units_sold: HashMap<String, i64> = HashMap::new();
    let mut spent: HashMap<String, i64> = HashMap::new();
    for (customer_id, sku, quantity, price) in sold {
        *units_sold.entry(sku).or_default() += i64::from(quantity);
        *spent.entry(customer_id).or_default() += i64::from(quantity) * price;
    }
    let inventory = stack
        .superuser_pool(ServiceKind::Inventory)
        .await
        .expect("pool");
    for index in 0..PRODUCTS {
        let (available, reserved): (i64, i64) =
            sqlx::query_as("SELECT available, reserved FROM products WHERE sku = $1")
                .bind(sku(index))
                .fetch_one(&inventory)
                .await
                .expect("product");
        let expected = STOCK_EACH - units_sold.get(&sku(index)).copied().unwrap_or(0);
        assert_eq!((available, reserved), (expected, 0), "{}", sku(index));
    }
    let billing = stack
        .superuser_pool(ServiceKind::Billing)
        .await
        .expect("pool");
    for index in 0..CUSTOMERS {
        let balance: i64 =
            sqlx::query_scalar("SELECT balance_minor FROM accounts WHERE customer_id = $1")
                .bind(customer(index))
                .fetch_one(&billing)
                .await
                .expect("account");
        let expected = FUNDS_EACH - spent.get(&customer(index)).copied().unwrap_or(0);
        assert_eq!(balance, expected, "{}", customer(index));
    }
}
