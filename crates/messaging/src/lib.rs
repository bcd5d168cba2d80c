//! Messaging between services: NATS JetStream with a transactional outbox on
//! the sending side and an inbox on the receiving side.
//!
//! - [`envelope`]: building and reading the one message type, and its subject.
//! - [`streams`]: the streams and durable consumers, declared by code at start.
//! - [`outbox`]: write a message in the same transaction as the state change,
//!   publish it right after the commit (dispatch), and sweep up, by polling,
//!   whatever a crash kept from being dispatched. `Nats-Msg-Id` = message id.
//! - [`inbox`]: record a message id with its effect, so a redelivery has none
//!   (and gets the messages its first delivery caused published again).
//! - [`consumer`]: the pull-consumer loop: decode once, handle, dispatch what
//!   the handler stored, ack after the PubAcks; dead-letter what can never be
//!   handled.
//! - [`trace`]: the trace hop: the producer span, the consumer span, and the
//!   one carrier of the trace context (W3C headers on the NATS message, with
//!   the envelope's copy as a fallback).
//! - [`metrics`]: the messaging instruments.
//!
//! The NATS client is created once per process and shared. It keeps reconnecting
//! on its own when NATS goes away; the health probe reports NOT_SERVING meanwhile.

pub mod consumer;
pub mod envelope;
pub mod inbox;
pub mod metrics;
pub mod outbox;
pub mod streams;
pub mod trace;

use std::time::Duration;

/// The outbox, inbox and dead-letter tables every service has, applied together
/// with the service's own migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Why NATS could not be reached.
#[derive(Debug, thiserror::Error)]
#[error(
    "could not connect to NATS at {url} (is nats-server running with -js, and NATS_URL right?)"
)]
pub struct NatsConnectError {
    url: String,
    #[source]
    source: async_nats::ConnectError,
}

/// Connects to NATS as `client_name`. The first connection is retried in the
/// background, so a service can start before NATS and report NOT_SERVING until it
/// is there.
///
/// # Errors
/// If the URL or options are invalid.
pub async fn connect(url: &str, client_name: &str) -> Result<async_nats::Client, NatsConnectError> {
    with_url_credentials(async_nats::ConnectOptions::new(), url)
        .name(client_name)
        // Replies (PubAcks, pull deliveries, API answers) come back under a prefix of
        // the service's own, the only one its NATS user may subscribe to: no service
        // can read another's deliveries (k8s/base/nats/auth.conf).
        .custom_inbox_prefix(format!("_INBOX_{client_name}"))
        .connection_timeout(Duration::from_secs(5))
        .retry_on_initial_connect()
        .connect(url)
        .await
        .map_err(|source| NatsConnectError {
            url: url.to_owned(),
            source,
        })
}

/// `options` with the user and password written in `url` (`nats://user:pass@host`):
/// async-nats does not read credentials from a URL by itself. A URL without them,
/// or one that does not parse (the connection then reports it), leaves `options`
/// as they are.
pub fn with_url_credentials(
    options: async_nats::ConnectOptions,
    url: &str,
) -> async_nats::ConnectOptions {
    let Ok(addr) = url.parse::<async_nats::ServerAddr>() else {
        return options;
    };
    match (addr.username(), addr.password()) {
        (Some(user), Some(password)) => {
            options.user_and_password(user.to_owned(), password.to_owned())
        }
        _ => options,
    }
}

/// Whether the client currently holds a connection to NATS.
pub fn is_connected(client: &async_nats::Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}

/// An error and its causes on one line: `a: b: c`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_messaging_tables_are_embedded() {
        assert!(
            super::MIGRATOR.iter().count() >= 1,
            "crates/messaging/migrations was not embedded"
        );
    }
}
