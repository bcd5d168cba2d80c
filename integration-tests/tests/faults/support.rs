//! Setting flags through the real `shop.admin.v1.FaultInjectionService` API.

use std::time::Duration;

use microcosm_proto::admin::SetFaultRequest;
use microcosm_proto::admin::fault_injection_service_client::FaultInjectionServiceClient;
use microcosm_testkit::{ServiceKind, ServingStatus, Stack};

/// Sets `flag` to `value` on `kind`.
pub(crate) async fn set_fault(stack: &Stack, kind: ServiceKind, flag: &str, value: u32) {
    try_set_fault(stack, kind, flag, value)
        .await
        .unwrap_or_else(|status| panic!("setting {flag}={value} on {}: {status:?}", kind.name()));
}

pub(crate) async fn try_set_fault(
    stack: &Stack,
    kind: ServiceKind,
    flag: &str,
    value: u32,
) -> Result<(), tonic::Status> {
    let mut client =
        FaultInjectionServiceClient::new(stack.service(kind).channel().await.expect("channel"));
    client
        .set_fault(SetFaultRequest {
            name: flag.into(),
            value,
        })
        .await
        .map(|_| ())
}

/// Waits until `kind`'s health (whole server) is `status`.
pub(crate) async fn wait_for_health(stack: &Stack, kind: ServiceKind, status: ServingStatus) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while stack.service(kind).health("").await.ok() != Some(status) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never reported {status:?}",
            kind.name()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
