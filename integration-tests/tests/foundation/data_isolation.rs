//! Each service's data is its own: its role can reach its own database and no
//! other, so no service can read (or quietly couple itself to) another's tables.

use microcosm_testkit::{ServiceKind, Stack};
use sqlx::Connection;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_role_cannot_read_another_services_tables() {
    let stack = Stack::start().await.expect("stack");
    let tables = [
        (ServiceKind::Order, "orders"),
        (ServiceKind::Inventory, "products"),
        (ServiceKind::Billing, "accounts"),
    ];
    for (owner, table) in tables {
        // The owner reads its own table.
        let own = stack.service_pool(owner).await.expect("own pool");
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&own)
            .await
            .unwrap_or_else(|error| {
                panic!("{} cannot read its own {table}: {error}", owner.name())
            });
        own.close().await;

        for intruder in ServiceKind::all().into_iter().filter(|kind| *kind != owner) {
            let role = intruder.database();
            let url = format!(
                "postgres://{}:{}@127.0.0.1:{}/{}",
                role.role,
                role.password,
                stack.postgres(owner).port(),
                owner.database().database
            );
            let refused = sqlx::PgConnection::connect(&url).await;
            let error = refused.expect_err(&format!(
                "{} must not reach {}'s database",
                intruder.name(),
                owner.name()
            ));
            assert!(
                error.to_string().contains("permission denied"),
                "{} reaching {}'s database: unexpected error {error}",
                intruder.name(),
                owner.name()
            );
        }
    }
}

/// The code PostgreSQL answers a statement with, or `None` if it succeeded.
async fn sqlstate(connection: &mut sqlx::PgConnection, sql: &str) -> Option<String> {
    match sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *connection)
        .await
    {
        Ok(_) => None,
        Err(error) => Some(
            error
                .as_database_error()
                .and_then(|database| database.code().map(|code| code.into_owned()))
                .unwrap_or_else(|| format!("not a database error: {error}")),
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_role_reads_and_writes_rows_and_can_change_no_schema() {
    let stack = Stack::start().await.expect("stack");
    for (kind, table) in [
        (ServiceKind::Order, "orders"),
        (ServiceKind::Inventory, "products"),
        (ServiceKind::Billing, "accounts"),
    ] {
        // What the service serves with: DATABASE_URL, the runtime role.
        let mut runtime =
            sqlx::PgConnection::connect(&stack.postgres(kind).service_url(&kind.database()))
                .await
                .expect("the runtime role logs in");
        for allowed in [
            format!("SELECT count(*) FROM {table}"),
            format!("INSERT INTO {table} SELECT * FROM {table} WHERE false"),
            format!(
                "UPDATE {table} SET {column} = {column} WHERE false",
                column = first_column(table)
            ),
            format!("DELETE FROM {table} WHERE false"),
            "SELECT count(*) FROM outbox".to_owned(),
        ] {
            assert_eq!(
                sqlstate(&mut runtime, &allowed).await,
                None,
                "{kind}: {allowed}"
            );
        }
        // 42501 insufficient_privilege: no DDL, no TRUNCATE, no temporary tables.
        for refused in [
            "CREATE TABLE intruder (x int)".to_owned(),
            format!("ALTER TABLE {table} ADD COLUMN intruder int"),
            format!("DROP TABLE {table}"),
            format!("TRUNCATE {table}"),
            "CREATE TEMPORARY TABLE intruder (x int)".to_owned(),
            format!("CREATE INDEX intruder ON {table} ({})", first_column(table)),
        ] {
            assert_eq!(
                sqlstate(&mut runtime, &refused).await.as_deref(),
                Some("42501"),
                "{kind}'s runtime role must not run: {refused}"
            );
        }
        // The owner (MIGRATION_DATABASE_URL) can, which is why migrations use it.
        let mut owner =
            sqlx::PgConnection::connect(&stack.postgres(kind).owner_url(&kind.database()))
                .await
                .expect("the owner logs in");
        let ddl = "BEGIN; CREATE TABLE migration_probe (x int); ROLLBACK";
        assert_eq!(
            sqlstate(&mut owner, ddl).await,
            None,
            "{kind}'s owner runs DDL"
        );
    }
}

/// A column of each checked table, for statements that must name one.
fn first_column(table: &str) -> &'static str {
    match table {
        "orders" => "order_id",
        "products" => "sku",
        _ => "customer_id",
    }
}
