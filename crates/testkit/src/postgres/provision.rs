//! Giving a service its own database and roles, the way production would.
//!
//! Each service has two roles on its own database: the owner, which runs the
//! migrations, and a runtime role, which may only SELECT, INSERT, UPDATE and
//! DELETE rows of the owner's tables (default privileges cover tables created by
//! later migrations too): a compromised or buggy service cannot drop, alter or
//! truncate anything. `PUBLIC` loses its default right to connect (and to create
//! temporary tables), so a service that tried to read another's tables would be
//! refused at login. Tests keep these boundaries honest instead of sharing one
//! superuser connection string.

use anyhow::Context as _;
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};

use crate::service::ServiceDatabase;

/// Creates the role and the database of `database` if they do not exist yet, and
/// (re)applies the password and the connect privileges, so running it twice is safe.
pub(super) async fn provision(
    superuser: &mut PgConnection,
    database: &ServiceDatabase,
) -> anyhow::Result<()> {
    let role = quote_identifier(&database.role);
    let app_role = quote_identifier(&database.app_role);
    let name = quote_identifier(&database.database);
    login_role(superuser, &database.role, &database.password).await?;
    login_role(superuser, &database.app_role, &database.app_password).await?;

    let database_exists = sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
    )
    .bind(&database.database)
    .fetch_one(&mut *superuser)
    .await?;
    if !database_exists {
        // The owner also owns the `public` schema (PostgreSQL 15: pg_database_owner),
        // so the service can run its own migrations.
        let sql = format!("CREATE DATABASE {name} OWNER {role}");
        execute(superuser, sql.clone(), &sql).await?;
    }
    for sql in [
        format!("REVOKE ALL ON DATABASE {name} FROM PUBLIC"),
        format!("GRANT CONNECT ON DATABASE {name} TO {role}, {app_role}"),
    ] {
        execute(superuser, sql.clone(), &sql).await?;
    }
    Ok(())
}

/// Creates the login role `name`, or sets its password if it exists.
async fn login_role(
    superuser: &mut PgConnection,
    name: &str,
    password: &str,
) -> anyhow::Result<()> {
    let exists =
        sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(name)
            .fetch_one(&mut *superuser)
            .await?;
    let role = quote_identifier(name);
    let password = quote_literal(password);
    // CREATE ROLE and ALTER ROLE take no bind parameters, hence the quoted literal.
    let sql = if exists {
        format!("ALTER ROLE {role} WITH LOGIN PASSWORD {password}")
    } else {
        format!("CREATE ROLE {role} WITH LOGIN PASSWORD {password}")
    };
    execute(superuser, sql, &format!("setting up role {role}")).await
}

/// Inside the service's database: the runtime role may use the schema and do DML
/// on every table and sequence the owner has created or will create.
const RUNTIME_GRANTS: &str = "
    GRANT USAGE ON SCHEMA public TO {app};
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app};
    GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {app};
    ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public
        GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app};
    ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public
        GRANT USAGE, SELECT ON SEQUENCES TO {app};
";

/// Applies [`RUNTIME_GRANTS`] over a superuser connection to the service's database.
async fn grant_runtime_role(
    in_database: &mut PgConnection,
    database: &ServiceDatabase,
) -> anyhow::Result<()> {
    let sql = RUNTIME_GRANTS
        .replace("{app}", &quote_identifier(&database.app_role))
        .replace("{owner}", &quote_identifier(&database.role));
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(in_database)
        .await
        .with_context(|| format!("failed: granting {} its privileges", database.app_role))?;
    Ok(())
}

/// Opens a superuser connection, provisions, and closes it again.
pub(super) async fn provision_at(
    superuser_url: &str,
    superuser_in_database_url: &str,
    database: &ServiceDatabase,
) -> anyhow::Result<()> {
    let mut superuser = PgConnection::connect(superuser_url)
        .await
        .context("could not connect as the PostgreSQL superuser")?;
    provision(&mut superuser, database)
        .await
        .with_context(|| format!("could not provision database {}", database.database))?;
    superuser.close().await?;
    let mut in_database = PgConnection::connect(superuser_in_database_url)
        .await
        .with_context(|| format!("could not connect to {} as superuser", database.database))?;
    grant_runtime_role(&mut in_database, database).await?;
    in_database.close().await?;
    Ok(())
}

/// Runs one statement; `what` describes it in the error (without the password).
async fn execute(connection: &mut PgConnection, sql: String, what: &str) -> anyhow::Result<()> {
    sqlx::query(AssertSqlSafe(sql))
        .execute(connection)
        .await
        .with_context(|| format!("failed: {what}"))?;
    Ok(())
}

/// `name` as an SQL identifier: double-quoted, embedded quotes doubled.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `value` as an SQL string literal: single-quoted, embedded quotes doubled.
fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// `value` percent-encoded for the user, password or path part of a connection URL.
pub(super) fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
