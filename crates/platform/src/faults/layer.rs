//! The gRPC side of the fault flags, as one tower layer around every API (not
//! sprinkled through handlers): `unavailable` answers UNAVAILABLE, and
//! `added_latency_ms` delays each call. Health, reflection and the fault API
//! itself are exempt, so a service can be seen and healed while it misbehaves.

use std::task::{Context, Poll};

use tonic::codegen::{BoxFuture, Service, http};
use tower_layer::Layer;

use super::{FaultFlag, Faults};

/// Paths the flags never touch.
const EXEMPT_PREFIXES: [&str; 3] = ["/grpc.health.", "/grpc.reflection.", "/shop.admin."];

/// Wraps a server's routes with the fault flags.
#[derive(Debug, Clone)]
pub struct FaultLayer {
    faults: Faults,
}

impl FaultLayer {
    /// A layer reading `faults`.
    pub fn new(faults: Faults) -> Self {
        Self { faults }
    }
}

impl<S> Layer<S> for FaultLayer {
    type Service = FaultService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FaultService {
            inner,
            faults: self.faults.clone(),
        }
    }
}

/// The routes, wrapped.
#[derive(Debug, Clone)]
pub struct FaultService<S> {
    inner: S,
    faults: Faults,
}

impl<S, B> Service<http::Request<B>> for FaultService<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let exempt = EXEMPT_PREFIXES
            .iter()
            .any(|prefix| request.uri().path().starts_with(prefix));
        let faults = self.faults.clone();
        // The ready service answers this call; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            if !exempt {
                if faults.is_unavailable() {
                    let status = tonic::Status::unavailable(format!(
                        "the {} service is unavailable (fault flag {} is on)",
                        faults.service(),
                        FaultFlag::Unavailable.name()
                    ));
                    return Ok(status.into_http());
                }
                tokio::time::sleep(faults.added_latency()).await;
            }
            inner.call(request).await
        })
    }
}
