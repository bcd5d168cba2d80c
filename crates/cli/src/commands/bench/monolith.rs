//! The baseline: the same business work as the saga, done the monolith way, in
//! one database transaction per order.
//!
//! The saga exists because stock, money and orders live in three databases that
//! no transaction spans. What does that cost? The monolith answers with the
//! ceiling: one database holding all three, the same PostgreSQL server, the same
//! catalogue, customers and orders, and one transaction that takes the stock,
//! debits the account, writes the ledger entry and stores the confirmed order.
//! Its rate is what the hardware allows for this work with no messaging, no
//! outbox, no second or third database and no network hop between services.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sqlx::PgPool;
use tokio::task::JoinSet;
use uuid::Uuid;

use super::latency::{LatencyRecorder, LatencySummary};
use super::progress::{LoadFigures, ProgressTicker};
use super::stack::BenchStack;
use super::workload::{
    self, BenchOrder, CUSTOMERS, FUNDS_EACH, OrderGenerator, PRODUCTS, STOCK_EACH,
};

/// The monolith's database, beside the three service databases.
pub(crate) const MONOLITH_DATABASE: &str = "microcosm_monolith";

/// The monolith's tables: the parts of the three services' schemas that the
/// order's work touches, with the same constraints, in one database.
const MONOLITH_SCHEMA: &str = "
CREATE TABLE products (
    sku              text   PRIMARY KEY,
    unit_price_minor bigint NOT NULL CHECK (unit_price_minor > 0),
    available        bigint NOT NULL CHECK (available >= 0)
);
CREATE TABLE accounts (
    customer_id   text   PRIMARY KEY,
    balance_minor bigint NOT NULL CHECK (balance_minor >= 0)
);
CREATE TABLE ledger_entries (
    entry_id     uuid        PRIMARY KEY,
    customer_id  text        NOT NULL REFERENCES accounts (customer_id),
    kind         text        NOT NULL CHECK (kind IN ('deposit', 'charge')),
    amount_minor bigint      NOT NULL CHECK (amount_minor > 0),
    order_id     uuid,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE orders (
    order_id        uuid        PRIMARY KEY,
    customer_id     text        NOT NULL REFERENCES accounts (customer_id),
    status          text        NOT NULL CHECK (status = 'CONFIRMED'),
    idempotency_key text        NOT NULL UNIQUE,
    total_minor     bigint      NOT NULL CHECK (total_minor >= 0),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE order_lines (
    order_id         uuid    NOT NULL REFERENCES orders (order_id),
    line_no          integer NOT NULL,
    sku              text    NOT NULL REFERENCES products (sku),
    quantity         integer NOT NULL CHECK (quantity > 0),
    unit_price_minor bigint  NOT NULL CHECK (unit_price_minor > 0),
    PRIMARY KEY (order_id, line_no)
);
";

/// Pause after a failed transaction, so a broken database is not hammered.
const FAILURE_BACKOFF: Duration = Duration::from_millis(50);

/// What the monolith achieved.
#[derive(Debug, Clone)]
pub(crate) struct MonolithResult {
    /// Concurrent clients, each with its own connection.
    pub(crate) clients: usize,
    /// How long orders were being placed.
    pub(crate) window: Duration,
    /// Orders committed.
    pub(crate) committed: u64,
    /// Transactions that failed (none are expected: stock and money are plenty).
    pub(crate) failed: u64,
    /// The first failure, to say why.
    pub(crate) first_failure: Option<String>,
    /// From BEGIN to COMMIT's answer.
    pub(crate) latency: LatencySummary,
}

impl MonolithResult {
    /// Orders committed per second of the window.
    pub(crate) fn orders_per_second(&self) -> f64 {
        self.committed as f64 / self.window.as_secs_f64()
    }
}

/// Creates the monolith's database next to the services' and loads the bench
/// catalogue and customers into it; returns a pool of `clients` connections,
/// all opened already, so the window does not pay for connecting.
pub(crate) async fn prepare_monolith(stack: &BenchStack, clients: usize) -> anyhow::Result<PgPool> {
    let admin = stack.superuser_pool("postgres", 1).await?;
    sqlx::query("CREATE DATABASE microcosm_monolith")
        .execute(&admin)
        .await
        .context("could not create the monolith's database")?;
    admin.close().await;
    let pool = stack
        .superuser_pool(MONOLITH_DATABASE, u32::try_from(clients)?)
        .await?;
    sqlx::raw_sql(MONOLITH_SCHEMA)
        .execute(&pool)
        .await
        .context("could not create the monolith's tables")?;
    for index in 0..PRODUCTS {
        sqlx::query("INSERT INTO products (sku, unit_price_minor, available) VALUES ($1, $2, $3)")
            .bind(workload::sku(index))
            .bind(workload::unit_price_minor(index))
            .bind(STOCK_EACH)
            .execute(&pool)
            .await
            .context("could not seed the monolith's catalogue")?;
    }
    for index in 0..CUSTOMERS {
        sqlx::query("INSERT INTO accounts (customer_id, balance_minor) VALUES ($1, $2)")
            .bind(workload::customer(index))
            .bind(FUNDS_EACH)
            .execute(&pool)
            .await
            .context("could not seed the monolith's accounts")?;
        sqlx::query(
            "INSERT INTO ledger_entries (entry_id, customer_id, kind, amount_minor)
             VALUES (gen_random_uuid(), $1, 'deposit', $2)",
        )
        .bind(workload::customer(index))
        .bind(FUNDS_EACH)
        .execute(&pool)
        .await
        .context("could not seed the monolith's deposits")?;
    }
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        connections.push(pool.acquire().await?);
    }
    drop(connections);
    Ok(pool)
}

/// `clients` clients placing orders in one transaction each, each starting the
/// next as soon as the previous committed, for `duration`.
pub(crate) async fn run_monolith_load(
    pool: PgPool,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<MonolithResult> {
    let start = Instant::now();
    let window_end = start + duration;
    let committed = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let progress = ProgressTicker::start("monolith", start, duration, {
        let (committed, failed) = (Arc::clone(&committed), Arc::clone(&failed));
        move || {
            let committed = committed.load(Ordering::Relaxed);
            LoadFigures {
                placed: committed,
                completed: committed,
                in_flight: 0,
                failed: failed.load(Ordering::Relaxed),
            }
        }
    });
    let mut tasks = JoinSet::new();
    for client in 0..clients {
        let (pool, committed, failed) = (pool.clone(), Arc::clone(&committed), Arc::clone(&failed));
        let mut orders = OrderGenerator::new(client as u64);
        tasks.spawn(async move {
            let mut latency = LatencyRecorder::new()?;
            let mut first_failure = None;
            while Instant::now() < window_end {
                let order = orders.next_order();
                let began = Instant::now();
                match place_order_in_one_transaction(&pool, &order).await {
                    Ok(()) => {
                        latency.record(began.elapsed());
                        committed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        first_failure.get_or_insert(format!("{error:#}"));
                        tokio::time::sleep(FAILURE_BACKOFF).await;
                    }
                }
            }
            anyhow::Ok((latency, first_failure))
        });
    }
    let mut latency = LatencyRecorder::new()?;
    let mut first_failure = None;
    while let Some(finished) = tasks.join_next().await {
        let (client_latency, client_failure) = finished.context("a monolith client panicked")??;
        latency.merge(&client_latency)?;
        first_failure = first_failure.or(client_failure);
    }
    progress.stop().await;
    // Its backends exit now, and so count their statistics at once.
    pool.close().await;
    Ok(MonolithResult {
        clients,
        window: duration,
        committed: committed.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        first_failure,
        latency: latency.summary(),
    })
}

/// The whole order in one transaction: take each line's stock (rows locked in
/// sku order, so concurrent orders never deadlock), debit the account, write the
/// ledger entry, the order and its lines, commit. A shortage rolls everything
/// back, which with the bench's plentiful stock and money never happens.
async fn place_order_in_one_transaction(pool: &PgPool, order: &BenchOrder) -> anyhow::Result<()> {
    let mut transaction = pool.begin().await?;
    let mut total_minor = 0_i64;
    let mut prices = Vec::with_capacity(order.lines.len());
    for line in &order.lines {
        let unit_price: i64 = sqlx::query_scalar(
            "UPDATE products SET available = available - $2
              WHERE sku = $1 AND available >= $2
             RETURNING unit_price_minor",
        )
        .bind(&line.sku)
        .bind(i64::from(line.quantity))
        .fetch_optional(&mut *transaction)
        .await?
        .with_context(|| format!("{} is out of stock", line.sku))?;
        total_minor += unit_price * i64::from(line.quantity);
        prices.push(unit_price);
    }
    let debited = sqlx::query(
        "UPDATE accounts SET balance_minor = balance_minor - $2
          WHERE customer_id = $1 AND balance_minor >= $2",
    )
    .bind(&order.customer_id)
    .bind(total_minor)
    .execute(&mut *transaction)
    .await?;
    anyhow::ensure!(
        debited.rows_affected() == 1,
        "{} cannot pay {total_minor}",
        order.customer_id
    );
    let order_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO ledger_entries (entry_id, customer_id, kind, amount_minor, order_id)
         VALUES ($1, $2, 'charge', $3, $4)",
    )
    .bind(Uuid::now_v7())
    .bind(&order.customer_id)
    .bind(total_minor)
    .bind(order_id)
    .execute(&mut *transaction)
    .await?;
    sqlx::query(
        "INSERT INTO orders (order_id, customer_id, status, idempotency_key, total_minor)
         VALUES ($1, $2, 'CONFIRMED', $3, $4)",
    )
    .bind(order_id)
    .bind(&order.customer_id)
    .bind(order_id.to_string())
    .bind(total_minor)
    .execute(&mut *transaction)
    .await?;
    for (line_no, (line, unit_price)) in order.lines.iter().zip(prices).enumerate() {
        sqlx::query(
            "INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price_minor)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(order_id)
        .bind(i32::try_from(line_no)?)
        .bind(&line.sku)
        .bind(line.quantity)
        .bind(unit_price)
        .execute(&mut *transaction)
        .await?;
    }
    transaction.commit().await?;
    Ok(())
}
