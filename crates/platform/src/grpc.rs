//! The gRPC server every service runs: its own API plus `grpc.health.v1` and
//! server reflection (v1 and v1alpha, so both new and old grpcurl/grpcui can list
//! and call the services with no `.proto` files at hand).

use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::Router;
use tonic::transport::server::TcpIncoming;
use tonic_health::server::HealthReporter;

use microcosm_proto::admin::fault_injection_service_server::FaultInjectionServiceServer;
use tower_layer::{Identity, Stack};

use crate::faults::FaultAdmin;
use crate::faults::layer::FaultLayer;
use crate::shutdown::Shutdown;
use crate::telemetry::grpc_layer::TraceLayer;

/// Why the gRPC server could not be built or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    /// The reflection service could not read the embedded descriptors.
    #[error("could not build the gRPC reflection service")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The listen address could not be bound.
    #[error("could not listen on {addr} (is another process using the port? set GRPC_LISTEN_ADDR)")]
    Bind {
        /// The address from GRPC_LISTEN_ADDR.
        addr: std::net::SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS configuration (GRPC_TLS_*) was refused.
    #[error("invalid TLS configuration (GRPC_TLS_CERT, GRPC_TLS_KEY, GRPC_TLS_CA)")]
    Tls(#[source] tonic::transport::Error),
    /// The server failed while serving.
    #[error("the gRPC server failed")]
    Serve(#[from] tonic::transport::Error),
}

/// What the gRPC server accepts at most, for every service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcLimits {
    /// The largest request message, in bytes: a larger one is refused with
    /// OUT_OF_RANGE before any of it is handled. Every valid request of our APIs is
    /// a few kilobytes at most (an order has at most 50 lines).
    pub max_message_bytes: usize,
    /// The longest a call may run (a shorter `grpc-timeout` from the client wins):
    /// longer than PlaceOrder's longest wait, shorter than forever.
    pub request_timeout: Duration,
}

impl Default for GrpcLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// The router every service serves: health, reflection and the fault-flag API,
/// behind the trace layer (a span per call, continuing the caller's trace) and
/// the fault layer. Services add their own API with `add_service`.
pub type ServiceRouter = Router<Stack<FaultLayer, Stack<TraceLayer, Identity>>>;

/// A server router already carrying health, reflection and the fault-flag API,
/// and the reporter that sets the health status.
///
/// # Errors
/// If the reflection service cannot decode the embedded descriptor set.
pub fn router_with_health_and_reflection(
    faults: FaultAdmin,
    layer: FaultLayer,
    limits: GrpcLimits,
    tls: Option<tonic::transport::ServerTlsConfig>,
) -> Result<(HealthReporter, ServiceRouter), GrpcError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(microcosm_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(microcosm_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let mut server = Server::builder();
    if let Some(tls) = tls {
        server = server.tls_config(tls).map_err(GrpcError::Tls)?;
    }
    let router = server
        .timeout(limits.request_timeout)
        .layer(TraceLayer)
        .layer(layer)
        .add_service(
            FaultInjectionServiceServer::new(faults)
                .max_decoding_message_size(limits.max_message_bytes),
        )
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    Ok((reporter, router))
}

/// Binds the listen address. Done before serving so start-up fails early, with
/// the address named, when the port is taken.
///
/// # Errors
/// [`GrpcError::Bind`] if the address cannot be bound.
pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, GrpcError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| GrpcError::Bind { addr, source })
}

/// Serves until `shutdown` is triggered, then stops accepting connections and
/// gives in-flight calls up to `grace` to finish; the calls still running then
/// are abandoned (their clients see the connection close).
///
/// # Errors
/// If the server fails while serving.
pub async fn serve(
    router: ServiceRouter,
    listener: TcpListener,
    shutdown: Shutdown,
    grace: Duration,
) -> Result<(), GrpcError> {
    let stop = shutdown.clone();
    let server = router.serve_with_incoming_shutdown(
        TcpIncoming::from(listener).with_nodelay(Some(true)),
        async move {
            stop.triggered().await;
        },
    );
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return Ok(result?),
        () = shutdown.triggered() => {}
    }
    match tokio::time::timeout(grace, server).await {
        Ok(result) => Ok(result?),
        Err(_) => {
            shutdown.cut_short("in-flight gRPC calls");
            Ok(())
        }
    }
}

/// A database timestamp as a protobuf `Timestamp`.
pub fn timestamp(at: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// The status for a failed database call. The cause is logged with its chain and
/// never sent to the client (it may name tables, hosts or users): a lost
/// connection (or a server shutting down, starting up or cutting the connection)
/// is UNAVAILABLE (retry later), anything else INTERNAL.
pub fn database_status(error: &sqlx::Error) -> tonic::Status {
    tracing::error!(error = %crate::service::error_chain(error), "database call failed");
    if database_unavailable(error) {
        tonic::Status::unavailable("the service's database is unavailable; retry later")
    } else {
        tonic::Status::internal("internal error; see the service's log")
    }
}

/// Whether `error` means the database could not be reached or went away, so the
/// same call may succeed later: I/O and pool errors, and the SQLSTATE classes 08
/// (connection exception) and 57P (the server is shutting down, crashed, or not
/// accepting connections yet).
pub fn database_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(database) => database
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}
