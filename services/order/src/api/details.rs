//! GetOrder with details: API composition over the participants' gRPC APIs.
//!
//! The order service asks inventory for each line's product and billing for the
//! customer's account, concurrently, each call with its own deadline. A
//! participant that is down or slow costs at most that deadline and leaves a
//! note in the answer; the order itself is always returned. The failure of one
//! service stays isolated from the callers of another.

use std::time::Duration;

use microcosm_platform::telemetry::propagation::inject_trace_context;
use microcosm_proto::billing::GetAccountRequest;
use microcosm_proto::billing::billing_service_client::BillingServiceClient;
use microcosm_proto::inventory::GetProductRequest;
use microcosm_proto::inventory::inventory_service_client::InventoryServiceClient;
use microcosm_proto::order as pb;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::config::CompositionConfig;
use crate::domain::Order;

/// Clients of inventory and billing, connected lazily (a participant that is
/// down at start does not stop the order service).
#[derive(Debug, Clone)]
pub struct Participants {
    inventory: InventoryServiceClient<TracedChannel>,
    billing: BillingServiceClient<TracedChannel>,
    timeout: Duration,
}

/// A channel whose calls carry the caller's trace context, so the participants'
/// spans join the trace of the GetOrder that asked.
type TracedChannel = InterceptedService<Channel, TraceInterceptor>;
type TraceInterceptor = fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>;

impl Participants {
    /// Clients for the configured URLs.
    ///
    /// # Errors
    /// If a URL is not a valid endpoint.
    pub fn connect_lazy(
        config: &CompositionConfig,
        tls: Option<ClientTlsConfig>,
    ) -> Result<Self, tonic::transport::Error> {
        let channel = |url: &str| -> Result<Channel, tonic::transport::Error> {
            let endpoint = Endpoint::from_shared(url.to_owned())?
                .connect_timeout(config.timeout)
                .timeout(config.timeout);
            let endpoint = match (&tls, url.starts_with("https://")) {
                (Some(tls), true) => endpoint.tls_config(tls.clone())?,
                _ => endpoint,
            };
            Ok(endpoint.connect_lazy())
        };
        Ok(Self {
            inventory: InventoryServiceClient::with_interceptor(
                channel(&config.inventory_url)?,
                inject_trace_context as TraceInterceptor,
            ),
            billing: BillingServiceClient::with_interceptor(
                channel(&config.billing_url)?,
                inject_trace_context as TraceInterceptor,
            ),
            timeout: config.timeout,
        })
    }

    /// What inventory and billing say about the order now, with a note for each
    /// part that could not be fetched.
    #[tracing::instrument(name = "compose_order_details", skip_all, fields(order_id = %order.order_id))]
    pub async fn details(&self, order: &Order) -> pb::OrderDetails {
        let (products, account) =
            tokio::join!(self.products(order), self.account(&order.customer_id));
        let mut notes = Vec::new();
        let products = products.unwrap_or_else(|note| {
            notes.push(note);
            Vec::new()
        });
        let account = account.unwrap_or_else(|note| {
            notes.push(note);
            None
        });
        pb::OrderDetails {
            products,
            account,
            notes,
        }
    }

    async fn products(&self, order: &Order) -> Result<Vec<pb::ProductDetail>, String> {
        let calls = order.lines.iter().map(|line| {
            let mut client = self.inventory.clone();
            let sku = line.sku.clone();
            async move {
                let request = GetProductRequest { sku };
                metered(
                    "shop.inventory.v1.InventoryService",
                    "GetProduct",
                    self.timeout,
                    client.get_product(request),
                )
                .await
            }
        });
        let mut products = Vec::new();
        for answer in futures::future::join_all(calls).await {
            match answer {
                Ok(Ok(response)) => {
                    if let Some(product) = response.into_inner().product {
                        products.push(pb::ProductDetail {
                            sku: product.sku,
                            name: product.name,
                            unit_price_minor: product.unit_price_minor,
                            available: product.available,
                        });
                    }
                }
                Ok(Err(status)) if status.code() == tonic::Code::NotFound => {}
                Ok(Err(status)) => {
                    return Err(format!("inventory unavailable: {}", status_text(&status)));
                }
                Err(_) => {
                    return Err(format!(
                        "inventory unavailable: no answer within {:?}",
                        self.timeout
                    ));
                }
            }
        }
        Ok(products)
    }

    async fn account(&self, customer_id: &str) -> Result<Option<pb::AccountDetail>, String> {
        let mut client = self.billing.clone();
        let request = GetAccountRequest {
            customer_id: customer_id.to_owned(),
        };
        let call = client.get_account(request);
        match metered(
            "shop.billing.v1.BillingService",
            "GetAccount",
            self.timeout,
            call,
        )
        .await
        {
            Ok(Ok(response)) => {
                Ok(response
                    .into_inner()
                    .account
                    .map(|account| pb::AccountDetail {
                        customer_id: account.customer_id,
                        balance_minor: account.balance_minor,
                    }))
            }
            Ok(Err(status)) if status.code() == tonic::Code::NotFound => Ok(None),
            Ok(Err(status)) => Err(format!("billing unavailable: {}", status_text(&status))),
            Err(_) => Err(format!(
                "billing unavailable: no answer within {:?}",
                self.timeout
            )),
        }
    }
}

/// Runs one call to a participant within `timeout` and records it as
/// `rpc.client.call.duration`, with the final status (a call past its deadline
/// counts as DEADLINE_EXCEEDED).
async fn metered<T>(
    service: &str,
    method: &str,
    timeout: Duration,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<Result<tonic::Response<T>, tonic::Status>, tokio::time::error::Elapsed> {
    let started = std::time::Instant::now();
    let answer = tokio::time::timeout(timeout, call).await;
    let code = match &answer {
        Ok(Ok(_)) => tonic::Code::Ok,
        Ok(Err(status)) => status.code(),
        Err(_) => tonic::Code::DeadlineExceeded,
    };
    microcosm_platform::metrics::rpc_called(
        service,
        method,
        &(code as i32).to_string(),
        started.elapsed().as_secs_f64(),
    );
    answer
}

fn status_text(status: &tonic::Status) -> String {
    format!("{:?}", status.code()).to_lowercase()
}
